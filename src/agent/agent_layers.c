/*
 * agent_layers.c - how the agent plugs into the cluster and failover
 * layers: what it reports to them (its role, its database's state) and
 * what they may ask of it (stop, notify, take a role, check or resume the
 * local database).
 */
#include "agent.h"

#include <stdio.h>

#include "cluster.h"
#include "dbmon.h"

/* cluster_local tells the cluster layer our role and database state (false until known). */
static bool cluster_local(void *arg, struct members_report *out)
{
	struct agent *a = arg;
	if (!a->ready || a->stopping)
		return false;
	out->role = (enum clusterfsm_role)a->type;
	out->db = CLUSTERFSM_UNKNOWN;
	if (a->mon != NULL) {
		const struct dbmon_status *st = dbmon_status(a->mon);
		/*
		 * DOWN only on evidence: a busy server or this agent's own trouble
		 * says nothing about the database, and the failover coordinator
		 * acts on a DOWN report at once.
		 */
		if (st->started)
			out->db = st->last_ok ? CLUSTERFSM_UP
			          : st->failed || st->verdict == DB_VERDICT_DOWN
			              ? CLUSTERFSM_DOWN
			              : CLUSTERFSM_UNKNOWN;
		snprintf(out->xlog, sizeof(out->xlog), "%s", db_sample_lsn(&st->last));
		if (st->failed)
			snprintf(out->info, sizeof(out->info), "DB failed: %s",
			         st->error[0] ? st->error : "no answer");
	}
	return true;
}

static void cluster_stop_hook(void *arg, enum cluster_stop_reason reason, const char *why)
{
	static const enum agent_exit exit_code[] = {
	    [CLUSTER_STOP_REQUESTED] = AGENT_EXIT_OK,
	    [CLUSTER_STOP_FAILED] = AGENT_EXIT_FAILURE,
	    [CLUSTER_STOP_REFUSED] = AGENT_EXIT_REFUSED,
	};
	agent_stop(arg, exit_code[reason], why);
}

static void cluster_event_hook(void *arg, enum notify_event ev, const char *node)
{
	struct notify_args args = {.node = node};
	agent_emit(arg, ev, &args);
}

static enum node_type fo_role(void *arg)
{
	struct agent *a = arg;
	return a->ready ? a->type : NODE_IDLE;
}

static bool fo_db_is_master(void *arg)
{
	struct agent *a = arg;
	if (a->mon == NULL)
		return false;
	const struct dbmon_status *st = dbmon_status(a->mon);
	return st->last_ok && st->last.role == DB_ROLE_MASTER;
}

static void fo_set_role(void *arg, enum node_type type, const char *why)
{
	agent_set_type(arg, type, why);
}

static void fo_check_now(void *arg)
{
	struct agent *a = arg;
	if (a->mon != NULL && !a->stopping)
		dbmon_check_now(a->mon);
}

static void fo_resume(void *arg, const struct db_sample *seen, const char *why)
{
	struct agent *a = arg;
	if (a->mon == NULL || a->stopping)
		return;
	dbmon_resume(a->mon, seen);
	agent_set_type(a, seen->role == DB_ROLE_MASTER ? NODE_MASTER : NODE_STANDBY, why);
}

static void fo_notify(void *arg, enum notify_event ev, const struct notify_args *args)
{
	agent_emit(arg, ev, args);
}

bool agent_start_cluster(struct agent *a)
{
	struct cluster_hooks h = {.arg = a,
	                          .local = cluster_local,
	                          .stop = cluster_stop_hook,
	                          .local_node = agent_status_local_node,
	                          .event = cluster_event_hook};
	a->cl = cluster_new(a->loop, a->cfg, a->paths.state_dir, a->password, &h);
	if (a->cl == NULL)
		return false;
	struct failover_hooks fh = {.arg = a,
	                            .role = fo_role,
	                            .db_is_master = fo_db_is_master,
	                            .set_role = fo_set_role,
	                            .resume = fo_resume,
	                            .check_now = fo_check_now,
	                            .notify = fo_notify};
	failover_init(&a->fo, a->loop, a->cfg, a->password, a->cl, &fh);
	return cluster_start(a->cl);
}
