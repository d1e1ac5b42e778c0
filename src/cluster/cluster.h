/*
 * cluster.h - the cluster layer as the agent sees it: membership through
 * Raft (raftio.h), liveness (members.h), agent-to-agent requests (rpc.h),
 * node management commands and the cluster-wide status.
 *
 * Life cycle.  cluster_new + cluster_start listen on bind.address at once.
 * Joining waits until the agent knows its role (the local hook returns
 * true); then, as DESIGN.md says:
 *  - Raft state on disk: resume it (and ask to be re-admitted if the others
 *    removed us meanwhile);
 *  - no state, no other address in CLUSTER.nodes: bootstrap a one-member
 *    cluster whose allowed list is CLUSTER.nodes plus us;
 *  - otherwise ask the listed peers to admit us; when a majority of the
 *    listed agents give us their bootstrap vote and none has a cluster we
 *    bootstrap, and the others keep asking.  Votes flow to the lowest
 *    address and a vote given away is kept on disk until its holder gives
 *    up its own (cluster_join.c), so two clusters never form from one
 *    .nodes set.
 * The leader admits only allowed hosts; a refused agent is asked to stop
 * with CLUSTER_STOP_REFUSED.
 *
 * cluster_shutdown(leave=true) is the SIGTERM path: leave the membership
 * (transferring leadership first), wipe the Raft state, close.  With
 * leave=false (stop-cluster, start-up failure) the state is kept and the
 * cluster resumes when the agents start again.
 */
#ifndef EFM_CLUSTER_H
#define EFM_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>
#include <uv.h>

#include "admin.h"
#include "clusterfsm.h"
#include "config.h"
#include "members.h"
#include "notify.h"
#include "raftio.h"
#include "rpc.h"
#include "status.h"

struct cluster;
struct db_probe_result;

/* Why the cluster layer asks the agent to stop; the agent chooses its exit code. */
enum cluster_stop_reason {
	CLUSTER_STOP_REQUESTED, /* stop-cluster: a clean stop that keeps the membership */
	CLUSTER_STOP_FAILED,    /* the consensus module failed */
	CLUSTER_STOP_REFUSED,   /* the leader refused to admit this node */
};

/* What the agent provides to the cluster layer. */
struct cluster_hooks {
	void *arg;
	/* local fills the agent's own report; false while its role is not known yet. */
	bool (*local)(void *arg, struct members_report *out);
	/* stop asks the agent to stop (stop-cluster, refused admission, failure). */
	void (*stop)(void *arg, enum cluster_stop_reason reason, const char *why);
	/*
	 * local_node fills this node's row and adds its messages to m (the
	 * agent knows its monitor), and its xlog cells when the monitor's latest
	 * check is fresh (cluster_status_fresh_ms); may be NULL.
	 */
	void (*local_node)(void *arg, struct status_model *m, struct status_node *n);
	/* event reports a notification (node is the address it concerns); may be NULL. */
	void (*event)(void *arg, enum notify_event ev, const char *node);
};

/*
 * The failover layer's hooks.  tick runs at the end of every membership
 * tick (after liveness and the leader's duties); request receives every
 * peer request whose type begins with "fo-", from members and allowed
 * hosts only, and answers it on conn (rpc_reply now, or rpc_conn_ref and
 * later rpc_reply_release).
 */
struct cluster_ext {
	void *arg;
	void (*tick)(void *arg);
	void (*request)(void *arg, struct rpc_conn *conn, uint64_t peer_id, const char *peer_addr,
	                const cJSON *msg);
	/* status adds the failover part to the cluster status (may be NULL). */
	void (*status)(void *arg, struct status_model *m);
	/* decision: the coordinator's latest decision, sent with the leader's heartbeats. */
	const char *(*decision)(void *arg);
};

/*
 * cluster_new prepares the layer; password is the decrypted database
 * password (for the derived peer key).  NULL after logging why.
 */
struct cluster *cluster_new(uv_loop_t *loop, const struct efm_config *cfg, const char *state_dir,
                            const char *password, const struct cluster_hooks *hooks);

/* cluster_start listens and starts the membership timer; false after logging why. */
bool cluster_start(struct cluster *c) __attribute__((warn_unused_result));

/*
 * cluster_shutdown leaves the cluster when leave is true (bounded by a few
 * seconds), then closes everything and calls done(arg).  The struct is
 * freed after done returns.  Idempotent: later calls are ignored.
 */
void cluster_shutdown(struct cluster *c, bool leave, void (*done)(void *arg), void *arg);

/* cluster_set_ext installs the failover layer's hooks (before cluster_start). */
void cluster_set_ext(struct cluster *c, const struct cluster_ext *ext);

/* ---- what the failover layer reads and does through the cluster (cluster_api.c) ---- */

/* The applied replicated state. */
const struct cluster_state *cluster_state(const struct cluster *c);
/* This agent's Raft id and peer address. */
uint64_t cluster_self_id(const struct cluster *c);
const char *cluster_self_address(const struct cluster *c);
/* The node timeout T and the membership tick, ms. */
uint64_t cluster_node_timeout_ms(const struct cluster *c);
uint64_t cluster_tick_ms(const struct cluster *c);
/* The loop's clock, ms. */
uint64_t cluster_clock(const struct cluster *c);
/* This agent leads, and the current Raft term. */
bool cluster_is_leader(struct cluster *c);
uint64_t cluster_term(struct cluster *c);
/* Voters of the current Raft configuration. */
size_t cluster_voter_count(struct cluster *c);
/* A member agent heard within the node timeout; ms since it was last heard (or tracked). */
bool cluster_member_alive(struct cluster *c, uint64_t id);
uint64_t cluster_member_silent_ms(struct cluster *c, uint64_t id);
/*
 * cluster_member_report: the latest report of a live member, or this
 * agent's own; false when not alive, never reported, or not known yet.
 */
bool cluster_member_report(struct cluster *c, uint64_t id, struct members_report *out);
/*
 * cluster_lease_ms: when our two-way contact with the leader was last
 * proven (the send time of our latest heartbeat round the leader echoed,
 * or now while we lead); 0 never.
 */
uint64_t cluster_lease_ms(const struct cluster *c);
/* The latest decision the leader sent with its heartbeats ("" none), and the leader. */
const char *cluster_leader_decision(const struct cluster *c);
const char *cluster_leader(struct cluster *c);
/*
 * The loop-stall guard: a membership tick (every 100 ms) that runs more
 * than a quarter of the node timeout late means this agent's loop was
 * stalled (a blocked call, the host suspended or swapping): timers that
 * span the stall measured nothing real.  cluster_stalled_recently says
 * whether that happened within the last node timeout, so that the
 * failover code holds off its timer-driven actions (Redis Sentinel's TILT
 * mode); cluster_last_stall_ms is when it was last noticed (loop clock,
 * 0 never).
 */
bool cluster_stalled_recently(const struct cluster *c);
uint64_t cluster_last_stall_ms(const struct cluster *c);
/* The database password, for probes of other members' databases. */
const char *cluster_db_password(const struct cluster *c);

/*
 * cluster_log_json describes the local Raft log and applied state for
 * node-status-json: term, last index and term, commit and applied index,
 * and state_digest, the SHA-256 of the applied state, equal on every
 * member that applied the same entries.  NULL when out of memory.
 */
cJSON *cluster_log_json(struct cluster *c);
/* Propose a command (leader only; see raftio_propose). */
int cluster_propose(struct cluster *c, const struct clusterfsm_cmd *cmd, raftio_propose_cb cb,
                    void *arg) __attribute__((warn_unused_result));
/* Call a peer agent (see rpc_call). */
int cluster_call(struct cluster *c, const char *address, cJSON *req, uint64_t timeout_ms,
                 rpc_call_cb cb, void *arg) __attribute__((warn_unused_result));
/* cluster_notify reports a notification through the agent (node: the address it concerns). */
void cluster_notify(struct cluster *c, enum notify_event ev, const char *node);

/* cluster_in_majority: a Raft leader with recent contact is known (or we lead). */
bool cluster_in_majority(const struct cluster *c);

/*
 * cluster_other_master: the replicated state lists a Master member other
 * than this agent; its address is copied to addr.  Used to refuse resuming
 * a second master.
 */
bool cluster_other_master(const struct cluster *c, char *addr, size_t len);

/*
 * cluster_admin_command runs a node management command (add-node,
 * allow-node, remove-node, disallow-node, set-priority, stop-cluster):
 * forwarded to the leader, applied through Raft, answered with
 * {"ok":true,"message":...} or an error, within a bounded time.
 */
void cluster_admin_command(struct cluster *c, struct admin_request *req);

/*
 * cluster_reset_members runs reset-members, coordinated by this agent
 * itself (cluster_reset_coord.c): it only acts without a leader, and
 * answers with the new voting set.
 */
void cluster_reset_members(struct cluster *c, struct admin_request *req);

/*
 * cluster_status_command answers cluster-status(-json) with every member's
 * state, from fresh samples where it can, else after a shared probe round
 * (cluster_status.c says how the databases are spared).
 */
void cluster_status_command(struct cluster *c, struct admin_request *req);

/*
 * How old a sample may be for the status to use it instead of querying the
 * database: local.period plus this margin (a check's own duration, a
 * heartbeat's way).
 */
#define CLUSTER_STATUS_MARGIN_MS 2000
uint64_t cluster_status_fresh_ms(const struct efm_config *cfg);

/*
 * cluster_status_xlog fills the Promote Status cells of a status row (xlog,
 * and xloginfo for an Idle node) from a query of its database.
 */
void cluster_status_xlog(struct status_node *n, const struct db_probe_result *r);

#endif
