/*
 * cluster_reset_coord.c - reset-members, the coordinator's side: rebuild
 * the voting set from the agents still running once the cluster has lost
 * its quorum for good.  The participants' side is cluster_reset_part.c.
 *
 * The agent given the command coordinates:
 *  1. it refuses when it has a leader: the quorum is not lost;
 *  2. it probes every other server of its Raft configuration
 *     ("reset-probe", each bounded by CLUSTER_RESET_CALL_MS).  Every agent
 *     that answers must be without a leader as well, or the reset is
 *     refused: an agent that still sees a leader belongs to a live majority,
 *     and rebuilding beside it would make a second cluster.  Each answer
 *     carries the term and index of the agent's last log entry;
 *  3. it refuses when the reachable agents are a majority of the voting
 *     set: those elect a leader by themselves;
 *  4. phase 1, "reset-apply": it proposes the new voting set (exactly the
 *     reachable agents and itself) and its source, the agent whose log is
 *     the most up to date (Raft's comparison: last term, then last index),
 *     under a random 64-bit reset id.  Each participant checks again that
 *     it has no leader and only holds the set as "prepared" for
 *     CLUSTER_RESET_PREPARE_MS: nothing restarts in this phase;
 *  5. only when every participant answered "prepared" does it send phase 2,
 *     "reset-commit" with the same id.  A refusal or a missing answer in
 *     phase 1 makes it send "reset-abort" to the others instead and refuse
 *     the operator: nothing restarts anywhere.  A participant receiving the
 *     commit checks once more for a leader and arms its restart;
 *  6. when the commits are answered (the source's answer is required: the
 *     others are about to give up their logs for its) it answers the
 *     operator and arms its own restart, last.  Right before restarting
 *     (cluster_reopen) every agent checks for a leader one final time and
 *     drops the reset if one appeared.
 * What libraft asks of a recovery is followed: raft_recover runs once, on
 * the source, which forces the configuration {source: voter, the others:
 * standby} on its log and so leads at once.  Every other survivor discards
 * its log but keeps its term and vote (raftio_discard_log) and is sent the
 * source's log by it; it then asks to join and is made a voter again.  Had
 * every survivor forced the set on its own log, each would have appended it
 * at its own last index: survivors of different log lengths would hold
 * different entries at one index, and the shorter one would never apply
 * what only the longer one had.  The leader then commits MEMBER_LEAVE for
 * every member outside the configuration (cluster_reset_gone): the status
 * and the .nodes files drop them.
 *
 * What the guard cannot do: tell a crashed agent from one cut off by a
 * partition, whatever that side's state: a side that has a leader but cannot
 * be reached looks exactly like a dead one to the probes.  The README says
 * so: use the command only when the missing agents are known to be down.
 */
#include "cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"

/* What the probe of a participant found. */
enum reset_answer { ANS_WAITING, ANS_UNREACHABLE, ANS_NO_LEADER, ANS_HAS_LEADER, ANS_REFUSED };

/*
 * The steps sent to the participants after the probes: the prepare, then
 * the commit, or the abort instead of whichever failed.
 */
enum reset_step { RESET_PREPARE, RESET_COMMIT, RESET_ABORT, RESET_STEPS };

/* The answer of a participant to one step. */
enum step_answer { STEP_NONE, STEP_OK, STEP_REFUSED, STEP_SILENT };

struct reset_op;

struct reset_peer {
	struct reset_op *op;
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	enum reset_answer ans;
	bool configured;    /* it has a log (an empty one only takes the source's) */
	uint64_t last_term; /* its last log entry, from the probe */
	uint64_t last_index;
	enum step_answer step[RESET_STEPS];
	char detail[192];
};

struct reset_op {
	struct cluster *c;
	struct admin_request *req; /* NULL once the operator has the answer */
	size_t n;                  /* other servers of the configuration */
	size_t voters;             /* voters of the configuration, this agent included */
	int pending;               /* calls of the probe or of the current step in flight */
	enum reset_step step;      /* the step in flight, once the probes are done */
	uint64_t rid;              /* random id of this reset, carried by every step */
	struct reset_peer p[CLUSTERFSM_MAX_NODES];
};

static void prepare_done(struct reset_op *op);
static void commit_done(struct reset_op *op);
static void abort_done(struct reset_op *op);

/* What differs between the steps; they share everything else. */
static const struct {
	const char *type;                  /* the request */
	const char *noun;                  /* for "cannot send the ..." */
	const char *ok;                    /* logged when the participant did it */
	const char *refused;               /* logged, with its reason, when it refused */
	const char *silent;                /* logged, with the error, when it did not answer */
	void (*done)(struct reset_op *op); /* once every participant answered */
} steps[RESET_STEPS] = {
    [RESET_PREPARE] = {"reset-apply", "proposal", "prepared the new voting set",
                       "refused the new voting set", "did not answer the prepare", prepare_done},
    [RESET_COMMIT] = {"reset-commit", "commit", "committed the new voting set and will restart",
                      "refused the commit", "did not acknowledge the commit", commit_done},
    [RESET_ABORT] = {"reset-abort", "abort", "dropped the reset", "had nothing to abort",
                     "did not acknowledge the abort", abort_done},
};

/*
 * end_op answers the operator (reply ownership taken).  op lives on while
 * aborts are in flight: abort_done frees it.
 */
static void end_op(struct reset_op *op, cJSON *reply)
{
	if (op->c->phase == CLUSTER_RESETTING)
		(void)cluster_set_phase(op->c, CLUSTER_RUNNING);
	admin_reply(op->req, reply);
	op->req = NULL;
	if (op->pending == 0)
		free(op);
}

static void abort_done(struct reset_op *op)
{
	if (op->req == NULL)
		free(op);
}

/* append adds "sep text" to the bounded string out of length len. */
static void append(char *out, size_t len, const char *text)
{
	size_t used = strlen(out);
	if (used + 1 < len)
		snprintf(out + used, len - used, "%s%s", used > 0 ? "; " : "", text);
}

/* reset_msg builds a reset request of type carrying our address and, but for the probe, rid. */
static cJSON *reset_msg(struct cluster *c, const char *type, uint64_t rid)
{
	char id[32];
	cJSON *m = rpc_msg(type);
	if (m == NULL)
		return NULL;
	if (rid != 0) {
		cluster_reset_id_text(rid, id, sizeof(id));
		cJSON_AddStringToObject(m, "reset_id", id);
	}
	cJSON_AddStringToObject(m, "from", c->address);
	return m;
}

/* step_msg builds the request of step; the prepare carries the new voting set. */
static cJSON *step_msg(struct reset_op *op, enum reset_step step)
{
	struct cluster *c = op->c;
	cJSON *m = reset_msg(c, steps[step].type, op->rid);
	if (m == NULL || step != RESET_PREPARE)
		return m;
	cJSON_AddStringToObject(m, "source", c->reset_set.address[c->reset_set.source]);
	cJSON *servers = cJSON_AddArrayToObject(m, "servers");
	for (size_t k = 0; servers != NULL && k < c->reset_set.n; k++) {
		char id[32];
		cJSON *s = cJSON_CreateObject();
		snprintf(id, sizeof(id), "%016llx", (unsigned long long)c->reset_set.id[k]);
		cJSON_AddStringToObject(s, "id", id);
		cJSON_AddStringToObject(s, "address", c->reset_set.address[k]);
		cJSON_AddItemToArray(servers, s);
	}
	if (servers == NULL) {
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

/* on_step_reply records a participant's answer to the step in flight. */
static void on_step_reply(void *arg, int status, const cJSON *reply)
{
	struct reset_peer *p = arg;
	struct reset_op *op = p->op;
	struct cluster *c = op->c;
	enum reset_step step = op->step;
	const cJSON *err = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "error") : NULL;
	if (status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		p->step[step] = STEP_OK;
		log_info("cluster %s: reset-members: %s %s", c->name, p->address, steps[step].ok);
	} else if (status == 0) {
		p->step[step] = STEP_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "%s",
		         cJSON_IsString(err) ? err->valuestring : "no reason given");
		/* An abort refused only means there was nothing left to drop. */
		log_msg(step == RESET_ABORT ? EFM_INFO : EFM_WARNING,
		        "cluster %s: reset-members: %s %s: %s", c->name, p->address,
		        steps[step].refused, p->detail);
	} else {
		/* Whether it did the step is unknown: the reset cannot go on. */
		p->step[step] = STEP_SILENT;
		snprintf(p->detail, sizeof(p->detail), "%s", strerror(-status));
		log_warning("cluster %s: reset-members: %s %s (%s)%s", c->name, p->address,
		            steps[step].silent, p->detail,
		            step == RESET_ABORT ? "; a voting set it prepared expires by itself"
		                                : "");
	}
	if (--op->pending == 0)
		steps[step].done(op);
}

/*
 * send_step sends step to every participant it concerns: the prepare to
 * those the probe found, the commit to those that prepared, the abort to
 * those that accepted or did not answer the step before it.  The step's
 * done function runs once all answered.
 */
static void send_step(struct reset_op *op, enum reset_step step)
{
	struct cluster *c = op->c;
	enum reset_step before = op->step;
	op->step = step;
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		bool concerned = step == RESET_PREPARE ? p->ans == ANS_NO_LEADER
		                 : step == RESET_COMMIT
		                     ? p->step[RESET_PREPARE] == STEP_OK
		                     : p->step[before] == STEP_OK || p->step[before] == STEP_SILENT;
		if (!concerned || cluster_closing(c) || c->rpc == NULL)
			continue;
		if (step == RESET_PREPARE)
			log_info("cluster %s: reset-members: proposing the new voting set to %s "
			         "(phase 1, nothing restarts yet)",
			         c->name, p->address);
		else if (step == RESET_ABORT)
			log_info("cluster %s: reset-members: telling %s to drop the reset", c->name,
			         p->address);
		cJSON *m = step_msg(op, step);
		if (m != NULL &&
		    rpc_call(c->rpc, p->address, m, CLUSTER_RESET_CALL_MS, on_step_reply, p) == 0) {
			op->pending++;
			continue;
		}
		p->step[step] = STEP_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "the %s could not be sent",
		         steps[step].noun);
		log_warning("cluster %s: reset-members: cannot send the %s to %s", c->name,
		            steps[step].noun, p->address);
	}
	if (op->pending == 0)
		steps[step].done(op);
}

/*
 * abort_all tells every participant that may hold the set to drop it.  It
 * returns true when this agent is stopping, after answering the operator;
 * otherwise, when a leader appeared, why is replaced by that reason.
 */
static bool abort_all(struct reset_op *op, const char *leader, char *why, size_t len)
{
	send_step(op, RESET_ABORT);
	if (cluster_closing(op->c)) {
		end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
		return true;
	}
	if (leader != NULL)
		snprintf(why, len, "this agent found a cluster leader (%s) meanwhile", leader);
	return false;
}

/* ---- phase 2, commit ---- */

static void commit_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	char set[1024], gone[1024], refusals[1536] = "", silent[1024] = "";
	size_t used = 0;
	const char *leader = cluster_closing(c) ? NULL : cluster_leader_address(c);
	gone[0] = '\0';
	cluster_reset_set_text(&c->reset_set, set, sizeof(set));
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		char line[512];
		bool source = strcmp(p->address, c->reset_set.address[c->reset_set.source]) == 0;
		if (p->step[RESET_COMMIT] == STEP_REFUSED) {
			snprintf(line, sizeof(line), "%s refused: %s", p->address, p->detail);
			append(refusals, sizeof(refusals), line);
		} else if (p->step[RESET_COMMIT] == STEP_SILENT && source) {
			/* Unknown whether it restarts: the others must not give up their logs. */
			snprintf(
			    line, sizeof(line),
			    "%s, the source whose log the others would take, did not acknowledge "
			    "the commit (%s)",
			    p->address, p->detail);
			append(refusals, sizeof(refusals), line);
		} else if (p->step[RESET_COMMIT] == STEP_SILENT) {
			append(silent, sizeof(silent), p->address);
		}
	}
	if (cluster_closing(c) || leader != NULL || refusals[0] != '\0') {
		/* Those that committed wait CLUSTER_RESET_DELAY_MS: an abort still stops them. */
		if (abort_all(op, leader, refusals, sizeof(refusals)))
			return;
		log_warning("cluster %s: reset-members: aborted in the commit phase (%s); the "
		            "others were told to drop the reset; this agent keeps its "
		            "configuration",
		            c->name, refusals);
		end_op(op,
		       cluster_error_reply(
		           "reset-members aborted in the commit phase: %s. The other members "
		           "were told to drop the reset before restarting; check every agent "
		           "with 'efm cluster-status %s' and its log (a member that missed the "
		           "abort logs 'consensus module restarted') before doing anything else",
		           refusals, c->name));
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
	char msg[3072];
	snprintf(msg, sizeof(msg),
	         "reset-members: the voting set of cluster %s is now {%s} (%zu member(s)); left "
	         "out as unreachable: {%s}. %s, whose log is the most up to date, restarts its "
	         "consensus module with this set and leads; the other survivors take its log and "
	         "become voters again. The leader then removes the members left out from the "
	         "status and the .nodes files. An agent left out that is started again later "
	         "rejoins like a new one (its address must still be in the allowed node list). "
	         "Check the result with 'efm cluster-status %s'.%s%s%s",
	         c->name, set, c->reset_set.n, gone, c->reset_set.address[c->reset_set.source],
	         c->name, silent[0] != '\0' ? " Warning: the commit was not acknowledged by {" : "",
	         silent,
	         silent[0] != '\0' ? "}; if such a member did not restart (see its log), it keeps "
	                             "the old configuration: run reset-members again"
	                           : "");
	log_info("cluster %s: %s", c->name, msg);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddStringToObject(r, "message", msg);
	cJSON_AddItemToObject(r, "members", members);
	cJSON_AddItemToObject(r, "removed", removed);
	/* Last: the participants armed their restart before answering the commit. */
	log_info("cluster %s: reset-members: every participant has the commit; this agent "
	         "restarts last",
	         c->name);
	c->reset_id = op->rid;
	cluster_reset_arm(c, CLUSTER_RESET_DELAY_MS);
	end_op(op, r);
}

/* ---- phase 1, prepare ---- */

static void prepare_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	char why[1536] = "";
	const char *leader = cluster_closing(c) ? NULL : cluster_leader_address(c);
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		char line[512];
		if (p->step[RESET_PREPARE] == STEP_REFUSED)
			snprintf(line, sizeof(line), "member %s refused: %s", p->address,
			         p->detail);
		else if (p->step[RESET_PREPARE] == STEP_SILENT)
			snprintf(line, sizeof(line), "member %s did not answer (%s)", p->address,
			         p->detail);
		else
			continue;
		append(why, sizeof(why), line);
	}
	if (!cluster_closing(c) && leader == NULL && why[0] == '\0') {
		char rid[32];
		cluster_reset_id_text(op->rid, rid, sizeof(rid));
		log_info("cluster %s: reset-members: every participant prepared reset %s; sending "
		         "the commit",
		         c->name, rid);
		send_step(op, RESET_COMMIT);
		return;
	}
	/* One refusal or silence and nobody restarts: tell those that may hold the set. */
	if (abort_all(op, leader, why, sizeof(why)))
		return;
	log_warning("cluster %s: reset-members: aborted before any restart (%s); every agent "
	            "keeps its configuration",
	            c->name, why);
	end_op(op, cluster_error_reply(
	               "reset-members refused: not every participant accepted the new voting "
	               "set: %s. Nothing was restarted and every agent keeps its configuration; "
	               "check the cluster with 'efm cluster-status %s' before trying again",
	               why, c->name));
}

/* ---- the probes ---- */

/* probes_done checks the answers and either refuses or moves to the apply phase. */
static void probes_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	const char *leader = cluster_leader_address(c);
	size_t alive = 1;
	if (cluster_closing(c)) {
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
		if (p->ans == ANS_NO_LEADER && p->configured)
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
		end_op(op, cluster_error_reply("reset-members: no random reset id available"));
		return;
	}
	char rid[32];
	cluster_reset_id_text(op->rid, rid, sizeof(rid));
	log_info("cluster %s: reset-members: %zu of %zu voting members are running, none has a "
	         "leader; the new voting set is {%s} (reset %s); the most up-to-date log is %s's "
	         "(last entry: term %llu, index %llu), the others will take it",
	         c->name, alive, op->voters, set, rid, s->address[s->source],
	         (unsigned long long)best_term, (unsigned long long)best_index);
	send_step(op, RESET_PREPARE);
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
