/*
 * net_bench.c - cost of the peer transport (figures, not pass/fail).
 *
 * Everything runs in this one process on one loop over 127.0.0.1, so the
 * figures include both ends' work on one core: the cost of the transport is
 * counted twice, never hidden by a second core.
 *
 *   rpc_calls_per_s       rpc_call back to back: each opens a link, does the
 *                         handshake, one request/reply, closes (join, status)
 *   rpc_roundtrips_per_s  request/reply ping-pong on one open RPC link
 *                         (heartbeats, forwarded commands)
 *   raft_commit_ms_*      three libraft servers on our transport: time from
 *                         raft_apply on the leader to its apply callback
 *                         (a majority has stored the entry), one at a time
 *
 * The Raft directories go under --dir (default /dev/shm) so that the disk
 * does not drown the network cost.  Prints one JSON object.
 *
 * Usage: net_bench [--seconds S] [--entries N] [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <cJSON.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "frame.h"
#include "log.h"
#include "rpc.h"
#include "transport.h"

static const uint8_t key[PEERAUTH_KEY_LEN] = {0xbe, 0x4c, 0x11};
static uv_loop_t loop;
static uv_timer_t ticker;

static void on_tick(uv_timer_t *t)
{
}

/* run_until runs the loop until *flag is set or ms pass. */
static int run_until(const int *flag, unsigned ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
	while (!*flag && uv_hrtime() < end)
		uv_run(&loop, UV_RUN_ONCE);
	return *flag;
}

/*
 * free_port finds an unused port below the ephemeral range: the thousands
 * of connections rpc_call opens leave their ephemeral ports in TIME_WAIT,
 * where a listener could not bind them.
 */
static int free_port(void)
{
	for (;;) {
		uv_tcp_t s;
		struct sockaddr_in a;
		int port = 10000 + rand() % 20000;
		uv_tcp_init(&loop, &s);
		uv_ip4_addr("127.0.0.1", port, &a);
		int rc = uv_tcp_bind(&s, (struct sockaddr *)&a, 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&s, 1, NULL);
		uv_close((uv_handle_t *)&s, NULL);
		uv_run(&loop, UV_RUN_NOWAIT);
		if (rc == 0)
			return port;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- RPC ---- */

static void on_request(void *arg, struct rpc_conn *c, uint64_t peer_id, const char *peer_addr,
                       const cJSON *msg)
{
	rpc_reply(c, rpc_msg("pong"));
}

static struct {
	uint64_t deadline;
	long calls;
	int done;
	struct rpc *client;
	char target[64];
} rc_state;

static void next_call(void);

static void on_call(void *arg, int status, const cJSON *reply)
{
	if (status != 0) {
		fprintf(stderr, "rpc_call failed: %d\n", status);
		rc_state.done = 1;
		return;
	}
	rc_state.calls++;
	next_call();
}

static void next_call(void)
{
	if (uv_hrtime() >= rc_state.deadline) {
		rc_state.done = 1;
		return;
	}
	if (rpc_call(rc_state.client, rc_state.target, rpc_msg("ping"), 5000, on_call, NULL) != 0)
		rc_state.done = 1;
}

static struct {
	uint64_t deadline;
	long trips;
	int done;
	int connected;
	uv_stream_t *s;
	struct frame_decoder dec;
} pp;

static void send_ping(void)
{
	cJSON *m = rpc_msg("ping");
	if (frame_send(pp.s, m, NULL, NULL) != 0)
		pp.done = 1;
	cJSON_Delete(m);
}

static int on_pong(void *arg, const cJSON *msg)
{
	pp.trips++;
	if (uv_hrtime() >= pp.deadline) {
		pp.done = 1;
		return 1;
	}
	send_ping();
	return 0;
}

static void pp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void pp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n < 0) {
		pp.done = 1;
		return;
	}
	if (n > 0 && frame_decoder_feed(&pp.dec, buf->base, (size_t)n, on_pong, NULL) < 0)
		pp.done = 1;
}

static void on_pp_connected(void *arg, int status, uint64_t peer_id, uv_stream_t *stream)
{
	pp.connected = 1;
	if (status != 0) {
		pp.done = 1;
		return;
	}
	pp.s = stream;
	uv_read_start(stream, pp_alloc, pp_read);
}

static void free_handle(uv_handle_t *h)
{
	raft_free(h);
}

static void on_transport_closed(struct raft_uv_transport *t)
{
	(*(int *)t->data)++;
}

static void bench_rpc(double seconds, double *calls_per_s, double *trips_per_s)
{
	struct raft_uv_transport ts, tc;
	char sa[64], ca[64];
	snprintf(sa, sizeof(sa), "127.0.0.1:%d", free_port());
	snprintf(ca, sizeof(ca), "127.0.0.1:%d", free_port());
	if (transport_init(&ts, &loop, key, NULL) != 0 || transport_start(&ts, 1, sa) != 0 ||
	    transport_init(&tc, &loop, key, NULL) != 0 || transport_start(&tc, 2, ca) != 0) {
		fprintf(stderr, "cannot start transports\n");
		exit(1);
	}
	struct rpc *server = rpc_new(&loop, &ts, on_request, NULL);
	rc_state.client = rpc_new(&loop, &tc, on_request, NULL);
	snprintf(rc_state.target, sizeof(rc_state.target), "%s", sa);

	uint64_t t0 = uv_hrtime();
	rc_state.deadline = t0 + (uint64_t)(seconds * 1e9);
	next_call();
	run_until(&rc_state.done, (unsigned)(seconds * 1000) + 10000);
	*calls_per_s = rc_state.calls / ((uv_hrtime() - t0) / 1e9);

	frame_decoder_init(&pp.dec, 0);
	if (transport_connect_rpc(&tc, 1, sa, on_pp_connected, NULL) != 0 ||
	    !run_until(&pp.connected, 5000) || pp.s == NULL) {
		fprintf(stderr, "cannot open the RPC link\n");
		exit(1);
	}
	t0 = uv_hrtime();
	pp.deadline = t0 + (uint64_t)(seconds * 1e9);
	send_ping();
	run_until(&pp.done, (unsigned)(seconds * 1000) + 10000);
	*trips_per_s = pp.trips / ((uv_hrtime() - t0) / 1e9);

	uv_close((uv_handle_t *)pp.s, free_handle);
	frame_decoder_free(&pp.dec);
	rpc_close(server);
	rpc_close(rc_state.client);
	int closed = 0;
	ts.data = tc.data = &closed;
	transport_close(&ts, on_transport_closed);
	transport_close(&tc, on_transport_closed);
	while (closed < 2)
		uv_run(&loop, UV_RUN_ONCE);
	transport_free(&ts);
	transport_free(&tc);
}

/* ---- Raft ---- */

struct node {
	struct raft_uv_transport t;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft r;
	char dir[256];
	char addr[64];
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	*result = NULL;
	return 0;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
	*(int *)req->data = status == 0 ? 1 : -1;
}

static void on_raft_closed(struct raft *r)
{
	(*(int *)r->data)++;
}

static void remove_dir(const char *dir)
{
	uv_fs_t req;
	uv_dirent_t ent;
	char path[512];
	if (uv_fs_scandir(NULL, &req, dir, 0, NULL) >= 0)
		while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
			snprintf(path, sizeof(path), "%s/%s", dir, ent.name);
			unlink(path);
		}
	uv_fs_req_cleanup(&req);
	rmdir(dir);
}

static void bench_raft(const char *base, int entries, double *median_ms, double *p99_ms)
{
	static struct node nodes[3];
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	for (int i = 0; i < 3; i++) {
		snprintf(nodes[i].addr, sizeof(nodes[i].addr), "127.0.0.1:%d", free_port());
		raft_configuration_add(&conf, (raft_id)(i + 1), nodes[i].addr, RAFT_VOTER);
	}
	for (int i = 0; i < 3; i++) {
		struct node *n = &nodes[i];
		snprintf(n->dir, sizeof(n->dir), "%s/efm_net_bench_XXXXXX", base);
		if (mkdtemp(n->dir) == NULL || transport_init(&n->t, &loop, key, NULL) != 0 ||
		    raft_uv_init(&n->io, &loop, n->dir, &n->t) != 0) {
			fprintf(stderr, "cannot set up raft node %d in %s\n", i + 1, base);
			exit(1);
		}
		n->fsm.version = 1;
		n->fsm.apply = fsm_apply;
		if (raft_init(&n->r, &n->io, &n->fsm, (raft_id)(i + 1), n->addr) != 0 ||
		    raft_bootstrap(&n->r, &conf) != 0 || raft_start(&n->r) != 0) {
			fprintf(stderr, "cannot start raft node %d\n", i + 1);
			exit(1);
		}
		raft_set_election_timeout(&n->r, 300);
		raft_set_heartbeat_timeout(&n->r, 50);
	}
	raft_configuration_close(&conf);

	struct node *leader = NULL;
	uint64_t end = uv_hrtime() + 15000000000ull;
	while (leader == NULL && uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_ONCE);
		for (int i = 0; i < 3; i++)
			if (raft_state(&nodes[i].r) == RAFT_LEADER)
				leader = &nodes[i];
	}
	if (leader == NULL) {
		fprintf(stderr, "no leader elected\n");
		exit(1);
	}
	uint64_t *lat = calloc((size_t)entries, sizeof(*lat));
	for (int k = 0; k < entries; k++) {
		struct raft_apply req;
		int done = 0;
		req.data = &done;
		struct raft_buffer buf = {.base = raft_malloc(64), .len = 64};
		memset(buf.base, 'e', 64);
		uint64_t t0 = uv_hrtime();
		if (raft_apply(&leader->r, &req, &buf, 1, on_applied) != 0 ||
		    !run_until(&done, 5000) || done < 0) {
			fprintf(stderr, "entry %d not committed\n", k);
			exit(1);
		}
		lat[k] = uv_hrtime() - t0;
	}
	qsort(lat, (size_t)entries, sizeof(*lat), cmp_u64);
	*median_ms = lat[entries / 2] / 1e6;
	*p99_ms = lat[(entries * 99) / 100] / 1e6;
	free(lat);

	int closed = 0;
	for (int i = 0; i < 3; i++) {
		nodes[i].r.data = &closed;
		raft_close(&nodes[i].r, on_raft_closed);
	}
	while (closed < 3)
		uv_run(&loop, UV_RUN_ONCE);
	for (int i = 0; i < 3; i++) {
		raft_uv_close(&nodes[i].io);
		transport_free(&nodes[i].t);
	}
	uv_run(&loop, UV_RUN_NOWAIT);
	for (int i = 0; i < 3; i++)
		remove_dir(nodes[i].dir);
}

int main(int argc, char **argv)
{
	double seconds = 3;
	int entries = 1000;
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--entries") == 0)
			entries = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
	}
	if (seconds <= 0 || entries < 1) {
		fprintf(stderr, "usage: net_bench [--seconds S] [--entries N] [--dir DIR]\n");
		return 2;
	}
	log_set_level(EFM_SEVERE);
	srand((unsigned)(getpid() ^ uv_hrtime()));
	uv_loop_init(&loop);
	uv_timer_init(&loop, &ticker);
	uv_timer_start(&ticker, on_tick, 5, 5);

	double calls, trips, med, p99;
	bench_rpc(seconds, &calls, &trips);
	bench_raft(dir, entries, &med, &p99);
	printf("{\"rpc_calls_per_s\": %.0f, \"rpc_roundtrips_per_s\": %.0f, "
	       "\"raft_commit_ms_median\": %.3f, \"raft_commit_ms_p99\": %.3f}\n",
	       calls, trips, med, p99);

	uv_close((uv_handle_t *)&ticker, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return 0;
}
