/*
 * fo_follow.c - re-point the local standby at a new master (fo_local.h).
 *
 * Steps, on one connection, each bounded by what is left of the action's time:
 *   info      pg_is_in_recovery() and the current primary_conninfo
 *   receiver  pg_stat_wal_receiver: already streaming from host:port -> ok
 *   alter     ALTER SYSTEM SET primary_conninfo (host and port replaced)
 *   reload    pg_reload_conf(): PostgreSQL 13+ restarts its WAL receiver
 *   wait      pg_stat_wal_receiver every FOLLOW_POLL_MS until it streams
 *             from host:port, or the time is up
 * The connection string holds the replication password: it is never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fo_int.h"
#include "log.h"

#define FOLLOW_POLL_MS 200
/* The first release that applies primary_conninfo on reload. */
#define PG_RELOADS_CONNINFO 130000
#define CONNINFO_MAX        4096

static const char receiver_sql[] =
    "SELECT status, sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver";

struct follow {
	char host[EFM_HOST_MAX];
	int port;
	bool same;                    /* primary_conninfo names host:port already */
	bool changed;                 /* we wrote primary_conninfo */
	int version;                  /* server_version_num */
	char last[EFM_HOST_MAX + 64]; /* the receiver's last state, for a failure's detail */
	char conninfo[CONNINFO_MAX];
	char sql[2 * CONNINFO_MAX + 64];
	char template[CONNINFO_MAX]; /* used when the local primary_conninfo is empty */
	bool read_only;              /* fo_read_conninfo_db: only read it */
};

static void poll_later(struct fo_action *a);

/* receiver_state reads pg_stat_wal_receiver; true when it streams from f->host:f->port. */
static bool receiver_state(struct follow *f, const PGresult *res)
{
	if (PQntuples(res) < 1 || PQnfields(res) < 3) {
		snprintf(f->last, sizeof(f->last), "no WAL receiver running");
		return false;
	}
	const char *status = PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0);
	const char *host = PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1);
	const char *port = PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2);
	snprintf(f->last, sizeof(f->last), "WAL receiver %s from %s:%s", status,
	         host[0] ? host : "?", port[0] ? port : "?");
	return strcmp(status, "streaming") == 0 && strcasecmp(host, f->host) == 0 &&
	       atoi(port) == f->port;
}

static void on_poll(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                    const char *msg)
{
	struct fo_action *a = arg;
	struct follow *f = a->kind;
	if (err == DB_ERR_TIMEOUT && fo__expired(a)) {
		/* The time ran out while asking: what matters is that it never streamed. */
		fo__finish(a, false, "not streaming from %s:%d after %.1f s: %s", f->host, f->port,
		           (double)(uv_now(a->loop) - a->start_ms) / 1000.0, f->last);
		return;
	}
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "cannot read pg_stat_wal_receiver: %s (%s)", msg, f->last);
		return;
	}
	if (receiver_state(f, res)) {
		fo__finish(a, true, "streaming from %s:%d after %.2f s (%s)", f->host, f->port,
		           (double)(uv_now(a->loop) - a->start_ms) / 1000.0,
		           f->changed ? "primary_conninfo changed, configuration reloaded"
		                      : "primary_conninfo already pointed there");
		return;
	}
	if (fo__expired(a)) {
		fo__finish(a, false, "not streaming from %s:%d after %.1f s: %s", f->host, f->port,
		           (double)(uv_now(a->loop) - a->start_ms) / 1000.0, f->last);
		return;
	}
	poll_later(a);
}

static void on_tick(uv_timer_t *t)
{
	struct fo_action *a = t->data;
	fo__db_query(a, receiver_sql, on_poll);
}

static void poll_later(struct fo_action *a)
{
	struct follow *f = a->kind;
	fo__step(a, "waiting for the WAL receiver to stream from %s:%d", f->host, f->port);
	uint64_t left = fo__remaining_ms(a);
	uv_timer_start(&a->tick, on_tick, left < FOLLOW_POLL_MS ? left : FOLLOW_POLL_MS, 0);
}

static void on_reload(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                      const char *msg)
{
	struct fo_action *a = arg;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "primary_conninfo changed but pg_reload_conf() failed: %s",
		           msg);
		return;
	}
	poll_later(a);
}

static void on_alter(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                     const char *msg)
{
	struct fo_action *a = arg;
	struct follow *f = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "ALTER SYSTEM SET primary_conninfo failed: %s", msg);
		return;
	}
	f->changed = true;
	log_info("%s: primary_conninfo now points at host %s port %d (other fields kept)", a->label,
	         f->host, f->port);
	if (f->version < PG_RELOADS_CONNINFO) {
		fo__finish(a, false,
		           "primary_conninfo set to %s:%d, but PostgreSQL %d applies it only at a "
		           "restart: restart required",
		           f->host, f->port, f->version / 10000);
		return;
	}
	fo__step(a, "reloading the configuration");
	fo__db_query(a, "SELECT pg_catalog.pg_reload_conf()", on_reload);
}

static void on_receiver(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                        const char *msg)
{
	struct fo_action *a = arg;
	struct follow *f = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "cannot read pg_stat_wal_receiver: %s", msg);
		return;
	}
	if (receiver_state(f, res)) {
		fo__finish(a, true, "already streaming from %s:%d", f->host, f->port);
		return;
	}
	log_info("%s: %s; following %s:%d", a->label, f->last, f->host, f->port);
	if (f->same) {
		if (f->version < PG_RELOADS_CONNINFO) {
			fo__finish(a, false,
			           "primary_conninfo already names %s:%d but the server does not "
			           "stream from it (%s): restart required",
			           f->host, f->port, f->last);
			return;
		}
		poll_later(a);
		return;
	}
	fo__step(a, "setting primary_conninfo");
	fo__db_query(a, f->sql, on_alter);
}

static void on_checkpoint(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                          const char *msg)
{
	struct fo_action *a = arg;
	if (err != DB_ERR_NONE)
		fo__finish(a, true, "primary_conninfo read; " FO_CHECKPOINT_FAILED ": %s", msg);
	else
		fo__finish(a, true, "primary_conninfo read; " FO_CHECKPOINT_DONE);
}

static void on_info(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                    const char *msg)
{
	struct fo_action *a = arg;
	struct follow *f = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "cannot read primary_conninfo: %s", msg);
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 2) {
		fo__finish(a, false, "cannot read primary_conninfo: unexpected result");
		return;
	}
	const char *cur = PQgetvalue(res, 0, 1);
	if (f->read_only) {
		/* the action's output, never its detail: the text may hold a password */
		free(a->output);
		a->output = strdup(cur);
		if (a->output == NULL) {
			fo__finish(a, false, "out of memory");
		} else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
			fo__finish(a, true, "primary_conninfo read (%zu bytes)", strlen(cur));
		} else {
			/*
			 * A master just promoted records its new timeline in pg_control
			 * only at its next checkpoint: until then pg_rewind, reading it,
			 * takes a diverged old master for one on the same timeline.
			 */
			fo__step(a, "CHECKPOINT, so that pg_control names the current timeline");
			fo__db_query(a, "CHECKPOINT", on_checkpoint);
		}
		return;
	}
	if (cur[0] == '\0' && f->template[0] != '\0') {
		log_info("%s: no primary_conninfo here: taking the other standbys' fields",
		         a->label);
		cur = f->template;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		fo__finish(a, false,
		           "not a standby (pg_is_in_recovery() is false): cannot follow %s:%d",
		           f->host, f->port);
		return;
	}
	char why[256];
	if (!fo_conninfo_repoint(cur, f->host, f->port, f->conninfo, sizeof(f->conninfo), &f->same,
	                         why, sizeof(why))) {
		fo__finish(a, false, "%s", why);
		return;
	}
	static const char head[] = "ALTER SYSTEM SET primary_conninfo = ";
	memcpy(f->sql, head, sizeof(head));
	if (!fo_sql_literal(f->conninfo, f->sql + sizeof(head) - 1,
	                    sizeof(f->sql) - (sizeof(head) - 1))) {
		fo__finish(a, false, "primary_conninfo is too long to set");
		return;
	}
	fo__step(a, "reading pg_stat_wal_receiver");
	fo__db_query(a, receiver_sql, on_receiver);
}

static void on_open(struct pgconn *c, void *arg, enum db_conn_error err, const char *msg)
{
	struct fo_action *a = arg;
	struct follow *f = a->kind;
	if (err != DB_ERR_NONE) {
		fo__finish(a, false, "cannot connect to the database at %s:%d: %s", a->db_host,
		           a->db_port, msg);
		return;
	}
	f->version = pgconn_server_version(c);
	fo__step(a, "reading primary_conninfo");
	fo__db_query(a,
	             "SELECT pg_catalog.pg_is_in_recovery(),"
	             " pg_catalog.current_setting('primary_conninfo')",
	             on_info);
}

struct fo_action *fo_read_conninfo_db(uv_loop_t *loop, const struct efm_config *cfg,
                                      const char *password, uint64_t timeout_ms, fo_done_cb cb,
                                      void *arg)
{
	char label[EFM_HOST_MAX + 48];
	snprintf(label, sizeof(label), "read primary_conninfo of db %s:%d", cfg->db_host,
	         cfg->db_port);
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	struct follow *f = calloc(1, sizeof(*f));
	a->kind = f;
	if (f == NULL) {
		fo__finish_later(a, false, "out of memory");
		return a;
	}
	f->read_only = true;
	fo__db_params(a, cfg, password);
	fo__db_open(a, on_open);
	return a;
}

struct fo_action *fo_follow_db_from(uv_loop_t *loop, const struct efm_config *cfg,
                                    const char *password, const char *host, int port,
                                    const char *template, uint64_t timeout_ms, fo_done_cb cb,
                                    void *arg)
{
	struct fo_action *a = fo_follow_db(loop, cfg, password, host, port, timeout_ms, cb, arg);
	struct follow *f = a != NULL ? a->kind : NULL;
	if (f != NULL && template != NULL)
		snprintf(f->template, sizeof(f->template), "%s", template);
	return a;
}

struct fo_action *fo_follow_db(uv_loop_t *loop, const struct efm_config *cfg, const char *password,
                               const char *host, int port, uint64_t timeout_ms, fo_done_cb cb,
                               void *arg)
{
	char label[2 * EFM_HOST_MAX + 48];
	snprintf(label, sizeof(label), "follow db %s:%d -> %s:%d", cfg->db_host, cfg->db_port, host,
	         port);
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	struct follow *f = calloc(1, sizeof(*f));
	a->kind = f;
	if (f == NULL) {
		fo__finish_later(a, false, "out of memory");
		return a;
	}
	if (host[0] == '\0' || strlen(host) >= sizeof(f->host) || port <= 0 || port > 65535) {
		fo__finish_later(a, false, "cannot follow \"%.80s\" port %d: not a host and port",
		                 host, port);
		return a;
	}
	snprintf(f->host, sizeof(f->host), "%s", host);
	f->port = port;
	snprintf(f->last, sizeof(f->last), "WAL receiver not read yet");
	fo__db_params(a, cfg, password);
	log_info("%s: re-pointing the local standby (within %.1f s)", a->label,
	         (double)timeout_ms / 1000.0);
	fo__db_open(a, on_open);
	return a;
}
