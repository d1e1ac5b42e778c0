/*
 * clusterfsm.c - the replicated cluster state machine: queries, command
 * builders and apply.  Encoding lives in clusterfsm_codec.c.
 *
 * Every handler checks everything first and changes the state only once it
 * has decided OK, so a REJECTED or ALREADY command leaves no trace.  Nothing
 * here may depend on anything but the state and the command: all agents
 * must compute the same result from the same log.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clusterfsm.h"

/* clusterfsm_init makes the empty state. */
void clusterfsm_init(struct cluster_state *s)
{
	memset(s, 0, sizeof(*s));
	s->lock.phase = CLUSTERFSM_PHASE_NONE;
}

/* clusterfsm_role_name gives the guide's name of a role. */
const char *clusterfsm_role_name(enum clusterfsm_role r)
{
	switch (r) {
	case CLUSTERFSM_MASTER:
		return "Master";
	case CLUSTERFSM_STANDBY:
		return "Standby";
	case CLUSTERFSM_WITNESS:
		return "Witness";
	case CLUSTERFSM_IDLE:
		return "Idle";
	}
	return "?";
}

/* clusterfsm_up_name gives the guide's name of an up/down state. */
const char *clusterfsm_up_name(enum clusterfsm_up u)
{
	switch (u) {
	case CLUSTERFSM_UP:
		return "UP";
	case CLUSTERFSM_DOWN:
		return "DOWN";
	case CLUSTERFSM_UNKNOWN:
		return "UNKNOWN";
	}
	return "?";
}

/* clusterfsm_phase_name names a promotion phase. */
const char *clusterfsm_phase_name(enum clusterfsm_phase p)
{
	static const char *const names[] = {"NONE",          "FENCING", "PROMOTING", "VIP",
	                                    "RECONFIGURING", "DONE",    "ABORTED"};
	if ((unsigned)p < sizeof(names) / sizeof(names[0]))
		return names[p];
	return "?";
}

/* clusterfsm_code_name names an apply result. */
const char *clusterfsm_code_name(enum clusterfsm_code c)
{
	switch (c) {
	case CLUSTERFSM_OK:
		return "OK";
	case CLUSTERFSM_ALREADY:
		return "ALREADY";
	case CLUSTERFSM_REJECTED:
		return "REJECTED";
	}
	return "?";
}

/* clusterfsm_cmd_name names a command type. */
const char *clusterfsm_cmd_name(enum clusterfsm_cmd_type t)
{
	static const char *const names[] = {
	    "?",
	    "ALLOW_NODE",
	    "DISALLOW_NODE",
	    "SET_PRIORITY",
	    "MEMBER_JOIN",
	    "MEMBER_LEAVE",
	    "MEMBER_UPDATE",
	    "PROMOTION_LOCK",
	    "PROMOTION_PHASE",
	    "PROMOTION_RELEASE",
	    "SET_MASTER",
	};
	if ((unsigned)t < sizeof(names) / sizeof(names[0]))
		return names[t];
	return "?";
}

/* list_find returns the index of host in a host list, or -1. */
static int list_find(const char (*list)[CLUSTERFSM_HOST_MAX], size_t n, const char *host)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i], host) == 0)
			return (int)i;
	}
	return -1;
}

/* list_remove drops host from a host list if present, keeping the order. */
static void list_remove(char (*list)[CLUSTERFSM_HOST_MAX], size_t *n, const char *host)
{
	int i = -1;
	for (size_t k = 0; k < *n && i < 0; k++) {
		if (strcmp(list[k], host) == 0)
			i = (int)k;
	}
	if (i < 0)
		return;
	memmove(list[i], list[i + 1], (*n - (size_t)i - 1) * CLUSTERFSM_HOST_MAX);
	(*n)--;
	memset(list[*n], 0, CLUSTERFSM_HOST_MAX);
}

/* list_insert puts host at index at (0..n); the caller checked capacity. */
static void list_insert(char (*list)[CLUSTERFSM_HOST_MAX], size_t *n, size_t at, const char *host)
{
	memmove(list[at + 1], list[at], (*n - at) * CLUSTERFSM_HOST_MAX);
	memset(list[at], 0, CLUSTERFSM_HOST_MAX);
	snprintf(list[at], CLUSTERFSM_HOST_MAX, "%s", host);
	(*n)++;
}

/* allowed_index is the index of host in the allowed list, or -1. */
static int allowed_index(const struct cluster_state *s, const char *host)
{
	return list_find(s->allowed, s->n_allowed, host);
}

/* priority_index is the 0-based index of host in the priority list, or -1. */
static int priority_index(const struct cluster_state *s, const char *host)
{
	return list_find(s->priority, s->n_priority, host);
}

/* clusterfsm_member_by_id finds a member by raft server id. */
const struct clusterfsm_member *clusterfsm_member_by_id(const struct cluster_state *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_members; i++) {
		if (s->members[i].id == id)
			return &s->members[i];
	}
	return NULL;
}

/* clusterfsm_member_by_host finds the member running on the host of addr. */
const struct clusterfsm_member *clusterfsm_member_by_host(const struct cluster_state *s,
                                                          const char *addr)
{
	char want[CLUSTERFSM_HOST_MAX], have[CLUSTERFSM_HOST_MAX];
	if (!address_split(addr, want, sizeof(want), NULL))
		return NULL;
	for (size_t i = 0; i < s->n_members; i++) {
		if (address_split(s->members[i].address, have, sizeof(have), NULL) &&
		    strcmp(have, want) == 0)
			return &s->members[i];
	}
	return NULL;
}

/* clusterfsm_is_allowed tells whether the host of addr is allowed. */
bool clusterfsm_is_allowed(const struct cluster_state *s, const char *addr)
{
	char host[CLUSTERFSM_HOST_MAX];
	if (!address_split(addr, host, sizeof(host), NULL))
		return false;
	return allowed_index(s, host) >= 0;
}

/* clusterfsm_priority_of gives the 1-based priority of the host of addr. */
int clusterfsm_priority_of(const struct cluster_state *s, const char *addr)
{
	char host[CLUSTERFSM_HOST_MAX];
	if (!address_split(addr, host, sizeof(host), NULL))
		return 0;
	return priority_index(s, host) + 1;
}

/* phase_active: a lock in one of these phases blocks a new lock. */
static bool phase_active(enum clusterfsm_phase p)
{
	return p >= CLUSTERFSM_PHASE_FENCING && p <= CLUSTERFSM_PHASE_RECONFIGURING;
}

/* clusterfsm_promotion_active tells whether a promotion holds the lock. */
bool clusterfsm_promotion_active(const struct cluster_state *s)
{
	return phase_active(s->lock.phase);
}

/* clusterfsm_nodes_text writes the .nodes content: members' addresses. */
int clusterfsm_nodes_text(const struct cluster_state *s, char *buf, size_t len)
{
	size_t pos = 0;
	for (size_t i = 0; i < s->n_members; i++) {
		int n = snprintf(buf + pos, len - pos, "%s%s", i ? " " : "", s->members[i].address);
		if (n < 0 || (size_t)n >= len - pos)
			return -ENOSPC;
		pos += (size_t)n;
	}
	if (len - pos < 2)
		return -ENOSPC;
	buf[pos++] = '\n';
	buf[pos] = '\0';
	return (int)pos;
}

/* verdict fills a result with a code and a formatted reason. */
__attribute__((format(printf, 3, 4))) static enum clusterfsm_code
verdict(struct clusterfsm_result *r, enum clusterfsm_code code, const char *fmt, ...)
{
	va_list ap;
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return code;
}

/* member_mut finds a member by id for changing it; the index in *at. */
static struct clusterfsm_member *member_mut(struct cluster_state *s, uint64_t id, size_t *at)
{
	for (size_t i = 0; i < s->n_members; i++) {
		if (s->members[i].id == id) {
			*at = i;
			return &s->members[i];
		}
	}
	return NULL;
}

/*
 * sync_priority keeps the priority list equal to "standby members on allowed
 * hosts, plus reservations" for one host after its member changed.
 */
static void sync_priority(struct cluster_state *s, const char *host, bool standby)
{
	bool listed = priority_index(s, host) >= 0;
	if (standby && !listed && allowed_index(s, host) >= 0)
		list_insert(s->priority, &s->n_priority, s->n_priority, host);
	else if (!standby && listed)
		list_remove(s->priority, &s->n_priority, host);
}

/*
 * priority_check decides whether host may take priority p (1-based): p must
 * be 1..n+1 with n the list length without host, and a member on that host
 * must be a standby (only standbys are promotion candidates).
 */
static bool priority_check(const struct cluster_state *s, const char *host, int32_t p,
                           struct clusterfsm_result *r)
{
	const struct clusterfsm_member *m = clusterfsm_member_by_host(s, host);
	size_t n = s->n_priority - (priority_index(s, host) >= 0 ? 1 : 0);

	if (p < 1 || (uint64_t)p > n + 1) {
		verdict(r, CLUSTERFSM_REJECTED, "%s: priority %" PRId32 " is not between 1 and %zu",
		        host, p, n + 1);
		return false;
	}
	if (m != NULL && m->role != CLUSTERFSM_STANDBY) {
		verdict(r, CLUSTERFSM_REJECTED,
		        "%s: the member is a %s; only standbys have a priority", host,
		        clusterfsm_role_name(m->role));
		return false;
	}
	return true;
}

/* priority_place moves (or inserts) host to priority p, checked before. */
static void priority_place(struct cluster_state *s, const char *host, int32_t p)
{
	list_remove(s->priority, &s->n_priority, host);
	list_insert(s->priority, &s->n_priority, (size_t)(p - 1), host);
}

/* bad_address rejects a command whose address does not parse. */
static enum clusterfsm_code bad_address(struct clusterfsm_result *r, const char *addr)
{
	return verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a valid address", addr);
}

/* do_allow_node: add-node, with an optional priority. */
static enum clusterfsm_code do_allow_node(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                          struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];
	const struct clusterfsm_member *m;
	bool allowed;

	if (!address_split(c->address, host, sizeof(host), NULL))
		return bad_address(r, c->address);
	if (c->priority < 0)
		return verdict(r, CLUSTERFSM_REJECTED, "%s: priority %" PRId32 " is negative", host,
		               c->priority);
	if (c->priority > 0 && !priority_check(s, host, c->priority, r))
		return r->code;
	allowed = allowed_index(s, host) >= 0;
	if (allowed) {
		if (c->priority == 0)
			return verdict(r, CLUSTERFSM_ALREADY, "%s is already allowed", host);
		if (priority_index(s, host) + 1 == c->priority)
			return verdict(r, CLUSTERFSM_ALREADY, "%s already has priority %" PRId32,
			               host, c->priority);
		priority_place(s, host, c->priority);
		return verdict(r, CLUSTERFSM_OK, "%s", "");
	}
	if (s->n_allowed >= CLUSTERFSM_MAX_NODES)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "%s: the allowed node host list is full (%d)", host,
		               CLUSTERFSM_MAX_NODES);
	list_insert(s->allowed, &s->n_allowed, s->n_allowed, host);
	if (c->priority > 0) {
		priority_place(s, host, c->priority);
	} else {
		/* A standby still running since remove-node becomes a candidate again. */
		m = clusterfsm_member_by_host(s, host);
		if (m != NULL)
			sync_priority(s, host, m->role == CLUSTERFSM_STANDBY);
	}
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_disallow_node: remove-node; a running agent stays a member. */
static enum clusterfsm_code do_disallow_node(struct cluster_state *s,
                                             const struct clusterfsm_cmd *c,
                                             struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];

	if (!address_split(c->address, host, sizeof(host), NULL))
		return bad_address(r, c->address);
	if (allowed_index(s, host) < 0)
		return verdict(r, CLUSTERFSM_REJECTED, "%s is not in the allowed node host list",
		               host);
	list_remove(s->allowed, &s->n_allowed, host);
	list_remove(s->priority, &s->n_priority, host);
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_set_priority: move an allowed host in the standby priority list. */
static enum clusterfsm_code do_set_priority(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                            struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];

	if (!address_split(c->address, host, sizeof(host), NULL))
		return bad_address(r, c->address);
	if (allowed_index(s, host) < 0)
		return verdict(r, CLUSTERFSM_REJECTED, "%s is not in the allowed node host list",
		               host);
	if (!priority_check(s, host, c->priority, r))
		return r->code;
	if (priority_index(s, host) + 1 == c->priority)
		return verdict(r, CLUSTERFSM_ALREADY, "%s already has priority %" PRId32, host,
		               c->priority);
	priority_place(s, host, c->priority);
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/*
 * other_master returns the member other than id recorded as Master, or NULL:
 * the state never records two masters, whatever the agents report.
 */
static const struct clusterfsm_member *other_master(const struct cluster_state *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_members; i++)
		if (s->members[i].id != id && s->members[i].role == CLUSTERFSM_MASTER)
			return &s->members[i];
	return NULL;
}

/* do_member_join admits a running agent whose host is allowed. */
static enum clusterfsm_code do_member_join(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                           struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];
	uint16_t port;
	const struct clusterfsm_member *old;
	struct clusterfsm_member *m;

	if (c->id == 0)
		return verdict(r, CLUSTERFSM_REJECTED, "member id 0 is not a raft server id");
	if (!address_split(c->address, host, sizeof(host), &port) || port == 0)
		return verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a host:port address",
		               c->address);
	old = clusterfsm_member_by_id(s, c->id);
	if (old != NULL) {
		if (strcmp(old->address, c->address) == 0 && old->role == c->role)
			return verdict(r, CLUSTERFSM_ALREADY, "%s is already member %" PRIu64,
			               c->address, c->id);
		return verdict(r, CLUSTERFSM_REJECTED, "member %" PRIu64 " is already %s (%s)",
		               c->id, old->address, clusterfsm_role_name(old->role));
	}
	if (allowed_index(s, host) < 0)
		return verdict(r, CLUSTERFSM_REJECTED, "%s is not in the allowed node host list",
		               host);
	old = clusterfsm_member_by_host(s, host);
	if (old != NULL)
		return verdict(r, CLUSTERFSM_REJECTED, "%s already runs member %" PRIu64 " (%s)",
		               host, old->id, old->address);
	if (s->n_members >= CLUSTERFSM_MAX_NODES)
		return verdict(r, CLUSTERFSM_REJECTED, "%s: the cluster is full (%d members)",
		               c->address, CLUSTERFSM_MAX_NODES);
	if (c->role == CLUSTERFSM_MASTER && (old = other_master(s, c->id)) != NULL)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "%s reports a master database but %s is already the master",
		               c->address, old->address);
	m = &s->members[s->n_members++];
	memset(m, 0, sizeof(*m));
	m->id = c->id;
	snprintf(m->address, sizeof(m->address), "%s", c->address);
	m->role = c->role;
	m->agent = CLUSTERFSM_UP;
	m->db = CLUSTERFSM_UNKNOWN;
	sync_priority(s, host, c->role == CLUSTERFSM_STANDBY);
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_member_leave removes a member; its priority goes with it. */
static enum clusterfsm_code do_member_leave(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                            struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];
	size_t at;

	if (member_mut(s, c->id, &at) == NULL)
		return verdict(r, CLUSTERFSM_REJECTED, "no member has id %" PRIu64, c->id);
	if (address_split(s->members[at].address, host, sizeof(host), NULL))
		list_remove(s->priority, &s->n_priority, host);
	memmove(&s->members[at], &s->members[at + 1],
	        (s->n_members - at - 1) * sizeof(s->members[0]));
	s->n_members--;
	memset(&s->members[s->n_members], 0, sizeof(s->members[0]));
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_member_update records a member's role, agent and database state. */
static enum clusterfsm_code do_member_update(struct cluster_state *s,
                                             const struct clusterfsm_cmd *c,
                                             struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];
	size_t at;
	struct clusterfsm_member *m = member_mut(s, c->id, &at);

	if (m == NULL)
		return verdict(r, CLUSTERFSM_REJECTED, "no member has id %" PRIu64, c->id);
	if (m->role == c->role && m->agent == c->agent && m->db == c->db)
		return verdict(r, CLUSTERFSM_ALREADY, "member %" PRIu64 " is already so", c->id);
	const struct clusterfsm_member *master = other_master(s, c->id);
	if (c->role == CLUSTERFSM_MASTER && master != NULL)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "%s reports a master database but %s is already the master",
		               m->address, master->address);
	m->role = c->role;
	m->agent = c->agent;
	m->db = c->db;
	if (address_split(m->address, host, sizeof(host), NULL))
		sync_priority(s, host, m->role == CLUSTERFSM_STANDBY);
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/*
 * do_promotion_lock takes the promotion lock for a standby.  The
 * compare-and-set on the serial is what lets at most one of several
 * competing requests (same expected serial) win; the term check refuses a
 * request from a leader older than the one that took the last lock.
 */
static enum clusterfsm_code do_promotion_lock(struct cluster_state *s,
                                              const struct clusterfsm_cmd *c,
                                              struct clusterfsm_result *r)
{
	struct clusterfsm_lock *l = &s->lock;
	const struct clusterfsm_member *m = clusterfsm_member_by_host(s, c->address);

	/* The same request applied twice (a retried submission) is no contest. */
	if (m != NULL && c->serial != UINT64_MAX && l->serial == c->serial + 1 &&
	    l->term == c->term && strcmp(l->candidate, m->address) == 0)
		return verdict(r, CLUSTERFSM_ALREADY, "promotion lock %" PRIu64 " is held by %s",
		               l->serial, l->candidate);
	if (phase_active(l->phase))
		return verdict(r, CLUSTERFSM_REJECTED,
		               "promotion %" PRIu64 " of %s is in progress (phase %s)", l->serial,
		               l->candidate, clusterfsm_phase_name(l->phase));
	if (c->serial != l->serial)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "stale request: expected serial %" PRIu64 ", lock is at %" PRIu64,
		               c->serial, l->serial);
	if (c->term < l->term)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "stale request: term %" PRIu64 " is older than term %" PRIu64,
		               c->term, l->term);
	if (m == NULL)
		return verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a member", c->address);
	if (m->role != CLUSTERFSM_STANDBY)
		return verdict(r, CLUSTERFSM_REJECTED, "%s is a %s, not a standby", m->address,
		               clusterfsm_role_name(m->role));
	if (l->serial == UINT64_MAX)
		return verdict(r, CLUSTERFSM_REJECTED, "promotion serial exhausted");
	snprintf(l->candidate, sizeof(l->candidate), "%s", m->address);
	l->term = c->term;
	l->phase = CLUSTERFSM_PHASE_FENCING;
	l->serial++;
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/*
 * do_promotion_phase advances the lock one or more steps forward.  A step
 * that is already behind the committed phase answers ALREADY, so a new
 * leader replaying a half-done promotion does not see errors.
 */
static enum clusterfsm_code do_promotion_phase(struct cluster_state *s,
                                               const struct clusterfsm_cmd *c,
                                               struct clusterfsm_result *r)
{
	struct clusterfsm_lock *l = &s->lock;

	if (!phase_active(c->from) || !phase_active(c->to) || c->to <= c->from)
		return verdict(r, CLUSTERFSM_REJECTED, "invalid phase step %s -> %s",
		               clusterfsm_phase_name(c->from), clusterfsm_phase_name(c->to));
	if (c->serial != l->serial || l->serial == 0)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "stale request: promotion serial %" PRIu64 ", lock is at %" PRIu64,
		               c->serial, l->serial);
	if (!phase_active(l->phase))
		return verdict(r, CLUSTERFSM_REJECTED, "promotion %" PRIu64 " is over (%s)",
		               l->serial, clusterfsm_phase_name(l->phase));
	if (l->phase >= c->to)
		return verdict(r, CLUSTERFSM_ALREADY, "promotion %" PRIu64 " is already at %s",
		               l->serial, clusterfsm_phase_name(l->phase));
	if (l->phase != c->from)
		return verdict(r, CLUSTERFSM_REJECTED, "promotion %" PRIu64 " is at %s, not %s",
		               l->serial, clusterfsm_phase_name(l->phase),
		               clusterfsm_phase_name(c->from));
	l->phase = c->to;
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_promotion_release ends a promotion as DONE or ABORTED. */
static enum clusterfsm_code do_promotion_release(struct cluster_state *s,
                                                 const struct clusterfsm_cmd *c,
                                                 struct clusterfsm_result *r)
{
	struct clusterfsm_lock *l = &s->lock;

	if (c->to != CLUSTERFSM_PHASE_DONE && c->to != CLUSTERFSM_PHASE_ABORTED)
		return verdict(r, CLUSTERFSM_REJECTED, "a release ends in DONE or ABORTED, not %s",
		               clusterfsm_phase_name(c->to));
	if (c->serial != l->serial || l->serial == 0)
		return verdict(r, CLUSTERFSM_REJECTED,
		               "stale request: promotion serial %" PRIu64 ", lock is at %" PRIu64,
		               c->serial, l->serial);
	if (l->phase == c->to)
		return verdict(r, CLUSTERFSM_ALREADY, "promotion %" PRIu64 " is already %s",
		               l->serial, clusterfsm_phase_name(l->phase));
	if (!phase_active(l->phase))
		return verdict(r, CLUSTERFSM_REJECTED, "promotion %" PRIu64 " already ended %s",
		               l->serial, clusterfsm_phase_name(l->phase));
	l->phase = c->to;
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_set_master records the master member ("" for none). */
static enum clusterfsm_code do_set_master(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                          struct clusterfsm_result *r)
{
	const struct clusterfsm_member *m;

	if (c->address[0] == '\0') {
		if (s->master[0] == '\0')
			return verdict(r, CLUSTERFSM_ALREADY, "there is no master");
		s->master[0] = '\0';
		return verdict(r, CLUSTERFSM_OK, "%s", "");
	}
	m = clusterfsm_member_by_host(s, c->address);
	if (m == NULL)
		return verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a member", c->address);
	if (strcmp(s->master, m->address) == 0)
		return verdict(r, CLUSTERFSM_ALREADY, "%s is already the master", m->address);
	snprintf(s->master, sizeof(s->master), "%s", m->address);
	return verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* enums_valid refuses out-of-range enum values in a hand-built command. */
static bool enums_valid(const struct clusterfsm_cmd *c)
{
	return (unsigned)c->role <= CLUSTERFSM_IDLE && (unsigned)c->agent <= CLUSTERFSM_UNKNOWN &&
	       (unsigned)c->db <= CLUSTERFSM_UNKNOWN &&
	       (unsigned)c->from <= CLUSTERFSM_PHASE_ABORTED &&
	       (unsigned)c->to <= CLUSTERFSM_PHASE_ABORTED &&
	       memchr(c->address, '\0', sizeof(c->address)) != NULL;
}

typedef enum clusterfsm_code (*handler_fn)(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                           struct clusterfsm_result *r);

/* One handler per command type, indexed by enum clusterfsm_cmd_type. */
static const handler_fn handlers[] = {
    [CLUSTERFSM_ALLOW_NODE] = do_allow_node,
    [CLUSTERFSM_DISALLOW_NODE] = do_disallow_node,
    [CLUSTERFSM_SET_PRIORITY] = do_set_priority,
    [CLUSTERFSM_MEMBER_JOIN] = do_member_join,
    [CLUSTERFSM_MEMBER_LEAVE] = do_member_leave,
    [CLUSTERFSM_MEMBER_UPDATE] = do_member_update,
    [CLUSTERFSM_PROMOTION_LOCK] = do_promotion_lock,
    [CLUSTERFSM_PROMOTION_PHASE] = do_promotion_phase,
    [CLUSTERFSM_PROMOTION_RELEASE] = do_promotion_release,
    [CLUSTERFSM_SET_MASTER] = do_set_master,
};

/* clusterfsm_apply_cmd evaluates one command; only OK changes the state. */
enum clusterfsm_code clusterfsm_apply_cmd(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                          struct clusterfsm_result *res)
{
	struct clusterfsm_result r;

	memset(&r, 0, sizeof(r));
	if ((unsigned)c->type >= sizeof(handlers) / sizeof(handlers[0]) ||
	    handlers[c->type] == NULL)
		verdict(&r, CLUSTERFSM_REJECTED, "unknown command type %u", (unsigned)c->type);
	else if (!enums_valid(c))
		verdict(&r, CLUSTERFSM_REJECTED, "%s: field out of range",
		        clusterfsm_cmd_name(c->type));
	else
		handlers[c->type](s, c, &r);
	if (r.code == CLUSTERFSM_OK)
		s->version++;
	s->last = r;
	if (res != NULL)
		*res = r;
	return r.code;
}

/* clusterfsm_apply decodes a committed entry and applies it. */
enum clusterfsm_code clusterfsm_apply(struct cluster_state *s, const void *buf, size_t len,
                                      struct clusterfsm_result *res)
{
	struct clusterfsm_cmd c;

	if (clusterfsm_cmd_decode(buf, len, &c) != 0) {
		memset(&s->last, 0, sizeof(s->last));
		verdict(&s->last, CLUSTERFSM_REJECTED, "corrupt entry (%zu bytes)", len);
		if (res != NULL)
			*res = s->last;
		return CLUSTERFSM_REJECTED;
	}
	return clusterfsm_apply_cmd(s, &c, res);
}
