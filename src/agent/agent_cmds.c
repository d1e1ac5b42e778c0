/*
 * agent_cmds.c - the admin commands efmd answers, as a table.
 *
 * The cluster layer answers the cluster status and the node management
 * commands; the agent adds this node's own row (its monitor knows the
 * database) and answers what concerns only this node: node-status-json
 * and resume.  promote goes to the failover engine (src/failover/manual.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "agent.h"
#include "cluster.h"
#include "dbmon.h"
#include "log.h"
#include "notify.h"

static enum up_state local_db_state(const struct agent *a)
{
	if (a->cfg->is_witness || a->mon == NULL)
		return STATE_UNKNOWN;
	const struct dbmon_status *st = dbmon_status(a->mon);
	if (!st->started)
		return STATE_UNKNOWN;
	return st->last_ok ? STATE_UP : STATE_DOWN;
}

/* add_local_messages adds this agent's recent notifications and warnings to the status. */
static void add_local_messages(const struct agent *a, struct status_model *m)
{
	if (a->notify != NULL) {
		const char *recent[32];
		size_t n_recent =
		    notify_recent(a->notify, recent, sizeof(recent) / sizeof(recent[0]));
		for (size_t i = 0; i < n_recent; i++)
			status_add_message(m, recent[i]);
	}
	if (!a->ready)
		status_add_message(m, "The agent is starting: the local database has not been "
		                      "checked yet.");
	if (a->type == NODE_IDLE && a->mon != NULL && dbmon_status(a->mon)->failed)
		status_add_message(m, "The local database was declared failed; after repairing it "
		                      "run 'efm resume'.");
}

/* agent_status_local_node fills this node's row of the cluster-wide status and its messages. */
void agent_status_local_node(void *arg, struct status_model *m, struct status_node *n)
{
	const struct agent *a = arg;
	n->type = a->type;
	n->agent = STATE_UP;
	n->db = local_db_state(a);
	if (a->mon != NULL && dbmon_status(a->mon)->failed)
		snprintf(n->info, sizeof(n->info), "DB failed: %s",
		         dbmon_status(a->mon)->error[0] ? dbmon_status(a->mon)->error
		                                        : "no answer");
	/* A recent successful check answers the Promote Status: no need to ask the database. */
	if (!a->cfg->is_witness && a->mon != NULL) {
		const struct dbmon_status *st = dbmon_status(a->mon);
		if (st->last_ok && st->last_ok_ms != 0 &&
		    uv_now(a->loop) - st->last_ok_ms <= cluster_status_fresh_ms(a->cfg)) {
			struct db_probe_result r = {.ok = true, .sample = st->last};
			cluster_status_xlog(n, &r);
		}
	}
	add_local_messages(a, m);
}

static cJSON *node_json(const struct agent *a, const struct status_node *n)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "address", n->address);
	cJSON_AddStringToObject(o, "cluster", a->cluster);
	cJSON_AddStringToObject(o, "type", status_node_type_name(n->type));
	cJSON_AddStringToObject(o, "agent", status_up_state_name(n->agent));
	cJSON_AddStringToObject(o, "db", status_up_state_name(n->db));
	cJSON_AddStringToObject(o, "info", n->info);
	cJSON_AddStringToObject(o, "xlog", n->xlog);
	cJSON_AddStringToObject(o, "xloginfo", n->xloginfo);
	if (a->mon != NULL) {
		const struct dbmon_status *st = dbmon_status(a->mon);
		cJSON_AddNumberToObject(o, "checks", (double)st->checks);
		cJSON_AddNumberToObject(o, "connections", (double)st->connections);
		cJSON_AddBoolToObject(o, "failed", st->failed);
		cJSON_AddBoolToObject(o, "timingout", st->timing_out);
	}
	bool healthy =
	    a->ready && n->type != NODE_IDLE && (n->type == NODE_WITNESS || n->db == STATE_UP);
	cJSON_AddBoolToObject(o, "healthy", healthy);
	return o;
}

/*
 * cluster_of gives the cluster layer for a command that needs it, or
 * answers that the agent is stopping and gives NULL.
 */
static struct cluster *cluster_of(struct admin_request *req)
{
	struct agent *a = req->agent;
	if (a->cl != NULL && !a->stopping)
		return a->cl;
	admin_reply_error(req, "%s: the agent is stopping", req->command);
	return NULL;
}

static void cmd_cluster_status(struct admin_request *req)
{
	struct cluster *cl = cluster_of(req);
	if (cl != NULL)
		cluster_status_command(cl, req);
}

/* cmd_cluster runs a node management command through the cluster layer. */
static void cmd_cluster(struct admin_request *req)
{
	struct cluster *cl = cluster_of(req);
	if (cl != NULL)
		cluster_admin_command(cl, req);
}

static void cmd_reset_members(struct admin_request *req)
{
	struct cluster *cl = cluster_of(req);
	if (cl != NULL)
		cluster_reset_members(cl, req);
}

/* cmd_node_status answers node-status-json from the monitor's last check: it must stay cheap. */
static void cmd_node_status(struct admin_request *req)
{
	struct agent *a = req->agent;
	struct status_model m = {0};
	struct status_node *n = status_add_node(&m);
	if (n == NULL) {
		admin_reply_error(req, "out of memory");
		return;
	}
	snprintf(n->address, sizeof(n->address), "%s", agent_local_address(a));
	agent_status_local_node(a, &m, n);
	if (a->cfg->is_witness || a->stopping || a->mon == NULL) {
		snprintf(n->xloginfo, sizeof(n->xloginfo), "%s",
		         a->cfg->is_witness ? "" : "not queried");
	} else {
		const struct dbmon_status *st = dbmon_status(a->mon);
		struct db_probe_result r = {.ok = st->last_ok, .sample = st->last};
		snprintf(r.error, sizeof(r.error), "%s", st->error);
		cluster_status_xlog(n, &r);
	}
	cJSON *reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(reply, "ok", true);
	cJSON *node = node_json(a, n);
	/* The local log and a digest of the applied state: members that agree show the same. */
	if (node != NULL && a->cl != NULL && !a->stopping)
		cJSON_AddItemToObject(node, "raft", cluster_log_json(a->cl));
	cJSON_AddItemToObject(reply, "node", node);
	status_free(&m);
	admin_reply(req, reply);
}

/* A resume request waiting on the direct check of the local database. */
struct resume_query {
	struct admin_request *req;
	struct agent *agent;
};

/* on_resume_probe resumes monitoring once the database answered, in the role it reports. */
static void on_resume_probe(void *arg, const struct db_probe_result *r)
{
	struct resume_query *q = arg;
	struct agent *a = q->agent;
	struct admin_request *req = q->req;
	free(q);
	if (a->stopping || a->mon == NULL) {
		admin_reply_error(req, "the agent is stopping");
		return;
	}
	if (!r->ok) {
		log_warning("agent %s: resume refused: the local database does not answer: %s",
		            agent_local_address(a), r->error);
		admin_reply_error(req,
		                  "the local database at %s:%d does not answer (%s); start it "
		                  "first, then run resume again",
		                  a->cfg->db_host, a->cfg->db_port, r->error);
		return;
	}
	bool master = r->sample.role == DB_ROLE_MASTER;
	if (master && a->cl != NULL && !cluster_in_majority(a->cl)) {
		log_warning("agent %s: resume refused: the local database is not in recovery and "
		            "this agent cannot reach the majority to check who the master is",
		            agent_local_address(a));
		admin_reply_error(req,
		                  "the local database is not in recovery and this agent is not "
		                  "in the cluster's majority, so it cannot check that no other "
		                  "master exists; try again once it is");
		return;
	}
	char other[CLUSTERFSM_ADDR_MAX];
	if (master && a->cl != NULL && cluster_other_master(a->cl, other, sizeof(other))) {
		log_warning("agent %s: resume refused: the local database is not in recovery but "
		            "%s is the cluster's master",
		            agent_local_address(a), other);
		admin_reply_error(
		    req,
		    "the local database is not in recovery, but %s is already the "
		    "cluster's master; restart this database as a standby of it first",
		    other);
		return;
	}
	dbmon_resume(a->mon, &r->sample);
	agent_set_type(a, master ? NODE_MASTER : NODE_STANDBY,
	               master ? "efm resume: pg_is_in_recovery() is false"
	                      : "efm resume: pg_is_in_recovery() is true");
	cJSON *reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(reply, "ok", true);
	char msg[256];
	snprintf(msg, sizeof(msg), "monitoring of the local database resumed; this node is a %s",
	         master ? "Master" : "Standby");
	cJSON_AddStringToObject(reply, "message", msg);
	admin_reply(req, reply);
}

/* cmd_resume restarts the watch of a database declared failed, after checking it answers. */
static void cmd_resume(struct admin_request *req)
{
	struct agent *a = req->agent;
	if (a->cfg->is_witness || a->mon == NULL) {
		admin_reply_error(req, "nothing to resume: a witness has no database");
		return;
	}
	if (a->type != NODE_IDLE) {
		admin_reply_error(req,
		                  "nothing to resume: the agent is a %s and is watching its "
		                  "database",
		                  status_node_type_name(a->type));
		return;
	}
	struct resume_query *q = calloc(1, sizeof(*q));
	if (q == NULL) {
		admin_reply_error(req, "out of memory");
		return;
	}
	q->req = req;
	q->agent = a;
	log_info("agent %s: efm resume from uid %ld: checking the local database",
	         agent_local_address(a), (long)req->uid);
	int rc = db_probe(a->loop, a->cfg, a->password, a->cfg->db_host, a->cfg->db_port,
	                  (uint64_t)a->cfg->remote_timeout_s * 1000, on_resume_probe, q);
	if (rc < 0) {
		free(q);
		admin_reply_error(req, "could not check the local database: %s", uv_strerror(rc));
	}
}

/* cmd_promote: efm promote, carried to the leader's failover coordinator. */
static void cmd_promote(struct admin_request *req)
{
	struct agent *a = req->agent;
	if (cluster_of(req) != NULL)
		failover_promote_command(&a->fo, req);
}

/* cmd_rejoin: efm rejoin, this old master back as a standby of the cluster's master. */
static void cmd_rejoin(struct admin_request *req)
{
	struct agent *a = req->agent;
	if (cluster_of(req) != NULL)
		failover_rejoin_command(&a->fo, req);
}

const struct admin_command agent_admin_commands[] = {
    {"cluster-status", false, cmd_cluster_status},
    {"cluster-status-json", false, cmd_cluster_status},
    {"node-status-json", false, cmd_node_status},
    {"add-node", true, cmd_cluster},
    {"allow-node", true, cmd_cluster},
    {"remove-node", true, cmd_cluster},
    {"disallow-node", true, cmd_cluster},
    {"set-priority", true, cmd_cluster},
    {"promote", true, cmd_promote},
    {"resume", true, cmd_resume},
    {"rejoin", true, cmd_rejoin},
    {"stop-cluster", true, cmd_cluster},
    {"reset-members", true, cmd_reset_members},
};
const size_t agent_admin_n_commands =
    sizeof(agent_admin_commands) / sizeof(agent_admin_commands[0]);
