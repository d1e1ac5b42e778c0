/*
 * lockfile.c - one agent per cluster per node.
 */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* read_holder returns the pid written in the lock file, 0 if none. */
static pid_t read_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	long pid = strtol(buf, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

int lockfile_acquire(struct lockfile *lf, const char *path, pid_t *holder)
{
	lf->fd = -1;
	lf->path = NULL;
	*holder = 0;

	for (int attempt = 0; attempt < 3; attempt++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;
			if (err == EWOULDBLOCK)
				*holder = read_holder(fd);
			close(fd);
			return err == EWOULDBLOCK ? -EWOULDBLOCK : -err;
		}
		/*
		 * The previous holder may have unlinked the file between our
		 * open and our flock: then we locked an orphan.  Retry.
		 */
		struct stat fst, pst;
		if (fstat(fd, &fst) < 0 || stat(path, &pst) < 0 || fst.st_ino != pst.st_ino ||
		    fst.st_dev != pst.st_dev) {
			close(fd);
			continue;
		}
		char pid[32];
		int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
			int err = errno;
			close(fd);
			return -err;
		}
		lf->fd = fd;
		lf->path = strdup(path);
		lf->dev = fst.st_dev;
		lf->ino = fst.st_ino;
		if (lf->path == NULL) {
			close(fd);
			lf->fd = -1;
			return -ENOMEM;
		}
		return 0;
	}
	return -EAGAIN;
}

bool lockfile_intact(const struct lockfile *lf)
{
	struct stat st;
	if (lf->fd < 0 || stat(lf->path, &st) < 0)
		return false;
	return st.st_dev == lf->dev && st.st_ino == lf->ino;
}

void lockfile_release(struct lockfile *lf)
{
	if (lf->fd < 0)
		return;
	if (lockfile_intact(lf))
		unlink(lf->path);
	close(lf->fd);
	lf->fd = -1;
	free(lf->path);
	lf->path = NULL;
}
