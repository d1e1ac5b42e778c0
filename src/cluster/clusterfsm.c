/*
 * clusterfsm.c - the replicated cluster state machine: the empty state,
 * names, queries, and the pure helpers the command handlers
 * (clusterfsm_apply.c, clusterfsm_promotion.c) share.  Command builders and
 * the byte formats live in clusterfsm_codec.c, which calls into this file,
 * never the other way round.
 *
 * Nothing here may depend on anything but the state and the command: all
 * agents must compute the same result from the same log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clusterfsm_int.h"

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
void clusterfsm_list_remove(char (*list)[CLUSTERFSM_HOST_MAX], size_t *n, const char *host)
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
void clusterfsm_list_insert(char (*list)[CLUSTERFSM_HOST_MAX], size_t *n, size_t at,
                            const char *host)
{
	memmove(list[at + 1], list[at], (*n - at) * CLUSTERFSM_HOST_MAX);
	memset(list[at], 0, CLUSTERFSM_HOST_MAX);
	snprintf(list[at], CLUSTERFSM_HOST_MAX, "%s", host);
	(*n)++;
}

/* allowed_index is the index of host in the allowed list, or -1. */
int clusterfsm_allowed_index(const struct cluster_state *s, const char *host)
{
	return list_find(s->allowed, s->n_allowed, host);
}

/* priority_index is the 0-based index of host in the priority list, or -1. */
int clusterfsm_priority_index(const struct cluster_state *s, const char *host)
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
	return clusterfsm_allowed_index(s, host) >= 0;
}

/* clusterfsm_priority_of gives the 1-based priority of the host of addr. */
int clusterfsm_priority_of(const struct cluster_state *s, const char *addr)
{
	char host[CLUSTERFSM_HOST_MAX];
	if (!address_split(addr, host, sizeof(host), NULL))
		return 0;
	return clusterfsm_priority_index(s, host) + 1;
}

/* phase_active: a lock in one of these phases blocks a new lock. */
bool clusterfsm_phase_active(enum clusterfsm_phase p)
{
	return p >= CLUSTERFSM_PHASE_FENCING && p <= CLUSTERFSM_PHASE_RECONFIGURING;
}

/* clusterfsm_promotion_active tells whether a promotion holds the lock. */
bool clusterfsm_promotion_active(const struct cluster_state *s)
{
	return clusterfsm_phase_active(s->lock.phase);
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

/* clusterfsm_verdict fills a result with a code and a formatted reason. */
enum clusterfsm_code clusterfsm_verdict(struct clusterfsm_result *r, enum clusterfsm_code code,
                                        const char *fmt, ...)
{
	va_list ap;
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return code;
}

/* clusterfsm_cmd_fields_ok refuses out-of-range enum values and an unterminated address. */
bool clusterfsm_cmd_fields_ok(const struct clusterfsm_cmd *c)
{
	return (unsigned)c->role <= CLUSTERFSM_IDLE && (unsigned)c->agent <= CLUSTERFSM_UNKNOWN &&
	       (unsigned)c->db <= CLUSTERFSM_UNKNOWN &&
	       (unsigned)c->from <= CLUSTERFSM_PHASE_ABORTED &&
	       (unsigned)c->to <= CLUSTERFSM_PHASE_ABORTED &&
	       memchr(c->address, '\0', sizeof(c->address)) != NULL;
}
