/*
 * transport.c - libraft's TCP transport with the peerauth handshake in front.
 *
 * Each link being set up is a struct link: outbound ones go through
 * RESOLVING -> CONNECTING -> HANDSHAKE, inbound ones start in HANDSHAKE; all
 * end in HANDED_OVER (the stream now belongs to libraft or the RPC layer) or
 * CLOSING (refused, failed or cancelled).  A link owns a timer (the deadline)
 * and, until handed over, its TCP handle; its memory is freed when the last
 * of its handles has closed and no getaddrinfo is pending, and only then is
 * an outbound link's callback fired with an error.  The transport's close
 * callback fires once the listener and every link are gone.
 *
 * Reads during the handshake are sized to exactly what peerauth still
 * wants, so no byte after the handshake is ever consumed here.
 */
#include "transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "address.h"
#include "log.h"

/* Refusal warnings: at most WARN_BURST per WARN_WINDOW_MS, then a count. */
#define WARN_WINDOW_MS 10000
#define WARN_BURST     10

enum link_phase {
	LINK_RESOLVING,
	LINK_CONNECTING,
	LINK_HANDSHAKE,
	LINK_HANDED_OVER,
	LINK_CLOSING,
};

struct tp;

struct link {
	struct tp *tp;
	struct link *prev, *next;
	bool inbound;
	enum link_phase phase;
	uv_tcp_t *tcp; /* raft_malloc'd: libraft raft_free()s it after handover */
	bool tcp_open; /* tcp initialised and not yet closed by us */
	uv_timer_t timer;
	bool timer_open;
	uv_getaddrinfo_t gai;
	bool gai_pending;
	struct addrinfo *ai_list; /* resolved addresses, freed at the end */
	struct addrinfo *ai_next; /* next address to try */
	uv_connect_t connect_req;
	struct peerauth pa;
	uint8_t rbuf[PEERAUTH_MSG_MAX];
	char peer[PEERAUTH_ADDR_MAX + 16]; /* "ip:port" inbound, target address outbound */
	char peer_ip[64];                  /* inbound source address, for the filter */
	int status;                        /* outbound: reported to the callback */
	struct raft_uv_connect *raft_req;  /* outbound RAFT link */
	raft_uv_connect_cb raft_cb;
	transport_rpc_connect_cb rpc_cb; /* outbound RPC link */
	void *rpc_arg;
};

/* A handshake message on its way out; freed by its write callback only. */
struct link_write {
	uv_write_t req;
	size_t len;
	uint8_t data[];
};

struct tp {
	struct raft_uv_transport *t;
	uv_loop_t *loop;
	uint8_t key[PEERAUTH_KEY_LEN];
	struct transport_options opt;
	bool have_identity;
	uint64_t id;
	char address[PEERAUTH_ADDR_MAX + 1];
	char bind[PEERAUTH_ADDR_MAX + 1]; /* empty: derive from address */
	uv_tcp_t listener;
	bool listener_open; /* handle initialised, close callback not yet run */
	bool listening;
	raft_uv_accept_cb raft_accept;
	transport_rpc_accept_cb rpc_accept;
	void *rpc_arg;
	transport_allow_cb allow;
	void *allow_arg;
	struct link *links;
	unsigned n_inbound; /* inbound links in handshake */
	bool closing;
	uv_timer_t closer; /* closed on every close request so the callback is async */
	bool closer_open;
	raft_uv_transport_close_cb close_cbs[2];
	unsigned n_close_cbs;
	uint64_t warn_window_ms; /* uv_now() at the start of the current window */
	unsigned warn_count;     /* warnings logged in this window */
	unsigned warn_dropped;   /* warnings not logged in this window */
};

static void link_abort(struct link *l, int status);

/* tp_warn logs a refused or broken peer link, at most WARN_BURST per window. */
static void tp_warn(struct tp *tp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tp_warn(struct tp *tp, const char *fmt, ...)
{
	uint64_t now = uv_now(tp->loop);
	if (now - tp->warn_window_ms >= WARN_WINDOW_MS) {
		if (tp->warn_dropped > 0)
			log_warning("peer transport: %u more refused peer links not logged",
			            tp->warn_dropped);
		tp->warn_window_ms = now;
		tp->warn_count = 0;
		tp->warn_dropped = 0;
	}
	if (tp->warn_count >= WARN_BURST) {
		tp->warn_dropped++;
		return;
	}
	tp->warn_count++;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(EFM_WARNING, fmt, ap);
	va_end(ap);
}

/* split_address cuts "host:port" or "[v6]:port" into its parts. */
static bool split_address(const char *address, char *host, size_t hostlen, char *port,
                          size_t portlen)
{
	struct efm_addr a;
	if (!address_parse(address, &a) || strlen(a.host) >= hostlen)
		return false;
	snprintf(host, hostlen, "%s", a.host);
	snprintf(port, portlen, "%u", a.port);
	return true;
}

/* sockaddr_text formats an address as "ip:port" / "[ip]:port", and the bare ip. */
static void sockaddr_text(const struct sockaddr_storage *ss, char *out, size_t outlen, char *ip,
                          size_t iplen)
{
	char name[64] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		uv_ip4_name(in, name, sizeof(name));
		port = ntohs(in->sin_port);
		snprintf(out, outlen, "%s:%d", name, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		uv_ip6_name(in6, name, sizeof(name));
		port = ntohs(in6->sin6_port);
		snprintf(out, outlen, "[%s]:%d", name, port);
	} else {
		snprintf(out, outlen, "unknown peer");
	}
	snprintf(ip, iplen, "%s", name);
}

/* set_link_options makes a dead peer show quickly: no Nagle, keepalive, user timeout. */
static void set_link_options(struct tp *tp, uv_tcp_t *tcp, const char *peer)
{
	uv_os_fd_t fd;
	int on;

	if (uv_tcp_nodelay(tcp, 1) != 0 ||
	    uv_tcp_keepalive(tcp, 1, tp->opt.keepalive_idle_s) != 0 ||
	    uv_fileno((uv_handle_t *)tcp, &fd) != 0) {
		log_fine("peer %s: cannot set TCP options", peer);
		return;
	}
	on = (int)tp->opt.keepalive_intvl_s;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &on, sizeof(on)) != 0)
		log_fine("peer %s: TCP_KEEPINTVL: %s", peer, strerror(errno));
	on = (int)tp->opt.keepalive_cnt;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &on, sizeof(on)) != 0)
		log_fine("peer %s: TCP_KEEPCNT: %s", peer, strerror(errno));
	unsigned int ut = tp->opt.user_timeout_ms;
	if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut)) != 0)
		log_fine("peer %s: TCP_USER_TIMEOUT: %s", peer, strerror(errno));
}

/* tp_maybe_closed fires the close callbacks once nothing of the transport is left. */
static void tp_maybe_closed(struct tp *tp)
{
	if (!tp->closing || tp->listener_open || tp->closer_open || tp->links != NULL)
		return;
	unsigned n = tp->n_close_cbs;
	raft_uv_transport_close_cb cbs[2] = {tp->close_cbs[0], tp->close_cbs[1]};
	tp->n_close_cbs = 0;
	for (unsigned i = 0; i < n; i++)
		if (cbs[i] != NULL)
			cbs[i](tp->t);
}

/* free_raft_handle is the close callback of a handle allocated with raft_malloc. */
static void free_raft_handle(uv_handle_t *h)
{
	raft_free(h);
}

/* link_finish fires an outbound link's callback (if still owed) and frees the link. */
static void link_finish(struct link *l)
{
	struct tp *tp = l->tp;
	if (l->tcp_open || l->timer_open || l->gai_pending)
		return;
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		tp->links = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	if (l->ai_list != NULL)
		uv_freeaddrinfo(l->ai_list);
	if (l->tcp != NULL)
		raft_free(l->tcp);
	if (l->phase == LINK_CLOSING && !l->inbound) {
		int status = l->status != 0 ? l->status : RAFT_NOCONNECTION;
		if (l->raft_cb != NULL)
			l->raft_cb(l->raft_req, NULL, status);
		else if (l->rpc_cb != NULL)
			l->rpc_cb(l->rpc_arg, status, 0, NULL);
	}
	OPENSSL_cleanse(&l->pa, sizeof(l->pa)); /* holds a copy of the key */
	free(l);
	tp_maybe_closed(tp);
}

/* on_link_tcp_closed: the link's TCP handle is gone (its memory stays until finish). */
static void on_link_tcp_closed(uv_handle_t *h)
{
	struct link *l = h->data;
	l->tcp_open = false;
	link_finish(l);
}

/* on_link_timer_closed: the link's deadline timer is gone. */
static void on_link_timer_closed(uv_handle_t *h)
{
	struct link *l = h->data;
	l->timer_open = false;
	link_finish(l);
}

/* link_abort ends a link that did not (or may not) complete; status for outbound callbacks. */
static void link_abort(struct link *l, int status)
{
	if (l->phase == LINK_CLOSING || l->phase == LINK_HANDED_OVER)
		return;
	if (l->inbound && l->phase == LINK_HANDSHAKE)
		l->tp->n_inbound--;
	l->phase = LINK_CLOSING;
	l->status = status;
	if (l->gai_pending)
		uv_cancel((uv_req_t *)&l->gai); /* the callback still comes, maybe with ECANCELED */
	if (l->tcp_open && !uv_is_closing((uv_handle_t *)l->tcp))
		uv_close((uv_handle_t *)l->tcp, on_link_tcp_closed);
	if (l->timer_open && !uv_is_closing((uv_handle_t *)&l->timer))
		uv_close((uv_handle_t *)&l->timer, on_link_timer_closed);
}

/* link_new allocates a link with its deadline timer and puts it on the transport's list. */
static struct link *link_new(struct tp *tp, bool inbound)
{
	struct link *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->tp = tp;
	l->inbound = inbound;
	uv_timer_init(tp->loop, &l->timer);
	l->timer.data = l;
	l->timer_open = true;
	l->next = tp->links;
	if (tp->links != NULL)
		tp->links->prev = l;
	tp->links = l;
	return l;
}

/* on_write_done frees a handshake write; failures show up as read errors or the deadline. */
static void on_write_done(uv_write_t *req, int status)
{
	free(req->data);
}

/* link_flush sends whatever the handshake queued; false if the write could not start. */
static bool link_flush(struct link *l)
{
	size_t len;
	const uint8_t *out = peerauth_output(&l->pa, &len);
	if (out == NULL)
		return true;
	struct link_write *w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return false;
	memcpy(w->data, out, len);
	w->len = len;
	w->req.data = w;
	peerauth_output_done(&l->pa);
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned int)len);
	if (uv_write(&w->req, (uv_stream_t *)l->tcp, &b, 1, on_write_done) != 0) {
		free(w);
		return false;
	}
	return true;
}

/* link_refuse logs why a link failed (rate-limited WARNING for peers, FINE for plain outages). */
static void link_refuse(struct link *l, bool warn, const char *what)
{
	const char *dir = l->inbound ? "incoming" : "outgoing";
	if (warn)
		tp_warn(l->tp, "peer %s: %s link refused: %s", l->peer, dir, what);
	else
		log_fine("peer %s: %s link failed: %s", l->peer, dir, what);
	link_abort(l, RAFT_NOCONNECTION);
}

/* deliver_inbound hands an authenticated inbound stream to libraft or the RPC layer. */
static void deliver_inbound(struct tp *tp, const struct peerauth *pa, const char *peer,
                            const char *peer_ip, uv_tcp_t *tcp)
{
	const char *why = NULL;
	if (tp->closing)
		why = "transport closing";
	else if (tp->allow != NULL && !tp->allow(tp->allow_arg, pa->peer_id, pa->peer_addr, peer_ip,
	                                         (enum peerauth_channel)pa->channel))
		why = "not in the allowed node list";
	else if (pa->channel == PEERAUTH_CHANNEL_RAFT && tp->raft_accept == NULL)
		why = "raft is not running here";
	else if (pa->channel == PEERAUTH_CHANNEL_RPC && tp->rpc_accept == NULL)
		why = "no RPC service here";
	if (why != NULL) {
		tp_warn(tp, "peer %s: %s link from id %llu (%s) refused: %s", peer,
		        peerauth_channel_name(pa->channel), (unsigned long long)pa->peer_id,
		        pa->peer_addr, why);
		uv_close((uv_handle_t *)tcp, free_raft_handle);
		return;
	}
	log_fine("peer %s: %s link from id %llu (%s) authenticated", peer,
	         peerauth_channel_name(pa->channel), (unsigned long long)pa->peer_id,
	         pa->peer_addr);
	if (pa->channel == PEERAUTH_CHANNEL_RAFT)
		tp->raft_accept(tp->t, pa->peer_id, pa->peer_addr, (uv_stream_t *)tcp);
	else
		tp->rpc_accept(tp->rpc_arg, pa->peer_id, pa->peer_addr, (uv_stream_t *)tcp);
}

/* link_hand_over gives the authenticated stream away and retires the link. */
static void link_hand_over(struct link *l)
{
	struct tp *tp = l->tp;
	uv_tcp_t *tcp = l->tcp;

	uv_read_stop((uv_stream_t *)tcp);
	if (l->inbound)
		tp->n_inbound--;
	l->phase = LINK_HANDED_OVER;
	l->tcp = NULL;
	l->tcp_open = false;
	tcp->data = NULL;
	/* Retire the link before any callback: the callee may close the transport. */
	uv_close((uv_handle_t *)&l->timer, on_link_timer_closed);

	if (l->inbound) {
		/* l stays allocated until the timer close callback, so pa is still valid. */
		deliver_inbound(tp, &l->pa, l->peer, l->peer_ip, tcp);
	} else if (l->raft_cb != NULL) {
		log_fine("peer %s: raft link to id %llu authenticated", l->peer,
		         (unsigned long long)l->pa.peer_id);
		l->raft_cb(l->raft_req, (uv_stream_t *)tcp, 0);
	} else {
		log_fine("peer %s: rpc link to id %llu authenticated", l->peer,
		         (unsigned long long)l->pa.peer_id);
		l->rpc_cb(l->rpc_arg, 0, l->pa.peer_id, (uv_stream_t *)tcp);
	}
}

/* on_alloc offers exactly the bytes the handshake still needs. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct link *l = h->data;
	size_t want = peerauth_want(&l->pa);
	if (want > sizeof(l->rbuf))
		want = sizeof(l->rbuf);
	*buf = uv_buf_init((char *)l->rbuf, (unsigned int)want);
}

/* on_read feeds handshake bytes and acts on the verdict. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct link *l = s->data;
	if (l == NULL || l->phase != LINK_HANDSHAKE)
		return;
	if (nread == 0)
		return;
	if (nread < 0) {
		char what[96];
		snprintf(what, sizeof(what), "connection %s during the handshake",
		         nread == UV_EOF ? "closed" : uv_strerror((int)nread));
		/* A peer that gives up mid-handshake is suspicious inbound, an outage outbound. */
		link_refuse(l, l->inbound, what);
		return;
	}
	enum peerauth_status st = peerauth_feed(&l->pa, (const uint8_t *)buf->base, (size_t)nread);
	if (st == PEERAUTH_FAILED) {
		link_refuse(l, true, l->pa.err);
		return;
	}
	if (!link_flush(l)) {
		link_refuse(l, false, "cannot send handshake");
		return;
	}
	if (st == PEERAUTH_DONE)
		link_hand_over(l);
}

/* on_deadline fires when a link took too long to connect or to authenticate. */
static void on_deadline(uv_timer_t *timer)
{
	struct link *l = timer->data;
	if (l->phase == LINK_HANDSHAKE)
		link_refuse(l, l->inbound, "handshake timed out");
	else
		link_refuse(l, false, "connect timed out");
}

/* link_start_handshake begins reading (and, outbound, sends HELLO) with the handshake deadline. */
static void link_start_handshake(struct link *l)
{
	struct tp *tp = l->tp;
	l->phase = LINK_HANDSHAKE;
	l->tcp->data = l;
	set_link_options(tp, l->tcp, l->peer);
	uv_timer_start(&l->timer, on_deadline, tp->opt.handshake_timeout_ms, 0);
	if (!link_flush(l) || uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read) != 0)
		link_refuse(l, false, "cannot start the handshake");
}

static void link_try_connect(struct link *l);

/* on_connected: TCP is up (or this address failed: try the next one). */
static void on_connected(uv_connect_t *req, int status)
{
	struct link *l = req->data;
	if (l->phase != LINK_CONNECTING)
		return; /* aborted; the close callbacks finish the link */
	if (status != 0) {
		log_fine("peer %s: connect: %s", l->peer, uv_strerror(status));
		if (l->ai_next != NULL) {
			/* The failed handle frees itself; the next address gets a fresh one. */
			uv_close((uv_handle_t *)l->tcp, free_raft_handle);
			l->tcp = NULL;
			l->tcp_open = false;
			link_try_connect(l);
			return;
		}
		link_refuse(l, false, uv_strerror(status));
		return;
	}
	link_start_handshake(l);
}

/* link_try_connect connects to the next resolved address. */
static void link_try_connect(struct link *l)
{
	struct tp *tp = l->tp;
	struct addrinfo *ai = l->ai_next;
	if (ai == NULL) {
		link_refuse(l, false, "no usable address");
		return;
	}
	l->ai_next = ai->ai_next;
	l->tcp = raft_malloc(sizeof(*l->tcp));
	if (l->tcp == NULL) {
		link_refuse(l, false, "out of memory");
		return;
	}
	uv_tcp_init(tp->loop, l->tcp);
	l->tcp->data = l;
	l->tcp_open = true;
	l->connect_req.data = l;
	int rc = uv_tcp_connect(&l->connect_req, l->tcp, ai->ai_addr, on_connected);
	if (rc != 0)
		link_refuse(l, false, uv_strerror(rc));
}

/* on_resolved: the peer's name is resolved; start connecting. */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct link *l = req->data;
	l->gai_pending = false;
	l->ai_list = res;
	l->ai_next = res;
	if (l->phase != LINK_RESOLVING) {
		link_finish(l); /* aborted meanwhile */
		return;
	}
	if (status != 0) {
		link_refuse(l, false, uv_strerror(status));
		return;
	}
	l->phase = LINK_CONNECTING;
	link_try_connect(l);
}

/* link_start_outbound creates an outbound link and starts resolving address. */
static int link_start_outbound(struct tp *tp, const char *address, enum peerauth_channel ch,
                               uint64_t expect_id, struct link **out)
{
	static const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char host[PEERAUTH_ADDR_MAX + 1], port[16];

	if (tp->closing)
		return RAFT_CANCELED;
	if (!tp->have_identity) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "transport has no identity yet");
		return RAFT_INVALID;
	}
	if (!split_address(address, host, sizeof(host), port, sizeof(port))) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "bad peer address \"%.60s\"",
		         address);
		return RAFT_NOCONNECTION;
	}
	struct link *l = link_new(tp, false);
	if (l == NULL)
		return RAFT_NOMEM;
	snprintf(l->peer, sizeof(l->peer), "%s", address);
	if (!peerauth_client_init(&l->pa, tp->key, tp->id, tp->address, ch, expect_id, NULL)) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "%s", l->pa.err);
		goto fail;
	}
	l->phase = LINK_RESOLVING;
	l->gai.data = l;
	if (uv_getaddrinfo(tp->loop, &l->gai, on_resolved, host, port, &hints) != 0) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "cannot resolve %.60s", address);
		goto fail;
	}
	l->gai_pending = true;
	uv_timer_start(&l->timer, on_deadline, tp->opt.connect_timeout_ms, 0);
	*out = l;
	return 0;

fail:
	/* No callback is owed: the caller gets the error directly. */
	l->phase = LINK_HANDED_OVER;
	uv_close((uv_handle_t *)&l->timer, on_link_timer_closed);
	return RAFT_NOCONNECTION;
}

/* on_connection accepts an inbound TCP link and starts the server side of the handshake. */
static void on_connection(uv_stream_t *server, int status)
{
	struct tp *tp = server->data;
	if (status != 0) {
		log_warning("peer transport: accept: %s", uv_strerror(status));
		return;
	}
	uv_tcp_t *tcp = raft_malloc(sizeof(*tcp));
	if (tcp == NULL)
		return;
	uv_tcp_init(tp->loop, tcp);
	if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
		uv_close((uv_handle_t *)tcp, free_raft_handle);
		return;
	}
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char peer[80] = "unknown peer", ip[64] = "";
	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sslen) == 0)
		sockaddr_text(&ss, peer, sizeof(peer), ip, sizeof(ip));

	struct link *l = NULL;
	if (tp->closing || tp->n_inbound >= tp->opt.max_handshakes ||
	    (l = link_new(tp, true)) == NULL) {
		tp_warn(tp, "peer %s: incoming link refused: too many handshakes in progress",
		        peer);
		uv_close((uv_handle_t *)tcp, free_raft_handle);
		return;
	}
	l->tcp = tcp;
	l->tcp_open = true;
	snprintf(l->peer, sizeof(l->peer), "%s", peer);
	snprintf(l->peer_ip, sizeof(l->peer_ip), "%s", ip);
	tp->n_inbound++;
	l->phase = LINK_HANDSHAKE;
	if (!peerauth_server_init(&l->pa, tp->key, tp->id, tp->address, NULL)) {
		link_refuse(l, false, l->pa.err);
		return;
	}
	link_start_handshake(l);
}

/* on_listener_closed: the listening socket is gone. */
static void on_listener_closed(uv_handle_t *h)
{
	struct tp *tp = h->data;
	tp->listener_open = false;
	tp_maybe_closed(tp);
}

/* bind_sockaddr chooses the listening address: the override, or the advertised one. */
static bool bind_sockaddr(struct tp *tp, struct sockaddr_storage *ss)
{
	char host[PEERAUTH_ADDR_MAX + 1], port[16];
	const char *a = tp->bind[0] != '\0' ? tp->bind : tp->address;
	if (!split_address(a, host, sizeof(host), port, sizeof(port)))
		return false;
	int p = atoi(port);
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, p, (struct sockaddr_in *)ss) == 0)
		return true;
	if (uv_ip6_addr(host, p, (struct sockaddr_in6 *)ss) == 0)
		return true;
	/* A host name: resolving it here would block, so listen on every interface. */
	log_config("peer transport: %s is not an IP address; listening on 0.0.0.0:%d", host, p);
	return uv_ip4_addr("0.0.0.0", p, (struct sockaddr_in *)ss) == 0;
}

/* tp_listen opens the listening socket once. */
static int tp_listen(struct tp *tp)
{
	struct sockaddr_storage ss;
	if (tp->listening)
		return 0;
	if (tp->closing)
		return RAFT_CANCELED;
	if (tp->listener_open)
		return RAFT_BUSY; /* a failed attempt is still closing */
	if (!tp->have_identity || !bind_sockaddr(tp, &ss)) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "no valid address to listen on");
		return RAFT_INVALID;
	}
	uv_tcp_init(tp->loop, &tp->listener);
	tp->listener.data = tp;
	tp->listener_open = true;
	int rc = uv_tcp_bind(&tp->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&tp->listener, 128, on_connection);
	if (rc != 0) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "listen on %.80s: %s",
		         tp->bind[0] != '\0' ? tp->bind : tp->address, uv_strerror(rc));
		log_severe("peer transport: %s", tp->t->errmsg);
		uv_close((uv_handle_t *)&tp->listener, on_listener_closed);
		return RAFT_IOERR;
	}
	tp->listening = true;
	log_info("peer transport: listening on %s as id %llu (%s)",
	         tp->bind[0] != '\0' ? tp->bind : tp->address, (unsigned long long)tp->id,
	         tp->address);
	return 0;
}

/* tp_set_identity records our raft id and advertised address. */
static int tp_set_identity(struct tp *tp, uint64_t id, const char *address)
{
	size_t n = strnlen(address, PEERAUTH_ADDR_MAX + 1);
	if (n == 0 || n > PEERAUTH_ADDR_MAX) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "address empty or too long");
		return RAFT_INVALID;
	}
	if (tp->have_identity && (tp->id != id || strcmp(tp->address, address) != 0))
		log_info("peer transport: identity changes to id %llu (%s)", (unsigned long long)id,
		         address);
	tp->id = id;
	memcpy(tp->address, address, n);
	tp->address[n] = '\0';
	tp->have_identity = true;
	return 0;
}

/* impl_init is raft_uv_transport->init. */
static int impl_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	return tp_set_identity(t->impl, id, address);
}

/* impl_listen is raft_uv_transport->listen. */
static int impl_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct tp *tp = t->impl;
	int rc = tp_listen(tp);
	if (rc == 0)
		tp->raft_accept = cb;
	return rc;
}

/* impl_connect is raft_uv_transport->connect. */
static int impl_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                        const char *address, raft_uv_connect_cb cb)
{
	struct link *l;
	int rc = link_start_outbound(t->impl, address, PEERAUTH_CHANNEL_RAFT, id, &l);
	if (rc != 0)
		return rc;
	req->cb = cb;
	l->raft_req = req;
	l->raft_cb = cb;
	return 0;
}

/* on_closer_closed completes the deferral that keeps the close callback asynchronous. */
static void on_closer_closed(uv_handle_t *h)
{
	struct tp *tp = h->data;
	tp->closer_open = false;
	tp_maybe_closed(tp);
}

void transport_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct tp *tp = t->impl;
	if (tp->n_close_cbs < 2)
		tp->close_cbs[tp->n_close_cbs++] = cb;
	else
		log_severe("peer transport: closed more than twice; callback dropped");
	if (!tp->closing) {
		tp->closing = true;
		tp->raft_accept = NULL;
		tp->rpc_accept = NULL;
		if (tp->listener_open && !uv_is_closing((uv_handle_t *)&tp->listener))
			uv_close((uv_handle_t *)&tp->listener, on_listener_closed);
		tp->listening = false;
		for (struct link *l = tp->links; l != NULL; l = l->next)
			link_abort(l, RAFT_CANCELED);
	}
	if (!tp->closer_open) {
		uv_timer_init(tp->loop, &tp->closer);
		tp->closer.data = tp;
		tp->closer_open = true;
		uv_close((uv_handle_t *)&tp->closer, on_closer_closed);
	}
}

void transport_options_default(struct transport_options *o)
{
	o->connect_timeout_ms = 2000;
	o->handshake_timeout_ms = 5000;
	o->user_timeout_ms = 3000;
	o->keepalive_idle_s = 1;
	o->keepalive_intvl_s = 1;
	o->keepalive_cnt = 3;
	o->max_handshakes = 64;
}

int transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                   const uint8_t key[PEERAUTH_KEY_LEN], const struct transport_options *opts)
{
	struct tp *tp = calloc(1, sizeof(*tp));
	if (tp == NULL)
		return RAFT_NOMEM;
	tp->t = t;
	tp->loop = loop;
	memcpy(tp->key, key, PEERAUTH_KEY_LEN);
	if (opts != NULL)
		tp->opt = *opts;
	else
		transport_options_default(&tp->opt);
	if (tp->opt.max_handshakes == 0)
		tp->opt.max_handshakes = 1;
	tp->warn_window_ms = uv_now(loop);
	memset(t, 0, sizeof(*t));
	t->version = 1;
	t->impl = tp;
	t->init = impl_init;
	t->listen = impl_listen;
	t->connect = impl_connect;
	t->close = transport_close;
	return 0;
}

void transport_set_rpc_accept(struct raft_uv_transport *t, transport_rpc_accept_cb cb, void *arg)
{
	struct tp *tp = t->impl;
	if (tp->closing)
		return;
	tp->rpc_accept = cb;
	tp->rpc_arg = arg;
}

void transport_set_allow(struct raft_uv_transport *t, transport_allow_cb cb, void *arg)
{
	struct tp *tp = t->impl;
	tp->allow = cb;
	tp->allow_arg = arg;
}

int transport_set_bind_address(struct raft_uv_transport *t, const char *address)
{
	struct tp *tp = t->impl;
	char host[PEERAUTH_ADDR_MAX + 1], port[16];
	if (!split_address(address, host, sizeof(host), port, sizeof(port)))
		return RAFT_INVALID;
	snprintf(tp->bind, sizeof(tp->bind), "%s", address);
	return 0;
}

int transport_start(struct raft_uv_transport *t, uint64_t id, const char *address)
{
	struct tp *tp = t->impl;
	int rc = tp_set_identity(tp, id, address);
	if (rc != 0)
		return rc;
	return tp_listen(tp);
}

int transport_connect_rpc(struct raft_uv_transport *t, uint64_t expect_id, const char *address,
                          transport_rpc_connect_cb cb, void *arg)
{
	struct link *l;
	int rc = link_start_outbound(t->impl, address, PEERAUTH_CHANNEL_RPC, expect_id, &l);
	if (rc != 0)
		return rc;
	l->rpc_cb = cb;
	l->rpc_arg = arg;
	return 0;
}

void transport_free(struct raft_uv_transport *t)
{
	struct tp *tp = t->impl;
	if (tp == NULL)
		return;
	OPENSSL_cleanse(tp->key, sizeof(tp->key));
	free(tp);
	t->impl = NULL;
}

int transport_port(struct raft_uv_transport *t)
{
	struct tp *tp = t->impl;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (!tp->listening || uv_tcp_getsockname(&tp->listener, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}
