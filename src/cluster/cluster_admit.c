/*
 * cluster_admit.c - the leader's side of membership: admitting an agent
 * (validated first: allowed list, id of its address, and the replicated
 * state's own verdict on its record; then raft_add + raft_assign(voter),
 * then MEMBER_JOIN or MEMBER_UPDATE), removing a leaving, long-silent or
 * reset-away one (MEMBER_LEAVE, then raft_remove, retried), and warning
 * when the voters drop to two.  Also the agent's side of a refused report:
 * it is sent again with a growing delay, warned about once.
 */
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- admission (leader side) ---- */

struct admit {
	struct cluster *c;
	struct rpc_conn *conn; /* NULL for our own join */
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	enum clusterfsm_role role;
	enum clusterfsm_up db;
};

static void admit_reply(struct admit *a, cJSON *reply)
{
	a->c->admitting = false;
	rpc_reply_release(a->conn, reply);
	free(a);
}

/*
 * admit_cmd builds the command that records a's report: MEMBER_UPDATE for a
 * member, MEMBER_JOIN otherwise.  False when nothing is to change (*done)
 * or the address is malformed.
 */
static bool admit_cmd(struct cluster *c, const struct admit *a, struct clusterfsm_cmd *cmd,
                      bool *done)
{
	const struct clusterfsm_member *m = clusterfsm_member_by_id(&c->rio.st, a->id);
	*done = m != NULL && m->role == a->role && m->db == a->db && m->agent == CLUSTERFSM_UP;
	if (*done)
		return false;
	if (m != NULL) {
		clusterfsm_cmd_member_update(cmd, a->id, a->role, CLUSTERFSM_UP, a->db);
		return true;
	}
	return clusterfsm_cmd_member_join(cmd, a->id, a->address, a->role);
}

/* ---- refused reports ---- */

/*
 * admit_rejection is the answer to a join the replicated state would
 * refuse (an agent reporting a master while another member is recorded as
 * the master, an address whose host runs another member...): not a
 * refusal of the host ("refused" stops the agent), but "rejected", which
 * the agent answers by sending its report again later, and "cluster", so
 * that an agent without Raft never takes the silence for "no cluster".
 */
static cJSON *admit_rejection(struct cluster *c, const struct admit *a, const char *why)
{
	(void)c;
	cJSON *r = cluster_error_reply("report of %s (%s) refused: %s", a->address,
	                               clusterfsm_role_name(a->role), why);
	cJSON_AddBoolToObject(r, "rejected", true);
	cJSON_AddBoolToObject(r, "cluster", true);
	return r;
}

static struct cluster_refusal *warned_find(struct cluster *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_warned; i++)
		if (c->warned[i].id == id)
			return &c->warned[i];
	return NULL;
}

static void admit_warned_clear(struct cluster *c, uint64_t id)
{
	struct cluster_refusal *w = warned_find(c, id);
	if (w == NULL)
		return;
	*w = c->warned[--c->n_warned];
}

/*
 * admit_refused logs a refused report, as a WARNING once per episode (the
 * same agent and report; its own backoff already spaces the requests), and
 * takes out of the voting set an agent left there without a member record.
 */
static void admit_refused(struct cluster *c, const struct admit *a, const char *why)
{
	if (a->conn == NULL && a->id == c->id) {
		cluster_report_refused(c, &c->report_sent, why);
		return;
	}
	struct cluster_refusal *w = warned_find(c, a->id);
	if (w != NULL && w->role == a->role && w->db == a->db) {
		log_fine("cluster %s: report of agent %s refused again: %s", c->name, a->address,
		         why);
	} else {
		log_warning("cluster %s: refusing the report of agent %s (%s): %s; it is not "
		            "admitted until its report changes",
		            c->name, a->address, clusterfsm_role_name(a->role), why);
		if (w == NULL) /* full: the latest entry makes room (a warning repeated at worst) */
			w = &c->warned[c->n_warned < CLUSTERFSM_MAX_NODES
			                   ? c->n_warned++
			                   : CLUSTERFSM_MAX_NODES - 1];
		*w = (struct cluster_refusal){a->id, a->role, a->db};
	}
	if (raftio_in_config(&c->rio, a->id) &&
	    clusterfsm_member_by_id(&c->rio.st, a->id) == NULL && !c->removing && !c->admitting &&
	    !raftio_change_pending(&c->rio)) {
		log_warning("cluster %s: agent %s is in the voting set without a member record and "
		            "its report is refused: removing it from the voting set",
		            c->name, a->address);
		cluster_remove_member(c, a->id, a->address, NULL);
	}
}

/*
 * admit_validate asks the replicated state, on a copy, what it would say to
 * the record of a: NULL when it would take it, else the reason (in res).
 * Done before the agent becomes a voter, so a refused agent never votes.
 */
static const char *admit_validate(struct cluster *c, const struct admit *a,
                                  struct clusterfsm_result *res)
{
	struct clusterfsm_cmd cmd;
	bool done;
	if (!admit_cmd(c, a, &cmd, &done))
		return NULL; /* nothing to record, or malformed: admit_record answers */
	struct cluster_state *copy = malloc(sizeof(*copy));
	if (copy == NULL)
		return NULL;
	*copy = c->rio.st;
	enum clusterfsm_code code = clusterfsm_apply_cmd(copy, &cmd, res);
	free(copy);
	return code == CLUSTERFSM_REJECTED ? res->reason : NULL;
}

static void on_admit_applied(void *arg, int status, const struct clusterfsm_result *res)
{
	struct admit *a = arg;
	if (status != 0) {
		admit_reply(
		    a, cluster_error_reply("the join did not commit: %s", raft_strerror(status)));
		return;
	}
	if (res->code == CLUSTERFSM_REJECTED) {
		/* The state changed since the check: the same refusal as admit_check's. */
		struct cluster *c = a->c;
		struct admit copy = *a;
		admit_reply(a, admit_rejection(c, &copy, res->reason));
		admit_refused(c, &copy, res->reason);
		return;
	}
	admit_warned_clear(a->c, a->id);
	admit_reply(a, cluster_ok_reply());
}

/* admit_record commits the member entry (join or role/state update). */
static void admit_record(struct admit *a)
{
	struct cluster *c = a->c;
	struct clusterfsm_cmd cmd;
	bool done;
	if (!admit_cmd(c, a, &cmd, &done)) {
		admit_reply(a, done ? cluster_ok_reply()
		                    : cluster_error_reply("malformed address %s", a->address));
		return;
	}
	int rc = raftio_propose(&c->rio, &cmd, on_admit_applied, a);
	if (rc != 0)
		admit_reply(a, cluster_error_reply("cannot propose: %s", raft_strerror(rc)));
}

static void on_admit_voter(void *arg, int status)
{
	struct admit *a = arg;
	if (status != 0) {
		log_warning("cluster %s: could not make %s a voter: %s", a->c->name, a->address,
		            raft_strerror(status));
		admit_reply(a, cluster_retry_reply("could not add the agent to the voting set: %s",
		                                   raft_strerror(status)));
		return;
	}
	log_info("cluster %s: agent %s is now a voting member", a->c->name, a->address);
	admit_record(a);
}

/*
 * admit_check reads a join request into a and decides whether the agent
 * may be admitted now: NULL if so, else the answer that refuses it.
 */
static cJSON *admit_check(struct cluster *c, const cJSON *msg, struct admit *a)
{
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *jaddr = cJSON_GetObjectItemCaseSensitive(msg, "address");
	const cJSON *jrole = cJSON_GetObjectItemCaseSensitive(msg, "role");
	const cJSON *jdb = cJSON_GetObjectItemCaseSensitive(msg, "db");
	const cJSON *jstarted = cJSON_GetObjectItemCaseSensitive(msg, "started");
	if (!cJSON_IsString(jid) || !cJSON_IsString(jaddr) || !cJSON_IsNumber(jrole) ||
	    jrole->valueint < 0 || jrole->valueint > CLUSTERFSM_IDLE)
		return cluster_error_reply("malformed join request");
	char *end = NULL;
	errno = 0;
	unsigned long long id = strtoull(jid->valuestring, &end, 16);
	if (errno != 0 || end == jid->valuestring || *end != '\0' || id == 0)
		return cluster_error_reply("malformed join request: bad id");
	a->id = (uint64_t)id;
	snprintf(a->address, sizeof(a->address), "%s", jaddr->valuestring);
	/*
	 * The Raft id is derived from the address; a join whose id is another
	 * address's could take that member's place in the voting set.
	 */
	if (a->id != raftio_id_of(a->address))
		return cluster_error_reply("malformed join request: id does not match address %s",
		                           a->address);
	a->role = (enum clusterfsm_role)jrole->valueint;
	a->db = cJSON_IsNumber(jdb) && jdb->valueint >= 0 && jdb->valueint <= CLUSTERFSM_UNKNOWN
	            ? (enum clusterfsm_up)jdb->valueint
	            : CLUSTERFSM_UNKNOWN;
	/* One change at a time: an admission never starts while a removal is under way. */
	if (c->admitting || c->removing || c->phase == CLUSTER_SEEDING ||
	    raftio_change_pending(&c->rio))
		return cluster_retry_reply("the leader is busy with another membership change");
	/*
	 * An empty allowed list is one not seeded yet (a first start stopped
	 * before its seeding, resumed by the tick once this agent knows it
	 * leads): refusing now would stop an agent the list is about to allow.
	 */
	if (c->rio.st.n_allowed == 0)
		return cluster_retry_reply("the allowed node list is not seeded yet");
	if (!clusterfsm_is_allowed(&c->rio.st, a->address)) {
		log_warning(
		    "cluster %s: refusing to admit agent %s: its host is not in the allowed "
		    "node list (run 'efm add-node %s %s' on a member first)",
		    c->name, a->address, c->name, a->address);
		cJSON *r =
		    cluster_error_reply("this node's address %s is not in the allowed node list "
		                        "of cluster %s; run 'efm add-node %s %s' on a member",
		                        a->address, c->name, c->name, a->address);
		cJSON_AddBoolToObject(r, "refused", true);
		return r;
	}
	if (!cJSON_IsTrue(jstarted) && !raftio_voter(&c->rio, a->id))
		return cluster_retry_reply("start the consensus module, then ask again");
	struct clusterfsm_result res;
	const char *why = admit_validate(c, a, &res);
	if (why != NULL) {
		cJSON *r = admit_rejection(c, a, why);
		admit_refused(c, a, why);
		return r;
	}
	return NULL;
}

/* cluster_admit runs on the leader for a join (or update) request. */
void cluster_admit(struct cluster *c, struct rpc_conn *conn, const cJSON *msg)
{
	struct admit check = {.c = c, .conn = conn};
	cJSON *refusal = admit_check(c, msg, &check);
	if (refusal != NULL) {
		/* Our own join (no conn) is simply tried again at a later tick. */
		if (conn != NULL)
			rpc_reply(conn, refusal);
		else
			cJSON_Delete(refusal);
		return;
	}
	struct admit *a = malloc(sizeof(*a));
	if (a == NULL)
		return;
	*a = check;
	a->conn = conn;
	if (conn != NULL)
		rpc_conn_ref(conn);
	c->admitting = true;
	if (raftio_voter(&c->rio, a->id)) {
		admit_record(a);
		return;
	}
	log_info("cluster %s: admitting agent %s (%s)", c->name, a->address,
	         clusterfsm_role_name(a->role));
	int rc = raftio_add_voter(&c->rio, a->id, a->address, on_admit_voter, a);
	if (rc != 0)
		on_admit_voter(a, rc);
}

/* ---- the leader's removal of dead members ---- */

struct removal {
	struct cluster *c;
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	struct rpc_conn *conn; /* a graceful leave waiting for the answer, or NULL */
};

static void removal_end(struct removal *r, cJSON *reply)
{
	r->c->removing = false;
	rpc_reply_release(r->conn, reply);
	free(r);
}

static void on_removed(void *arg, int status)
{
	struct removal *r = arg;
	struct cluster *c = r->c;
	if (status != 0) {
		/*
		 * The member record is gone already: without a retry the agent
		 * would stay a voter with no record.  The leader's tick tries again.
		 */
		log_warning("cluster %s: removing %s from the voting set failed: %s; trying again "
		            "shortly",
		            c->name, r->address, raft_strerror(status));
		c->remove_retry_id = r->id;
		snprintf(c->remove_retry_address, sizeof(c->remove_retry_address), "%s",
		         r->address);
		removal_end(r, cluster_error_reply("removal failed: %s", raft_strerror(status)));
		return;
	}
	log_info("cluster %s: agent %s removed from the voting set", c->name, r->address);
	if (c->remove_retry_id == r->id)
		c->remove_retry_id = 0;
	removal_end(r, cluster_ok_reply());
}

static void on_leave_applied(void *arg, int status, const struct clusterfsm_result *res)
{
	struct removal *r = arg;
	(void)res;
	if (status == 0)
		admit_warned_clear(r->c, r->id);
	if (status != 0) {
		removal_end(r,
		            cluster_error_reply("leave did not commit: %s", raft_strerror(status)));
		return;
	}
	if (!raftio_in_config(&r->c->rio, r->id)) {
		removal_end(r, cluster_ok_reply());
		return;
	}
	int rc = raftio_remove(&r->c->rio, r->id, on_removed, r);
	if (rc != 0)
		on_removed(r, rc);
}

/* remove_member commits MEMBER_LEAVE then takes id out of the Raft configuration. */
void cluster_remove_member(struct cluster *c, uint64_t id, const char *address,
                           struct rpc_conn *conn)
{
	if (c->removing || c->admitting || raftio_change_pending(&c->rio)) {
		if (conn != NULL)
			rpc_reply(conn,
			          cluster_retry_reply("the leader is busy with another change"));
		return;
	}
	struct removal *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return;
	r->c = c;
	r->id = id;
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->conn = conn;
	if (conn != NULL)
		rpc_conn_ref(conn);
	c->removing = true;
	struct clusterfsm_cmd cmd;
	clusterfsm_cmd_member_leave(&cmd, id);
	if (clusterfsm_member_by_id(&c->rio.st, id) == NULL) {
		on_leave_applied(r, 0, NULL);
		return;
	}
	int rc = raftio_propose(&c->rio, &cmd, on_leave_applied, r);
	if (rc != 0)
		on_leave_applied(r, rc, NULL);
}

void cluster_rpc_leave(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                       const char *peer_addr, const cJSON *msg)
{
	/*
	 * Never forwarded: the leader removes the member named by the
	 * authenticated connection, which for a forwarded request would be the
	 * forwarder.  The leaver retries against the leader it learns.
	 */
	if (!raftio_is_leader(&c->rio)) {
		rpc_reply(conn, cluster_error_reply("not the leader"));
		return;
	}
	log_info("cluster %s: agent %s is leaving the cluster", c->name, peer_addr);
	cluster_remove_member(c, peer_id, peer_addr, conn);
}

static const char *member_address(struct cluster *c, uint64_t id)
{
	const struct clusterfsm_member *m = clusterfsm_member_by_id(&c->rio.st, id);
	const struct members_entry *e = members_get(&c->mem, id);
	return m != NULL ? m->address : e != NULL ? e->address : "?";
}

/*
 * retry_removal takes out of the configuration the agent whose raft_remove
 * failed after its MEMBER_LEAVE committed (RAFT_CANTCHANGE while another
 * change was pending, typically), unless it joined again meanwhile.
 */
static void retry_removal(struct cluster *c)
{
	uint64_t id = c->remove_retry_id;
	if (id == 0)
		return;
	if (!raftio_in_config(&c->rio, id) || clusterfsm_member_by_id(&c->rio.st, id) != NULL) {
		c->remove_retry_id = 0;
		return;
	}
	if (c->removing || c->admitting || raftio_change_pending(&c->rio))
		return;
	char addr[CLUSTERFSM_ADDR_MAX];
	snprintf(addr, sizeof(addr), "%s", c->remove_retry_address);
	log_info("cluster %s: removing %s from the voting set again", c->name, addr);
	c->remove_retry_id = 0; /* set again if it fails */
	cluster_remove_member(c, id, addr, NULL);
}

/*
 * leader_duties: retry a failed removal, remove one long-silent voter
 * (with or without a member record); warn when the voters drop to two.
 */
void cluster_leader_duties(struct cluster *c)
{
	uint64_t now = cluster_now(c);
	uint64_t voters[CLUSTERFSM_MAX_NODES];
	size_t n = raftio_voters(&c->rio, voters, CLUSTERFSM_MAX_NODES);
	if (n > CLUSTERFSM_MAX_NODES)
		n = CLUSTERFSM_MAX_NODES;
	/* Voters and members are watched alike (cluster_track_peers), ghosts included. */
	if (c->last_voters >= 3 && n == 2) {
		log_warning(
		    "cluster %s: only two voting members remain: a failure of either one can "
		    "no longer be handled automatically",
		    c->name);
		if (c->h.event != NULL)
			c->h.event(c->h.arg, NOTIFY_CLUSTER_BELOW_THREE, c->address);
	}
	c->last_voters = n;
	if (c->phase == CLUSTER_SEEDING)
		return;
	retry_removal(c);
	if (now - c->leader_since_ms < c->node_timeout_ms)
		return;
	uint64_t dead = members_removal_candidate(&c->mem, voters, n, c->id, now, c->removal_ms);
	if (dead == 0)
		return;
	log_warning("cluster %s: agent %s has been silent for %llu s: removing it from the "
	            "cluster so that later failures are judged against the survivors",
	            c->name, member_address(c, dead),
	            (unsigned long long)(members_silent_ms(&c->mem, dead, now) / 1000));
	char addr[CLUSTERFSM_ADDR_MAX];
	snprintf(addr, sizeof(addr), "%s", member_address(c, dead));
	cluster_remove_member(c, dead, addr, NULL);
}

/* ---- after the reset: the leader drops the members left out ---- */

void cluster_reset_gone(struct cluster *c)
{
	const struct cluster_state *st = &c->rio.st;
	if (c->removing || c->admitting || c->phase == CLUSTER_SEEDING ||
	    raftio_change_pending(&c->rio))
		return;
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		if (m->id == c->id || raftio_in_config(&c->rio, m->id))
			continue;
		log_info(
		    "cluster %s: agent %s is not in the voting set (left out by reset-members): "
		    "removing it from the cluster",
		    c->name, m->address);
		char addr[CLUSTERFSM_ADDR_MAX];
		snprintf(addr, sizeof(addr), "%s", m->address);
		cluster_remove_member(c, m->id, addr, NULL);
		return;
	}
}

/* ---- the agent's side: a refused report waits, longer each time ---- */

static bool same_report(const struct members_report *a, const struct members_report *b)
{
	return a->role == b->role && a->db == b->db;
}

void cluster_report_refused(struct cluster *c, const struct members_report *rep, const char *why)
{
	uint64_t now = cluster_now(c);
	bool episode = c->report_refused && same_report(&c->refused_rep, rep);
	/* Joins sent to several agents at once come back together: count one round once. */
	if (episode && now < c->refused_next_ms)
		return;
	if (!episode) {
		c->refused_delay_ms = CLUSTER_REFUSED_FIRST_MS;
		log_warning("cluster %s: the leader refuses this agent's report (%s, database %s): "
		            "%s; next report in %llu s (the delay doubles up to %d s while it is "
		            "refused)",
		            c->name, clusterfsm_role_name(rep->role), clusterfsm_up_name(rep->db),
		            why, (unsigned long long)(c->refused_delay_ms / 1000),
		            CLUSTER_REFUSED_MAX_MS / 1000);
	} else {
		c->refused_delay_ms *= 2;
		if (c->refused_delay_ms > CLUSTER_REFUSED_MAX_MS)
			c->refused_delay_ms = CLUSTER_REFUSED_MAX_MS;
		log_fine("cluster %s: report still refused: %s; next report in %llu s", c->name,
		         why, (unsigned long long)(c->refused_delay_ms / 1000));
	}
	c->report_refused = true;
	c->refused_rep = *rep;
	c->refused_next_ms = now + c->refused_delay_ms;
}

bool cluster_report_held(struct cluster *c, const struct members_report *rep)
{
	if (!c->report_refused)
		return false;
	if (!same_report(&c->refused_rep, rep)) {
		log_info(
		    "cluster %s: this agent's report changed (%s, database %s): sending it now",
		    c->name, clusterfsm_role_name(rep->role), clusterfsm_up_name(rep->db));
		c->report_refused = false;
		return false;
	}
	return cluster_now(c) < c->refused_next_ms;
}

void cluster_report_accepted(struct cluster *c)
{
	if (!c->report_refused)
		return;
	log_info("cluster %s: the leader accepted this agent's report", c->name);
	c->report_refused = false;
}
