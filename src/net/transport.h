/*
 * transport.h - libraft's peer transport over TCP, behind our handshake.
 *
 * transport_init fills a struct raft_uv_transport (libraft 0.22 interface,
 * raft/uv.h) that libraft drives: raft_uv_init(io, loop, dir, t), then
 * raft_init calls t->init(id, address), raft_start calls t->listen,
 * raft_close calls t->close.  Every TCP link, both ways, first runs the
 * peerauth handshake (peerauth.h) with the cluster key; a peer that fails
 * it, sends garbage or stalls past the deadline is closed and logged at
 * WARNING with its IP:port (rate-limited).
 *
 * One listening port carries two channels, chosen by the connecting side in
 * the handshake: RAFT links go to libraft's accept callback, RPC links
 * (length-prefixed JSON frames, frame.h) to the callback registered with
 * transport_set_rpc_accept.
 *
 * Every link gets TCP_NODELAY, keepalive and TCP_USER_TIMEOUT, so a dead
 * peer is noticed within seconds and a healed partition is rejoined quickly.
 * Outbound links leave from the listening address when it is a specific
 * one, so that peers see the address they know us by.
 *
 * Strangers cannot lock members out by holding handshakes open: each
 * source address not known as a member's gets a few of the handshake
 * slots, and a connection from a member's address takes the slot of the
 * oldest stranger when all are in use (admission.h).
 *
 * After the handshake every byte, both ways and on both channels, travels
 * in authenticated, encrypted records with per-connection keys (record.h,
 * seclink.h): a record modified, replayed, reordered or cut off closes the
 * link.  Streams handed out (to libraft or to the RPC callbacks) are the
 * plain end of that layer, a uv_pipe_t allocated with raft_malloc(); their
 * new owner sets stream->data, starts reading, uv_close()s them and
 * raft_free()s them in the close callback.  Their first byte is the first
 * one the peer's owner wrote.
 */
#ifndef EFM_TRANSPORT_H
#define EFM_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "peerauth.h"

/* Timing and limits; transport_options_default gives the values in brackets. */
struct transport_options {
	unsigned connect_timeout_ms;   /* name resolution + TCP connect [2000] */
	unsigned handshake_timeout_ms; /* handshake once TCP is up, either side [3000] */
	unsigned user_timeout_ms;      /* TCP_USER_TIMEOUT: unacked data kills the link [3000] */
	unsigned keepalive_idle_s;     /* idle time before the first keepalive probe [1] */
	unsigned keepalive_intvl_s;    /* time between probes [1] */
	unsigned keepalive_cnt;        /* unanswered probes before the link is dead [3] */
	unsigned max_handshakes;       /* inbound handshakes in flight at once [64] */
	unsigned max_handshakes_per_source; /* of those, from one address not a member's [8] */
	uint64_t record_limit; /* records per direction and key before a link is renewed [0: no
	                          practical limit, RECORD_SEQ_LIMIT]; tests use small ones */
};

void transport_options_default(struct transport_options *o);

/*
 * transport_rpc_accept_cb receives an authenticated inbound RPC link from
 * the server with raft id `id` announcing `address` (its own listening
 * "host:port", not the socket's source; uv_tcp_getpeername gives that).
 * address is only valid during the call.  The callback owns stream.
 */
typedef void (*transport_rpc_accept_cb)(void *arg, uint64_t id, const char *address,
                                        uv_stream_t *stream);

/*
 * transport_allow_cb is asked, after a peer authenticated and before its
 * link is handed on, whether it may stay (the allowed node host list).
 * peer_ip is the socket's source address ("10.0.0.5"); false closes the link
 * with a WARNING.  Without a filter every authenticated peer is accepted.
 */
typedef bool (*transport_allow_cb)(void *arg, uint64_t id, const char *address, const char *peer_ip,
                                   enum peerauth_channel channel);

/*
 * transport_rpc_connect_cb ends transport_connect_rpc: status 0 with the
 * stream and the server's verified raft id, or RAFT_NOCONNECTION (refused,
 * timed out, authentication failed) or RAFT_CANCELED (transport closing)
 * with stream NULL.
 */
typedef void (*transport_rpc_connect_cb)(void *arg, int status, uint64_t peer_id,
                                         uv_stream_t *stream);

/*
 * transport_init prepares t for loop with the 32-byte cluster key (copied).
 * opts NULL means defaults.  Returns 0 or RAFT_NOMEM.
 */
int transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                   const uint8_t key[PEERAUTH_KEY_LEN], const struct transport_options *opts)
    __attribute__((warn_unused_result));

/* transport_set_rpc_accept registers where inbound RPC links go (NULL refuses them). */
void transport_set_rpc_accept(struct raft_uv_transport *t, transport_rpc_accept_cb cb, void *arg);

/* transport_set_allow registers the admission filter (NULL admits every authenticated peer). */
void transport_set_allow(struct raft_uv_transport *t, transport_allow_cb cb, void *arg);

/*
 * transport_set_bind_address makes the listener bind "ip:port" instead of
 * the advertised address (e.g. "0.0.0.0:7800").  Call before listening.
 * Without it the advertised address is bound when its host is an IP
 * literal, otherwise 0.0.0.0 with its port.  Returns 0 or RAFT_INVALID.
 */
int transport_set_bind_address(struct raft_uv_transport *t, const char *address)
    __attribute__((warn_unused_result));

/*
 * transport_start sets our identity and starts listening before libraft is
 * running, so RPC links (join, status) work early.  RAFT links arriving
 * before libraft's listen are closed.  libraft's later init/listen with the
 * same identity are harmless.  Returns 0, RAFT_INVALID, RAFT_IOERR (bind
 * failed; t->errmsg says why).
 */
int transport_start(struct raft_uv_transport *t, uint64_t id, const char *address)
    __attribute__((warn_unused_result));

/*
 * transport_connect_rpc opens an RPC link to address ("host:port").
 * expect_id is the raft id the server must prove (0 accepts any).  cb is
 * called exactly once, never from within this call.  Needs our identity
 * (transport_start or libraft's init).  Returns 0, RAFT_INVALID,
 * RAFT_CANCELED (closing), RAFT_NOMEM or RAFT_NOCONNECTION.
 */
int transport_connect_rpc(struct raft_uv_transport *t, uint64_t expect_id, const char *address,
                          transport_rpc_connect_cb cb, void *arg)
    __attribute__((warn_unused_result));

/*
 * transport_close stops the listener and cancels every connect and
 * handshake, then calls cb (asynchronously).  It is t->close; when libraft
 * was initialised with t, raft_close does this and the agent must not.
 */
void transport_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb);

/* transport_free releases t's memory after the close callback (or if never used). */
void transport_free(struct raft_uv_transport *t);

/* transport_port returns the bound port (useful with port 0 in tests), or 0. */
int transport_port(struct raft_uv_transport *t);

#endif
