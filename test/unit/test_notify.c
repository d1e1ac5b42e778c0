/*
 * test_notify.c - the event table, the outbox (rate limit, drop-oldest,
 * backoff) on a fake clock, and the funnel end to end: notification script,
 * mail to an SMTP sink and webhook to an HTTP sink, both started by the test
 * on the same loop.
 */
#define _GNU_SOURCE /* strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>

#include "log.h"
#include "notify.h"
#include "smtp.h"
#include "webhook.h"

static char dir[64];

/* ---------- helpers ---------- */

/* capture_log sends the log to a fresh file in dir. */
static void capture_log(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s.log", dir, name);
	unlink(path);
	assert_int_equal(log_open(path), 0);
}

/* slurp reads a whole file (malloc'd, NUL-terminated). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, f);
	buf[got] = '\0';
	fclose(f);
	return buf;
}

static struct efm_config base_cfg(void)
{
	struct efm_config c;
	memset(&c, 0, sizeof(c));
	c.cluster = "acctg";
	c.db_database = "postgres";
	c.db_user = "efm";
	c.virtual_ip = "";
	c.ping_server_ip = "8.8.8.8";
	c.notification_level = EFM_SEV_INFO;
	c.script_timeout_s = 10;
	return c;
}

/* ---------- the event table ---------- */

static void test_every_event_renders(void **state)
{
	struct efm_config cfg = base_cfg();
	cfg.virtual_ip = "10.0.1.100";
	struct notify_args a = {.node = "10.0.1.12",
	                        .role = "Master",
	                        .script = "/usr/local/bin/fence.sh",
	                        .results = "fenced ok",
	                        .exit_code = "exit code 3",
	                        .vip = "10.0.1.100",
	                        .path = "/run/efm/acctg.lock",
	                        .error = "connection refused",
	                        .nodes = "10.0.1.11, 10.0.1.13"};
	char subject[256], body[8192];
	for (int i = 0; i < NOTIFY_EVENT_COUNT; i++) {
		enum notify_event ev = (enum notify_event)i;
		const char *name = notify_event_name(ev);
		assert_string_not_equal(name, "unknown");
		enum notify_event back;
		assert_true(notify_event_by_name(name, &back));
		assert_int_equal(back, ev); /* names are unique */

		notify_render(ev, &cfg, "10.0.1.11", &a, subject, sizeof(subject), body,
		              sizeof(body));
		assert_true(strlen(subject) > 5);
		assert_true(strlen(body) > 5);
		if (strchr(subject, '{') || strchr(subject, '}') || strchr(body, '{') ||
		    strchr(body, '}'))
			fail_msg("event %s left a placeholder: \"%s\" / \"%s\"", name, subject,
			         body);
		assert_null(strchr(subject, '\n'));

		/* With no arguments at all, the fallbacks still fill everything. */
		notify_render(ev, &cfg, "10.0.1.11", NULL, subject, sizeof(subject), body,
		              sizeof(body));
		if (strchr(subject, '{') || strchr(body, '{'))
			fail_msg("event %s left a placeholder without args", name);
	}
	assert_string_equal(notify_event_name(NOTIFY_EVENT_COUNT), "unknown");
}

static void test_severities(void **state)
{
	static const struct {
		const char *name;
		enum efm_severity sev;
	} want[] = {
	    {"agent.started.master", EFM_SEV_INFO},
	    {"agent.exited.idle", EFM_SEV_INFO},
	    {"script.fence.executed", EFM_SEV_INFO},
	    {"vip.assigned", EFM_SEV_INFO},
	    {"cluster.master_left", EFM_SEV_INFO},
	    {"vip.on_non_master", EFM_SEV_WARNING},
	    {"cluster.below_three_nodes", EFM_SEV_WARNING},
	    {"promotion.refused.vip_assigned", EFM_SEV_WARNING},
	    {"failover.completed", EFM_SEV_WARNING},
	    {"lock.removed", EFM_SEV_WARNING},
	    {"failover.manual_required", EFM_SEV_WARNING},
	    {"db.connect.too_many_connections", EFM_SEV_SEVERE},
	    {"db.failure", EFM_SEV_SEVERE},
	    {"script.db_failure.failed", EFM_SEV_SEVERE},
	    {"script.fence.failed", EFM_SEV_SEVERE},
	    {"agent.timing_out", EFM_SEV_SEVERE},
	    {"master.fenced", EFM_SEV_SEVERE},
	    {"resume.timed_out", EFM_SEV_SEVERE},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		enum notify_event ev;
		if (!notify_event_by_name(want[i].name, &ev))
			fail_msg("no event %s", want[i].name);
		assert_int_equal(notify_event_severity(ev), want[i].sev);
	}
	assert_string_equal(notify_severity_name(EFM_SEV_WARNING), "WARNING");
}

static void test_render_values(void **state)
{
	struct efm_config cfg = base_cfg();
	char subject[256], body[4096];
	struct notify_args a = {.path = "/run/efm/acctg.lock", .node = "10.0.1.12"};
	notify_render(NOTIFY_LOCK_REMOVED, &cfg, "10.0.1.11", &a, subject, sizeof(subject), body,
	              sizeof(body));
	assert_non_null(strstr(subject, "acctg"));
	assert_non_null(strstr(body, "/run/efm/acctg.lock"));
	assert_non_null(strstr(body, "10.0.1.12"));

	/* A value with line breaks cannot break the subject line. */
	struct notify_args evil = {.role = "Master\r\nBcc: x@y"};
	notify_render(NOTIFY_DB_FAILURE, &cfg, "10.0.1.11", &evil, subject, sizeof(subject), body,
	              sizeof(body));
	assert_null(strchr(subject, '\n'));
	assert_null(strchr(subject, '\r'));
	assert_non_null(strstr(subject, "Master"));

	/* The node falls back to this agent; the db user and ping server come from the config. */
	notify_render(NOTIFY_DB_CONNECT_BAD_PASSWORD, &cfg, "10.0.1.11", NULL, subject,
	              sizeof(subject), body, sizeof(body));
	assert_non_null(strstr(subject, "10.0.1.11"));
	assert_non_null(strstr(body, "db.user=efm"));
	notify_render(NOTIFY_PROMOTION_REFUSED_ORPHANED, &cfg, "10.0.1.11", NULL, subject,
	              sizeof(subject), body, sizeof(body));
	assert_non_null(strstr(body, "8.8.8.8"));

	/* Tiny buffers stay terminated. */
	char tiny[8];
	notify_render(NOTIFY_DB_FAILURE, &cfg, "10.0.1.11", NULL, tiny, sizeof(tiny), body, 4);
	assert_int_equal(strlen(tiny), 7);
	assert_int_equal(strlen(body), 3);
}

/* ---------- the outbox on a fake clock ---------- */

static void test_backoff(void **state)
{
	const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(outbox_backoff_ms(i + 1), want[i]);
	assert_int_equal(outbox_backoff_ms(1000), 60000);
}

static void test_rate_limit_summary(void **state)
{
	struct outbox ob;
	char logpath[128];
	capture_log("rate", logpath, sizeof(logpath));
	assert_true(outbox_init(&ob, "mail", 3));
	uint64_t t = 1000, wait;
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "one", "b", 0, t));
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "two", "b", 0, t + 10));
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "three", "b", 0, t + 20));
	assert_false(outbox_push(&ob, 0, EFM_SEV_SEVERE, "four", "b", 0, t + 30));
	assert_false(outbox_push(&ob, 0, EFM_SEV_WARNING, "five", "b", 0, t + 40));
	assert_int_equal(ob.count, 3);
	assert_int_equal(ob.suppressed, 2);

	const char *order[] = {"one", "two", "three"};
	for (int i = 0; i < 3; i++) {
		struct outbox_msg *m = outbox_next(&ob, t + 100, &wait);
		assert_non_null(m);
		assert_string_equal(m->subject, order[i]);
		assert_null(outbox_next(&ob, t + 100, &wait)); /* one at a time */
		outbox_done(&ob, true, NULL, t + 100);
	}
	/* Nothing until the first admission leaves the one-minute window. */
	assert_null(outbox_next(&ob, t + 100, &wait));
	assert_int_equal(wait, OUTBOX_RATE_WINDOW_MS - 100);
	assert_null(outbox_next(&ob, t + 59999, &wait));
	assert_int_equal(wait, 1);

	struct outbox_msg *m = outbox_next(&ob, t + 60000, &wait);
	assert_non_null(m);
	assert_int_equal(m->ev, NOTIFY_EVENT_COUNT);
	assert_int_equal(m->sev, EFM_SEV_SEVERE); /* the worst of what it summarises */
	assert_non_null(strstr(m->subject, "2 notifications"));
	assert_non_null(strstr(m->body, "SEVERE four"));
	assert_non_null(strstr(m->body, "WARNING five"));
	outbox_done(&ob, true, NULL, t + 60000);
	assert_int_equal(ob.count, 0);
	assert_int_equal(ob.suppressed, 0);
	outbox_free(&ob);

	log_open(NULL);
	char *text = slurp(logpath);
	assert_non_null(strstr(text, "2 notifications were suppressed"));
	free(text);
}

static void test_summary_goes_first(void **state)
{
	struct outbox ob;
	assert_true(outbox_init(&ob, "webhook", 1));
	uint64_t wait;
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "a", "b", 0, 0));
	assert_false(outbox_push(&ob, 0, EFM_SEV_INFO, "held", "b", 0, 5));
	struct outbox_msg *m = outbox_next(&ob, 10, &wait);
	assert_string_equal(m->subject, "a");
	outbox_done(&ob, true, NULL, 10);
	/* A minute later a new message arrives: the summary of the older one is queued first,
	 * and takes the only slot of the new window, so the new one is held in turn. */
	assert_false(outbox_push(&ob, 0, EFM_SEV_INFO, "new", "b", 0, 60000));
	m = outbox_next(&ob, 60000, &wait);
	assert_non_null(strstr(m->subject, "1 notifications held back"));
	outbox_done(&ob, true, NULL, 60000);
	outbox_free(&ob);
}

static void test_drop_oldest(void **state)
{
	struct outbox ob;
	char logpath[128], subj[32];
	capture_log("drop", logpath, sizeof(logpath));
	assert_true(outbox_init(&ob, "mail", 0)); /* no rate limit */
	for (int i = 1; i <= OUTBOX_CAPACITY; i++) {
		snprintf(subj, sizeof(subj), "msg %d", i);
		assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, subj, "b", 0, (uint64_t)i));
	}
	uint64_t wait;
	struct outbox_msg *m = outbox_next(&ob, 1000, &wait); /* "msg 1" in flight */
	assert_string_equal(m->subject, "msg 1");

	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "msg 101", "b", 0, 1001));
	assert_int_equal(ob.count, OUTBOX_CAPACITY);
	assert_int_equal(ob.dropped, 1);
	/* The message being sent was kept; the oldest waiting one went. */
	outbox_done(&ob, true, NULL, 1002);
	m = outbox_next(&ob, 1003, &wait);
	assert_string_equal(m->subject, "msg 3");
	outbox_done(&ob, true, NULL, 1004);

	/* Not in flight: the head itself is the oldest (98 queued, two fill it up). */
	assert_int_equal(ob.count, OUTBOX_CAPACITY - 2);
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "msg 102", "b", 0, 1005));
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "msg 103", "b", 0, 1006));
	assert_int_equal(ob.dropped, 1);
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "msg 104", "b", 0, 1006));
	assert_int_equal(ob.dropped, 2);
	m = outbox_next(&ob, 1007, &wait);
	assert_string_equal(m->subject, "msg 5");
	outbox_done(&ob, true, NULL, 1008);
	outbox_free(&ob);

	log_open(NULL);
	char *text = slurp(logpath);
	assert_non_null(strstr(text, "WARNING"));
	assert_non_null(strstr(text, "dropped the oldest: \"msg 2\""));
	assert_non_null(strstr(text, "dropped the oldest: \"msg 4\""));
	free(text);
}

static void test_retry_then_give_up(void **state)
{
	struct outbox ob;
	char logpath[128];
	capture_log("retry", logpath, sizeof(logpath));
	assert_true(outbox_init(&ob, "mail", 10));
	assert_true(outbox_push(&ob, 0, EFM_SEV_SEVERE, "db down", "b", 0, 0));
	assert_true(outbox_push(&ob, 0, EFM_SEV_INFO, "next", "b", 0, 0));
	uint64_t t = 0, wait;
	const uint64_t gaps[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
	unsigned attempts = 0;
	for (;;) {
		struct outbox_msg *m = outbox_next(&ob, t, &wait);
		assert_non_null(m);
		if (strcmp(m->subject, "db down") != 0)
			break;
		attempts++;
		outbox_done(&ob, false, "connection refused", t);
		if (ob.given_up > 0)
			break;
		/* Not before the backoff is over, and the queue behind it waits (order kept). */
		assert_null(outbox_next(&ob, t, &wait));
		uint64_t gap = gaps[attempts - 1 < 7 ? attempts - 1 : 7];
		assert_int_equal(wait, gap);
		assert_null(outbox_next(&ob, t + gap - 1, &wait));
		t += gap;
	}
	assert_int_equal(ob.given_up, 1);
	assert_true(t >= OUTBOX_GIVE_UP_MS);
	assert_true(t < OUTBOX_GIVE_UP_MS + 60000);
	assert_int_equal(attempts, 16); /* 63 s of doubling, then every minute up to 10 min */
	struct outbox_msg *m = outbox_next(&ob, t, &wait);
	assert_non_null(m);
	assert_string_equal(m->subject, "next");
	outbox_done(&ob, true, NULL, t);
	outbox_free(&ob);

	log_open(NULL);
	char *text = slurp(logpath);
	assert_non_null(strstr(text, "SEVERE notification mail: giving up on \"db down\""));
	assert_non_null(strstr(text, "connection refused"));
	free(text);
}

/* ---------- the funnel on a real loop ---------- */

static void state_fn(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "Master 10.0.1.11 UP, Standby 10.0.1.12 UP\n");
}

static void on_closed(void *arg)
{
	(*(int *)arg)++;
}

static void test_funnel_script(void **state)
{
	char script[128], out[128];
	snprintf(script, sizeof(script), "%s/notify.sh", dir);
	snprintf(out, sizeof(out), "%s/notify.out", dir);
	FILE *f = fopen(script, "w");
	assert_non_null(f);
	fprintf(f,
	        "#!/bin/sh\n{ printf 'sev=%%s event=%%s cluster=%%s node=%%s\\n' \"$1\" "
	        "\"$EFM_EVENT\" \"$EFM_CLUSTER\" \"$EFM_NODE\"; printf 'subject=%%s\\n' \"$2\"; "
	        "printf '%%s\\n--\\n' \"$3\"; } >> %s\n",
	        out);
	fclose(f);
	chmod(script, 0700);

	struct efm_config cfg = base_cfg();
	cfg.script_notification = script;
	cfg.notification_level = EFM_SEV_WARNING;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct notifier *n = notify_new(&loop, &cfg, "10.0.1.11");
	assert_non_null(n);
	notify_set_state_fn(n, state_fn, NULL);

	notify_emit(n, NOTIFY_AGENT_STARTED_MASTER, NULL); /* INFO: below the level */
	struct notify_args a = {
	    .script = "/bin/fence", .exit_code = "exit code 3", .results = "no route"};
	notify_emit(n, NOTIFY_SCRIPT_DB_FAILURE_FAILED, &a);

	const char *recent[8];
	assert_int_equal(notify_recent(n, recent, 8), 2);
	assert_string_equal(recent[0], "INFO Master agent started on 10.0.1.11 for cluster acctg");
	assert_string_equal(recent[1], "SEVERE Database-failure script failed on 10.0.1.11");

	int closed = 0;
	notify_close(n, on_closed, &closed); /* waits for the queued message first */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(closed, 1);
	assert_int_equal(uv_loop_close(&loop), 0);

	char *text = slurp(out);
	assert_non_null(strstr(text, "sev=SEVERE event=script.db_failure.failed cluster=acctg "
	                             "node=10.0.1.11\n"));
	assert_non_null(strstr(text, "subject=Database-failure script failed on 10.0.1.11\n"));
	assert_non_null(strstr(text, "Node:          10.0.1.11\n"
	                             "Cluster name:  acctg\n"
	                             "Database name: postgres\n"
	                             "VIP support:   DISABLED\n\n"));
	assert_non_null(strstr(text, "exit code 3"));
	assert_non_null(strstr(text, "no route"));
	assert_non_null(strstr(text, "Master 10.0.1.11 UP, Standby 10.0.1.12 UP"));
	assert_null(strstr(text, "sev=INFO")); /* filtered by notification.level */
	free(text);
}

static void test_ring_keeps_last(void **state)
{
	struct efm_config cfg = base_cfg(); /* no transport configured */
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct notifier *n = notify_new(&loop, &cfg, "10.0.1.11");
	char node[32];
	for (int i = 1; i <= 25; i++) {
		snprintf(node, sizeof(node), "10.0.2.%d", i);
		struct notify_args a = {.node = node};
		notify_emit(n, NOTIFY_WITNESS_FAILED, &a);
	}
	assert_int_equal(notify_pending(n), 0);
	const char *recent[32];
	assert_int_equal(notify_recent(n, recent, 32), 20);
	assert_string_equal(recent[0], "WARNING Witness lost in cluster acctg");
	assert_int_equal(notify_recent(n, recent, 3), 3); /* the newest three */
	int closed = 0;
	notify_close(n, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(closed, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---------- a tiny SMTP / HTTP sink on the test's loop ---------- */

struct sink {
	uv_tcp_t server;
	bool http;
	bool silent; /* accept and never answer */
	int http_status;
	char rcpt[512];
	char data[65536];
	size_t data_len;
	int messages;
	char request[65536];
};

struct sink_conn {
	uv_tcp_t tcp;
	struct sink *sink;
	char buf[65536];
	size_t len;
	bool in_data;
	bool closing;
};

static void conn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void conn_close(struct sink_conn *c)
{
	if (!c->closing) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
	}
}

struct wreq {
	uv_write_t req;
	struct sink_conn *c;
	bool close_after;
	char text[256];
};

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	if (w->close_after)
		conn_close(w->c);
	free(w);
}

static void reply(struct sink_conn *c, const char *text, bool close_after)
{
	if (c->closing)
		return;
	struct wreq *w = calloc(1, sizeof(*w));
	w->c = c;
	w->close_after = close_after;
	snprintf(w->text, sizeof(w->text), "%s", text);
	uv_buf_t b = uv_buf_init(w->text, (unsigned)strlen(w->text));
	uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

/* smtp_line answers one command line, or collects one DATA line. */
static void smtp_line(struct sink_conn *c, const char *line)
{
	struct sink *s = c->sink;
	if (c->in_data) {
		if (strcmp(line, ".") == 0) {
			c->in_data = false;
			s->messages++;
			reply(c, "250 2.0.0 queued\r\n", false);
		} else {
			s->data_len += (size_t)snprintf(
			    s->data + s->data_len, sizeof(s->data) - s->data_len, "%s\n", line);
		}
		return;
	}
	if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0)
		reply(c, "250 sink\r\n", false);
	else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
		size_t l = strlen(s->rcpt);
		snprintf(s->rcpt + l, sizeof(s->rcpt) - l, "%s;", line + 8);
		reply(c, "250 ok\r\n", false);
	} else if (strncasecmp(line, "DATA", 4) == 0) {
		c->in_data = true;
		reply(c, "354 go ahead\r\n", false);
	} else if (strncasecmp(line, "QUIT", 4) == 0)
		reply(c, "221 bye\r\n", true);
	else
		reply(c, "250 ok\r\n", false);
}

/* http_try answers once the whole request (headers + Content-Length body) is in. */
static void http_try(struct sink_conn *c)
{
	c->buf[c->len] = '\0';
	char *end = strstr(c->buf, "\r\n\r\n");
	if (end == NULL)
		return;
	const char *cl = strcasestr(c->buf, "Content-Length:");
	size_t want = cl ? (size_t)atoi(cl + 15) : 0;
	if (c->len < (size_t)(end + 4 - c->buf) + want)
		return;
	struct sink *s = c->sink;
	snprintf(s->request, sizeof(s->request), "%s", c->buf);
	s->messages++;
	char resp[128];
	snprintf(resp, sizeof(resp),
	         "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	         s->http_status);
	reply(c, resp, true);
	c->len = 0;
}

static void conn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
	struct sink_conn *c = h->data;
	*buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct sink_conn *c = st->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)nread;
	if (c->sink->silent) {
		c->len = 0;
		return;
	}
	if (c->sink->http) {
		http_try(c);
		return;
	}
	char *nl;
	c->buf[c->len] = '\0';
	while ((nl = strstr(c->buf, "\r\n")) != NULL) {
		*nl = '\0';
		smtp_line(c, c->buf);
		size_t used = (size_t)(nl + 2 - c->buf);
		memmove(c->buf, nl + 2, c->len - used + 1);
		c->len -= used;
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct sink *s = server->data;
	struct sink_conn *c = calloc(1, sizeof(*c));
	c->sink = s;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
	if (!s->http && !s->silent)
		reply(c, "220 sink ESMTP\r\n", false);
}

/* sink_start listens on 127.0.0.1 on a free port; returns the port. */
static int sink_start(uv_loop_t *loop, struct sink *s)
{
	struct sockaddr_in addr;
	uv_ip4_addr("127.0.0.1", 0, &addr);
	uv_tcp_init(loop, &s->server);
	s->server.data = s;
	assert_int_equal(uv_tcp_bind(&s->server, (const struct sockaddr *)&addr, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s->server, 8, on_connection), 0);
	struct sockaddr_in bound;
	int len = sizeof(bound);
	uv_tcp_getsockname(&s->server, (struct sockaddr *)&bound, &len);
	return ntohs(bound.sin_port);
}

static void close_sink(void *arg)
{
	struct sink *s = arg;
	uv_close((uv_handle_t *)&s->server, NULL);
}

static void test_funnel_mail(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sink *s = calloc(1, sizeof(*s));
	int port = sink_start(&loop, s);
	char url[64];
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", port);

	struct efm_config cfg = base_cfg();
	cfg.user_email = "dba@example.com, oncall@example.com";
	cfg.from_email = "efm@db1.example.com";
	cfg.notification_smtp_url = url;
	struct notifier *n = notify_new(&loop, &cfg, "10.0.1.11");
	notify_set_state_fn(n, state_fn, NULL);
	struct notify_args a = {.role = "Master", .node = "10.0.1.11"};
	notify_emit(n, NOTIFY_DB_FAILURE, &a);
	notify_close(n, close_sink, s);
	uint64_t t0 = uv_hrtime();
	uv_run(&loop, UV_RUN_DEFAULT);
	/* The sink shares the loop: had curl blocked it (SMTP "done", QUIT), nothing would flow. */
	assert_true(uv_hrtime() - t0 < 3000000000ULL);
	assert_int_equal(uv_loop_close(&loop), 0);

	assert_int_equal(s->messages, 1);
	assert_non_null(strstr(s->rcpt, "<dba@example.com>"));
	assert_non_null(strstr(s->rcpt, "<oncall@example.com>"));
	assert_non_null(strstr(s->data, "Subject: [efm] SEVERE: Master database failure in "
	                                "cluster acctg\n"));
	assert_non_null(strstr(s->data, "From: efm@db1.example.com\n"));
	assert_non_null(strstr(s->data, "To: dba@example.com, oncall@example.com\n"));
	assert_non_null(strstr(s->data, "Message-ID: <"));
	assert_non_null(strstr(s->data, "@db1.example.com>\n"));
	assert_non_null(strstr(s->data, "Date: "));
	assert_non_null(strstr(s->data, "Content-Type: text/plain; charset=utf-8\n"));
	assert_non_null(strstr(s->data, "\n\nNode:          10.0.1.11\n"));
	assert_non_null(strstr(s->data, "The database on 10.0.1.11 has failed."));
	free(s);
}

static void test_mail_server_silent(void **state)
{
	char logpath[128];
	capture_log("silent", logpath, sizeof(logpath));
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sink *s = calloc(1, sizeof(*s));
	s->silent = true;
	int port = sink_start(&loop, s);
	char url[64];
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", port);
	struct efm_config cfg = base_cfg();
	cfg.user_email = "dba@example.com";
	cfg.notification_smtp_url = url;
	struct notifier *n = notify_new(&loop, &cfg, "10.0.1.11");
	notify_emit(n, NOTIFY_MASTER_FENCED, NULL);
	notify_close(n, close_sink, s);
	uint64_t t0 = uv_hrtime();
	uv_run(&loop, UV_RUN_DEFAULT);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(uv_loop_close(&loop), 0);
	log_open(NULL);
	/* The flush wait, then the running transfer is aborted within about a second. */
	assert_true(ms >= NOTIFY_CLOSE_FLUSH_MS - 100);
	assert_true(ms < NOTIFY_CLOSE_FLUSH_MS + 3000);
	char *text = slurp(logpath);
	assert_non_null(strstr(text, "1 notifications not sent"));
	free(text);
	free(s);
}

static void test_funnel_webhook(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sink *s = calloc(1, sizeof(*s));
	s->http = true;
	s->http_status = 200;
	int port = sink_start(&loop, s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);

	struct efm_config cfg = base_cfg();
	cfg.notification_webhook_url = url;
	struct notifier *n = notify_new(&loop, &cfg, "10.0.1.11");
	struct notify_args a = {.path = "/run/efm/acctg.lock"};
	notify_emit(n, NOTIFY_LOCK_REMOVED, &a);
	notify_close(n, close_sink, s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);

	assert_int_equal(s->messages, 1);
	assert_non_null(strstr(s->request, "POST /hook HTTP/1.1\r\n"));
	assert_non_null(strcasestr(s->request, "Content-Type: application/json\r\n"));
	cJSON *j = cJSON_Parse(strstr(s->request, "\r\n\r\n") + 4);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "event")->valuestring, "lock.removed");
	assert_string_equal(cJSON_GetObjectItem(j, "severity")->valuestring, "WARNING");
	assert_string_equal(cJSON_GetObjectItem(j, "cluster")->valuestring, "acctg");
	assert_string_equal(cJSON_GetObjectItem(j, "node")->valuestring, "10.0.1.11");
	assert_non_null(strstr(cJSON_GetObjectItem(j, "body")->valuestring, "/run/efm/acctg.lock"));
	assert_int_equal(strlen(cJSON_GetObjectItem(j, "time")->valuestring), 20);
	cJSON_Delete(j);
	free(s);
}

static void test_webhook_error_retried(void **state)
{
	char logpath[128];
	capture_log("webhook500", logpath, sizeof(logpath));
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sink *s = calloc(1, sizeof(*s));
	s->http = true;
	s->http_status = 500;
	int port = sink_start(&loop, s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
	struct efm_config cfg = base_cfg();
	cfg.notification_webhook_url = url;
	struct notifier *n = notify_new(&loop, &cfg, "10.0.1.11");
	notify_emit(n, NOTIFY_FAILOVER_COMPLETED, NULL);
	notify_close(n, close_sink, s); /* flushing is bounded: gives up after 5 s */
	uint64_t t0 = uv_now(&loop);
	uv_run(&loop, UV_RUN_DEFAULT);
	uint64_t spent = uv_now(&loop) - t0;
	assert_int_equal(uv_loop_close(&loop), 0);
	log_open(NULL);
	assert_true(s->messages >= 2); /* retried after 1 s, 2 s */
	assert_true(spent >= NOTIFY_CLOSE_FLUSH_MS - 100 && spent < NOTIFY_CLOSE_FLUSH_MS + 3000);
	char *text = slurp(logpath);
	assert_non_null(strstr(text, "HTTP 500"));
	assert_non_null(strstr(text, "not sent"));
	free(text);
	free(s);
}

/* ---------- message composition ---------- */

static void test_smtp_message(void **state)
{
	char rcpt[4][256];
	assert_int_equal(smtp_split_recipients(" a@x.org,b@y.org ;  bad <c@z> d@w.net", rcpt, 4),
	                 3);
	assert_string_equal(rcpt[0], "a@x.org");
	assert_string_equal(rcpt[2], "d@w.net");
	assert_int_equal(smtp_split_recipients("", rcpt, 4), 0);

	struct smtp_mail m = {.from = "",
	                      .to = "a@x.org",
	                      .subject = "[efm] INFO: caf\xc3\xa9\r\nBcc: evil@x",
	                      .body = "line one\nline two"};
	char *msg = smtp_build_message(&m, 0);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
	assert_non_null(strstr(msg, "From: efm@"));          /* default sender */
	assert_non_null(strstr(msg, "Subject: =?UTF-8?B?")); /* non-ASCII encoded */
	assert_null(strstr(msg, "\r\nBcc:"));                /* no header injection */
	assert_non_null(strstr(msg, "\r\n\r\nline one\r\nline two\r\n"));
	free(msg);
}

static void test_webhook_payload(void **state)
{
	struct webhook_msg w = {.event = "db.failure",
	                        .severity = "SEVERE",
	                        .subject = "s \"q\"",
	                        .body = "b\nc",
	                        .cluster = "acctg",
	                        .node = "n",
	                        .time = 86400};
	char *text = webhook_payload(&w);
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "subject")->valuestring, "s \"q\"");
	assert_string_equal(cJSON_GetObjectItem(j, "time")->valuestring, "1970-01-02T00:00:00Z");
	cJSON_Delete(j);
	free(text);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/efm-test-notify-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	log_open(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_event_renders),
	    cmocka_unit_test(test_severities),
	    cmocka_unit_test(test_render_values),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_rate_limit_summary),
	    cmocka_unit_test(test_summary_goes_first),
	    cmocka_unit_test(test_drop_oldest),
	    cmocka_unit_test(test_retry_then_give_up),
	    cmocka_unit_test(test_funnel_script),
	    cmocka_unit_test(test_ring_keeps_last),
	    cmocka_unit_test(test_funnel_mail),
	    cmocka_unit_test(test_mail_server_silent),
	    cmocka_unit_test(test_funnel_webhook),
	    cmocka_unit_test(test_webhook_error_retried),
	    cmocka_unit_test(test_smtp_message),
	    cmocka_unit_test(test_webhook_payload),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
