/*
 * notify_events.c - the table of notifications: stable name, severity (as
 * the guide assigns it), subject and text templates in our own words, and
 * the renderer that fills their {placeholders}.
 *
 * Placeholders: {node} {self} {cluster} {role} {script} {results} {exit}
 * {vip} {path} {error} {nodes} {dbuser} {pingserver}.
 */
#include "notify.h"

#include <stdio.h>
#include <string.h>

struct event_def {
	const char *name;
	enum efm_severity sev;
	const char *subject;
	const char *text;
};

#define INFO    EFM_SEV_INFO
#define WARNING EFM_SEV_WARNING
#define SEVERE  EFM_SEV_SEVERE

#define SCRIPT_RAN(what)                                                                           \
	"The " what " script {script} on {node} finished: {exit}.\nOutput:\n{results}"
#define SCRIPT_FAILED(what)                                                                        \
	"The " what " script {script} on {node} did not succeed: {exit}.\nOutput:\n{results}"
#define CANNOT_CONNECT "Cannot connect to the database on {node}"

static const struct event_def events[NOTIFY_EVENT_COUNT] = {
    [NOTIFY_SCRIPT_FENCE_EXECUTED] = {"script.fence.executed", INFO, "Fence script ran on {node}",
                                      SCRIPT_RAN("fence")},
    [NOTIFY_SCRIPT_POST_PROMOTION_EXECUTED] = {"script.post_promotion.executed", INFO,
                                               "Post-promotion script ran on {node}",
                                               SCRIPT_RAN("post-promotion")},
    [NOTIFY_SCRIPT_DB_FAILURE_EXECUTED] = {"script.db_failure.executed", INFO,
                                           "Database-failure script ran on {node}",
                                           SCRIPT_RAN("database-failure")},
    [NOTIFY_SCRIPT_MASTER_ISOLATED_EXECUTED] = {"script.master_isolated.executed", INFO,
                                                "Master-isolation script ran on {node}",
                                                SCRIPT_RAN("master-isolation")},
    [NOTIFY_AGENT_STARTED_WITNESS] =
        {"agent.started.witness", INFO, "Witness agent started on {node} for cluster {cluster}",
         "The witness agent is up. It has no local database to watch."},
    [NOTIFY_AGENT_STARTED_MASTER] = {"agent.started.master", INFO,
                                     "Master agent started on {node} for cluster {cluster}",
                                     "The master agent is up and watching its database."},
    [NOTIFY_AGENT_STARTED_STANDBY] = {"agent.started.standby", INFO,
                                      "Standby agent started on {node} for cluster {cluster}",
                                      "The standby agent is up and watching its database."},
    [NOTIFY_VIP_ASSIGNED] = {"vip.assigned", INFO, "VIP assigned to node {node}",
                             "The virtual IP {vip} was brought up on node {node}: {exit}.\n"
                             "Output:\n{results}"},
    [NOTIFY_VIP_RELEASED] = {"vip.released", INFO, "VIP released from node {node}",
                             "The virtual IP {vip} was taken down on node {node}: {exit}.\n"
                             "Output:\n{results}"},
    [NOTIFY_AGENT_EXITED_WITNESS] = {"agent.exited.witness", INFO,
                                     "Witness agent stopped on {node} for cluster {cluster}",
                                     "The witness agent has stopped."},
    [NOTIFY_AGENT_EXITED_MASTER] = {"agent.exited.master", INFO,
                                    "Master agent stopped on {node} for cluster {cluster}",
                                    "The master agent has stopped: nothing watches the master "
                                    "database's health now."},
    [NOTIFY_CLUSTER_MASTER_LEFT] = {"cluster.master_left", INFO,
                                    "Cluster {cluster}: the master agent has left",
                                    "The master agent on {node} has left the cluster. Automatic "
                                    "failover stays off until that agent runs again."},
    [NOTIFY_AGENT_EXITED_STANDBY] = {"agent.exited.standby", INFO,
                                     "Standby agent stopped on {node} for cluster {cluster}",
                                     "The standby agent has stopped: nothing watches this standby "
                                     "database's health now."},
    [NOTIFY_AGENT_EXITED_PROMOTING] = {"agent.exited.promoting", INFO,
                                       "Agent stopped during a promotion on {node} for cluster "
                                       "{cluster}",
                                       "The agent stopped while promoting its database. Nothing "
                                       "watches the database's health now and the promotion may be "
                                       "incomplete."},
    [NOTIFY_AGENT_EXITED_IDLE] = {"agent.exited.idle", INFO,
                                  "Idle agent stopped on {node} for cluster {cluster}",
                                  "The agent, which was idle, has stopped."},
    [NOTIFY_AGENT_EXITED_STARTUP] = {"agent.exited.startup", INFO,
                                     "Agent for cluster {cluster} stopped during startup",
                                     "The agent on {node} stopped before finishing its startup. "
                                     "Reason: {error}"},

    [NOTIFY_VIP_ON_NON_MASTER] =
        {"vip.on_non_master", WARNING, "VIP {vip} found on a node that is not the master",
         "The virtual IP {vip} seems to be held by {node}, which is not the "
         "master, so the agent releases it to avoid a conflict. Check that "
         "the master holds the VIP and assign it by hand if it does not."},
    [NOTIFY_CLUSTER_NO_STANDBY] = {"cluster.no_standby", WARNING,
                                   "No standby agent left in cluster {cluster}",
                                   "Every standby agent of cluster {cluster} has left: a master "
                                   "failure cannot be failed over."},
    [NOTIFY_STANDBY_AGENT_FAILED] = {"standby.agent_failed", WARNING,
                                     "Standby agent lost in cluster {cluster}",
                                     "The standby agent on {node} has left the cluster, but its "
                                     "database still answers."},
    [NOTIFY_STANDBY_DB_FAILED] =
        {"standby.db_failed", WARNING, "Standby database down in cluster {cluster}",
         "The standby agent on {node} reported its database as failed, and "
         "no other node can reach that database either."},
    [NOTIFY_STANDBY_DB_UNREACHABLE] = {"standby.db_unreachable", WARNING,
                                       "Standby agent cannot reach its database in cluster "
                                       "{cluster}",
                                       "The standby agent on {node} reported its database as "
                                       "failed, but other nodes still reach it. Check the agent's "
                                       "connection settings and pg_hba.conf on that node."},
    [NOTIFY_CLUSTER_BELOW_THREE] =
        {"cluster.below_three_nodes", WARNING, "Cluster {cluster} has dropped below three nodes",
         "Full failover protection needs three members (a master, a "
         "standby and a witness or second standby). With two, a lost "
         "master cannot be failed over automatically. Add a witness or a "
         "standby."},
    [NOTIFY_CLUSTER_SUBSET_DISCONNECTED] =
        {"cluster.subset_disconnected", WARNING,
         "Part of cluster {cluster} is cut off from the master",
         "This node is in a minority of cluster {cluster} and no "
         "longer sees the master; it will not attempt a failover. "
         "Members it can see: {nodes}"},
    [NOTIFY_PROMOTION_STARTED] = {"promotion.started", WARNING,
                                  "Promotion started in cluster {cluster}",
                                  "The standby on {node} is being promoted to master in cluster "
                                  "{cluster}."},
    [NOTIFY_WITNESS_FAILED] = {"witness.failed", WARNING, "Witness lost in cluster {cluster}",
                               "The witness agent on {node} has left the cluster."},
    [NOTIFY_IDLE_FAILED] = {"idle.failed", WARNING, "Idle agent lost in cluster {cluster}",
                            "The idle agent on {node} has left the cluster."},
    [NOTIFY_NODE_ISOLATED] = {"node.isolated", WARNING,
                              "Node isolated from the network in cluster {cluster}",
                              "This node ({node}) appears cut off from the network. Members it "
                              "can still see: {nodes}"},
    [NOTIFY_NODE_NOT_ISOLATED] = {"node.not_isolated", WARNING,
                                  "Node no longer isolated in cluster {cluster}",
                                  "This node ({node}) can reach the rest of the cluster again."},
    [NOTIFY_PROMOTION_REFUSED_MASTER_RUNNING] =
        {"promotion.refused.master_running", WARNING,
         "Promotion refused: the master database is still "
         "running",
         "A standby agent was about to promote, but the master "
         "database on {node} still answers; most likely only "
         "the master agent stopped. No failover was done."},
    [NOTIFY_PROMOTION_REFUSED_MASTER_UNVERIFIED] =
        {"promotion.refused.master_unverified", WARNING,
         "Promotion refused: the master database could "
         "not be checked",
         "A standby agent was about to promote, but could "
         "not tell whether the master database on {node} is "
         "still running. No failover was done."},
    [NOTIFY_PROMOTION_REFUSED_VIP_ASSIGNED] =
        {"promotion.refused.vip_assigned", WARNING, "Promotion refused: the VIP is still in use",
         "A standby agent was about to promote, but the virtual "
         "IP {vip} still answers from another node; promoting "
         "now could corrupt data. No failover was done."},
    [NOTIFY_PROMOTION_REFUSED_ORPHANED] =
        {"promotion.refused.orphaned", WARNING, "Promotion refused: the standby seems cut off",
         "The standby agent on {node} was about to promote, but "
         "could not reach the reference server {pingserver}, which "
         "points to a network problem around this node. No failover "
         "was done."},
    [NOTIFY_FAILOVER_NO_STANDBY] = {"failover.no_standby", WARNING,
                                    "No failover in cluster {cluster}: no standby available",
                                    "The master database of cluster {cluster} is unavailable, but "
                                    "there is no standby to promote."},
    [NOTIFY_FAILOVER_MANUAL_REQUIRED] =
        {"failover.manual_required", WARNING, "Manual failover may be needed in cluster {cluster}",
         "The master of cluster {cluster} appears lost. Automatic "
         "failover is off (auto.failover=false), so an operator must "
         "decide, for example with efm promote."},
    [NOTIFY_FAILOVER_COMPLETED] = {"failover.completed", WARNING,
                                   "Failover completed in cluster {cluster}",
                                   "Node {node} is now the master of cluster {cluster}."},
    [NOTIFY_LOCK_REMOVED] = {"lock.removed", WARNING,
                             "Lock file of cluster {cluster} has been removed",
                             "The agent's lock file {path} on node {node} has disappeared. It "
                             "keeps a second agent for this cluster from starting on the same "
                             "node; restart the agent to recreate it."},
    [NOTIFY_RECOVERY_CONF_FOUND] =
        {"recovery_conf.found", WARNING,
         "Standby configuration found on the master of cluster {cluster}",
         "A standby configuration file {path} exists on master node "
         "{node}. If this database restarts it will come up as a "
         "standby."},
    [NOTIFY_PROMOTION_ALREADY_RUNNING] = {"promotion.already_running", WARNING,
                                          "Promotion not started in cluster {cluster}",
                                          "A promotion was asked for, but node {node} is already "
                                          "being promoted."},
    [NOTIFY_STANDBY_NOT_RECONFIGURED] =
        {"standby.not_reconfigured", WARNING,
         "Standby {node} not re-pointed after failover in cluster "
         "{cluster}",
         "auto.reconfigure is false on {node}, so this standby still "
         "follows the old master. Point it at the new master by hand."},
    [NOTIFY_REPLAY_RESUME_FAILED] = {"promotion.replay_resume_failed", WARNING,
                                     "Could not resume WAL replay in cluster {cluster}",
                                     "Resuming WAL replay on the standby being promoted ({node}) "
                                     "failed; manual action may be needed. Error: {error}"},

    [NOTIFY_DB_CONNECT_TOO_MANY] = {"db.connect.too_many_connections", SEVERE, CANNOT_CONNECT,
                                    "The database refused the agent: all connection slots are in "
                                    "use. {error}"},
    [NOTIFY_DB_CONNECT_BAD_PASSWORD] = {"db.connect.invalid_password", SEVERE, CANNOT_CONNECT,
                                        "Password authentication failed for db.user={dbuser}. "
                                        "{error}"},
    [NOTIFY_DB_CONNECT_BAD_AUTHORIZATION] = {"db.connect.invalid_authorization", SEVERE,
                                             CANNOT_CONNECT,
                                             "The database did not authorize db.user={dbuser}. "
                                             "{error}"},
    [NOTIFY_MASTER_CANNOT_PING_LOCAL_DB] =
        {"master.cannot_ping_local_db", SEVERE,
         "Master agent cannot reach its database in cluster "
         "{cluster}",
         "The master agent cannot reach its local database at "
         "{node}, but other nodes still can, so the VIP stays and "
         "the database is not fenced. The agent goes idle until "
         "efm resume is run."},
    [NOTIFY_CLUSTER_COMMUNICATION_ERROR] =
        {"cluster.communication_error", SEVERE, "Communication error in cluster {cluster}",
         "This node joined the cluster but cannot reach or resolve "
         "one or more members. Stop the agent on {node} and check "
         "that every member's address is in the .nodes file. "
         "Details: {error}"},
    [NOTIFY_SCRIPT_FENCE_FAILED] = {"script.fence.failed", SEVERE, "Fence script failed on {node}",
                                    SCRIPT_FAILED("fence") "\nFailover has NOT been done."},
    [NOTIFY_SCRIPT_POST_PROMOTION_FAILED] = {"script.post_promotion.failed", SEVERE,
                                             "Post-promotion script failed on {node}",
                                             SCRIPT_FAILED("post-promotion")},
    [NOTIFY_SCRIPT_DB_FAILURE_FAILED] = {"script.db_failure.failed", SEVERE,
                                         "Database-failure script failed on {node}",
                                         SCRIPT_FAILED("database-failure")},
    [NOTIFY_SCRIPT_MASTER_ISOLATED_FAILED] = {"script.master_isolated.failed", SEVERE,
                                              "Master-isolation script failed on {node}",
                                              SCRIPT_FAILED("master-isolation")},
    [NOTIFY_PROMOTION_FAILED] = {"promotion.failed", SEVERE,
                                 "Could not promote the standby on {node}",
                                 "Promoting the standby database on {node} failed. Error: {error}"},
    [NOTIFY_RECOVERY_CONF_FAILED] =
        {"recovery_conf.failed", SEVERE,
         "Could not fence the old master {node} in cluster {cluster}",
         "Writing the standby configuration on old master {node} "
         "failed during the promotion. The promotion went on; make sure "
         "by hand that the old master cannot restart as a master. "
         "Error: {error}"},
    [NOTIFY_UNEXPECTED_ERROR] = {"agent.unexpected_error", SEVERE,
                                 "Unexpected error in cluster {cluster}",
                                 "The agent on {node} hit an unexpected error; its log has more. "
                                 "Error: {error}"},
    [NOTIFY_MASTER_FENCED] = {"master.fenced", SEVERE,
                              "Master database being fenced off in cluster {cluster}",
                              "The master database on {node} is being fenced: stopped, and "
                              "marked as a standby so that it cannot come back as a master, "
                              "so that the cluster never runs two masters. Reason: {error}"},
    [NOTIFY_VIP_ASSIGN_FAILED] = {"vip.assign_failed", SEVERE, "Could not assign the VIP to {node}",
                                  "Bringing up the virtual IP {vip} on {node} failed: {exit}. "
                                  "Error: {error}\nOutput:\n{results}"},
    [NOTIFY_DB_FAILURE] = {"db.failure", SEVERE, "{role} database failure in cluster {cluster}",
                           "The database on {node} has failed."},
    [NOTIFY_AGENT_TIMING_OUT] =
        {"agent.timing_out", SEVERE, "Agent is timing out in cluster {cluster}",
         "The agent on {node} timed out reaching its local database, then "
         "reached it again and resumed monitoring. Check the node: this can "
         "come before a database or agent failure."},
    [NOTIFY_RESUME_TIMED_OUT] = {"resume.timed_out", SEVERE,
                                 "Resume timed out in cluster {cluster}",
                                 "After reconfiguring and restarting the local database on {node}, "
                                 "the agent could not resume monitoring; its log has the details."},
};

const char *notify_event_name(enum notify_event ev)
{
	if ((unsigned)ev >= NOTIFY_EVENT_COUNT || events[ev].name == NULL)
		return "unknown";
	return events[ev].name;
}

enum efm_severity notify_event_severity(enum notify_event ev)
{
	if ((unsigned)ev >= NOTIFY_EVENT_COUNT)
		return EFM_SEV_SEVERE;
	return events[ev].sev;
}

const char *notify_severity_name(enum efm_severity sev)
{
	switch (sev) {
	case EFM_SEV_INFO:
		return "INFO";
	case EFM_SEV_WARNING:
		return "WARNING";
	case EFM_SEV_SEVERE:
		return "SEVERE";
	}
	return "SEVERE";
}

bool notify_event_by_name(const char *name, enum notify_event *out)
{
	for (int i = 0; i < NOTIFY_EVENT_COUNT; i++) {
		if (events[i].name != NULL && strcmp(events[i].name, name) == 0) {
			*out = (enum notify_event)i;
			return true;
		}
	}
	return false;
}

/* or_default picks the value, or the fallback when it is NULL or empty. */
static const char *or_default(const char *v, const char *fallback)
{
	return (v != NULL && v[0] != '\0') ? v : fallback;
}

/* lookup returns the text for one placeholder name, NULL if the name is unknown. */
static const char *lookup(const char *name, size_t len, const struct efm_config *cfg,
                          const char *self, const struct notify_args *a)
{
	static const struct notify_args none;
	if (a == NULL)
		a = &none;
	const char *me = or_default(self, "this node");
	const struct {
		const char *key;
		const char *val;
	} map[] = {
	    {"node", or_default(a->node, me)},
	    {"self", me},
	    {"cluster", or_default(cfg ? cfg->cluster : NULL, "(unnamed)")},
	    {"role", or_default(a->role, "Local")},
	    {"script", or_default(a->script, "(no script)")},
	    {"results", or_default(a->results, "(no output)")},
	    {"exit", or_default(a->exit_code, "status unknown")},
	    {"vip", or_default(a->vip, or_default(cfg ? cfg->virtual_ip : NULL, "(no VIP)"))},
	    {"path", or_default(a->path, "(unknown path)")},
	    {"error", or_default(a->error, "(no details)")},
	    {"nodes", or_default(a->nodes, "(none)")},
	    {"dbuser", or_default(cfg ? cfg->db_user : NULL, "(not set)")},
	    {"pingserver", or_default(cfg ? cfg->ping_server_ip : NULL, "(not set)")},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strlen(map[i].key) == len && memcmp(map[i].key, name, len) == 0)
			return map[i].val;
	return NULL;
}

/* expand fills tmpl into out; one_line turns control characters of values into spaces. */
static void expand(const char *tmpl, const struct efm_config *cfg, const char *self,
                   const struct notify_args *a, bool one_line, char *out, size_t len)
{
	size_t o = 0;
	if (len == 0)
		return;
	for (const char *p = tmpl; *p != '\0' && o + 1 < len;) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		const char *val =
		    close ? lookup(p + 1, (size_t)(close - p - 1), cfg, self, a) : NULL;
		if (val == NULL) {
			out[o++] = *p++;
			continue;
		}
		for (const char *v = val; *v != '\0' && o + 1 < len; v++) {
			unsigned char c = (unsigned char)*v;
			out[o++] = (one_line && (c < 0x20 || c == 0x7f)) ? ' ' : (char)c;
		}
		p = close + 1;
	}
	out[o] = '\0';
}

void notify_render(enum notify_event ev, const struct efm_config *cfg, const char *self,
                   const struct notify_args *args, char *subject, size_t subject_len, char *body,
                   size_t body_len)
{
	if ((unsigned)ev >= NOTIFY_EVENT_COUNT || events[ev].name == NULL) {
		snprintf(subject, subject_len, "Unknown notification %d", (int)ev);
		snprintf(body, body_len, "The agent emitted an unknown notification (%d).",
		         (int)ev);
		return;
	}
	expand(events[ev].subject, cfg, self, args, true, subject, subject_len);
	expand(events[ev].text, cfg, self, args, false, body, body_len);
}
