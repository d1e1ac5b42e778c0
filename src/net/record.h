/*
 * record.h - the authenticated record layer that carries every byte of a
 * peer link after the handshake (peerauth.h).
 *
 * Each direction of a connection has its own 32-byte key (from
 * peerauth_session_keys) and its own record counter.  A record is
 *
 *   type(1) length(2, big-endian)   -- header, authenticated as AAD
 *   ciphertext(length)              -- ChaCha20-Poly1305 of the payload
 *   tag(16)
 *
 * sealed with the nonce 0x00000000 || seq (64-bit, big-endian), seq being
 * the record's number in its direction, starting at 0.  The number is
 * never sent: the receiver counts, so a record that was modified, replayed,
 * reordered, dropped or moved to the other direction (other key) fails its
 * tag.  Payloads are 1 to RECORD_MAX_PAYLOAD bytes; RECORD_CLOSE (empty)
 * ends the direction, so a cut at a record boundary is told from an orderly
 * end.  A sender stops before its counter reaches the limit, so a nonce is
 * never used twice: the link is closed and reconnects with fresh keys.
 *
 * Pure code over byte buffers (no sockets, no clock): unit-tested directly.
 */
#ifndef EFM_RECORD_H
#define EFM_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_KEY_LEN     32
#define RECORD_HEADER_LEN  3
#define RECORD_TAG_LEN     16
#define RECORD_OVERHEAD    (RECORD_HEADER_LEN + RECORD_TAG_LEN)
#define RECORD_MAX_PAYLOAD 16384
#define RECORD_MAX         (RECORD_MAX_PAYLOAD + RECORD_OVERHEAD)
/* Records per direction and key: the counter stops one short of wrapping. */
#define RECORD_SEQ_LIMIT UINT64_MAX

enum record_type {
	RECORD_DATA = 0x17,
	RECORD_CLOSE = 0x15,
};

/* How a received stream ended (record_open_end). */
enum record_end {
	RECORD_END_CLEAN,     /* after a RECORD_CLOSE */
	RECORD_END_NO_CLOSE,  /* at a record boundary, without RECORD_CLOSE */
	RECORD_END_TRUNCATED, /* inside a record */
};

/* One direction's sending state. */
struct record_sealer {
	void *ctx; /* EVP_CIPHER_CTX holding the key */
	uint64_t seq;
	uint64_t limit; /* records that may be sealed with this key */
};

/* One direction's receiving state: a streaming parser. */
struct record_opener {
	void *ctx;
	uint64_t seq;
	uint64_t limit;
	uint8_t buf[RECORD_MAX]; /* the record being gathered, decrypted in place */
	size_t have;             /* bytes of it received */
	size_t need;             /* header, then the whole record */
	bool closed;             /* RECORD_CLOSE received */
	int error;               /* sticky: first error, or 0 */
	char err[128];           /* what the error was */
};

/*
 * record_sealer_init / record_opener_init take the key (copied into the
 * cipher context; the caller wipes its copy) and the record limit (0 means
 * RECORD_SEQ_LIMIT; tests use small ones).  Return false when OpenSSL fails.
 */
bool record_sealer_init(struct record_sealer *s, const uint8_t key[RECORD_KEY_LEN], uint64_t limit)
    __attribute__((warn_unused_result));
bool record_opener_init(struct record_opener *o, const uint8_t key[RECORD_KEY_LEN], uint64_t limit)
    __attribute__((warn_unused_result));

/* record_*_free wipe the key and buffered plaintext; safe on a zeroed or freed struct. */
void record_sealer_free(struct record_sealer *s);
void record_opener_free(struct record_opener *o);

/* record_sealed_len is how many bytes record_seal_data writes for len payload bytes. */
size_t record_sealed_len(size_t len);

/*
 * record_seal_data cuts len (> 0) bytes into records of at most
 * RECORD_MAX_PAYLOAD and writes them to out (record_sealed_len(len) bytes).
 * Returns the bytes written, -ERANGE when the records would pass the limit
 * (nothing is sealed: close the link), -EIO when OpenSSL fails.
 */
long record_seal_data(struct record_sealer *s, const uint8_t *in, size_t len, uint8_t *out)
    __attribute__((warn_unused_result));

/* record_seal_close writes the RECORD_CLOSE record (RECORD_OVERHEAD bytes); same returns. */
long record_seal_close(struct record_sealer *s, uint8_t out[RECORD_OVERHEAD])
    __attribute__((warn_unused_result));

/*
 * record_payload_cb receives one authenticated payload, valid during the
 * call.  Return 0 to go on, anything else to stop (record_open_feed returns it).
 */
typedef int (*record_payload_cb)(void *arg, const uint8_t *data, size_t len);

/*
 * record_open_feed consumes received bytes (any split) and passes each
 * authenticated payload, in order, to cb; nothing of a record reaches cb
 * before its tag was verified.  Returns 0, the callback's nonzero value,
 * or a sticky negative error with o->err saying why: -EBADMSG (a record
 * failed authentication: modified, replayed, reordered or forged; or an
 * unknown type), -EMSGSIZE (length beyond RECORD_MAX_PAYLOAD), -EPROTO
 * (bytes after RECORD_CLOSE), -ERANGE (the peer passed the record limit),
 * -EIO (OpenSSL).
 */
int record_open_feed(struct record_opener *o, const uint8_t *data, size_t len, record_payload_cb cb,
                     void *arg) __attribute__((warn_unused_result));

/* record_open_end classifies the end of the received stream; o->err describes a truncation. */
enum record_end record_open_end(struct record_opener *o);

#endif
