/*
 * link.h - one peer connection's life cycle, private to src/net.
 *
 * transport.c owns the listener and the raft_uv_transport API; link.c owns
 * each connection from its start until its stream is handed over (to
 * libraft or the RPC layer) or closed.  struct tp is the state both share.
 * Nothing outside src/net includes this header.
 *
 * A link's states:
 *
 *   outbound  NEW -> RESOLVING -> CONNECTING -> HANDSHAKING -> AUTHENTICATED
 *   inbound   NEW -> HANDSHAKING -> AUTHENTICATED
 *
 * and from any state but AUTHENTICATED to CLOSING (refused, failed,
 * cancelled).  Every move goes through link_set_state, which logs it and
 * refuses any other.  A link owns a timer (the deadline) and, until handed
 * over, its TCP handle; its memory is freed when the last of its handles
 * has closed and no getaddrinfo is pending, and only then is an outbound
 * link's callback fired with an error.
 */
#ifndef EFM_LINK_H
#define EFM_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include <netdb.h>

#include "admission.h"
#include "peerauth.h"
#include "ratelog.h"
#include "transport.h"

enum link_state {
	LINK_NEW,
	LINK_RESOLVING,
	LINK_CONNECTING,
	LINK_HANDSHAKING,
	LINK_AUTHENTICATED,
	LINK_CLOSING,
};

struct tp;

struct link {
	struct tp *tp;
	struct link *prev, *next;
	bool inbound;
	bool known;            /* inbound: from a member's address when accepted */
	enum link_state state; /* changed by link_set_state only */
	uv_tcp_t *tcp;         /* raft_malloc'd: libraft raft_free()s it after handover */
	bool tcp_open;         /* tcp initialised and not yet closed by us */
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
	char peer_ip[ADMISSION_IP_MAX];    /* inbound source address, for the filter */
	int status;                        /* outbound: reported to the callback */
	struct raft_uv_connect *raft_req;  /* outbound RAFT link */
	raft_uv_connect_cb raft_cb;
	transport_rpc_connect_cb rpc_cb; /* outbound RPC link */
	void *rpc_arg;
};

/* The transport: its identity, listener, callbacks and links. */
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
	struct sockaddr_storage src; /* outbound links leave from here, when have_src */
	bool have_src;
	raft_uv_accept_cb raft_accept;
	transport_rpc_accept_cb rpc_accept;
	void *rpc_arg;
	transport_allow_cb allow;
	void *allow_arg;
	struct link *links;
	unsigned n_inbound;   /* inbound links in HANDSHAKING */
	struct admission adm; /* members' addresses, ahead of strangers for a slot */
	bool closing;
	uv_timer_t closer; /* closed on every close request so the callback is async */
	bool closer_open;
	raft_uv_transport_close_cb close_cbs[2];
	unsigned n_close_cbs;
	struct ratelog warn; /* refusals and broken links */
};

/*
 * link_accept takes an inbound TCP connection (raft_malloc'd, accepted) and
 * starts the server side of the handshake, or closes it when the transport
 * is closing or admission.h's rules refuse it.
 */
void link_accept(struct tp *tp, uv_tcp_t *tcp);

/*
 * link_connect starts an outbound link to address on channel ch.  On 0 the
 * caller sets the link's callback in *out; it is called exactly once, never
 * from within this call.  Otherwise returns RAFT_CANCELED, RAFT_INVALID,
 * RAFT_NOMEM or RAFT_NOCONNECTION (tp->t->errmsg says why) and no callback
 * follows.
 */
int link_connect(struct tp *tp, const char *address, enum peerauth_channel ch, uint64_t expect_id,
                 struct link **out) __attribute__((warn_unused_result));

/* link_abort ends a link that has not been handed over; status goes to an outbound callback. */
void link_abort(struct link *l, int status);

/* Provided by transport.c. */

/* tp_warn logs a refused or broken peer link, rate-limited. */
void tp_warn(struct tp *tp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* tp_maybe_closed fires the close callbacks once nothing of the transport is left. */
void tp_maybe_closed(struct tp *tp);

/*
 * tp_deliver hands an authenticated inbound stream (seclink's plain end) to libraft or the RPC
 * layer, or closes it when the filter or the lack of a taker refuses it.
 */
void tp_deliver(struct tp *tp, const struct peerauth *pa, const char *peer, const char *peer_ip,
                uv_stream_t *stream);

/* tp_free_handle is the close callback of a handle allocated with raft_malloc. */
void tp_free_handle(uv_handle_t *h);

#endif
