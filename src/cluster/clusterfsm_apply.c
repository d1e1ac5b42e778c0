/*
 * clusterfsm_apply.c - apply: one handler per command type, chosen from a
 * table.  The list and membership commands are here; the promotion lock's
 * are in clusterfsm_promotion.c.
 *
 * Every handler checks everything first and changes the state only once it
 * has decided OK, so a REJECTED or ALREADY command leaves no trace.  Nothing
 * here may depend on anything but the state and the command: all agents
 * must compute the same result from the same log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clusterfsm_int.h"

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
	bool listed = clusterfsm_priority_index(s, host) >= 0;
	if (standby && !listed && clusterfsm_allowed_index(s, host) >= 0)
		clusterfsm_list_insert(s->priority, &s->n_priority, s->n_priority, host);
	else if (!standby && listed)
		clusterfsm_list_remove(s->priority, &s->n_priority, host);
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
	size_t n = s->n_priority - (clusterfsm_priority_index(s, host) >= 0 ? 1 : 0);

	if (p < 1 || (uint64_t)p > n + 1) {
		clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                   "%s: priority %" PRId32 " is not between 1 and %zu", host, p,
		                   n + 1);
		return false;
	}
	if (m != NULL && m->role != CLUSTERFSM_STANDBY) {
		clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                   "%s: the member is a %s; only standbys have a priority", host,
		                   clusterfsm_role_name(m->role));
		return false;
	}
	return true;
}

/* priority_place moves (or inserts) host to priority p, checked before. */
static void priority_place(struct cluster_state *s, const char *host, int32_t p)
{
	clusterfsm_list_remove(s->priority, &s->n_priority, host);
	clusterfsm_list_insert(s->priority, &s->n_priority, (size_t)(p - 1), host);
}

/* bad_address rejects a command whose address does not parse. */
static enum clusterfsm_code bad_address(struct clusterfsm_result *r, const char *addr)
{
	return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a valid address", addr);
}

/*
 * allowed_host reads the host of c's address into host; false, with r
 * filled, when the address does not parse or its host is not allowed.
 */
static bool allowed_host(const struct cluster_state *s, const struct clusterfsm_cmd *c,
                         char host[CLUSTERFSM_HOST_MAX], struct clusterfsm_result *r)
{
	if (!address_split(c->address, host, CLUSTERFSM_HOST_MAX, NULL)) {
		bad_address(r, c->address);
		return false;
	}
	if (clusterfsm_allowed_index(s, host) < 0) {
		clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                   "%s is not in the allowed node host list", host);
		return false;
	}
	return true;
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
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "%s: priority %" PRId32 " is negative", host,
		                          c->priority);
	if (c->priority > 0 && !priority_check(s, host, c->priority, r))
		return r->code;
	allowed = clusterfsm_allowed_index(s, host) >= 0;
	if (allowed) {
		if (c->priority == 0)
			return clusterfsm_verdict(r, CLUSTERFSM_ALREADY, "%s is already allowed",
			                          host);
		if (clusterfsm_priority_index(s, host) + 1 == c->priority)
			return clusterfsm_verdict(r, CLUSTERFSM_ALREADY,
			                          "%s already has priority %" PRId32, host,
			                          c->priority);
		priority_place(s, host, c->priority);
		return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
	}
	if (s->n_allowed >= CLUSTERFSM_MAX_NODES)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "%s: the allowed node host list is full (%d)", host,
		                          CLUSTERFSM_MAX_NODES);
	clusterfsm_list_insert(s->allowed, &s->n_allowed, s->n_allowed, host);
	if (c->priority > 0) {
		priority_place(s, host, c->priority);
	} else {
		/* A standby still running since remove-node becomes a candidate again. */
		m = clusterfsm_member_by_host(s, host);
		if (m != NULL)
			sync_priority(s, host, m->role == CLUSTERFSM_STANDBY);
	}
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_disallow_node: remove-node; a running agent stays a member. */
static enum clusterfsm_code do_disallow_node(struct cluster_state *s,
                                             const struct clusterfsm_cmd *c,
                                             struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];

	if (!allowed_host(s, c, host, r))
		return r->code;
	clusterfsm_list_remove(s->allowed, &s->n_allowed, host);
	clusterfsm_list_remove(s->priority, &s->n_priority, host);
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_set_priority: move an allowed host in the standby priority list. */
static enum clusterfsm_code do_set_priority(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                            struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];

	if (!allowed_host(s, c, host, r))
		return r->code;
	if (!priority_check(s, host, c->priority, r))
		return r->code;
	if (clusterfsm_priority_index(s, host) + 1 == c->priority)
		return clusterfsm_verdict(r, CLUSTERFSM_ALREADY, "%s already has priority %" PRId32,
		                          host, c->priority);
	priority_place(s, host, c->priority);
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
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
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "member id 0 is not a raft server id");
	if (!address_split(c->address, host, sizeof(host), &port) || port == 0)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "\"%s\" is not a host:port address", c->address);
	old = clusterfsm_member_by_id(s, c->id);
	if (old != NULL) {
		if (strcmp(old->address, c->address) == 0 && old->role == c->role)
			return clusterfsm_verdict(r, CLUSTERFSM_ALREADY,
			                          "%s is already member %" PRIu64, c->address,
			                          c->id);
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "member %" PRIu64 " is already %s (%s)", c->id,
		                          old->address, clusterfsm_role_name(old->role));
	}
	if (clusterfsm_allowed_index(s, host) < 0)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "%s is not in the allowed node host list", host);
	old = clusterfsm_member_by_host(s, host);
	if (old != NULL)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "%s already runs member %" PRIu64 " (%s)", host, old->id,
		                          old->address);
	if (s->n_members >= CLUSTERFSM_MAX_NODES)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "%s: the cluster is full (%d members)", c->address,
		                          CLUSTERFSM_MAX_NODES);
	if (c->role == CLUSTERFSM_MASTER && (old = other_master(s, c->id)) != NULL)
		return clusterfsm_verdict(
		    r, CLUSTERFSM_REJECTED,
		    "%s reports a master database but %s is already the master", c->address,
		    old->address);
	m = &s->members[s->n_members++];
	memset(m, 0, sizeof(*m));
	m->id = c->id;
	snprintf(m->address, sizeof(m->address), "%s", c->address);
	m->role = c->role;
	m->agent = CLUSTERFSM_UP;
	m->db = CLUSTERFSM_UNKNOWN;
	sync_priority(s, host, c->role == CLUSTERFSM_STANDBY);
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_member_leave removes a member; its priority goes with it. */
static enum clusterfsm_code do_member_leave(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                            struct clusterfsm_result *r)
{
	char host[CLUSTERFSM_HOST_MAX];
	size_t at;

	if (member_mut(s, c->id, &at) == NULL)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "no member has id %" PRIu64,
		                          c->id);
	if (address_split(s->members[at].address, host, sizeof(host), NULL))
		clusterfsm_list_remove(s->priority, &s->n_priority, host);
	memmove(&s->members[at], &s->members[at + 1],
	        (s->n_members - at - 1) * sizeof(s->members[0]));
	s->n_members--;
	memset(&s->members[s->n_members], 0, sizeof(s->members[0]));
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
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
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "no member has id %" PRIu64,
		                          c->id);
	if (m->role == c->role && m->agent == c->agent && m->db == c->db)
		return clusterfsm_verdict(r, CLUSTERFSM_ALREADY, "member %" PRIu64 " is already so",
		                          c->id);
	const struct clusterfsm_member *master = other_master(s, c->id);
	if (c->role == CLUSTERFSM_MASTER && master != NULL)
		return clusterfsm_verdict(
		    r, CLUSTERFSM_REJECTED,
		    "%s reports a master database but %s is already the master", m->address,
		    master->address);
	m->role = c->role;
	m->agent = c->agent;
	m->db = c->db;
	if (address_split(m->address, host, sizeof(host), NULL))
		sync_priority(s, host, m->role == CLUSTERFSM_STANDBY);
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* do_set_master records the master member ("" for none). */
static enum clusterfsm_code do_set_master(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                          struct clusterfsm_result *r)
{
	const struct clusterfsm_member *m;

	if (c->address[0] == '\0') {
		if (s->master[0] == '\0')
			return clusterfsm_verdict(r, CLUSTERFSM_ALREADY, "there is no master");
		s->master[0] = '\0';
		return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
	}
	m = clusterfsm_member_by_host(s, c->address);
	if (m == NULL)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a member",
		                          c->address);
	if (strcmp(s->master, m->address) == 0)
		return clusterfsm_verdict(r, CLUSTERFSM_ALREADY, "%s is already the master",
		                          m->address);
	snprintf(s->master, sizeof(s->master), "%s", m->address);
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* One handler per command type, indexed by enum clusterfsm_cmd_type. */
static const clusterfsm_handler handlers[] = {
    [CLUSTERFSM_ALLOW_NODE] = do_allow_node,
    [CLUSTERFSM_DISALLOW_NODE] = do_disallow_node,
    [CLUSTERFSM_SET_PRIORITY] = do_set_priority,
    [CLUSTERFSM_MEMBER_JOIN] = do_member_join,
    [CLUSTERFSM_MEMBER_LEAVE] = do_member_leave,
    [CLUSTERFSM_MEMBER_UPDATE] = do_member_update,
    [CLUSTERFSM_PROMOTION_LOCK] = clusterfsm_do_promotion_lock,
    [CLUSTERFSM_PROMOTION_PHASE] = clusterfsm_do_promotion_phase,
    [CLUSTERFSM_PROMOTION_RELEASE] = clusterfsm_do_promotion_release,
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
		clusterfsm_verdict(&r, CLUSTERFSM_REJECTED, "unknown command type %u",
		                   (unsigned)c->type);
	else if (!clusterfsm_cmd_fields_ok(c))
		clusterfsm_verdict(&r, CLUSTERFSM_REJECTED, "%s: field out of range",
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
