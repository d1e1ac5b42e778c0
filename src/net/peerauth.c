/*
 * peerauth.c - the peer handshake state machine and the cluster key.
 *
 * See peerauth.h for the wire format.  Each received message is gathered in
 * pa->in until complete, then one handler per state checks it and moves the
 * state on; every refusal goes through fail() so that the reason is kept.
 */
#include "peerauth.h"

#include "crypt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "log.h"

static const uint8_t magic[4] = {'E', 'F', 'M', 'A'};
/* Domain separation: these MACs can never be mistaken for another use of the key. */
static const char mac_label[] = "efm peer auth v1";

#define KEY_FILE_MAX 4096
#define KEY_FILE_MIN 16

/* put_be64 writes v big-endian at p. */
static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* get_be64 reads a big-endian 64-bit value at p. */
static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* fail records why the handshake is refused and makes it final. */
static enum peerauth_status fail(struct peerauth *pa, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum peerauth_status fail(struct peerauth *pa, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pa->err, sizeof(pa->err), fmt, ap);
	va_end(ap);
	pa->state = PA_FAILED;
	pa->out_len = 0;
	pa->in_len = 0;
	pa->in_need = 0;
	return PEERAUTH_FAILED;
}

/* addr_ok accepts a non-empty printable address without spaces. */
static bool addr_ok(const char *addr, size_t len)
{
	if (len == 0 || len > PEERAUTH_ADDR_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c <= ' ' || c >= 0x7f)
			return false;
	}
	return true;
}

/* expect moves to state st, waiting for a message (part) of need bytes. */
static enum peerauth_status expect(struct peerauth *pa, enum peerauth_state st, size_t need)
{
	if (pa->state == PA_FAILED)
		return PEERAUTH_FAILED; /* emit() overflowed */
	pa->state = st;
	pa->in_len = 0;
	pa->in_need = need;
	return PEERAUTH_CONTINUE;
}

/* emit appends bytes to the output queue (sized for two largest messages). */
static void emit(struct peerauth *pa, const void *data, size_t len)
{
	if (len > sizeof(pa->out) - pa->out_len) {
		/* Cannot happen: the caller drains output between messages. */
		fail(pa, "internal error: handshake output overflow");
		return;
	}
	memcpy(pa->out + pa->out_len, data, len);
	pa->out_len += len;
}

/* emit_greeting queues HELLO or CHALLENGE (they share their layout up to the nonce). */
static void emit_greeting(struct peerauth *pa, const uint8_t *mac)
{
	uint8_t msg[PEERAUTH_MSG_MAX];
	size_t alen = strlen(pa->my_addr);
	size_t n = 0;

	memcpy(msg, magic, sizeof(magic));
	n += sizeof(magic);
	msg[n++] = PEERAUTH_VERSION;
	msg[n++] = pa->channel;
	put_be64(msg + n, pa->my_id);
	n += 8;
	msg[n++] = (uint8_t)(alen >> 8);
	msg[n++] = (uint8_t)alen;
	memcpy(msg + n, pa->my_addr, alen);
	n += alen;
	memcpy(msg + n, pa->my_nonce, PEERAUTH_NONCE_LEN);
	n += PEERAUTH_NONCE_LEN;
	if (mac != NULL) {
		memcpy(msg + n, mac, PEERAUTH_MAC_LEN);
		n += PEERAUTH_MAC_LEN;
	}
	emit(pa, msg, n);
}

void peerauth_proof(const uint8_t key[PEERAUTH_KEY_LEN], enum peerauth_role sender, uint8_t channel,
                    const uint8_t client_nonce[PEERAUTH_NONCE_LEN],
                    const uint8_t server_nonce[PEERAUTH_NONCE_LEN], uint64_t sender_id,
                    const char *sender_addr, uint8_t mac[PEERAUTH_MAC_LEN])
{
	uint8_t buf[sizeof(mac_label) + 2 + 2 * PEERAUTH_NONCE_LEN + 8 + 2 + PEERAUTH_ADDR_MAX];
	size_t alen = strnlen(sender_addr, PEERAUTH_ADDR_MAX);
	size_t n = 0;
	unsigned int maclen = PEERAUTH_MAC_LEN;

	memcpy(buf, mac_label, sizeof(mac_label) - 1);
	n += sizeof(mac_label) - 1;
	buf[n++] = sender == PEERAUTH_CLIENT ? 'C' : 'S';
	buf[n++] = channel;
	memcpy(buf + n, client_nonce, PEERAUTH_NONCE_LEN);
	n += PEERAUTH_NONCE_LEN;
	memcpy(buf + n, server_nonce, PEERAUTH_NONCE_LEN);
	n += PEERAUTH_NONCE_LEN;
	put_be64(buf + n, sender_id);
	n += 8;
	buf[n++] = (uint8_t)(alen >> 8);
	buf[n++] = (uint8_t)alen;
	memcpy(buf + n, sender_addr, alen);
	n += alen;
	if (HMAC(EVP_sha256(), key, PEERAUTH_KEY_LEN, buf, n, mac, &maclen) == NULL)
		memset(mac, 0, PEERAUTH_MAC_LEN); /* never matches a real proof by chance */
}

/* common_init fills the fields both roles share. */
static bool common_init(struct peerauth *pa, enum peerauth_role role,
                        const uint8_t key[PEERAUTH_KEY_LEN], uint64_t my_id, const char *my_addr,
                        const uint8_t *nonce)
{
	memset(pa, 0, sizeof(*pa));
	pa->role = role;
	pa->state = PA_FAILED;
	memcpy(pa->key, key, PEERAUTH_KEY_LEN);
	pa->my_id = my_id;
	size_t alen = my_addr != NULL ? strnlen(my_addr, PEERAUTH_ADDR_MAX + 1) : 0;
	if (!addr_ok(my_addr, alen)) {
		snprintf(pa->err, sizeof(pa->err), "own address is empty, too long or malformed");
		return false;
	}
	memcpy(pa->my_addr, my_addr, alen);
	if (nonce != NULL) {
		memcpy(pa->my_nonce, nonce, PEERAUTH_NONCE_LEN);
	} else if (RAND_bytes(pa->my_nonce, PEERAUTH_NONCE_LEN) != 1) {
		snprintf(pa->err, sizeof(pa->err), "random number generator failed");
		return false;
	}
	pa->state = role == PEERAUTH_CLIENT ? PA_C_READ_CHALLENGE_HDR : PA_S_READ_HELLO_HDR;
	return true;
}

bool peerauth_client_init(struct peerauth *pa, const uint8_t key[PEERAUTH_KEY_LEN], uint64_t my_id,
                          const char *my_addr, enum peerauth_channel channel, uint64_t expect_id,
                          const uint8_t *nonce)
{
	if (!common_init(pa, PEERAUTH_CLIENT, key, my_id, my_addr, nonce))
		return false;
	if (channel != PEERAUTH_CHANNEL_RAFT && channel != PEERAUTH_CHANNEL_RPC) {
		snprintf(pa->err, sizeof(pa->err), "unknown channel %d", (int)channel);
		pa->state = PA_FAILED;
		return false;
	}
	pa->channel = (uint8_t)channel;
	pa->expect_id = expect_id;
	emit_greeting(pa, NULL);
	expect(pa, PA_C_READ_CHALLENGE_HDR, PEERAUTH_HEADER_LEN);
	return true;
}

bool peerauth_server_init(struct peerauth *pa, const uint8_t key[PEERAUTH_KEY_LEN], uint64_t my_id,
                          const char *my_addr, const uint8_t *nonce)
{
	if (!common_init(pa, PEERAUTH_SERVER, key, my_id, my_addr, nonce))
		return false;
	expect(pa, PA_S_READ_HELLO_HDR, PEERAUTH_HEADER_LEN);
	return true;
}

/*
 * parse_header checks the fixed part of HELLO/CHALLENGE and returns the
 * announced address length, or fails.
 */
static enum peerauth_status parse_header(struct peerauth *pa, const char *what, size_t *alen)
{
	const uint8_t *p = pa->in;
	if (memcmp(p, magic, sizeof(magic)) != 0)
		return fail(pa, "%s: bad magic (not an efm peer)", what);
	if (p[4] != PEERAUTH_VERSION)
		return fail(pa, "%s: protocol version %u, expected %u", what, p[4],
		            PEERAUTH_VERSION);
	if (p[5] != PEERAUTH_CHANNEL_RAFT && p[5] != PEERAUTH_CHANNEL_RPC)
		return fail(pa, "%s: unknown channel %u", what, p[5]);
	if (pa->role == PEERAUTH_CLIENT && p[5] != pa->channel)
		return fail(pa, "%s: channel %u does not match ours", what, p[5]);
	pa->channel = p[5];
	pa->peer_id = get_be64(p + 6);
	*alen = ((size_t)p[14] << 8) | p[15];
	if (*alen == 0 || *alen > PEERAUTH_ADDR_MAX)
		return fail(pa, "%s: address length %zu out of range", what, *alen);
	return PEERAUTH_CONTINUE;
}

/* take_addr copies and checks the peer's address from the message body. */
static enum peerauth_status take_addr(struct peerauth *pa, const char *what)
{
	size_t alen = pa->in_need - PEERAUTH_HEADER_LEN - PEERAUTH_NONCE_LEN;
	if (pa->role == PEERAUTH_CLIENT)
		alen -= PEERAUTH_MAC_LEN;
	const char *a = (const char *)pa->in + PEERAUTH_HEADER_LEN;
	if (!addr_ok(a, alen))
		return fail(pa, "%s: malformed address", what);
	memcpy(pa->peer_addr, a, alen);
	pa->peer_addr[alen] = '\0';
	memcpy(pa->peer_nonce, pa->in + PEERAUTH_HEADER_LEN + alen, PEERAUTH_NONCE_LEN);
	return PEERAUTH_CONTINUE;
}

/* on_hello (server): answer with our nonce and our proof, then wait for the client's. */
static enum peerauth_status on_hello(struct peerauth *pa)
{
	if (take_addr(pa, "hello") == PEERAUTH_FAILED)
		return PEERAUTH_FAILED;
	if (CRYPTO_memcmp(pa->peer_nonce, pa->my_nonce, PEERAUTH_NONCE_LEN) == 0)
		return fail(pa, "hello: client reflected our nonce");
	uint8_t mac[PEERAUTH_MAC_LEN];
	peerauth_proof(pa->key, PEERAUTH_SERVER, pa->channel, pa->peer_nonce, pa->my_nonce,
	               pa->my_id, pa->my_addr, mac);
	emit_greeting(pa, mac);
	return expect(pa, PA_S_READ_PROOF, PEERAUTH_MAC_LEN);
}

/* on_challenge (client): check the server's proof, send ours, wait for ACCEPT. */
static enum peerauth_status on_challenge(struct peerauth *pa)
{
	if (take_addr(pa, "challenge") == PEERAUTH_FAILED)
		return PEERAUTH_FAILED;
	uint8_t mac[PEERAUTH_MAC_LEN];
	peerauth_proof(pa->key, PEERAUTH_SERVER, pa->channel, pa->my_nonce, pa->peer_nonce,
	               pa->peer_id, pa->peer_addr, mac);
	if (CRYPTO_memcmp(mac, pa->in + pa->in_need - PEERAUTH_MAC_LEN, PEERAUTH_MAC_LEN) != 0)
		return fail(pa, "server failed to prove the cluster key (different key?)");
	if (pa->expect_id != 0 && pa->peer_id != pa->expect_id)
		return fail(pa, "server is id %llu, expected id %llu",
		            (unsigned long long)pa->peer_id, (unsigned long long)pa->expect_id);
	peerauth_proof(pa->key, PEERAUTH_CLIENT, pa->channel, pa->my_nonce, pa->peer_nonce,
	               pa->my_id, pa->my_addr, mac);
	emit(pa, mac, sizeof(mac));
	return expect(pa, PA_C_READ_ACCEPT, 1);
}

/* on_proof (server): the client's MAC decides; ACCEPT is the last byte we send. */
static enum peerauth_status on_proof(struct peerauth *pa)
{
	uint8_t mac[PEERAUTH_MAC_LEN];
	peerauth_proof(pa->key, PEERAUTH_CLIENT, pa->channel, pa->peer_nonce, pa->my_nonce,
	               pa->peer_id, pa->peer_addr, mac);
	if (CRYPTO_memcmp(mac, pa->in, PEERAUTH_MAC_LEN) != 0)
		return fail(pa, "client failed to prove the cluster key (different key?)");
	uint8_t ok = PEERAUTH_ACCEPT_BYTE;
	emit(pa, &ok, 1);
	if (pa->state == PA_FAILED)
		return PEERAUTH_FAILED;
	pa->state = PA_DONE;
	pa->in_len = pa->in_need = 0;
	return PEERAUTH_DONE;
}

/* on_message dispatches a complete message (or header) by state. */
static enum peerauth_status on_message(struct peerauth *pa)
{
	size_t alen;
	switch (pa->state) {
	case PA_S_READ_HELLO_HDR:
		if (parse_header(pa, "hello", &alen) == PEERAUTH_FAILED)
			return PEERAUTH_FAILED;
		pa->in_need = PEERAUTH_HEADER_LEN + alen + PEERAUTH_NONCE_LEN;
		pa->state = PA_S_READ_HELLO_BODY;
		return PEERAUTH_CONTINUE;
	case PA_C_READ_CHALLENGE_HDR:
		if (parse_header(pa, "challenge", &alen) == PEERAUTH_FAILED)
			return PEERAUTH_FAILED;
		pa->in_need = PEERAUTH_HEADER_LEN + alen + PEERAUTH_NONCE_LEN + PEERAUTH_MAC_LEN;
		pa->state = PA_C_READ_CHALLENGE_BODY;
		return PEERAUTH_CONTINUE;
	case PA_S_READ_HELLO_BODY:
		return on_hello(pa);
	case PA_C_READ_CHALLENGE_BODY:
		return on_challenge(pa);
	case PA_S_READ_PROOF:
		return on_proof(pa);
	case PA_C_READ_ACCEPT:
		if (pa->in[0] != PEERAUTH_ACCEPT_BYTE)
			return fail(pa, "server refused the handshake");
		pa->state = PA_DONE;
		pa->in_len = pa->in_need = 0;
		return PEERAUTH_DONE;
	case PA_DONE:
	case PA_FAILED:
		break;
	}
	return fail(pa, "internal error: message in state %d", (int)pa->state);
}

enum peerauth_status peerauth_feed(struct peerauth *pa, const uint8_t *data, size_t len)
{
	while (len > 0) {
		if (pa->state == PA_FAILED)
			return PEERAUTH_FAILED;
		if (pa->state == PA_DONE)
			return fail(pa, "%zu unexpected bytes after the handshake", len);
		size_t n = pa->in_need - pa->in_len;
		if (n > len)
			n = len;
		memcpy(pa->in + pa->in_len, data, n);
		pa->in_len += n;
		data += n;
		len -= n;
		if (pa->in_len == pa->in_need && on_message(pa) == PEERAUTH_FAILED)
			return PEERAUTH_FAILED;
	}
	return peerauth_status_of(pa);
}

size_t peerauth_want(const struct peerauth *pa)
{
	if (pa->state == PA_DONE || pa->state == PA_FAILED)
		return 0;
	return pa->in_need - pa->in_len;
}

const uint8_t *peerauth_output(const struct peerauth *pa, size_t *len)
{
	*len = pa->out_len;
	return pa->out_len > 0 ? pa->out : NULL;
}

void peerauth_output_done(struct peerauth *pa)
{
	pa->out_len = 0;
}

enum peerauth_status peerauth_status_of(const struct peerauth *pa)
{
	if (pa->state == PA_DONE)
		return PEERAUTH_DONE;
	if (pa->state == PA_FAILED)
		return PEERAUTH_FAILED;
	return PEERAUTH_CONTINUE;
}

const char *peerauth_channel_name(uint8_t channel)
{
	switch (channel) {
	case PEERAUTH_CHANNEL_RAFT:
		return "raft";
	case PEERAUTH_CHANNEL_RPC:
		return "rpc";
	default:
		return "unknown";
	}
}

/* hkdf fills key with HKDF-SHA256(ikm, salt, info). */
static bool hkdf(const void *ikm, size_t ikmlen, const char *salt, const void *info, size_t infolen,
                 uint8_t key[PEERAUTH_KEY_LEN])
{
	return crypt_hkdf_sha256(ikm, ikmlen, salt, info, infolen, key, PEERAUTH_KEY_LEN);
}

/* session_key derives the key of one direction (peerauth_session_keys). */
static bool session_key(const struct peerauth *pa, enum peerauth_role sender,
                        uint8_t key[PEERAUTH_KEY_LEN])
{
	const uint8_t *cn = pa->role == PEERAUTH_CLIENT ? pa->my_nonce : pa->peer_nonce;
	const uint8_t *sn = pa->role == PEERAUTH_CLIENT ? pa->peer_nonce : pa->my_nonce;
	uint64_t cid = pa->role == PEERAUTH_CLIENT ? pa->my_id : pa->peer_id;
	uint64_t sid = pa->role == PEERAUTH_CLIENT ? pa->peer_id : pa->my_id;
	uint8_t info[2 + 2 * PEERAUTH_NONCE_LEN + 16];
	info[0] = sender == PEERAUTH_CLIENT ? 'c' : 's';
	info[1] = pa->channel;
	memcpy(info + 2, cn, PEERAUTH_NONCE_LEN);
	memcpy(info + 2 + PEERAUTH_NONCE_LEN, sn, PEERAUTH_NONCE_LEN);
	put_be64(info + 2 + 2 * PEERAUTH_NONCE_LEN, cid);
	put_be64(info + 10 + 2 * PEERAUTH_NONCE_LEN, sid);
	return hkdf(pa->key, PEERAUTH_KEY_LEN, "efm-session-v1", info, sizeof(info), key);
}

bool peerauth_session_keys(const struct peerauth *pa, uint8_t tx[PEERAUTH_KEY_LEN],
                           uint8_t rx[PEERAUTH_KEY_LEN])
{
	enum peerauth_role peer = pa->role == PEERAUTH_CLIENT ? PEERAUTH_SERVER : PEERAUTH_CLIENT;
	if (pa->state != PA_DONE || !session_key(pa, pa->role, tx) || !session_key(pa, peer, rx)) {
		OPENSSL_cleanse(tx, PEERAUTH_KEY_LEN);
		OPENSSL_cleanse(rx, PEERAUTH_KEY_LEN);
		return false;
	}
	return true;
}

bool peerauth_derive_key(const char *cluster, const char *password, uint8_t key[PEERAUTH_KEY_LEN])
{
	return hkdf(password, strlen(password), "efm-peer-key-v1", cluster, strlen(cluster), key);
}

/* key_from_contents turns the trimmed file contents into the key. */
static int key_from_contents(const char *path, const uint8_t *s, size_t n,
                             uint8_t key[PEERAUTH_KEY_LEN], char *err, size_t errlen)
{
	if (n == 2 * PEERAUTH_KEY_LEN) {
		bool hex = true;
		for (size_t i = 0; i < PEERAUTH_KEY_LEN && hex; i++) {
			int hi = crypt_hex_digit(s[2 * i]), lo = crypt_hex_digit(s[2 * i + 1]);
			hex = hi >= 0 && lo >= 0;
			key[i] = (uint8_t)(hi << 4 | lo);
		}
		if (hex)
			return 0;
	}
	if (n < KEY_FILE_MIN) {
		snprintf(err, errlen, "%s: key too short (%zu bytes, want at least %d)", path, n,
		         KEY_FILE_MIN);
		return -EINVAL;
	}
	if (!hkdf(s, n, "efm-peer-key-file-v1", "", 0, key)) {
		snprintf(err, errlen, "%s: key derivation failed", path);
		return -EIO;
	}
	return 0;
}

int peerauth_load_key_file(const char *path, uint8_t key[PEERAUTH_KEY_LEN], char *err,
                           size_t errlen)
{
	uint8_t buf[KEY_FILE_MAX + 1];
	struct stat st;
	int rc;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	size_t n = 0;
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > KEY_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, KEY_FILE_MAX);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warning("%s: peer key file is accessible by group or others (mode %03o)", path,
		            (unsigned)(st.st_mode & 0777));
	size_t start = 0;
	while (start < n && isspace(buf[start]))
		start++;
	while (n > start && isspace(buf[n - 1]))
		n--;
	rc = key_from_contents(path, buf + start, n - start, key, err, errlen);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}
