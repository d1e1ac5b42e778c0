/*
 * frame.c - encoding and streaming decoding of length-prefixed JSON frames.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* First payload allocation; a frame's buffer doubles from here as its bytes arrive. */
#define FRAME_CHUNK 4096

/* A queued frame_send write: the request, its callback and the bytes. */
struct frame_write {
	uv_write_t req;
	frame_send_cb cb;
	void *arg;
	char *buf;
};

void frame_decoder_init(struct frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max != 0 ? max : FRAME_MAX_DEFAULT;
}

bool frame_decoder_partial(const struct frame_decoder *d)
{
	return d->hdr_len > 0 || d->payload_need > 0;
}

/* start_payload reads the completed length prefix; the buffer comes with the bytes. */
static int start_payload(struct frame_decoder *d)
{
	size_t n = ((size_t)d->hdr[0] << 24) | ((size_t)d->hdr[1] << 16) |
	           ((size_t)d->hdr[2] << 8) | d->hdr[3];
	if (n == 0 || n > d->max)
		return -EMSGSIZE;
	d->payload_need = n;
	d->payload_len = 0;
	return 0;
}

/*
 * reserve makes room for extra more payload bytes plus the terminator
 * cJSON likes to see, doubling from FRAME_CHUNK up to the announced size.
 */
static int reserve(struct frame_decoder *d, size_t extra)
{
	size_t want = d->payload_len + extra + 1;
	if (want <= d->payload_cap)
		return 0;
	size_t cap = d->payload_cap > 0 ? d->payload_cap : FRAME_CHUNK;
	while (cap < want)
		cap *= 2;
	if (cap > d->payload_need + 1)
		cap = d->payload_need + 1;
	char *p = realloc(d->payload, cap);
	if (p == NULL)
		return -ENOMEM;
	d->payload = p;
	d->payload_cap = cap;
	return 0;
}

/* forget_payload drops the current frame's bytes. */
static void forget_payload(struct frame_decoder *d)
{
	free(d->payload);
	d->payload = NULL;
	d->payload_cap = d->payload_len = d->payload_need = 0;
	d->hdr_len = 0;
}

void frame_decoder_free(struct frame_decoder *d)
{
	forget_payload(d);
}

/* finish_payload parses the completed payload and hands the object to cb. */
static int finish_payload(struct frame_decoder *d, frame_cb cb, void *arg)
{
	const char *end = NULL;
	d->payload[d->payload_need] = '\0';
	cJSON *msg = cJSON_ParseWithLengthOpts(d->payload, d->payload_need, &end, false);
	int rc = 0;
	if (msg == NULL || !cJSON_IsObject(msg)) {
		rc = -EBADMSG;
	} else {
		/* Only whitespace may follow the object: one frame, one message. */
		while (end < d->payload + d->payload_need &&
		       (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
			end++;
		if (end != d->payload + d->payload_need)
			rc = -EBADMSG;
	}
	forget_payload(d);
	if (rc == 0)
		rc = cb(arg, msg);
	cJSON_Delete(msg);
	return rc;
}

int frame_decoder_feed(struct frame_decoder *d, const void *data, size_t len, frame_cb cb,
                       void *arg)
{
	const uint8_t *p = data;
	int rc;

	if (d->error != 0)
		return d->error;
	while (len > 0) {
		if (d->payload_need == 0) {
			size_t n = FRAME_HEADER_LEN - d->hdr_len;
			if (n > len)
				n = len;
			memcpy(d->hdr + d->hdr_len, p, n);
			d->hdr_len += n;
			p += n;
			len -= n;
			if (d->hdr_len < FRAME_HEADER_LEN)
				break;
			rc = start_payload(d);
			if (rc != 0)
				return d->error = rc;
			continue;
		}
		size_t n = d->payload_need - d->payload_len;
		if (n > len)
			n = len;
		rc = reserve(d, n);
		if (rc != 0)
			return d->error = rc;
		memcpy(d->payload + d->payload_len, p, n);
		d->payload_len += n;
		p += n;
		len -= n;
		if (d->payload_len < d->payload_need)
			break;
		rc = finish_payload(d, cb, arg);
		if (rc != 0)
			return d->error = rc;
	}
	return 0;
}

int frame_encode(const cJSON *msg, char **out, size_t *outlen)
{
	if (msg == NULL || !cJSON_IsObject(msg))
		return -EINVAL;
	char *text = cJSON_PrintUnformatted(msg);
	if (text == NULL)
		return -ENOMEM;
	size_t n = strlen(text);
	if (n == 0 || n > FRAME_MAX_DEFAULT) {
		cJSON_free(text);
		return -EMSGSIZE;
	}
	char *buf = malloc(FRAME_HEADER_LEN + n);
	if (buf == NULL) {
		cJSON_free(text);
		return -ENOMEM;
	}
	buf[0] = (char)(n >> 24);
	buf[1] = (char)(n >> 16);
	buf[2] = (char)(n >> 8);
	buf[3] = (char)n;
	memcpy(buf + FRAME_HEADER_LEN, text, n);
	cJSON_free(text);
	*out = buf;
	*outlen = FRAME_HEADER_LEN + n;
	return 0;
}

/* on_written frees a frame_send buffer and reports the outcome. */
static void on_written(uv_write_t *req, int status)
{
	struct frame_write *w = req->data;
	frame_send_cb cb = w->cb;
	void *arg = w->arg;
	free(w->buf);
	free(w);
	if (cb != NULL)
		cb(arg, status);
}

int frame_send(uv_stream_t *stream, const cJSON *msg, frame_send_cb cb, void *arg)
{
	struct frame_write *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	size_t len;
	int rc = frame_encode(msg, &w->buf, &len);
	if (rc != 0) {
		free(w);
		return rc;
	}
	w->cb = cb;
	w->arg = arg;
	w->req.data = w;
	uv_buf_t b = uv_buf_init(w->buf, (unsigned int)len);
	rc = uv_write(&w->req, stream, &b, 1, on_written);
	if (rc != 0) {
		free(w->buf);
		free(w);
	}
	return rc;
}
