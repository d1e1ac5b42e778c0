/*
 * rpc.c - JSON requests between agents over authenticated links (rpc.h).
 *
 * Object lifetimes: every conn, call and link counts in r->alive; the rpc
 * struct is freed once rpc_close was called and the count reached zero.
 * A conn is freed when its stream and its frame timer have closed and
 * nobody holds a reference; a call when its connect has ended and its
 * timer has closed; a link when its connect has ended after rpc_close or
 * rpc_drop_link.
 */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "ratelog.h"
#include "transport.h"

enum conn_kind { CONN_INBOUND, CONN_CALL, CONN_LINK };

struct rpc_call_req;
struct rpc_link;

struct rpc_conn {
	struct rpc *r;
	enum conn_kind kind;
	uv_stream_t *stream; /* plain end of the link (transport.h); NULL once closed */
	struct frame_decoder dec;
	uv_timer_t frame_timer; /* runs while a frame is partly received */
	bool timer_open;
	unsigned frames; /* frames received, to tell a new partial frame from the last one */
	uint64_t peer_id;
	char addr[256];
	int refs;
	struct rpc_call_req *call; /* CONN_CALL: the call waiting for the reply */
	struct rpc_link *link;     /* CONN_LINK: the link it serves */
	struct rpc_conn *next;
};

struct rpc_call_req {
	struct rpc *r;
	char address[256]; /* where the call goes, for the log */
	uv_timer_t timer;
	struct rpc_conn *conn; /* once connected */
	cJSON *req;            /* sent once connected */
	rpc_call_cb cb;
	void *arg;
	bool done;       /* cb called */
	bool connecting; /* transport connect outstanding */
	bool timer_open;
	struct rpc_call_req *next;
};

struct rpc_link {
	struct rpc *r;
	char address[256];
	struct rpc_conn *conn; /* NULL while down */
	bool connecting;
	bool dead; /* dropped: free when the connect ends */
	struct rpc_link *next;
};

struct rpc {
	uv_loop_t *loop;
	struct raft_uv_transport *t;
	rpc_request_cb cb;
	void *arg;
	uint64_t frame_deadline_ms; /* a frame begun must be complete within this */
	struct ratelog warn;        /* broken and hostile links */
	bool closing;
	int alive; /* conns + calls + links not yet freed */
	struct rpc_conn *conns;
	struct rpc_call_req *calls;
	struct rpc_link *links;
};

static void maybe_free_rpc(struct rpc *r)
{
	if (r->closing && r->alive == 0)
		free(r);
}

cJSON *rpc_msg(const char *type)
{
	cJSON *m = cJSON_CreateObject();
	if (m != NULL && cJSON_AddStringToObject(m, "type", type) == NULL) {
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

/* unlink_conn removes c from r's list of conns. */
static void unlink_conn(struct rpc_conn *c)
{
	for (struct rpc_conn **p = &c->r->conns; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

static void conn_maybe_free(struct rpc_conn *c)
{
	if (c->stream != NULL || c->timer_open || c->refs > 0)
		return;
	struct rpc *r = c->r;
	unlink_conn(c);
	frame_decoder_free(&c->dec);
	free(c);
	r->alive--;
	maybe_free_rpc(r);
}

static void on_stream_closed(uv_handle_t *h)
{
	struct rpc_conn *c = h->data;
	raft_free(h);
	c->stream = NULL;
	conn_maybe_free(c);
}

static void on_frame_timer_closed(uv_handle_t *h)
{
	struct rpc_conn *c = h->data;
	c->timer_open = false;
	conn_maybe_free(c);
}

static void finish_call(struct rpc_call_req *k, int status, const cJSON *reply);

/* conn_close closes c's stream and detaches it from its call or link. */
static void conn_close(struct rpc_conn *c)
{
	if (c->stream == NULL || uv_is_closing((uv_handle_t *)c->stream))
		return;
	uv_close((uv_handle_t *)c->stream, on_stream_closed);
	uv_close((uv_handle_t *)&c->frame_timer, on_frame_timer_closed);
	if (c->link != NULL && c->link->conn == c)
		c->link->conn = NULL;
	c->link = NULL;
	if (c->call != NULL) {
		struct rpc_call_req *k = c->call;
		c->call = NULL;
		k->conn = NULL;
		finish_call(k, -ECONNRESET, NULL);
	}
}

void rpc_conn_ref(struct rpc_conn *c)
{
	c->refs++;
}

void rpc_conn_unref(struct rpc_conn *c)
{
	c->refs--;
	conn_maybe_free(c);
}

void rpc_reply_release(struct rpc_conn *c, cJSON *msg)
{
	if (c == NULL) {
		cJSON_Delete(msg);
		return;
	}
	rpc_reply(c, msg);
	rpc_conn_unref(c);
}

void rpc_reply(struct rpc_conn *c, cJSON *msg)
{
	if (msg != NULL && c->stream != NULL && !uv_is_closing((uv_handle_t *)c->stream)) {
		int rc = frame_send(c->stream, msg, NULL, NULL);
		if (rc < 0) {
			log_fine("rpc %s: reply not sent: %s", c->addr, strerror(-rc));
			conn_close(c);
		}
	}
	cJSON_Delete(msg);
}

/* on_frame dispatches one decoded frame according to the link's kind. */
static int on_frame(void *arg, const cJSON *msg)
{
	struct rpc_conn *c = arg;
	c->frames++;
	if (c->kind == CONN_CALL) {
		struct rpc_call_req *k = c->call;
		if (k != NULL) {
			c->call = NULL;
			k->conn = NULL;
			finish_call(k, 0, msg);
		}
		conn_close(c);
		return 1;
	}
	if (c->r->closing)
		return 1;
	c->r->cb(c->r->arg, c, c->peer_id, c->addr, msg);
	return c->stream == NULL || uv_is_closing((uv_handle_t *)c->stream) ? 1 : 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536]; /* one loop thread: reads never overlap */
	(void)h;
	(void)suggested;
	buf->base = slab;
	buf->len = sizeof(slab);
}

/* on_frame_deadline: a peer started a frame and did not finish it in time. */
static void on_frame_deadline(uv_timer_t *t)
{
	struct rpc_conn *c = t->data;
	ratelog_warn(&c->r->warn, uv_now(c->r->loop),
	             "rpc %s: frame not finished within %llu ms (%zu of %zu bytes); closing the "
	             "link",
	             c->addr, (unsigned long long)c->r->frame_deadline_ms, c->dec.payload_len,
	             c->dec.payload_need);
	conn_close(c);
}

/*
 * frame_clock runs the frame deadline after a read: started when a frame
 * has begun, restarted when the partial frame is a new one (frames were
 * completed in this read), stopped when no frame is pending.
 */
static void frame_clock(struct rpc_conn *c, unsigned frames_before)
{
	if (c->stream == NULL || uv_is_closing((uv_handle_t *)c->stream))
		return;
	if (!frame_decoder_partial(&c->dec))
		uv_timer_stop(&c->frame_timer);
	else if (c->frames != frames_before || !uv_is_active((uv_handle_t *)&c->frame_timer))
		uv_timer_start(&c->frame_timer, on_frame_deadline, c->r->frame_deadline_ms, 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct rpc_conn *c = s->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_fine("rpc %s: link closed: %s", c->addr, uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	c->refs++; /* the callback may drop the last other reference */
	unsigned frames_before = c->frames;
	int rc = frame_decoder_feed(&c->dec, buf->base, (size_t)nread, on_frame, c);
	if (rc < 0) {
		ratelog_warn(&c->r->warn, uv_now(c->r->loop),
		             "rpc %s: protocol error (%s); closing the link", c->addr,
		             strerror(-rc));
		conn_close(c);
	} else {
		frame_clock(c, frames_before);
	}
	rpc_conn_unref(c);
}

/* new_conn wraps an authenticated stream and starts reading it; NULL after closing it. */
static struct rpc_conn *new_conn(struct rpc *r, enum conn_kind kind, uv_stream_t *stream,
                                 uint64_t peer_id, const char *addr)
{
	struct rpc_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
		return NULL;
	}
	c->r = r;
	c->kind = kind;
	c->stream = stream;
	c->peer_id = peer_id;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	frame_decoder_init(&c->dec, 0);
	uv_timer_init(r->loop, &c->frame_timer);
	c->frame_timer.data = c;
	c->timer_open = true;
	stream->data = c;
	c->next = r->conns;
	r->conns = c;
	r->alive++;
	int rc = uv_read_start(stream, on_alloc, on_read);
	if (rc < 0) {
		log_fine("rpc %s: cannot read: %s", addr, uv_strerror(rc));
		conn_close(c);
		return NULL;
	}
	return c;
}

static void on_accept(void *arg, uint64_t id, const char *address, uv_stream_t *stream)
{
	struct rpc *r = arg;
	if (r->closing) {
		uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
		return;
	}
	(void)new_conn(r, CONN_INBOUND, stream, id, address);
}

struct rpc *rpc_new(uv_loop_t *loop, struct raft_uv_transport *t, rpc_request_cb cb, void *arg)
{
	struct rpc *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->loop = loop;
	r->t = t;
	r->cb = cb;
	r->arg = arg;
	r->frame_deadline_ms = RPC_FRAME_DEADLINE_MS;
	ratelog_init(&r->warn, "rpc", uv_now(loop));
	transport_set_rpc_accept(t, on_accept, r);
	return r;
}

/* ---- calls ---- */

static void call_maybe_free(struct rpc_call_req *k)
{
	if (k->connecting || k->timer_open || !k->done)
		return;
	struct rpc *r = k->r;
	for (struct rpc_call_req **p = &r->calls; *p != NULL; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	cJSON_Delete(k->req);
	free(k);
	r->alive--;
	maybe_free_rpc(r);
}

static void on_call_timer_closed(uv_handle_t *h)
{
	struct rpc_call_req *k = h->data;
	k->timer_open = false;
	call_maybe_free(k);
}

static void finish_call(struct rpc_call_req *k, int status, const cJSON *reply)
{
	if (k->done)
		return;
	k->done = true;
	if (k->conn != NULL) {
		struct rpc_conn *c = k->conn;
		k->conn = NULL;
		c->call = NULL;
		conn_close(c);
	}
	k->cb(k->arg, status, reply);
	if (!uv_is_closing((uv_handle_t *)&k->timer))
		uv_close((uv_handle_t *)&k->timer, on_call_timer_closed);
}

static void on_call_timeout(uv_timer_t *t)
{
	finish_call(t->data, -ETIMEDOUT, NULL);
}

static void on_call_connected(void *arg, int status, uint64_t peer_id, uv_stream_t *stream)
{
	struct rpc_call_req *k = arg;
	k->connecting = false;
	if (status != 0 || k->done) {
		if (stream != NULL)
			uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
		finish_call(k, status == RAFT_CANCELED ? -ECANCELED : -ECONNREFUSED, NULL);
		call_maybe_free(k);
		return;
	}
	struct rpc_conn *c = new_conn(k->r, CONN_CALL, stream, peer_id, k->address);
	if (c == NULL) {
		finish_call(k, -ECONNRESET, NULL);
		return;
	}
	c->call = k;
	k->conn = c;
	int rc = frame_send(stream, k->req, NULL, NULL);
	if (rc < 0)
		finish_call(k, rc, NULL);
}

int rpc_call(struct rpc *r, const char *address, cJSON *req, uint64_t timeout_ms, rpc_call_cb cb,
             void *arg)
{
	if (req == NULL)
		return -ENOMEM;
	if (r->closing) {
		cJSON_Delete(req);
		return -ECANCELED;
	}
	struct rpc_call_req *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	k->r = r;
	snprintf(k->address, sizeof(k->address), "%s", address);
	k->req = req;
	k->cb = cb;
	k->arg = arg;
	int rc = transport_connect_rpc(r->t, 0, address, on_call_connected, k);
	if (rc != 0) {
		cJSON_Delete(req);
		free(k);
		return rc == RAFT_NOMEM ? -ENOMEM : -ECONNREFUSED;
	}
	k->connecting = true;
	uv_timer_init(r->loop, &k->timer);
	k->timer.data = k;
	k->timer_open = true;
	uv_timer_start(&k->timer, on_call_timeout, timeout_ms, 0);
	k->next = r->calls;
	r->calls = k;
	r->alive++;
	return 0;
}

/* ---- persistent one-way links ---- */

static void link_maybe_free(struct rpc_link *l)
{
	if (!l->dead || l->connecting || l->conn != NULL)
		return;
	struct rpc *r = l->r;
	free(l);
	r->alive--;
	maybe_free_rpc(r);
}

static void on_link_connected(void *arg, int status, uint64_t peer_id, uv_stream_t *stream)
{
	struct rpc_link *l = arg;
	l->connecting = false;
	if (status != 0 || l->dead) {
		if (stream != NULL)
			uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
		link_maybe_free(l);
		return;
	}
	struct rpc_conn *c = new_conn(l->r, CONN_LINK, stream, peer_id, l->address);
	if (c != NULL) {
		c->link = l;
		l->conn = c;
	}
}

static struct rpc_link *find_link(struct rpc *r, const char *address, bool unlink)
{
	for (struct rpc_link **p = &r->links; *p != NULL; p = &(*p)->next)
		if (strcmp((*p)->address, address) == 0) {
			struct rpc_link *l = *p;
			if (unlink)
				*p = l->next;
			return l;
		}
	return NULL;
}

void rpc_send(struct rpc *r, const char *address, cJSON *msg)
{
	if (msg == NULL || r->closing) {
		cJSON_Delete(msg);
		return;
	}
	struct rpc_link *l = find_link(r, address, false);
	if (l == NULL) {
		l = calloc(1, sizeof(*l));
		if (l == NULL) {
			cJSON_Delete(msg);
			return;
		}
		l->r = r;
		snprintf(l->address, sizeof(l->address), "%s", address);
		l->next = r->links;
		r->links = l;
		r->alive++;
	}
	if (l->conn != NULL && l->conn->stream != NULL) {
		if (frame_send(l->conn->stream, msg, NULL, NULL) < 0)
			conn_close(l->conn);
	} else if (!l->connecting) {
		if (transport_connect_rpc(r->t, 0, address, on_link_connected, l) == 0)
			l->connecting = true;
	}
	cJSON_Delete(msg);
}

/* kill_link closes and forgets l (it is already unlinked from r->links). */
static void kill_link(struct rpc_link *l)
{
	l->dead = true;
	if (l->conn != NULL) {
		struct rpc_conn *c = l->conn;
		conn_close(c);
		l->conn = NULL;
	}
	link_maybe_free(l);
}

void rpc_drop_link(struct rpc *r, const char *address)
{
	struct rpc_link *l = find_link(r, address, true);
	if (l != NULL)
		kill_link(l);
}

void rpc_set_frame_deadline(struct rpc *r, uint64_t ms)
{
	r->frame_deadline_ms = ms;
}

void rpc_close(struct rpc *r)
{
	if (r == NULL || r->closing)
		return;
	r->closing = true;
	transport_set_rpc_accept(r->t, NULL, NULL);
	r->alive++; /* hold r while tearing down */
	while (r->links != NULL) {
		struct rpc_link *l = r->links;
		r->links = l->next;
		kill_link(l);
	}
	for (struct rpc_call_req *k = r->calls; k != NULL; k = k->next)
		finish_call(k, -ECANCELED, NULL);
	for (struct rpc_conn *c = r->conns; c != NULL;) {
		struct rpc_conn *next = c->next;
		conn_close(c);
		c = next;
	}
	r->alive--;
	maybe_free_rpc(r);
}
