/*
 * fo_promote.c - promote the local standby (fo_local.h).
 *
 * Steps, each on the one connection and bounded by what is left of the
 * action's time:
 *   check    sql_check_query: out of recovery already -> ok "already a master"
 *   resume   pg_wal_replay_resume(), only when replay is paused
 *   promote  pg_promote(true, <seconds left>)
 *   confirm  pg_is_in_recovery() must be false
 * A pg_promote() that errors (another promotion got there first: "recovery is
 * not in progress") is judged by the confirm step too, so a re-run or a race
 * ends ok when the server is a master.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fo_int.h"
#include "log.h"
#include "sql.h"

struct promote {
	bool resumed;                          /* replay was paused and we resumed it */
	uint64_t promote_ms;                   /* uv_now() when pg_promote() was sent */
	int wait_s;                            /* the wait_seconds given to pg_promote() */
	char promote_err[FO_DETAIL_MAX - 128]; /* pg_promote()'s error, "" when it answered */
};

static void on_confirm(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                       const char *msg)
{
	struct fo_action *a = arg;
	struct promote *p = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "pg_is_in_recovery() after the promotion failed: %s", msg);
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 1) {
		fo__finish(a, false, "pg_is_in_recovery() after the promotion: unexpected result");
		return;
	}
	bool in_recovery = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	double secs = (double)(uv_now(a->loop) - p->promote_ms) / 1000.0;
	const char *resumed = p->resumed ? " (paused replay resumed first)" : "";
	if (p->promote_err[0] != '\0') {
		if (in_recovery)
			fo__finish(a, false, "pg_promote() failed: %s", p->promote_err);
		else
			fo__finish(a, true, "already a master (pg_promote(): %s)", p->promote_err);
		return;
	}
	if (in_recovery)
		fo__finish(a, false,
		           "pg_promote() returned true but pg_is_in_recovery() is still true");
	else
		fo__finish(a, true, "pg_promote() returned true after %.2f s%s", secs, resumed);
}

static void confirm(struct fo_action *a)
{
	fo__step(a, "checking pg_is_in_recovery() after pg_promote()");
	fo__db_query(a, "SELECT pg_catalog.pg_is_in_recovery()", on_confirm);
}

static void on_reopen(struct pgconn *c, void *arg, enum db_conn_error err, const char *msg)
{
	struct fo_action *a = arg;
	struct promote *p = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "pg_promote() failed: %s", p->promote_err);
		return;
	}
	confirm(a);
}

static void on_promote(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                       const char *msg)
{
	struct fo_action *a = arg;
	struct promote *p = a->kind;
	if (err != DB_ERR_NONE) {
		if (err == DB_ERR_TIMEOUT || fo__expired(a)) {
			fo__finish(a, false, "pg_promote() failed: %s", msg);
			return;
		}
		/* A failed query ends its connection: ask on a new one whether we are master. */
		snprintf(p->promote_err, sizeof(p->promote_err), "%s", msg);
		fo__db_reopen(a, on_reopen);
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 1) {
		fo__finish(a, false, "pg_promote(): unexpected result");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		fo__finish(a, false, "pg_promote() returned false: not promoted within %d s",
		           p->wait_s);
		return;
	}
	confirm(a);
}

static void promote(struct fo_action *a)
{
	struct promote *p = a->kind;
	/* Leave pg_promote() a second less than the action, so it answers before the bound. */
	uint64_t left = fo__remaining_ms(a);
	p->wait_s = left > 2000 ? (int)((left - 1000) / 1000) : 1;
	char sql[64];
	snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_promote(true, %d)", p->wait_s);
	fo__step(a, "waiting up to %d s for pg_promote()", p->wait_s);
	p->promote_ms = uv_now(a->loop);
	fo__db_query(a, sql, on_promote);
}

static void on_resume(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                      const char *msg)
{
	struct fo_action *a = arg;
	struct promote *p = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "replay is paused and pg_wal_replay_resume() failed: %s", msg);
		return;
	}
	p->resumed = true;
	log_info("%s: paused WAL replay resumed", a->label);
	promote(a);
}

static void on_check(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                     const char *msg)
{
	struct fo_action *a = arg;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "cannot check the database's role: %s", msg);
		return;
	}
	struct db_sample s = {0};
	char why[256];
	if (!sql_parse_check(res, &s, why, sizeof(why))) {
		fo__finish(a, false, "cannot check the database's role: %s", why);
		return;
	}
	if (s.role == DB_ROLE_MASTER) {
		fo__finish(a, true, "already a master");
		return;
	}
	log_info("%s: standby received %s replayed %s%s; promoting", a->label,
	         s.receive_lsn[0] ? s.receive_lsn : "-", s.replay_lsn[0] ? s.replay_lsn : "-",
	         s.replay_paused ? " (replay paused)" : "");
	if (s.replay_paused) {
		fo__step(a, "resuming paused WAL replay");
		fo__db_query(a, "SELECT pg_catalog.pg_wal_replay_resume()", on_resume);
		return;
	}
	promote(a);
}

static void on_open(struct pgconn *c, void *arg, enum db_conn_error err, const char *msg)
{
	struct fo_action *a = arg;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "cannot connect to the database at %s:%d: %s", a->db_host,
		           a->db_port, msg);
		return;
	}
	fo__step(a, "checking whether the database is in recovery");
	fo__db_query(a, sql_check_query, on_check);
}

struct fo_action *fo_promote_db(uv_loop_t *loop, const struct efm_config *cfg, const char *password,
                                uint64_t timeout_ms, fo_done_cb cb, void *arg)
{
	char label[EFM_HOST_MAX + 32];
	snprintf(label, sizeof(label), "promote db %s:%d", cfg->db_host, cfg->db_port);
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	a->kind = calloc(1, sizeof(struct promote));
	if (a->kind == NULL) {
		fo__finish_later(a, false, "out of memory");
		return a;
	}
	fo__db_params(a, cfg, password);
	log_info("%s: promoting the local standby (within %.1f s)", a->label,
	         (double)timeout_ms / 1000.0);
	fo__db_open(a, on_open);
	return a;
}
