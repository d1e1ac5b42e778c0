/*
 * node.c - the failover engine's side on every node (failover.h): the
 * coordinator's requests carried out on this node's database, and the
 * safety rule's self-fencing of an isolated master.
 *
 * Requests (all idempotent; the coordinator may send one again after a
 * lost answer or a leader change):
 *   fo-probe   {host, port}  can this agent reach that database?
 *   fo-fence   {}            release the VIP, stop the local database, leave
 *                            standby.signal; the agent goes Idle
 *   fo-promote {}            check the VIP is silent and this node is not
 *                            orphaned, run script.fence, promote the local
 *                            standby (already a master: done)
 *   fo-vip     {}            assign the VIP, run script.post.promotion
 *   fo-follow  {host, port}  re-point the local standby at a new master
 * A switchover's own requests are in node_switch.c.
 * Each answers {"ok": bool, "detail": text, ...}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "dbmon.h"
#include "failover.h"
#include "fo_local.h"
#include "log.h"

enum job_kind {
	JOB_PROBE,
	JOB_FENCE,
	JOB_PROMOTE,
	JOB_VIP,
	JOB_FOLLOW,
	JOB_SELF_FENCE, /* the safety rule, nobody to answer */
	JOB_START_VIP,  /* a master agent takes the VIP, nobody to answer */
};

/* One request (or self-fence) in progress on this node. */
struct job {
	struct failover *fo;
	enum job_kind kind;
	int step;
	struct rpc_conn *conn; /* a peer's request, or NULL */
	rpc_call_cb reply;     /* our own coordinator's request, or NULL */
	void *reply_arg;
	char host[CLUSTERFSM_HOST_MAX];
	int port;
	bool promoted;
	bool refused;
	char detail[512];
	const char *why;       /* self-fence: the reason, for the log */
	struct fo_action *act; /* the local action of the current step */
	/*
	 * The same request again while this one runs (a new coordinator
	 * resuming, a retry after a lost answer) waits for this one's answer
	 * instead of running the steps a second time.
	 */
	struct {
		struct rpc_conn *conn;
		rpc_call_cb reply;
		void *reply_arg;
	} waiters[4];
	size_t n_waiters;
};

/* joinable: the kinds a repeated request joins instead of running again. */
static bool joinable(enum job_kind k)
{
	return k == JOB_FENCE || k == JOB_PROMOTE || k == JOB_VIP;
}

static void answer(struct rpc_conn *conn, rpc_call_cb reply, void *reply_arg, const cJSON *ans)
{
	if (conn != NULL) {
		rpc_reply_release(conn, cJSON_Duplicate(ans, true));
	} else if (reply != NULL) {
		reply(reply_arg, 0, ans);
	}
}

static void step(void *arg, bool ok, const char *detail);

static const char *self_addr(const struct failover *fo)
{
	return fo->cfg->bind.host;
}

static void notify(struct failover *fo, enum notify_event ev, const char *node, const char *error)
{
	struct notify_args args = {.node = node != NULL ? node : self_addr(fo), .error = error};
	if (fo->h.notify != NULL)
		fo->h.notify(fo->h.arg, ev, &args);
}

/* finish answers the request and frees the job. */
static void finish(struct job *j, bool ok)
{
	cJSON *ans = cJSON_CreateObject();
	cJSON_AddBoolToObject(ans, "ok", ok);
	cJSON_AddStringToObject(ans, "detail", j->detail);
	if (j->kind == JOB_PROMOTE) {
		cJSON_AddBoolToObject(ans, "promoted", j->promoted);
		cJSON_AddBoolToObject(ans, "refused", j->refused);
	}
	if (j->kind == JOB_SELF_FENCE)
		j->fo->fencing = false;
	if (j->fo->node_jobs[j->kind] == j)
		j->fo->node_jobs[j->kind] = NULL;
	answer(j->conn, j->reply, j->reply_arg, ans);
	for (size_t i = 0; i < j->n_waiters; i++)
		answer(j->waiters[i].conn, j->waiters[i].reply, j->waiters[i].reply_arg, ans);
	cJSON_Delete(ans);
	free(j);
}

/* start_action runs one local action as the job's next step; a failure to start ends it. */
static void start_action(struct job *j, struct fo_action *a)
{
	j->act = a;
	if (a == NULL)
		step(j, false, "out of memory");
}

/*
 * notify_script reports a user script's end with its path, exit and
 * output (the action's output is readable only in its callback: call this
 * from the step that follows the script).
 */
static void notify_script(struct job *j, enum notify_event ev, const char *path, const char *how)
{
	struct failover *fo = j->fo;
	struct notify_args args = {.node = self_addr(fo),
	                           .script = path,
	                           .exit_code = how,
	                           .results = j->act != NULL ? fo_action_output(j->act) : ""};
	if (fo->h.notify != NULL)
		fo->h.notify(fo->h.arg, ev, &args);
}

/* run_script runs the user script set as key (script.fence...), if any, as the next step. */
static void run_script(struct job *j, const char *key, const char *path)
{
	struct failover *fo = j->fo;
	start_action(j, fo_script(fo->loop, fo->cfg, key, path, NULL, 0, step, j));
}

static uint64_t action_ms(const struct failover *fo)
{
	return (uint64_t)(fo->cfg->remote_timeout_s > 0 ? fo->cfg->remote_timeout_s : 10) * 1000 +
	       30000;
}

/* ---- the steps of each job ---- */

static void probe_done(void *arg, const struct db_probe_result *r)
{
	struct job *j = arg;
	bool reached = r->ok || db_error_verdict(r->conn_error) == DB_VERDICT_BUSY;
	bool unverified = !r->ok && db_error_verdict(r->conn_error) == DB_VERDICT_AGENT;
	snprintf(j->detail, sizeof(j->detail), "%s",
	         r->ok         ? "the database answered"
	         : r->error[0] ? r->error
	                       : "no answer");
	cJSON *ans = cJSON_CreateObject();
	cJSON_AddBoolToObject(ans, "ok", true);
	cJSON_AddBoolToObject(ans, "reached", reached);
	cJSON_AddBoolToObject(ans, "unverified", unverified);
	cJSON_AddStringToObject(ans, "detail", j->detail);
	log_info("failover: probe of the master database at %s:%d: %s (%s)", j->host, j->port,
	         reached      ? "reached"
	         : unverified ? "could not tell"
	                      : "unreachable",
	         j->detail);
	if (j->conn != NULL) {
		rpc_reply_release(j->conn, ans);
	} else {
		j->reply(j->reply_arg, 0, ans);
		cJSON_Delete(ans);
	}
	free(j);
}

static void fence_steps(struct job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	switch (j->step++) {
	case 0:
		start_action(j, fo_vip(fo->loop, fo->cfg, false, action_ms(fo), step, j));
		return;
	case 1:
		if (config_vip_enabled(fo->cfg))
			notify(fo, ok ? NOTIFY_VIP_RELEASED : NOTIFY_UNEXPECTED_ERROR, NULL,
			       detail);
		log_info("failover: virtual IP release: %s", detail);
		start_action(j, fo_fence_db(fo->loop, fo->cfg, action_ms(fo), step, j));
		return;
	case 2:
		snprintf(j->detail, sizeof(j->detail), "%s", detail);
		if (!ok) {
			log_severe("failover: fencing the local database failed: %s", detail);
			finish(j, false);
			return;
		}
		fo->fenced = true;
		log_warning("failover: local database fenced (%s): stopped, standby.signal left so "
		            "it cannot come back as a master",
		            detail);
		if (fo->h.set_role != NULL)
			fo->h.set_role(fo->h.arg, NODE_IDLE,
			               "the local database was fenced: another node takes over");
		notify(fo, NOTIFY_MASTER_FENCED, NULL,
		       j->kind == JOB_SELF_FENCE ? j->why
		                                 : "the cluster leader is promoting another node");
		if (j->kind == JOB_SELF_FENCE && fo->cfg->script_master_isolated[0] != '\0') {
			run_script(j, "script.master.isolated", fo->cfg->script_master_isolated);
			return;
		}
		finish(j, true);
		return;
	default:
		notify_script(j,
		              ok ? NOTIFY_SCRIPT_MASTER_ISOLATED_EXECUTED
		                 : NOTIFY_SCRIPT_MASTER_ISOLATED_FAILED,
		              fo->cfg->script_master_isolated, detail);
		finish(j, true);
		return;
	}
}

/* refuse ends a promote request that did nothing, with the operator told why. */
static void refuse(struct job *j, enum notify_event ev, const char *detail)
{
	snprintf(j->detail, sizeof(j->detail), "%s", detail);
	j->refused = true;
	log_severe("failover: promotion of this node refused: %s", detail);
	if (ev != NOTIFY_EVENT_COUNT)
		notify(j->fo, ev, NULL, detail);
	finish(j, false);
}

static void promote_steps(struct job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	switch (j->step++) {
	case 0:
		if (fo->h.db_is_master != NULL && fo->h.db_is_master(fo->h.arg)) {
			j->promoted = true;
			snprintf(j->detail, sizeof(j->detail), "already a master");
			finish(j, true);
			return;
		}
		if (config_vip_enabled(fo->cfg)) {
			start_action(j, fo_ping(fo->loop, fo->cfg, fo->cfg->virtual_ip,
			                        action_ms(fo), step, j));
			return;
		}
		promote_steps(j, false, "no virtual IP");
		return;
	case 1:
		if (config_vip_enabled(fo->cfg) && ok) {
			refuse(j, NOTIFY_PROMOTION_REFUSED_VIP_ASSIGNED,
			       "the virtual IP still answers: the old master may hold it");
			return;
		}
		start_action(j, fo_ping(fo->loop, fo->cfg, NULL, action_ms(fo), step, j));
		return;
	case 2:
		if (!ok) {
			char why[600];
			snprintf(why, sizeof(why), "this node cannot reach the ping server: %s",
			         detail);
			refuse(j, NOTIFY_PROMOTION_REFUSED_ORPHANED, why);
			return;
		}
		run_script(j, "script.fence", fo->cfg->script_fence);
		return;
	case 3:
		if (fo->cfg->script_fence[0] != '\0') {
			if (!ok) {
				notify_script(j, NOTIFY_SCRIPT_FENCE_FAILED, fo->cfg->script_fence,
				              detail);
				refuse(j, NOTIFY_EVENT_COUNT, "the fence script failed");
				return;
			}
			notify_script(j, NOTIFY_SCRIPT_FENCE_EXECUTED, fo->cfg->script_fence,
			              detail);
		}
		fo->expect_master = true;
		log_warning("failover: promoting the local database");
		start_action(
		    j, fo_promote_db(fo->loop, fo->cfg, fo->password, action_ms(fo), step, j));
		return;
	default:
		snprintf(j->detail, sizeof(j->detail), "%s", detail);
		j->promoted = ok;
		if (!ok) {
			log_severe("failover: promoting the local database failed: %s", detail);
			notify(fo, NOTIFY_PROMOTION_FAILED, NULL, detail);
		} else {
			log_warning("failover: the local database is now the master (%s)", detail);
			/* the agent takes its role at the next check: make it now */
			if (fo->h.check_now != NULL)
				fo->h.check_now(fo->h.arg);
		}
		finish(j, ok);
		return;
	}
}

static void vip_steps(struct job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	switch (j->step++) {
	case 0:
		start_action(j, fo_vip(fo->loop, fo->cfg, true, action_ms(fo), step, j));
		return;
	case 1:
		if (config_vip_enabled(fo->cfg)) {
			struct notify_args args = {
			    .node = self_addr(fo), .vip = fo->cfg->virtual_ip, .error = detail};
			fo->h.notify(fo->h.arg, ok ? NOTIFY_VIP_ASSIGNED : NOTIFY_VIP_ASSIGN_FAILED,
			             &args);
		}
		snprintf(j->detail, sizeof(j->detail), "virtual IP: %s", detail);
		run_script(j, "script.post.promotion", fo->cfg->script_post_promotion);
		return;
	default:
		if (fo->cfg->script_post_promotion[0] != '\0')
			notify_script(j,
			              ok ? NOTIFY_SCRIPT_POST_PROMOTION_EXECUTED
			                 : NOTIFY_SCRIPT_POST_PROMOTION_FAILED,
			              fo->cfg->script_post_promotion, detail);
		finish(j, true);
		return;
	}
}

static void start_vip_steps(struct job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	if (j->step++ == 0) {
		start_action(j, fo_vip(fo->loop, fo->cfg, true, action_ms(fo), step, j));
		return;
	}
	struct notify_args args = {
	    .node = self_addr(fo), .vip = fo->cfg->virtual_ip, .error = detail};
	fo->h.notify(fo->h.arg, ok ? NOTIFY_VIP_ASSIGNED : NOTIFY_VIP_ASSIGN_FAILED, &args);
	finish(j, ok);
}

static void follow_steps(struct job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	if (j->step++ == 0) {
		start_action(j, fo_follow_db(fo->loop, fo->cfg, fo->password, j->host, j->port,
		                             action_ms(fo), step, j));
		return;
	}
	snprintf(j->detail, sizeof(j->detail), "%s", detail);
	log_info("failover: following the new master %s:%d: %s", j->host, j->port, detail);
	finish(j, ok);
}

static void step(void *arg, bool ok, const char *detail)
{
	struct job *j = arg;
	switch (j->kind) {
	case JOB_FENCE:
	case JOB_SELF_FENCE:
		fence_steps(j, ok, detail);
		break;
	case JOB_PROMOTE:
		promote_steps(j, ok, detail);
		break;
	case JOB_VIP:
		vip_steps(j, ok, detail);
		break;
	case JOB_FOLLOW:
		follow_steps(j, ok, detail);
		break;
	case JOB_START_VIP:
		start_vip_steps(j, ok, detail);
		break;
	case JOB_PROBE:
		break;
	}
}

/* ---- requests ---- */

static bool read_target(struct job *j, const cJSON *msg)
{
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(msg, "host");
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(msg, "port");
	if (!cJSON_IsString(host) || !cJSON_IsNumber(port) || port->valueint < 1 ||
	    port->valueint > 65535 || strlen(host->valuestring) >= sizeof(j->host))
		return false;
	snprintf(j->host, sizeof(j->host), "%s", host->valuestring);
	j->port = port->valueint;
	return true;
}

static void run_job(struct failover *fo, struct job *j, const cJSON *msg)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	const char *t = cJSON_IsString(type) ? type->valuestring : "";
	static const struct {
		const char *type;
		enum job_kind kind;
	} kinds[] = {{"fo-probe", JOB_PROBE},
	             {"fo-fence", JOB_FENCE},
	             {"fo-promote", JOB_PROMOTE},
	             {"fo-vip", JOB_VIP},
	             {"fo-follow", JOB_FOLLOW}};
	size_t i = 0;
	while (i < sizeof(kinds) / sizeof(kinds[0]) && strcmp(kinds[i].type, t) != 0)
		i++;
	bool known = i < sizeof(kinds) / sizeof(kinds[0]);
	j->fo = fo;
	j->kind = known ? kinds[i].kind : JOB_PROBE;
	bool needs_target = j->kind == JOB_PROBE || j->kind == JOB_FOLLOW;
	if (!known || fo->closed || (needs_target && !read_target(j, msg)) ||
	    (fo->cfg->is_witness && j->kind != JOB_PROBE)) {
		snprintf(j->detail, sizeof(j->detail), "%s request \"%s\"",
		         fo->closed ? "closing: cannot run" : "malformed or misdirected", t);
		finish(j, false);
		return;
	}
	struct job *running = joinable(j->kind) ? fo->node_jobs[j->kind] : NULL;
	if (running != NULL &&
	    running->n_waiters < sizeof(running->waiters) / sizeof(running->waiters[0])) {
		log_info("failover: request %s again while it runs: it gets the same answer", t);
		running->waiters[running->n_waiters].conn = j->conn;
		running->waiters[running->n_waiters].reply = j->reply;
		running->waiters[running->n_waiters].reply_arg = j->reply_arg;
		running->n_waiters++;
		free(j);
		return;
	}
	if (joinable(j->kind))
		fo->node_jobs[j->kind] = j;
	log_info("failover: request %s from the coordinator", t);
	if (j->kind == JOB_PROBE) {
		uint64_t ms =
		    (uint64_t)(fo->cfg->remote_timeout_s > 0 ? fo->cfg->remote_timeout_s : 10) *
		    1000;
		if (db_probe(fo->loop, fo->cfg, cluster_db_password(fo->cl), j->host, j->port, ms,
		             probe_done, j) != 0) {
			struct db_probe_result r = {.ok = false,
			                            .conn_error = DB_ERR_AGENT_RESOURCES};
			snprintf(r.error, sizeof(r.error), "cannot start a probe");
			probe_done(j, &r);
		}
		return;
	}
	step(j, true, "");
}

void fo_node_request(struct failover *fo, struct rpc_conn *conn, const char *peer_addr,
                     const cJSON *msg)
{
	(void)peer_addr;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "fo-manual") == 0) {
		fo_manual_peer(fo, conn, msg);
		return;
	}
	if (fo_switch_request(fo, msg, conn, NULL, NULL))
		return;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->conn = conn;
	rpc_conn_ref(conn);
	run_job(fo, j, msg);
}

void fo_node_run(struct failover *fo, const cJSON *msg, rpc_call_cb reply, void *arg)
{
	if (fo_switch_request(fo, msg, NULL, reply, arg))
		return;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		reply(arg, -12, NULL);
		return;
	}
	j->reply = reply;
	j->reply_arg = arg;
	run_job(fo, j, msg);
}

/* ---- the safety rule on a master ---- */

static void self_fence(struct failover *fo, const char *why)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->fo = fo;
	j->kind = JOB_SELF_FENCE;
	j->why = why;
	fo->fencing = true;
	log_severe("failover: %s: fencing the local database now", why);
	step(j, true, "");
}

/* another_master: the replicated state records a master other than us, alive, no promotion of us.
 */
static bool another_master(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	const char *me = cluster_self_address(fo->cl);
	if (st->master[0] == '\0' || strcmp(st->master, me) == 0)
		return false;
	if (clusterfsm_promotion_active(st) && strcmp(st->lock.candidate, me) == 0)
		return false;
	const struct clusterfsm_member *m = clusterfsm_member_by_host(st, st->master);
	return m != NULL && cluster_member_alive(fo->cl, m->id);
}

void fo_node_tick(struct failover *fo)
{
	uint64_t now = cluster_clock(fo->cl);
	uint64_t L = failover_isolation_ms(cluster_node_timeout_ms(fo->cl));
	if (fo->last_tick_ms != 0 && now - fo->last_tick_ms > L / 2) {
		log_warning("failover: this agent's loop was stalled for %llu ms: the lease is "
		            "judged again after the next heartbeats, not on stale time",
		            (unsigned long long)(now - fo->last_tick_ms));
		fo->stall_grace_until = now + 3 * cluster_tick_ms(fo->cl);
		/* the membership may have moved on meanwhile: judge as a master just joining */
		fo->master_since_ms = 0;
	}
	fo->last_tick_ms = now;
	/*
	 * A new voter has echoed nothing yet: after a change of the voting set a
	 * master gets the joining grace again instead of being judged at once
	 * against a majority that includes members it has not heard from.
	 */
	size_t voters = cluster_voter_count(fo->cl);
	if (voters != fo->last_voters) {
		fo->last_voters = voters;
		fo->master_since_ms = 0;
	}
	enum node_type role = fo->h.role(fo->h.arg);
	if (role != NODE_MASTER || fo->fencing) {
		fo->master_since_ms = 0;
		return;
	}
	if (fo->master_since_ms == 0)
		fo->master_since_ms = now;
	/*
	 * Until the leader first answers a master (it is still joining), it
	 * gets T + L: the majority has not been told about it, so no promotion
	 * can be racing it; the rule that fences a master the cluster has
	 * replaced (another_master) covers an old master coming back.
	 */
	uint64_t lease = cluster_lease_ms(fo->cl), limit = L;
	if (lease < fo->master_since_ms) {
		lease = fo->master_since_ms;
		limit = cluster_node_timeout_ms(fo->cl) + L;
	}
	bool contact = now - lease <= limit;
	if (contact && another_master(fo)) {
		self_fence(fo, "the cluster records another master and this database runs as one");
		return;
	}
	if (!contact && cluster_voter_count(fo->cl) >= 3 && now >= fo->stall_grace_until) {
		static char why[160];
		snprintf(why, sizeof(why),
		         "no two-way contact with the cluster leader for %llu ms (isolation time "
		         "%llu ms)",
		         (unsigned long long)(now - lease), (unsigned long long)limit);
		self_fence(fo, why);
		return;
	}
	const struct cluster_state *st = cluster_state(fo->cl);
	if (!fo->vip_checked && contact && config_vip_enabled(fo->cfg) &&
	    strcmp(st->master, cluster_self_address(fo->cl)) == 0) {
		struct job *j = calloc(1, sizeof(*j));
		if (j == NULL)
			return;
		fo->vip_checked = true;
		j->fo = fo;
		j->kind = JOB_START_VIP;
		log_info("failover: this node runs the master: assigning the virtual IP %s",
		         fo->cfg->virtual_ip);
		step(j, true, "");
	}
}
