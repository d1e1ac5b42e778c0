/*
 * cluster_cmds.c - node management commands (add-node, remove-node,
 * set-priority, stop-cluster): taken on any node, forwarded to the leader,
 * applied through Raft, always answered within a bound.  reset-members is
 * different (it acts without a leader): cluster_reset_coord.c.
 */
#include "admin_arg.h"
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void on_stop_timer(uv_timer_t *t)
{
	struct cluster *c = t->data;
	if (c->h.stop != NULL && !cluster_closing(c))
		c->h.stop(c->h.arg, CLUSTER_STOP_REQUESTED, "stop-cluster");
}

/* Where the answer to a command goes: the admin client or a forwarding peer. */
struct cmd_ctx {
	struct cluster *c;
	struct admin_request *req;
	struct rpc_conn *conn;
	char command[32];
	char address[CLUSTERFSM_ADDR_MAX];
	int priority;
};

static struct cmd_ctx *new_ctx(struct cluster *c, struct admin_request *req, struct rpc_conn *conn)
{
	struct cmd_ctx *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return NULL;
	x->c = c;
	x->req = req;
	x->conn = conn;
	if (conn != NULL)
		rpc_conn_ref(conn);
	return x;
}

/* finish answers the command's origin (reply ownership taken) and frees x. */
static void finish(struct cmd_ctx *x, cJSON *reply)
{
	if (x->req != NULL)
		admin_reply(x->req, reply);
	else
		rpc_reply_release(x->conn, reply);
	free(x);
}

/* ---- forwarding to the leader ---- */

static void on_forwarded(void *arg, int status, const cJSON *reply)
{
	struct cmd_ctx *x = arg;
	if (status != 0 || reply == NULL) {
		finish(x, cluster_retry_reply("the cluster leader did not answer (%s)",
		                              strerror(-status)));
		return;
	}
	finish(x, cJSON_Duplicate(reply, true));
}

/* forward_ctx relays msg to the leader; x receives its answer. */
static void forward_ctx(struct cmd_ctx *x, const cJSON *msg)
{
	struct cluster *c = x->c;
	const char *leader = cluster_leader_address(c);
	const cJSON *hops = cJSON_GetObjectItemCaseSensitive(msg, "hops");
	if (leader == NULL || strcmp(leader, c->address) == 0 || cJSON_IsNumber(hops)) {
		finish(x,
		       cluster_retry_reply("no cluster leader is reachable from %s: it is in the "
		                           "minority or an election is in progress; try again in "
		                           "a few seconds",
		                           c->address));
		return;
	}
	cJSON *copy = cJSON_Duplicate(msg, true);
	if (copy != NULL)
		cJSON_AddNumberToObject(copy, "hops", 1);
	int rc = rpc_call(c->rpc, leader, copy, CLUSTER_FORWARD_TIMEOUT_MS, on_forwarded, x);
	if (rc != 0)
		finish(x, cluster_error_reply("cannot reach the leader %s: %s", leader,
		                              strerror(-rc)));
}

void cluster_forward(struct cluster *c, struct rpc_conn *conn, const cJSON *msg)
{
	struct cmd_ctx *x = new_ctx(c, NULL, conn);
	if (x != NULL)
		forward_ctx(x, msg);
}

/* ---- commands applied by the leader ---- */

static void on_cmd_applied(void *arg, int status, const struct clusterfsm_result *res)
{
	struct cmd_ctx *x = arg;
	if (status != 0) {
		finish(x, cluster_error_reply("%s %s: the change did not commit: %s", x->command,
		                              x->address, raft_strerror(status)));
		return;
	}
	log_info("cluster %s: %s %s: %s%s%s", x->c->name, x->command, x->address,
	         clusterfsm_code_name(res->code), res->reason[0] ? ": " : "", res->reason);
	switch (res->code) {
	case CLUSTERFSM_OK:
		if (strstr(x->command, "remove") != NULL || strstr(x->command, "disallow") != NULL)
			finish(x, cluster_ok_message(
			              "%s removed from the allowed node list of cluster %s",
			              x->address, x->c->name));
		else if (x->priority > 0)
			finish(x, cluster_ok_message(
			              "%s allowed in cluster %s with standby priority %d",
			              x->address, x->c->name, x->priority));
		else
			finish(x, cluster_ok_message("%s allowed in cluster %s", x->address,
			                             x->c->name));
		break;
	case CLUSTERFSM_ALREADY:
		finish(x,
		       cluster_ok_message("%s: nothing to change for %s", x->command, x->address));
		break;
	default:
		finish(x, cluster_error_reply("%s %s refused: %s", x->command, x->address,
		                              res->reason));
	}
}

static void on_stop_told(void *arg, int status, const cJSON *reply)
{
	struct cluster *c = arg;
	(void)status;
	(void)reply;
	if (--c->stops_pending == 0 && c->stop_timer_open && !cluster_closing(c))
		uv_timer_start(&c->stop_timer, on_stop_timer, CLUSTER_STOP_DELAY_MS, 0);
}

/* schedule_self_stop stops this agent after delay_ms, keeping its membership. */
static void schedule_self_stop(struct cluster *c, uint64_t delay_ms)
{
	c->no_leave = true;
	if (!c->stop_timer_open) {
		uv_timer_init(c->loop, &c->stop_timer);
		c->stop_timer.data = c;
		c->stop_timer_open = true;
	}
	uv_timer_start(&c->stop_timer, on_stop_timer, delay_ms, 0);
}

/* stop_cluster tells every other member to stop, then stops this agent. */
static void stop_cluster(struct cmd_ctx *x)
{
	struct cluster *c = x->c;
	const struct cluster_state *st = &c->rio.st;
	size_t told = 0;
	finish(x,
	       cluster_ok_message("stop-cluster: stopping the agents of cluster %s (%zu members)",
	                          c->name, st->n_members));
	log_info("cluster %s: stop-cluster: every agent stops; membership is kept", c->name);
	schedule_self_stop(c, CLUSTER_STOP_BOUND_MS);
	for (size_t i = 0; i < st->n_members; i++) {
		if (st->members[i].id == c->id)
			continue;
		cJSON *m = rpc_msg("stop");
		if (rpc_call(c->rpc, st->members[i].address, m, CLUSTER_STOP_CALL_MS, on_stop_told,
		             c) == 0)
			told++;
	}
	c->stops_pending = (int)told;
	if (told == 0)
		uv_timer_start(&c->stop_timer, on_stop_timer, CLUSTER_STOP_DELAY_MS, 0);
}

/* run_cmd executes a command on the leader. */
static void run_cmd(struct cmd_ctx *x, const cJSON *msg)
{
	struct cluster *c = x->c;
	const cJSON *command = cJSON_GetObjectItemCaseSensitive(msg, "command");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(msg, "args");
	if (!cJSON_IsString(command)) {
		finish(x, cluster_error_reply("malformed command"));
		return;
	}
	snprintf(x->command, sizeof(x->command), "%s", command->valuestring);
	const char *cmd = x->command;
	if (strcmp(cmd, "stop-cluster") == 0) {
		stop_cluster(x);
		return;
	}
	/*
	 * A forwarded command comes from a peer, not from our admin socket:
	 * check its arguments with the same code the admin server uses.
	 */
	struct admin_arg_values v;
	char why[512];
	if (!admin_arg_check_json(cmd, args, &v, why, sizeof(why))) {
		finish(x, cluster_error_reply("%s: %s", cmd, why));
		return;
	}
	if (!v.has_address) {
		finish(x, cluster_error_reply("%s: an address is required", cmd));
		return;
	}
	snprintf(x->address, sizeof(x->address), "%s", v.address);
	x->priority = v.priority;
	struct clusterfsm_cmd fc;
	bool built;
	if (strcmp(cmd, "add-node") == 0 || strcmp(cmd, "allow-node") == 0)
		built = clusterfsm_cmd_allow_node(&fc, x->address, x->priority);
	else if (strcmp(cmd, "remove-node") == 0 || strcmp(cmd, "disallow-node") == 0)
		built = clusterfsm_cmd_disallow_node(&fc, x->address);
	else if (strcmp(cmd, "set-priority") == 0 && x->priority > 0)
		built = clusterfsm_cmd_set_priority(&fc, x->address, x->priority);
	else {
		finish(x, cluster_error_reply("%s: unknown command or missing priority", cmd));
		return;
	}
	if (!built) {
		finish(x, cluster_error_reply("%s: malformed address %s", cmd, x->address));
		return;
	}
	int rc = raftio_propose(&c->rio, &fc, on_cmd_applied, x);
	if (rc != 0)
		finish(x, cluster_error_reply("%s: cannot propose the change: %s", cmd,
		                              raft_strerror(rc)));
}

/* dispatch runs msg here when we lead, else forwards it. */
static void dispatch(struct cmd_ctx *x, const cJSON *msg)
{
	if (x->c->started && raftio_is_leader(&x->c->rio))
		run_cmd(x, msg);
	else
		forward_ctx(x, msg);
}

void cluster_rpc_cmd(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                     const char *peer_addr, const cJSON *msg)
{
	struct cmd_ctx *x = new_ctx(c, NULL, conn);
	if (x != NULL)
		dispatch(x, msg);
}

void cluster_rpc_stop(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                      const char *peer_addr, const cJSON *msg)
{
	log_info("cluster %s: stop-cluster received from %s: stopping (membership kept)", c->name,
	         peer_id == 0 ? "?" : "the leader");
	rpc_reply(conn, cluster_ok_message("stopping"));
	schedule_self_stop(c, CLUSTER_STOP_DELAY_MS);
}

void cluster_admin_command(struct cluster *c, struct admin_request *req)
{
	cJSON *msg = rpc_msg("cmd");
	struct cmd_ctx *x = msg != NULL ? new_ctx(c, req, NULL) : NULL;
	if (x == NULL) {
		cJSON_Delete(msg);
		admin_reply_error(req, "out of memory");
		return;
	}
	cJSON_AddStringToObject(msg, "command", req->command);
	cJSON_AddItemToObject(msg, "args", cJSON_Duplicate(req->args, true));
	log_info("cluster %s: admin command %s from uid %ld", c->name, req->command,
	         (long)req->uid);
	if (!c->started) {
		finish(x, cluster_error_reply("this agent has not joined a cluster yet; try again "
		                              "shortly"));
	} else {
		dispatch(x, msg);
	}
	cJSON_Delete(msg);
}
