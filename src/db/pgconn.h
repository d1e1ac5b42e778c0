/*
 * pgconn.h - one asynchronous libpq connection driven by a uv loop.
 *
 * A pgconn is one connection's lifetime: pgconn_open starts connecting
 * (resolving the host with uv_getaddrinfo first when it is a name), then any
 * number of pgconn_query calls run one after another on it, then
 * pgconn_close.  Every step is bounded by a uv timer; when it expires the
 * libpq connection is abandoned (PQfinish) and the callback reports
 * DB_ERR_TIMEOUT.  Nothing here ever blocks the loop.
 *
 * Callbacks run on the loop, at most once per step, never from inside the
 * call that started the step.  A callback may call pgconn_query or
 * pgconn_close on its connection.  After a failure the connection is dead:
 * only pgconn_close is allowed.
 */
#ifndef EFM_PGCONN_H
#define EFM_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "dbmon.h"

enum pgconn_state {
	PGCONN_RESOLVING,  /* waiting for uv_getaddrinfo */
	PGCONN_CONNECTING, /* PQconnectPoll in progress */
	PGCONN_READY,      /* connected, no query running */
	PGCONN_QUERYING,   /* a query was sent, its results are not all in */
	PGCONN_FAILED,     /* a step failed or timed out; PGconn finished */
	PGCONN_CLOSING,    /* pgconn_close was called; freed when its handles close */
};

struct pgconn_params {
	const char *host; /* name, numeric address, or a Unix socket directory ("/...") */
	int port;
	const char *dbname;
	const char *user;
	const char *password; /* "" or NULL: not passed, so ~/.pgpass applies */
	bool ssl_require;     /* sslmode=require, else prefer */
};

struct pgconn;

/* err is DB_ERR_NONE on success; msg is a one-line description on failure, "" otherwise. */
typedef void (*pgconn_open_cb)(struct pgconn *c, void *arg, enum db_conn_error err,
                               const char *msg);
/*
 * res is the last result of the query on success (owned by pgconn, valid
 * only during the call), NULL on failure.  A query that fails on the server
 * reports DB_ERR_OTHER with the server's message.
 */
typedef void (*pgconn_query_cb)(struct pgconn *c, void *arg, const PGresult *res,
                                enum db_conn_error err, const char *msg);

/*
 * pgconn_open starts connecting with p (copied) within timeout_ms.  label
 * names the connection at the front of log lines ("db 10.0.0.1:5432").
 * Returns NULL only when memory or the uv timer cannot be had.
 */
struct pgconn *pgconn_open(uv_loop_t *loop, const char *label, const struct pgconn_params *p,
                           uint64_t timeout_ms, pgconn_open_cb cb, void *arg);
/* pgconn_query sends sql (one statement); returns 0, or -EBUSY/-ENOTCONN when not READY. */
int pgconn_query(struct pgconn *c, const char *sql, uint64_t timeout_ms, pgconn_query_cb cb,
                 void *arg) __attribute__((warn_unused_result));
/* The idle connection watched by pgconn_watch_idle was lost; c is FAILED now. */
typedef void (*pgconn_lost_cb)(struct pgconn *c, void *arg, const char *msg);
/*
 * pgconn_watch_idle watches a READY connection between queries: when the
 * server closes it (it went away), lost runs once, from the loop.  The next
 * pgconn_query ends the watch.  0, or -ENOTCONN when c is not READY, or a
 * uv error.
 */
int pgconn_watch_idle(struct pgconn *c, pgconn_lost_cb lost, void *arg)
    __attribute__((warn_unused_result));
/* pgconn_close abandons whatever runs (its callback is not called) and frees c once closed. */
void pgconn_close(struct pgconn *c);

enum pgconn_state pgconn_state(const struct pgconn *c);
const char *pgconn_state_name(enum pgconn_state s);
/* PQserverVersion() of a connection that reached READY, else 0. */
int pgconn_server_version(const struct pgconn *c);

/*
 * pgconn_classify maps a libpq error message to a db_conn_error, by the
 * SQLSTATE a verbose message carries ("FATAL:  53300: ...") and otherwise
 * by its words.
 */
enum db_conn_error pgconn_classify(const char *msg);
/* pgconn_classify_sqlstate is the same for an error whose SQLSTATE is known (NULL or "": none). */
enum db_conn_error pgconn_classify_sqlstate(const char *sqlstate, const char *msg);
/* pgconn_classify_uv sorts a libuv error of the agent's own (UV_EMFILE: DB_ERR_AGENT_RESOURCES). */
enum db_conn_error pgconn_classify_uv(int rc);
const char *pgconn_error_name(enum db_conn_error e);

/* pgconn_one_line copies msg to out with every run of whitespace made one space, trimmed. */
void pgconn_one_line(const char *msg, char *out, size_t outlen);

#endif
