/*
 * link.c - a peer connection from its start to its handover (link.h).
 *
 * Reads during the handshake are sized to exactly what peerauth still
 * wants, so no byte after the handshake is ever consumed here.
 */
#include "link.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "address.h"
#include "log.h"
#include "seclink.h"

/* A handshake message on its way out; freed by its write callback only. */
struct link_write {
	uv_write_t req;
	size_t len;
	uint8_t data[];
};

static const char *const state_names[] = {
    [LINK_NEW] = "new",
    [LINK_RESOLVING] = "resolving",
    [LINK_CONNECTING] = "connecting",
    [LINK_HANDSHAKING] = "handshaking",
    [LINK_AUTHENTICATED] = "authenticated",
    [LINK_CLOSING] = "closing",
};

#define TO(s) (1u << (s))
/* The moves each state allows (link.h draws them). */
static const unsigned allowed_moves[] = {
    [LINK_NEW] = TO(LINK_RESOLVING) | TO(LINK_HANDSHAKING) | TO(LINK_CLOSING),
    [LINK_RESOLVING] = TO(LINK_CONNECTING) | TO(LINK_CLOSING),
    [LINK_CONNECTING] = TO(LINK_HANDSHAKING) | TO(LINK_CLOSING),
    [LINK_HANDSHAKING] = TO(LINK_AUTHENTICATED) | TO(LINK_CLOSING),
    [LINK_AUTHENTICATED] = 0,
    [LINK_CLOSING] = 0,
};
#undef TO

/*
 * link_set_state moves l to next and logs old -> new; a move link.h does
 * not draw is a bug, logged and refused.  It also keeps the count of
 * inbound handshakes, which are exactly the inbound links in HANDSHAKING.
 */
static bool link_set_state(struct link *l, enum link_state next)
{
	enum link_state old = l->state;
	const char *dir = l->inbound ? "incoming" : "outgoing";
	if ((allowed_moves[old] & (1u << next)) == 0) {
		log_severe("peer %s: %s link cannot go from %s to %s", l->peer, dir,
		           state_names[old], state_names[next]);
		return false;
	}
	log_finest("peer %s: %s link %s -> %s", l->peer, dir, state_names[old], state_names[next]);
	if (l->inbound && old == LINK_HANDSHAKING)
		l->tp->n_inbound--;
	if (l->inbound && next == LINK_HANDSHAKING)
		l->tp->n_inbound++;
	l->state = next;
	return true;
}

/*
 * sockaddr_text formats an address as "ip:port" / "[ip]:port", and the bare
 * ip.  An IPv4 peer reaching a dual-stack socket is written as IPv4, so
 * that it reads the same whichever socket it came through.
 */
static void sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen, char *ip,
                          size_t iplen)
{
	char name[64] = "?";
	int port = 0;
	struct sockaddr_in v4;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		memset(&v4, 0, sizeof(v4));
		v4.sin_family = AF_INET;
		v4.sin_port = in6->sin6_port;
		memcpy(&v4.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
		sa = (const struct sockaddr *)&v4;
	}
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, name, sizeof(name));
		port = ntohs(in->sin_port);
		snprintf(out, outlen, "%s:%d", name, port);
	} else if (sa->sa_family == AF_INET6) {
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
	if (l->state == LINK_CLOSING && !l->inbound) {
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

void link_abort(struct link *l, int status)
{
	if (l->state == LINK_CLOSING || l->state == LINK_AUTHENTICATED)
		return; /* already ended: transport_close aborts every link on its list */
	if (!link_set_state(l, LINK_CLOSING))
		return;
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
	l->state = LINK_NEW;
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

/* link_hand_over gives the authenticated stream away and retires the link. */
static void link_hand_over(struct link *l)
{
	struct tp *tp = l->tp;
	uv_tcp_t *tcp = l->tcp;

	if (!link_set_state(l, LINK_AUTHENTICATED))
		return;
	uv_read_stop((uv_stream_t *)tcp);
	l->tcp = NULL;
	l->tcp_open = false;
	tcp->data = NULL;
	/* Retire the link before any callback: the callee may close the transport. */
	uv_close((uv_handle_t *)&l->timer, on_link_timer_closed);

	/* From here on every byte travels in records; the owner gets the plain end. */
	uv_stream_t *s = seclink_start(tp->loop, tcp, &l->pa, l->peer, tp->opt.record_limit);
	if (s == NULL) {
		/* The link is retired already: tell an outbound caller now. */
		if (l->raft_cb != NULL)
			l->raft_cb(l->raft_req, NULL, RAFT_NOCONNECTION);
		else if (l->rpc_cb != NULL)
			l->rpc_cb(l->rpc_arg, RAFT_NOCONNECTION, 0, NULL);
		return;
	}
	if (l->inbound) {
		/* l stays allocated until the timer close callback, so pa is still valid. */
		tp_deliver(tp, &l->pa, l->peer, l->peer_ip, s);
	} else if (l->raft_cb != NULL) {
		log_fine("peer %s: raft link to id %llu authenticated", l->peer,
		         (unsigned long long)l->pa.peer_id);
		l->raft_cb(l->raft_req, s, 0);
	} else {
		log_fine("peer %s: rpc link to id %llu authenticated", l->peer,
		         (unsigned long long)l->pa.peer_id);
		l->rpc_cb(l->rpc_arg, 0, l->pa.peer_id, s);
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
	if (l == NULL || l->state != LINK_HANDSHAKING)
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
	if (l->state == LINK_HANDSHAKING)
		link_refuse(l, l->inbound, "handshake timed out");
	else
		link_refuse(l, false, "connect timed out");
}

/* link_start_handshake begins reading (and, outbound, sends HELLO) with the handshake deadline. */
static void link_start_handshake(struct link *l)
{
	struct tp *tp = l->tp;
	if (!link_set_state(l, LINK_HANDSHAKING))
		return;
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
	if (l->state != LINK_CONNECTING)
		return; /* aborted; the close callbacks finish the link */
	if (status != 0) {
		log_fine("peer %s: connect: %s", l->peer, uv_strerror(status));
		if (l->ai_next != NULL) {
			/* The failed handle frees itself; the next address gets a fresh one. */
			uv_close((uv_handle_t *)l->tcp, tp_free_handle);
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

/* is_loopback: a 127/8 or ::1 address. */
static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/*
 * bind_source makes an outbound link leave from the address we listen on,
 * so that the peer sees the address it knows us by (the kernel would pick
 * 127.0.0.1 for every loopback address, or the primary address of a
 * multi-homed host) and can tell us from strangers before the handshake.
 */
static void bind_source(struct link *l, const struct sockaddr *target)
{
	struct tp *tp = l->tp;
	const struct sockaddr *src = (const struct sockaddr *)&tp->src;
	if (!tp->have_src || src->sa_family != target->sa_family ||
	    is_loopback(src) != is_loopback(target))
		return;
	int rc = uv_tcp_bind(l->tcp, src, 0);
	if (rc != 0)
		log_fine("peer %s: cannot leave from our listening address: %s", l->peer,
		         uv_strerror(rc));
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
	bind_source(l, ai->ai_addr);
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
	if (l->state != LINK_RESOLVING) {
		link_finish(l); /* aborted meanwhile */
		return;
	}
	if (status != 0) {
		link_refuse(l, false, uv_strerror(status));
		return;
	}
	/*
	 * Only our configuration and the cluster's committed state name the
	 * peers we connect to, so these are members' addresses.
	 */
	char text[80], ip[ADMISSION_IP_MAX];
	for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		sockaddr_text(ai->ai_addr, text, sizeof(text), ip, sizeof(ip));
		admission_learn(&l->tp->adm, ip, uv_now(l->tp->loop));
	}
	if (link_set_state(l, LINK_CONNECTING))
		link_try_connect(l);
}

int link_connect(struct tp *tp, const char *address, enum peerauth_channel ch, uint64_t expect_id,
                 struct link **out)
{
	static const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct efm_addr target;
	char port[16];

	if (tp->closing)
		return RAFT_CANCELED;
	if (!tp->have_identity) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "transport has no identity yet");
		return RAFT_INVALID;
	}
	if (!address_parse(address, &target)) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "bad peer address \"%.60s\"",
		         address);
		return RAFT_NOCONNECTION;
	}
	snprintf(port, sizeof(port), "%u", target.port);
	struct link *l = link_new(tp, false);
	if (l == NULL)
		return RAFT_NOMEM;
	snprintf(l->peer, sizeof(l->peer), "%s", address);
	if (!peerauth_client_init(&l->pa, tp->key, tp->id, tp->address, ch, expect_id, NULL)) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "%s", l->pa.err);
		goto fail;
	}
	l->gai.data = l;
	if (uv_getaddrinfo(tp->loop, &l->gai, on_resolved, target.host, port, &hints) != 0) {
		snprintf(tp->t->errmsg, sizeof(tp->t->errmsg), "cannot resolve %.60s", address);
		goto fail;
	}
	l->gai_pending = true;
	(void)link_set_state(l, LINK_RESOLVING);
	uv_timer_start(&l->timer, on_deadline, tp->opt.connect_timeout_ms, 0);
	*out = l;
	return 0;

fail:
	/* No callback is set yet, so none is owed: the caller gets the error directly. */
	link_abort(l, RAFT_NOCONNECTION);
	return RAFT_NOCONNECTION;
}

/*
 * admit applies admission.h's rules to a connection from ip, dropping the
 * oldest stranger's handshake when a known address needs its slot; false
 * when the connection is refused (logged).
 */
static bool admit(struct tp *tp, const char *peer, const char *ip, bool known)
{
	struct admission_load load = {.in_flight = tp->n_inbound};
	struct link *oldest_stranger = NULL;
	for (struct link *l = tp->links; l != NULL; l = l->next) {
		if (!l->inbound || l->state != LINK_HANDSHAKING)
			continue;
		if (strcmp(l->peer_ip, ip) == 0)
			load.from_source++;
		if (!l->known)
			oldest_stranger = l; /* the list runs from the newest to the oldest */
	}
	load.stranger_waiting = oldest_stranger != NULL;
	enum admission_verdict v = admission_decide(known, &load, tp->opt.max_handshakes,
	                                            tp->opt.max_handshakes_per_source);
	if (v == ADMISSION_EVICT_STRANGER) {
		tp_warn(tp,
		        "peer %s: incoming link dropped before its handshake ended, to make room "
		        "for %s (a member's address)",
		        oldest_stranger->peer, peer);
		link_abort(oldest_stranger, RAFT_NOCONNECTION);
		return true;
	}
	if (v != ADMISSION_ACCEPT) {
		tp_warn(tp, "peer %s: incoming link refused: %s", peer, admission_refusal(v));
		return false;
	}
	return true;
}

void link_accept(struct tp *tp, uv_tcp_t *tcp)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char peer[80] = "unknown peer", ip[ADMISSION_IP_MAX] = "";
	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sslen) == 0)
		sockaddr_text((const struct sockaddr *)&ss, peer, sizeof(peer), ip, sizeof(ip));

	bool known = admission_is_known(&tp->adm, ip);
	struct link *l = NULL;
	if (tp->closing || !admit(tp, peer, ip, known) || (l = link_new(tp, true)) == NULL) {
		uv_close((uv_handle_t *)tcp, tp_free_handle);
		return;
	}
	l->known = known;
	l->tcp = tcp;
	l->tcp_open = true;
	snprintf(l->peer, sizeof(l->peer), "%s", peer);
	snprintf(l->peer_ip, sizeof(l->peer_ip), "%s", ip);
	if (!peerauth_server_init(&l->pa, tp->key, tp->id, tp->address, NULL)) {
		link_refuse(l, false, l->pa.err);
		return;
	}
	link_start_handshake(l);
}
