/*
 * dbmon.h - the local database monitor, and one-shot probes of any database.
 *
 * Everything runs on the caller's uv loop and never blocks it: libpq is used
 * only through PQconnectStart/PQconnectPoll and PQsendQuery/PQconsumeInput on
 * a uv_poll_t, every step bounded by a uv timer.
 *
 * The monitor implements the guide's timing: every local.period seconds a
 * check (connect if needed, then one query reading pg_is_in_recovery() and the
 * WAL positions).  When no check has succeeded for local.timeout seconds it
 * makes a final check bounded by local.timeout.final; if that fails too the
 * database is declared failed.  db.reuse.connection.count: 0 makes a new
 * connection for every check, N reuses one connection for N checks.
 */
#ifndef EFM_DBMON_H
#define EFM_DBMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

enum db_role {
	DB_ROLE_UNKNOWN,
	DB_ROLE_MASTER,  /* pg_is_in_recovery() = false */
	DB_ROLE_STANDBY, /* pg_is_in_recovery() = true */
};

/*
 * Why a check failed, for the guide's "Unable to connect" notices and for
 * judging what the failure says about the database (db_error_verdict).
 * Server errors are sorted by SQLSTATE where libpq gives one.
 */
enum db_conn_error {
	DB_ERR_NONE,
	DB_ERR_TOO_MANY_CONNECTIONS, /* 53300: every connection slot is taken */
	DB_ERR_BAD_PASSWORD,
	DB_ERR_BAD_AUTHORIZATION, /* no pg_hba.conf entry, role or database refused */
	DB_ERR_TIMEOUT,
	DB_ERR_OTHER,
	DB_ERR_SERVER_OUT_OF_MEMORY, /* 53200 */
	DB_ERR_STARTING_UP,          /* 57P03: starting up, in recovery, not yet consistent */
	DB_ERR_SHUTTING_DOWN,        /* 57P01, 57P02, or 57P03 "shutting down" */
	DB_ERR_REFUSED,              /* nothing listens at the address or socket path */
	DB_ERR_CONNECTION_LOST,      /* the server closed the connection or it was reset */
	DB_ERR_AGENT_RESOURCES, /* this agent could not make a socket (EMFILE, ENFILE, ENOMEM) */
};

/* What a failed check says about the database. */
enum db_verdict {
	DB_VERDICT_DOWN,  /* evidence it is not serving: refused, timeout, EOF, shutting down... */
	DB_VERDICT_BUSY,  /* the server answered but would not serve the check: alive, unchecked */
	DB_VERDICT_AGENT, /* this agent could not even try: its problem, not the database's */
};

/* db_error_verdict sorts a failure into evidence, a busy server, or the agent's own trouble. */
enum db_verdict db_error_verdict(enum db_conn_error e);
/* db_verdict_text names a verdict for log lines ("evidence of failure"...). */
const char *db_verdict_text(enum db_verdict v);

/* What one successful check saw. */
struct db_sample {
	enum db_role role;
	char current_lsn[32]; /* master: pg_current_wal_lsn(); standby: "" */
	char receive_lsn[32]; /* standby: pg_last_wal_receive_lsn(), "" if none */
	char replay_lsn[32];  /* standby: pg_last_wal_replay_lsn() */
	bool replay_paused;   /* standby: pg_is_wal_replay_paused() */
	int server_version;   /* PQserverVersion() */
};

/* db_sample_lsn is the position used for comparisons: current on a master, received (or replayed)
 * on a standby. */
const char *db_sample_lsn(const struct db_sample *s);

/* lsn_parse reads "X/Y" into a 64-bit position; false when malformed. */
bool lsn_parse(const char *text, uint64_t *out);

enum dbmon_event {
	DBMON_STARTED,      /* first check succeeded: role and WAL position known */
	DBMON_START_FAILED, /* could not connect at start: the agent must exit (conn_error says why)
	                     */
	DBMON_TIMING_OUT,   /* no success for local.timeout: making the final check */
	DBMON_RECOVERED,    /* the final check (or a later check) succeeded after TIMING_OUT */
	DBMON_FAILED,       /* the final check failed: database declared failed (latched) */
	DBMON_ROLE_CHANGED, /* a check saw a different pg_is_in_recovery() than before */
};

struct dbmon_status {
	bool started;          /* DBMON_STARTED was reported */
	bool failed;           /* latched by DBMON_FAILED until dbmon_resume */
	bool timing_out;       /* between DBMON_TIMING_OUT and DBMON_RECOVERED/FAILED */
	bool last_ok;          /* the most recent check succeeded */
	struct db_sample last; /* from the most recent successful check */
	uint64_t last_ok_ms;   /* uv_now() of the most recent successful check, 0 never */
	uint64_t checks;       /* successful checks so far */
	uint64_t connections;  /* connections opened so far (tests db.reuse.connection.count) */
	enum db_conn_error conn_error; /* of the most recent failure */
	enum db_verdict verdict;       /* of the most recent failure */
	bool unverified;               /* the last final check could not decide (busy server or the
	                                  agent's trouble): not failed, not known to be up */
	char error[512];               /* libpq's message of the most recent failure, one line */
};

struct dbmon;

/* The callback runs on the loop; st is valid only during the call. */
typedef void (*dbmon_cb)(void *arg, enum dbmon_event ev, const struct dbmon_status *st);

/*
 * The alert hook runs when a final check could not decide: the server
 * answered but would not serve the check (why DB_VERDICT_BUSY: too many
 * clients, out of memory, starting up), or this agent could not make the
 * attempt (DB_VERDICT_AGENT).  No failure is declared; the agent may notify
 * (e.g. the guide's "max connections reached").  Once per episode: again
 * only after a check has succeeded in between.
 */
typedef void (*dbmon_alert_cb)(void *arg, enum db_verdict why, const struct dbmon_status *st);

/*
 * dbmon_new prepares a monitor of cfg's local database (cfg->db_host,
 * db_port, db_database, db_user, jdbc_ssl) with the clear-text password
 * (may be "" to rely on .pgpass).  cfg must outlive the monitor.
 */
struct dbmon *dbmon_new(uv_loop_t *loop, const struct efm_config *cfg, const char *password,
                        dbmon_cb cb, void *arg);
/* dbmon_set_alert installs the alert hook (cb NULL removes it). */
void dbmon_set_alert(struct dbmon *m, dbmon_alert_cb cb, void *arg);
/* dbmon_start makes the first check at once; returns 0 or a negative uv error. */
int dbmon_start(struct dbmon *m) __attribute__((warn_unused_result));
/*
 * dbmon_resume clears a declared failure, or the failed checks before one,
 * and resumes watching (efm resume, a switchover's restart).
 * seen is the check the caller has just made of the same database (the
 * resume decision rests on it): it becomes the monitor's latest successful
 * check, so the status reported from now on is that check's, and any check
 * begun earlier is abandoned as older news.
 */
void dbmon_resume(struct dbmon *m, const struct db_sample *seen);
const struct dbmon_status *dbmon_status(const struct dbmon *m);
/* dbmon_check_now begins a check at once unless one runs (the database just changed role). */
void dbmon_check_now(struct dbmon *m);
/* dbmon_close stops everything; done (may be NULL) runs once all handles are closed and m is freed.
 */
void dbmon_close(struct dbmon *m, void (*done)(void *arg), void *arg);

/*
 * A one-shot probe: connect to host:port, run the check query, disconnect,
 * all bounded by timeout_ms.  Used for the Promote Status section and, later,
 * for checking another node's database.  The callback runs exactly once,
 * with ok false and error set on failure.
 */
struct db_probe_result {
	bool ok;
	struct db_sample sample;
	enum db_conn_error conn_error;
	char error[512];
};
typedef void (*db_probe_cb)(void *arg, const struct db_probe_result *r);
int db_probe(uv_loop_t *loop, const struct efm_config *cfg, const char *password, const char *host,
             int port, uint64_t timeout_ms, db_probe_cb cb, void *arg)
    __attribute__((warn_unused_result));

#endif
