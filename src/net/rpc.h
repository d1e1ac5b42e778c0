/*
 * rpc.h - agent-to-agent requests over the transport's RPC channel.
 *
 * Messages are JSON objects in length-prefixed frames (frame.h), each with a
 * "type".  Three patterns:
 *  - calls: rpc_call opens a fresh authenticated link, sends one request,
 *    waits (bounded) for one reply frame and closes the link;
 *  - one-way messages (heartbeats): rpc_send keeps one outbound link per
 *    peer address and drops the message when the link is not up yet (the
 *    next heartbeat goes through once it is);
 *  - the server side: every frame arriving on an inbound link is handed to
 *    the request callback with the link, on which rpc_reply answers.
 *
 * Everything runs on the loop; rpc_close cancels every call (their
 * callbacks get -ECANCELED) and closes every link.
 */
#ifndef EFM_RPC_H
#define EFM_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>
#include <raft/uv.h>
#include <uv.h>

struct rpc;
struct rpc_conn;

/*
 * rpc_request_cb receives one frame from an authenticated peer (raft id,
 * announced address).  msg is valid only during the call.  To answer later,
 * take a reference with rpc_conn_ref and drop it after rpc_reply.
 */
typedef void (*rpc_request_cb)(void *arg, struct rpc_conn *c, uint64_t peer_id,
                               const char *peer_addr, const cJSON *msg);

/* rpc_call_cb ends a call: status 0 with the reply object (valid during the call) or <0. */
typedef void (*rpc_call_cb)(void *arg, int status, const cJSON *reply);

/*
 * A frame begun on a link must be complete within this time (ms), or the
 * link is closed: a peer may pause between frames, not inside one.
 */
#define RPC_FRAME_DEADLINE_MS 10000

/* rpc_new ties the RPC layer to a transport and registers as its RPC acceptor. */
struct rpc *rpc_new(uv_loop_t *loop, struct raft_uv_transport *t, rpc_request_cb cb, void *arg);

/* rpc_set_frame_deadline replaces RPC_FRAME_DEADLINE_MS for r's links (tests use short ones). */
void rpc_set_frame_deadline(struct rpc *r, uint64_t ms);

/* rpc_close cancels calls and closes links; rpc memory is freed when the last handle closed. */
void rpc_close(struct rpc *r);

/*
 * rpc_call sends req (ownership taken) to address and calls cb exactly once,
 * never from within this call: with the reply, or -ETIMEDOUT after
 * timeout_ms, -ECONNREFUSED when the link could not be set up, -ECANCELED
 * on rpc_close.  Returns 0 or a negative error (cb not called).
 */
int rpc_call(struct rpc *r, const char *address, cJSON *req, uint64_t timeout_ms, rpc_call_cb cb,
             void *arg) __attribute__((warn_unused_result));

/* rpc_send queues a one-way message (ownership taken) on the link to address. */
void rpc_send(struct rpc *r, const char *address, cJSON *msg);

/* rpc_drop_link closes the persistent link to address, if any. */
void rpc_drop_link(struct rpc *r, const char *address);

/* rpc_reply answers on c (ownership of msg taken); dropped if c has closed. */
void rpc_reply(struct rpc_conn *c, cJSON *msg);
void rpc_conn_ref(struct rpc_conn *c);
void rpc_conn_unref(struct rpc_conn *c);
/*
 * rpc_reply_release answers a request held with rpc_conn_ref and drops that
 * reference; with c NULL (a request of our own) it only frees msg.
 */
void rpc_reply_release(struct rpc_conn *c, cJSON *msg);

/* rpc_msg builds {"type": type} (NULL when out of memory). */
cJSON *rpc_msg(const char *type);

#endif
