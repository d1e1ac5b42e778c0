/*
 * test_transport.c - the authenticated transport on a real loop over
 * 127.0.0.1: good links on both channels, wrong keys, garbage, stalls,
 * refused and blackholed connects, cancellation, and two libraft servers
 * electing a leader and replicating an entry through it.
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

#include "admission.h"
#include "frame.h"
#include "log.h"
#include "rpc.h"
#include "seclink.h"
#include "transport.h"

static const uint8_t key_a[PEERAUTH_KEY_LEN] = {0xa1, 0xa2, 0xa3};
static const uint8_t key_b[PEERAUTH_KEY_LEN] = {0xb1, 0xb2, 0xb3};

static char log_path[64];

/* Everything the callbacks observed in one test. */
struct obs {
	int accepts;
	uint64_t accept_id;
	char accept_addr[64];
	uv_stream_t *accepted;
	int rpc_accepts;
	uv_stream_t *rpc_accepted;
	int connects;
	int connect_status;
	uv_stream_t *connected;
	uint64_t connect_peer_id;
	uint64_t connect_done_ms;
	int closes;
	char got[256]; /* bytes read on the accepted/connected stream */
	size_t got_len;
	int frames;
	char frame_type[32];
};

static struct obs obs;
static uv_loop_t loop;
static uv_timer_t ticker;

/* on_tick only keeps uv_run(UV_RUN_ONCE) from blocking for long. */
static void on_tick(uv_timer_t *t)
{
}

static void setup_loop(void)
{
	memset(&obs, 0, sizeof(obs));
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &ticker);
	uv_timer_start(&ticker, on_tick, 10, 10);
}

/* teardown_loop closes the ticker, drains the loop and checks that nothing leaked. */
static void teardown_loop(void)
{
	uv_close((uv_handle_t *)&ticker, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(seclink_count(), 0); /* every record layer ended with its handles */
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* run_until runs the loop until *counter reaches target or ms pass. */
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

/* run_for runs the loop for ms regardless. */
static void run_for(unsigned ms)
{
	uv_update_time(&loop);
	uint64_t end = uv_now(&loop) + ms;
	while (uv_now(&loop) <= end)
		uv_run(&loop, UV_RUN_ONCE);
}

/* free_port_at finds a currently unused TCP port on host. */
static int free_port_at(const char *host)
{
	uv_tcp_t s;
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_tcp_init(&loop, &s);
	uv_ip4_addr(host, 0, &a);
	assert_int_equal(uv_tcp_bind(&s, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_tcp_getsockname(&s, (struct sockaddr *)&ss, &len), 0);
	int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&s, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return port;
}

static int free_port(void)
{
	return free_port_at("127.0.0.1");
}

static void free_stream(uv_handle_t *h)
{
	raft_free(h);
}

static void on_sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	*buf = uv_buf_init(obs.got + obs.got_len, (unsigned int)(sizeof(obs.got) - obs.got_len));
}

/* on_sink_read collects what arrives on a handed-over stream. */
static void on_sink_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0)
		obs.got_len += (size_t)n;
}

/* on_raft_accept stands in for libraft's accept callback. */
static void on_raft_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                           uv_stream_t *stream)
{
	obs.accepts++;
	obs.accept_id = id;
	snprintf(obs.accept_addr, sizeof(obs.accept_addr), "%s", address);
	obs.accepted = stream;
	assert_int_equal(uv_read_start(stream, on_sink_alloc, on_sink_read), 0);
}

/* on_raft_connect stands in for libraft's connect callback. */
static void on_raft_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	uv_update_time(&loop);
	obs.connects++;
	obs.connect_status = status;
	obs.connected = stream;
	obs.connect_done_ms = uv_now(&loop);
	assert_true((status == 0) == (stream != NULL));
}

static void on_closed(struct raft_uv_transport *t)
{
	obs.closes++;
}

/* make_transport initialises t with key and our identity; listens when asked. */
static int make_transport(struct raft_uv_transport *t, const uint8_t *key, uint64_t id, bool listen,
                          unsigned handshake_ms)
{
	struct transport_options o;
	char addr[64];
	int port = free_port();
	transport_options_default(&o);
	o.handshake_timeout_ms = handshake_ms;
	assert_int_equal(transport_init(t, &loop, key, &o), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	if (listen) {
		assert_int_equal(transport_start(t, id, addr), 0);
		assert_int_equal(t->listen(t, on_raft_accept), 0);
		assert_int_equal(transport_port(t), port);
	} else {
		assert_int_equal(t->init(t, id, addr), 0);
	}
	return port;
}

/* close_transports closes (and frees) the given transports and waits for their callbacks. */
static void close_transports(struct raft_uv_transport **ts, int n)
{
	int before = obs.closes;
	for (int i = 0; i < n; i++)
		ts[i]->close(ts[i], on_closed);
	assert_true(run_until(&obs.closes, before + n, 2000));
	for (int i = 0; i < n; i++)
		transport_free(ts[i]);
}

/* log_contains checks the captured log for a substring. */
static bool log_contains(const char *needle)
{
	char buf[65536];
	FILE *f = fopen(log_path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* A good RAFT link: the accept callback sees the right identity and bytes flow. */
static void test_good_link(void **state)
{
	struct raft_uv_transport a, b;
	struct raft_uv_connect req;
	char target[64];

	setup_loop();
	int pa = make_transport(&a, key_a, 1, true, 5000);
	int pb = make_transport(&b, key_a, 2, false, 5000);
	snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_int_equal(obs.connects, 0); /* never synchronous */
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, 0);
	assert_true(run_until(&obs.accepts, 1, 3000));
	assert_int_equal(obs.accept_id, 2);
	char expect_addr[64];
	snprintf(expect_addr, sizeof(expect_addr), "127.0.0.1:%d", pb);
	assert_string_equal(obs.accept_addr, expect_addr);

	/* The first bytes after the handshake reach the other side intact. */
	uv_write_t w;
	uv_buf_t buf = uv_buf_init((char *)"ping-raft", 9);
	assert_int_equal(uv_write(&w, obs.connected, &buf, 1, NULL), 0);
	run_for(100);
	assert_int_equal(obs.got_len, 9);
	assert_memory_equal(obs.got, "ping-raft", 9);

	uv_close((uv_handle_t *)obs.connected, free_stream);
	uv_close((uv_handle_t *)obs.accepted, free_stream);
	struct raft_uv_transport *ts[] = {&a, &b};
	close_transports(ts, 2);
	teardown_loop();
}

/* on_frame_rpc records a decoded RPC frame. */
static int on_frame_rpc(void *arg, const cJSON *msg)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	obs.frames++;
	if (cJSON_IsString(type))
		snprintf(obs.frame_type, sizeof(obs.frame_type), "%s", type->valuestring);
	return 0;
}

static struct frame_decoder rpc_dec;
static char rpc_buf[512];

static void on_rpc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	*buf = uv_buf_init(rpc_buf, sizeof(rpc_buf));
}

static void on_rpc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0)
		assert_int_equal(
		    frame_decoder_feed(&rpc_dec, buf->base, (size_t)n, on_frame_rpc, NULL), 0);
}

/* on_rpc_accept answers at once, so the client must not have read past the handshake. */
static void on_rpc_accept(void *arg, uint64_t id, const char *address, uv_stream_t *stream)
{
	obs.rpc_accepts++;
	obs.accept_id = id;
	obs.rpc_accepted = stream;
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "welcome");
	assert_int_equal(frame_send(stream, m, NULL, NULL), 0);
	cJSON_Delete(m);
}

static void on_rpc_connect(void *arg, int status, uint64_t peer_id, uv_stream_t *stream)
{
	obs.connects++;
	obs.connect_status = status;
	obs.connect_peer_id = peer_id;
	obs.connected = stream;
	if (status == 0)
		assert_int_equal(uv_read_start(stream, on_rpc_alloc, on_rpc_read), 0);
}

/* An RPC link: the server's first frame, sent right after accepting, arrives whole. */
static void test_rpc_channel(void **state)
{
	struct raft_uv_transport a, b;
	char target[64];

	setup_loop();
	frame_decoder_init(&rpc_dec, 0);
	int pa = make_transport(&a, key_a, 11, true, 5000);
	make_transport(&b, key_a, 12, false, 5000);
	transport_set_rpc_accept(&a, on_rpc_accept, NULL);
	snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
	assert_int_equal(transport_connect_rpc(&b, 0, target, on_rpc_connect, NULL), 0);
	assert_true(run_until(&obs.frames, 1, 3000));
	assert_int_equal(obs.connect_status, 0);
	assert_int_equal(obs.connect_peer_id, 11);
	assert_int_equal(obs.rpc_accepts, 1);
	assert_int_equal(obs.accepts, 0); /* not delivered as a raft link */
	assert_int_equal(obs.accept_id, 12);
	assert_string_equal(obs.frame_type, "welcome");

	/* An RPC link to the wrong expected id is refused by the client. */
	uv_stream_t *good = obs.connected;
	int before = obs.connects;
	assert_int_equal(transport_connect_rpc(&b, 99, target, on_rpc_connect, NULL), 0);
	assert_true(run_until(&obs.connects, before + 1, 3000));
	assert_int_equal(obs.connect_status, RAFT_NOCONNECTION);

	uv_close((uv_handle_t *)obs.rpc_accepted, free_stream);
	assert_null(obs.connected);
	uv_close((uv_handle_t *)good, free_stream);
	struct raft_uv_transport *ts[] = {&a, &b};
	close_transports(ts, 2);
	frame_decoder_free(&rpc_dec);
	teardown_loop();
}

/* A peer with another key is refused: no accept callback, WARNING on both sides. */
static void test_wrong_key(void **state)
{
	struct raft_uv_transport a, c;
	struct raft_uv_connect req;
	char target[64];

	setup_loop();
	int pa = make_transport(&a, key_a, 1, true, 5000);
	make_transport(&c, key_b, 3, false, 5000);
	snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
	assert_int_equal(c.connect(&c, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, RAFT_NOCONNECTION);
	run_for(100);
	assert_int_equal(obs.accepts, 0);
	assert_true(log_contains("server failed to prove the cluster key"));
	assert_true(log_contains("WARNING peer 127.0.0.1:")); /* server side names the source */

	struct raft_uv_transport *ts[] = {&a, &c};
	close_transports(ts, 2);
	teardown_loop();
}

/* A raw TCP client that sends fixed bytes and waits to be closed. */
struct raw {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t w;
	uint8_t data[1024];
	size_t len;
	char rbuf[64];
	size_t nread;
	uint64_t closed_ms;
};
static int raw_done;

static void on_raw_closed(uv_handle_t *h)
{
	struct raw *r = h->data;
	uv_update_time(&loop);
	r->closed_ms = uv_now(&loop);
	raw_done++;
}

static void on_raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct raw *r = h->data;
	*buf = uv_buf_init(r->rbuf, sizeof(r->rbuf));
}

static void on_raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct raw *r = s->data;
	if (n > 0)
		r->nread += (size_t)n; /* a server answering a HELLO may send its challenge */
	else if (n < 0 && !uv_is_closing((uv_handle_t *)s))
		uv_close((uv_handle_t *)s, on_raw_closed);
}

static void on_raw_connected(uv_connect_t *req, int status)
{
	struct raw *r = req->data;
	assert_int_equal(status, 0);
	if (r->len > 0) {
		uv_buf_t b = uv_buf_init((char *)r->data, (unsigned int)r->len);
		assert_int_equal(uv_write(&r->w, (uv_stream_t *)&r->tcp, &b, 1, NULL), 0);
	}
	assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read), 0);
}

/* raw_start_from connects from address src (NULL: any) to 127.0.0.1:port and sends data. */
static void raw_start_from(struct raw *r, const char *src, int port, const void *data, size_t len)
{
	struct sockaddr_in a;
	if (len > 0)
		memcpy(r->data, data, len);
	r->len = len;
	uv_tcp_init(&loop, &r->tcp);
	r->tcp.data = r;
	if (src != NULL) {
		uv_ip4_addr(src, 0, &a);
		assert_int_equal(uv_tcp_bind(&r->tcp, (struct sockaddr *)&a, 0), 0);
	}
	r->creq.data = r;
	uv_ip4_addr("127.0.0.1", port, &a);
	assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&a, on_raw_connected),
	                 0);
}

static void raw_start(struct raw *r, int port, const void *data, size_t len)
{
	raw_start_from(r, NULL, port, data, len);
}

/* Garbage, a truncated HELLO, a huge address length and silence are all closed. */
static void test_garbage_clients(void **state)
{
	struct raft_uv_transport a, b;
	struct raft_uv_connect req;
	static struct raw raws[4];
	uint8_t junk[512];
	char target[64];

	setup_loop();
	raw_done = 0;
	memset(raws, 0, sizeof(raws));
	int pa = make_transport(&a, key_a, 1, true, 500);
	make_transport(&b, key_a, 2, false, 5000);

	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	junk[0] = 'X';
	const uint8_t truncated[] = {'E', 'F', 'M', 'A', PEERAUTH_VERSION, 1, 0, 0, 0, 0};
	const uint8_t huge[] = {'E', 'F', 'M',  'A', PEERAUTH_VERSION, 1, 0, 0, 0, 0, 0, 0,
	                        0,   7,   0xff, 0xff};
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	raw_start(&raws[0], pa, junk, sizeof(junk));
	raw_start(&raws[1], pa, truncated, sizeof(truncated));
	raw_start(&raws[2], pa, huge, sizeof(huge));
	raw_start(&raws[3], pa, NULL, 0);
	assert_true(run_until(&raw_done, 4, 3000));
	/* Malformed input is cut at once; stalls at the 500 ms deadline. */
	assert_true(raws[0].closed_ms - t0 < 400);
	assert_true(raws[2].closed_ms - t0 < 400);
	assert_true(raws[1].closed_ms - t0 >= 450);
	assert_true(raws[3].closed_ms - t0 >= 450);
	for (int i = 0; i < 4; i++)
		assert_int_equal(raws[i].nread, 0); /* nothing answered to a bad HELLO */
	assert_int_equal(obs.accepts, 0);
	assert_true(log_contains("bad magic"));
	assert_true(log_contains("address length 65535 out of range"));
	assert_true(log_contains("handshake timed out"));

	/* The listener is unharmed: a good peer still gets in. */
	snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.accepts, 1, 3000));
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, 0);
	assert_int_equal(obs.accept_id, 2);

	uv_close((uv_handle_t *)obs.connected, free_stream);
	uv_close((uv_handle_t *)obs.accepted, free_stream);
	struct raft_uv_transport *ts[] = {&a, &b};
	close_transports(ts, 2);
	teardown_loop();
}

/* A connect to a port nobody listens on fails well before any deadline. */
static void test_closed_port(void **state)
{
	struct raft_uv_transport b;
	struct raft_uv_connect req;
	char target[64];

	setup_loop();
	make_transport(&b, key_a, 2, false, 5000);
	snprintf(target, sizeof(target), "127.0.0.1:%d", free_port());
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, RAFT_NOCONNECTION);
	assert_null(obs.connected);
	assert_true(obs.connect_done_ms - t0 < 500);

	/* Malformed addresses are refused synchronously. */
	assert_int_equal(b.connect(&b, &req, 1, "no-port", on_raft_connect), RAFT_NOCONNECTION);
	assert_int_equal(b.connect(&b, &req, 1, "127.0.0.1:99999", on_raft_connect),
	                 RAFT_NOCONNECTION);
	assert_int_equal(obs.connects, 1);

	struct raft_uv_transport *ts[] = {&b};
	close_transports(ts, 1);
	teardown_loop();
}

/* A "server" that accepts TCP and never says a word. */
static uv_tcp_t hole;
static uv_tcp_t hole_conns[4];
static int hole_n;

static void on_hole_connection(uv_stream_t *s, int status)
{
	if (hole_n >= 4)
		return;
	uv_tcp_init(&loop, &hole_conns[hole_n]);
	assert_int_equal(uv_accept(s, (uv_stream_t *)&hole_conns[hole_n]), 0);
	hole_n++;
}

static int hole_start(void)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	hole_n = 0;
	uv_tcp_init(&loop, &hole);
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&hole, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&hole, 8, on_hole_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&hole, (struct sockaddr *)&ss, &len), 0);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void hole_stop(void)
{
	for (int i = 0; i < hole_n; i++)
		uv_close((uv_handle_t *)&hole_conns[i], NULL);
	uv_close((uv_handle_t *)&hole, NULL);
}

/* A peer that accepts TCP but never answers the handshake is given up at the deadline. */
static void test_blackhole(void **state)
{
	struct raft_uv_transport b;
	struct raft_uv_connect req;
	char target[64];

	setup_loop();
	make_transport(&b, key_a, 2, false, 400);
	snprintf(target, sizeof(target), "127.0.0.1:%d", hole_start());
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, RAFT_NOCONNECTION);
	assert_true(obs.connect_done_ms - t0 >= 350);
	assert_true(obs.connect_done_ms - t0 < 1500);
	assert_int_equal(hole_n, 1);

	/* Closing the transport cancels a connect in flight, before the close callback. */
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	run_for(50);
	b.close(&b, on_closed);
	assert_int_equal(obs.connects, 1); /* never from within close() */
	assert_true(run_until(&obs.closes, 1, 2000));
	assert_int_equal(obs.connects, 2);
	assert_int_equal(obs.connect_status, RAFT_CANCELED);
	transport_free(&b);
	hole_stop();
	teardown_loop();
}

/* RAFT links before libraft listens, and links refused by the filter, are closed. */
static bool deny_all(void *arg, uint64_t id, const char *address, const char *peer_ip,
                     enum peerauth_channel ch)
{
	assert_string_equal(peer_ip, "127.0.0.1");
	(*(int *)arg)++;
	return false;
}

static void test_refused_after_auth(void **state)
{
	struct raft_uv_transport a, b;
	struct raft_uv_connect req;
	char target[64];
	int asked = 0;

	setup_loop();
	struct transport_options o;
	transport_options_default(&o);
	assert_int_equal(transport_init(&a, &loop, key_a, &o), 0);
	int pa = free_port();
	snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
	assert_int_equal(transport_start(&a, 1, target), 0); /* listening, raft not started */
	make_transport(&b, key_a, 2, false, 5000);

	/* Authenticated, but nobody to take a RAFT link: the client sees it closed. */
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, 0);
	uv_close((uv_handle_t *)obs.connected, free_stream);
	run_for(100);
	assert_true(log_contains("raft is not running here"));

	transport_set_allow(&a, deny_all, &asked);
	assert_int_equal(a.listen(&a, on_raft_accept), 0);
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.connects, 2, 3000));
	uv_close((uv_handle_t *)obs.connected, free_stream);
	run_for(100);
	assert_int_equal(asked, 1);
	assert_int_equal(obs.accepts, 0);
	assert_true(log_contains("not in the allowed node list"));

	struct raft_uv_transport *ts[] = {&a, &b};
	close_transports(ts, 2);
	teardown_loop();
}

static void on_fill_connected(uv_connect_t *req, int status)
{
}

/*
 * A listener whose accept queue is full drops SYNs, so TCP connect itself
 * hangs: the connect timeout (not the handshake one) ends it.
 */
static void test_connect_timeout(void **state)
{
	struct raft_uv_transport b;
	struct raft_uv_connect req;
	struct transport_options o;
	static struct raw fill[3];
	char target[64];

	setup_loop();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	socklen_t alen = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 0), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	int port = ntohs(a.sin_port);
	/* Fill the accept queue (never accepted). */
	memset(fill, 0, sizeof(fill));
	for (int i = 0; i < 3; i++) {
		uv_tcp_init(&loop, &fill[i].tcp);
		fill[i].tcp.data = &fill[i];
		assert_int_equal(uv_tcp_connect(&fill[i].creq, &fill[i].tcp, (struct sockaddr *)&a,
		                                on_fill_connected),
		                 0);
	}
	run_for(100);

	transport_options_default(&o);
	o.connect_timeout_ms = 300;
	assert_int_equal(transport_init(&b, &loop, key_a, &o), 0);
	assert_int_equal(b.init(&b, 2, "127.0.0.1:1"), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	assert_int_equal(b.connect(&b, &req, 1, target, on_raft_connect), 0);
	assert_true(run_until(&obs.connects, 1, 3000));
	assert_int_equal(obs.connect_status, RAFT_NOCONNECTION);
	assert_true(obs.connect_done_ms - t0 >= 250);
	assert_true(obs.connect_done_ms - t0 < 1000);
	assert_true(log_contains("connect timed out"));

	struct raft_uv_transport *ts[] = {&b};
	close_transports(ts, 1);
	for (int i = 0; i < 3; i++)
		uv_close((uv_handle_t *)&fill[i].tcp, NULL);
	close(fd);
	teardown_loop();
}

/* One libraft server for the election test. */
struct node {
	struct raft_uv_transport t;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft r;
	char dir[64];
	char addr[64];
	int applied;
};
static int raft_closed;

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct node *n = fsm->data;
	assert_int_equal(buf->len, 8);
	assert_memory_equal(buf->base, "efm-test", 8);
	n->applied++;
	*result = NULL;
	return 0;
}

static void on_raft_closed(struct raft *r)
{
	raft_closed++;
}

static int applied_total(struct node *nodes)
{
	return nodes[0].applied + nodes[1].applied;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
	assert_int_equal(status, 0);
	*(int *)req->data = 1;
}

/* node_start brings up one libraft server on our transport, bootstrapped with conf. */
static void node_start(struct node *n, raft_id id, const struct raft_configuration *conf)
{
	snprintf(n->dir, sizeof(n->dir), "/tmp/test_transport_raft_XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	assert_int_equal(transport_init(&n->t, &loop, key_a, NULL), 0);
	assert_int_equal(raft_uv_init(&n->io, &loop, n->dir, &n->t), 0);
	memset(&n->fsm, 0, sizeof(n->fsm));
	n->fsm.version = 1;
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	assert_int_equal(raft_init(&n->r, &n->io, &n->fsm, id, n->addr), 0);
	raft_set_election_timeout(&n->r, 300);
	raft_set_heartbeat_timeout(&n->r, 50);
	raft_set_pre_vote(&n->r, true);
	assert_int_equal(raft_bootstrap(&n->r, conf), 0);
	assert_int_equal(raft_start(&n->r), 0);
}

/* remove_dir empties and removes a raft data directory (flat). */
static void remove_dir(const char *dir)
{
	uv_fs_t req;
	uv_dirent_t ent;
	char path[256];
	if (uv_fs_scandir(NULL, &req, dir, 0, NULL) >= 0) {
		while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
			snprintf(path, sizeof(path), "%s/%s", dir, ent.name);
			unlink(path);
		}
	}
	uv_fs_req_cleanup(&req);
	rmdir(dir);
}

/* Two libraft servers on this transport elect a leader and replicate an entry. */
static void test_raft_election(void **state)
{
	static struct node nodes[2];
	struct raft_configuration conf;

	setup_loop();
	raft_closed = 0;
	memset(nodes, 0, sizeof(nodes));
	raft_configuration_init(&conf);
	for (int i = 0; i < 2; i++) {
		snprintf(nodes[i].addr, sizeof(nodes[i].addr), "127.0.0.1:%d", free_port());
		assert_int_equal(
		    raft_configuration_add(&conf, (raft_id)(i + 1), nodes[i].addr, RAFT_VOTER), 0);
	}
	for (int i = 0; i < 2; i++)
		node_start(&nodes[i], (raft_id)(i + 1), &conf);
	raft_configuration_close(&conf);

	struct node *leader = NULL;
	uv_update_time(&loop);
	uint64_t end = uv_now(&loop) + 10000;
	while (leader == NULL && uv_now(&loop) < end) {
		run_for(20);
		for (int i = 0; i < 2; i++)
			if (raft_state(&nodes[i].r) == RAFT_LEADER)
				leader = &nodes[i];
	}
	assert_non_null(leader);
	/* Both agree on who leads, which took messages in both directions. */
	struct node *follower = leader == &nodes[0] ? &nodes[1] : &nodes[0];
	raft_id lid = 0;
	const char *laddr = NULL;
	end = uv_now(&loop) + 5000;
	while (lid == 0 && uv_now(&loop) < end) {
		run_for(20);
		raft_leader(&follower->r, &lid, &laddr);
	}
	assert_int_equal(lid, leader->r.id);

	/* An entry proposed on the leader is applied on both servers. */
	struct raft_apply req;
	int done = 0;
	req.data = &done;
	struct raft_buffer buf = {.base = raft_malloc(8), .len = 8};
	memcpy(buf.base, "efm-test", 8);
	assert_int_equal(raft_apply(&leader->r, &req, &buf, 1, on_applied), 0);
	assert_true(run_until(&done, 1, 5000));
	end = uv_now(&loop) + 5000;
	while (applied_total(nodes) < 2 && uv_now(&loop) < end)
		run_for(20);
	assert_int_equal(nodes[0].applied, 1);
	assert_int_equal(nodes[1].applied, 1);

	for (int i = 0; i < 2; i++)
		raft_close(&nodes[i].r, on_raft_closed);
	assert_true(run_until(&raft_closed, 2, 5000));
	for (int i = 0; i < 2; i++) {
		raft_uv_close(&nodes[i].io);
		transport_free(&nodes[i].t);
		remove_dir(nodes[i].dir);
	}
	teardown_loop();
}

/* ---- the RPC layer on real links: frames that never finish ---- */

static int rpc_requests;

static void on_rpc_request(void *arg, struct rpc_conn *c, uint64_t peer_id, const char *peer_addr,
                           const cJSON *msg)
{
	rpc_requests++;
}

/* One client end of an RPC link, written to by hand. */
struct peer_end {
	uv_stream_t *s;
	bool eof;
	uint64_t eof_ms;
	char rbuf[256];
};
static int peer_ends_up, peer_ends_closed;

static void on_peer_end_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct peer_end *p = h->data;
	*buf = uv_buf_init(p->rbuf, sizeof(p->rbuf));
}

static void on_peer_end_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct peer_end *p = s->data;
	if (n >= 0 || p->eof)
		return;
	uv_update_time(&loop);
	p->eof = true;
	p->eof_ms = uv_now(&loop);
	peer_ends_closed++;
	uv_close((uv_handle_t *)s, free_stream);
}

static void on_peer_end_connect(void *arg, int status, uint64_t peer_id, uv_stream_t *stream)
{
	struct peer_end *p = arg;
	assert_int_equal(status, 0);
	p->s = stream;
	stream->data = p;
	assert_int_equal(uv_read_start(stream, on_peer_end_alloc, on_peer_end_read), 0);
	peer_ends_up++;
}

static void on_peer_end_written(uv_write_t *req, int status)
{
	free(req);
}

/* peer_end_write sends len bytes as they are (a copy is kept until written). */
static void peer_end_write(struct peer_end *p, const void *data, size_t len)
{
	uv_write_t *req = malloc(sizeof(*req) + len);
	assert_non_null(req);
	memcpy(req + 1, data, len);
	uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned int)len);
	assert_int_equal(uv_write(req, p->s, &b, 1, on_peer_end_written), 0);
}

/* peer_end_send_type sends the whole frame of {"type": type}. */
static void peer_end_send_type(struct peer_end *p, const char *type)
{
	cJSON *m = rpc_msg(type);
	char *buf;
	size_t len;
	assert_int_equal(frame_encode(m, &buf, &len), 0);
	peer_end_write(p, buf, len);
	free(buf);
	cJSON_Delete(m);
}

/*
 * An authenticated peer may pause between frames for as long as it likes,
 * but a frame it starts must be finished within the deadline, and one
 * announced above the maximum is refused at once.
 */
static void test_rpc_unfinished_frame(void **state)
{
	struct raft_uv_transport a, b;
	static struct peer_end ends[2];
	char target[64];

	setup_loop();
	rpc_requests = peer_ends_up = peer_ends_closed = 0;
	memset(ends, 0, sizeof(ends));
	int pa = make_transport(&a, key_a, 21, true, 5000);
	make_transport(&b, key_a, 22, false, 5000);
	struct rpc *r = rpc_new(&loop, &a, on_rpc_request, NULL);
	assert_non_null(r);
	rpc_set_frame_deadline(r, 300);
	snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    transport_connect_rpc(&b, 21, target, on_peer_end_connect, &ends[i]), 0);
	assert_true(run_until(&peer_ends_up, 2, 3000));

	peer_end_send_type(&ends[0], "one");
	assert_true(run_until(&rpc_requests, 1, 2000));
	run_for(700);
	peer_end_send_type(&ends[0], "two");
	assert_true(run_until(&rpc_requests, 2, 2000));
	assert_false(ends[0].eof);

	const uint8_t started[] = {0, 0, 0xc3, 0x50, '{', '"', 't', 'y', 'p', 'e', '"', ':'};
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	peer_end_write(&ends[0], started, sizeof(started));
	assert_true(run_until(&peer_ends_closed, 1, 3000));
	assert_true(ends[0].eof_ms - t0 >= 250);
	assert_true(ends[0].eof_ms - t0 < 2500);
	assert_true(log_contains("frame not finished"));

	const uint8_t old_max[] = {0x00, 0x10, 0x00, 0x00, '{'};
	uv_update_time(&loop);
	t0 = uv_now(&loop);
	peer_end_write(&ends[1], old_max, sizeof(old_max));
	assert_true(run_until(&peer_ends_closed, 2, 3000));
	assert_true(ends[1].eof_ms - t0 < 250);
	assert_int_equal(rpc_requests, 2);

	rpc_close(r);
	struct raft_uv_transport *ts[] = {&a, &b};
	close_transports(ts, 2);
	teardown_loop();
}

/* ---- strangers flooding the handshake slots ---- */

/* raws_close closes every raw client still open. */
static void raws_close(struct raw *raws, int n)
{
	for (int i = 0; i < n; i++)
		if (!uv_is_closing((uv_handle_t *)&raws[i].tcp))
			uv_close((uv_handle_t *)&raws[i].tcp, on_raw_closed);
}

/*
 * One source address cannot hold more than its share of the handshake
 * slots, and what it holds is let go after the default handshake
 * deadline, a few seconds.
 */
static void test_per_source_cap(void **state)
{
	struct raft_uv_transport a;
	struct transport_options o;
	static struct raw raws[20];
	char addr[64];

	setup_loop();
	raw_done = 0;
	memset(raws, 0, sizeof(raws));
	transport_options_default(&o);
	assert_int_equal(transport_init(&a, &loop, key_a, &o), 0);
	int pa = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", pa);
	assert_int_equal(transport_start(&a, 1, addr), 0);

	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	for (int i = 0; i < 20; i++)
		raw_start_from(&raws[i], "127.0.0.50", pa, NULL, 0);
	int refused = 20 - (int)o.max_handshakes_per_source;
	assert_true(run_until(&raw_done, refused, 2000));
	run_for(200);
	assert_int_equal(raw_done, refused);
	assert_true(log_contains("from this address"));

	assert_true(run_until(&raw_done, 20, 6000));
	for (int i = 0; i < 20; i++)
		assert_true(raws[i].closed_ms - t0 < 4000);
	assert_true(log_contains("handshake timed out"));

	struct raft_uv_transport *ts[] = {&a};
	close_transports(ts, 1);
	teardown_loop();
}

static int flood_connects, flood_status;

static void on_flood_connect(void *arg, int status, uint64_t peer_id, uv_stream_t *stream)
{
	flood_connects++;
	flood_status = status;
	if (stream != NULL)
		uv_close((uv_handle_t *)stream, free_stream);
}

/* on_count_accept takes an RPC link, counts it in *arg and closes it. */
static void on_count_accept(void *arg, uint64_t id, const char *address, uv_stream_t *stream)
{
	(*(int *)arg)++;
	uv_close((uv_handle_t *)stream, free_stream);
}

/* make_listener starts a transport listening on host (a free port) with RPC taken. */
static void make_listener(struct raft_uv_transport *t, uint64_t id, const char *host,
                          unsigned handshake_ms, int *accepts, char *addr, size_t addrlen)
{
	struct transport_options o;
	transport_options_default(&o);
	o.handshake_timeout_ms = handshake_ms;
	assert_int_equal(transport_init(t, &loop, key_a, &o), 0);
	snprintf(addr, addrlen, "%s:%d", host, free_port_at(host));
	assert_int_equal(transport_start(t, id, addr), 0);
	transport_set_rpc_accept(t, on_count_accept, accepts);
}

/* rpc_connect_status opens an RPC link from t to address and returns how it ended. */
static int rpc_connect_status(struct raft_uv_transport *t, const char *address)
{
	int before = flood_connects;
	assert_int_equal(transport_connect_rpc(t, 0, address, on_flood_connect, NULL), 0);
	assert_true(run_until(&flood_connects, before + 1, 4000));
	return flood_status;
}

/*
 * Strangers from many addresses fill every handshake slot and hold them.
 * A member that has been seen before (B authenticated here earlier) and
 * one this agent has connected to (C) still get in: a stranger's slot is
 * given up for them.
 */
static void test_known_peers_not_starved(void **state)
{
	struct raft_uv_transport a, b, c;
	static struct raw raws[80];
	char addr_a[64], addr_b[64], addr_c[64], src[32];
	int a_accepts = 0, b_accepts = 0, c_accepts = 0;

	setup_loop();
	raw_done = 0;
	memset(raws, 0, sizeof(raws));
	make_listener(&a, 1, "127.0.0.1", 10000, &a_accepts, addr_a, sizeof(addr_a));
	make_listener(&b, 2, "127.0.0.2", 10000, &b_accepts, addr_b, sizeof(addr_b));
	make_listener(&c, 3, "127.0.0.3", 10000, &c_accepts, addr_c, sizeof(addr_c));
	assert_int_equal(rpc_connect_status(&b, addr_a), 0);
	assert_int_equal(rpc_connect_status(&a, addr_c), 0);
	assert_true(run_until(&a_accepts, 1, 2000));
	assert_true(run_until(&c_accepts, 1, 2000));

	/* Exactly as many strangers as there are slots, so no refusal uses up the log's burst. */
	struct transport_options o;
	transport_options_default(&o);
	int pa = transport_port(&a);
	int n = (int)o.max_handshakes;
	assert_true(n < 80);
	for (int i = 0; i < n; i++) {
		snprintf(src, sizeof(src), "127.0.0.%d", 100 + i % 16);
		raw_start_from(&raws[i], src, pa, NULL, 0);
	}
	run_for(300);
	assert_int_equal(raw_done, 0); /* every slot is taken */

	/* C, known because A connected to it, takes the slot of the oldest stranger. */
	assert_int_equal(rpc_connect_status(&c, addr_a), 0);
	assert_true(run_until(&a_accepts, 2, 2000));
	assert_true(run_until(&raw_done, 1, 2000));
	assert_true(log_contains("to make room for 127.0.0.3:"));

	/* A stranger fills the slot again; B, seen here before, gets in all the same. */
	raw_start_from(&raws[n], "127.0.0.116", pa, NULL, 0);
	run_for(300);
	assert_int_equal(raw_done, 1);
	assert_int_equal(rpc_connect_status(&b, addr_a), 0);
	assert_true(run_until(&a_accepts, 3, 2000));
	assert_true(run_until(&raw_done, 2, 2000));
	assert_true(log_contains("to make room for 127.0.0.2:"));

	raws_close(raws, n + 1);
	assert_true(run_until(&raw_done, n + 1, 3000));
	struct raft_uv_transport *ts[] = {&a, &b, &c};
	close_transports(ts, 3);
	teardown_loop();
}

/* The admission rules alone: strangers' share, members first, the oldest address forgotten. */
static void test_admission_rules(void **state)
{
	struct admission_load l = {.in_flight = 10, .from_source = 8, .stranger_waiting = true};
	assert_int_equal(admission_decide(false, &l, 64, 8), ADMISSION_REFUSE_SOURCE);
	assert_int_equal(admission_decide(true, &l, 64, 8), ADMISSION_ACCEPT);
	l.from_source = 7;
	assert_int_equal(admission_decide(false, &l, 64, 8), ADMISSION_ACCEPT);
	l.in_flight = 64;
	assert_int_equal(admission_decide(false, &l, 64, 8), ADMISSION_REFUSE_FULL);
	assert_int_equal(admission_decide(true, &l, 64, 8), ADMISSION_EVICT_STRANGER);
	l.stranger_waiting = false;
	assert_int_equal(admission_decide(true, &l, 64, 8), ADMISSION_REFUSE_FULL);
	assert_string_equal(admission_refusal(ADMISSION_ACCEPT), "");

	static struct admission a;
	char ip[32];
	memset(&a, 0, sizeof(a));
	assert_false(admission_is_known(&a, ""));
	admission_learn(&a, "", 1);
	assert_int_equal(a.n_known, 0);
	for (int i = 0; i < ADMISSION_KNOWN_MAX; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		admission_learn(&a, ip, (uint64_t)i + 1);
	}
	admission_learn(&a, "10.0.0.0", 1000); /* seen again: now the most recent */
	admission_learn(&a, "192.0.2.1", 1001);
	assert_int_equal(a.n_known, ADMISSION_KNOWN_MAX);
	assert_true(admission_is_known(&a, "192.0.2.1"));
	assert_true(admission_is_known(&a, "10.0.0.0"));
	assert_false(admission_is_known(&a, "10.0.0.1")); /* the one seen longest ago */
	assert_true(admission_is_known(&a, "10.0.0.2"));
}

static int group_setup(void **state)
{
	snprintf(log_path, sizeof(log_path), "/tmp/test_transport_log_XXXXXX");
	int fd = mkstemp(log_path);
	if (fd < 0)
		return -1;
	close(fd);
	if (log_open(log_path) != 0)
		return -1;
	log_set_level(EFM_FINE); /* exercise the detail lines too */
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
	    cmocka_unit_test(test_good_link),
	    cmocka_unit_test(test_rpc_channel),
	    cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_garbage_clients),
	    cmocka_unit_test(test_closed_port),
	    cmocka_unit_test(test_blackhole),
	    cmocka_unit_test(test_refused_after_auth),
	    cmocka_unit_test(test_connect_timeout),
	    cmocka_unit_test(test_raft_election),
	    cmocka_unit_test(test_rpc_unfinished_frame),
	    cmocka_unit_test(test_per_source_cap),
	    cmocka_unit_test(test_known_peers_not_starved),
	    cmocka_unit_test(test_admission_rules),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
