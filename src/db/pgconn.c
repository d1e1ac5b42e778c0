/*
 * pgconn.c - an asynchronous libpq connection on a uv loop.
 *
 * libpq is driven only through its non-blocking calls: PQconnectStartParams
 * and PQconnectPoll while connecting, PQsendQuery, PQflush, PQconsumeInput
 * and PQgetResult while querying, each woken by a uv_poll_t on PQsocket().
 * One uv timer bounds the step in progress.
 *
 * Memory: the pgconn owns the timer and at most one getaddrinfo request and
 * is freed when the timer has closed and no request is outstanding.  Poll
 * handles are allocated on their own and freed by their own close callback,
 * because connecting replaces them (see watch()).
 */
#include "pgconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

struct pgpoll {
	uv_poll_t handle;
	struct pgconn *owner; /* only read while the handle is active */
	int fd;
};

struct pgconn {
	uv_loop_t *loop;
	enum pgconn_state state;
	char label[EFM_HOST_MAX + 32];

	/* What pgconn_open was given, copied so the caller need not keep it. */
	char host[EFM_HOST_MAX];
	char hostaddr[INET6_ADDRSTRLEN];
	char port[16];
	char dbname[128];
	char user[128];
	char password[256];
	bool ssl_require;

	PGconn *pg;
	struct pgpoll *poll; /* the current poll handle, NULL when none */
	uv_timer_t timer;    /* bounds the current step; also delivers deferred failures */
	uint64_t step_ms;    /* the bound of the current step, for messages */
	uv_getaddrinfo_t gai;
	bool gai_pending; /* gai's callback has not run yet */
	bool timer_closed;

	/* A failure found inside a call that must not call back: reported from the timer. */
	bool deferred;
	enum db_conn_error deferred_err;
	char deferred_msg[512];

	/* The result being collected while QUERYING. */
	PGresult *result;
	char query_error[512];  /* first error result's message, "" when none */
	char query_sqlstate[6]; /* and its SQLSTATE, "" when none */

	int server_version;
	unsigned gen; /* counts steps ended (callbacks made) */
	pgconn_open_cb open_cb;
	pgconn_query_cb query_cb;
	void *arg;
	/* pgconn_watch_idle: told once when the idle connection is lost. */
	pgconn_lost_cb lost_cb;
	void *lost_arg;
};

static const char *const state_names[] = {
    [PGCONN_RESOLVING] = "resolving", [PGCONN_CONNECTING] = "connecting",
    [PGCONN_READY] = "ready",         [PGCONN_QUERYING] = "querying",
    [PGCONN_FAILED] = "failed",       [PGCONN_CLOSING] = "closing",
};

/* The moves set_state allows: [from][to]. */
static const bool state_moves[6][6] = {
    [PGCONN_RESOLVING] =
        {[PGCONN_CONNECTING] = true, [PGCONN_FAILED] = true, [PGCONN_CLOSING] = true},
    [PGCONN_CONNECTING] = {[PGCONN_READY] = true, [PGCONN_FAILED] = true, [PGCONN_CLOSING] = true},
    /* READY -> FAILED: an idle connection watched by pgconn_watch_idle was lost. */
    [PGCONN_READY] = {[PGCONN_QUERYING] = true, [PGCONN_FAILED] = true, [PGCONN_CLOSING] = true},
    [PGCONN_QUERYING] = {[PGCONN_READY] = true, [PGCONN_FAILED] = true, [PGCONN_CLOSING] = true},
    [PGCONN_FAILED] = {[PGCONN_CLOSING] = true},
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *t);

/* pgconn_state_name is the state's name for log lines. */
const char *pgconn_state_name(enum pgconn_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "?";
	return state_names[s];
}

/* set_state is the only place that moves c->state; an impossible move is a bug. */
static void set_state(struct pgconn *c, enum pgconn_state to)
{
	if (!state_moves[c->state][to]) {
		log_severe("%s: impossible connection state change %s -> %s", c->label,
		           pgconn_state_name(c->state), pgconn_state_name(to));
		abort();
	}
	log_finest("%s: connection %s -> %s", c->label, pgconn_state_name(c->state),
	           pgconn_state_name(to));
	c->state = to;
}

/* pgconn_state tells where c is in its lifetime. */
enum pgconn_state pgconn_state(const struct pgconn *c)
{
	return c->state;
}

/* pgconn_server_version is PQserverVersion() as seen when c became READY. */
int pgconn_server_version(const struct pgconn *c)
{
	return c->server_version;
}

/* on_poll_close frees a poll handle; it never touches its former owner. */
static void on_poll_close(uv_handle_t *h)
{
	free(h->data);
}

/* unwatch stops and closes the current poll handle; it must run before the socket is closed. */
static void unwatch(struct pgconn *c)
{
	if (c->poll == NULL)
		return;
	/* uv_close stops the watcher at once, so libpq may close the fd right after. */
	uv_close((uv_handle_t *)&c->poll->handle, on_poll_close);
	c->poll = NULL;
}

/*
 * watch waits for events on PQsocket().  With fresh set the poll handle is
 * always replaced: while connecting libpq may close its socket and open
 * another that gets the same descriptor number, which the kernel has
 * silently dropped from epoll, so comparing numbers is not enough.
 */
static int watch(struct pgconn *c, int events, bool fresh)
{
	int fd = PQsocket(c->pg);
	if (fd < 0)
		return UV_EBADF;
	if (c->poll != NULL && (fresh || c->poll->fd != fd))
		unwatch(c);
	if (c->poll == NULL) {
		struct pgpoll *p = calloc(1, sizeof(*p));
		if (p == NULL)
			return UV_ENOMEM;
		int rc = uv_poll_init(c->loop, &p->handle, fd);
		if (rc < 0) {
			free(p);
			return rc;
		}
		p->handle.data = p;
		p->owner = c;
		p->fd = fd;
		c->poll = p;
	}
	return uv_poll_start(&c->poll->handle, events, on_poll);
}

/* drop_pg abandons the libpq connection: stop watching its socket, then finish it. */
static void drop_pg(struct pgconn *c)
{
	unwatch(c);
	if (c->pg != NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (c->result != NULL) {
		PQclear(c->result);
		c->result = NULL;
	}
}

/* fail ends the current step with err, calls its callback, and leaves c FAILED. */
static void fail(struct pgconn *c, enum db_conn_error err, const char *msg)
{
	enum pgconn_state was = c->state;
	char line[512];
	char text[512];
	/* A verbose error ends with the server's source location: no use to an operator. */
	snprintf(text, sizeof(text), "%s", msg);
	char *loc = strstr(text, "\nLOCATION:");
	if (loc != NULL)
		*loc = '\0';
	pgconn_one_line(text, line, sizeof(line));
	if (line[0] == '\0')
		snprintf(line, sizeof(line), "unknown libpq error");
	drop_pg(c);
	uv_timer_stop(&c->timer);
	c->deferred = false;
	set_state(c, PGCONN_FAILED);
	log_fine("%s: %s failed: %s", c->label, pgconn_state_name(was), line);
	c->gen++;
	if (was == PGCONN_QUERYING)
		c->query_cb(c, c->arg, NULL, err, line);
	else
		c->open_cb(c, c->arg, err, line);
}

/* fail_later reports a failure from the timer, for calls that must not call back. */
static void fail_later(struct pgconn *c, enum db_conn_error err, const char *msg)
{
	c->deferred = true;
	c->deferred_err = err;
	snprintf(c->deferred_msg, sizeof(c->deferred_msg), "%s", msg);
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* on_timer ends the current step: a deferred failure, or the step's timeout. */
static void on_timer(uv_timer_t *t)
{
	struct pgconn *c = t->data;
	if (c->deferred) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", c->deferred_msg);
		fail(c, c->deferred_err, msg);
		return;
	}
	if (c->state == PGCONN_RESOLVING && c->gai_pending)
		(void)uv_cancel((uv_req_t *)&c->gai); /* its callback still runs and is ignored */
	char msg[128];
	snprintf(msg, sizeof(msg), "timed out after %llu ms while %s",
	         (unsigned long long)c->step_ms, pgconn_state_name(c->state));
	fail(c, DB_ERR_TIMEOUT, msg);
}

/* start_step arms the timer for a step of timeout_ms. */
static void start_step(struct pgconn *c, uint64_t timeout_ms)
{
	c->step_ms = timeout_ms;
	c->deferred = false;
	uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
}

/* connect_step advances PQconnectPoll by one step. */
static void connect_step(struct pgconn *c)
{
	PostgresPollingStatusType r = PQconnectPoll(c->pg);
	int rc = 0;
	switch (r) {
	case PGRES_POLLING_READING:
		rc = watch(c, UV_READABLE, true);
		break;
	case PGRES_POLLING_WRITING:
		rc = watch(c, UV_WRITABLE, true);
		break;
	case PGRES_POLLING_FAILED: {
		const char *msg = PQerrorMessage(c->pg);
		fail(c, pgconn_classify(msg), msg);
		return;
	}
	case PGRES_POLLING_OK:
	default:
		if (PQsetnonblocking(c->pg, 1) != 0) {
			fail(c, DB_ERR_OTHER, PQerrorMessage(c->pg));
			return;
		}
		c->server_version = PQserverVersion(c->pg);
		/* Query errors carry their SQLSTATE in the result; keep their text plain. */
		PQsetErrorVerbosity(c->pg, PQERRORS_DEFAULT);
		if (c->poll != NULL)
			uv_poll_stop(&c->poll->handle);
		uv_timer_stop(&c->timer);
		set_state(c, PGCONN_READY);
		c->gen++;
		c->open_cb(c, c->arg, DB_ERR_NONE, "");
		return;
	}
	if (rc < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot watch the connection socket: %s",
		         uv_strerror(rc));
		fail(c, pgconn_classify_uv(rc), msg);
	}
}

/* start_connect hands the parameters to libpq and waits for the socket to be writable. */
static void start_connect(struct pgconn *c)
{
	const char *kw[12];
	const char *val[12];
	int n = 0;
	kw[n] = "host", val[n++] = c->host;
	if (c->hostaddr[0] != '\0')
		kw[n] = "hostaddr", val[n++] = c->hostaddr;
	kw[n] = "port", val[n++] = c->port;
	kw[n] = "dbname", val[n++] = c->dbname;
	kw[n] = "user", val[n++] = c->user;
	if (c->password[0] != '\0')
		kw[n] = "password", val[n++] = c->password;
	kw[n] = "sslmode", val[n++] = c->ssl_require ? "require" : "prefer";
	/* Acquiring GSS credentials can block on a KDC; nothing may block the loop. */
	kw[n] = "gssencmode", val[n++] = "disable";
	kw[n] = "application_name", val[n++] = "efm";
	kw[n] = NULL, val[n] = NULL;

	set_state(c, PGCONN_CONNECTING);
	c->pg = PQconnectStartParams(kw, val, 0);
	if (c->pg == NULL) {
		fail_later(c, DB_ERR_AGENT_RESOURCES, "out of memory starting a connection");
		return;
	}
	/*
	 * libpq keeps no SQLSTATE of a refused connection, but a verbose
	 * message carries it ("FATAL:  53300: ..."), and the failure detector
	 * needs it: "too many clients" and "shutting down" mean opposite things.
	 * The server's reply is read by later PQconnectPoll calls, so this is in
	 * time.
	 */
	PQsetErrorVerbosity(c->pg, PQERRORS_VERBOSE);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		fail_later(c, pgconn_classify(PQerrorMessage(c->pg)), PQerrorMessage(c->pg));
		return;
	}
	/* libpq: after PQconnectStart behave as if PQconnectPoll said WRITING. */
	int rc = watch(c, UV_WRITABLE, true);
	if (rc < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot watch the connection socket: %s",
		         uv_strerror(rc));
		fail_later(c, pgconn_classify_uv(rc), msg);
	}
}

/* maybe_free frees c once its timer has closed and no lookup is outstanding. */
static void maybe_free(struct pgconn *c)
{
	if (c->timer_closed && !c->gai_pending) {
		/* The password was copied in; do not leave it in freed memory. */
		memset(c->password, 0, sizeof(c->password));
		free(c);
	}
}

/* on_resolved connects to the first address found for the host. */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct pgconn *c = req->data;
	c->gai_pending = false;
	if (c->state != PGCONN_RESOLVING) {
		/* Timed out or closed meanwhile. */
		uv_freeaddrinfo(res);
		if (c->state == PGCONN_CLOSING)
			maybe_free(c);
		return;
	}
	if (status < 0 || res == NULL) {
		char msg[EFM_HOST_MAX + 64];
		snprintf(msg, sizeof(msg), "could not resolve host \"%s\": %s", c->host,
		         uv_strerror(status));
		uv_freeaddrinfo(res);
		fail(c, pgconn_classify_uv(status), msg);
		return;
	}
	int rc = uv_ip_name(res->ai_addr, c->hostaddr, sizeof(c->hostaddr));
	uv_freeaddrinfo(res);
	if (rc < 0) {
		fail(c, DB_ERR_OTHER, "could not format the resolved address");
		return;
	}
	log_finer("%s: %s resolved to %s", c->label, c->host, c->hostaddr);
	start_connect(c);
}

/* numeric_host writes an IPv4 or IPv6 literal host to out; false when host is a name. */
static bool numeric_host(const char *host, char *out, size_t outlen)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, host, buf) == 1)
		return inet_ntop(AF_INET, buf, out, (socklen_t)outlen) != NULL;
	if (inet_pton(AF_INET6, host, buf) == 1)
		return inet_ntop(AF_INET6, buf, out, (socklen_t)outlen) != NULL;
	return false;
}

/* pgconn_open copies p and starts resolving or connecting, bounded by timeout_ms. */
struct pgconn *pgconn_open(uv_loop_t *loop, const char *label, const struct pgconn_params *p,
                           uint64_t timeout_ms, pgconn_open_cb cb, void *arg)
{
	struct pgconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	if (uv_timer_init(loop, &c->timer) < 0) {
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->timer.data = c;
	c->gai.data = c;
	c->open_cb = cb;
	c->arg = arg;
	snprintf(c->label, sizeof(c->label), "%s", label);
	snprintf(c->host, sizeof(c->host), "%s", p->host);
	snprintf(c->port, sizeof(c->port), "%d", p->port);
	snprintf(c->dbname, sizeof(c->dbname), "%s", p->dbname);
	snprintf(c->user, sizeof(c->user), "%s", p->user);
	snprintf(c->password, sizeof(c->password), "%s", p->password != NULL ? p->password : "");
	c->ssl_require = p->ssl_require;
	c->state = PGCONN_RESOLVING;
	start_step(c, timeout_ms);

	if (c->host[0] == '/' || numeric_host(c->host, c->hostaddr, sizeof(c->hostaddr))) {
		/* A socket directory or an address literal: libpq does no lookup. */
		start_connect(c);
		return c;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	int rc = uv_getaddrinfo(loop, &c->gai, on_resolved, c->host, NULL, &hints);
	if (rc < 0) {
		char msg[EFM_HOST_MAX + 64];
		snprintf(msg, sizeof(msg), "could not resolve host \"%s\": %s", c->host,
		         uv_strerror(rc));
		fail_later(c, pgconn_classify_uv(rc), msg);
		return c;
	}
	c->gai_pending = true;
	return c;
}

/* query_done hands the collected result (or error) to the caller. */
static void query_done(struct pgconn *c)
{
	if (c->query_error[0] != '\0' || c->result == NULL) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s",
		         c->query_error[0] != '\0' ? c->query_error : "query returned no result");
		fail(c, pgconn_classify_sqlstate(c->query_sqlstate, msg), msg);
		return;
	}
	PGresult *res = c->result;
	c->result = NULL;
	uv_timer_stop(&c->timer);
	if (c->poll != NULL)
		uv_poll_stop(&c->poll->handle);
	set_state(c, PGCONN_READY);
	c->gen++;
	/* c may be closed or reused by the callback; res is ours either way. */
	c->query_cb(c, c->arg, res, DB_ERR_NONE, "");
	PQclear(res);
}

/* query_step moves a query on after its socket became ready (events) or right after sending. */
static void query_step(struct pgconn *c, int events)
{
	int flush = 0;
	if (events & UV_READABLE) {
		if (PQconsumeInput(c->pg) == 0) {
			fail(c, pgconn_classify(PQerrorMessage(c->pg)), PQerrorMessage(c->pg));
			return;
		}
	}
	flush = PQflush(c->pg);
	if (flush < 0) {
		fail(c, pgconn_classify(PQerrorMessage(c->pg)), PQerrorMessage(c->pg));
		return;
	}
	while (!PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);
		if (res == NULL) {
			query_done(c);
			return;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			if (c->result != NULL)
				PQclear(c->result);
			c->result = res;
			continue;
		}
		if (c->query_error[0] == '\0') {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(c->query_sqlstate, sizeof(c->query_sqlstate), "%s",
			         state != NULL ? state : "");
			pgconn_one_line(PQresultErrorMessage(res), c->query_error,
			                sizeof(c->query_error));
		}
		if (c->query_error[0] == '\0')
			snprintf(c->query_error, sizeof(c->query_error), "unexpected result %s",
			         PQresStatus(st));
		PQclear(res);
	}
	int rc = watch(c, UV_READABLE | (flush == 1 ? UV_WRITABLE : 0), false);
	if (rc < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot watch the connection socket: %s",
		         uv_strerror(rc));
		fail(c, DB_ERR_OTHER, msg);
	}
}

/* pgconn_query sends sql on a READY connection; the outcome comes to cb. */
int pgconn_query(struct pgconn *c, const char *sql, uint64_t timeout_ms, pgconn_query_cb cb,
                 void *arg)
{
	if (c->state == PGCONN_QUERYING)
		return -EBUSY;
	if (c->state != PGCONN_READY)
		return -ENOTCONN;
	c->query_cb = cb;
	c->arg = arg;
	c->lost_cb = NULL; /* a query watches the socket itself */
	c->query_error[0] = '\0';
	c->query_sqlstate[0] = '\0';
	set_state(c, PGCONN_QUERYING);
	start_step(c, timeout_ms);
	if (PQsendQuery(c->pg, sql) == 0) {
		fail_later(c, pgconn_classify(PQerrorMessage(c->pg)), PQerrorMessage(c->pg));
		return 0;
	}
	/* Nothing arrived yet: only flush and arm the poll, never call back from here. */
	int flush = PQflush(c->pg);
	if (flush < 0) {
		fail_later(c, pgconn_classify(PQerrorMessage(c->pg)), PQerrorMessage(c->pg));
		return 0;
	}
	int rc = watch(c, UV_READABLE | (flush == 1 ? UV_WRITABLE : 0), false);
	if (rc < 0)
		fail_later(c, pgconn_classify_uv(rc), uv_strerror(rc));
	return 0;
}

/*
 * idle_event: the socket of a READY connection woke up.  A server that goes
 * away (a crashed postmaster's backends exit, a fast shutdown) closes it,
 * which libpq sees as a failed PQconsumeInput or a bad status; anything else
 * (a parameter status, a notice) is consumed and the watch goes on.
 */
static void idle_event(struct pgconn *c, int status)
{
	if (c->lost_cb == NULL) {
		uv_poll_stop(&c->poll->handle); /* nothing expected: a READY connection is idle */
		return;
	}
	if (status >= 0 && PQconsumeInput(c->pg) != 0 && PQstatus(c->pg) == CONNECTION_OK)
		return;
	char msg[512];
	pgconn_one_line(PQerrorMessage(c->pg), msg, sizeof(msg));
	if (msg[0] == '\0')
		snprintf(msg, sizeof(msg), "the server closed the connection");
	pgconn_lost_cb cb = c->lost_cb;
	void *arg = c->lost_arg;
	c->lost_cb = NULL;
	drop_pg(c);
	set_state(c, PGCONN_FAILED);
	log_fine("%s: idle connection lost: %s", c->label, msg);
	c->gen++;
	cb(c, arg, msg);
}

int pgconn_watch_idle(struct pgconn *c, pgconn_lost_cb lost, void *arg)
{
	if (c->state != PGCONN_READY)
		return -ENOTCONN;
	c->lost_cb = lost;
	c->lost_arg = arg;
	int rc = watch(c, UV_READABLE | UV_DISCONNECT, false);
	if (rc < 0)
		c->lost_cb = NULL;
	return rc;
}

/* on_poll moves the connect or the query on when the socket is ready. */
static void on_poll(uv_poll_t *h, int status, int events)
{
	struct pgpoll *p = h->data;
	struct pgconn *c = p->owner;
	if (c->state == PGCONN_READY) {
		idle_event(c, status);
		return;
	}
	if (status < 0) {
		/*
		 * libuv reports POLLERR (a refused connect, a reset) as an error
		 * and stops the handle.  libpq reads the socket error and words it
		 * far better, so let it take one step; fail here only if it did
		 * not end the step itself.
		 */
		unsigned gen = c->gen;
		if (c->state == PGCONN_CONNECTING)
			connect_step(c);
		else if (c->state == PGCONN_QUERYING)
			query_step(c, UV_READABLE | UV_WRITABLE);
		if (c->gen == gen &&
		    (c->state == PGCONN_CONNECTING || c->state == PGCONN_QUERYING)) {
			/* The server's own last words, when it sent any, say most. */
			char msg[512];
			const char *pqmsg = c->pg != NULL ? PQerrorMessage(c->pg) : "";
			bool by_server = c->state == PGCONN_QUERYING && c->query_error[0] != '\0';
			if (by_server)
				snprintf(msg, sizeof(msg), "%s", c->query_error);
			else if (pqmsg[0] != '\0')
				snprintf(msg, sizeof(msg), "%s", pqmsg);
			else
				snprintf(msg, sizeof(msg), "connection socket error: %s",
				         uv_strerror(status));
			fail(c, pgconn_classify_sqlstate(by_server ? c->query_sqlstate : NULL, msg),
			     msg);
		}
		return;
	}
	if (c->state == PGCONN_CONNECTING)
		connect_step(c);
	else if (c->state == PGCONN_QUERYING)
		query_step(c, events);
}

/* on_timer_close is the last close of a pgconn (unless a lookup is still out). */
static void on_timer_close(uv_handle_t *h)
{
	struct pgconn *c = h->data;
	c->timer_closed = true;
	maybe_free(c);
}

/* pgconn_close abandons c's step without calling back and frees c asynchronously. */
void pgconn_close(struct pgconn *c)
{
	if (c == NULL || c->state == PGCONN_CLOSING)
		return;
	set_state(c, PGCONN_CLOSING);
	drop_pg(c);
	if (c->gai_pending)
		(void)uv_cancel((uv_req_t *)&c->gai);
	uv_close((uv_handle_t *)&c->timer, on_timer_close);
}
