/*
 * coord_switch.c - the phases of a planned switchover (efm promote
 * -switchover) that differ from a failover's; the others are coord_drive.c's.
 *
 *   FENCING        the master's agent releases the VIP and stops its database
 *                  cleanly (-m fast: the server sends its standbys every byte
 *                  before it exits) and answers the final checkpoint's
 *                  position; the candidate's database is then probed until
 *                  it has received past that position.  Only then is the old
 *                  master recorded Idle and PROMOTING begins, so no
 *                  acknowledged write is left behind;
 *   PROMOTING, VIP as for a failover;
 *   RECONFIGURING  the other standbys follow, and the old master (lock.from)
 *                  starts as a standby of the new one, its primary_conninfo
 *                  taken from the new master's own when it has none;
 *   ABORTED        (before the candidate was asked to promote) the old
 *                  master is started again as it was, then the lock released.
 * Each step is idempotent, as a new leader re-runs the committed phase's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "dbmon.h"
#include "log.h"

/* Pause between two probes of the candidate's received position. */
#define CATCHUP_POLL_MS 200

static const struct clusterfsm_member *old_master(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	return clusterfsm_member_by_host(st, st->lock.from);
}

/* retry_or_abort counts a failed attempt of FENCING and aborts after the last. */
static void retry_or_abort(struct failover *fo, const char *what)
{
	if (fo_step_failed(fo, what))
		fo_release(fo, false, what);
}

/* ---- FENCING: the clean stop, then the candidate's catch-up ---- */

static void on_caught_up(void *arg, const struct db_probe_result *r)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	free(x);
	uint64_t have = 0;
	const char *lsn = r->ok ? db_sample_lsn(&r->sample) : "";
	if (r->ok && lsn_parse(lsn, &have) && have > fo->sw_final_value) {
		log_warning("failover: switchover: the candidate received WAL up to %s, past the "
		            "old master's final checkpoint %s",
		            lsn, fo->sw_final);
		fo_fenced(fo);
		return;
	}
	if (cluster_clock(fo->cl) - fo->step_since_ms > fo_step_timeout(fo)) {
		char what[300];
		snprintf(
		    what, sizeof(what),
		    "the candidate did not receive the old master's final checkpoint %s in time "
		    "(it has %s)",
		    fo->sw_final, r->ok ? lsn : r->error);
		fo->step_busy = false; /* the wait was the retries: abort now */
		fo_release(fo, false, what);
		return;
	}
	fo->step_busy = false;
	fo->step_retry_at = cluster_clock(fo->cl) + CATCHUP_POLL_MS;
}

static void probe_candidate(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	char host[CLUSTERFSM_HOST_MAX];
	fo_host_of(st->lock.candidate, host, sizeof(host));
	struct fo_ctx *x = fo_ctx_new(fo, st->lock.candidate);
	fo->step_busy = true;
	if (x == NULL || db_probe(fo->loop, fo->cfg, cluster_db_password(fo->cl), host,
	                          fo->cfg->db_port, fo_remote_ms(fo), on_caught_up, x) != 0) {
		free(x);
		fo->step_busy = false;
	}
}

static void on_stopped(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	const cJSON *lsn = cJSON_GetObjectItemCaseSensitive(reply, "lsn");
	if (fo_answer_ok(status, reply) && cJSON_IsString(lsn) &&
	    lsn_parse(lsn->valuestring, &fo->sw_final_value)) {
		snprintf(fo->sw_final, sizeof(fo->sw_final), "%s", lsn->valuestring);
		log_warning("failover: switchover: the master %s stopped cleanly at %s (%s)",
		            x->address, fo->sw_final, fo_answer_detail(status, reply));
		probe_candidate(fo);
	} else {
		char what[700];
		snprintf(what, sizeof(what), "stopping the master %s cleanly failed: %s",
		         x->address, fo_answer_detail(status, reply));
		retry_or_abort(fo, what);
	}
	free(x);
}

void fo_switch_fence(struct failover *fo)
{
	const struct clusterfsm_member *old = old_master(fo);
	if (fo->sw_final[0] != '\0') {
		probe_candidate(fo);
		return;
	}
	if (old == NULL || !cluster_member_alive(fo->cl, old->id)) {
		fo->step_busy = true;
		retry_or_abort(fo, "the master's agent is not running: a switchover needs it to "
		                   "stop its database cleanly");
		return;
	}
	log_warning("failover: switchover: asking the master %s to stop its database cleanly",
	            old->address);
	if (!fo_send_step(fo, "fo-stop", old->address, on_stopped)) {
		fo->step_busy = true;
		retry_or_abort(fo, "cannot ask the master to stop");
	}
}

/* ---- ABORTED: the old master runs again ---- */

static void on_restarted(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	char why[900];
	if (fo_answer_ok(status, reply)) {
		log_warning("failover: switchover aborted: %s runs as the master again (%s)",
		            x->address, fo_answer_detail(status, reply));
		snprintf(why, sizeof(why), "%s; the old master %s runs again", x->detail,
		         x->address);
	} else {
		log_severe("failover: switchover aborted, and starting the old master %s again "
		           "failed: %s",
		           x->address, fo_answer_detail(status, reply));
		snprintf(why, sizeof(why), "%s; starting the old master %s again failed: %s",
		         x->detail, x->address, fo_answer_detail(status, reply));
	}
	fo->sw_restarting = false;
	fo->sw_restarted = true;
	fo_release(fo, false, why);
	free(x);
}

void fo_switch_abort(struct failover *fo, const char *why)
{
	const struct clusterfsm_member *old = old_master(fo);
	if (fo->sw_restarting)
		return;
	struct fo_ctx *x = old != NULL ? fo_ctx_new(fo, old->address) : NULL;
	cJSON *req = rpc_msg("fo-restart");
	if (x != NULL)
		snprintf(x->detail, sizeof(x->detail), "%s", why);
	fo->step_busy = true;
	fo->sw_restarting = true;
	log_warning("failover: switchover failed (%s): starting the old master %s again", why,
	            old != NULL ? old->address : "(no longer a member)");
	if (x == NULL || req == NULL ||
	    fo_call(fo, old->address, req, fo_step_timeout(fo), on_restarted, x) != 0) {
		if (x == NULL || req == NULL)
			cJSON_Delete(req);
		free(x);
		fo->sw_restarting = false;
		fo->sw_restarted = true;
		fo_release(fo, false, why);
	}
}

/* ---- RECONFIGURING: the old master follows ---- */

static void on_rejoined(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	if (fo_answer_ok(status, reply)) {
		log_warning("failover: switchover: the old master %s runs as a standby of the new "
		            "master (%s)",
		            x->address, fo_answer_detail(status, reply));
	} else {
		log_severe(
		    "failover: switchover: the old master %s did not come back as a standby: "
		    "%s",
		    x->address, fo_answer_detail(status, reply));
		fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, x->address,
		          fo_answer_detail(status, reply));
	}
	free(x);
	fo_follow_end(fo);
}

static void on_conninfo(void *arg, int status, const cJSON *reply)
{
	struct fo_ctx *x = arg;
	struct failover *fo = x->fo;
	if (fo_ctx_stale(x)) {
		free(x);
		return;
	}
	const struct cluster_state *st = cluster_state(fo->cl);
	const struct clusterfsm_member *old = old_master(fo);
	const cJSON *ci = cJSON_GetObjectItemCaseSensitive(reply, "conninfo");
	char host[CLUSTERFSM_HOST_MAX];
	fo_host_of(st->lock.candidate, host, sizeof(host));
	cJSON *req = rpc_msg("fo-rejoin");
	struct fo_ctx *y = old != NULL ? fo_ctx_new(fo, old->address) : NULL;
	free(x);
	if (!fo_answer_ok(status, reply) || !cJSON_IsString(ci))
		log_warning("failover: switchover: the new master's primary_conninfo is unknown "
		            "(%s): the old master keeps its own",
		            fo_answer_detail(status, reply));
	if (req == NULL || y == NULL) {
		cJSON_Delete(req);
		free(y);
		fo_follow_end(fo);
		return;
	}
	cJSON_AddStringToObject(req, "host", host);
	cJSON_AddNumberToObject(req, "port", fo->cfg->db_port);
	cJSON_AddStringToObject(req, "conninfo", cJSON_IsString(ci) ? ci->valuestring : "");
	log_info("failover: switchover: asking the old master %s to follow %s", old->address, host);
	if (fo_call(fo, old->address, req, fo_step_timeout(fo), on_rejoined, y) != 0) {
		free(y);
		fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, old->address,
		          "cannot reach its agent");
		fo_follow_end(fo);
	}
}

void fo_switch_rejoin(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	const struct clusterfsm_member *old = old_master(fo);
	if (old == NULL || !cluster_member_alive(fo->cl, old->id)) {
		fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, st->lock.from,
		          "its agent is not running: restart it as a standby by hand");
		return;
	}
	cJSON *req = rpc_msg("fo-conninfo");
	struct fo_ctx *x = fo_ctx_new(fo, st->lock.candidate);
	if (req == NULL || x == NULL) {
		cJSON_Delete(req);
		free(x);
		return;
	}
	fo->follow_pending++;
	if (fo_call(fo, st->lock.candidate, req, fo_step_timeout(fo), on_conninfo, x) != 0) {
		free(x);
		fo->follow_pending--;
		fo_notify(fo, NOTIFY_STANDBY_NOT_RECONFIGURED, old->address,
		          "cannot ask the new master for its primary_conninfo");
	}
}
