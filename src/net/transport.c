/*
 * transport.c - libraft's TCP transport with the peerauth handshake in front:
 * the listener, the raft_uv_transport API and the handover of authenticated
 * inbound streams.  Each connection's life cycle is in link.c.
 *
 * The transport's close callback fires once the listener and every link
 * are gone.
 */
#include "transport.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "address.h"
#include "link.h"
#include "log.h"
#include "ratelog.h"

void tp_warn(struct tp *tp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ratelog_vwarn(&tp->warn, uv_now(tp->loop), fmt, ap);
	va_end(ap);
}

void tp_maybe_closed(struct tp *tp)
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

void tp_free_handle(uv_handle_t *h)
{
	raft_free(h);
}

void tp_deliver(struct tp *tp, const struct peerauth *pa, const char *peer, const char *peer_ip,
                uv_stream_t *stream)
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
	/*
	 * libraft (0.22.1, uv_recv.c uvAddServer) frees an accepted stream it
	 * cannot start reading without closing it, then closes and frees it
	 * again: a double free.  Hand over only a stream a read can start on.
	 */
	else if (!uv_is_readable(stream) || uv_is_closing((uv_handle_t *)stream))
		why = "the connection is no longer readable";
	if (why != NULL) {
		tp_warn(tp, "peer %s: %s link from id %llu (%s) refused: %s", peer,
		        peerauth_channel_name(pa->channel), (unsigned long long)pa->peer_id,
		        pa->peer_addr, why);
		uv_close((uv_handle_t *)stream, tp_free_handle);
		return;
	}
	admission_learn(&tp->adm, peer_ip, uv_now(tp->loop));
	log_fine("peer %s: %s link from id %llu (%s) authenticated", peer,
	         peerauth_channel_name(pa->channel), (unsigned long long)pa->peer_id,
	         pa->peer_addr);
	if (pa->channel == PEERAUTH_CHANNEL_RAFT)
		tp->raft_accept(tp->t, pa->peer_id, pa->peer_addr, stream);
	else
		tp->rpc_accept(tp->rpc_arg, pa->peer_id, pa->peer_addr, stream);
}

/* on_connection accepts an inbound TCP connection and hands it to a new link. */
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
		uv_close((uv_handle_t *)tcp, tp_free_handle);
		return;
	}
	link_accept(tp, tcp);
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

/* set_source keeps the listening address, port cleared, for outbound links to leave from. */
static void set_source(struct tp *tp, const struct sockaddr_storage *ss)
{
	tp->src = *ss;
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&tp->src;
		in->sin_port = 0;
		tp->have_src = in->sin_addr.s_addr != htonl(INADDR_ANY);
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&tp->src;
		in6->sin6_port = 0;
		tp->have_src = !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
	}
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
	set_source(tp, &ss);
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
	int rc = link_connect(t->impl, address, PEERAUTH_CHANNEL_RAFT, id, &l);
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
	o->handshake_timeout_ms = 3000;
	o->user_timeout_ms = 3000;
	o->keepalive_idle_s = 1;
	o->keepalive_intvl_s = 1;
	o->keepalive_cnt = 3;
	o->max_handshakes = 64;
	o->max_handshakes_per_source = 8;
	o->record_limit = 0;
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
	if (tp->opt.max_handshakes_per_source == 0)
		tp->opt.max_handshakes_per_source = 1;
	ratelog_init(&tp->warn, "peer transport", uv_now(loop));
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
	int rc = link_connect(t->impl, address, PEERAUTH_CHANNEL_RPC, expect_id, &l);
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
