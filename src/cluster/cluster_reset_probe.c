/*
 * cluster_reset_probe.c - reset-members, the coordinator's first half: the
 * command's own checks, the probes of the other members of the
 * configuration, and the choice of the new voting set and of its source,
 * the member with the most up-to-date log.  The protocol is described in
 * cluster_reset_coord.c, which sends the steps that follow.
 */
#include "cluster_reset_op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"

/* probes_done checks the answers and either refuses or moves to the apply phase. */
static void probes_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	const char *leader = cluster_leader_address(c);
	size_t alive = 1;
	if (cluster_closing(c)) {
		reset_end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
		return;
	}
	if (leader != NULL) {
		log_warning("cluster %s: reset-members refused: a leader (%s) appeared meanwhile",
		            c->name, leader);
		reset_end_op(
		    op, cluster_error_reply("reset-members refused: this agent found a cluster "
		                            "leader (%s) meanwhile; quorum is not lost",
		                            leader));
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		if (p->ans == ANS_HAS_LEADER) {
			log_warning("cluster %s: reset-members refused: %s still has a leader (%s)",
			            c->name, p->address, p->detail);
			reset_end_op(
			    op,
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
			reset_end_op(op, cluster_error_reply("reset-members refused: member %s: %s",
			                                     p->address, p->detail));
			return;
		}
		if (p->ans == ANS_NO_LEADER && p->configured)
			alive++;
	}
	if (alive * 2 > op->voters) {
		log_warning("cluster %s: reset-members refused: %zu of %zu voting members are "
		            "running, a majority",
		            c->name, alive, op->voters);
		reset_end_op(
		    op, cluster_error_reply(
		            "reset-members refused: %zu of the %zu voting members are running and "
		            "reachable, a majority: they elect a leader by themselves (an election "
		            "is probably in progress); wait a few seconds and check "
		            "cluster-status",
		            alive, op->voters));
		return;
	}
	struct cluster_reset_set *s = &c->reset_set;
	/* The source: the most up-to-date log; this agent's on a tie, it restarts last. */
	uint64_t best_term = raftio_last_term(&c->rio), best_index = raftio_last_index(&c->rio);
	s->n = 0;
	s->source = 0;
	s->id[s->n] = c->id;
	snprintf(s->address[s->n++], CLUSTERFSM_ADDR_MAX, "%s", c->address);
	for (size_t i = 0; i < op->n; i++) {
		const struct reset_peer *p = &op->p[i];
		if (p->ans != ANS_NO_LEADER)
			continue;
		if (p->configured &&
		    cluster_reset_newer(p->last_term, p->last_index, best_term, best_index)) {
			best_term = p->last_term;
			best_index = p->last_index;
			s->source = s->n;
		}
		s->id[s->n] = p->id;
		snprintf(s->address[s->n++], CLUSTERFSM_ADDR_MAX, "%s", p->address);
	}
	char set[1024];
	cluster_reset_set_text(s, set, sizeof(set));
	if (RAND_bytes((unsigned char *)&op->rid, sizeof(op->rid)) != 1 || op->rid == 0) {
		reset_end_op(op,
		             cluster_error_reply("reset-members: no random reset id available"));
		return;
	}
	char rid[32];
	cluster_reset_id_text(op->rid, rid, sizeof(rid));
	log_info("cluster %s: reset-members: %zu of %zu voting members are running, none has a "
	         "leader; the new voting set is {%s} (reset %s); the most up-to-date log is %s's "
	         "(last entry: term %llu, index %llu), the others will take it",
	         c->name, alive, op->voters, set, rid, s->address[s->source],
	         (unsigned long long)best_term, (unsigned long long)best_index);
	reset_send_prepare(op);
}

/* read_u64 reads a whole, non-negative JSON number below 2^53 (exact in a double). */
static bool read_u64(const cJSON *o, const char *key, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble >= 9007199254740992.0 ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return false;
	*out = (uint64_t)v->valuedouble;
	return true;
}

/* read_position reads the log position a probe answer carries; false if malformed. */
static bool read_position(const cJSON *reply, bool *configured, uint64_t *term, uint64_t *index)
{
	const cJSON *conf = cJSON_GetObjectItemCaseSensitive(reply, "configured");
	if (!cJSON_IsBool(conf) || !read_u64(reply, "last_term", term) ||
	    !read_u64(reply, "last_index", index))
		return false;
	*configured = cJSON_IsTrue(conf);
	return true;
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
	} else if (cJSON_IsTrue(ok) && cJSON_IsFalse(has) &&
	           !read_position(reply, &p->configured, &p->last_term, &p->last_index)) {
		p->ans = ANS_REFUSED;
		snprintf(p->detail, sizeof(p->detail),
		         "its answer has no valid log position (an older efm version? upgrade "
		         "it first)");
	} else if (cJSON_IsTrue(ok) && cJSON_IsFalse(has)) {
		p->ans = ANS_NO_LEADER;
		snprintf(p->detail, sizeof(p->detail),
		         p->configured ? "running, no leader, last log entry term %llu index %llu"
		                       : "running, no leader, no log yet (%llu/%llu)",
		         (unsigned long long)p->last_term, (unsigned long long)p->last_index);
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

void cluster_reset_members(struct cluster *c, struct admin_request *req)
{
	log_info("cluster %s: reset-members requested by uid %ld", c->name, (long)req->uid);
	if (!c->started || c->phase == CLUSTER_REOPENING || !raftio_configured(&c->rio) ||
	    !raftio_voter(&c->rio, c->id)) {
		admin_reply_error(req,
		                  "reset-members: this agent (%s) is not a voting member of "
		                  "cluster %s (yet): there is nothing to reset here",
		                  c->address, c->name);
		return;
	}
	if (cluster_in_reset(c)) {
		admin_reply_error(req,
		                  "reset-members: a reset is already in progress on this agent");
		return;
	}
	if (c->phase != CLUSTER_RUNNING) {
		admin_reply_error(req, "reset-members: this agent is busy (%s); try again shortly",
		                  cluster_phase_name(c->phase));
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
	(void)cluster_set_phase(c, CLUSTER_RESETTING);
	log_info("cluster %s: reset-members: no leader; asking the %zu other member(s) of the "
	         "configuration whether they are running and leaderless",
	         c->name, op->n);
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		cJSON *m = reset_msg(c, "reset-probe", 0);
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
