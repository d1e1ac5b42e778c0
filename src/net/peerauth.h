/*
 * peerauth.h - the mutual HMAC-SHA256 handshake that opens every peer link.
 *
 * Both ends hold the same 32-byte cluster key.  The connecting side (client)
 * and the accepting side (server) each send a fresh random nonce and prove
 * knowledge of the key with HMAC(key, label || role || channel || client
 * nonce || server nonce || sender id || sender address).  A transcript
 * recorded earlier is useless later: the other side's nonce differs.
 *
 * Wire format, all integers big-endian:
 *
 *   HELLO     client -> server  "EFMA" ver(1) channel(1) id(8) addrlen(2)
 *                               addr nonce(32)
 *   CHALLENGE server -> client  "EFMA" ver(1) channel(1) id(8) addrlen(2)
 *                               addr nonce(32) mac(32)
 *   PROOF     client -> server  mac(32)
 *   ACCEPT    server -> client  one byte, PEERAUTH_ACCEPT_BYTE
 *
 * The client sends nothing after PROOF until it has read ACCEPT, and
 * peerauth_want() always says exactly how many bytes the current message
 * still needs, so a reader that reads no more than that never swallows the
 * first bytes of what follows the handshake.
 *
 * After ACCEPT each direction has its own session key (peerauth_session_keys)
 * and every further byte travels in AEAD records (record.h, seclink.h).
 *
 * The code here is a pure state machine over byte buffers: no sockets, no
 * clock (the caller enforces the deadline), so it is unit-tested directly.
 */
#ifndef EFM_PEERAUTH_H
#define EFM_PEERAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEERAUTH_KEY_LEN   32
#define PEERAUTH_NONCE_LEN 32
#define PEERAUTH_MAC_LEN   32
/* Longest "host:port" a peer may announce. */
#define PEERAUTH_ADDR_MAX 255
/*
 * Protocol version; a peer speaking another one is refused.  Version 2 puts
 * every byte after the handshake in authenticated records (record.h).
 */
#define PEERAUTH_VERSION     2
#define PEERAUTH_ACCEPT_BYTE 0x06
/* Fixed part of HELLO and CHALLENGE, before the address. */
#define PEERAUTH_HEADER_LEN 16
/* Largest message: a CHALLENGE with the longest address. */
#define PEERAUTH_MSG_MAX                                                                           \
	(PEERAUTH_HEADER_LEN + PEERAUTH_ADDR_MAX + PEERAUTH_NONCE_LEN + PEERAUTH_MAC_LEN)

enum peerauth_role {
	PEERAUTH_CLIENT,
	PEERAUTH_SERVER,
};

/* What the link carries once authenticated. */
enum peerauth_channel {
	PEERAUTH_CHANNEL_RAFT = 1, /* handed to libraft */
	PEERAUTH_CHANNEL_RPC = 2,  /* length-prefixed JSON frames (frame.h) */
};

enum peerauth_status {
	PEERAUTH_CONTINUE, /* send peerauth_output(), then read peerauth_want() bytes */
	PEERAUTH_DONE,     /* authenticated; peer_id/peer_addr/channel are valid */
	PEERAUTH_FAILED,   /* refuse the link; err says why */
};

enum peerauth_state {
	PA_C_READ_CHALLENGE_HDR,
	PA_C_READ_CHALLENGE_BODY,
	PA_C_READ_ACCEPT,
	PA_S_READ_HELLO_HDR,
	PA_S_READ_HELLO_BODY,
	PA_S_READ_PROOF,
	PA_DONE,
	PA_FAILED,
};

/* One handshake in progress.  Plain data: may live on the stack or in a struct. */
struct peerauth {
	enum peerauth_role role;
	enum peerauth_state state;
	uint8_t key[PEERAUTH_KEY_LEN];
	uint8_t my_nonce[PEERAUTH_NONCE_LEN];
	uint8_t peer_nonce[PEERAUTH_NONCE_LEN];
	uint64_t my_id;
	char my_addr[PEERAUTH_ADDR_MAX + 1];
	uint64_t expect_id; /* client: id the server must have, 0 = any */
	uint8_t channel;    /* enum peerauth_channel */
	uint64_t peer_id;
	char peer_addr[PEERAUTH_ADDR_MAX + 1];
	uint8_t in[PEERAUTH_MSG_MAX];
	size_t in_len;  /* bytes of the current message received so far */
	size_t in_need; /* total bytes of the current message (or of its header) */
	uint8_t out[2 * PEERAUTH_MSG_MAX];
	size_t out_len; /* bytes waiting to be sent */
	char err[160];
};

/*
 * peerauth_client_init starts the connecting side: queues HELLO.  expect_id
 * is the raft id the server must announce (0 accepts any).  nonce is NULL in
 * production (fresh random bytes); tests pass a fixed one.  Returns false
 * when my_addr is empty or too long, channel unknown, or the RNG fails.
 */
bool peerauth_client_init(struct peerauth *pa, const uint8_t key[PEERAUTH_KEY_LEN], uint64_t my_id,
                          const char *my_addr, enum peerauth_channel channel, uint64_t expect_id,
                          const uint8_t *nonce) __attribute__((warn_unused_result));

/* peerauth_server_init starts the accepting side, waiting for HELLO. */
bool peerauth_server_init(struct peerauth *pa, const uint8_t key[PEERAUTH_KEY_LEN], uint64_t my_id,
                          const char *my_addr, const uint8_t *nonce)
    __attribute__((warn_unused_result));

/*
 * peerauth_feed consumes received bytes (any split).  Bytes beyond what the
 * protocol allows fail the handshake.  On PEERAUTH_FAILED nothing more may be
 * sent; close the link and log pa->err.
 */
enum peerauth_status peerauth_feed(struct peerauth *pa, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));

/* peerauth_want is how many bytes the current message still needs; 0 when done/failed. */
size_t peerauth_want(const struct peerauth *pa);

/*
 * peerauth_output returns the bytes to send now (NULL when none) and
 * peerauth_output_done forgets them once the caller copied or sent them.
 */
const uint8_t *peerauth_output(const struct peerauth *pa, size_t *len);
void peerauth_output_done(struct peerauth *pa);

/* peerauth_status_of maps the state to CONTINUE/DONE/FAILED. */
enum peerauth_status peerauth_status_of(const struct peerauth *pa);

/* peerauth_channel_name is "raft", "rpc" or "unknown". */
const char *peerauth_channel_name(uint8_t channel);

/*
 * peerauth_proof computes one side's MAC; exposed so tests can forge proofs
 * with a wrong key or for a different nonce.
 */
void peerauth_proof(const uint8_t key[PEERAUTH_KEY_LEN], enum peerauth_role sender, uint8_t channel,
                    const uint8_t client_nonce[PEERAUTH_NONCE_LEN],
                    const uint8_t server_nonce[PEERAUTH_NONCE_LEN], uint64_t sender_id,
                    const char *sender_addr, uint8_t mac[PEERAUTH_MAC_LEN]);

/*
 * peerauth_session_keys derives, once the handshake is DONE, the two keys of
 * the connection's record layer: HKDF-SHA256 with the cluster key as input
 * key material and, as info, the direction, the channel, both nonces and
 * both raft ids.  Both nonces are fresh, so every connection (and each of
 * its two directions) has keys of its own; an eavesdropper without the
 * cluster key cannot compute them.  tx is the key for what we send, rx for
 * what we receive: the client's tx is the server's rx.  Returns false when
 * the handshake is not DONE or OpenSSL fails.  Wipe the keys after use.
 */
bool peerauth_session_keys(const struct peerauth *pa, uint8_t tx[PEERAUTH_KEY_LEN],
                           uint8_t rx[PEERAUTH_KEY_LEN]) __attribute__((warn_unused_result));

/*
 * peerauth_derive_key derives the cluster key when no peer.key.file is set:
 * HKDF-SHA256 with the database password as input key material and the
 * cluster name as info.  Returns false only if OpenSSL fails.
 */
bool peerauth_derive_key(const char *cluster, const char *password, uint8_t key[PEERAUTH_KEY_LEN])
    __attribute__((warn_unused_result));

/*
 * peerauth_load_key_file reads peer.key.file: either 64 hex digits (the key
 * itself) or any other secret of 16 to 4096 bytes, which is hashed into a key
 * with HKDF.  Surrounding whitespace is ignored.  A file readable by group
 * or others is accepted with a WARNING.  Returns 0, -errno when the file
 * cannot be read, -EINVAL when its contents are unusable (err says why).
 */
int peerauth_load_key_file(const char *path, uint8_t key[PEERAUTH_KEY_LEN], char *err,
                           size_t errlen) __attribute__((warn_unused_result));

#endif
