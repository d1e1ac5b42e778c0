/*
 * test_seclink.c - an attacker on the path of an authenticated link.
 *
 * Two real transports on 127.0.0.1 talk through a TCP proxy on the same
 * loop.  The proxy relays the handshake untouched, then, depending on the
 * test, flips a bit, replays, reorders, injects or cuts the records the
 * client sends.  The server's owner must never see a byte that the client's
 * owner did not write, in the order it wrote them, and the link must close
 * with a WARNING naming the fault.  Also: the record limit renews the link,
 * and nothing of a seclink outlives its handles.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "log.h"
#include "record.h"
#include "seclink.h"
#include "transport.h"

static const uint8_t key[PEERAUTH_KEY_LEN] = {0x5e, 0xc1, 0x1e};

static char log_path[64];
static uv_loop_t loop;
static uv_timer_t ticker;

enum mode { PASS, FLIP, REPLAY, REORDER, INJECT, TRUNCATE };

/* What the server's owner (the accept side) and the client's owner observed. */
static struct {
	int accepts, connects, eofs, client_eofs;
	uv_stream_t *accepted, *connected;
	char got[512];
	size_t got_len;
	int got_len_i; /* got_len, for run_until */
} obs;

/* The proxy: one relayed connection at a time. */
static struct {
	enum mode mode;
	uv_tcp_t listener, down, up; /* down: from the client; up: to the server */
	uv_connect_t conn;
	bool up_ready;
	size_t hs_len;     /* client->server handshake bytes, relayed untouched */
	uint8_t c2s[4096]; /* everything the client sent */
	size_t c2s_len;
	size_t c2s_sent;     /* bytes of c2s dealt with */
	uint8_t early[4096]; /* server->client bytes before up was writable (none expected) */
	bool done;           /* the attack was carried out */
	int port;
} px;

static void on_tick(uv_timer_t *t)
{
}

static bool run_until(const int *counter, int target, unsigned ms)
{
	uv_update_time(&loop);
	uint64_t end = uv_now(&loop) + ms;
	while (*counter < target) {
		if (uv_now(&loop) > end)
			return false;
		uv_run(&loop, UV_RUN_ONCE);
	}
	return true;
}

static void run_for(unsigned ms)
{
	uv_update_time(&loop);
	uint64_t end = uv_now(&loop) + ms;
	while (uv_now(&loop) <= end)
		uv_run(&loop, UV_RUN_ONCE);
}

static int free_port(void)
{
	uv_tcp_t s;
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_tcp_init(&loop, &s);
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&s, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_tcp_getsockname(&s, (struct sockaddr *)&ss, &len), 0);
	int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&s, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return port;
}

static bool log_contains(const char *needle)
{
	static char buf[1 << 20];
	FILE *f = fopen(log_path, "r");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* ---- the proxy ---- */

static void on_px_write(uv_write_t *req, int status)
{
	free(req);
}

/* px_send writes a copy of len bytes to s. */
static void px_send(uv_tcp_t *s, const uint8_t *data, size_t len)
{
	if (len == 0 || uv_is_closing((uv_handle_t *)s))
		return;
	uv_write_t *w = malloc(sizeof(*w) + len);
	assert_non_null(w);
	memcpy(w + 1, data, len);
	uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned int)len);
	assert_int_equal(uv_write(w, (uv_stream_t *)s, &b, 1, on_px_write), 0);
}

/* The client's first record carries "first" (5 bytes), its second "second" (6). */
#define REC1 (5 + RECORD_OVERHEAD)
#define REC2 (6 + RECORD_OVERHEAD)

/* px_pump relays what the client sent so far, carrying out the attack on the way. */
static void px_pump(void)
{
	if (!px.up_ready)
		return;
	size_t hs = px.hs_len;
	if (px.c2s_sent < hs) {
		size_t n = px.c2s_len < hs ? px.c2s_len : hs;
		px_send(&px.up, px.c2s + px.c2s_sent, n - px.c2s_sent);
		px.c2s_sent = n;
		if (n < hs)
			return;
	}
	size_t avail = px.c2s_len - px.c2s_sent;
	switch (px.mode) {
	case PASS:
		break;
	case FLIP:
		if (!px.done && px.c2s_len > hs + 5) {
			px.c2s[hs + 5] ^= 0x01;
			px.done = true;
		}
		break;
	case INJECT:
		if (!px.done) {
			/* A plain frame an attacker would like the peer to act on. */
			static const char forged[] = "\x00\x00\x00\x10{\"type\":\"stop\"}";
			px_send(&px.up, (const uint8_t *)forged, sizeof(forged) - 1);
			px.done = true;
		}
		break;
	case REPLAY:
		if (!px.done && px.c2s_len >= hs + REC1) {
			px_send(&px.up, px.c2s + px.c2s_sent, hs + REC1 - px.c2s_sent);
			px_send(&px.up, px.c2s + hs, REC1); /* once more */
			px.c2s_sent = hs + REC1;
			px.done = true;
			avail = px.c2s_len - px.c2s_sent;
		}
		break;
	case REORDER:
		if (px.done)
			break;
		if (px.c2s_len < hs + REC1 + REC2)
			return; /* hold both records */
		px_send(&px.up, px.c2s + hs + REC1, REC2);
		px_send(&px.up, px.c2s + hs, REC1);
		px.c2s_sent = hs + REC1 + REC2;
		px.done = true;
		avail = px.c2s_len - px.c2s_sent;
		break;
	case TRUNCATE:
		if (px.done)
			return;
		if (px.c2s_len >= hs + 10) {
			px_send(&px.up, px.c2s + px.c2s_sent, hs + 10 - px.c2s_sent);
			px.c2s_sent = px.c2s_len;
			px.done = true;
			uv_close((uv_handle_t *)&px.up, NULL); /* the server reads EOF */
		}
		return;
	}
	px_send(&px.up, px.c2s + px.c2s_sent, avail);
	px.c2s_sent += avail;
}

static void px_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[4096];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void px_close_both(void)
{
	if (!uv_is_closing((uv_handle_t *)&px.down))
		uv_close((uv_handle_t *)&px.down, NULL);
	if (!uv_is_closing((uv_handle_t *)&px.up))
		uv_close((uv_handle_t *)&px.up, NULL);
}

static void on_px_down_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n < 0) {
		px_close_both();
		return;
	}
	assert_true(px.c2s_len + (size_t)n <= sizeof(px.c2s));
	memcpy(px.c2s + px.c2s_len, buf->base, (size_t)n);
	px.c2s_len += (size_t)n;
	px_pump();
}

static void on_px_up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n < 0) {
		px_close_both();
		return;
	}
	px_send(&px.down, (const uint8_t *)buf->base, (size_t)n);
}

static void on_px_up_connected(uv_connect_t *req, int status)
{
	assert_int_equal(status, 0);
	px.up_ready = true;
	assert_int_equal(uv_read_start((uv_stream_t *)&px.up, px_alloc, on_px_up_read), 0);
	px_pump();
}

static int server_port;

static void on_px_connection(uv_stream_t *l, int status)
{
	struct sockaddr_in a;
	assert_int_equal(status, 0);
	uv_tcp_init(&loop, &px.down);
	assert_int_equal(uv_accept(l, (uv_stream_t *)&px.down), 0);
	uv_tcp_init(&loop, &px.up);
	uv_ip4_addr("127.0.0.1", server_port, &a);
	assert_int_equal(
	    uv_tcp_connect(&px.conn, &px.up, (struct sockaddr *)&a, on_px_up_connected), 0);
	assert_int_equal(uv_read_start((uv_stream_t *)&px.down, px_alloc, on_px_down_read), 0);
}

static void px_start(enum mode mode, size_t client_addr_len)
{
	struct sockaddr_in a;
	memset(&px, 0, sizeof(px));
	px.mode = mode;
	/* HELLO (header, address, nonce) and PROOF. */
	px.hs_len = PEERAUTH_HEADER_LEN + client_addr_len + PEERAUTH_NONCE_LEN + PEERAUTH_MAC_LEN;
	px.port = free_port();
	uv_tcp_init(&loop, &px.listener);
	uv_ip4_addr("127.0.0.1", px.port, &a);
	assert_int_equal(uv_tcp_bind(&px.listener, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&px.listener, 4, on_px_connection), 0);
}

static void px_stop(void)
{
	uv_close((uv_handle_t *)&px.listener, NULL);
	if (uv_is_active((uv_handle_t *)&px.down) || uv_is_active((uv_handle_t *)&px.up))
		px_close_both();
}

/* ---- the two owners ---- */

static void free_stream(uv_handle_t *h)
{
	raft_free(h);
}

static void sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	*buf = uv_buf_init(obs.got + obs.got_len, (unsigned int)(sizeof(obs.got) - obs.got_len));
}

static void on_sink_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0) {
		obs.got_len += (size_t)n;
		obs.got_len_i = (int)obs.got_len;
	} else if (n < 0) {
		obs.eofs++;
	}
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
	obs.accepts++;
	obs.accepted = stream;
	assert_int_equal(uv_read_start(stream, sink_alloc, on_sink_read), 0);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[256];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n < 0)
		obs.client_eofs++;
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	assert_int_equal(status, 0);
	obs.connects++;
	obs.connected = stream;
	assert_int_equal(uv_read_start(stream, client_alloc, on_client_read), 0);
}

/*
 * client_write sends text as its own record (the loop runs until the pump
 * sealed it); once an attack closed the link the write fails, which is fine.
 */
static void client_write(const char *text)
{
	uv_buf_t b = uv_buf_init((char *)text, (unsigned int)strlen(text));
	int n = uv_try_write(obs.connected, &b, 1);
	assert_true(n == (int)strlen(text) || n == UV_EPIPE || n == UV_ECONNRESET);
	run_for(30);
}

static struct raft_uv_transport ta, tb;
static int closes;

static void on_closed(struct raft_uv_transport *t)
{
	closes++;
}

/*
 * run_attack connects a client through the proxy in `mode`, writes "first"
 * then "second" as two records and lets the proxy work.  record_limit
 * applies to the client's transport.
 */
static void run_attack(enum mode mode, uint64_t record_limit)
{
	static struct raft_uv_connect req;
	struct transport_options o;
	char addr_a[64], addr_b[64], via[64];

	memset(&obs, 0, sizeof(obs));
	closes = 0;
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &ticker);
	uv_timer_start(&ticker, on_tick, 10, 10);

	transport_options_default(&o);
	server_port = free_port();
	snprintf(addr_a, sizeof(addr_a), "127.0.0.1:%d", server_port);
	assert_int_equal(transport_init(&ta, &loop, key, &o), 0);
	assert_int_equal(transport_start(&ta, 1, addr_a), 0);
	assert_int_equal(ta.listen(&ta, on_accept), 0);

	o.record_limit = record_limit;
	snprintf(addr_b, sizeof(addr_b), "127.0.0.1:%d", free_port());
	assert_int_equal(transport_init(&tb, &loop, key, &o), 0);
	assert_int_equal(tb.init(&tb, 2, addr_b), 0);

	px_start(mode, strlen(addr_b));
	snprintf(via, sizeof(via), "127.0.0.1:%d", px.port);
	assert_int_equal(tb.connect(&tb, &req, 1, via, on_connect), 0);
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_true(run_until(&obs.accepts, 1, 3000));
	client_write("first");
	client_write("second");
}

/* teardown closes what is left and checks that no seclink outlived its handles. */
static void teardown(void)
{
	if (obs.connected != NULL && !uv_is_closing((uv_handle_t *)obs.connected))
		uv_close((uv_handle_t *)obs.connected, free_stream);
	if (obs.accepted != NULL && !uv_is_closing((uv_handle_t *)obs.accepted))
		uv_close((uv_handle_t *)obs.accepted, free_stream);
	px_stop();
	ta.close(&ta, on_closed);
	tb.close(&tb, on_closed);
	assert_true(run_until(&closes, 2, 2000));
	transport_free(&ta);
	transport_free(&tb);
	uv_close((uv_handle_t *)&ticker, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seclink_count(), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Untouched, both records arrive in order and nothing is logged as a fault. */
static void test_pass(void **state)
{
	run_attack(PASS, 0);
	assert_true(run_until(&obs.got_len_i, 11, 2000));
	assert_memory_equal(obs.got, "firstsecond", 11);
	assert_int_equal(obs.eofs, 0);
	/* The owner closing its end: the peer's owner reads EOF, after a clean close record. */
	uv_close((uv_handle_t *)obs.connected, free_stream);
	obs.connected = NULL;
	assert_true(run_until(&obs.eofs, 1, 2000));
	assert_false(log_contains("link closed: record"));
	teardown();
}

/*
 * The attack closes the server's link after `before` good bytes, with `why`
 * in the log; client_sees: the client's owner reads the end too.
 */
static void expect_refused(const char *before, const char *why, bool client_sees)
{
	assert_true(run_until(&obs.eofs, 1, 3000));
	assert_int_equal(obs.got_len, strlen(before));
	assert_memory_equal(obs.got, before, strlen(before));
	assert_true(log_contains(why));
	/* The client's owner learns it too, unless the proxy keeps its side open. */
	if (client_sees)
		assert_true(run_until(&obs.client_eofs, 1, 3000));
	teardown();
}

static void test_flipped_bit(void **state)
{
	run_attack(FLIP, 0);
	expect_refused("", "link closed: record 0 failed authentication", true);
}

static void test_replayed_record(void **state)
{
	run_attack(REPLAY, 0);
	expect_refused("first", "link closed: record 1 failed authentication", true);
}

static void test_reordered_records(void **state)
{
	run_attack(REORDER, 0);
	expect_refused("", "link closed: record 0 failed authentication", true);
}

/* A plain frame slipped in after the handshake is never read as one. */
static void test_injected_frame(void **state)
{
	run_attack(INJECT, 0);
	expect_refused("", "link closed: record 0 has unknown type 0x00", true);
}

static void test_truncated_record(void **state)
{
	run_attack(TRUNCATE, 0);
	expect_refused("", "link closed: stream ended inside record 0 (10 of 24 bytes)", false);
}

/*
 * With a limit of 3 records the client's link seals "first" and "second",
 * keeps the last number for its close record and closes the link rather
 * than seal a third data record: both owners see it end.
 */
static void test_record_limit_closes(void **state)
{
	run_attack(PASS, 3);
	assert_true(run_until(&obs.got_len_i, 11, 2000));
	client_write("third");
	assert_true(run_until(&obs.client_eofs, 1, 3000));
	assert_true(run_until(&obs.eofs, 1, 3000));
	assert_int_equal(obs.got_len, 11);
	assert_true(log_contains("raft link used up its record numbers"));
	teardown();
}

static int group_setup(void **state)
{
	snprintf(log_path, sizeof(log_path), "/tmp/test_seclink_log_XXXXXX");
	int fd = mkstemp(log_path);
	if (fd < 0)
		return -1;
	close(fd);
	if (log_open(log_path) != 0)
		return -1;
	log_set_level(EFM_FINE);
	return 0;
}

static int group_teardown(void **state)
{
	log_close();
	if (getenv("EFM_TEST_KEEP_LOG") != NULL)
		fprintf(stderr, "log kept in %s\n", log_path);
	else
		unlink(log_path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pass),
	    cmocka_unit_test(test_flipped_bit),
	    cmocka_unit_test(test_replayed_record),
	    cmocka_unit_test(test_reordered_records),
	    cmocka_unit_test(test_injected_frame),
	    cmocka_unit_test(test_truncated_record),
	    cmocka_unit_test(test_record_limit_closes),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
