/*
 * test_record.c - the record layer without sockets: round trips at every
 * split, and refusal of modified, replayed, reordered, dropped, truncated
 * and misdirected records, the size boundaries and the record limit.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record.h"

static const uint8_t key_a[RECORD_KEY_LEN] = {0xa1, 0xa2, 0xa3, 4, 5, 6, 7, 8};
static const uint8_t key_b[RECORD_KEY_LEN] = {0xb1, 0xb2, 0xb3, 4, 5, 6, 7, 8};

/* What the opener delivered. */
struct sink {
	uint8_t *data;
	size_t len, cap;
	unsigned calls;
	int stop_after; /* return 1 after this many payloads; 0 never */
};

static int collect(void *arg, const uint8_t *data, size_t len)
{
	struct sink *k = arg;
	assert_true(len > 0 && len <= RECORD_MAX_PAYLOAD);
	if (k->len + len > k->cap) {
		k->cap = (k->len + len) * 2;
		k->data = realloc(k->data, k->cap);
		assert_non_null(k->data);
	}
	memcpy(k->data + k->len, data, len);
	k->len += len;
	k->calls++;
	return k->stop_after != 0 && k->calls >= (unsigned)k->stop_after ? 1 : 0;
}

static void sink_free(struct sink *k)
{
	free(k->data);
	memset(k, 0, sizeof(*k));
}

/* seal seals len bytes of in into a new buffer; *outlen its size. */
static uint8_t *seal(struct record_sealer *s, const uint8_t *in, size_t len, size_t *outlen)
{
	uint8_t *out = malloc(record_sealed_len(len));
	assert_non_null(out);
	long n = record_seal_data(s, in, len, out);
	assert_true(n > 0);
	assert_int_equal((size_t)n, record_sealed_len(len));
	*outlen = (size_t)n;
	return out;
}

/* feed passes len bytes in pieces of chunk (0: at once); returns the first nonzero result. */
static int feed(struct record_opener *o, const uint8_t *p, size_t len, size_t chunk, struct sink *k)
{
	for (size_t off = 0; off < len;) {
		size_t n = chunk == 0 || chunk > len - off ? len - off : chunk;
		int rc = record_open_feed(o, p + off, n, collect, k);
		if (rc != 0)
			return rc;
		off += n;
	}
	return 0;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed);
	return p;
}

/* Every size around the record boundary arrives intact, whatever the read split. */
static void test_round_trip(void **state)
{
	static const size_t sizes[] = {1,
	                               2,
	                               RECORD_MAX_PAYLOAD - 1,
	                               RECORD_MAX_PAYLOAD,
	                               RECORD_MAX_PAYLOAD + 1,
	                               3 * RECORD_MAX_PAYLOAD,
	                               65536 + 7};
	static const size_t chunks[] = {0, 1, 2, 3, 19, 4096, RECORD_MAX + 1};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct record_sealer s;
		struct record_opener o;
		struct sink k = {0};
		assert_true(record_sealer_init(&s, key_a, 0));
		assert_true(record_opener_init(&o, key_a, 0));
		size_t total = 0;
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			if (chunks[c] == 1 && sizes[i] > RECORD_MAX_PAYLOAD + 1)
				continue; /* byte by byte is slow; the small sizes cover it */
			uint8_t *in = pattern(sizes[i], (unsigned)i);
			size_t n;
			uint8_t *out = seal(&s, in, sizes[i], &n);
			/* Encrypted: the payload does not appear in clear. */
			if (sizes[i] >= 16)
				assert_null(memmem(out, n, in, 16));
			assert_int_equal(feed(&o, out, n, chunks[c], &k), 0);
			assert_int_equal(k.len, total + sizes[i]);
			assert_memory_equal(k.data + total, in, sizes[i]);
			total += sizes[i];
			free(in);
			free(out);
		}
		uint8_t close_rec[RECORD_OVERHEAD];
		assert_int_equal(record_seal_close(&s, close_rec), RECORD_OVERHEAD);
		assert_int_equal(feed(&o, close_rec, sizeof(close_rec), chunks[c], &k), 0);
		assert_int_equal(record_open_end(&o), RECORD_END_CLEAN);
		sink_free(&k);
		record_sealer_free(&s);
		record_opener_free(&o);
	}
}

/* The same plaintext sealed twice differs: the nonce moves with each record. */
static void test_nonce_advances(void **state)
{
	struct record_sealer s;
	assert_true(record_sealer_init(&s, key_a, 0));
	uint8_t a[RECORD_OVERHEAD + 5], b[RECORD_OVERHEAD + 5];
	assert_int_equal(record_seal_data(&s, (const uint8_t *)"hello", 5, a), sizeof(a));
	assert_int_equal(record_seal_data(&s, (const uint8_t *)"hello", 5, b), sizeof(b));
	assert_memory_equal(a, b, RECORD_HEADER_LEN);
	assert_memory_not_equal(a + RECORD_HEADER_LEN, b + RECORD_HEADER_LEN,
	                        sizeof(a) - RECORD_HEADER_LEN);
	assert_int_equal(s.seq, 2);
	record_sealer_free(&s);
}

/*
 * Flipping any one bit of a record (header, ciphertext or tag) never lets
 * a byte through: the record fails, or (a longer length) waits for bytes
 * that never come and the end reports a truncation.
 */
static void test_tamper_every_bit(void **state)
{
	struct record_sealer s;
	assert_true(record_sealer_init(&s, key_a, 0));
	size_t n;
	uint8_t *rec = seal(&s, (const uint8_t *)"stop the agent", 14, &n);
	record_sealer_free(&s);
	for (size_t bit = 0; bit < n * 8; bit++) {
		struct record_opener o;
		struct sink k = {0};
		assert_true(record_opener_init(&o, key_a, 0));
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = feed(&o, rec, n, 0, &k);
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(k.calls, 0);
		if (rc == 0) {
			assert_int_equal(record_open_end(&o), RECORD_END_TRUNCATED);
			assert_non_null(strstr(o.err, "ended inside record 0"));
		} else {
			assert_true(rc == -EBADMSG || rc == -EMSGSIZE);
			assert_true(o.err[0] != '\0');
		}
		record_opener_free(&o);
	}
	free(rec);
}

/* A replayed, reordered or dropped record fails, and the opener stays failed. */
static void test_replay_reorder_drop(void **state)
{
	struct record_sealer s;
	assert_true(record_sealer_init(&s, key_a, 0));
	size_t n0, n1, n2;
	uint8_t *r0 = seal(&s, (const uint8_t *)"zero", 4, &n0);
	uint8_t *r1 = seal(&s, (const uint8_t *)"one", 3, &n1);
	uint8_t *r2 = seal(&s, (const uint8_t *)"two", 3, &n2);
	record_sealer_free(&s);

	struct record_opener o;
	struct sink k = {0};
	/* Replay: record 0 twice. */
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(feed(&o, r0, n0, 0, &k), 0);
	assert_int_equal(feed(&o, r0, n0, 0, &k), -EBADMSG);
	assert_non_null(strstr(o.err, "record 1 failed authentication"));
	assert_int_equal(feed(&o, r1, n1, 0, &k), -EBADMSG); /* sticky */
	assert_int_equal(k.calls, 1);
	record_opener_free(&o);
	sink_free(&k);

	/* Reorder: record 1 before record 0. */
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(feed(&o, r1, n1, 0, &k), -EBADMSG);
	assert_int_equal(k.calls, 0);
	record_opener_free(&o);

	/* Drop: record 1 missing. */
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(feed(&o, r0, n0, 0, &k), 0);
	assert_int_equal(feed(&o, r2, n2, 0, &k), -EBADMSG);
	assert_int_equal(k.calls, 1);
	record_opener_free(&o);
	sink_free(&k);

	/* Another key (the other direction, another connection): refused. */
	assert_true(record_opener_init(&o, key_b, 0));
	assert_int_equal(feed(&o, r0, n0, 0, &k), -EBADMSG);
	assert_int_equal(k.calls, 0);
	record_opener_free(&o);

	/* A record spliced from another stream at the right position: still refused. */
	assert_true(record_sealer_init(&s, key_b, 0));
	size_t nx;
	uint8_t *x0 = seal(&s, (const uint8_t *)"evil", 4, &nx);
	record_sealer_free(&s);
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(feed(&o, x0, nx, 0, &k), -EBADMSG);
	record_opener_free(&o);

	free(r0);
	free(r1);
	free(r2);
	free(x0);
	sink_free(&k);
}

/* How a stream ends: clean after a close record, cut at a boundary, cut inside a record. */
static void test_truncation(void **state)
{
	struct record_sealer s;
	struct record_opener o;
	struct sink k = {0};
	assert_true(record_sealer_init(&s, key_a, 0));
	size_t n;
	uint8_t *r0 = seal(&s, (const uint8_t *)"abcdef", 6, &n);
	uint8_t close_rec[RECORD_OVERHEAD];
	assert_int_equal(record_seal_close(&s, close_rec), RECORD_OVERHEAD);

	/* Every cut inside the record: nothing delivered, end says truncated. */
	for (size_t cut = 1; cut < n; cut++) {
		assert_true(record_opener_init(&o, key_a, 0));
		assert_int_equal(feed(&o, r0, cut, 0, &k), 0);
		assert_int_equal(k.calls, 0);
		assert_int_equal(record_open_end(&o), RECORD_END_TRUNCATED);
		assert_non_null(strstr(o.err, "stream ended inside record 0"));
		record_opener_free(&o);
	}
	/* At the boundary, without a close record. */
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(record_open_end(&o), RECORD_END_NO_CLOSE);
	assert_int_equal(feed(&o, r0, n, 0, &k), 0);
	assert_int_equal(record_open_end(&o), RECORD_END_NO_CLOSE);
	/* A close record cut short is a truncation too. */
	assert_int_equal(feed(&o, close_rec, RECORD_OVERHEAD - 1, 0, &k), 0);
	assert_int_equal(record_open_end(&o), RECORD_END_TRUNCATED);
	record_opener_free(&o);

	/* Clean end; nothing may follow the close record. */
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(feed(&o, r0, n, 0, &k), 0);
	assert_int_equal(feed(&o, close_rec, sizeof(close_rec), 0, &k), 0);
	assert_int_equal(record_open_end(&o), RECORD_END_CLEAN);
	assert_int_equal(feed(&o, r0, 1, 0, &k), -EPROTO);
	assert_non_null(strstr(o.err, "after the close record"));
	record_opener_free(&o);

	record_sealer_free(&s);
	free(r0);
	sink_free(&k);
}

/* Sizes and types at and past their limits. */
static void test_boundaries(void **state)
{
	struct record_sealer s;
	struct record_opener o;
	struct sink k = {0};
	uint8_t buf[RECORD_MAX + RECORD_OVERHEAD];
	assert_true(record_sealer_init(&s, key_a, 0));
	assert_int_equal(record_seal_data(&s, buf, 0, buf), -EINVAL);
	assert_int_equal(record_sealed_len(1), 1 + RECORD_OVERHEAD);
	assert_int_equal(record_sealed_len(RECORD_MAX_PAYLOAD), RECORD_MAX);
	assert_int_equal(record_sealed_len(RECORD_MAX_PAYLOAD + 1),
	                 RECORD_MAX_PAYLOAD + 1 + 2 * RECORD_OVERHEAD);

	/* A length above the maximum is refused at the header, before its bytes arrive. */
	uint8_t hdr[RECORD_HEADER_LEN] = {RECORD_DATA, (RECORD_MAX_PAYLOAD + 1) >> 8,
	                                  (RECORD_MAX_PAYLOAD + 1) & 0xff};
	assert_true(record_opener_init(&o, key_a, 0));
	assert_int_equal(feed(&o, hdr, sizeof(hdr), 0, &k), -EMSGSIZE);
	assert_non_null(strstr(o.err, "announces 16385 bytes"));
	record_opener_free(&o);

	/* Unknown type, empty data record, close record with bytes. */
	static const uint8_t bad[][RECORD_HEADER_LEN] = {
	    {0x42, 0, 1}, {RECORD_DATA, 0, 0}, {RECORD_CLOSE, 0, 1}};
	for (size_t i = 0; i < 3; i++) {
		assert_true(record_opener_init(&o, key_a, 0));
		assert_int_equal(feed(&o, bad[i], RECORD_HEADER_LEN, 0, &k), -EBADMSG);
		record_opener_free(&o);
	}

	/* The callback can stop the feed between records; the rest waits its turn. */
	size_t n1, n2;
	uint8_t *r1 = seal(&s, (const uint8_t *)"one", 3, &n1);
	uint8_t *r2 = seal(&s, (const uint8_t *)"two", 3, &n2);
	assert_true(record_opener_init(&o, key_a, 0));
	uint8_t both[128];
	memcpy(both, r1, n1);
	memcpy(both + n1, r2, n2);
	k.stop_after = 1;
	assert_int_equal(record_open_feed(&o, both, n1 + n2, collect, &k), 1);
	assert_int_equal(k.calls, 1);
	assert_memory_equal(k.data, "one", 3);
	record_opener_free(&o);
	record_opener_free(&o); /* twice is harmless */
	record_sealer_free(&s);
	record_sealer_free(&s);
	free(r1);
	free(r2);
	sink_free(&k);
}

/*
 * The counter never wraps: the sealer keeps the last number for the close
 * record and refuses data that would pass the limit, sealing nothing; the
 * opener refuses a record numbered at or past its limit.
 */
static void test_record_limit(void **state)
{
	struct record_sealer s;
	struct record_opener o;
	struct sink k = {0};
	uint8_t out[4 * RECORD_MAX];
	uint8_t *big = pattern(3 * RECORD_MAX_PAYLOAD, 1);
	assert_true(record_sealer_init(&s, key_a, 4));
	assert_true(record_opener_init(&o, key_a, 4));
	assert_int_equal(record_seal_data(&s, big, 1, out), 1 + RECORD_OVERHEAD);
	assert_int_equal(feed(&o, out, 1 + RECORD_OVERHEAD, 0, &k), 0);
	/* Three records would leave none for the close record: refused whole. */
	assert_int_equal(record_seal_data(&s, big, 3 * RECORD_MAX_PAYLOAD, out), -ERANGE);
	assert_int_equal(s.seq, 1);
	assert_int_equal(record_seal_data(&s, big, 1, out), 1 + RECORD_OVERHEAD);
	assert_int_equal(record_seal_data(&s, big, 1, out + 1 + RECORD_OVERHEAD),
	                 1 + RECORD_OVERHEAD);
	assert_int_equal(record_seal_data(&s, big, 1, out), -ERANGE);
	assert_int_equal(record_seal_close(&s, out + 2 * (1 + RECORD_OVERHEAD)), RECORD_OVERHEAD);
	assert_int_equal(record_seal_close(&s, out), -ERANGE);
	assert_int_equal(s.seq, 4);
	record_sealer_free(&s);
	record_opener_free(&o);

	/* An opener with a lower limit than the sender refuses the record past it. */
	assert_true(record_sealer_init(&s, key_a, 0));
	assert_true(record_opener_init(&o, key_a, 2));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(record_seal_data(&s, big, 1, out), 1 + RECORD_OVERHEAD);
		assert_int_equal(feed(&o, out, 1 + RECORD_OVERHEAD, 0, &k), 0);
	}
	assert_int_equal(record_seal_data(&s, big, 1, out), 1 + RECORD_OVERHEAD);
	assert_int_equal(feed(&o, out, 1 + RECORD_OVERHEAD, 0, &k), -ERANGE);
	assert_non_null(strstr(o.err, "past the record limit"));
	record_sealer_free(&s);
	record_opener_free(&o);

	/* The default limit is the largest counter value: it never wraps to 0. */
	assert_true(record_sealer_init(&s, key_a, 0));
	assert_true(s.limit == UINT64_MAX);
	s.seq = UINT64_MAX - 2;
	assert_int_equal(record_seal_data(&s, big, 1, out), 1 + RECORD_OVERHEAD);
	assert_int_equal(record_seal_data(&s, big, 1, out), -ERANGE);
	assert_int_equal(record_seal_close(&s, out), RECORD_OVERHEAD);
	assert_true(s.seq == UINT64_MAX);
	assert_int_equal(record_seal_close(&s, out), -ERANGE);
	record_sealer_free(&s);
	free(big);
	sink_free(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_nonce_advances),
	    cmocka_unit_test(test_tamper_every_bit), cmocka_unit_test(test_replay_reorder_drop),
	    cmocka_unit_test(test_truncation),       cmocka_unit_test(test_boundaries),
	    cmocka_unit_test(test_record_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
