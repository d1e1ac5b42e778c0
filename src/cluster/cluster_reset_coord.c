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
#include "cluster_reset_op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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

/* reset_end_op: op lives on while aborts are in flight, abort_done frees it. */
void reset_end_op(struct reset_op *op, cJSON *reply)
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

cJSON *reset_msg(struct cluster *c, const char *type, uint64_t rid)
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
		reset_end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
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
		reset_end_op(
		    op, cluster_error_reply(
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
	reset_end_op(op, r);
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
	reset_end_op(op,
	             cluster_error_reply(
	                 "reset-members refused: not every participant accepted the new voting "
	                 "set: %s. Nothing was restarted and every agent keeps its configuration; "
	                 "check the cluster with 'efm cluster-status %s' before trying again",
	                 why, c->name));
}

void reset_send_prepare(struct reset_op *op)
{
	send_step(op, RESET_PREPARE);
}
