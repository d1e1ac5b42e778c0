/*
 * clusterfsm_codec.c - command builders and the byte formats of the cluster
 * state machine: log entries and snapshots, and clusterfsm_apply, which
 * decodes a committed entry for clusterfsm_apply_cmd.  The codec calls the
 * state machine's pure helpers (queries, field checks), never the reverse.
 *
 * Both formats are little-endian, built field by field (never a struct
 * dump, so padding and host byte order cannot leak into the log), and
 * padded with zero bytes to a multiple of 8 as libraft wants.  Decoding
 * trusts nothing: every length, enum and character is checked, and the
 * bytes must be consumed exactly.  Storage integrity itself is libraft's
 * job (its segments carry checksums).
 *
 *   entry:    "EFMC" u8 format=1, u8 type, u16 payload length, payload, pad
 *   snapshot: "EFMS" u8 format=1, 3 zero bytes, u32 payload length, payload, pad
 *   string:   u16 length, bytes (printable ASCII, no NUL)
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "clusterfsm_int.h"

#define ENTRY_MAGIC  "EFMC"
#define SNAP_MAGIC   "EFMS"
#define FORMAT       2 /* 2: the promotion lock carries switchover and from */
#define ENTRY_HEADER 8
#define SNAP_HEADER  12

/* set_addr copies an address into a command; false if it does not fit. */
static bool set_addr(struct clusterfsm_cmd *c, const char *addr)
{
	size_t n = addr ? strlen(addr) : 0;
	if (n >= sizeof(c->address))
		return false;
	if (n > 0)
		memcpy(c->address, addr, n);
	c->address[n] = '\0';
	return true;
}

/* cmd_start zeroes a command and sets its type. */
static void cmd_start(struct clusterfsm_cmd *c, enum clusterfsm_cmd_type t)
{
	memset(c, 0, sizeof(*c));
	c->type = t;
}

/* clusterfsm_cmd_allow_node builds ALLOW_NODE. */
bool clusterfsm_cmd_allow_node(struct clusterfsm_cmd *c, const char *addr, int priority)
{
	cmd_start(c, CLUSTERFSM_ALLOW_NODE);
	c->priority = priority;
	return set_addr(c, addr);
}

/* clusterfsm_cmd_disallow_node builds DISALLOW_NODE. */
bool clusterfsm_cmd_disallow_node(struct clusterfsm_cmd *c, const char *addr)
{
	cmd_start(c, CLUSTERFSM_DISALLOW_NODE);
	return set_addr(c, addr);
}

/* clusterfsm_cmd_set_priority builds SET_PRIORITY. */
bool clusterfsm_cmd_set_priority(struct clusterfsm_cmd *c, const char *addr, int priority)
{
	cmd_start(c, CLUSTERFSM_SET_PRIORITY);
	c->priority = priority;
	return set_addr(c, addr);
}

/* clusterfsm_cmd_member_join builds MEMBER_JOIN. */
bool clusterfsm_cmd_member_join(struct clusterfsm_cmd *c, uint64_t id, const char *addr,
                                enum clusterfsm_role role)
{
	cmd_start(c, CLUSTERFSM_MEMBER_JOIN);
	c->id = id;
	c->role = role;
	return set_addr(c, addr);
}

/* clusterfsm_cmd_member_leave builds MEMBER_LEAVE. */
void clusterfsm_cmd_member_leave(struct clusterfsm_cmd *c, uint64_t id)
{
	cmd_start(c, CLUSTERFSM_MEMBER_LEAVE);
	c->id = id;
}

/* clusterfsm_cmd_member_update builds MEMBER_UPDATE. */
void clusterfsm_cmd_member_update(struct clusterfsm_cmd *c, uint64_t id, enum clusterfsm_role role,
                                  enum clusterfsm_up agent, enum clusterfsm_up db)
{
	cmd_start(c, CLUSTERFSM_MEMBER_UPDATE);
	c->id = id;
	c->role = role;
	c->agent = agent;
	c->db = db;
}

/* clusterfsm_cmd_promotion_lock builds PROMOTION_LOCK. */
bool clusterfsm_cmd_promotion_lock(struct clusterfsm_cmd *c, const char *candidate, uint64_t term,
                                   uint64_t expected_serial)
{
	cmd_start(c, CLUSTERFSM_PROMOTION_LOCK);
	c->term = term;
	c->serial = expected_serial;
	return set_addr(c, candidate);
}

bool clusterfsm_cmd_switchover_lock(struct clusterfsm_cmd *c, const char *candidate, uint64_t term,
                                    uint64_t expected_serial)
{
	bool ok = clusterfsm_cmd_promotion_lock(c, candidate, term, expected_serial);
	c->switchover = true;
	return ok;
}

/* clusterfsm_cmd_promotion_phase builds PROMOTION_PHASE. */
void clusterfsm_cmd_promotion_phase(struct clusterfsm_cmd *c, uint64_t serial,
                                    enum clusterfsm_phase from, enum clusterfsm_phase to)
{
	cmd_start(c, CLUSTERFSM_PROMOTION_PHASE);
	c->serial = serial;
	c->from = from;
	c->to = to;
}

/* clusterfsm_cmd_promotion_release builds PROMOTION_RELEASE. */
void clusterfsm_cmd_promotion_release(struct clusterfsm_cmd *c, uint64_t serial, bool done)
{
	cmd_start(c, CLUSTERFSM_PROMOTION_RELEASE);
	c->serial = serial;
	c->to = done ? CLUSTERFSM_PHASE_DONE : CLUSTERFSM_PHASE_ABORTED;
}

/* clusterfsm_cmd_set_master builds SET_MASTER. */
bool clusterfsm_cmd_set_master(struct clusterfsm_cmd *c, const char *addr)
{
	cmd_start(c, CLUSTERFSM_SET_MASTER);
	return set_addr(c, addr);
}

/* A bounded writer; overflow is sticky and checked once at the end. */
struct wbuf {
	uint8_t *p;
	size_t len;
	size_t pos;
	bool overflow;
};

/* put_bytes appends n bytes, or marks the writer overflowed. */
static void put_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->overflow || n > w->len - w->pos) {
		w->overflow = true;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->pos, src, n);
	w->pos += n;
}

/* put_uint appends the low n bytes of v, least significant first. */
static void put_uint(struct wbuf *w, uint64_t v, size_t n)
{
	uint8_t b[8];
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(w, b, n);
}

/* str_ok: a string the formats can carry (printable, no space, fits max). */
static bool str_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n >= max)
		return false;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	}
	return true;
}

/* put_str appends a length-prefixed string. */
static void put_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);
	put_uint(w, n, 2);
	put_bytes(w, s, n);
}

/* put_pad zero-pads to a multiple of 8; returns the length or -ENOSPC. */
static ssize_t put_pad(struct wbuf *w)
{
	static const uint8_t zero[8];
	put_bytes(w, zero, (8 - w->pos % 8) % 8);
	return w->overflow ? -ENOSPC : (ssize_t)w->pos;
}

/* A bounded reader; any error is sticky and checked once at the end. */
struct rbuf {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool bad;
};

/* get_uint reads an n-byte little-endian integer (0 once bad). */
static uint64_t get_uint(struct rbuf *r, size_t n)
{
	uint64_t v = 0;
	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)r->p[r->pos + i] << (8 * i);
	r->pos += n;
	return v;
}

/* get_enum reads a u8 that must be at most max. */
static unsigned get_enum(struct rbuf *r, unsigned max)
{
	unsigned v = (unsigned)get_uint(r, 1);
	if (v > max)
		r->bad = true;
	return r->bad ? 0 : v;
}

/* get_str reads a string into out[max]; bad if too long or unprintable. */
static void get_str(struct rbuf *r, char *out, size_t max)
{
	size_t n = (size_t)get_uint(r, 2);
	out[0] = '\0';
	if (r->bad || n >= max || n > r->len - r->pos) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = r->p[r->pos + i];
		if (ch < 0x21 || ch > 0x7e) {
			r->bad = true;
			return;
		}
		out[i] = (char)ch;
	}
	out[n] = '\0';
	r->pos += n;
}

/* padding_ok: the bytes after the payload are zeros up to the next 8. */
static bool padding_ok(const uint8_t *p, size_t used, size_t len)
{
	if (len % 8 != 0 || used > len || len - used >= 8)
		return false;
	for (size_t i = used; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

/* i32_of turns the two's-complement bits back into a signed value. */
static int32_t i32_of(uint64_t u)
{
	uint32_t v = (uint32_t)u;
	return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

/* cmd_fields_ok: enums and strings a command may carry. */
static bool cmd_fields_ok(const struct clusterfsm_cmd *c)
{
	return c->type >= CLUSTERFSM_ALLOW_NODE && c->type <= CLUSTERFSM_SET_MASTER &&
	       clusterfsm_cmd_fields_ok(c) && str_ok(c->address, sizeof(c->address));
}

/* put_payload writes the fields of one command type. */
static void put_payload(struct wbuf *w, const struct clusterfsm_cmd *c)
{
	switch (c->type) {
	case CLUSTERFSM_ALLOW_NODE:
	case CLUSTERFSM_SET_PRIORITY:
		put_str(w, c->address);
		put_uint(w, (uint32_t)c->priority, 4);
		break;
	case CLUSTERFSM_DISALLOW_NODE:
	case CLUSTERFSM_SET_MASTER:
		put_str(w, c->address);
		break;
	case CLUSTERFSM_MEMBER_JOIN:
		put_uint(w, c->id, 8);
		put_str(w, c->address);
		put_uint(w, c->role, 1);
		break;
	case CLUSTERFSM_MEMBER_LEAVE:
		put_uint(w, c->id, 8);
		break;
	case CLUSTERFSM_MEMBER_UPDATE:
		put_uint(w, c->id, 8);
		put_uint(w, c->role, 1);
		put_uint(w, c->agent, 1);
		put_uint(w, c->db, 1);
		break;
	case CLUSTERFSM_PROMOTION_LOCK:
		put_str(w, c->address);
		put_uint(w, c->term, 8);
		put_uint(w, c->serial, 8);
		put_uint(w, c->switchover, 1);
		break;
	case CLUSTERFSM_PROMOTION_PHASE:
		put_uint(w, c->serial, 8);
		put_uint(w, c->from, 1);
		put_uint(w, c->to, 1);
		break;
	case CLUSTERFSM_PROMOTION_RELEASE:
		put_uint(w, c->serial, 8);
		put_uint(w, c->to, 1);
		break;
	}
}

/* get_payload reads the fields of one command type into a zeroed c. */
static void get_payload(struct rbuf *r, struct clusterfsm_cmd *c)
{
	switch (c->type) {
	case CLUSTERFSM_ALLOW_NODE:
	case CLUSTERFSM_SET_PRIORITY:
		get_str(r, c->address, sizeof(c->address));
		c->priority = i32_of(get_uint(r, 4));
		break;
	case CLUSTERFSM_DISALLOW_NODE:
	case CLUSTERFSM_SET_MASTER:
		get_str(r, c->address, sizeof(c->address));
		break;
	case CLUSTERFSM_MEMBER_JOIN:
		c->id = get_uint(r, 8);
		get_str(r, c->address, sizeof(c->address));
		c->role = get_enum(r, CLUSTERFSM_IDLE);
		break;
	case CLUSTERFSM_MEMBER_LEAVE:
		c->id = get_uint(r, 8);
		break;
	case CLUSTERFSM_MEMBER_UPDATE:
		c->id = get_uint(r, 8);
		c->role = get_enum(r, CLUSTERFSM_IDLE);
		c->agent = get_enum(r, CLUSTERFSM_UNKNOWN);
		c->db = get_enum(r, CLUSTERFSM_UNKNOWN);
		break;
	case CLUSTERFSM_PROMOTION_LOCK:
		get_str(r, c->address, sizeof(c->address));
		c->term = get_uint(r, 8);
		c->serial = get_uint(r, 8);
		c->switchover = get_enum(r, 1) != 0;
		break;
	case CLUSTERFSM_PROMOTION_PHASE:
		c->serial = get_uint(r, 8);
		c->from = get_enum(r, CLUSTERFSM_PHASE_ABORTED);
		c->to = get_enum(r, CLUSTERFSM_PHASE_ABORTED);
		break;
	case CLUSTERFSM_PROMOTION_RELEASE:
		c->serial = get_uint(r, 8);
		c->to = get_enum(r, CLUSTERFSM_PHASE_ABORTED);
		break;
	default:
		r->bad = true;
	}
}

/* clusterfsm_cmd_encode writes one log entry. */
ssize_t clusterfsm_cmd_encode(const struct clusterfsm_cmd *c, void *buf, size_t len)
{
	struct wbuf w = {.p = buf, .len = len};
	size_t body;

	if (!cmd_fields_ok(c))
		return -EINVAL;
	put_bytes(&w, ENTRY_MAGIC, 4);
	put_uint(&w, FORMAT, 1);
	put_uint(&w, (unsigned)c->type, 1);
	put_uint(&w, 0, 2); /* payload length, filled in below */
	put_payload(&w, c);
	if (w.overflow)
		return -ENOSPC;
	body = w.pos - ENTRY_HEADER;
	w.p[6] = (uint8_t)body;
	w.p[7] = (uint8_t)(body >> 8);
	return put_pad(&w);
}

/* clusterfsm_cmd_decode parses one log entry, checking every byte. */
int clusterfsm_cmd_decode(const void *buf, size_t len, struct clusterfsm_cmd *c)
{
	struct rbuf r = {.p = buf, .len = len};
	size_t body;

	memset(c, 0, sizeof(*c));
	if (buf == NULL || len < ENTRY_HEADER || memcmp(buf, ENTRY_MAGIC, 4) != 0)
		return -EINVAL;
	r.pos = 4;
	if (get_uint(&r, 1) != FORMAT)
		return -EINVAL;
	c->type = (enum clusterfsm_cmd_type)get_uint(&r, 1);
	body = (size_t)get_uint(&r, 2);
	if (body > len - ENTRY_HEADER)
		return -EINVAL;
	r.len = ENTRY_HEADER + body; /* the payload may not read into the padding */
	get_payload(&r, c);
	if (r.bad || r.pos != r.len || !padding_ok(buf, r.len, len)) {
		memset(c, 0, sizeof(*c));
		return -EINVAL;
	}
	return 0;
}

/* clusterfsm_snapshot_encode serializes the whole state but s->last. */
ssize_t clusterfsm_snapshot_encode(const struct cluster_state *s, void *buf, size_t len)
{
	struct wbuf w = {.p = buf, .len = len};
	size_t body;

	put_bytes(&w, SNAP_MAGIC, 4);
	put_uint(&w, FORMAT, 1);
	put_uint(&w, 0, 3);
	put_uint(&w, 0, 4); /* payload length, filled in below */
	put_uint(&w, s->version, 8);
	put_uint(&w, s->n_allowed, 2);
	for (size_t i = 0; i < s->n_allowed; i++)
		put_str(&w, s->allowed[i]);
	put_uint(&w, s->n_priority, 2);
	for (size_t i = 0; i < s->n_priority; i++)
		put_str(&w, s->priority[i]);
	put_uint(&w, s->n_members, 2);
	for (size_t i = 0; i < s->n_members; i++) {
		const struct clusterfsm_member *m = &s->members[i];
		put_uint(&w, m->id, 8);
		put_str(&w, m->address);
		put_uint(&w, m->role, 1);
		put_uint(&w, m->agent, 1);
		put_uint(&w, m->db, 1);
	}
	put_str(&w, s->master);
	put_str(&w, s->lock.candidate);
	put_uint(&w, s->lock.term, 8);
	put_uint(&w, s->lock.phase, 1);
	put_uint(&w, s->lock.serial, 8);
	put_uint(&w, s->lock.switchover, 1);
	put_str(&w, s->lock.from);
	if (w.overflow)
		return -ENOSPC;
	body = w.pos - SNAP_HEADER;
	for (size_t i = 0; i < 4; i++)
		w.p[8 + i] = (uint8_t)(body >> (8 * i));
	return put_pad(&w);
}

/* get_hosts reads a host list; each entry must be a canonical host, once. */
static size_t get_hosts(struct rbuf *r, char (*list)[CLUSTERFSM_HOST_MAX])
{
	char host[CLUSTERFSM_HOST_MAX];
	size_t n = (size_t)get_uint(r, 2);

	if (n > CLUSTERFSM_MAX_NODES) {
		r->bad = true;
		return 0;
	}
	for (size_t i = 0; i < n && !r->bad; i++) {
		get_str(r, list[i], CLUSTERFSM_HOST_MAX);
		if (r->bad || !address_split(list[i], host, sizeof(host), NULL) ||
		    strcmp(host, list[i]) != 0) {
			r->bad = true;
			break;
		}
		for (size_t k = 0; k < i; k++) {
			if (strcmp(list[k], list[i]) == 0)
				r->bad = true;
		}
	}
	return r->bad ? 0 : n;
}

/* member_addr_ok: a host:port address. */
static bool member_addr_ok(const char *addr)
{
	char host[CLUSTERFSM_HOST_MAX];
	uint16_t port = 0;
	return address_split(addr, host, sizeof(host), &port) && port != 0;
}

/* get_members reads the member table; ids and hosts must be unique. */
static void get_members(struct rbuf *r, struct cluster_state *s)
{
	size_t n = (size_t)get_uint(r, 2);

	if (n > CLUSTERFSM_MAX_NODES) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < n && !r->bad; i++) {
		struct clusterfsm_member *m = &s->members[i];
		m->id = get_uint(r, 8);
		get_str(r, m->address, sizeof(m->address));
		m->role = get_enum(r, CLUSTERFSM_IDLE);
		m->agent = get_enum(r, CLUSTERFSM_UNKNOWN);
		m->db = get_enum(r, CLUSTERFSM_UNKNOWN);
		if (r->bad || m->id == 0 || !member_addr_ok(m->address) ||
		    clusterfsm_member_by_id(s, m->id) != NULL ||
		    clusterfsm_member_by_host(s, m->address) != NULL) {
			r->bad = true;
			break;
		}
		s->n_members = i + 1; /* visible to the duplicate checks above */
	}
}

/*
 * state_consistent checks what apply always keeps true: priority hosts are
 * allowed and are not non-standby members; the lock is empty exactly while
 * its serial is 0.
 */
static bool state_consistent(const struct cluster_state *s)
{
	for (size_t i = 0; i < s->n_priority; i++) {
		const struct clusterfsm_member *m = clusterfsm_member_by_host(s, s->priority[i]);
		if (!clusterfsm_is_allowed(s, s->priority[i]))
			return false;
		if (m != NULL && m->role != CLUSTERFSM_STANDBY)
			return false;
	}
	if (s->master[0] != '\0' && !member_addr_ok(s->master))
		return false;
	if (s->lock.serial == 0)
		return s->lock.phase == CLUSTERFSM_PHASE_NONE && s->lock.candidate[0] == '\0' &&
		       s->lock.term == 0;
	return s->lock.phase != CLUSTERFSM_PHASE_NONE && member_addr_ok(s->lock.candidate);
}

/* clusterfsm_snapshot_restore replaces *s with a valid snapshot only. */
int clusterfsm_snapshot_restore(struct cluster_state *s, const void *buf, size_t len)
{
	struct cluster_state t;
	struct rbuf r = {.p = buf, .len = len};
	size_t body;

	if (buf == NULL || len < SNAP_HEADER || memcmp(buf, SNAP_MAGIC, 4) != 0)
		return -EINVAL;
	r.pos = 4;
	if (get_uint(&r, 1) != FORMAT || get_uint(&r, 3) != 0)
		return -EINVAL;
	body = (size_t)get_uint(&r, 4);
	if (body > len - SNAP_HEADER)
		return -EINVAL;
	r.len = SNAP_HEADER + body;
	clusterfsm_init(&t);
	t.version = get_uint(&r, 8);
	t.n_allowed = get_hosts(&r, t.allowed);
	t.n_priority = get_hosts(&r, t.priority);
	get_members(&r, &t);
	get_str(&r, t.master, sizeof(t.master));
	get_str(&r, t.lock.candidate, sizeof(t.lock.candidate));
	t.lock.term = get_uint(&r, 8);
	t.lock.phase = get_enum(&r, CLUSTERFSM_PHASE_ABORTED);
	t.lock.serial = get_uint(&r, 8);
	t.lock.switchover = get_enum(&r, 1) != 0;
	get_str(&r, t.lock.from, sizeof(t.lock.from));
	if (r.bad || r.pos != r.len || !padding_ok(buf, r.len, len) || !state_consistent(&t))
		return -EINVAL;
	*s = t;
	return 0;
}

/* clusterfsm_apply decodes a committed entry and applies it. */
enum clusterfsm_code clusterfsm_apply(struct cluster_state *s, const void *buf, size_t len,
                                      struct clusterfsm_result *res)
{
	struct clusterfsm_cmd c;

	if (clusterfsm_cmd_decode(buf, len, &c) != 0) {
		memset(&s->last, 0, sizeof(s->last));
		clusterfsm_verdict(&s->last, CLUSTERFSM_REJECTED, "corrupt entry (%zu bytes)", len);
		if (res != NULL)
			*res = s->last;
		return CLUSTERFSM_REJECTED;
	}
	return clusterfsm_apply_cmd(s, &c, res);
}
