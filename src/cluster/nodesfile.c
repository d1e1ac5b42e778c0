/*
 * nodesfile.c - the .nodes file written off the loop, coalesced (nodesfile.h).
 */
#include "nodesfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterfsm.h"
#include "fsutil.h"
#include "log.h"

/* The largest .nodes text: every member's address and a separator. */
#define NODESFILE_MAX (CLUSTERFSM_MAX_NODES * CLUSTERFSM_ADDR_MAX + 2)

void nodesfile_init(struct nodesfile *f, uv_loop_t *loop, const char *name, const char *path)
{
	memset(f, 0, sizeof(*f));
	f->loop = loop;
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->path, sizeof(f->path), "%s", path != NULL ? path : "");
	if (f->path[0] == '\0')
		return;
	char *buf = malloc(NODESFILE_MAX + 1);
	if (buf == NULL)
		return;
	ssize_t n = fsutil_read_small(f->path, buf, NODESFILE_MAX + 1);
	if (n < 0) {
		/* Unknown content: the first text set is written. */
		if (n != -ENOENT)
			log_warning("cluster %s: cannot read %s: %s", f->name, f->path,
			            strerror((int)-n));
		free(buf);
		return;
	}
	f->disk = buf;
}

/* work_write runs on a thread of the pool: it touches only f->path, f->writing, f->write_rc. */
static void work_write(uv_work_t *w)
{
	struct nodesfile *f = w->data;
	f->write_rc = fsutil_write_atomic(f->path, f->writing, strlen(f->writing), 0644);
}

static void start_write(struct nodesfile *f, char *text);

static void after_write(uv_work_t *w, int status)
{
	struct nodesfile *f = w->data;
	char *text = f->writing;
	f->writing = NULL;
	int rc = status != 0 ? status : f->write_rc;
	if (rc < 0) {
		log_warning("cluster %s: cannot rewrite %s: %s", f->name, f->path,
		            status != 0 ? uv_strerror(rc) : strerror(-rc));
		free(text);
	} else {
		f->writes++;
		size_t n = strlen(text);
		log_fine("cluster %s: %s now lists: %.*s", f->name, f->path,
		         (int)(n > 0 && text[n - 1] == '\n' ? n - 1 : n), text);
		free(f->disk);
		f->disk = text;
	}
	char *next = f->next;
	f->next = NULL;
	if (next != NULL) {
		if (f->disk != NULL && strcmp(f->disk, next) == 0)
			free(next);
		else
			start_write(f, next);
	}
	if (f->writing == NULL && f->closing) {
		free(f->disk);
		f->disk = NULL;
		if (f->closed != NULL)
			f->closed(f->closed_arg);
	}
}

/* start_write hands text (owned) to the thread pool; on failure to queue, writes it here. */
static void start_write(struct nodesfile *f, char *text)
{
	f->writing = text;
	f->work.data = f;
	int rc = uv_queue_work(f->loop, &f->work, work_write, after_write);
	if (rc != 0) {
		log_warning("cluster %s: cannot queue the rewrite of %s (%s): writing it now",
		            f->name, f->path, uv_strerror(rc));
		work_write(&f->work);
		after_write(&f->work, 0);
	}
}

void nodesfile_set(struct nodesfile *f, const char *text)
{
	if (f->path[0] == '\0' || f->closing)
		return;
	if (f->writing != NULL) {
		/* One write at a time: the newest text waits for it, replacing an older one. */
		free(f->next);
		f->next = strcmp(f->writing, text) == 0 ? NULL : strdup(text);
		return;
	}
	if (f->disk != NULL && strcmp(f->disk, text) == 0)
		return;
	char *copy = strdup(text);
	if (copy == NULL) {
		log_warning("cluster %s: out of memory rewriting %s", f->name, f->path);
		return;
	}
	start_write(f, copy);
}

bool nodesfile_busy(const struct nodesfile *f)
{
	return f->writing != NULL || f->next != NULL;
}

void nodesfile_close(struct nodesfile *f, void (*cb)(void *arg), void *arg)
{
	f->closing = true;
	f->closed = cb;
	f->closed_arg = arg;
	if (f->writing != NULL)
		return;
	free(f->next);
	f->next = NULL;
	free(f->disk);
	f->disk = NULL;
	if (cb != NULL)
		cb(arg);
}
