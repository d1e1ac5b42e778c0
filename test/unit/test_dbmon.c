/*
 * test_dbmon.c - the database layer without a PostgreSQL server: error
 * classification and what each class says about the database, check-result
 * parsing from hand-built results, and the monitor's start failures against
 * a closed port, a silent listener, a missing socket directory (each bounded
 * by our own timer) and an agent out of file descriptors.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbmon.h"
#include "log.h"
#include "pgconn.h"
#include "sql.h"

static void test_classify(void **state)
{
	assert_int_equal(pgconn_classify("connection to server at \"127.0.0.1\", port 5432 failed: "
	                                 "FATAL:  sorry, too many clients already"),
	                 DB_ERR_TOO_MANY_CONNECTIONS);
	assert_int_equal(pgconn_classify("FATAL:  too many connections for role \"efm\""),
	                 DB_ERR_TOO_MANY_CONNECTIONS);
	assert_int_equal(pgconn_classify("FATAL:  remaining connection slots are reserved for "
	                                 "non-replication superuser connections"),
	                 DB_ERR_TOO_MANY_CONNECTIONS);
	assert_int_equal(
	    pgconn_classify("FATAL:  password authentication failed for user \"postgres\""),
	    DB_ERR_BAD_PASSWORD);
	assert_int_equal(pgconn_classify("fe_sendauth: no password supplied"), DB_ERR_BAD_PASSWORD);
	assert_int_equal(pgconn_classify("FATAL:  no pg_hba.conf entry for host \"10.0.0.1\", user "
	                                 "\"efm\", database \"postgres\", no encryption"),
	                 DB_ERR_BAD_AUTHORIZATION);
	assert_int_equal(pgconn_classify("FATAL:  role \"efm\" does not exist"),
	                 DB_ERR_BAD_AUTHORIZATION);
	assert_int_equal(pgconn_classify("FATAL:  database \"acctg\" does not exist"),
	                 DB_ERR_BAD_AUTHORIZATION);
	assert_int_equal(pgconn_classify("FATAL:  permission denied for database \"acctg\""),
	                 DB_ERR_BAD_AUTHORIZATION);
	assert_int_equal(
	    pgconn_classify("connection to server at \"127.0.0.1\", port 1 failed: "
	                    "Connection refused\n\tIs the server running on that host?"),
	    DB_ERR_REFUSED);
	assert_int_equal(pgconn_classify("server closed the connection unexpectedly\n\tThis "
	                                 "probably means the server terminated abnormally"),
	                 DB_ERR_CONNECTION_LOST);
	assert_int_equal(pgconn_classify("connection to server at \"127.0.0.1\", port 5432 failed: "
	                                 "could not create socket: Too many open files\n"),
	                 DB_ERR_AGENT_RESOURCES);
	assert_int_equal(pgconn_classify("could not create socket: Too many open files in system"),
	                 DB_ERR_AGENT_RESOURCES);
	assert_int_equal(pgconn_classify("out of memory\n"), DB_ERR_AGENT_RESOURCES);
	/* A socket that cannot be made for another reason is no resource shortage. */
	assert_int_equal(pgconn_classify("could not create socket: Address family not supported "
	                                 "by protocol"),
	                 DB_ERR_OTHER);
	assert_int_equal(pgconn_classify(""), DB_ERR_OTHER);
}

/* Verbose messages carry the SQLSTATE, which decides before the (translatable) words. */
static void test_classify_sqlstate(void **state)
{
	static const struct {
		const char *msg;
		enum db_conn_error want;
	} cases[] = {
	    {"connection to server at \"127.0.0.2\", port 5432 failed: FATAL:  53300: sorry, too "
	     "many clients already\nLOCATION:  InitProcess, proc.c:358\n",
	     DB_ERR_TOO_MANY_CONNECTIONS},
	    /* The words are a translated server's; the code still says who it was. */
	    {"connection to server at \"127.0.0.2\", port 5432 failed: FATAL:  53300: "
	     "lo siento, ya tenemos demasiados clientes\n",
	     DB_ERR_TOO_MANY_CONNECTIONS},
	    {"connection to server failed: FATAL:  53200: out of memory\nDETAIL:  Failed on "
	     "request of size 8192.\n",
	     DB_ERR_SERVER_OUT_OF_MEMORY},
	    {"connection to server failed: FATAL:  57P03: the database system is starting up\n",
	     DB_ERR_STARTING_UP},
	    {"connection to server failed: FATAL:  57P03: the database system is in recovery "
	     "mode\n",
	     DB_ERR_STARTING_UP},
	    {"connection to server failed: FATAL:  57P03: the database system is not yet "
	     "accepting connections\nDETAIL:  Consistent recovery state has not been yet "
	     "reached.\n",
	     DB_ERR_STARTING_UP},
	    {"connection to server failed: FATAL:  57P03: the database system is shutting down\n",
	     DB_ERR_SHUTTING_DOWN},
	    /* 57P03 in words we cannot read: a failure, as before. */
	    {"connection to server failed: FATAL:  57P03: das Datenbanksystem fährt herunter\n",
	     DB_ERR_OTHER},
	    {"FATAL:  57P01: terminating connection due to administrator command\n",
	     DB_ERR_SHUTTING_DOWN},
	    {"FATAL:  57P02: terminating connection because of crash of another server process\n",
	     DB_ERR_SHUTTING_DOWN},
	    {"connection to server failed: FATAL:  28P01: password authentication failed for "
	     "user \"efm\"\n",
	     DB_ERR_BAD_PASSWORD},
	    /* Something that merely looks like a code is not one. */
	    {"could not translate host name \"x:  12345: y\" to address", DB_ERR_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (pgconn_classify(cases[i].msg) != cases[i].want)
			fail_msg("case %zu: %s -> %s, want %s", i, cases[i].msg,
			         pgconn_error_name(pgconn_classify(cases[i].msg)),
			         pgconn_error_name(cases[i].want));
	}
	/* A query's error result gives the code on its own. */
	assert_int_equal(pgconn_classify_sqlstate("57P01", "terminating connection due to "
	                                                   "administrator command"),
	                 DB_ERR_SHUTTING_DOWN);
	assert_int_equal(pgconn_classify_sqlstate("53200", "out of memory"),
	                 DB_ERR_SERVER_OUT_OF_MEMORY);
	assert_int_equal(pgconn_classify_sqlstate("", "server closed the connection "
	                                              "unexpectedly"),
	                 DB_ERR_CONNECTION_LOST);
	assert_int_equal(pgconn_classify_sqlstate(NULL, "syntax error"), DB_ERR_OTHER);
}

/* Which failures are evidence that the database is down, and which are not. */
static void test_verdict(void **state)
{
	static const enum db_conn_error busy[] = {DB_ERR_TOO_MANY_CONNECTIONS,
	                                          DB_ERR_SERVER_OUT_OF_MEMORY, DB_ERR_STARTING_UP};
	static const enum db_conn_error down[] = {
	    DB_ERR_TIMEOUT, DB_ERR_REFUSED,      DB_ERR_CONNECTION_LOST,   DB_ERR_SHUTTING_DOWN,
	    DB_ERR_OTHER,   DB_ERR_BAD_PASSWORD, DB_ERR_BAD_AUTHORIZATION,
	};
	for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++)
		assert_int_equal(db_error_verdict(busy[i]), DB_VERDICT_BUSY);
	for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++)
		assert_int_equal(db_error_verdict(down[i]), DB_VERDICT_DOWN);
	assert_int_equal(db_error_verdict(DB_ERR_AGENT_RESOURCES), DB_VERDICT_AGENT);
	assert_non_null(strstr(db_verdict_text(DB_VERDICT_DOWN), "evidence"));
	assert_non_null(strstr(db_verdict_text(DB_VERDICT_BUSY), "alive"));
	assert_non_null(strstr(db_verdict_text(DB_VERDICT_AGENT), "agent"));
}

static void test_one_line(void **state)
{
	char out[64];
	pgconn_one_line("  a\n\tb  c\n", out, sizeof(out));
	assert_string_equal(out, "a b c");
	pgconn_one_line("\n\n", out, sizeof(out));
	assert_string_equal(out, "");
	pgconn_one_line("abcdef ghij", out, 8);
	assert_string_equal(out, "abcdef ");
	assert_true(strlen(out) < 8);
	pgconn_one_line("abc", out, 1);
	assert_string_equal(out, "");
}

/* make_result builds a one-row result of sql_check_query; NULL strings are SQL NULLs. */
static PGresult *make_result(const char *const vals[5])
{
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	assert_non_null(r);
	PGresAttDesc attrs[5];
	memset(attrs, 0, sizeof(attrs));
	static char *const names[5] = {"r", "c", "rx", "rp", "p"};
	for (int i = 0; i < 5; i++) {
		attrs[i].name = names[i];
		attrs[i].format = 0;
		attrs[i].typlen = -1;
		attrs[i].atttypmod = -1;
	}
	assert_true(PQsetResultAttrs(r, 5, attrs));
	for (int i = 0; i < 5; i++)
		assert_true(
		    PQsetvalue(r, 0, i, (char *)vals[i], vals[i] ? (int)strlen(vals[i]) : -1));
	return r;
}

static void test_parse_check(void **state)
{
	char err[256];
	struct db_sample s = {.server_version = 150004};

	const char *const master[5] = {"f", "0/3000148", NULL, NULL, "f"};
	PGresult *r = make_result(master);
	assert_true(sql_parse_check(r, &s, err, sizeof(err)));
	assert_int_equal(s.role, DB_ROLE_MASTER);
	assert_string_equal(s.current_lsn, "0/3000148");
	assert_string_equal(s.receive_lsn, "");
	assert_false(s.replay_paused);
	assert_int_equal(s.server_version, 150004);
	PQclear(r);

	const char *const standby[5] = {"t", NULL, "0/5000000", "0/4FFFFF0", "t"};
	r = make_result(standby);
	assert_true(sql_parse_check(r, &s, err, sizeof(err)));
	assert_int_equal(s.role, DB_ROLE_STANDBY);
	assert_string_equal(s.current_lsn, "");
	assert_string_equal(s.receive_lsn, "0/5000000");
	assert_string_equal(s.replay_lsn, "0/4FFFFF0");
	assert_true(s.replay_paused);
	assert_string_equal(db_sample_lsn(&s), "0/5000000");
	PQclear(r);

	/* A standby that has received nothing yet. */
	const char *const fresh[5] = {"t", NULL, NULL, "0/2000000", "f"};
	r = make_result(fresh);
	assert_true(sql_parse_check(r, &s, err, sizeof(err)));
	assert_string_equal(db_sample_lsn(&s), "0/2000000");
	PQclear(r);

	/* Refused shapes leave the sample as it was. */
	struct db_sample keep = s;
	const char *const nolsn[5] = {"f", NULL, NULL, NULL, "f"};
	const char *const badlsn[5] = {"f", "zz", NULL, NULL, "f"};
	const char *const badbool[5] = {"maybe", "0/1", NULL, NULL, "f"};
	const char *const *cases[] = {nolsn, badlsn, badbool};
	for (size_t i = 0; i < 3; i++) {
		r = make_result(cases[i]);
		err[0] = '\0';
		assert_false(sql_parse_check(r, &s, err, sizeof(err)));
		assert_true(err[0] != '\0');
		assert_memory_equal(&s, &keep, sizeof(s));
		PQclear(r);
	}

	PGresult *empty = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
	assert_false(sql_parse_check(empty, &s, err, sizeof(err)));
	PQclear(empty);
}

/* The check query is one statement that names only PostgreSQL 10+ functions. */
static void test_query_text(void **state)
{
	assert_non_null(strstr(sql_check_query, "pg_is_in_recovery()"));
	assert_non_null(strstr(sql_check_query, "pg_current_wal_lsn()"));
	assert_non_null(strstr(sql_check_query, "pg_last_wal_receive_lsn()"));
	assert_non_null(strstr(sql_check_query, "pg_last_wal_replay_lsn()"));
	assert_non_null(strstr(sql_check_query, "pg_is_wal_replay_paused()"));
	assert_null(strstr(sql_check_query, "xlog"));
	assert_null(strchr(sql_check_query, ';'));
}

/* ---- the monitor against endpoints that are not PostgreSQL ---- */

struct run {
	int events[8];
	int n_events;
	struct dbmon_status last;
	bool closed;
	int probes;
	struct db_probe_result probe;
};

static void on_event(void *arg, enum dbmon_event ev, const struct dbmon_status *st)
{
	struct run *r = arg;
	if (r->n_events < 8)
		r->events[r->n_events] = ev;
	r->n_events++;
	r->last = *st;
}

static void on_closed(void *arg)
{
	((struct run *)arg)->closed = true;
}

static struct efm_config make_cfg(const char *host, int port)
{
	struct efm_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster = (char *)"test";
	cfg.db_host = (char *)host;
	cfg.db_port = port;
	cfg.db_database = (char *)"postgres";
	cfg.db_user = (char *)"postgres";
	cfg.local_period_s = 1;
	cfg.local_timeout_s = 1;
	cfg.local_timeout_final_s = 1;
	return cfg;
}

/* free_port returns a TCP port on 127.0.0.1 that nothing listens on (just released). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* run_start_failure starts a monitor on host:port and expects START_FAILED with want. */
static void run_start_failure(const char *host, int port, enum db_conn_error want, uint64_t max_ms)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct efm_config cfg = make_cfg(host, port);
	struct run r = {0};
	struct dbmon *m = dbmon_new(&loop, &cfg, "pw", on_event, &r);
	assert_non_null(m);
	uint64_t t0 = uv_now(&loop);
	assert_int_equal(dbmon_start(m), 0);
	/* Never synchronously. */
	assert_int_equal(r.n_events, 0);
	while (r.n_events == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
		;
	uv_update_time(&loop);
	assert_int_equal(r.n_events, 1);
	assert_int_equal(r.events[0], DBMON_START_FAILED);
	assert_int_equal(r.last.conn_error, want);
	assert_false(r.last.started);
	assert_false(r.last.last_ok);
	assert_true(r.last.error[0] != '\0');
	assert_null(strchr(r.last.error, '\n'));
	assert_true(uv_now(&loop) - t0 <= max_ms);
	assert_int_equal(dbmon_status(m)->connections, 0);

	dbmon_close(m, on_closed, &r);
	assert_false(r.closed);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_true(r.closed);
	assert_int_equal(r.n_events, 1); /* nothing after START_FAILED */
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_start_refused(void **state)
{
	run_start_failure("127.0.0.1", free_port(), DB_ERR_REFUSED, 900);
}

/* "localhost" goes through uv_getaddrinfo first. */
static void test_start_refused_by_name(void **state)
{
	run_start_failure("localhost", free_port(), DB_ERR_REFUSED, 900);
}

/* libpq fails inside PQconnectStart: the failure still comes from the loop. */
static void test_start_no_socket_dir(void **state)
{
	run_start_failure("/nonexistent-efm-test-dir", 5432, DB_ERR_REFUSED, 900);
}

/*
 * Every descriptor taken: libpq cannot make its socket, and that is told
 * apart from anything the database did.  The descriptors are really used
 * up, down to a lowered RLIMIT_NOFILE.
 */
static void test_start_without_descriptors(void **state)
{
	struct rlimit saved, low;
	int fds[256];
	int n = 0;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct efm_config cfg = make_cfg("127.0.0.1", free_port());
	struct run r = {0};
	struct dbmon *m = dbmon_new(&loop, &cfg, "pw", on_event, &r);
	assert_non_null(m);

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = 200;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < (int)(sizeof(fds) / sizeof(fds[0]))) {
		int fd = dup(0);
		if (fd < 0)
			break;
		fds[n++] = fd;
	}
	assert_int_equal(errno, EMFILE);
	assert_int_equal(dbmon_start(m), 0);
	while (r.n_events == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
		;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);

	assert_int_equal(r.n_events, 1);
	assert_int_equal(r.events[0], DBMON_START_FAILED);
	assert_int_equal(r.last.conn_error, DB_ERR_AGENT_RESOURCES);
	assert_int_equal(r.last.verdict, DB_VERDICT_AGENT);
	assert_non_null(strstr(r.last.error, "Too many open files"));
	dbmon_close(m, on_closed, &r);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_true(r.closed);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A listener that never answers: only our timer ends the attempt (local.timeout = 1 s). */
static void test_start_silent_server(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	run_start_failure("127.0.0.1", ntohs(a.sin_port), DB_ERR_TIMEOUT, 1500);
	close(fd);
}

static void on_probe(void *arg, const struct db_probe_result *res)
{
	struct run *r = arg;
	r->probes++;
	r->probe = *res;
}

static void test_probe_refused(void **state)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct efm_config cfg = make_cfg("unused", 0);
	struct run r = {0};
	assert_int_equal(db_probe(&loop, &cfg, "", "127.0.0.1", free_port(), 2000, on_probe, &r),
	                 0);
	assert_int_equal(r.probes, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.probes, 1);
	assert_false(r.probe.ok);
	assert_int_equal(r.probe.conn_error, DB_ERR_REFUSED);
	assert_true(r.probe.error[0] != '\0');
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	log_set_level(EFM_SEVERE);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_classify_sqlstate),
	    cmocka_unit_test(test_verdict),
	    cmocka_unit_test(test_one_line),
	    cmocka_unit_test(test_parse_check),
	    cmocka_unit_test(test_query_text),
	    cmocka_unit_test(test_start_refused),
	    cmocka_unit_test(test_start_refused_by_name),
	    cmocka_unit_test(test_start_no_socket_dir),
	    cmocka_unit_test(test_start_silent_server),
	    cmocka_unit_test(test_start_without_descriptors),
	    cmocka_unit_test(test_probe_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
