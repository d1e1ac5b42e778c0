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
 *  4. phase 1, "reset-apply": it proposes the new voting set (exactly the
 *     reachable agents and itself, all voters) under a random 64-bit reset
 *     id.  Each participant checks again that it has no leader and only
 *     holds the set as "prepared" for CLUSTER_RESET_PREPARE_MS: nothing
 *     restarts in this phase;
 *  5. only when every participant answered "prepared" does it send phase 2,
 *     "reset-commit" with the same id.  A refusal or a missing answer in
 *     phase 1 makes it send "reset-abort" to the others instead and refuse
 *     the operator: nothing restarts anywhere.  A participant receiving the
 *     commit checks once more for a leader and arms its restart;
 *  6. when the commits are answered it answers the operator and arms its
 *     own restart, last.  Right before restarting (raft_recover forcing the
 *     set, cluster_reopen) every agent checks for a leader one final time
 *     and drops the reset if one appeared.
 * The survivors then elect a leader, which commits MEMBER_LEAVE for every
 * member outside the voting set (cluster_reset_gone): the status and the
 * .nodes files drop them.
 *
 * What the guard cannot do: tell a crashed agent from one cut off by a
 * partition, whatever that side's state: a side that has a leader but cannot
 * be reached looks exactly like a dead one to the probes.  The README says
 * so: use the command only when the missing agents are known to be down.
 */
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"

enum reset_answer { ANS_WAITING, ANS_UNREACHABLE, ANS_NO_LEADER, ANS_HAS_LEADER, ANS_REFUSED };

/* The answer of a participant to phase 1 (prepare) or phase 2 (commit). */
enum step_answer { STEP_NONE, STEP_OK, STEP_REFUSED, STEP_SILENT };

struct reset_op;

struct reset_peer {
	struct reset_op *op;
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	enum reset_answer ans;
	enum step_answer prep, commit;
	char detail[192];
};

struct reset_op {
	struct cluster *c;
	struct admin_request *req;
	size_t n;      /* other servers of the configuration */
	size_t voters; /* voters of the configuration, this agent included */
	int pending;
	uint64_t rid; /* random id of this reset, carried by both phases */
	struct reset_peer p[CLUSTERFSM_MAX_NODES];
};

/* An abort sent after the operation ended: what its reply callback logs. */
struct reset_abort_call {
	struct cluster *c;
	char address[CLUSTERFSM_ADDR_MAX];
};

/* end_op answers the operator (reply ownership taken) and frees op. */
static void end_op(struct reset_op *op, cJSON *reply)
{
	op->c->resetting = false;
	admin_reply(op->req, reply);
	free(op);
}

/* rid_text formats a reset id for messages and logs. */
static void rid_text(uint64_t rid, char *out, size_t len)
{
	snprintf(out, len, "%016llx", (unsigned long long)rid);
}

/* parse_rid reads the "reset_id" of a message; 0 when missing or malformed. */
static uint64_t parse_rid(const cJSON *msg)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, "reset_id");
	char *end = NULL;
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return 0;
	errno = 0;
	unsigned long long x = strtoull(v->valuestring, &end, 16);
	if (errno != 0 || *end != '\0')
		return 0;
	return (uint64_t)x;
}

/* on_reset_timer restarts raft with c->reset_set, unless a leader appeared since the commit. */
static void on_reset_timer(uv_timer_t *t)
{
	struct cluster *c = t->data;
	char rid[32];
	c->reset_armed = false;
	if (c->shutting)
		return;
	rid_text(c->reset_id, rid, sizeof(rid));
	const char *leader = cluster_leader_address(c);
	if (leader != NULL) {
		log_warning("cluster %s: reset-members: reset %s dropped right before the restart: "
		            "a leader (%s) appeared, so quorum is not lost; this agent keeps its "
		            "configuration",
		            c->name, rid, leader);
		return;
	}
	log_warning("cluster %s: reset-members: reset %s: still no leader, restarting the "
	            "consensus module with the new voting set",
	            c->name, rid);
	cluster_reopen(c);
}

/* on_prepare_expired drops a prepared voting set whose commit never came. */
static void on_prepare_expired(uv_timer_t *t)
{
	struct cluster *c = t->data;
	char rid[32];
	if (!c->reset_prepared)
		return;
	c->reset_prepared = false;
	rid_text(c->reset_id, rid, sizeof(rid));
	log_warning("cluster %s: reset-members: the voting set prepared for reset %s (from %s) "
	            "expired after %d s without a commit: dropped, this agent keeps its "
	            "configuration",
	            c->name, rid, c->reset_from, CLUSTER_RESET_PREPARE_MS / 1000);
}

/* start_reset_timer (re)starts the reset timer with cb after delay_ms. */
static void start_reset_timer(struct cluster *c, uv_timer_cb cb, uint64_t delay_ms)
{
	if (!c->reset_timer_open) {
		uv_timer_init(c->loop, &c->reset_timer);
		c->reset_timer.data = c;
		c->reset_timer_open = true;
	}
	uv_timer_start(&c->reset_timer, cb, delay_ms, 0);
}

/* arm_reopen restarts raft with c->reset_set after delay_ms (lets replies go out first). */
static void arm_reopen(struct cluster *c, uint64_t delay_ms)
{
	c->reset_prepared = false;
	c->reset_armed = true;
	start_reset_timer(c, on_reset_timer, delay_ms);
}

/* disarm drops a prepared or armed reset that has not restarted anything yet. */
static void disarm(struct cluster *c)
{
	c->reset_prepared = false;
	c->reset_armed = false;
	if (c->reset_timer_open)
		uv_timer_stop(&c->reset_timer);
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

/* append adds "sep text" to the bounded string out of length len. */
static void append(char *out, size_t len, const char *text)
{
	size_t used = strlen(out);
	if (used + 1 < len)
		snprintf(out + used, len - used, "%s%s", used > 0 ? "; " : "", text);
}

/* reset_msg builds a reset message of type carrying the reset id and our address. */
static cJSON *reset_msg(struct cluster *c, const char *type, uint64_t rid)
{
	char id[32];
	cJSON *m = rpc_msg(type);
	if (m == NULL)
		return NULL;
	rid_text(rid, id, sizeof(id));
	cJSON_AddStringToObject(m, "reset_id", id);
	cJSON_AddStringToObject(m, "from", c->address);
	return m;
}

/* ---- coordinator: abort (best effort) ---- */

static void on_abort_reply(void *arg, int status, const cJSON *reply)
{
	struct reset_abort_call *a = arg;
	const cJSON *err = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "error") : NULL;
	if (status != 0)
		log_warning("cluster %s: reset-members: %s did not acknowledge the abort (%s); a "
		            "voting set it prepared expires by itself",
		            a->c->name, a->address, strerror(-status));
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
		log_info("cluster %s: reset-members: %s dropped the reset", a->c->name, a->address);
	else
		log_info("cluster %s: reset-members: %s had nothing to abort: %s", a->c->name,
		         a->address, cJSON_IsString(err) ? err->valuestring : "no reason given");
	free(a);
}

/* send_abort tells address to drop the reset rid (best effort; the answer is only logged). */
static void send_abort(struct cluster *c, const char *address, uint64_t rid)
{
	struct reset_abort_call *a;
	cJSON *m;
	if (c->shutting || c->rpc == NULL)
		return;
	a = calloc(1, sizeof(*a));
	m = a != NULL ? reset_msg(c, "reset-abort", rid) : NULL;
	if (m == NULL) {
		free(a);
		return;
	}
	a->c = c;
	snprintf(a->address, sizeof(a->address), "%s", address);
	log_info("cluster %s: reset-members: telling %s to drop the reset", c->name, address);
	if (rpc_call(c->rpc, address, m, CLUSTER_RESET_CALL_MS, on_abort_reply, a) != 0) {
		log_warning("cluster %s: reset-members: cannot send the abort to %s", c->name,
		            address);
		free(a);
	}
}

/* ---- coordinator: phase 2, commit ---- */

static void commit_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	char set[1024], gone[1024], refusals[1536] = "", silent[1024] = "";
	size_t used = 0;
	const char *leader = c->shutting ? NULL : cluster_leader_address(c);
	gone[0] = '\0';
	set_text(&c->reset_set, set, sizeof(set));
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		char line[512];
		if (p->commit == STEP_REFUSED) {
			snprintf(line, sizeof(line), "%s refused: %s", p->address, p->detail);
			append(refusals, sizeof(refusals), line);
		} else if (p->commit == STEP_SILENT) {
			append(silent, sizeof(silent), p->address);
		}
	}
	if (c->shutting || leader != NULL || refusals[0] != '\0') {
		/* Those that committed wait CLUSTER_RESET_DELAY_MS: an abort now still stops them.
		 */
		for (size_t i = 0; i < op->n; i++)
			if (op->p[i].commit == STEP_OK || op->p[i].commit == STEP_SILENT)
				send_abort(c, op->p[i].address, op->rid);
		if (c->shutting) {
			end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
			return;
		}
		if (leader != NULL)
			snprintf(refusals, sizeof(refusals),
			         "this agent found a cluster leader (%s) meanwhile", leader);
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
	         "out as unreachable: {%s}. The survivors restart their consensus module with this "
	         "set and elect a leader, which then removes the members left out from the status "
	         "and the .nodes files. An agent left out that is started again later rejoins like "
	         "a new one (its address must still be in the allowed node list). Check the result "
	         "with 'efm cluster-status %s'.%s%s%s",
	         c->name, set, c->reset_set.n, gone, c->name,
	         silent[0] != '\0' ? " Warning: the commit was not acknowledged by {" : "", silent,
	         silent[0] != '\0' ? "}; if such a member did not restart (see its log), it keeps "
	                             "the old configuration: run reset-members again"
	                           : "");
	log_info("cluster %s: %s", c->name, msg);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddStringToObject(r, "message", msg);
	cJSON_AddItemToObject(r, "members", members);
	cJSON_AddItemToObject(r, "removed", removed);
	c->reset_id = op->rid;
	end_op(op, r);
	/* Last: the participants armed their restart before answering the commit. */
	log_info("cluster %s: reset-members: every participant has the commit; this agent "
	         "restarts last",
	         c->name);
	arm_reopen(c, CLUSTER_RESET_DELAY_MS);
}

static void on_commit_reply(void *arg, int status, const cJSON *reply)
{
	struct reset_peer *p = arg;
	struct reset_op *op = p->op;
	struct cluster *c = op->c;
	op->pending--;
	const cJSON *err = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "error") : NULL;
	if (status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		p->commit = STEP_OK;
		log_info("cluster %s: reset-members: %s committed the new voting set and will "
		         "restart",
		         c->name, p->address);
	} else if (status == 0) {
		p->commit = STEP_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "%s",
		         cJSON_IsString(err) ? err->valuestring : "no reason given");
		log_warning("cluster %s: reset-members: %s refused the commit: %s", c->name,
		            p->address, p->detail);
	} else {
		p->commit = STEP_SILENT;
		log_warning("cluster %s: reset-members: %s did not acknowledge the commit (%s)",
		            c->name, p->address, strerror(-status));
	}
	if (op->pending == 0)
		commit_done(op);
}

/* send_commit sends phase 2 to every participant, all of which prepared. */
static void send_commit(struct reset_op *op)
{
	struct cluster *c = op->c;
	char rid[32];
	rid_text(op->rid, rid, sizeof(rid));
	log_info("cluster %s: reset-members: every participant prepared reset %s; sending the "
	         "commit",
	         c->name, rid);
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		if (p->prep != STEP_OK)
			continue;
		cJSON *m = reset_msg(c, "reset-commit", op->rid);
		if (m != NULL && rpc_call(c->rpc, p->address, m, CLUSTER_RESET_CALL_MS,
		                          on_commit_reply, p) == 0) {
			op->pending++;
			continue;
		}
		p->commit = STEP_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "the commit could not be sent");
		log_warning("cluster %s: reset-members: cannot send the commit to %s", c->name,
		            p->address);
	}
	if (op->pending == 0)
		commit_done(op);
}

/* ---- coordinator: phase 1, prepare ---- */

static void prepare_done(struct reset_op *op)
{
	struct cluster *c = op->c;
	char why[1536] = "";
	const char *leader = c->shutting ? NULL : cluster_leader_address(c);
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		char line[512];
		if (p->prep == STEP_REFUSED)
			snprintf(line, sizeof(line), "member %s refused: %s", p->address,
			         p->detail);
		else if (p->prep == STEP_SILENT)
			snprintf(line, sizeof(line), "member %s did not answer (%s)", p->address,
			         p->detail);
		else
			continue;
		append(why, sizeof(why), line);
	}
	if (!c->shutting && leader == NULL && why[0] == '\0') {
		send_commit(op);
		return;
	}
	/* One refusal or silence and nobody restarts: tell those that may hold the set. */
	for (size_t i = 0; i < op->n; i++)
		if (op->p[i].prep == STEP_OK || op->p[i].prep == STEP_SILENT)
			send_abort(c, op->p[i].address, op->rid);
	if (c->shutting) {
		end_op(op, cluster_error_reply("reset-members: this agent is stopping"));
		return;
	}
	if (leader != NULL)
		snprintf(why, sizeof(why), "this agent found a cluster leader (%s) meanwhile",
		         leader);
	log_warning("cluster %s: reset-members: aborted before any restart (%s); every agent "
	            "keeps its configuration",
	            c->name, why);
	end_op(op, cluster_error_reply(
	               "reset-members refused: not every participant accepted the new voting "
	               "set: %s. Nothing was restarted and every agent keeps its configuration; "
	               "check the cluster with 'efm cluster-status %s' before trying again",
	               why, c->name));
}

static void on_prepare_reply(void *arg, int status, const cJSON *reply)
{
	struct reset_peer *p = arg;
	struct reset_op *op = p->op;
	struct cluster *c = op->c;
	op->pending--;
	const cJSON *err = reply != NULL ? cJSON_GetObjectItemCaseSensitive(reply, "error") : NULL;
	if (status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		p->prep = STEP_OK;
		log_info("cluster %s: reset-members: %s prepared the new voting set", c->name,
		         p->address);
	} else if (status == 0) {
		p->prep = STEP_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "%s",
		         cJSON_IsString(err) ? err->valuestring : "no reason given");
		log_warning("cluster %s: reset-members: %s refused the new voting set: %s", c->name,
		            p->address, p->detail);
	} else {
		/* Whether it prepared is unknown: the reset cannot go on. */
		p->prep = STEP_SILENT;
		snprintf(p->detail, sizeof(p->detail), "%s", strerror(-status));
		log_warning("cluster %s: reset-members: %s did not answer the prepare (%s)",
		            c->name, p->address, p->detail);
	}
	if (op->pending == 0)
		prepare_done(op);
}

/* send_prepare proposes the new voting set to every reachable member (phase 1). */
static void send_prepare(struct reset_op *op)
{
	struct cluster *c = op->c;
	for (size_t i = 0; i < op->n; i++) {
		struct reset_peer *p = &op->p[i];
		if (p->ans != ANS_NO_LEADER)
			continue;
		cJSON *m = reset_msg(c, "reset-apply", op->rid);
		cJSON *servers = cJSON_CreateArray();
		if (m == NULL || servers == NULL) {
			cJSON_Delete(m);
			cJSON_Delete(servers);
			p->prep = STEP_REFUSED;
			snprintf(p->detail, sizeof(p->detail), "out of memory");
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
		log_info("cluster %s: reset-members: proposing the new voting set to %s (phase 1, "
		         "nothing restarts yet)",
		         c->name, p->address);
		if (rpc_call(c->rpc, p->address, m, CLUSTER_RESET_CALL_MS, on_prepare_reply, p) ==
		    0) {
			op->pending++;
			continue;
		}
		p->prep = STEP_REFUSED;
		snprintf(p->detail, sizeof(p->detail), "the proposal could not be sent");
		log_warning("cluster %s: reset-members: cannot reach %s to propose the reset",
		            c->name, p->address);
	}
	if (op->pending == 0)
		prepare_done(op);
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
	if (RAND_bytes((unsigned char *)&op->rid, sizeof(op->rid)) != 1 || op->rid == 0) {
		end_op(op, cluster_error_reply("reset-members: no random reset id available"));
		return;
	}
	char rid[32];
	rid_text(op->rid, rid, sizeof(rid));
	log_info("cluster %s: reset-members: %zu of %zu voting members are running, none has a "
	         "leader; the new voting set is {%s} (reset %s)",
	         c->name, alive, op->voters, set, rid);
	send_prepare(op);
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

void cluster_reset_members(struct cluster *c, struct admin_request *req)
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
	if (c->resetting || c->reset_prepared || c->reset_armed) {
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

/* on_reset_apply is phase 1: validate the proposed set and hold it, restarting nothing. */
void cluster_rpc_reset_apply(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg)
{
	(void)peer_id;
	struct cluster_reset_set s;
	const char *leader = cluster_leader_address(c);
	uint64_t rid = parse_rid(msg);
	bool self = false;
	if (rid == 0 || !parse_set(msg, &s)) {
		log_warning("cluster %s: reset-members: malformed reset proposal from %s", c->name,
		            peer_addr);
		rpc_reply(conn, cluster_error_reply("malformed reset proposal"));
		return;
	}
	for (size_t i = 0; i < s.n; i++)
		self = self || s.id[i] == c->id;
	if (leader != NULL || !self || c->resetting || c->reset_prepared || c->reset_armed ||
	    c->reopening || !c->started || c->shutting) {
		const char *why = leader != NULL ? "this agent has a cluster leader"
		                  : !self        ? "this agent is not in the new voting set"
		                  : !c->started  ? "this agent has no cluster state"
		                  : c->shutting  ? "this agent is stopping"
		                                 : "this agent is busy with another reset";
		log_warning(
		    "cluster %s: reset-members: refusing the new voting set from %s: %s%s%s",
		    c->name, peer_addr, why, leader != NULL ? " " : "",
		    leader != NULL ? leader : "");
		rpc_reply(conn, cluster_error_reply("%s%s%s", why, leader != NULL ? " " : "",
		                                    leader != NULL ? leader : ""));
		return;
	}
	char set[1024], rtext[32];
	c->reset_set = s;
	c->reset_id = rid;
	snprintf(c->reset_from, sizeof(c->reset_from), "%s", peer_addr);
	c->reset_prepared = true;
	start_reset_timer(c, on_prepare_expired, CLUSTER_RESET_PREPARE_MS);
	set_text(&s, set, sizeof(set));
	rid_text(rid, rtext, sizeof(rtext));
	log_warning("cluster %s: reset-members: %s proposes the voting set {%s} (reset %s): "
	            "prepared, waiting %d s for its commit; nothing restarts before it",
	            c->name, peer_addr, set, rtext, CLUSTER_RESET_PREPARE_MS / 1000);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddBoolToObject(r, "prepared", true);
	rpc_reply(conn, r);
}

/* matches: the message names the reset this agent prepared (or armed), from its coordinator. */
static bool matches(const struct cluster *c, const char *peer_addr, uint64_t rid)
{
	return rid != 0 && rid == c->reset_id && strcmp(peer_addr, c->reset_from) == 0;
}

/* on_reset_commit is phase 2: check once more for a leader, then arm the restart. */
void cluster_rpc_reset_commit(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                              const char *peer_addr, const cJSON *msg)
{
	(void)peer_id;
	uint64_t rid = parse_rid(msg);
	char rtext[32], set[1024];
	const char *leader = cluster_leader_address(c);
	rid_text(rid, rtext, sizeof(rtext));
	if (!c->reset_prepared || !matches(c, peer_addr, rid)) {
		log_warning("cluster %s: reset-members: commit of reset %s from %s refused: this "
		            "agent holds no such prepared reset (expired or aborted?)",
		            c->name, rtext, peer_addr);
		rpc_reply(conn, cluster_error_reply("no prepared reset %s from %s here (expired?)",
		                                    rtext, peer_addr));
		return;
	}
	if (leader != NULL || c->reopening || c->shutting || !c->started) {
		disarm(c);
		const char *why =
		    leader != NULL ? "this agent found a cluster leader" : "this agent is stopping";
		log_warning(
		    "cluster %s: reset-members: commit of reset %s from %s refused: %s%s%s; "
		    "the prepared set is dropped and this agent keeps its configuration",
		    c->name, rtext, peer_addr, why, leader != NULL ? " " : "",
		    leader != NULL ? leader : "");
		rpc_reply(conn, cluster_error_reply("%s%s%s", why, leader != NULL ? " " : "",
		                                    leader != NULL ? leader : ""));
		return;
	}
	set_text(&c->reset_set, set, sizeof(set));
	log_warning("cluster %s: reset-members: %s commits reset %s, which forces the voting set "
	            "{%s}: restarting the consensus module in %d ms unless a leader appears or "
	            "the reset is aborted",
	            c->name, peer_addr, rtext, set, CLUSTER_RESET_DELAY_MS);
	arm_reopen(c, CLUSTER_RESET_DELAY_MS);
	rpc_reply(conn, cluster_ok_reply());
}

/* on_reset_abort drops the prepared or armed (not yet restarted) reset named by the message. */
void cluster_rpc_reset_abort(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg)
{
	(void)peer_id;
	uint64_t rid = parse_rid(msg);
	char rtext[32];
	rid_text(rid, rtext, sizeof(rtext));
	if ((!c->reset_prepared && !c->reset_armed) || !matches(c, peer_addr, rid)) {
		log_info("cluster %s: reset-members: %s aborts reset %s, which this agent does not "
		         "hold: nothing to do",
		         c->name, peer_addr, rtext);
		rpc_reply(conn, cluster_error_reply("no pending reset %s here", rtext));
		return;
	}
	disarm(c);
	log_warning("cluster %s: reset-members: %s aborted reset %s: dropped, this agent keeps "
	            "its configuration",
	            c->name, peer_addr, rtext);
	rpc_reply(conn, cluster_ok_reply());
}

void cluster_rpc_reset_probe(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg)
{
	(void)peer_id;
	(void)msg;
	const char *leader = cluster_leader_address(c);
	cJSON *r;
	if (!c->started || c->reopening || !raftio_configured(&c->rio)) {
		r = cluster_error_reply("%s has no cluster state", c->address);
	} else if (c->resetting || c->reset_prepared || c->reset_armed) {
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
}
