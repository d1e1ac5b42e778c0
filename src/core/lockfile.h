/*
 * lockfile.h - RUN_DIR/CLUSTER.lock: at most one agent per cluster per node.
 *
 * The lock is an flock() on the file, which the kernel drops when the
 * process dies, so a crashed agent never leaves a stale lock behind; the
 * file holds the owner's pid so that a refused second agent can name it.
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
 * another process holds it (*holder is its pid, 0 if unknown); another
 * -errno on failure.
 */
int lockfile_acquire(struct lockfile *lf, const char *path, pid_t *holder)
    __attribute__((warn_unused_result));
/* lockfile_intact: the file at the path is still the one we locked. */
bool lockfile_intact(const struct lockfile *lf);
/* lockfile_release unlinks the file and drops the lock. */
void lockfile_release(struct lockfile *lf);

#endif
