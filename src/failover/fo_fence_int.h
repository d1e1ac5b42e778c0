/*
 * fo_fence_int.h - the server control actions' shared state: the steps of
 * fo_fence.c (fence, clean stop, start) and the rewind of fo_rewind.c,
 * which reuses them (owner lookup, status, standby.signal).
 */
#ifndef EFM_FO_FENCE_INT_H
#define EFM_FO_FENCE_INT_H

#include <limits.h>
#include <sys/types.h>

#include "fo_int.h"

/* pg_ctl status exit codes. */
#define PG_CTL_RUNNING     0
#define PG_CTL_NOT_RUNNING 3
#define PG_CTL_NO_DATA_DIR 4

/* What the action does with the server. */
enum fence_mode {
	MODE_FENCE,         /* stop -m immediate, standby.signal */
	MODE_STOP_CLEAN,    /* stop -m fast, then pg_controldata */
	MODE_START_STANDBY, /* standby.signal, then start */
	MODE_START,         /* start as it is */
	MODE_REWIND,        /* pg_rewind against a source server */
};

/* The configuration files pg_rewind would replace with the source's. */
#define FENCE_CONF_FILES 4

/* MODE_REWIND's own state (fo_rewind.c). */
struct fence_rewind {
	char source[4096];    /* the source server, without password */
	char pgpassword[300]; /* "PGPASSWORD=..." or "" */
	/* the local configuration files, kept across pg_rewind; had: the file existed */
	char conf[FENCE_CONF_FILES][64 * 1024];
	size_t conf_len[FENCE_CONF_FILES];
	bool conf_had[FENCE_CONF_FILES];
	bool ok; /* pg_rewind's outcome, and its detail */
	char detail[FO_DETAIL_MAX / 2];
};

struct fence {
	enum fence_mode mode;
	struct fence_rewind rw; /* MODE_REWIND only */
	char datadir[PATH_MAX];
	char bin[PATH_MAX];
	char pg_ctl[PATH_MAX];
	char owner[128];  /* db.service.owner, else the data directory's owner */
	char runuser[64]; /* "" when the agent is not root: pg_ctl runs as the agent */
	uid_t uid;        /* the owner's, for standby.signal */
	gid_t gid;
	bool as_root;

	bool was_running;                     /* pg_ctl status said running at first */
	bool stop_tried;                      /* pg_ctl stop ran */
	char stop_failure[FO_DETAIL_MAX / 2]; /* why the stop failed, "" when it did not */

	char err[FO_DETAIL_MAX / 2]; /* a thread-pool step's failure, "" on success */
	bool signal_existed;
	bool postmaster_gone; /* postmaster.pid names no live process (see postmaster_gone) */
};

/*
 * fence_new sets up an action of mode; *out is its state, to be completed
 * before fence_begin starts it, or NULL when the action already ends (out
 * of memory, a setting missing): then it is returned as it is.
 */
struct fo_action *fence_new(uv_loop_t *loop, const struct efm_config *cfg, enum fence_mode mode,
                            const char *what, uint64_t timeout_ms, fo_done_cb cb, void *arg,
                            struct fence **out);
void fence_begin(struct fo_action *a);

/* fence_run_as_owner runs prog (a PostgreSQL program) as the data directory's owner. */
void fence_run_as_owner(struct fo_action *a, const char *what, const char *prog,
                        const char *const *args, size_t n, const char *const *env, size_t n_env,
                        fo_run_cb done);
/* fence_write_signal (thread pool) creates standby.signal with the owner and 0600. */
void fence_write_signal(struct fo_action *a);
/* fence_rewind_step (fo_rewind.c) runs pg_rewind on the stopped server. */
void fence_rewind_step(struct fo_action *a);

#endif
