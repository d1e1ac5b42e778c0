/*
 * cluster_reset.c - reset-members: rebuild the voting set from the agents
 * still running once the cluster has lost its quorum for good.
 *
 * The agent given the command coordinates:
 *  1. it refuses when it has a leader: the quorum is not lost;
 *  2. it probes every other server of its Raft configuration
 *     ("reset-probe", each bounded by CLUSTER_RESET_CALL_MS).  Every agent
 *     that answers must be without a leader as well, or the reset is
 *     refused: an agent that still sees a leader belongs to a live majority,
 *     and rebuilding beside it would make a second cluster;
 *  3. it refuses when the reachable agents are a majority of the voting
 *     set: those elect a leader by themselves;
 *  4. it tells each reachable agent ("reset-apply") the new voting set,
 *     exactly the reachable agents and itself, all voters.  Each checks
 *     again that it has no leader, answers, and restarts its Raft server
 *     with raft_recover forcing that set (cluster_reopen);
 *  5. it answers the operator with the new set and restarts the same way.
 * The survivors then elect a leader, which commits MEMBER_LEAVE for every
 * member outside the voting set (cluster_reset_gone): the status and the
 * .nodes files drop them.
 *
 * What the guard cannot do: tell a crashed agent from one cut off by a
 * partition whose side has no leader either.  The README says so: use the
 * command only when the missing agents are known to be down.
 */
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum reset_answer { ANS_WAITING, ANS_UNREACHABLE, ANS_NO_LEADER, ANS_HAS_LEADER, ANS_REFUSED };

struct reset_op;

struct reset_peer {
	struct reset_op *op;
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	enum reset_answer ans;
	bool applied; /* answered the reset-apply with ok */
	char detail[192];
};

struct reset_op {
	struct cluster *c;
	struct admin_request *req;
	size_t n;      /* other servers of the configuration */
	size_t voters; /* voters of the configuration, this agent included */
	int pending;
	int refused; /* reset-apply refusals */
	struct reset_peer p[CLUSTERFSM_MAX_NODES];
};

/* end_op answers the operator (reply ownership taken) and frees op. */
static void end_op(struct reset_op *op, cJSON *reply)
{
	op->c->resetting = false;
	admin_reply(op->req, reply);
	free(op);
}

static void on_reset_timer(uv_timer_t *t)
{
	struct cluster *c = t->data;
	c->reset_armed = false;
	if (!c->shutting)
		cluster_reopen(c);
}

/* arm_reopen restarts raft with c->reset_set after delay_ms (lets replies go out first). */
static void arm_reopen(struct cluster *c, uint64_t delay_ms)
{
	if (!c->reset_timer_open) {
		uv_timer_init(c->loop, &c->reset_timer);
		c->reset_timer.data = c;
		c->reset_timer_open = true;
	}
	c->reset_armed = true;
	uv_timer_start(&c->reset_timer, on_reset_timer, delay_ms, 0);
}

/* set_text lists the addresses of the reset set, comma separated. */
static void set_text(const struct cluster_reset_set *s, char *out, size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->n && used < len; i++) {
		int k = snprintf(out + used, len - used, "%s%s", i > 0 ? ", " : "", s->address[i]);
		if (k < 0)
			break;
		used += (size_t)k;
	}
}

/* ---- coordinator: apply phase ---- */

static void apply_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	char set[1024], gone[1024];
	size_t used = 0;
	gone[0] = '\0';
	if (c->shutting) {
		end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
		return;
	}
	set_text(&c->reset_set, set, sizeof(set));
	if (op->refused > 0) {
		log_warning(
		    "cluster %s: reset-members: aborted, %d member(s) refused the new voting "
		    "set; this agent keeps its configuration",
		    c->name, op->refused);
		end_op(op,
		       cluster_error_reply(
		           "reset-members aborted: %d member(s) refused the new voting set {%s} "
		           "(see their logs: they found a leader meanwhile); check the cluster "
		           "with cluster-status before trying again",
		           op->refused, set));
		return;
	}
	cJSON *members = cJSON_CreateArray();
	cJSON *removed = cJSON_CreateArray();
	for (size_t i = 0; i < c->reset_set.n; i++)
		cJSON_AddItemToArray(members, cJSON_CreateString(c->reset_set.address[i]));
	for (size_t i = 0; i < op->n; i++) {
		if (op->p[i].ans != ANS_UNREACHABLE)
			continue;
		cJSON_AddItemToArray(removed, cJSON_CreateString(op->p[i].address));
		int k = snprintf(gone + used, sizeof(gone) - used, "%s%s", used > 0 ? ", " : "",
		                 op->p[i].address);
		if (k > 0 && (size_t)k < sizeof(gone) - used)
			used += (size_t)k;
	}
	char msg[2048];
	snprintf(msg, sizeof(msg),
	         "reset-members: the voting set of cluster %s is now {%s} (%zu member(s)); left "
	         "out as unreachable: {%s}. The survivors restart their consensus module with this "
	         "set and elect a leader, which then removes the members left out from the status "
	         "and the .nodes files. An agent left out that is started again later rejoins like "
	         "a new one (its address must still be in the allowed node list). Check the result "
	         "with 'efm cluster-status %s'.",
	         c->name, set, c->reset_set.n, gone, c->name);
	log_info("cluster %s: %s", c->name, msg);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddStringToObject(r, "message", msg);
	cJSON_AddItemToObject(r, "members", members);
	cJSON_AddItemToObject(r, "removed", removed);
	end_op(op, r);
	arm_reopen(c, 50);
}

static void on_apply_reply(void *arg, int status, const cJSON *reply)
{
	struct reset_peer *p = arg;
	struct reset_op *op = p->op;
	struct cluster *c = op->c;
	op->pending--;
	const cJSON *err = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "error") : NULL;
	if (status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		p->applied = true;
		log_info("cluster %s: reset-members: %s accepted the new voting set", c->name,
		         p->address);
	} else if (status == 0) {
		op->refused++;
		log_warning("cluster %s: reset-members: %s refused the new voting set: %s", c->name,
		            p->address, cJSON_IsString(err) ? err->valuestring : "no reason given");
	} else {
		/* It may have applied it: the set still includes it, as the others were told. */
		log_warning("cluster %s: reset-members: %s did not answer the reset (%s); it stays "
		            "in the new voting set",
		            c->name, p->address, strerror(-status));
	}
	if (op->pending == 0)
		apply_done(op);
}

/* send_apply tells every reachable member the new voting set. */
static void send_apply(struct reset_op *op)
{
	struct cluster *c = op->c;
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		if (p->ans != ANS_NO_LEADER)
			continue;
		cJSON *m = rpc_msg("reset-apply");
		cJSON *servers = cJSON_CreateArray();
		if (m == NULL || servers == NULL) {
			cJSON_Delete(m);
			cJSON_Delete(servers);
			continue;
		}
		for (size_t k = 0; k < c->reset_set.n; k++) {
			char id[32];
			cJSON *s = cJSON_CreateObject();
			snprintf(id, sizeof(id), "%016llx", (unsigned long long)c->reset_set.id[k]);
			cJSON_AddStringToObject(s, "id", id);
			cJSON_AddStringToObject(s, "address", c->reset_set.address[k]);
			cJSON_AddItemToArray(servers, s);
		}
		cJSON_AddItemToObject(m, "servers", servers);
		cJSON_AddStringToObject(m, "from", c->address);
		log_info("cluster %s: reset-members: telling %s to restart with the new voting set",
		         c->name, p->address);
		if (rpc_call(c->rpc, p->address, m, CLUSTER_RESET_CALL_MS, on_apply_reply, p) == 0)
			op->pending++;
		else
			log_warning("cluster %s: reset-members: cannot reach %s to apply the reset",
			            c->name, p->address);
	}
	if (op->pending == 0)
		apply_done(op);
}

/* ---- coordinator: probe phase ---- */

/* probes_done checks the answers and either refuses or moves to the apply phase. */
static void probes_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	const char *leader = cluster_leader_address(c);
	size_t alive = 1;
	if (c->shutting || c->reopening) {
		end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
		return;
	}
	if (leader != NULL) {
		log_warning("cluster %s: reset-members refused: a leader (%s) appeared meanwhile",
		            c->name, leader);
		end_op(op, cluster_error_reply("reset-members refused: this agent found a cluster "
		                               "leader (%s) meanwhile; quorum is not lost",
		                               leader));
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		if (p->ans == ANS_HAS_LEADER) {
			log_warning("cluster %s: reset-members refused: %s still has a leader (%s)",
			            c->name, p->address, p->detail);
			end_op(op,
			       cluster_error_reply(
			           "reset-members refused: member %s still sees a cluster leader "
			           "(%s), so a live majority exists and this agent is cut off from "
			           "it; repair the network instead (a reset here would make a "
			           "second cluster)",
			           p->address, p->detail));
			return;
		}
		if (p->ans == ANS_REFUSED) {
			log_warning("cluster %s: reset-members refused: %s: %s", c->name,
			            p->address, p->detail);
			end_op(op, cluster_error_reply("reset-members refused: member %s: %s",
			                               p->address, p->detail));
			return;
		}
		if (p->ans == ANS_NO_LEADER)
			alive++;
	}
	if (alive * 2 > op->voters) {
		log_warning("cluster %s: reset-members refused: %zu of %zu voting members are "
		            "running, a majority",
		            c->name, alive, op->voters);
		end_op(op,
		       cluster_error_reply(
		           "reset-members refused: %zu of the %zu voting members are running and "
		           "reachable, a majority: they elect a leader by themselves (an election "
		           "is probably in progress); wait a few seconds and check "
		           "cluster-status",
		           alive, op->voters));
		return;
	}
	struct cluster_reset_set *s = &c->reset_set;
	s->n = 0;
	s->id[s->n] = c->id;
	snprintf(s->address[s->n++], CLUSTERFSM_ADDR_MAX, "%s", c->address);
	for (size_t i = 0; i < op->n; i++) {
		if (op->p[i].ans != ANS_NO_LEADER)
			continue;
		s->id[s->n] = op->p[i].id;
		snprintf(s->address[s->n++], CLUSTERFSM_ADDR_MAX, "%s", op->p[i].address);
	}
	char set[1024];
	set_text(s, set, sizeof(set));
	log_info("cluster %s: reset-members: %zu of %zu voting members are running, none has a "
	         "leader; the new voting set is {%s}",
	         c->name, alive, op->voters, set);
	send_apply(op);
}

static void on_probe_reply(void *arg, int status, const cJSON *reply)
{
	struct reset_peer *p = arg;
	struct reset_op *op = p->op;
	struct cluster *c = op->c;
	op->pending--;
	const cJSON *ok = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "ok") : NULL;
	const cJSON *has = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "leader") : NULL;
	const cJSON *la =
	    reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "leader_address") : NULL;
	const cJSON *err = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "error") : NULL;
	if (status != 0) {
		p->ans = ANS_UNREACHABLE;
		snprintf(p->detail, sizeof(p->detail), "%s", strerror(-status));
	} else if (cJSON_IsTrue(ok) && cJSON_IsFalse(has)) {
		p->ans = ANS_NO_LEADER;
		snprintf(p->detail, sizeof(p->detail), "running, no leader");
	} else if (cJSON_IsTrue(ok)) {
		p->ans = ANS_HAS_LEADER;
		snprintf(p->detail, sizeof(p->detail), "%s",
		         cJSON_IsString(la) ? la->valuestring : "?");
	} else {
		p->ans = ANS_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "%s",
		         cJSON_IsString(err) ? err->valuestring : "malformed answer");
	}
	log_info("cluster %s: reset-members: probe of %s: %s%s%s", c->name, p->address,
	         p->ans == ANS_UNREACHABLE  ? "unreachable ("
	         : p->ans == ANS_NO_LEADER  ? "reachable ("
	         : p->ans == ANS_HAS_LEADER ? "has a leader ("
	                                    : "refused (",
	         p->detail, ")");
	if (op->pending == 0)
		probes_done(op);
}

void cluster_reset_command(struct cluster *c, struct admin_request *req)
{
	log_info("cluster %s: reset-members requested by uid %ld", c->name, (long)req->uid);
	if (!c->started || c->reopening || !raftio_configured(&c->rio) ||
	    !raftio_voter(&c->rio, c->id)) {
		admin_reply_error(req,
		                  "reset-members: this agent (%s) is not a voting member of "
		                  "cluster %s (yet): there is nothing to reset here",
		                  c->address, c->name);
		return;
	}
	if (c->resetting || c->reset_armed) {
		admin_reply_error(req,
		                  "reset-members: a reset is already in progress on this agent");
		return;
	}
	const char *leader = cluster_leader_address(c);
	if (leader != NULL) {
		log_warning("cluster %s: reset-members refused: the cluster has a leader (%s), "
		            "quorum is not lost",
		            c->name, leader);
		admin_reply_error(
		    req,
		    "reset-members refused: cluster %s has a leader (%s) in contact with this "
		    "agent, "
		    "so its quorum is not lost and nothing was changed. To take a node out use "
		    "'efm remove-node'; a crashed agent is removed by the others after the node "
		    "timeout. reset-members is only for a cluster whose majority is gone for good.",
		    c->name, leader);
		return;
	}
	struct reset_op *op = calloc(1, sizeof(*op));
	if (op == NULL) {
		admin_reply_error(req, "out of memory");
		return;
	}
	op->c = c;
	op->req = req;
	const struct raft_configuration *conf = &c->rio.r.configuration;
	for (unsigned i = 0; i < conf->n; i++) {
		const struct raft_server *s = &conf->servers[i];
		if (s->role == RAFT_VOTER)
			op->voters++;
		if (s->id == c->id || op->n >= CLUSTERFSM_MAX_NODES)
			continue;
		struct reset_peer *p = &op->p[op->n++];
		p->op = op;
		p->id = s->id;
		snprintf(p->address, sizeof(p->address), "%s", s->address);
	}
	c->resetting = true;
	log_info("cluster %s: reset-members: no leader; asking the %zu other member(s) of the "
	         "configuration whether they are running and leaderless",
	         c->name, op->n);
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		cJSON *m = rpc_msg("reset-probe");
		if (m != NULL)
			cJSON_AddStringToObject(m, "from", c->address);
		if (m != NULL && rpc_call(c->rpc, p->address, m, CLUSTER_RESET_CALL_MS,
		                          on_probe_reply, p) == 0) {
			op->pending++;
		} else {
			p->ans = ANS_UNREACHABLE;
			snprintf(p->detail, sizeof(p->detail), "cannot send the probe");
		}
	}
	if (op->pending == 0)
		probes_done(op);
}

/* ---- participant side ---- */

/* parse_set reads the "servers" array of a reset-apply into s; false if malformed. */
static bool parse_set(const cJSON *msg, struct cluster_reset_set *s)
{
	const cJSON *servers = cJSON_GetObjectItemCaseSensitive(msg, "servers");
	const cJSON *e;
	s->n = 0;
	if (!cJSON_IsArray(servers))
		return false;
	cJSON_ArrayForEach(e, servers)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "address");
		if (s->n >= CLUSTERFSM_MAX_NODES || !cJSON_IsString(id) || !cJSON_IsString(a) ||
		    strlen(a->valuestring) >= CLUSTERFSM_ADDR_MAX)
			return false;
		char *end = NULL;
		s->id[s->n] = strtoull(id->valuestring, &end, 16);
		if (end == id->valuestring || *end != '\0' || s->id[s->n] == 0 ||
		    s->id[s->n] != raftio_id_of(a->valuestring))
			return false;
		snprintf(s->address[s->n++], CLUSTERFSM_ADDR_MAX, "%s", a->valuestring);
	}
	return s->n > 0;
}

static void on_reset_apply(struct cluster *c, struct rpc_conn *conn, const char *peer_addr,
                           const cJSON *msg)
{
	struct cluster_reset_set s;
	const char *leader = cluster_leader_address(c);
	bool self = false;
	if (!parse_set(msg, &s)) {
		rpc_reply(conn, cluster_error_reply("malformed voting set"));
		return;
	}
	for (size_t i = 0; i < s.n; i++)
		self = self || s.id[i] == c->id;
	if (leader != NULL || !self || c->resetting || c->reset_armed || c->reopening ||
	    !c->started) {
		const char *why = leader != NULL ? "this agent has a cluster leader"
		                  : !self        ? "this agent is not in the new voting set"
		                  : !c->started  ? "this agent has no cluster state"
		                                 : "this agent is busy with another reset";
		log_warning(
		    "cluster %s: reset-members: refusing the new voting set from %s: %s%s%s",
		    c->name, peer_addr, why, leader != NULL ? " " : "",
		    leader != NULL ? leader : "");
		rpc_reply(conn, cluster_error_reply("%s%s%s", why, leader != NULL ? " " : "",
		                                    leader != NULL ? leader : ""));
		return;
	}
	char set[1024];
	c->reset_set = s;
	set_text(&s, set, sizeof(set));
	log_warning("cluster %s: reset-members: %s forces the voting set {%s}: restarting the "
	            "consensus module with it",
	            c->name, peer_addr, set);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	rpc_reply(conn, r);
	arm_reopen(c, CLUSTER_RESET_DELAY_MS);
}

bool cluster_reset_rpc(struct cluster *c, struct rpc_conn *conn, const char *peer_addr,
                       const char *type, const cJSON *msg)
{
	if (strcmp(type, "reset-apply") == 0) {
		on_reset_apply(c, conn, peer_addr, msg);
		return true;
	}
	if (strcmp(type, "reset-probe") != 0)
		return false;
	const char *leader = cluster_leader_address(c);
	cJSON *r;
	if (!c->started || c->reopening || !raftio_configured(&c->rio)) {
		r = cluster_error_reply("%s has no cluster state", c->address);
	} else if (c->resetting || c->reset_armed) {
		r = cluster_error_reply("%s is busy with another reset-members", c->address);
	} else {
		r = cJSON_CreateObject();
		cJSON_AddBoolToObject(r, "ok", true);
		cJSON_AddBoolToObject(r, "leader", leader != NULL);
		cJSON_AddStringToObject(r, "leader_address", leader != NULL ? leader : "");
		cJSON_AddStringToObject(r, "address", c->address);
	}
	log_info("cluster %s: reset-members: %s asks whether this agent runs without a leader: "
	         "%s%s",
	         c->name, peer_addr, leader != NULL ? "no, the leader is " : "yes",
	         leader != NULL ? leader : "");
	rpc_reply(conn, r);
	return true;
}

/* ---- after the reset: the leader drops the members left out ---- */

void cluster_reset_gone(struct cluster *c)
{
	const struct cluster_state *st = &c->rio.st;
	if (c->removing || c->admitting || c->seeding || raftio_change_pending(&c->rio))
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
