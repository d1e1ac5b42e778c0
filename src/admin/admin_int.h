/*
 * admin_int.h - what the admin server's files share: the server and
 * connection structs, and the admission rules of admin_guard.c.  Not for
 * use outside src/admin.
 */
#ifndef EFM_ADMIN_INT_H
#define EFM_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"

#define ADMIN_REQUEST_MAX   (64 * 1024) /* bytes of one request line */
#define ADMIN_IDLE_MS       5000        /* a client must send its request within this */
#define ADMIN_IDLE_BUSY_MS  1000        /* ... or within this once the cap is reached */
#define ADMIN_EFM_GROUP     "efm"
#define ADMIN_CONNS_MAX     64 /* clients at once, however many descriptors there are */
#define ADMIN_CONNS_MIN     4
#define ADMIN_FD_RESERVE    64    /* descriptors left to the monitor, peers, Raft, logs */
#define ADMIN_FDS_PER_CONN  4     /* a client's socket and the database probes it may start */
#define ADMIN_LOG_WINDOW_MS 10000 /* a repeated log line is written once per window */
#define ADMIN_ACCEPT_BURST  32    /* clients taken per loop turn; then the loop does the rest */

/*
 * A log line that a client can make the server write at will: written once
 * per window, the others counted and their number added to the next one.
 */
struct admin_log_limit {
	uint64_t window_ms; /* uv_now() when the current window opened, 0 none yet */
	unsigned dropped;   /* occurrences not logged since the last line */
};

struct admin_conn;

struct admin_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char *path;
	const struct admin_command *table;
	size_t n_commands;
	void *agent;
	struct admin_conn *conns; /* every connection not yet freed, doubly linked */
	unsigned cap;             /* clients at once */
	unsigned cap_others;      /* of them, clients neither root nor the agent's user */
	unsigned n_open;          /* clients counted against cap (socket not yet closed) */
	unsigned n_others;        /* of them, neither root nor the agent's user */
	struct admin_log_limit idle_log, busy_log, accept_log, invalid_log;
	uv_timer_t pause;      /* resumes accepting after a burst */
	uint64_t turn_ms;      /* uv_now() of the loop turn turn_accepts counts in */
	unsigned turn_accepts; /* clients taken in that turn */
	int open_handles;      /* listener and pause timer not yet closed */
};

struct admin_conn {
	struct admin_request req; /* what the handler sees; valid until admin_reply */
	struct admin_server *srv; /* NULL once the server has been closed */
	struct admin_conn *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer; /* closes a client that never sends its request */
	uv_write_t write_req;
	int open_handles;    /* handles whose close callback has not run yet */
	bool closing;        /* admin_conn_close was called */
	bool counted;        /* holds a place in srv->n_open until its socket closes */
	bool privileged;     /* root or the agent's user: may use the reserved places */
	uint64_t opened_ms;  /* uv_now() at accept */
	unsigned idle_ms;    /* the bound on sending the request now in force */
	bool got_request;    /* the request line is complete; later input is ignored */
	bool awaiting_reply; /* the request is out to a handler (or an error reply) */
	char *in;            /* request bytes received so far */
	size_t in_len;
	cJSON *body;     /* the parsed request; req points into it */
	char *out;       /* the reply line being written */
	char rbuf[4096]; /* libuv reads land here */
	char who[64];    /* "uid 1000 pid 4242" for log lines */
};

/* admin_conn_close closes both handles of c (once); the request may still be out to a handler. */
void admin_conn_close(struct admin_conn *c);

/*
 * admin_log_limit tells whether to write an occurrence now; more gets
 * " (and N more like it in the last S s)" or "".
 */
bool admin_log_limit(struct admin_log_limit *l, uint64_t now, char *more, size_t len);

/* admin_guard_cap is how many clients fit in RLIMIT_NOFILE next to ADMIN_FD_RESERVE. */
unsigned admin_guard_cap(void);
/*
 * admin_guard_admit gives c a place, or answers it "busy" and closes it
 * (false).  A refusal also costs silent clients their places.
 */
bool admin_guard_admit(struct admin_server *s, struct admin_conn *c);
/* admin_guard_release frees c's place; its socket is being closed. */
void admin_guard_release(struct admin_conn *c);
/* admin_guard_watch_idle bounds how long c may stay silent (ADMIN_IDLE_MS). */
void admin_guard_watch_idle(struct admin_conn *c);

#endif
