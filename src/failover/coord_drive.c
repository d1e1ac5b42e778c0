/*
 * coord_drive.c - carrying a committed promotion through its phases:
 *   FENCING        the old master's agent, when alive, releases the VIP
 *                  and fences its database; a silent one has been so for
 *                  longer than its lease, so it has fenced itself;
 *   PROMOTING      the candidate checks the VIP is silent and that it is
 *                  not orphaned, runs script.fence and promotes; then the
 *                  master record names it;
 *   VIP            the candidate takes the VIP, runs script.post.promotion;
 *   RECONFIGURING  the other standbys follow it (auto.reconfigure);
 *   DONE.
 * Each phase is committed before the next begins and every step is
 * idempotent, so a coordinator that takes over re-runs the committed
 * phase's step and goes on.  A promotion is aborted only before the
 * candidate's database was asked to promote.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "dbmon.h"
#include "log.h"

/* Attempts of one step before the promotion is aborted (or, past promotion, moved on). */
#define STEP_ATTEMPTS 3
/* Pause between attempts of a step, ms. */
#define STEP_RETRY_MS 1000

uint64_t fo_step_timeout(const struct failover *fo)
{
	/* a step may run pg_ctl, a user script and pg_promote on the other side */
	return fo_remote_ms(fo) + 60000;
}

/* ---- the lock ---- */

static void on_locked(void *arg, int status, const struct clusterfsm_result *res)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	fo->lock_pending = false;
	if (status != 0 || res->code != CLUSTERFSM_OK) {
		log_warning("failover: the promotion lock for %s was not taken: %s", x->address,
		            status != 0 ? raft_strerror(status) : res->reason);
		fo->state = FO_WATCHING;
		fo_manual_locked(fo, false, status != 0 ? raft_strerror(status) : res->reason);
	} else {
		log_warning("failover: promotion %" PRIu64 " of %s begins",
		            cluster_state(fo->cl)->lock.serial, x->address);
		fo_notify(fo, NOTIFY_PROMOTION_STARTED, x->address, NULL);
		fo_manual_locked(fo, true, "");
	}
	fo_kick(fo);
	free(x);
}

void fo_take_lock(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	struct clusterfsm_cmd cmd;
	struct fo_ctx *x = fo_ctx_new(fo, fo->best.address);
	bool ok = fo_manual_switchover(fo)
	              ? clusterfsm_cmd_switchover_lock(&cmd, fo->best.address, cluster_term(fo->cl),
	                                               st->lock.serial)
	              : clusterfsm_cmd_promotion_lock(&cmd, fo->best.address, cluster_term(fo->cl),
	                                              st->lock.serial);
	if (x == NULL || !ok) {
		free(x);
		fo->state = FO_WATCHING;
		fo_manual_locked(fo, false, "out of memory");
		return;
	}
	fo->lock_pending = true;
	if (cluster_propose(fo->cl, &cmd, on_locked, x) != 0) {
		fo->lock_pending = false;
		fo->state = FO_WATCHING;
		fo_manual_locked(fo, false, "this agent could not propose it");
		free(x);
	}
}

/* ---- phase changes ---- */

static void on_phase(void *arg, int status, const struct clusterfsm_result *res)
{
	struct fo_ctx *x = arg;
	if (!fo_ctx_stale(x)) {
		x->fo->step_busy = false;
		if (status != 0 || res->code == CLUSTERFSM_REJECTED)
			log_warning("failover: phase change not committed: %s",
			            status != 0 ? raft_strerror(status) : res->reason);
		fo_kick(x->fo);
	}
	free(x);
}

static void propose_step(struct failover *fo, const struct clusterfsm_cmd *cmd)
{
	struct fo_ctx *x = fo_ctx_new(fo, NULL);
	if (x == NULL) {
		fo->step_busy = false;
		return;
	}
	if (cluster_propose(fo->cl, cmd, on_phase, x) != 0) {
		free(x);
		fo->step_busy = false;
	}
}

static void advance(struct failover *fo, enum clusterfsm_phase from, enum clusterfsm_phase to)
{
	struct clusterfsm_cmd cmd;
	clusterfsm_cmd_promotion_phase(&cmd, cluster_state(fo->cl)->lock.serial, from, to);
	log_info("failover: promotion %" PRIu64 ": %s -> %s", cluster_state(fo->cl)->lock.serial,
	         clusterfsm_phase_name(from), clusterfsm_phase_name(to));
	propose_step(fo, &cmd);
}

void fo_release(struct failover *fo, bool done, const char *why)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	if (!done && st->lock.switchover && !fo->sw_restarted) {
		fo_switch_abort(fo, why);
		return;
	}
	struct clusterfsm_cmd cmd;
	clusterfsm_cmd_promotion_release(&cmd, st->lock.serial, done);
	if (done) {
		log_warning("failover: promotion %" PRIu64 " of %s done: it is the master",
		            st->lock.serial, st->lock.candidate);
		fo_notify(fo, NOTIFY_FAILOVER_COMPLETED, st->lock.candidate, NULL);
	} else {
		log_severe("failover: promotion %" PRIu64 " of %s aborted: %s", st->lock.serial,
		           st->lock.candidate, why);
		snprintf(fo->aborted, sizeof(fo->aborted),
		         "promotion %" PRIu64 " of %s aborted: %s", st->lock.serial,
		         st->lock.candidate, why);
		fo->aborted_serial = st->lock.serial;
		fo_notify(fo, NOTIFY_PROMOTION_FAILED, st->lock.candidate, why);
	}
	snprintf(fo->decision, sizeof(fo->decision), "promotion %" PRIu64 " of %s %s%s%s",
	         st->lock.serial, st->lock.candidate, done ? "done" : "aborted: ", done ? "" : why,
	         "");
	propose_step(fo, &cmd);
}

/* step_failed counts a failed attempt; true when the step has no attempt left. */
bool fo_step_failed(struct failover *fo, const char *what)
{
	fo->step_busy = false;
	fo->step_retry_at = cluster_clock(fo->cl) + STEP_RETRY_MS;
	log_warning("failover: %s (attempt %d of %d)", what, fo->step_failures + 1, STEP_ATTEMPTS);
	return ++fo->step_failures >= STEP_ATTEMPTS;
}

bool fo_answer_ok(int status, const cJSON *reply)
{
	return status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"));
}

const char *fo_answer_detail(int status, const cJSON *reply)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(reply, "detail");
	if (status != 0)
		return "no answer";
	return cJSON_IsString(d) ? d->valuestring : "";
}

/* send_step sends one request of the current phase; false when it could not be sent. */
bool fo_send_step(struct failover *fo, const char *type, const char *to, rpc_call_cb cb)
{
	cJSON *req = rpc_msg(type);
	struct fo_ctx *x = fo_ctx_new(fo, to);
	if (req == NULL || x == NULL) {
		cJSON_Delete(req);
		free(x);
		return false;
	}
	fo->step_busy = true;
	if (fo_call(fo, to, req, fo_step_timeout(fo), cb, x) != 0) {
		free(x);
		fo->step_busy = false;
		return false;
	}
	return true;
}

/* ---- FENCING ---- */

static void on_demoted(void *arg, int status, const struct clusterfsm_result *res)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (status != 0 || res->code == CLUSTERFSM_REJECTED) {
		fo->step_busy = false;
		log_warning("failover: recording the old master %s as Idle failed: %s", x->address,
		            status != 0 ? raft_strerror(status) : res->reason);
	} else {
		advance(fo, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING);
	}
	free(x);
}

/*
 * fenced moves on once the old master cannot take writes: its member record
 * becomes Idle first (the replicated state admits one Master member, and
 * the candidate reports itself Master as soon as it is promoted).
 */
void fo_fenced(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	const struct clusterfsm_member *old = clusterfsm_member_by_host(st, st->master);
	struct clusterfsm_cmd cmd;
	if (old == NULL || old->role == CLUSTERFSM_IDLE) {
		advance(fo, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING);
		return;
	}
	clusterfsm_cmd_member_update(&cmd, old->id, CLUSTERFSM_IDLE,
	                             cluster_member_alive(fo->cl, old->id) ? CLUSTERFSM_UP
	                                                                   : CLUSTERFSM_DOWN,
	                             CLUSTERFSM_DOWN);
	struct fo_ctx *x = fo_ctx_new(fo, old->address);
	if (x == NULL || cluster_propose(fo->cl, &cmd, on_demoted, x) != 0) {
		free(x);
		fo->step_busy = false;
	}
}

static void on_fenced(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (fo_answer_ok(status, reply)) {
		log_warning("failover: old master %s fenced: %s", x->address,
		            fo_answer_detail(status, reply));
		fo_fenced(fo);
	} else {
		char what[600];
		snprintf(what, sizeof(what), "fencing the old master %s failed: %s", x->address,
		         fo_answer_detail(status, reply));
		if (fo_step_failed(fo, what))
			fo_release(fo, false, what);
	}
	free(x);
}

static void drive_fence(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	const struct clusterfsm_member *old = clusterfsm_member_by_host(st, st->master);
	char a[CLUSTERFSM_HOST_MAX], b[CLUSTERFSM_HOST_MAX];
	fo_host_of(st->master, a, sizeof(a));
	fo_host_of(st->lock.candidate, b, sizeof(b));
	fo->step_busy = true;
	if (st->master[0] == '\0' || strcmp(a, b) == 0) {
		advance(fo, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING);
		return;
	}
	if (old == NULL || !cluster_member_alive(fo->cl, old->id)) {
		uint64_t silent = old != NULL ? cluster_member_silent_ms(fo->cl, old->id) : 0;
		log_warning(
		    "failover: the old master's agent %s has been silent %s%llu ms, longer "
		    "than its %llu ms lease: if it still runs, it has fenced its database",
		    st->master, old == NULL ? "(and removed) for over " : "for ",
		    (unsigned long long)silent,
		    (unsigned long long)failover_isolation_ms(cluster_node_timeout_ms(fo->cl)));
		fo_fenced(fo);
		return;
	}
	log_warning("failover: asking the old master %s to fence its database", st->master);
	if (!fo_send_step(fo, "fo-fence", old->address, on_fenced) &&
	    fo_step_failed(fo, "cannot ask the old master to fence"))
		fo_release(fo, false, "cannot ask the old master to fence");
}

/* ---- PROMOTING ---- */

static void on_master_set(void *arg, int status, const struct clusterfsm_result *res)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (status != 0 || res->code == CLUSTERFSM_REJECTED) {
		fo->step_busy = false;
		log_warning("failover: recording %s as the master failed: %s", x->address,
		            status != 0 ? raft_strerror(status) : res->reason);
	} else {
		advance(fo, CLUSTERFSM_PHASE_PROMOTING, CLUSTERFSM_PHASE_VIP);
	}
	free(x);
}

static void record_new_master(struct failover *fo, const char *address)
{
	struct clusterfsm_cmd cmd;
	struct fo_ctx *y = fo_ctx_new(fo, address);
	if (y == NULL || !clusterfsm_cmd_set_master(&cmd, address) ||
	    cluster_propose(fo->cl, &cmd, on_master_set, y) != 0) {
		free(y);
		fo->step_busy = false;
	}
}

/* on_candidate_db: after a failed or unanswered promote, what the candidate's database is. */
static void on_candidate_db(void *arg, const struct db_probe_result *r)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (r->ok && r->sample.role == DB_ROLE_MASTER) {
		log_warning("failover: %s did not confirm (%s) but its database runs as a master: "
		            "recording it as the master",
		            x->address, x->detail);
		record_new_master(fo, x->address);
	} else {
		char what[900];
		snprintf(what, sizeof(what), "promoting %s failed: %s; its database %s", x->address,
		         x->detail, r->ok ? "is still a standby" : "does not answer");
		/*
		 * Aborting is safe while the database is known not to be a master,
		 * or once it has been out of reach for 2T: a candidate that did
		 * promote is then a master without a lease, which has fenced itself.
		 */
		uint64_t silent = cluster_clock(fo->cl) - fo->step_since_ms;
		bool gone = silent >= 2 * cluster_node_timeout_ms(fo->cl);
		if (fo_step_failed(fo, what) && (r->ok || gone))
			fo_release(fo, false, what);
		else if (fo->step_failures >= STEP_ATTEMPTS)
			fo->step_failures = STEP_ATTEMPTS - 1; /* keep trying: it may yet answer */
	}
	free(x);
}

static void on_promoted(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	const char *detail = fo_answer_detail(status, reply);
	bool promoted =
	    status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "promoted"));
	bool refused =
	    status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "refused"));
	if (promoted) {
		log_warning("failover: %s promoted (%s); recording it as the master", x->address,
		            detail);
		record_new_master(fo, x->address);
	} else if (refused) {
		/* Nothing was promoted: the candidate stopped before asking its database. */
		char what[600];
		snprintf(what, sizeof(what), "%s refused: %s", x->address, detail);
		fo->step_busy = false;
		fo_release(fo, false, what);
	} else {
		/*
		 * No answer, or the promotion failed: the database may have been
		 * asked to promote all the same, so look at it before anything else.
		 */
		struct fo_ctx *y = fo_ctx_new(fo, x->address);
		char host[CLUSTERFSM_HOST_MAX];
		fo_host_of(x->address, host, sizeof(host));
		if (y != NULL)
			snprintf(y->detail, sizeof(y->detail), "%s", detail);
		if (y == NULL ||
		    db_probe(fo->loop, fo->cfg, cluster_db_password(fo->cl), host, fo->cfg->db_port,
		             fo_remote_ms(fo), on_candidate_db, y) != 0) {
			free(y);
			fo->step_busy = false;
		}
	}
	free(x);
}

static void drive_promote(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	log_warning("failover: asking %s to promote its database", st->lock.candidate);
	if (!fo_send_step(fo, "fo-promote", st->lock.candidate, on_promoted) &&
	    fo_step_failed(fo, "cannot ask the candidate to promote"))
		fo_release(fo, false, "cannot ask the candidate to promote");
}

/* ---- VIP ---- */

static void on_vip(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (status == 0 || fo_step_failed(fo, "the new master did not answer the VIP step")) {
		log_info("failover: %s: %s", x->address, fo_answer_detail(status, reply));
		fo->step_busy = true;
		advance(fo, CLUSTERFSM_PHASE_VIP, CLUSTERFSM_PHASE_RECONFIGURING);
	}
	free(x);
}

static void drive_vip(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	if (!fo_send_step(fo, "fo-vip", st->lock.candidate, on_vip) &&
	    fo_step_failed(fo, "cannot ask the new master to take the VIP")) {
		fo->step_busy = true;
		advance(fo, CLUSTERFSM_PHASE_VIP, CLUSTERFSM_PHASE_RECONFIGURING);
	}
}

/* ---- RECONFIGURING ---- */

void fo_follow_end(struct failover *fo)
{
	if (--fo->follow_pending > 0)
		return;
	fo_release(fo, true, "");
}

static void on_followed(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (!fo_answer_ok(status, reply)) {
		log_warning("failover: standby %s did not follow the new master: %s", x->address,
		            fo_answer_detail(status, reply));
		fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, x->address,
		          fo_answer_detail(status, reply));
	} else {
		log_info("failover: standby %s follows the new master (%s)", x->address,
		         fo_answer_detail(status, reply));
	}
	free(x);
	fo_follow_end(fo);
}

static void drive_reconfigure(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	char host[CLUSTERFSM_HOST_MAX], cand[CLUSTERFSM_HOST_MAX];
	fo_host_of(st->lock.candidate, cand, sizeof(cand));
	fo->step_busy = true;
	fo->follow_pending = 1; /* held until every request is sent */
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		fo_host_of(m->address, host, sizeof(host));
		if (m->role != CLUSTERFSM_STANDBY || strcmp(host, cand) == 0)
			continue;
		if (!fo->cfg->auto_reconfigure || !cluster_member_alive(fo->cl, m->id)) {
			fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, m->address,
			          fo->cfg->auto_reconfigure ? "its agent is not running"
			                                    : "auto.reconfigure=false");
			continue;
		}
		cJSON *req = rpc_msg("fo-follow");
		struct fo_ctx *x = fo_ctx_new(fo, m->address);
		if (req == NULL || x == NULL) {
			cJSON_Delete(req);
			free(x);
			continue;
		}
		cJSON_AddStringToObject(req, "host", cand);
		cJSON_AddNumberToObject(req, "port", fo->cfg->db_port);
		fo->follow_pending++;
		log_info("failover: asking standby %s to follow %s", m->address, cand);
		if (fo_call(fo, m->address, req, fo_step_timeout(fo), on_followed, x) != 0) {
			free(x);
			fo->follow_pending--;
			fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, m->address,
			          "cannot reach its agent");
		}
	}
	if (st->lock.switchover)
		fo_switch_rejoin(fo);
	fo_follow_end(fo);
}

void fo_drive(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	const struct clusterfsm_lock *l = &st->lock;
	if (fo->step_busy || cluster_clock(fo->cl) < fo->step_retry_at)
		return;
	if (fo->step_serial != l->serial || fo->step_phase != (int)l->phase) {
		fo->step_serial = l->serial;
		fo->step_phase = (int)l->phase;
		fo->step_failures = 0;
		fo->step_since_ms = cluster_clock(fo->cl);
		fo->sw_final[0] = '\0';
		fo->sw_restarted = fo->sw_restarting = false;
		snprintf(fo->decision, sizeof(fo->decision),
		         "promotion %" PRIu64 " of %s: phase %s", l->serial, l->candidate,
		         clusterfsm_phase_name(l->phase));
	}
	switch (l->phase) {
	case CLUSTERFSM_PHASE_FENCING:
		if (l->switchover)
			fo_switch_fence(fo);
		else
			drive_fence(fo);
		break;
	case CLUSTERFSM_PHASE_PROMOTING:
		drive_promote(fo);
		break;
	case CLUSTERFSM_PHASE_VIP:
		drive_vip(fo);
		break;
	case CLUSTERFSM_PHASE_RECONFIGURING:
		drive_reconfigure(fo);
		break;
	default:
		break;
	}
}
