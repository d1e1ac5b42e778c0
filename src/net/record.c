/*
 * record.c - ChaCha20-Poly1305 records with implicit sequence numbers (record.h).
 *
 * The key is set once per context; each record only sets its nonce.
 */
#include "record.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define NONCE_LEN 12

/* nonce_for writes 0x00000000 || seq big-endian. */
static void nonce_for(uint64_t seq, uint8_t nonce[NONCE_LEN])
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

/* new_ctx makes a context holding key for encryption or decryption. */
static void *new_ctx(const uint8_t key[RECORD_KEY_LEN], bool enc)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return NULL;
	int ok = enc ? EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL)
	             : EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL);
	if (ok != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

bool record_sealer_init(struct record_sealer *s, const uint8_t key[RECORD_KEY_LEN], uint64_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit != 0 ? limit : RECORD_SEQ_LIMIT;
	s->ctx = new_ctx(key, true);
	return s->ctx != NULL;
}

bool record_opener_init(struct record_opener *o, const uint8_t key[RECORD_KEY_LEN], uint64_t limit)
{
	memset(o, 0, sizeof(*o));
	o->limit = limit != 0 ? limit : RECORD_SEQ_LIMIT;
	o->need = RECORD_HEADER_LEN;
	o->ctx = new_ctx(key, false);
	return o->ctx != NULL;
}

void record_sealer_free(struct record_sealer *s)
{
	EVP_CIPHER_CTX_free(s->ctx); /* wipes the key schedule */
	s->ctx = NULL;
}

void record_opener_free(struct record_opener *o)
{
	EVP_CIPHER_CTX_free(o->ctx);
	o->ctx = NULL;
	OPENSSL_cleanse(o->buf, sizeof(o->buf));
}

size_t record_sealed_len(size_t len)
{
	size_t n = (len + RECORD_MAX_PAYLOAD - 1) / RECORD_MAX_PAYLOAD;
	return len + n * RECORD_OVERHEAD;
}

/* seal_one writes one record of type with len payload bytes at out. */
static bool seal_one(struct record_sealer *s, uint8_t type, const uint8_t *in, size_t len,
                     uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = s->ctx;
	uint8_t nonce[NONCE_LEN];
	int n;
	out[0] = type;
	out[1] = (uint8_t)(len >> 8);
	out[2] = (uint8_t)len;
	nonce_for(s->seq, nonce);
	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, out, RECORD_HEADER_LEN) != 1 ||
	    (len > 0 && EVP_EncryptUpdate(ctx, out + RECORD_HEADER_LEN, &n, in, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(ctx, out + RECORD_HEADER_LEN + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, RECORD_TAG_LEN,
	                        out + RECORD_HEADER_LEN + len) != 1)
		return false;
	s->seq++;
	return true;
}

long record_seal_data(struct record_sealer *s, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t records = (len + RECORD_MAX_PAYLOAD - 1) / RECORD_MAX_PAYLOAD;
	if (len == 0 || s->ctx == NULL)
		return -EINVAL;
	/* One record is kept back for RECORD_CLOSE. */
	if (s->seq >= s->limit || records >= s->limit - s->seq)
		return -ERANGE;
	size_t off = 0, w = 0;
	while (off < len) {
		size_t chunk = len - off < RECORD_MAX_PAYLOAD ? len - off : RECORD_MAX_PAYLOAD;
		if (!seal_one(s, RECORD_DATA, in + off, chunk, out + w))
			return -EIO;
		off += chunk;
		w += chunk + RECORD_OVERHEAD;
	}
	return (long)w;
}

long record_seal_close(struct record_sealer *s, uint8_t out[RECORD_OVERHEAD])
{
	if (s->ctx == NULL)
		return -EINVAL;
	if (s->seq >= s->limit)
		return -ERANGE;
	if (!seal_one(s, RECORD_CLOSE, NULL, 0, out))
		return -EIO;
	return RECORD_OVERHEAD;
}

static int fail(struct record_opener *o, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fail records the first error and its description. */
static int fail(struct record_opener *o, int error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->err, sizeof(o->err), fmt, ap);
	va_end(ap);
	o->error = error;
	OPENSSL_cleanse(o->buf, o->have);
	return error;
}

/* check_header validates the gathered header and sets the record's full length. */
static int check_header(struct record_opener *o)
{
	uint8_t type = o->buf[0];
	size_t len = ((size_t)o->buf[1] << 8) | o->buf[2];
	if (type != RECORD_DATA && type != RECORD_CLOSE)
		return fail(o, -EBADMSG, "record %llu has unknown type 0x%02x",
		            (unsigned long long)o->seq, type);
	if (len > RECORD_MAX_PAYLOAD)
		return fail(o, -EMSGSIZE, "record %llu announces %zu bytes (at most %d)",
		            (unsigned long long)o->seq, len, RECORD_MAX_PAYLOAD);
	if ((type == RECORD_CLOSE) != (len == 0))
		return fail(o, -EBADMSG, "record %llu: %s record with %zu bytes",
		            (unsigned long long)o->seq, type == RECORD_CLOSE ? "close" : "data",
		            len);
	if (o->seq >= o->limit)
		return fail(o, -ERANGE, "record %llu is past the record limit of this key",
		            (unsigned long long)o->seq);
	o->need = RECORD_HEADER_LEN + len + RECORD_TAG_LEN;
	return 0;
}

/* open_record authenticates and decrypts the gathered record in place. */
static int open_record(struct record_opener *o, size_t *len)
{
	EVP_CIPHER_CTX *ctx = o->ctx;
	uint8_t nonce[NONCE_LEN];
	int n;
	*len = o->need - RECORD_OVERHEAD;
	uint8_t *body = o->buf + RECORD_HEADER_LEN;
	nonce_for(o->seq, nonce);
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, o->buf, RECORD_HEADER_LEN) != 1 ||
	    (*len > 0 && EVP_DecryptUpdate(ctx, body, &n, body, (int)*len) != 1) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, RECORD_TAG_LEN, body + *len) != 1)
		return fail(o, -EIO, "record %llu: cipher error", (unsigned long long)o->seq);
	if (EVP_DecryptFinal_ex(ctx, body + *len, &n) != 1)
		return fail(o, -EBADMSG,
		            "record %llu failed authentication (modified, replayed, reordered or "
		            "forged)",
		            (unsigned long long)o->seq);
	o->seq++;
	return 0;
}

int record_open_feed(struct record_opener *o, const uint8_t *data, size_t len, record_payload_cb cb,
                     void *arg)
{
	if (o->error != 0)
		return o->error;
	while (len > 0) {
		if (o->closed)
			return fail(o, -EPROTO, "%zu bytes after the close record", len);
		size_t take = o->need - o->have;
		if (take > len)
			take = len;
		memcpy(o->buf + o->have, data, take);
		o->have += take;
		data += take;
		len -= take;
		if (o->have < o->need)
			break;
		if (o->need == RECORD_HEADER_LEN) {
			int rc = check_header(o);
			if (rc != 0)
				return rc;
			continue;
		}
		size_t plen;
		int rc = open_record(o, &plen);
		if (rc != 0)
			return rc;
		bool is_close = o->buf[0] == RECORD_CLOSE;
		o->have = 0;
		o->need = RECORD_HEADER_LEN;
		if (is_close) {
			o->closed = true;
			continue;
		}
		rc = cb(arg, o->buf + RECORD_HEADER_LEN, plen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

enum record_end record_open_end(struct record_opener *o)
{
	if (o->closed)
		return RECORD_END_CLEAN;
	if (o->have == 0)
		return RECORD_END_NO_CLOSE;
	if (o->error == 0)
		fail(o, -EPIPE, "stream ended inside record %llu (%zu of %zu bytes)",
		     (unsigned long long)o->seq, o->have, o->need);
	return RECORD_END_TRUNCATED;
}
