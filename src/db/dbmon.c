/*
 * dbmon.c - the local database monitor and one-shot database probes.
 *
 * Two timers drive the monitor: "period" ticks every local.period seconds
 * and starts a check unless one is running; "deadline" is re-armed to
 * local.timeout seconds after every successful check (and at start), and
 * when it fires the monitor abandons whatever check runs and makes the
 * final check on a fresh connection, bounded by local.timeout.final.
 *
 * Only evidence that the database is not serving declares it failed: no
 * answer, a refused or lost connection, a shutdown.  A server that answers
 * "too many clients" is alive and serving others, and an agent that cannot
 * open a socket has learnt nothing about the database; in both cases the
 * final check cannot decide, and the monitor says so and keeps watching.
 */
#include "dbmon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "sql.h"

enum mon_phase {
	MON_NEW,      /* dbmon_start not called yet */
	MON_STARTING, /* the first check runs */
	MON_WATCHING, /* ordinary checks every local.period */
	MON_FINAL,    /* local.timeout passed without success: the final check runs */
	MON_FAILED,   /* declared failed; checks go on only to keep the status current */
	MON_STOPPED,  /* the first check failed: nothing runs */
	MON_CLOSING,
};

static const char *const phase_names[] = {
    [MON_NEW] = "new",           [MON_STARTING] = "starting", [MON_WATCHING] = "watching",
    [MON_FINAL] = "final check", [MON_FAILED] = "failed",     [MON_STOPPED] = "stopped",
    [MON_CLOSING] = "closing",
};

struct dbmon {
	uv_loop_t *loop;
	const struct efm_config *cfg;
	char password[256];
	dbmon_cb cb;
	void *arg;
	char label[EFM_HOST_MAX + 32]; /* "db HOST:PORT" */

	enum mon_phase phase;
	uv_timer_t period;   /* repeats every local.period */
	uv_timer_t deadline; /* fires local.timeout after the last success */
	int open_handles;    /* timers not yet closed; m is freed at 0 */

	struct pgconn *conn;   /* connection of the running or next check, NULL when none */
	bool in_flight;        /* a check runs on conn */
	int conn_uses;         /* checks completed on conn */
	uint64_t check_end_ms; /* uv_now() by which the running check must be done */
	int attempts;          /* checks begun since the last success */
	bool again;            /* dbmon_check_now during a check: another right after it */

	struct dbmon_status st;
	bool warned;    /* a failure was logged at warning since the last success */
	bool undecided; /* a final check could not decide since the last success */
	dbmon_alert_cb alert;
	void *alert_arg;

	void (*done)(void *arg);
	void *done_arg;
};

static void check_begin(struct dbmon *m, uint64_t bound_ms);
static void watch_kept(struct dbmon *m);

/* set_phase is the only place that moves m->phase. */
static void set_phase(struct dbmon *m, enum mon_phase to)
{
	if (m->phase == to)
		return;
	log_info("%s: monitor %s -> %s", m->label, phase_names[m->phase], phase_names[to]);
	m->phase = to;
}

/* emit reports ev; callers must check m->phase == MON_CLOSING afterwards. */
static void emit(struct dbmon *m, enum dbmon_event ev)
{
	m->cb(m->arg, ev, &m->st);
}

/* secs_ms converts a configured number of seconds to ms, never less than 1 s. */
static uint64_t secs_ms(int s)
{
	return s > 0 ? (uint64_t)s * 1000 : 1000;
}

/* drop_conn abandons the connection (and any check running on it). */
static void drop_conn(struct dbmon *m)
{
	pgconn_close(m->conn);
	m->conn = NULL;
	m->in_flight = false;
	m->conn_uses = 0;
}

/* after_check returns the connection or keeps it for db.reuse.connection.count checks. */
static void after_check(struct dbmon *m)
{
	m->in_flight = false;
	m->conn_uses++;
	if (m->conn_uses >= m->cfg->db_reuse_connection_count)
		drop_conn(m);
}

static void arm_deadline(struct dbmon *m);
/* on_period starts the periodic check unless one runs or the monitor waits on its final check. */
static void on_period(uv_timer_t *t);

/* db_error_verdict: only a server that answered, or an agent that could not ask, is not evidence.
 */
enum db_verdict db_error_verdict(enum db_conn_error e)
{
	switch (e) {
	case DB_ERR_TOO_MANY_CONNECTIONS:
	case DB_ERR_SERVER_OUT_OF_MEMORY:
	case DB_ERR_STARTING_UP:
		return DB_VERDICT_BUSY;
	case DB_ERR_AGENT_RESOURCES:
		return DB_VERDICT_AGENT;
	default:
		return DB_VERDICT_DOWN;
	}
}

const char *db_verdict_text(enum db_verdict v)
{
	switch (v) {
	case DB_VERDICT_BUSY:
		return "the server is alive but cannot be checked";
	case DB_VERDICT_AGENT:
		return "this agent's own trouble, not the database's";
	case DB_VERDICT_DOWN:
		break;
	}
	return "evidence of failure";
}

/* record_ok makes s the latest successful check; true when the role differs from before. */
static bool record_ok(struct dbmon *m, const struct db_sample *s)
{
	enum db_role prev = m->st.last.role; /* DB_ROLE_UNKNOWN until the first success */
	m->st.last_ok = true;
	m->st.unverified = false;
	m->st.last = *s;
	m->st.last_ok_ms = uv_now(m->loop);
	m->warned = false;
	m->undecided = false;
	m->attempts = 0;
	return prev != DB_ROLE_UNKNOWN && prev != s->role;
}

/* check_ok records a successful check and moves the phase on. */
static void check_ok(struct dbmon *m, const struct db_sample *s)
{
	enum db_role prev = m->st.last.role;
	bool role_changed = record_ok(m, s);
	m->st.checks++;
	if (s->role == DB_ROLE_MASTER)
		log_fine("%s: check ok: master at %s", m->label, s->current_lsn);
	else
		log_fine("%s: check ok: standby received %s replayed %s%s", m->label,
		         s->receive_lsn[0] ? s->receive_lsn : "-",
		         s->replay_lsn[0] ? s->replay_lsn : "-",
		         s->replay_paused ? " (replay paused)" : "");
	if (role_changed)
		log_info("%s: role changed from %s to %s", m->label,
		         prev == DB_ROLE_MASTER ? "master" : "standby",
		         s->role == DB_ROLE_MASTER ? "master" : "standby");

	switch (m->phase) {
	case MON_STARTING:
		m->st.started = true;
		set_phase(m, MON_WATCHING);
		arm_deadline(m);
		uint64_t p = secs_ms(m->cfg->local_period_s);
		uv_timer_start(&m->period, on_period, p, p);
		emit(m, DBMON_STARTED);
		return;
	case MON_FINAL:
		m->st.timing_out = false;
		set_phase(m, MON_WATCHING);
		arm_deadline(m);
		log_info("%s: database answered the final check", m->label);
		emit(m, DBMON_RECOVERED);
		if (m->phase == MON_CLOSING)
			return;
		break;
	case MON_WATCHING:
		arm_deadline(m);
		break;
	default:
		/* MON_FAILED: latched, the status is kept current but nothing is reported. */
		return;
	}
	if (role_changed)
		emit(m, DBMON_ROLE_CHANGED);
}

/*
 * final_undecided: the final check found a server that would not serve it,
 * or could not be made at all.  That is no evidence of a failure: say so
 * (once per episode, and raise the alert), then start a new local.timeout.
 */
static void final_undecided(struct dbmon *m, enum db_verdict v, enum db_conn_error err,
                            const char *msg)
{
	m->st.timing_out = false;
	m->st.unverified = true;
	set_phase(m, MON_WATCHING);
	arm_deadline(m);
	if (m->undecided) {
		log_fine("%s: final check undecided again (%s; %s): %s", m->label,
		         pgconn_error_name(err), db_verdict_text(v), msg);
		return;
	}
	m->undecided = true;
	if (v == DB_VERDICT_AGENT)
		log_severe("%s: final check could not be made (%s): %s; %s: not declared failed, "
		           "monitoring continues",
		           m->label, pgconn_error_name(err), msg, db_verdict_text(v));
	else
		log_warning("%s: final check: %s (%s): %s; not declared failed, monitoring "
		            "continues",
		            m->label, db_verdict_text(v), pgconn_error_name(err), msg);
	if (m->alert != NULL)
		m->alert(m->alert_arg, v, &m->st);
}

/* check_failed records a failed check (conn already dropped) and moves the phase on. */
static void check_failed(struct dbmon *m, enum db_conn_error err, const char *msg)
{
	enum db_verdict v = db_error_verdict(err);
	m->st.last_ok = false;
	m->st.conn_error = err;
	m->st.verdict = v;
	snprintf(m->st.error, sizeof(m->st.error), "%s", msg);

	switch (m->phase) {
	case MON_STARTING:
		log_severe("%s: cannot connect at start (%s): %s", m->label, pgconn_error_name(err),
		           msg);
		uv_timer_stop(&m->period);
		uv_timer_stop(&m->deadline);
		set_phase(m, MON_STOPPED);
		emit(m, DBMON_START_FAILED);
		return;
	case MON_FINAL:
		if (v != DB_VERDICT_DOWN) {
			final_undecided(m, v, err, msg);
			return;
		}
		log_severe("%s: final check failed, %s (%s): %s; database declared failed",
		           m->label, db_verdict_text(v), pgconn_error_name(err), msg);
		m->st.timing_out = false;
		m->st.unverified = false;
		m->st.failed = true;
		set_phase(m, MON_FAILED);
		emit(m, DBMON_FAILED);
		return;
	default:
		if (m->warned) {
			log_fine("%s: check failed (%s; %s): %s", m->label, pgconn_error_name(err),
			         db_verdict_text(v), msg);
		} else if (v == DB_VERDICT_AGENT) {
			log_severe("%s: check could not be made (%s): %s; %s", m->label,
			           pgconn_error_name(err), msg, db_verdict_text(v));
		} else {
			log_warning("%s: check failed (%s; %s): %s", m->label,
			            pgconn_error_name(err), db_verdict_text(v), msg);
		}
		m->warned = true;
		return;
	}
}

/* remaining_ms is what is left of the running check's bound, at least 1 ms. */
static uint64_t remaining_ms(struct dbmon *m)
{
	uint64_t now = uv_now(m->loop);
	return m->check_end_ms > now ? m->check_end_ms - now : 1;
}

/* on_query ends a check with the query's outcome. */
static void on_query(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                     const char *msg)
{
	struct dbmon *m = arg;
	if (err != DB_ERR_NONE) {
		drop_conn(m); /* a failed query drops the connection */
		check_failed(m, err, msg);
		return;
	}
	struct db_sample s = {.server_version = pgconn_server_version(c)};
	char why[256];
	if (!sql_parse_check(res, &s, why, sizeof(why))) {
		drop_conn(m);
		check_failed(m, DB_ERR_OTHER, why);
		return;
	}
	after_check(m);
	watch_kept(m);
	check_ok(m, &s);
	/* dbmon_check_now came while this check ran: its answer may predate the change */
	if (m->again && m->phase != MON_CLOSING) {
		m->again = false;
		on_period(&m->period);
	}
}

/*
 * on_conn_lost: the connection kept between checks closed under us.  A
 * crashed or stopping server does that at once, long before the next
 * local.period: check now, so the failure is seen (and reported to the
 * cluster) without waiting.
 */
static void on_conn_lost(struct pgconn *c, void *arg, const char *msg)
{
	struct dbmon *m = arg;
	(void)c;
	log_info("%s: the monitor's connection was closed by the server (%s): checking at once",
	         m->label, msg);
	drop_conn(m);
	if (m->phase == MON_WATCHING && !m->in_flight)
		check_begin(m, secs_ms(m->cfg->local_timeout_s));
}

/* watch_kept watches a connection kept for db.reuse.connection.count between checks. */
static void watch_kept(struct dbmon *m)
{
	if (m->conn != NULL && pgconn_watch_idle(m->conn, on_conn_lost, m) < 0)
		drop_conn(m); /* cannot watch it: the next check opens a fresh one */
}

/* send_check runs the check query on the connected m->conn. */
static void send_check(struct dbmon *m)
{
	int rc = pgconn_query(m->conn, sql_check_query, remaining_ms(m), on_query, m);
	if (rc < 0) {
		/* Only a bug gets here (the connection is READY); treat it as a failed check. */
		drop_conn(m);
		check_failed(m, DB_ERR_OTHER, "cannot send the check query");
	}
}

/* on_open sends the check query once connected, or ends the check. */
static void on_open(struct pgconn *c, void *arg, enum db_conn_error err, const char *msg)
{
	struct dbmon *m = arg;
	if (err != DB_ERR_NONE) {
		drop_conn(m);
		check_failed(m, err, msg);
		return;
	}
	m->st.connections++;
	log_finer("%s: connected (connection %llu)", m->label,
	          (unsigned long long)m->st.connections);
	send_check(m);
}

/* fill_params describes a connection to host:port with the configured database and user. */
static void fill_params(struct pgconn_params *p, const struct efm_config *cfg, const char *password,
                        const char *host, int port)
{
	p->host = host;
	p->port = port;
	p->dbname = cfg->db_database;
	p->user = cfg->db_user;
	p->password = password;
	p->ssl_require = cfg->jdbc_ssl;
}

/* check_begin starts one check bounded by bound_ms, reusing m->conn when there is one. */
static void check_begin(struct dbmon *m, uint64_t bound_ms)
{
	m->in_flight = true;
	m->attempts++;
	m->check_end_ms = uv_now(m->loop) + bound_ms;
	if (m->conn != NULL) {
		send_check(m);
		return;
	}
	struct pgconn_params p;
	fill_params(&p, m->cfg, m->password, m->cfg->db_host, m->cfg->db_port);
	m->conn = pgconn_open(m->loop, m->label, &p, bound_ms, on_open, m);
	if (m->conn == NULL) {
		m->in_flight = false;
		/* Out of memory: report it like any failed check, from the next tick. */
		m->st.last_ok = false;
		m->st.conn_error = DB_ERR_AGENT_RESOURCES;
		m->st.verdict = DB_VERDICT_AGENT;
		snprintf(m->st.error, sizeof(m->st.error), "out of memory opening a connection");
		log_warning("%s: %s", m->label, m->st.error);
	}
}

static void on_period(uv_timer_t *t)
{
	struct dbmon *m = t->data;
	if ((m->phase == MON_WATCHING || m->phase == MON_FAILED) && !m->in_flight)
		check_begin(m, secs_ms(m->cfg->local_timeout_s));
}

void dbmon_check_now(struct dbmon *m)
{
	if (m->in_flight)
		m->again = true;
	else
		on_period(&m->period);
}

/* on_deadline: local.timeout passed since the last success; make the final check. */
static void on_deadline(uv_timer_t *t)
{
	struct dbmon *m = t->data;
	if (m->phase != MON_WATCHING)
		return;
	if (m->attempts == 0) {
		/*
		 * local.period >= local.timeout: no check was even tried since the
		 * last success, so silence proves nothing.  Check now; if that one
		 * hangs or fails, the next deadline declares the timeout.
		 */
		arm_deadline(m);
		check_begin(m, secs_ms(m->cfg->local_timeout_s));
		return;
	}
	log_warning("%s: no successful check for %d s; making the final check", m->label,
	            m->cfg->local_timeout_s);
	if (m->in_flight) {
		/* The check that hangs is the reason; say so in the status. */
		m->st.last_ok = false;
		m->st.conn_error = DB_ERR_TIMEOUT;
		m->st.verdict = DB_VERDICT_DOWN;
		snprintf(m->st.error, sizeof(m->st.error), "no answer within local.timeout (%d s)",
		         m->cfg->local_timeout_s);
	}
	drop_conn(m); /* the final check uses a fresh connection */
	m->st.timing_out = true;
	set_phase(m, MON_FINAL);
	emit(m, DBMON_TIMING_OUT);
	if (m->phase != MON_FINAL)
		return; /* closed by the callback */
	check_begin(m, secs_ms(m->cfg->local_timeout_final_s));
	if (m->conn == NULL && m->phase == MON_FINAL) {
		/* Could not even start it: the final check has failed. */
		check_failed(m, m->st.conn_error, m->st.error);
	}
}

/* arm_deadline (re)starts the local.timeout countdown from now. */
static void arm_deadline(struct dbmon *m)
{
	uv_timer_start(&m->deadline, on_deadline, secs_ms(m->cfg->local_timeout_s), 0);
}

/* dbmon_new allocates the monitor and its two timers; nothing runs until dbmon_start. */
struct dbmon *dbmon_new(uv_loop_t *loop, const struct efm_config *cfg, const char *password,
                        dbmon_cb cb, void *arg)
{
	struct dbmon *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->loop = loop;
	m->cfg = cfg;
	m->cb = cb;
	m->arg = arg;
	snprintf(m->password, sizeof(m->password), "%s", password != NULL ? password : "");
	snprintf(m->label, sizeof(m->label), "db %s:%d", cfg->db_host, cfg->db_port);
	uv_timer_init(loop, &m->period);
	uv_timer_init(loop, &m->deadline);
	m->period.data = m;
	m->deadline.data = m;
	m->open_handles = 2;
	m->st.last.role = DB_ROLE_UNKNOWN;
	return m;
}

/* dbmon_start begins the first check, whose outcome is STARTED or START_FAILED. */
int dbmon_start(struct dbmon *m)
{
	if (m->phase != MON_NEW)
		return UV_EALREADY;
	set_phase(m, MON_STARTING);
	check_begin(m, secs_ms(m->cfg->local_timeout_s));
	if (m->conn == NULL) {
		set_phase(m, MON_STOPPED);
		return UV_ENOMEM;
	}
	return 0;
}

/* dbmon_set_alert installs the hook told of final checks that could not decide. */
void dbmon_set_alert(struct dbmon *m, dbmon_alert_cb cb, void *arg)
{
	m->alert = cb;
	m->alert_arg = arg;
}

/* dbmon_resume clears the latched failure, taking the caller's check as the latest. */
void dbmon_resume(struct dbmon *m, const struct db_sample *seen)
{
	/*
	 * Also before a failure was declared: a switchover stops and restarts
	 * the database within local.timeout, and what seen proves (its new
	 * role) must not come back from the next check as a change.
	 */
	if (m->phase != MON_FAILED && m->phase != MON_WATCHING && m->phase != MON_FINAL)
		return;
	log_info("%s: monitoring resumed", m->label);
	/*
	 * A check begun while the database was down may still end in a failure
	 * and would then overwrite what seen proves; it is older news.
	 */
	drop_conn(m);
	m->st.failed = false;
	m->st.timing_out = false;
	(void)record_ok(m, seen);
	set_phase(m, MON_WATCHING);
	arm_deadline(m);
}

/* dbmon_status is the monitor's current view, for the status report. */
const struct dbmon_status *dbmon_status(const struct dbmon *m)
{
	return &m->st;
}

/* on_timer_close frees the monitor when its last timer has closed, then reports done. */
static void on_timer_close(uv_handle_t *h)
{
	struct dbmon *m = h->data;
	if (--m->open_handles > 0)
		return;
	void (*done)(void *) = m->done;
	void *done_arg = m->done_arg;
	memset(m->password, 0, sizeof(m->password));
	free(m);
	if (done != NULL)
		done(done_arg);
}

/* dbmon_close abandons any check and closes the timers; m is freed in on_timer_close. */
void dbmon_close(struct dbmon *m, void (*done)(void *arg), void *arg)
{
	if (m->phase == MON_CLOSING)
		return;
	set_phase(m, MON_CLOSING);
	m->done = done;
	m->done_arg = arg;
	drop_conn(m);
	uv_close((uv_handle_t *)&m->period, on_timer_close);
	uv_close((uv_handle_t *)&m->deadline, on_timer_close);
}

/* One db_probe in progress. */
struct probe {
	struct pgconn *conn;
	uint64_t end_ms; /* uv_now() by which it must be done */
	uv_loop_t *loop;
	db_probe_cb cb;
	void *arg;
	struct db_probe_result r;
};

/* probe_finish closes the connection, reports r and frees p. */
static void probe_finish(struct probe *p)
{
	pgconn_close(p->conn);
	p->cb(p->arg, &p->r);
	free(p);
}

/* probe_on_query parses the probe's result and finishes it. */
static void probe_on_query(struct pgconn *c, void *arg, const PGresult *res, enum db_conn_error err,
                           const char *msg)
{
	struct probe *p = arg;
	if (err != DB_ERR_NONE) {
		p->r.conn_error = err;
		snprintf(p->r.error, sizeof(p->r.error), "%s", msg);
	} else {
		p->r.sample.server_version = pgconn_server_version(c);
		if (sql_parse_check(res, &p->r.sample, p->r.error, sizeof(p->r.error)))
			p->r.ok = true;
		else
			p->r.conn_error = DB_ERR_OTHER;
	}
	probe_finish(p);
}

/* probe_on_open sends the check query, bounded by what is left of the probe's time. */
static void probe_on_open(struct pgconn *c, void *arg, enum db_conn_error err, const char *msg)
{
	struct probe *p = arg;
	if (err != DB_ERR_NONE) {
		p->r.conn_error = err;
		snprintf(p->r.error, sizeof(p->r.error), "%s", msg);
		probe_finish(p);
		return;
	}
	uint64_t now = uv_now(p->loop);
	uint64_t left = p->end_ms > now ? p->end_ms - now : 1;
	if (pgconn_query(c, sql_check_query, left, probe_on_query, p) < 0) {
		p->r.conn_error = DB_ERR_OTHER;
		snprintf(p->r.error, sizeof(p->r.error), "cannot send the check query");
		probe_finish(p);
	}
}

/* db_probe starts a one-shot check; its callback always comes later, from the loop. */
int db_probe(uv_loop_t *loop, const struct efm_config *cfg, const char *password, const char *host,
             int port, uint64_t timeout_ms, db_probe_cb cb, void *arg)
{
	struct probe *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->loop = loop;
	p->cb = cb;
	p->arg = arg;
	p->end_ms = uv_now(loop) + timeout_ms;
	p->r.sample.role = DB_ROLE_UNKNOWN;
	char label[EFM_HOST_MAX + 32];
	snprintf(label, sizeof(label), "db %s:%d", host, port);
	struct pgconn_params params;
	fill_params(&params, cfg, password != NULL ? password : "", host, port);
	p->conn = pgconn_open(loop, label, &params, timeout_ms, probe_on_open, p);
	if (p->conn == NULL) {
		free(p);
		return -ENOMEM;
	}
	return 0;
}
