/*
 * seclink.h - puts an authenticated peer connection behind the record layer.
 *
 * libraft reads and writes the stream the transport hands it with plain
 * uv_read_start/uv_write, so nothing can be inserted between its bytes and
 * the socket.  A seclink therefore owns the TCP connection and one end of a
 * socketpair, and hands out the other end as a uv_pipe_t: whatever the
 * owner (libraft or rpc.c) writes to it leaves in sealed records
 * (record.h); whatever arrives is authenticated before the owner sees a
 * byte of it.  Private to src/net.
 *
 * The link ends, both handles closed and the keys wiped:
 *  - when the owner closes its end: the bytes it wrote are still sent,
 *    then a close record, then the TCP write side is shut down;
 *  - when the peer ends the TCP stream: what was received reaches the
 *    owner, then it reads EOF;
 *  - at once when a record fails (modified, replayed, reordered, cut, from
 *    an older connection, ...) or the TCP connection breaks: the owner
 *    reads EOF or an error, and a rate-limited WARNING names the peer and
 *    the fault;
 *  - at once when the send counter reaches its limit: the owner reconnects
 *    with fresh keys (never in practice with the default limit).
 *
 * Both directions are flow-controlled: when one side's write queue passes a
 * high-water mark, the other side is no longer read until it drains, so
 * memory stays bounded when an end reads slowly.
 */
#ifndef EFM_SECLINK_H
#define EFM_SECLINK_H

#include <stdint.h>

#include <uv.h>

#include "peerauth.h"

/* Bytes queued toward one side before the other side is no longer read. */
#define SECLINK_HIGH_WATER (1024 * 1024)
#define SECLINK_LOW_WATER  (256 * 1024)

/*
 * seclink_start takes tcp (raft_malloc'd, reading stopped, nothing read
 * beyond the handshake) whose handshake pa is DONE, and returns the stream
 * to hand out instead: a uv_pipe_t allocated with raft_malloc, owned by the
 * caller like the TCP handle would have been.  peer names the connection
 * in the log.  record_limit 0 means RECORD_SEQ_LIMIT.  On failure (logged)
 * tcp is closed and NULL returned.
 */
uv_stream_t *seclink_start(uv_loop_t *loop, uv_tcp_t *tcp, const struct peerauth *pa,
                           const char *peer, uint64_t record_limit);

/* seclink_count is the number of seclinks alive (tests check nothing leaks). */
unsigned seclink_count(void);

#endif
