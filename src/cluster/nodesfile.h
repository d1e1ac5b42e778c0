/*
 * nodesfile.h - the CLUSTER.nodes file, kept equal to a wanted text and
 * written off the loop.
 *
 * The cluster layer hands the text derived from its applied state
 * (clusterfsm_nodes_text) to nodesfile_set whenever that state may have
 * changed; the file is written only when the text differs from what it
 * holds.  The writes (a file and a directory fsync, possibly slow on a busy
 * database host) run on libuv's thread pool, one at a time: a text set
 * while one is being written waits, a newer one replaces it, and the last
 * text set always lands.  Every callback and call is on the loop thread.
 */
#ifndef EFM_NODESFILE_H
#define EFM_NODESFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

struct nodesfile {
	uv_loop_t *loop;
	char name[128];  /* the cluster, for the log */
	char path[4096]; /* "" : no file, every set is dropped */
	char *disk;    /* what the file holds: read at init, then each text written; NULL unknown */
	char *writing; /* the text on its way to the file, NULL when idle */
	int write_rc;  /* its outcome, set by the worker thread */
	char *next;    /* the text to write after it, NULL none */
	uv_work_t work;
	unsigned writes; /* completed writes (for tests and the log) */
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

/* nodesfile_init reads what path holds (once); path "" disables the file. */
void nodesfile_init(struct nodesfile *f, uv_loop_t *loop, const char *name, const char *path);

/* nodesfile_set makes text the file's wanted content (copied). */
void nodesfile_set(struct nodesfile *f, const char *text);

/* nodesfile_busy: a write is in flight or waiting. */
bool nodesfile_busy(const struct nodesfile *f);

/*
 * nodesfile_close lets the write in flight and the one waiting land, frees
 * everything, then calls cb(arg) (at once when idle).  No set after it.
 */
void nodesfile_close(struct nodesfile *f, void (*cb)(void *arg), void *arg);

#endif
