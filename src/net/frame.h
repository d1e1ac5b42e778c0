/*
 * frame.h - length-prefixed JSON frames for the peer RPC channel.
 *
 * A frame is a 4-byte big-endian payload length followed by that many bytes
 * holding one JSON object.  A length of zero or above the decoder's maximum
 * is a protocol error: the connection must be closed, never resynchronised.
 */
#ifndef EFM_FRAME_H
#define EFM_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <uv.h>

#define FRAME_HEADER_LEN 4
/*
 * Largest payload encoded, and accepted by default (128 KiB).  The largest
 * message peers exchange is a forwarded admin command, whose arguments come
 * from one admin request of at most 64 KiB; the rest (heartbeats, joins,
 * reset proposals listing every member) are a few KiB.  Twice the largest
 * leaves room for re-encoding while a peer that announces more is cut off
 * at its length prefix.
 */
#define FRAME_MAX_DEFAULT (128 * 1024)

/*
 * frame_cb receives one decoded object.  The decoder deletes msg after the
 * callback returns (detach what you keep).  Return 0 to go on with the next
 * frame, anything else to stop decoding (for instance after closing the
 * link); frame_decoder_feed then returns that value.
 */
typedef int (*frame_cb)(void *arg, const cJSON *msg);

/*
 * Streaming decoder state: bytes may arrive split anywhere.  The payload
 * buffer grows with the bytes received, so a frame announced but not sent
 * costs little; it never exceeds max + 1 bytes.
 */
struct frame_decoder {
	size_t max;                    /* largest payload accepted */
	uint8_t hdr[FRAME_HEADER_LEN]; /* length prefix being gathered */
	size_t hdr_len;                /* bytes of hdr received */
	char *payload;                 /* malloc'd, payload_cap bytes; NULL between frames */
	size_t payload_cap;            /* bytes allocated, at most payload_need + 1 */
	size_t payload_len;            /* bytes of payload received */
	size_t payload_need;           /* announced payload length; 0 between frames */
	int error;                     /* sticky: first error seen, or 0 */
};

/* frame_decoder_init prepares d; max 0 means FRAME_MAX_DEFAULT. */
void frame_decoder_init(struct frame_decoder *d, size_t max);
/* frame_decoder_free releases the partial payload, if any. */
void frame_decoder_free(struct frame_decoder *d);

/*
 * frame_decoder_feed consumes len bytes, calling cb for each complete frame.
 * Returns 0, -EMSGSIZE for a length of zero or over max, -EBADMSG for a
 * payload that is not one JSON object, -ENOMEM, or the callback's nonzero
 * value.  Errors are sticky: later calls return the same error.
 */
int frame_decoder_feed(struct frame_decoder *d, const void *data, size_t len, frame_cb cb,
                       void *arg) __attribute__((warn_unused_result));

/* frame_decoder_partial is true while a frame has been started but not finished. */
bool frame_decoder_partial(const struct frame_decoder *d);

/*
 * frame_encode prints msg (compact) behind its length prefix into a new
 * malloc'd buffer.  Returns 0, -EINVAL when msg is not an object, -EMSGSIZE
 * above FRAME_MAX_DEFAULT, -ENOMEM.
 */
int frame_encode(const cJSON *msg, char **out, size_t *outlen) __attribute__((warn_unused_result));

/* frame_send_cb reports the end of a frame_send write (0 or a negative uv code). */
typedef void (*frame_send_cb)(void *arg, int status);

/*
 * frame_send encodes msg and queues it on stream; the buffer is freed when
 * the write completes, then cb (may be NULL) is called.  Returns 0 or a
 * negative error (encode errors as frame_encode, or a uv_write error); on
 * error cb is not called.
 */
int frame_send(uv_stream_t *stream, const cJSON *msg, frame_send_cb cb, void *arg)
    __attribute__((warn_unused_result));

#endif
