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
 *
 * Who gets a place and for how long is admin_guard.c's business.  libuv
 * accepts for as long as connections are pending, which a client
 * reconnecting in a loop can make forever; so after ADMIN_ACCEPT_BURST in
 * one loop turn the server leaves the next one pending (libuv then stops
 * watching the listener) until the loop has run its timers and other
 * sockets once.  The permission rules are in admin_perm.c.
 */
#define _GNU_SOURCE /* struct ucred */
#include "admin_int.h"

#include <errno.h>
#include <fcntl.h>
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

/* admin_conn_close closes both handles of c (once); the request may still be out to a handler. */
void admin_conn_close(struct admin_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	admin_guard_release(c); /* uv_close closes the socket at once */
	uv_close((uv_handle_t *)&c->pipe, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* on_write_done ends the connection after the reply line went out (or failed to). */
static void on_write_done(uv_write_t *w, int status)
{
	struct admin_conn *c = w->data;
	if (status < 0 && status != UV_ECANCELED)
		log_fine("admin: client %s: reply not delivered: %s", c->who, uv_strerror(status));
	admin_conn_close(c);
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
		admin_conn_close(c);
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
		admin_conn_close(c);
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
	char why[512];
	c->body =
	    admin_parse_request(c->in, c->in_len, &req->command, &req->args, why, sizeof(why));
	if (c->body == NULL) {
		admin_reply_error(req, "%s", why);
		return;
	}
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
	if (!admin_arg_check_json(req->command, req->args, &req->values, why, sizeof(why))) {
		char more[96];
		if (admin_log_limit(&c->srv->invalid_log, uv_now(c->srv->loop), more, sizeof(more)))
			log_info("admin: client %s: \"%s\" refused: %s%s", c->who, req->command,
			         why, more);
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
			admin_conn_close(c);
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
		char more[96];
		if (c->srv != NULL &&
		    admin_log_limit(&c->srv->invalid_log, uv_now(c->srv->loop), more, sizeof(more)))
			log_warning("admin: client %s: request longer than %d bytes refused%s",
			            c->who, ADMIN_REQUEST_MAX, more);
		c->awaiting_reply = true;
		admin_reply_error(&c->req, "request too large (limit %d bytes)", ADMIN_REQUEST_MAX);
	}
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

static void on_pause_end(uv_timer_t *t);

/* take_turn counts a client against this loop turn's burst; false when it must wait. */
static bool take_turn(struct admin_server *s)
{
	uint64_t now = uv_now(s->loop);
	if (now != s->turn_ms) {
		s->turn_ms = now;
		s->turn_accepts = 0;
	}
	if (s->turn_accepts >= ADMIN_ACCEPT_BURST) {
		if (!uv_is_active((uv_handle_t *)&s->pause))
			uv_timer_start(&s->pause, on_pause_end, 0, 0);
		return false;
	}
	s->turn_accepts++;
	return true;
}

/* on_connection accepts a client and starts reading its request, or refuses it at the cap. */
static void on_connection(uv_stream_t *listener, int status)
{
	struct admin_server *s = listener->data;
	if (status >= 0 && !take_turn(s))
		return; /* left pending: on_pause_end takes it */
	if (status < 0) {
		char more[96];
		if (admin_log_limit(&s->accept_log, uv_now(s->loop), more, sizeof(more)))
			log_warning("admin %s: accept failed: %s%s", s->path, uv_strerror(status),
			            more);
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
		admin_conn_close(c);
		return;
	}
	if (!conn_read_creds(c)) {
		log_warning("admin %s: cannot read the client's credentials: %s", s->path,
		            strerror(errno));
		admin_conn_close(c);
		return;
	}
	if (!admin_guard_admit(s, c))
		return;
	admin_guard_watch_idle(c);
	rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	if (rc < 0) {
		log_warning("admin: client %s: cannot read: %s", c->who, uv_strerror(rc));
		admin_conn_close(c);
	}
}

/* on_pause_end takes the client left pending after a burst, which resumes accepting. */
static void on_pause_end(uv_timer_t *t)
{
	struct admin_server *s = t->data;
	s->turn_accepts = 0;
	s->turn_ms = uv_now(s->loop);
	on_connection((uv_stream_t *)&s->listener, 0);
}

/* on_server_handle_closed frees the server once its listener and timer are closed. */
static void on_server_handle_closed(uv_handle_t *h)
{
	struct admin_server *s = h->data;
	if (--s->open_handles > 0)
		return;
	free(s->path);
	free(s);
}

/* close_server_handles closes the listener (and any client left pending) and the timer. */
static void close_server_handles(struct admin_server *s)
{
	uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->pause, on_server_handle_closed);
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
	s->cap = admin_guard_cap();
	s->cap_others = s->cap - s->cap / 4;
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;
	uv_timer_init(loop, &s->pause);
	s->pause.data = s;
	s->open_handles = 2;

	int rc = uv_pipe_bind(&s->listener, path);
	if (rc == 0 && chmod(path, 0666) != 0)
		rc = -errno;
	/* A short backlog turns a burst of connects into EAGAIN for the operator's efm. */
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
	if (rc < 0) {
		log_severe("admin %s: cannot listen: %s", path, uv_strerror(rc));
		unlink(path);
		close_server_handles(s);
		return rc;
	}
	log_config("admin %s: listening (at most %u clients at once, %u of them for users other "
	           "than root and the agent's)",
	           path, s->cap, s->cap_others);
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
		admin_conn_close(c);
		c = next;
	}
	s->conns = NULL;
	unlink(s->path);
	close_server_handles(s);
}
