/*
 * lockfile.h - at most one agent per cluster per node, and per state
 * directory: RUN_DIR/CLUSTER.lock and STATE_DIR/CLUSTER/efmd.lock.
 *
 * The lock is an flock() on the file, which the kernel drops when the
 * process dies, so a crashed agent never leaves a stale lock behind; the
 * file holds the owner's pid so that a refused second agent can name it.
 * The agent runs as root in directories others may share, so a lock path
 * is only ever opened as a plain file of its own: never through a symbolic
 * link, never a directory, FIFO or device, never a file with other names.
 */
#ifndef EFM_LOCKFILE_H
#define EFM_LOCKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lockfile {
	int fd; /* -1 when not held */
	char *path;
	dev_t dev; /* identity of the file we locked, to notice its removal */
	ino_t ino;
};

/*
 * lockfile_acquire takes the lock at path.  Returns 0; -EWOULDBLOCK when
 * another process holds it (*holder is its pid, 0 if unknown); -EEXIST
 * when something other than a lock file is at path (a directory, FIFO,
 * symbolic link, device, or a file with several hard links); another
 * -errno when the file cannot be made or locked.  On every failure but
 * -EWOULDBLOCK, why says what is wrong with the path.
 */
int lockfile_acquire(struct lockfile *lf, const char *path, pid_t *holder, char *why, size_t whylen)
    __attribute__((warn_unused_result));
/* lockfile_intact: the file at the path is still the one we locked. */
bool lockfile_intact(const struct lockfile *lf);
/* lockfile_release unlinks the file and drops the lock. */
void lockfile_release(struct lockfile *lf);

#endif
