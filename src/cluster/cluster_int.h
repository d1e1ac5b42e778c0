/*
 * cluster_int.h - the cluster layer's private state, shared by cluster.c
 * (life cycle, join, leave, liveness), cluster_admit.c, cluster_cmds.c (node
 * management commands, forwarding, stop-cluster), cluster_reset.c
 * (reset-members) and cluster_status.c.
 */
#ifndef EFM_CLUSTER_INT_H
#define EFM_CLUSTER_INT_H

#include "cluster.h"
#include "raftio.h"
#include "rpc.h"

/* How long a graceful leave may take before the agent exits anyway, ms. */
#define CLUSTER_LEAVE_TIMEOUT_MS 5000
/* The membership timer's period, ms; heartbeats and retries are paced by tick_ms. */
#define CLUSTER_POLL_MS 100
/* Bound of one agent-to-agent call, ms (connect 2 s + answer). */
#define CLUSTER_CALL_TIMEOUT_MS 4000
/* Bound of a command forwarded to the leader, which may wait on a commit, ms. */
#define CLUSTER_FORWARD_TIMEOUT_MS 8000
/* reset-members: bound of one probe, prepare, commit or abort call, ms. */
#define CLUSTER_RESET_CALL_MS 3000
/*
 * Delay between a commit and the restart, ms: lets the replies go out, and
 * leaves the coordinator time to send an abort when another member refused
 * the commit.
 */
#define CLUSTER_RESET_DELAY_MS 1000
/* How long a participant keeps a prepared voting set waiting for its commit, ms. */
#define CLUSTER_RESET_PREPARE_MS 10000

/* The voting set reset-members forces on the survivors (raft_recover). */
struct cluster_reset_set {
	size_t n;
	uint64_t id[CLUSTERFSM_MAX_NODES];
	char address[CLUSTERFSM_MAX_NODES][CLUSTERFSM_ADDR_MAX];
};

struct cluster {
	uv_loop_t *loop;
	const struct efm_config *cfg;
	struct cluster_hooks h;
	char name[128];
	char dir[4096]; /* STATE_DIR/CLUSTER/raft */
	char address[CLUSTERFSM_ADDR_MAX];
	uint64_t id;
	uint8_t key[32];
	char password[256]; /* database password, for the Promote Status probes */

	/* Timing, all ms; see cluster_timing() for how they follow the node timeout. */
	uint64_t node_timeout_ms, election_ms, heartbeat_ms, tick_ms, removal_ms, defer_ms;

	struct raftio rio;
	bool rio_open; /* raftio_init succeeded: must be closed */
	bool started;  /* raftio_start done */
	struct rpc *rpc;
	struct members mem;
	uv_timer_t tick;
	bool tick_open;

	/* Joining. */
	bool had_state;   /* raft state found at start */
	bool seeding;     /* bootstrapped: allowed list being seeded */
	int seed_pending; /* ALLOW_NODE proposals outstanding */
	int join_pending; /* join calls outstanding */
	uint64_t join_last_ms;
	uint64_t hb_last_ms;
	int round_answers, round_nocluster;
	int round_votes; /* bootstrap votes granted to us in this discovery round */
	/*
	 * Our bootstrap vote (cluster.c, discovery): held by one address at a
	 * time, ourselves or a peer, until vote_until_ms; a node bootstraps only
	 * with the votes of a majority of the listed agents, so at most one can.
	 */
	char vote_for[CLUSTERFSM_ADDR_MAX];
	uint64_t vote_until_ms;
	uint64_t defer_until_ms; /* leave deadline */
	bool admitting;          /* leader: one admission at a time */
	bool updating;           /* our MEMBER_UPDATE in flight */
	bool removing;           /* leader: a dead member removal in flight */

	/* Majority. */
	bool majority_known, in_majority;
	uint64_t leader_since_ms; /* when we became leader, 0 if not */
	size_t last_voters;

	/* reset-members (cluster_reset.c). */
	bool resetting;      /* this agent coordinates a reset */
	bool reset_prepared; /* phase 1 accepted: reset_set held until commit or expiry */
	bool reset_armed;    /* committed: restart with reset_set when reset_timer fires */
	bool reopening;      /* raft closed, restarting with reset_set */
	uint64_t reset_id;   /* the coordinator's random id of the prepared/armed reset */
	char reset_from[CLUSTERFSM_ADDR_MAX]; /* the coordinator of that reset */
	struct cluster_reset_set reset_set;
	uv_timer_t reset_timer;
	bool reset_timer_open;

	/* Shutdown. */
	bool shutting;
	bool leave;
	bool left;
	int leave_pending; /* leave calls in flight */
	bool no_leave;     /* stop-cluster: keep membership and state */
	uv_timer_t stop_timer;
	bool stop_timer_open;
	int stops_pending; /* stop-cluster: members still to be told */
	uv_timer_t leave_timer;
	bool leave_timer_open;
	void (*done)(void *arg);
	void *done_arg;
	int closing_parts;
};

uint64_t cluster_now(const struct cluster *c);
/* cluster_leader_address: the leader's address or NULL when none is known. */
const char *cluster_leader_address(struct cluster *c);

/* cluster_cmds.c */
/* cluster_cmds_rpc handles "cmd" and "stop" requests; false if type is not one of them. */
bool cluster_cmds_rpc(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id, const char *type,
                      const cJSON *msg);
/* cluster_forward relays msg to the leader and answers conn with its reply. */
void cluster_forward(struct cluster *c, struct rpc_conn *conn, const cJSON *msg);
cJSON *cluster_error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cluster_admit.c */
cJSON *cluster_ok_reply(void);
/* cluster_admit handles a join request on the leader (conn NULL: our own join). */
void cluster_admit(struct cluster *c, struct rpc_conn *conn, const cJSON *msg);
/* cluster_remove_member commits MEMBER_LEAVE then raft_remove; answers conn if given. */
void cluster_remove_member(struct cluster *c, uint64_t id, const char *address,
                           struct rpc_conn *conn);
/* cluster_leader_duties removes one long-silent voter and warns below three voters. */
void cluster_leader_duties(struct cluster *c);

/* cluster.c, for the commands */
void cluster_write_nodes(struct cluster *c);
/*
 * cluster_reopen closes the Raft server (and the RPC layer), then starts it
 * again with raft_recover forcing c->reset_set as the voting set.
 */
void cluster_reopen(struct cluster *c);

/* cluster_reset.c */
/* cluster_reset_command runs reset-members for the admin client (this agent coordinates). */
void cluster_reset_command(struct cluster *c, struct admin_request *req);
/*
 * cluster_reset_rpc handles "reset-probe", "reset-apply" (phase 1: prepare),
 * "reset-commit" (phase 2) and "reset-abort"; false for other types.
 */
bool cluster_reset_rpc(struct cluster *c, struct rpc_conn *conn, const char *peer_addr,
                       const char *type, const cJSON *msg);
/* cluster_reset_gone: leader, after a reset: commit MEMBER_LEAVE for one member outside the voting
 * set. */
void cluster_reset_gone(struct cluster *c);


#endif
