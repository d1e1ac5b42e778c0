/*
 * test_peerauth.c - the peer handshake without sockets: good runs, forgeries,
 * replays and malformed input, plus the cluster key helpers.
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

#include <cmocka.h>

#include "peerauth.h"

static const uint8_t key_a[PEERAUTH_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint8_t key_b[PEERAUTH_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12};

/* A captured direction of a handshake. */
struct transcript {
	uint8_t bytes[4 * PEERAUTH_MSG_MAX];
	size_t len;
};

/*
 * pump moves pending output from one side to the other in chunks of `chunk`
 * bytes (0: all at once), recording it; returns the receiver's status.
 */
static enum peerauth_status pump(struct peerauth *from, struct peerauth *to, size_t chunk,
                                 struct transcript *rec)
{
	size_t len;
	const uint8_t *out = peerauth_output(from, &len);
	enum peerauth_status st = peerauth_status_of(to);
	if (out == NULL)
		return st;
	if (rec != NULL) {
		assert_true(rec->len + len <= sizeof(rec->bytes));
		memcpy(rec->bytes + rec->len, out, len);
		rec->len += len;
	}
	uint8_t copy[2 * PEERAUTH_MSG_MAX];
	memcpy(copy, out, len);
	peerauth_output_done(from);
	for (size_t off = 0; off < len;) {
		size_t n = chunk == 0 ? len - off : chunk;
		if (n > len - off)
			n = len - off;
		st = peerauth_feed(to, copy + off, n);
		off += n;
		if (st == PEERAUTH_FAILED)
			break;
	}
	return st;
}

/* run drives a client and a server to the end; returns true when both are DONE. */
static bool run(struct peerauth *c, struct peerauth *s, size_t chunk, struct transcript *c2s)
{
	for (int round = 0; round < 8; round++) {
		if (pump(c, s, chunk, c2s) == PEERAUTH_FAILED)
			return false;
		if (pump(s, c, chunk, NULL) == PEERAUTH_FAILED)
			return false;
		if (peerauth_status_of(c) == PEERAUTH_DONE &&
		    peerauth_status_of(s) == PEERAUTH_DONE)
			return true;
	}
	return false;
}

/* Both sides authenticate each other, whatever the read split; identities cross over. */
static void test_good_handshake(void **state)
{
	static const size_t chunks[] = {0, 1, 3, 16, 17};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct peerauth c, s;
		assert_true(peerauth_client_init(&c, key_a, 7, "10.0.0.7:7800",
		                                 PEERAUTH_CHANNEL_RAFT, 9, NULL));
		assert_true(peerauth_server_init(&s, key_a, 9, "10.0.0.9:7800", NULL));
		assert_int_equal(peerauth_want(&s), PEERAUTH_HEADER_LEN);
		assert_true(run(&c, &s, chunks[i], NULL));
		assert_int_equal(s.peer_id, 7);
		assert_string_equal(s.peer_addr, "10.0.0.7:7800");
		assert_int_equal(s.channel, PEERAUTH_CHANNEL_RAFT);
		assert_int_equal(c.peer_id, 9);
		assert_string_equal(c.peer_addr, "10.0.0.9:7800");
		assert_int_equal(peerauth_want(&c), 0);
		assert_int_equal(peerauth_want(&s), 0);
	}
	/* The RPC channel and a client that accepts any server id. */
	struct peerauth c, s;
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RPC, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 42, "b:2", NULL));
	assert_true(run(&c, &s, 5, NULL));
	assert_int_equal(s.channel, PEERAUTH_CHANNEL_RPC);
	assert_int_equal(c.peer_id, 42);
	assert_string_equal(peerauth_channel_name(s.channel), "rpc");
}

/*
 * Session keys: the client's send key is the server's receive key and the
 * other way round, the two directions differ, and another connection
 * (other nonces) or another channel gets other keys.  Not before DONE.
 */
static void test_session_keys(void **state)
{
	static const uint8_t n1[PEERAUTH_NONCE_LEN] = {1}, n2[PEERAUTH_NONCE_LEN] = {2},
	                     n3[PEERAUTH_NONCE_LEN] = {3};
	uint8_t ctx[PEERAUTH_KEY_LEN], crx[PEERAUTH_KEY_LEN], stx[PEERAUTH_KEY_LEN],
	    srx[PEERAUTH_KEY_LEN], zero[PEERAUTH_KEY_LEN] = {0};
	struct peerauth c, s;

	assert_true(peerauth_client_init(&c, key_a, 7, "a:1", PEERAUTH_CHANNEL_RAFT, 9, n1));
	assert_true(peerauth_server_init(&s, key_a, 9, "b:2", n2));
	assert_false(peerauth_session_keys(&c, ctx, crx)); /* handshake not done */
	assert_memory_equal(ctx, zero, sizeof(zero));
	assert_true(run(&c, &s, 0, NULL));
	assert_true(peerauth_session_keys(&c, ctx, crx));
	assert_true(peerauth_session_keys(&s, stx, srx));
	assert_memory_equal(ctx, srx, PEERAUTH_KEY_LEN);
	assert_memory_equal(stx, crx, PEERAUTH_KEY_LEN);
	assert_memory_not_equal(ctx, crx, PEERAUTH_KEY_LEN);
	assert_memory_not_equal(ctx, key_a, PEERAUTH_KEY_LEN);

	/* The same peers, another server nonce: other keys. */
	uint8_t tx2[PEERAUTH_KEY_LEN], rx2[PEERAUTH_KEY_LEN];
	assert_true(peerauth_client_init(&c, key_a, 7, "a:1", PEERAUTH_CHANNEL_RAFT, 9, n1));
	assert_true(peerauth_server_init(&s, key_a, 9, "b:2", n3));
	assert_true(run(&c, &s, 0, NULL));
	assert_true(peerauth_session_keys(&c, tx2, rx2));
	assert_memory_not_equal(ctx, tx2, PEERAUTH_KEY_LEN);
	assert_memory_not_equal(crx, rx2, PEERAUTH_KEY_LEN);

	/* The same nonces on the other channel: other keys. */
	assert_true(peerauth_client_init(&c, key_a, 7, "a:1", PEERAUTH_CHANNEL_RPC, 9, n1));
	assert_true(peerauth_server_init(&s, key_a, 9, "b:2", n2));
	assert_true(run(&c, &s, 0, NULL));
	assert_true(peerauth_session_keys(&c, tx2, rx2));
	assert_memory_not_equal(ctx, tx2, PEERAUTH_KEY_LEN);
}

/* The client refuses a server with another key; the server never sees a proof. */
static void test_wrong_key_client_refuses(void **state)
{
	struct peerauth c, s;
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_b, 2, "b:2", NULL));
	assert_int_equal(pump(&c, &s, 0, NULL), PEERAUTH_CONTINUE);
	assert_int_equal(pump(&s, &c, 0, NULL), PEERAUTH_FAILED);
	assert_non_null(strstr(c.err, "server failed to prove"));
	size_t len;
	assert_null(peerauth_output(&c, &len)); /* nothing more is sent */
}

/* The server refuses a proof made with another key. */
static void test_wrong_key_server_refuses(void **state)
{
	struct peerauth c, s;
	uint8_t mac[PEERAUTH_MAC_LEN];
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	assert_int_equal(pump(&c, &s, 0, NULL), PEERAUTH_CONTINUE);
	/* An attacker without key_a answers the challenge with key_b. */
	peerauth_proof(key_b, PEERAUTH_CLIENT, PEERAUTH_CHANNEL_RAFT, c.my_nonce, s.my_nonce, 1,
	               "a:1", mac);
	assert_int_equal(peerauth_feed(&s, mac, sizeof(mac)), PEERAUTH_FAILED);
	assert_non_null(strstr(s.err, "client failed to prove"));
	size_t len;
	assert_null(peerauth_output(&s, &len)); /* no ACCEPT */
}

/* One flipped bit in either MAC fails the handshake. */
static void test_tampered_mac(void **state)
{
	struct peerauth c, s;
	size_t len;

	/* Server's MAC (last byte of CHALLENGE). */
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	assert_int_equal(pump(&c, &s, 0, NULL), PEERAUTH_CONTINUE);
	uint8_t msg[2 * PEERAUTH_MSG_MAX];
	const uint8_t *out = peerauth_output(&s, &len);
	memcpy(msg, out, len);
	msg[len - 1] ^= 0x01;
	assert_int_equal(peerauth_feed(&c, msg, len), PEERAUTH_FAILED);

	/* Client's MAC (PROOF). */
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	assert_int_equal(pump(&c, &s, 0, NULL), PEERAUTH_CONTINUE);
	assert_int_equal(pump(&s, &c, 0, NULL), PEERAUTH_CONTINUE);
	out = peerauth_output(&c, &len);
	assert_int_equal(len, PEERAUTH_MAC_LEN);
	memcpy(msg, out, len);
	msg[7] ^= 0x80;
	assert_int_equal(peerauth_feed(&s, msg, len), PEERAUTH_FAILED);

	/* A changed announced id in HELLO makes the (honest) proof not match. */
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	out = peerauth_output(&c, &len);
	memcpy(msg, out, len);
	msg[13] ^= 0x04; /* low byte of the id */
	peerauth_output_done(&c);
	assert_int_equal(peerauth_feed(&s, msg, len), PEERAUTH_CONTINUE);
	assert_int_equal(pump(&s, &c, 0, NULL), PEERAUTH_CONTINUE);
	assert_int_equal(pump(&c, &s, 0, NULL), PEERAUTH_FAILED);
}

/* A recorded client side (HELLO + PROOF) does not pass a new server nonce. */
static void test_replay(void **state)
{
	struct peerauth c, s;
	struct transcript rec = {.len = 0};
	uint8_t n1[PEERAUTH_NONCE_LEN], n2[PEERAUTH_NONCE_LEN];
	memset(n1, 0x11, sizeof(n1));
	memset(n2, 0x22, sizeof(n2));

	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", n1));
	assert_true(run(&c, &s, 0, &rec));

	/* The same bytes replayed as one stream: the original server nonce is reproduced. */
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", n1));
	assert_int_equal(peerauth_feed(&s, rec.bytes, rec.len), PEERAUTH_DONE);

	/* Against a fresh nonce, the recorded proof fails. */
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", n2));
	assert_int_equal(peerauth_feed(&s, rec.bytes, rec.len), PEERAUTH_FAILED);
	assert_non_null(strstr(s.err, "client failed to prove"));

	/* And with real random nonces too. */
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	assert_int_equal(peerauth_feed(&s, rec.bytes, rec.len), PEERAUTH_FAILED);
}

/* Random bytes are refused at the header, fed whole or byte by byte. */
static void test_random_bytes(void **state)
{
	uint8_t junk[1024];
	srand(12345);
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)rand();
		if (junk[0] == 'E')
			junk[0] = 'X';
		struct peerauth s;
		assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
		if (round % 2 == 0) {
			assert_int_equal(peerauth_feed(&s, junk, sizeof(junk)), PEERAUTH_FAILED);
		} else {
			enum peerauth_status st = PEERAUTH_CONTINUE;
			for (size_t i = 0; i < sizeof(junk) && st == PEERAUTH_CONTINUE; i++)
				st = peerauth_feed(&s, junk + i, 1);
			assert_int_equal(st, PEERAUTH_FAILED);
		}
		assert_int_equal(peerauth_want(&s), 0);
		/* A client fed random bytes as a challenge refuses too. */
		struct peerauth c;
		assert_true(
		    peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
		assert_int_equal(peerauth_feed(&c, junk, sizeof(junk)), PEERAUTH_FAILED);
	}
}

/* A truncated message leaves the machine waiting (the caller's deadline ends it). */
static void test_truncated(void **state)
{
	struct peerauth c, s;
	size_t len;
	assert_true(
	    peerauth_client_init(&c, key_a, 1, "10.1.1.1:7800", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	const uint8_t *hello = peerauth_output(&c, &len);
	assert_int_equal(len, PEERAUTH_HEADER_LEN + strlen("10.1.1.1:7800") + PEERAUTH_NONCE_LEN);
	assert_int_equal(peerauth_feed(&s, hello, 10), PEERAUTH_CONTINUE);
	assert_int_equal(peerauth_want(&s), PEERAUTH_HEADER_LEN - 10);
	assert_int_equal(peerauth_feed(&s, hello + 10, len - 11), PEERAUTH_CONTINUE);
	assert_int_equal(peerauth_want(&s), 1);
	assert_null(peerauth_output(&s, &len)); /* nothing answered to half a HELLO */
}

/* write_header builds a HELLO header with the given fields. */
static void write_header(uint8_t *h, const char *magic, uint8_t ver, uint8_t ch, uint16_t alen)
{
	memcpy(h, magic, 4);
	h[4] = ver;
	h[5] = ch;
	memset(h + 6, 0, 8);
	h[13] = 5;
	h[14] = (uint8_t)(alen >> 8);
	h[15] = (uint8_t)alen;
}

/* Address lengths of 0, 256 and 65535, a wrong magic, version or channel are refused at once. */
static void test_bad_headers(void **state)
{
	struct {
		const char *magic;
		uint8_t ver, ch;
		uint16_t alen;
		const char *err;
	} cases[] = {
	    {"EFMA", PEERAUTH_VERSION, 1, 0xffff, "address length"},
	    {"EFMA", PEERAUTH_VERSION, 1, 256, "address length"},
	    {"EFMA", PEERAUTH_VERSION, 1, 0, "address length"},
	    {"EFMB", PEERAUTH_VERSION, 1, 5, "bad magic"},
	    {"GET ", PEERAUTH_VERSION, 1, 5, "bad magic"},
	    {"EFMA", PEERAUTH_VERSION + 1, 1, 5, "version"},
	    {"EFMA", 0, 1, 5, "version"},
	    {"EFMA", PEERAUTH_VERSION, 3, 5, "channel"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct peerauth s;
		uint8_t h[PEERAUTH_HEADER_LEN];
		assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
		write_header(h, cases[i].magic, cases[i].ver, cases[i].ch, cases[i].alen);
		assert_int_equal(peerauth_feed(&s, h, sizeof(h)), PEERAUTH_FAILED);
		assert_non_null(strstr(s.err, cases[i].err));
	}
	/* 255 is the longest address and is read normally. */
	struct peerauth s;
	uint8_t h[PEERAUTH_HEADER_LEN];
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	write_header(h, "EFMA", PEERAUTH_VERSION, 1, 255);
	assert_int_equal(peerauth_feed(&s, h, sizeof(h)), PEERAUTH_CONTINUE);
	assert_int_equal(peerauth_want(&s), 255 + PEERAUTH_NONCE_LEN);
	/* ...but an address with control characters is not. */
	uint8_t body[255 + PEERAUTH_NONCE_LEN];
	memset(body, 'x', sizeof(body));
	body[3] = '\n';
	assert_int_equal(peerauth_feed(&s, body, sizeof(body)), PEERAUTH_FAILED);
	assert_non_null(strstr(s.err, "malformed address"));
}

/* A client bound for server id 9 refuses an authentic server with id 8. */
static void test_unexpected_server_id(void **state)
{
	struct peerauth c, s;
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 9, NULL));
	assert_true(peerauth_server_init(&s, key_a, 8, "b:2", NULL));
	assert_false(run(&c, &s, 0, NULL));
	assert_non_null(strstr(c.err, "expected id 9"));
}

/* Bytes after the end of the handshake, or a reflected nonce, are refused. */
static void test_protocol_abuse(void **state)
{
	struct peerauth c, s;
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, NULL));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", NULL));
	assert_true(run(&c, &s, 0, NULL));
	uint8_t extra = 0;
	assert_int_equal(peerauth_feed(&s, &extra, 1), PEERAUTH_FAILED);

	/* A "client" that echoes the server's own nonce back. */
	uint8_t n[PEERAUTH_NONCE_LEN];
	memset(n, 0x5a, sizeof(n));
	assert_true(peerauth_client_init(&c, key_a, 1, "a:1", PEERAUTH_CHANNEL_RAFT, 0, n));
	assert_true(peerauth_server_init(&s, key_a, 2, "b:2", n));
	assert_int_equal(pump(&c, &s, 0, NULL), PEERAUTH_FAILED);
	assert_non_null(strstr(s.err, "reflected"));
}

/* Our own address must be a non-empty printable string of at most 255 bytes. */
static void test_init_refusals(void **state)
{
	struct peerauth pa;
	char longaddr[300];
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	assert_false(peerauth_server_init(&pa, key_a, 1, "", NULL));
	assert_false(peerauth_server_init(&pa, key_a, 1, longaddr, NULL));
	assert_false(peerauth_server_init(&pa, key_a, 1, "a b:1", NULL));
	assert_false(peerauth_client_init(&pa, key_a, 1, "a:1", (enum peerauth_channel)7, 0, NULL));
	assert_int_equal(peerauth_status_of(&pa), PEERAUTH_FAILED);
	longaddr[255] = '\0';
	assert_true(peerauth_client_init(&pa, key_a, 1, longaddr, PEERAUTH_CHANNEL_RPC, 0, NULL));
}

/* The derived key depends on both the cluster name and the password. */
static void test_derive_key(void **state)
{
	uint8_t k1[32], k2[32], k3[32], k4[32];
	assert_true(peerauth_derive_key("acctg", "secret", k1));
	assert_true(peerauth_derive_key("acctg", "secret", k2));
	assert_memory_equal(k1, k2, 32);
	assert_true(peerauth_derive_key("sales", "secret", k3));
	assert_memory_not_equal(k1, k3, 32);
	assert_true(peerauth_derive_key("acctg", "secret2", k4));
	assert_memory_not_equal(k1, k4, 32);
	assert_true(peerauth_derive_key("acctg", "", k4)); /* no password still gives a key */
	assert_memory_not_equal(k1, k4, 32);
}

/* write_file creates a temporary file with the given contents; returns its path. */
static void write_file(char *path, size_t pathlen, const char *contents)
{
	snprintf(path, pathlen, "/tmp/test_peerauth_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, contents, strlen(contents)), (ssize_t)strlen(contents));
	close(fd);
}

/* Key files: 64 hex digits are the key; other secrets are hashed; short ones refused. */
static void test_key_file(void **state)
{
	char path[64], err[256];
	uint8_t key[32], key2[32];

	write_file(path, sizeof(path),
	           "  000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n");
	assert_int_equal(peerauth_load_key_file(path, key, err, sizeof(err)), 0);
	for (int i = 0; i < 32; i++)
		assert_int_equal(key[i], i);
	unlink(path);

	write_file(path, sizeof(path), "correct horse battery staple\n");
	assert_int_equal(peerauth_load_key_file(path, key, err, sizeof(err)), 0);
	unlink(path);
	write_file(path, sizeof(path), "correct horse battery staple");
	assert_int_equal(peerauth_load_key_file(path, key2, err, sizeof(err)), 0);
	assert_memory_equal(key, key2, 32); /* trailing newline does not matter */
	unlink(path);

	write_file(path, sizeof(path), "short\n");
	assert_int_equal(peerauth_load_key_file(path, key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too short"));
	unlink(path);

	assert_int_equal(peerauth_load_key_file("/nonexistent/efm.key", key, err, sizeof(err)),
	                 -ENOENT);
	assert_int_equal(peerauth_load_key_file("/tmp", key, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_handshake),
	    cmocka_unit_test(test_session_keys),
	    cmocka_unit_test(test_wrong_key_client_refuses),
	    cmocka_unit_test(test_wrong_key_server_refuses),
	    cmocka_unit_test(test_tampered_mac),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_random_bytes),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_bad_headers),
	    cmocka_unit_test(test_unexpected_server_id),
	    cmocka_unit_test(test_protocol_abuse),
	    cmocka_unit_test(test_init_refusals),
	    cmocka_unit_test(test_derive_key),
	    cmocka_unit_test(test_key_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
