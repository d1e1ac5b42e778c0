/*
 * lockfile.c - one agent per cluster per node and per state directory.
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

/* type_name: what a non-regular file is, in words. */
static const char *type_name(mode_t mode)
{
	if (S_ISDIR(mode))
		return "is a directory";
	if (S_ISLNK(mode))
		return "is a symbolic link (lock files are never followed through links)";
	if (S_ISFIFO(mode))
		return "is a FIFO (named pipe)";
	if (S_ISSOCK(mode))
		return "is a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "is a device";
	return "is not a regular file";
}

/*
 * open_failed says why open() refused path.  The final component decides
 * between "something else is there" (-EEXIST) and a plain failure.
 */
static int open_failed(const char *path, int err, char *why, size_t len)
{
	struct stat st;
	if ((err == ELOOP || err == EISDIR || err == ENXIO) && lstat(path, &st) == 0 &&
	    !S_ISREG(st.st_mode)) {
		snprintf(why, len, "%s, not a lock file; remove it", type_name(st.st_mode));
		return -EEXIST;
	}
	snprintf(why, len, "cannot open: %s", strerror(err));
	return -err;
}

/* check_plain refuses an opened lock path that is not a regular file with one name. */
static int check_plain(const struct stat *st, char *why, size_t len)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, len, "%s, not a lock file; remove it", type_name(st->st_mode));
		return -EEXIST;
	}
	/* Another name for the same file could be anything: writing our pid would clobber it. */
	if (st->st_nlink != 1) {
		snprintf(why, len,
		         "has %lu hard links; a lock file must have no other name (remove it)",
		         (unsigned long)st->st_nlink);
		return -EEXIST;
	}
	return 0;
}

int lockfile_acquire(struct lockfile *lf, const char *path, pid_t *holder, char *why, size_t whylen)
{
	lf->fd = -1;
	lf->path = NULL;
	*holder = 0;
	snprintf(why, whylen, "another process holds it");

	for (int attempt = 0; attempt < 3; attempt++) {
		/* O_NONBLOCK: a FIFO put in its place must not hang the start. */
		int fd = open(
		    path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0644);
		if (fd < 0)
			return open_failed(path, errno, why, whylen);
		struct stat fst, pst;
		int rc = fstat(fd, &fst) < 0 ? -errno : check_plain(&fst, why, whylen);
		if (rc == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			rc = -errno;
			if (rc == -EWOULDBLOCK)
				*holder = read_holder(fd);
			else
				snprintf(why, whylen, "cannot lock: %s", strerror(-rc));
		}
		if (rc != 0) {
			close(fd);
			return rc;
		}
		/*
		 * The previous holder may have unlinked the file between our
		 * open and our flock: then we locked an orphan.  Retry.
		 */
		if (lstat(path, &pst) < 0 || fst.st_ino != pst.st_ino || fst.st_dev != pst.st_dev) {
			close(fd);
			continue;
		}
		char pid[32];
		int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
			int err = errno;
			snprintf(why, whylen, "cannot write the pid: %s", strerror(err));
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
			snprintf(why, whylen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	snprintf(why, whylen, "it was replaced three times while being locked");
	return -EAGAIN;
}

bool lockfile_intact(const struct lockfile *lf)
{
	struct stat st;
	if (lf->fd < 0 || lstat(lf->path, &st) < 0)
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
