/*
 * coord.c - the failover coordinator on the Raft leader (failover.h): it
 * gathers the facts of each tick, asks the table in decide.c what to do,
 * logs the decision with its facts, and runs the confirmation and the
 * selection rounds.  Driving a committed promotion through its phases is
 * in coord_drive.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "dbmon.h"
#include "log.h"

struct fo_ctx *fo_ctx_new(struct failover *fo, const char *address)
{
	struct fo_ctx *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return NULL;
	x->fo = fo;
	x->gen = fo->gen;
	snprintf(x->address, sizeof(x->address), "%s", address != NULL ? address : "");
	return x;
}

bool fo_ctx_stale(struct fo_ctx *x)
{
	return x->fo->closed || x->gen != x->fo->gen;
}

int fo_call(struct failover *fo, const char *address, cJSON *msg, uint64_t timeout_ms,
            rpc_call_cb cb, struct fo_ctx *x)
{
	if (strcmp(address, cluster_self_address(fo->cl)) == 0) {
		fo_node_run(fo, msg, cb, x);
		cJSON_Delete(msg);
		return 0;
	}
	return cluster_call(fo->cl, address, msg, timeout_ms, cb, x);
}

uint64_t fo_remote_ms(const struct failover *fo)
{
	return (uint64_t)(fo->cfg->remote_timeout_s > 0 ? fo->cfg->remote_timeout_s : 10) * 1000;
}

void fo_host_of(const char *address, char *host, size_t len)
{
	if (!address_split(address, host, len, NULL))
		snprintf(host, len, "%s", address);
}

void fo_notify(struct failover *fo, enum notify_event ev, const char *node, const char *error)
{
	char host[CLUSTERFSM_HOST_MAX] = "";
	if (node != NULL)
		fo_host_of(node, host, sizeof(host));
	struct notify_args args = {.node = node != NULL ? host : NULL, .error = error};
	if (fo->h.notify != NULL)
		fo->h.notify(fo->h.arg, ev, &args);
}

/*
 * running: the report gives no evidence that the master database is down
 * (UNKNOWN is a busy server or the agent's own trouble) and its agent has
 * not declared it failed (Idle).
 */
static bool running(const struct members_report *r)
{
	return r->db != CLUSTERFSM_DOWN && r->role != CLUSTERFSM_IDLE;
}

/* gather fills the facts of this moment. */
static void gather(struct failover *fo, struct fo_facts *f)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	memset(f, 0, sizeof(*f));
	f->auto_failover = fo->cfg->auto_failover;
	f->lock_active = clusterfsm_promotion_active(st);
	f->lock_aborted = st->lock.phase == CLUSTERFSM_PHASE_ABORTED;
	f->master_recorded = st->master[0] != '\0';
	struct members_report rep;
	if (f->master_recorded) {
		const struct clusterfsm_member *m = clusterfsm_member_by_host(st, st->master);
		f->master_alive = m != NULL && cluster_member_alive(fo->cl, m->id);
		f->master_running =
		    f->master_alive && cluster_member_report(fo->cl, m->id, &rep) && running(&rep);
	} else {
		/* Exactly one member must run a master; two is for the operator to sort out. */
		int claims = 0;
		fo->claimed[0] = '\0';
		for (size_t i = 0; i < st->n_members; i++) {
			const struct clusterfsm_member *m = &st->members[i];
			if (cluster_member_report(fo->cl, m->id, &rep) &&
			    rep.role == CLUSTERFSM_MASTER && running(&rep) && claims++ == 0)
				snprintf(fo->claimed, sizeof(fo->claimed), "%s", m->address);
		}
		f->master_claimed = claims == 1;
		if (claims > 1 && !fo->warned_claims)
			log_severe(
			    "failover: %d members run a master database and none is recorded as "
			    "the master: recording none; stop all but one of them",
			    claims);
		fo->warned_claims = claims > 1;
	}
	f->confirm_done = fo->confirm_done;
	f->reached = fo->reached;
	f->unverified = fo->unverified;
	f->select_done = fo->select_done;
	f->have_candidate = fo->have_best;
	uint64_t every = cluster_node_timeout_ms(fo->cl);
	if (every < fo_remote_ms(fo))
		every = fo_remote_ms(fo);
	f->recheck_due = fo->hold_recheck && cluster_clock(fo->cl) - fo->hold_since_ms >= every;
	fo_manual_facts(fo, f);
}

/* describe writes the facts a decision rests on, for the log and the status. */
static void describe(struct failover *fo, const struct fo_facts *f, char *buf, size_t len)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	int n;
	if (st->master[0] != '\0')
		n = snprintf(buf, len, "master %s: agent %s, database %s", st->master,
		             f->master_alive ? "alive" : "silent",
		             f->master_running ? "running" : "not reported running");
	else
		n = snprintf(buf, len, "no master recorded; %s reports a running master",
		             fo->claimed[0] ? fo->claimed : "no member");
	if (fo->state == FO_CONFIRMING && f->confirm_done && n > 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n,
		              "; reached by %d/%d agents (%d could not tell)", f->reached,
		              fo->answered, f->unverified);
	if (fo->state == FO_SELECTING && f->select_done && n > 0 && (size_t)n < len) {
		if (fo->have_best)
			snprintf(buf + n, len - (size_t)n,
			         "; candidate %s received LSN %s priority %d%s", fo->best.address,
			         fo->best.lsn, fo->best.priority,
			         fo->best.paused ? " (replay paused)" : "");
		else
			snprintf(buf + n, len - (size_t)n, "; no candidate: %s", fo->no_best_why);
	}
}

/* ---- the confirmation round ---- */

static void confirm_answer(struct failover *fo, int status, const cJSON *reply, const char *who)
{
	fo->answered++;
	if (status != 0 || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		fo->unverified++;
		log_warning("failover: %s gave no answer about the master database", who);
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "reached"))) {
		fo->reached++;
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "unverified"))) {
		fo->unverified++;
	}
	if (fo->answered == fo->asked) {
		fo->confirm_done = true;
		fo_kick(fo);
	}
}

static void on_confirm(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	if (!fo_ctx_stale(x))
		confirm_answer(x->fo, status, reply, x->address);
	free(x);
}

static void start_confirm(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	char host[CLUSTERFSM_HOST_MAX];
	fo->gen++;
	fo->asked = fo->answered = fo->reached = fo->unverified = 0;
	fo->confirm_done = false;
	fo_host_of(st->master, host, sizeof(host));
	const struct clusterfsm_member *master = clusterfsm_member_by_host(st, st->master);
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		if ((master != NULL && m->id == master->id) || !cluster_member_alive(fo->cl, m->id))
			continue;
		cJSON *req = rpc_msg("fo-probe");
		struct fo_ctx *x = fo_ctx_new(fo, m->address);
		if (req == NULL || x == NULL) {
			cJSON_Delete(req);
			free(x);
			continue;
		}
		cJSON_AddStringToObject(req, "host", host);
		cJSON_AddNumberToObject(req, "port", fo->cfg->db_port);
		fo->asked++;
		if (fo_call(fo, m->address, req, fo_remote_ms(fo) + 2000, on_confirm, x) != 0) {
			free(x);
			confirm_answer(fo, -1, NULL, m->address);
		}
	}
	if (fo->asked == 0) {
		/* Nobody but the master's own agent could look: that is no confirmation. */
		fo->unverified = 1;
		fo->confirm_done = true;
	}
	log_info("failover: asked %d agent(s) whether they reach the master database at %s:%d",
	         fo->asked, host, fo->cfg->db_port);
}

/* ---- the selection round ---- */

/* better: a beats b (higher received position; then the better priority). */
static bool better(const struct fo_candidate *a, const struct fo_candidate *b)
{
	if (a->lsn_value != b->lsn_value)
		return a->lsn_value > b->lsn_value;
	int pa = a->priority > 0 ? a->priority : CLUSTERFSM_MAX_NODES + 1;
	int pb = b->priority > 0 ? b->priority : CLUSTERFSM_MAX_NODES + 1;
	return pa < pb;
}

static void on_candidate_probe(void *arg, const struct db_probe_result *r)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (!r->ok) {
		log_warning("failover: candidate %s: its database does not answer: %s", x->address,
		            r->error);
	} else if (r->sample.role == DB_ROLE_MASTER) {
		log_severe("failover: the database of %s already runs as a master: no promotion",
		           x->address);
		fo->other_master = true;
		snprintf(fo->no_best_why, sizeof(fo->no_best_why),
		         "the database of %s already runs as a master", x->address);
	} else {
		struct fo_candidate c = {.paused = r->sample.replay_paused};
		snprintf(c.address, sizeof(c.address), "%s", x->address);
		snprintf(c.lsn, sizeof(c.lsn), "%s", db_sample_lsn(&r->sample));
		if (!lsn_parse(c.lsn, &c.lsn_value))
			c.lsn_value = 0;
		c.priority = clusterfsm_priority_of(cluster_state(fo->cl), x->address);
		log_info("failover: candidate %s: received LSN %s, priority %d%s", c.address, c.lsn,
		         c.priority, c.paused ? ", replay paused" : "");
		if (!fo->have_best || better(&c, &fo->best)) {
			fo->best = c;
			fo->have_best = true;
		}
	}
	free(x);
	if (--fo->probes_pending == 0) {
		fo->select_done = true;
		if (fo->other_master)
			fo->have_best = false;
		fo_kick(fo);
	}
}

static void start_select(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	fo->gen++;
	fo->select_done = fo->have_best = fo->other_master = false;
	fo->probes_pending = 1; /* held until every probe is started */
	snprintf(fo->no_best_why, sizeof(fo->no_best_why),
	         "no standby whose agent is up and whose database answers");
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		struct members_report rep;
		if (m->role != CLUSTERFSM_STANDBY || strcmp(m->address, st->master) == 0 ||
		    fo_manual_only(fo, m->address) || !cluster_member_report(fo->cl, m->id, &rep) ||
		    rep.role != CLUSTERFSM_STANDBY || rep.db != CLUSTERFSM_UP)
			continue;
		char host[CLUSTERFSM_HOST_MAX];
		fo_host_of(m->address, host, sizeof(host));
		struct fo_ctx *x = fo_ctx_new(fo, m->address);
		if (x == NULL)
			continue;
		fo->probes_pending++;
		if (db_probe(fo->loop, fo->cfg, cluster_db_password(fo->cl), host, fo->cfg->db_port,
		             fo_remote_ms(fo), on_candidate_probe, x) != 0) {
			fo->probes_pending--;
			free(x);
		}
	}
	if (--fo->probes_pending == 0)
		fo->select_done = true;
}

/* ---- decisions ---- */

static void on_recorded(void *arg, int status, const struct clusterfsm_result *res)
{
	struct fo_ctx *x = arg;
	if (!fo_ctx_stale(x)) {
		x->fo->record_pending = false;
		if (status != 0 || res->code == CLUSTERFSM_REJECTED)
			log_warning("failover: recording %s as the master failed: %s", x->address,
			            status != 0 ? raft_strerror(status) : res->reason);
		else
			log_info("failover: %s recorded as the master", x->address);
		fo_kick(x->fo);
	} else if (!x->fo->closed) {
		x->fo->record_pending = false;
	}
	free(x);
}

static void on_barrier(void *arg, int status, const struct clusterfsm_result *res)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	(void)res;
	if (!fo->closed && fo->barrier_term == x->term) {
		fo->barrier_term = 0;
		if (status == 0 && cluster_term(fo->cl) == x->term) {
			fo->ready_term = x->term;
			log_info("failover: coordinating in term %" PRIu64
			         ": every earlier entry is applied",
			         x->term);
			fo_kick(fo);
		}
	}
	free(x);
}

/* barrier proposes a no-op so that, once it applies, the state holds every earlier entry. */
static void barrier(struct failover *fo, uint64_t term)
{
	struct clusterfsm_cmd cmd;
	struct fo_ctx *x = fo_ctx_new(fo, NULL);
	if (x == NULL || !clusterfsm_cmd_set_master(&cmd, cluster_state(fo->cl)->master)) {
		free(x);
		return;
	}
	x->term = term;
	fo->barrier_term = term;
	if (cluster_propose(fo->cl, &cmd, on_barrier, x) != 0) {
		fo->barrier_term = 0;
		free(x);
	}
}

/* master_declared: the master's agent runs and reports Idle (it declared its database failed). */
static bool master_declared(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	const struct clusterfsm_member *m = clusterfsm_member_by_host(st, st->master);
	struct members_report rep;
	return m != NULL && cluster_member_report(fo->cl, m->id, &rep) &&
	       rep.role == CLUSTERFSM_IDLE;
}

/* hold waits (rechecking later if asked) and notifies ev once per episode (none: COUNT). */
static void hold(struct failover *fo, bool recheck, enum notify_event ev, const char *node)
{
	fo->hold_since_ms = cluster_clock(fo->cl);
	fo->hold_recheck = recheck;
	if (ev == NOTIFY_EVENT_COUNT || fo->hold_notified == (int)ev + 1)
		return;
	fo->hold_notified = (int)ev + 1;
	fo_notify(fo, ev, node, fo->decision);
}

static void act(struct failover *fo, const struct fo_rule *r, const struct fo_facts *f)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	struct clusterfsm_cmd cmd;
	switch (r->action) {
	case FO_A_RECORD_MASTER: {
		struct fo_ctx *x = fo_ctx_new(fo, fo->claimed);
		if (x == NULL || !clusterfsm_cmd_set_master(&cmd, fo->claimed)) {
			free(x);
			return;
		}
		fo->record_pending = true;
		if (cluster_propose(fo->cl, &cmd, on_recorded, x) != 0) {
			fo->record_pending = false;
			free(x);
		}
		return;
	}
	case FO_A_CONFIRM:
		start_confirm(fo);
		return;
	case FO_A_HOLD_REACHABLE:
		/*
		 * The master agent lost but its database up is the guide's "master
		 * agent left"; an agent that declared its reachable database failed
		 * (it went Idle) is "cannot reach its database".  A single failed
		 * check that the others contradict is only logged.
		 */
		if (!f->master_alive)
			hold(fo, true, NOTIFY_CLUSTER_MASTER_LEFT, st->master);
		else if (master_declared(fo))
			hold(fo, true, NOTIFY_MASTER_CANNOT_PING_LOCAL_DB, st->master);
		else
			hold(fo, true, NOTIFY_EVENT_COUNT, st->master);
		return;
	case FO_A_HOLD_UNVERIFIED:
		hold(fo, true, NOTIFY_PROMOTION_REFUSED_MASTER_UNVERIFIED, st->master);
		return;
	case FO_A_HOLD_MANUAL:
		hold(fo, false, NOTIFY_FAILOVER_MANUAL_REQUIRED, st->master);
		return;
	case FO_A_HOLD_NO_CANDIDATE:
		hold(fo, true, NOTIFY_FAILOVER_NO_STANDBY, st->master);
		return;
	case FO_A_SELECT:
		start_select(fo);
		return;
	case FO_A_LOCK:
		fo_take_lock(fo);
		return;
	case FO_A_DRIVE:
		fo_drive(fo);
		return;
	case FO_A_REFUSE:
		/* manual.c answers the operator; in HOLDING wait for the next request */
		if (r->next == FO_HOLDING)
			hold(fo, false, NOTIFY_EVENT_COUNT, st->master);
		return;
	case FO_A_HOLD_ABORTED:
		/* PROMOTION_FAILED was sent with the abort; try again after the recheck interval.
		 */
		hold(fo, true, NOTIFY_EVENT_COUNT, st->master);
		return;
	case FO_A_NONE:
	default:
		return;
	}
}

/* abandon drops every round in flight (their answers come back stale). */
static void abandon(struct failover *fo, const char *why)
{
	if (fo->state != FO_WATCHING)
		log_info("failover: coordinator stops (%s)", why);
	fo->gen++;
	fo->state = FO_WATCHING;
	fo->ready_term = 0;
	fo->barrier_term = 0;
	fo->step_busy = fo->lock_pending = fo->record_pending = false;
	fo->hold_notified = 0;
	fo_watch_forget(fo);
	fo_manual_drop(fo, "this agent stopped leading the cluster; try again");
}

void fo_coord_tick(struct failover *fo)
{
	if (fo->closed)
		return;
	fo_manual_note_master(fo);
	if (!cluster_is_leader(fo->cl)) {
		if (fo->ready_term != 0 || fo->state != FO_WATCHING)
			abandon(fo, "this agent no longer leads the cluster");
		return;
	}
	uint64_t term = cluster_term(fo->cl);
	if (fo->ready_term != term) {
		if (fo->barrier_term != term)
			barrier(fo, term);
		return;
	}
	fo_watch_tick(fo);
	if (fo->lock_pending || fo->record_pending)
		return;
	struct fo_facts f;
	gather(fo, &f);
	enum fo_event ev = fo_event_of(fo->state, &f);
	const struct fo_rule *r = fo_decide(fo->state, ev, &f);
	if (r == NULL)
		return;
	if (!(r->action == FO_A_DRIVE && fo->state == FO_PROMOTING)) {
		char facts[400];
		describe(fo, &f, facts, sizeof(facts));
		if (r->action == FO_A_HOLD_ABORTED && fo->aborted[0] != '\0')
			/* what failed stays in the status, not only in the log */
			snprintf(fo->decision, sizeof(fo->decision), "%s; %s", fo->aborted, r->why);
		else
			snprintf(fo->decision, sizeof(fo->decision), "%s -> %s: %s (%s)",
			         fo_state_name(fo->state), fo_rule_action_name(r->action), r->why,
			         facts);
		if (r->action == FO_A_NONE && r->next == FO_WATCHING)
			log_info("failover: %s", fo->decision);
		else
			log_warning("failover: %s", fo->decision);
	}
	if (r->next == FO_WATCHING)
		fo->hold_notified = 0;
	fo->state = r->next;
	act(fo, r, &f);
	fo_manual_decided(fo, r);
}

const char *fo_decision(struct failover *fo)
{
	const struct clusterfsm_lock *l = &cluster_state(fo->cl)->lock;
	if (l->phase == CLUSTERFSM_PHASE_ABORTED && fo->aborted_serial == l->serial &&
	    fo->aborted[0] != '\0')
		return fo->aborted;
	return fo->decision;
}

void fo_coord_status(struct failover *fo, struct status_model *m)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	struct status_failover *s = &m->failover;
	s->present = true;
	snprintf(s->phase, sizeof(s->phase), "%s", clusterfsm_phase_name(st->lock.phase));
	snprintf(s->candidate, sizeof(s->candidate), "%s", st->lock.candidate);
	s->serial = st->lock.serial;
	snprintf(s->master, sizeof(s->master), "%s", st->master);
	const char *theirs = cluster_leader_decision(fo->cl);
	if (cluster_is_leader(fo->cl))
		snprintf(s->decision, sizeof(s->decision), "%s",
		         fo->decision[0] ? fo_decision(fo) : "none yet");
	else if (theirs[0] != '\0')
		snprintf(s->decision, sizeof(s->decision), "%s (by the leader %s)", theirs,
		         cluster_leader(fo->cl)[0] ? cluster_leader(fo->cl) : "now unknown");
	else
		snprintf(s->decision, sizeof(s->decision), "none from the leader yet");
}
