/*
 * fo_int.h - what the local failover actions share (fo_action.c): the action
 * object, its deadline, its database connection, the program it runs and its
 * thread-pool work.  Private to src/failover.
 *
 * An action owns two timers (the deadline, and a tick for polling), at most
 * one pgconn, at most one script run and at most one uv_work_t.  It ends with
 * fo__finish (from a loop callback) or fo__finish_later (from a start
 * function); either closes the timers, drops the connection and stops the
 * program.  Its memory is freed once both timers are closed and neither the
 * program nor the work is still out.
 */
#ifndef EFM_FO_INT_H
#define EFM_FO_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "fo_local.h"
#include "pgconn.h"
#include "script.h"

/* Margin of the deadline timer past timeout_ms: steps time out on their own first. */
#define FO_BACKSTOP_MS (SCRIPT_KILL_GRACE_MS + 1000)

/* Where an action is in its life; only fo_action.c moves it. */
enum fo_phase {
	FO_RUNNING, /* steps run */
	FO_ENDING,  /* fo__finish_later decided the outcome; cb on the next iteration */
	FO_DONE,    /* cb called (or cancelled); freed once everything is back */
};

struct fo_action;
typedef void (*fo_run_cb)(struct fo_action *a, const struct script_result *r);
typedef void (*fo_work_fn)(struct fo_action *a); /* runs on the thread pool */
typedef void (*fo_work_done)(struct fo_action *a);

struct fo_action {
	uv_loop_t *loop;
	char label[EFM_HOST_MAX + 48]; /* "promote db 10.0.0.1:5432": front of log lines */
	fo_done_cb cb;
	void *arg;

	uv_timer_t deadline; /* FO_BACKSTOP_MS past end_ms; 0 ms to deliver fo__finish_later */
	uv_timer_t tick;     /* polling interval of a step that waits */
	int open_handles;    /* timers not yet closed */
	enum fo_phase phase;
	bool cancelled;
	uint64_t start_ms; /* uv_now() at start */
	uint64_t end_ms;   /* uv_now() by which the action must be done */
	char step[160];    /* what runs now, for a timeout's detail */

	/* later: the outcome fo__finish_later delivers */
	bool later_ok;
	char later_detail[FO_DETAIL_MAX];

	/* the database connection (promote, follow) */
	struct pgconn *conn;
	char db_host[EFM_HOST_MAX];
	char db_name[128];
	char db_user[128];
	char db_password[256];
	int db_port;
	bool db_ssl;

	/* the program running (vip, ping, script, fence) */
	struct script_run *run;
	fo_run_cb run_done;
	char *output; /* copy of the last program's output, "" before any */

	/* thread-pool work (fence) */
	uv_work_t work;
	bool work_pending;
	fo_work_fn work_fn;
	fo_work_done work_done;

	void *kind; /* the action's own state (owned, freed with it) */
};

/* fo__new allocates an action bounded by timeout_ms; NULL when memory runs out. */
struct fo_action *fo__new(uv_loop_t *loop, const char *label, uint64_t timeout_ms, fo_done_cb cb,
                          void *arg);
/* fo__step records what runs now (for logs and a timeout's detail). */
void fo__step(struct fo_action *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* fo__finish ends a from a loop callback: logs, calls cb (unless cancelled), releases. */
void fo__finish(struct fo_action *a, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* fo__finish_later ends a on the next loop iteration (for a start function). */
void fo__finish_later(struct fo_action *a, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* fo__remaining_ms is what is left of the action's time, at least 1 ms. */
uint64_t fo__remaining_ms(const struct fo_action *a);
/* fo__expired: the action's time is up. */
bool fo__expired(const struct fo_action *a);

/* fo__db_params copies the local database's connection parameters from cfg. */
void fo__db_params(struct fo_action *a, const struct efm_config *cfg, const char *password);
/* fo__db_open connects to the local database; on failure to even start, finishes later. */
void fo__db_open(struct fo_action *a, pgconn_open_cb cb);
/* fo__db_reopen drops the (failed) connection and connects again. */
void fo__db_reopen(struct fo_action *a, pgconn_open_cb cb);
/* fo__db_query sends sql bounded by the time left; on failure to send, finishes a. */
void fo__db_query(struct fo_action *a, const char *sql, pgconn_query_cb cb);

/*
 * fo__run starts a program (argv[0] = path) bounded by timeout_ms; done is
 * called with its result unless the action ended meanwhile.  When memory
 * runs out the action fails on the next loop iteration.
 */
void fo__run(struct fo_action *a, const char *what, const char *path, const char *const *args,
             size_t n_args, const char *const *env, size_t n_env, uint64_t timeout_ms,
             fo_run_cb done);
/* fo__first_line copies the first non-empty line of text (trimmed) into out. */
void fo__first_line(const char *text, char *out, size_t outlen);

/* fo__work runs fn on the thread pool, then done on the loop unless the action ended. */
void fo__work(struct fo_action *a, fo_work_fn fn, fo_work_done done);

#endif
