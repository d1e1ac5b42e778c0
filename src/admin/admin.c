/*
 * admin.c - the admin socket: a libuv server on RUN_DIR/CLUSTER.sock that
 * reads one JSON request per connection and sends one JSON reply.  The
 * blocking client the efm program uses is in admin_client.c.
 *
 * Life of a connection: READING (a timer bounds how long a client may stay
 * silent, a size cap bounds what it may send) -> the handler runs, possibly
 * answering later from another callback -> WRITING one line -> closed.  The
 * connection struct embeds the admin_request, so it lives until both of its
 * handles went through their close callbacks and the handler has replied.
 */
#define _GNU_SOURCE /* struct ucred, getgrouplist */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define ADMIN_REQUEST_MAX (64 * 1024)        /* bytes of one request line */
#define ADMIN_IDLE_MS     5000               /* a client must send its request within this */
#define ADMIN_BACKLOG     16
#define ADMIN_EFM_GROUP   "efm"

struct admin_conn;

struct admin_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char *path;
	const struct admin_command *table;
	size_t n_commands;
	void *agent;
	struct admin_conn *conns; /* every connection not yet freed, doubly linked */
};

struct admin_conn {
	struct admin_request req; /* what the handler sees; valid until admin_reply */
	struct admin_server *srv; /* NULL once the server has been closed */
	struct admin_conn *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer; /* closes a client that never sends its request */
	uv_write_t write_req;
	int open_handles;    /* handles whose close callback has not run yet */
	bool closing;        /* conn_close was called */
	bool got_request;    /* the request line is complete; later input is ignored */
	bool awaiting_reply; /* the request is out to a handler (or an error reply) */
	char *in;            /* request bytes received so far */
	size_t in_len;
	cJSON *body;     /* the parsed request; req points into it */
	char *out;       /* the reply line being written */
	char rbuf[4096]; /* libuv reads land here */
	char who[64];    /* "uid 1000 pid 4242" for log lines */
};

static void conn_close(struct admin_conn *c);

/* conn_maybe_free frees c once its handles are closed and no handler holds its request. */
static void conn_maybe_free(struct admin_conn *c)
{
	if (c->open_handles > 0 || c->awaiting_reply)
		return;
	if (c->srv != NULL) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			c->srv->conns = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
	}
	cJSON_Delete(c->body);
	free(c->in);
	free(c->out);
	free(c);
}

/* on_conn_handle_closed counts down the connection's handles. */
static void on_conn_handle_closed(uv_handle_t *h)
{
	struct admin_conn *c = h->data;
	c->open_handles--;
	conn_maybe_free(c);
}

/* conn_close closes both handles of c (once); the request may still be out to a handler. */
static void conn_close(struct admin_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->pipe, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* on_write_done ends the connection after the reply line went out (or failed to). */
static void on_write_done(uv_write_t *w, int status)
{
	struct admin_conn *c = w->data;
	if (status < 0 && status != UV_ECANCELED)
		log_fine("admin: client %s: reply not delivered: %s", c->who, uv_strerror(status));
	conn_close(c);
}

/* admin_reply sends reply as one line and closes; drops it if the client is gone. */
void admin_reply(struct admin_request *req, cJSON *reply)
{
	struct admin_conn *c =
	    (struct admin_conn *)((char *)req - offsetof(struct admin_conn, req));
	if (!c->awaiting_reply) {
		log_severe("admin: client %s: second reply to \"%s\" ignored", c->who,
		           req->command != NULL ? req->command : "?");
		cJSON_Delete(reply);
		return;
	}
	c->awaiting_reply = false;
	if (c->closing) {
		cJSON_Delete(reply);
		conn_maybe_free(c);
		return;
	}
	char *text = reply != NULL ? cJSON_PrintUnformatted(reply) : NULL;
	cJSON_Delete(reply);
	size_t len = text != NULL ? strlen(text) : 0;
	c->out = text != NULL ? malloc(len + 2) : NULL;
	if (c->out == NULL) {
		log_severe("admin: client %s: out of memory rendering the reply", c->who);
		free(text);
		conn_close(c);
		return;
	}
	memcpy(c->out, text, len);
	c->out[len] = '\n';
	c->out[len + 1] = '\0';
	free(text);

	uv_read_stop((uv_stream_t *)&c->pipe);
	uv_buf_t buf = uv_buf_init(c->out, (unsigned)(len + 1));
	c->write_req.data = c;
	int rc = uv_write(&c->write_req, (uv_stream_t *)&c->pipe, &buf, 1, on_write_done);
	if (rc < 0) {
		log_fine("admin: client %s: cannot send the reply: %s", c->who, uv_strerror(rc));
		conn_close(c);
	}
}

/* admin_reply_error sends {"ok": false, "error": message}. */
void admin_reply_error(struct admin_request *req, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *r = cJSON_CreateObject();
	if (r != NULL) {
		cJSON_AddFalseToObject(r, "ok");
		cJSON_AddStringToObject(r, "error", msg);
	}
	admin_reply(req, r);
}

/* find_command looks name up in the server's table. */
static const struct admin_command *find_command(const struct admin_server *s, const char *name)
{
	for (size_t i = 0; i < s->n_commands; i++)
		if (strcmp(s->table[i].name, name) == 0)
			return &s->table[i];
	return NULL;
}

/* conn_dispatch parses the request line and hands it to its command's handler. */
static void conn_dispatch(struct admin_conn *c)
{
	struct admin_request *req = &c->req;
	/* From here on exactly one admin_reply is owed, ours or the handler's. */
	c->awaiting_reply = true;
	c->body = cJSON_ParseWithLength(c->in, c->in_len);
	if (!cJSON_IsObject(c->body)) {
		admin_reply_error(req, "malformed request: expected one JSON object");
		return;
	}
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(c->body, "command");
	if (!cJSON_IsString(cmd) || cmd->valuestring[0] == '\0') {
		admin_reply_error(req, "malformed request: no \"command\"");
		return;
	}
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(c->body, "args");
	if (args == NULL)
		args = cJSON_AddArrayToObject(c->body, "args");
	if (!cJSON_IsArray(args)) {
		admin_reply_error(req, "malformed request: \"args\" must be an array");
		return;
	}
	req->command = cmd->valuestring;
	req->args = args;
	req->body = c->body;

	if (c->srv == NULL) {
		admin_reply_error(req, "the agent is shutting down");
		return;
	}
	const struct admin_command *ac = find_command(c->srv, req->command);
	if (ac == NULL) {
		admin_reply_error(req, "unknown command \"%s\"", req->command);
		return;
	}
	if (ac->mutating && !admin_caller_may_mutate(req->uid, req->gid)) {
		log_warning("admin: client %s: refused \"%s\": only root, the agent's user or "
		            "members of group %s may run it",
		            c->who, req->command, ADMIN_EFM_GROUP);
		admin_reply_error(req,
		                  "permission denied: \"%s\" must be run by root, the agent's user "
		                  "or a member of group %s",
		                  req->command, ADMIN_EFM_GROUP);
		return;
	}
	char why[512];
	if (!admin_arg_check_json(req->command, req->args, &req->values, why, sizeof(why))) {
		log_info("admin: client %s: \"%s\" refused: %s", c->who, req->command, why);
		admin_reply_error(req, "%s: %s", req->command, why);
		return;
	}
	log_fine("admin: client %s: %s", c->who, req->command);
	/* The handler may free c (a synchronous reply to a vanished client): touch nothing after.
	 */
	ac->handler(req);
}

/* on_alloc lends libuv the connection's read buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct admin_conn *c = h->data;
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

/* conn_take_input appends received bytes; true when a whole line is in. */
static bool conn_take_input(struct admin_conn *c, const char *data, size_t n, bool *too_big)
{
	const char *nl = memchr(data, '\n', n);
	size_t take = nl != NULL ? (size_t)(nl - data) : n;
	*too_big = false;
	if (c->in_len + take > ADMIN_REQUEST_MAX) {
		*too_big = true;
		return false;
	}
	char *grown = realloc(c->in, c->in_len + take + 1);
	if (grown == NULL) {
		*too_big = true;
		return false;
	}
	c->in = grown;
	memcpy(c->in + c->in_len, data, take);
	c->in_len += take;
	c->in[c->in_len] = '\0';
	return nl != NULL;
}

/* on_read collects the request line; after it, watches only for the client leaving. */
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct admin_conn *c = stream->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		uv_read_stop(stream);
		if (!c->got_request && nread == UV_EOF && c->in_len > 0) {
			/* A client that half-closes after its request still gets an answer. */
			c->got_request = true;
			uv_timer_stop(&c->timer);
			conn_dispatch(c);
			return;
		}
		if (!c->got_request || nread != UV_EOF)
			conn_close(c);
		/* EOF after the request: the peer may only have shut down its side; the write
		 * tells. */
		return;
	}
	if (c->got_request)
		return; /* nothing more is expected; ignore it */
	bool too_big;
	if (conn_take_input(c, buf->base, (size_t)nread, &too_big)) {
		c->got_request = true;
		uv_timer_stop(&c->timer);
		conn_dispatch(c);
	} else if (too_big) {
		c->got_request = true;
		uv_timer_stop(&c->timer);
		log_warning("admin: client %s: request longer than %d bytes refused", c->who,
		            ADMIN_REQUEST_MAX);
		c->awaiting_reply = true;
		admin_reply_error(&c->req, "request too large (limit %d bytes)", ADMIN_REQUEST_MAX);
	}
}

/* on_idle_timeout drops a client that connected but sent no complete request in time. */
static void on_idle_timeout(uv_timer_t *t)
{
	struct admin_conn *c = t->data;
	log_info("admin: client %s: no request within %d ms, closing", c->who, ADMIN_IDLE_MS);
	conn_close(c);
}

/* conn_read_creds fills the request's uid/gid/pid from SO_PEERCRED. */
static bool conn_read_creds(struct admin_conn *c)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
		return false;
	c->req.uid = cred.uid;
	c->req.gid = cred.gid;
	c->req.pid = cred.pid;
	snprintf(c->who, sizeof(c->who), "uid %u pid %d", (unsigned)cred.uid, (int)cred.pid);
	return true;
}

/* on_connection accepts a client and starts reading its request. */
static void on_connection(uv_stream_t *listener, int status)
{
	struct admin_server *s = listener->data;
	if (status < 0) {
		log_warning("admin %s: accept failed: %s", s->path, uv_strerror(status));
		return;
	}
	struct admin_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_severe("admin %s: out of memory accepting a client", s->path);
		return;
	}
	c->srv = s;
	c->req.agent = s->agent;
	snprintf(c->who, sizeof(c->who), "(unknown)");
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;

	int rc = uv_accept(listener, (uv_stream_t *)&c->pipe);
	if (rc < 0) {
		log_warning("admin %s: accept failed: %s", s->path, uv_strerror(rc));
		conn_close(c);
		return;
	}
	if (!conn_read_creds(c)) {
		log_warning("admin %s: cannot read the client's credentials: %s", s->path,
		            strerror(errno));
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_idle_timeout, ADMIN_IDLE_MS, 0);
	rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	if (rc < 0) {
		log_warning("admin: client %s: cannot read: %s", c->who, uv_strerror(rc));
		conn_close(c);
	}
}

/* on_listener_closed frees the server once its listening handle is closed. */
static void on_listener_closed(uv_handle_t *h)
{
	struct admin_server *s = h->data;
	free(s->path);
	free(s);
}

/* admin_server_start binds and listens on path; see admin.h. */
int admin_server_start(uv_loop_t *loop, const char *path, const struct admin_command *table,
                       size_t n_commands, void *agent, struct admin_server **out)
{
	struct sockaddr_un sa;
	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_severe("admin %s: socket path too long (at most %zu bytes)", path,
		           sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	/* A client that leaves before its reply must not kill the agent with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (unlink(path) != 0 && errno != ENOENT) {
		int err = errno;
		log_severe("admin %s: cannot remove the stale socket: %s", path, strerror(err));
		return -err;
	}
	struct admin_server *s = calloc(1, sizeof(*s));
	char *p = strdup(path);
	if (s == NULL || p == NULL) {
		free(s);
		free(p);
		return -ENOMEM;
	}
	s->loop = loop;
	s->path = p;
	s->table = table;
	s->n_commands = n_commands;
	s->agent = agent;
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;

	int rc = uv_pipe_bind(&s->listener, path);
	if (rc == 0 && chmod(path, 0666) != 0)
		rc = -errno;
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, ADMIN_BACKLOG, on_connection);
	if (rc < 0) {
		log_severe("admin %s: cannot listen: %s", path, uv_strerror(rc));
		unlink(path);
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return rc;
	}
	log_config("admin %s: listening", path);
	*out = s;
	return 0;
}

/* admin_server_close stops listening and closes every client; pending handlers may still reply. */
void admin_server_close(struct admin_server *s)
{
	if (s == NULL)
		return;
	for (struct admin_conn *c = s->conns; c != NULL;) {
		struct admin_conn *next = c->next;
		c->srv = NULL; /* it outlives the server only to absorb a late admin_reply */
		c->prev = c->next = NULL;
		conn_close(c);
		c = next;
	}
	s->conns = NULL;
	unlink(s->path);
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

/* group_id_of looks up a group's id; false when it does not exist. */
static bool group_id_of(const char *name, gid_t *out)
{
	struct group grp, *found = NULL;
	char buf[16384];
	if (getgrnam_r(name, &grp, buf, sizeof(buf), &found) != 0 || found == NULL)
		return false;
	*out = grp.gr_gid;
	return true;
}

/* user_in_group tells whether uid's supplementary groups include gid. */
static bool user_in_group(uid_t uid, gid_t gid)
{
	struct passwd pw, *found = NULL;
	char buf[16384];
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
		return false;
	gid_t small[64];
	gid_t *groups = small;
	int n = (int)(sizeof(small) / sizeof(small[0]));
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0) {
		/* n now holds the number needed. */
		groups = calloc((size_t)n, sizeof(*groups));
		if (groups == NULL || getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0) {
			free(groups);
			return false;
		}
	}
	bool member = false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			member = true;
	if (groups != small)
		free(groups);
	return member;
}

/*
 * admin_caller_may_mutate: root, the agent's euid, or group "efm".  The
 * group lookups go through NSS and may block (LDAP, sssd); they run only for
 * mutating commands, which are rare and operator-driven, so the stall is an
 * accepted cost rather than something a status poll can trigger.
 */
bool admin_caller_may_mutate(uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == geteuid())
		return true;
	gid_t efm_gid;
	if (!group_id_of(ADMIN_EFM_GROUP, &efm_gid))
		return false;
	return gid == efm_gid || user_in_group(uid, efm_gid);
}
