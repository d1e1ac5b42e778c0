/*
 * test_frame.c - the JSON frame codec: split reads, batches, truncation,
 * refusals of oversized or non-JSON frames, and memory that follows the
 * bytes received rather than the length announced.
 */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

/* What the test callback saw. */
struct seen {
	int count;
	int last_n;  /* value of "n" in the last frame */
	int stop_at; /* return 1 when count reaches this (0: never) */
};

static int on_frame(void *arg, const cJSON *msg)
{
	struct seen *s = arg;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(msg, "n");
	assert_true(cJSON_IsNumber(n));
	s->last_n = n->valueint;
	s->count++;
	return s->stop_at != 0 && s->count == s->stop_at ? 1 : 0;
}

/* count_frame counts frames of any content. */
static int count_frame(void *arg, const cJSON *msg)
{
	(*(int *)arg)++;
	return 0;
}

/* encode_n builds the frame of {"n": n, "pad": "..."}. */
static char *encode_n(int n, size_t pad, size_t *len)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "n", n);
	char *p = malloc(pad + 1);
	memset(p, 'x', pad);
	p[pad] = '\0';
	cJSON_AddStringToObject(o, "pad", p);
	free(p);
	char *buf;
	assert_int_equal(frame_encode(o, &buf, len), 0);
	cJSON_Delete(o);
	return buf;
}

/* The header is the big-endian length of the compact JSON text. */
static void test_encode_layout(void **state)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "hb");
	char *buf;
	size_t len;
	assert_int_equal(frame_encode(o, &buf, &len), 0);
	assert_int_equal(len, 4 + strlen("{\"type\":\"hb\"}"));
	assert_memory_equal(buf, "\0\0\0\x0d{\"type\":\"hb\"}", len);
	free(buf);
	cJSON_Delete(o);

	cJSON *arr = cJSON_CreateArray();
	assert_int_equal(frame_encode(arr, &buf, &len), -EINVAL);
	cJSON_Delete(arr);
}

/* A frame fed one byte at a time, and at every split point, decodes once. */
static void test_split_reads(void **state)
{
	size_t len;
	char *buf = encode_n(7, 40, &len);
	for (size_t split = 0; split <= len; split++) {
		struct frame_decoder d;
		struct seen s = {0};
		frame_decoder_init(&d, 0);
		assert_int_equal(frame_decoder_feed(&d, buf, split, on_frame, &s), 0);
		assert_int_equal(s.count, split == len ? 1 : 0);
		assert_int_equal(frame_decoder_partial(&d), split > 0 && split < len);
		assert_int_equal(frame_decoder_feed(&d, buf + split, len - split, on_frame, &s), 0);
		assert_int_equal(s.count, 1);
		assert_int_equal(s.last_n, 7);
		frame_decoder_free(&d);
	}
	struct frame_decoder d;
	struct seen s = {0};
	frame_decoder_init(&d, 0);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(frame_decoder_feed(&d, buf + i, 1, on_frame, &s), 0);
	assert_int_equal(s.count, 1);
	frame_decoder_free(&d);
	free(buf);
}

/* Several frames in one read come out in order; a callback may stop the loop. */
static void test_many_in_one_read(void **state)
{
	char all[4096];
	size_t total = 0;
	for (int i = 1; i <= 5; i++) {
		size_t len;
		char *buf = encode_n(i, (size_t)i * 10, &len);
		memcpy(all + total, buf, len);
		total += len;
		free(buf);
	}
	struct frame_decoder d;
	struct seen s = {0};
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, all, total, on_frame, &s), 0);
	assert_int_equal(s.count, 5);
	assert_int_equal(s.last_n, 5);
	assert_false(frame_decoder_partial(&d));
	frame_decoder_free(&d);

	struct seen s2 = {.stop_at = 2};
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, all, total, on_frame, &s2), 1);
	assert_int_equal(s2.count, 2);
	/* The stop is sticky: nothing more is delivered. */
	assert_int_equal(frame_decoder_feed(&d, all, total, on_frame, &s2), 1);
	assert_int_equal(s2.count, 2);
	frame_decoder_free(&d);
}

/* A truncated frame delivers nothing and stays partial; freeing it does not leak. */
static void test_truncation(void **state)
{
	size_t len;
	char *buf = encode_n(3, 100, &len);
	struct frame_decoder d;
	struct seen s = {0};
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, buf, len - 1, on_frame, &s), 0);
	assert_int_equal(s.count, 0);
	assert_true(frame_decoder_partial(&d));
	frame_decoder_free(&d);
	free(buf);
}

/* A length prefix above the maximum (or zero) is refused before any allocation. */
static void test_huge_length(void **state)
{
	struct frame_decoder d;
	struct seen s = {0};
	frame_decoder_init(&d, 0);
	const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, '{'};
	assert_int_equal(frame_decoder_feed(&d, huge, sizeof(huge), on_frame, &s), -EMSGSIZE);
	assert_int_equal(frame_decoder_feed(&d, "\0\0\0\2{}", 6, on_frame, &s), -EMSGSIZE);
	frame_decoder_free(&d);

	/* Just over a custom maximum, and exactly at it. */
	frame_decoder_init(&d, 64);
	const uint8_t over[] = {0, 0, 0, 65};
	assert_int_equal(frame_decoder_feed(&d, over, sizeof(over), on_frame, &s), -EMSGSIZE);
	frame_decoder_free(&d);
	frame_decoder_init(&d, 64);
	const uint8_t at[] = {0, 0, 0, 64};
	assert_int_equal(frame_decoder_feed(&d, at, sizeof(at), on_frame, &s), 0);
	frame_decoder_free(&d);

	frame_decoder_init(&d, 0);
	const uint8_t zero[] = {0, 0, 0, 0};
	assert_int_equal(frame_decoder_feed(&d, zero, sizeof(zero), on_frame, &s), -EMSGSIZE);
	frame_decoder_free(&d);
	assert_int_equal(s.count, 0);
}

/* feed_raw wraps text in a length prefix and feeds it to a fresh decoder. */
static int feed_raw(const char *text, struct seen *s)
{
	char buf[256];
	size_t n = strlen(text);
	buf[0] = buf[1] = buf[2] = 0;
	buf[3] = (char)n;
	memcpy(buf + 4, text, n);
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	int rc = frame_decoder_feed(&d, buf, n + 4, on_frame, s);
	frame_decoder_free(&d);
	return rc;
}

/* Payloads that are not exactly one JSON object are refused. */
static void test_not_json(void **state)
{
	struct seen s = {0};
	assert_int_equal(feed_raw("hello world", &s), -EBADMSG);
	assert_int_equal(feed_raw("{\"n\":1", &s), -EBADMSG);
	assert_int_equal(feed_raw("[1,2,3]", &s), -EBADMSG);
	assert_int_equal(feed_raw("42", &s), -EBADMSG);
	assert_int_equal(feed_raw("{\"n\":1}{\"n\":2}", &s), -EBADMSG);
	assert_int_equal(feed_raw("{\"n\":1} x", &s), -EBADMSG);
	assert_int_equal(s.count, 0);
	assert_int_equal(feed_raw("{\"n\":9}\n", &s), 0);
	assert_int_equal(s.count, 1);
	assert_int_equal(s.last_n, 9);
}

/* An object larger than the maximum is not encoded. */
static void test_encode_too_big(void **state)
{
	cJSON *o = cJSON_CreateObject();
	char *big = malloc(FRAME_MAX_DEFAULT + 1);
	memset(big, 'y', FRAME_MAX_DEFAULT);
	big[FRAME_MAX_DEFAULT] = '\0';
	cJSON_AddStringToObject(o, "big", big);
	free(big);
	char *buf;
	size_t len;
	assert_int_equal(frame_encode(o, &buf, &len), -EMSGSIZE);
	cJSON_Delete(o);
}

/*
 * The largest message a peer sends is a forwarded admin command, whose
 * arguments come from one admin request (at most 64 KiB): it fits.  A
 * frame announced above the maximum, like the 1 MiB one that used to be
 * allowed, is refused as soon as its length prefix arrives.
 */
static void test_real_maximum(void **state)
{
	char *arg = malloc(64 * 1024 + 1);
	memset(arg, 'a', 64 * 1024);
	arg[64 * 1024] = '\0';
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "cmd");
	cJSON_AddStringToObject(o, "command", "allow-node");
	cJSON *args = cJSON_AddArrayToObject(o, "args");
	cJSON_AddItemToArray(args, cJSON_CreateString(arg));
	cJSON_AddNumberToObject(o, "hops", 1);
	free(arg);
	char *buf;
	size_t len;
	assert_int_equal(frame_encode(o, &buf, &len), 0);
	cJSON_Delete(o);
	struct frame_decoder d;
	int got = 0;
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, buf, len, count_frame, &got), 0);
	assert_int_equal(got, 1);
	frame_decoder_free(&d);
	free(buf);

	const uint8_t old_max[] = {0x00, 0x10, 0x00, 0x00}; /* 1 MiB */
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, old_max, sizeof(old_max), count_frame, &got),
	                 -EMSGSIZE);
	frame_decoder_free(&d);
	const uint8_t twice[] = {0x00, 0x04, 0x00, 0x00}; /* 256 KiB */
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, twice, sizeof(twice), count_frame, &got),
	                 -EMSGSIZE);
	frame_decoder_free(&d);
	assert_int_equal(got, 1);
}

/*
 * A peer that announces a large frame and sends a few bytes of it costs
 * about those bytes, not the announced length; the frame still decodes
 * once the rest arrives, in pieces of any size.
 */
static void test_buffer_follows_bytes(void **state)
{
	size_t len;
	char *buf = encode_n(5, 100000, &len);
	struct frame_decoder d;
	struct seen s = {0};
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_feed(&d, buf, FRAME_HEADER_LEN + 100, on_frame, &s), 0);
	assert_true(frame_decoder_partial(&d));
	assert_non_null(d.payload);
	assert_true(malloc_usable_size(d.payload) < 8192);
	size_t at = FRAME_HEADER_LEN + 100;
	size_t step = 1;
	while (at < len) {
		size_t n = step < len - at ? step : len - at;
		assert_int_equal(frame_decoder_feed(&d, buf + at, n, on_frame, &s), 0);
		at += n;
		step = step * 3 + 1;
	}
	assert_int_equal(s.count, 1);
	assert_int_equal(s.last_n, 5);
	assert_false(frame_decoder_partial(&d));
	frame_decoder_free(&d);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_layout),        cmocka_unit_test(test_split_reads),
	    cmocka_unit_test(test_many_in_one_read),     cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_huge_length),          cmocka_unit_test(test_not_json),
	    cmocka_unit_test(test_encode_too_big),       cmocka_unit_test(test_real_maximum),
	    cmocka_unit_test(test_buffer_follows_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
