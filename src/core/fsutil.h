/*
 * fsutil.h - durable file updates: the `.nodes` file and the Raft data
 * directory.
 *
 * These calls are synchronous.  They touch one small file or one flat
 * directory and happen on rare membership changes, so they are allowed on
 * the loop thread; never call them per tick.
 */
#ifndef EFM_FSUTIL_H
#define EFM_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * fsutil_write_atomic replaces path with len bytes of data: write path.new,
 * fsync it, rename over path, fsync the directory.  A crash leaves either
 * the old or the new content, never a mix.  Returns 0 or -errno.
 */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
    __attribute__((warn_unused_result));

/*
 * fsutil_read_small reads at most len-1 bytes of path into buf, NUL
 * terminated.  Returns the length or -errno.
 */
ssize_t fsutil_read_small(const char *path, char *buf, size_t len)
    __attribute__((warn_unused_result));

/* fsutil_dir_has_files: true when dir exists and holds at least one entry. */
bool fsutil_dir_has_files(const char *dir);

/*
 * fsutil_empty_dir removes every regular file in dir (not recursive; the
 * Raft directory is flat) but those named in keep (NULL-terminated, or
 * NULL for none).  Returns 0 or -errno of the first failure.
 */
int fsutil_empty_dir(const char *dir, const char *const *keep);

/* fsutil_mkdirs creates dir and its missing parents (mode). 0 or -errno. */
int fsutil_mkdirs(const char *dir, mode_t mode);

#endif
