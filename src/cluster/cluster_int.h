/*
 * cluster_int.h - the cluster layer's private state and the calls its parts
 * make to each other:
 *   cluster.c             life cycle: start, tick, peer requests, restart, leave, close
 *   cluster_join.c        joining, bootstrap votes, seeding the allowed list
 *   cluster_live.c        heartbeats, who is watched, the majority flag, the stall guard
 *   cluster_util.c        phase, clock, leader address, .nodes file, message shapes
 *   cluster_admit.c       the leader's side of membership: admit, remove
 *   cluster_cmds.c        node management commands, forwarding, stop-cluster
 *   cluster_reset_probe.c reset-members, the coordinator's probes and choice of set
 *   cluster_reset_coord.c reset-members, the coordinator's steps (the protocol)
 *   cluster_reset_part.c  reset-members, the agents that take part
 *   cluster_status.c      cluster-status
 */
#ifndef EFM_CLUSTER_INT_H
#define EFM_CLUSTER_INT_H

#include "cluster.h"
#include "nodesfile.h"
#include "raftio.h"
#include "rpc.h"

/* How long a graceful leave may take before the agent exits anyway, ms. */
#define CLUSTER_LEAVE_TIMEOUT_MS 5000
/* Bound of one leave request to the leader, ms; retried until CLUSTER_LEAVE_TIMEOUT_MS. */
#define CLUSTER_LEAVE_CALL_MS 2000
/*
 * The membership timer's period, ms; heartbeats and retries are paced by
 * tick_ms.  The leave retries run at the same period.
 */
#define CLUSTER_POLL_MS 100
/* Delay of the first membership tick after cluster_start, ms. */
#define CLUSTER_FIRST_TICK_MS 20
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
/* stop-cluster: bound of telling one member to stop, ms. */
#define CLUSTER_STOP_CALL_MS 2000
/* stop-cluster: the agent that ran it stops after this even if some member never answered, ms. */
#define CLUSTER_STOP_BOUND_MS 2500
/* stop-cluster: delay between the last answer (or the request) and the stop, ms. */
#define CLUSTER_STOP_DELAY_MS 100

/*
 * A membership tick later than this fraction of the node timeout (T/4) means
 * the loop was stalled: logged, and reported by cluster_stalled_recently.
 */
#define CLUSTER_STALL_DIVISOR 4
/* A self-report the leader refused is sent again after 1 s, doubling up to 30 s. */
#define CLUSTER_REFUSED_FIRST_MS 1000
#define CLUSTER_REFUSED_MAX_MS   30000

/* Heartbeat rounds remembered for the lease (cluster_live.c): a few node timeouts' worth. */
#define CLUSTER_HB_RING 128

/*
 * The voting set reset-members forces on the survivors.  Only the source,
 * the survivor with the most up-to-date log, keeps its log and forces the
 * set on it (raft_recover); the others discard theirs and take the
 * source's, so that no two logs hold different entries at one index.
 */
struct cluster_reset_set {
	size_t n;
	size_t source; /* index of the source in id and address */
	uint64_t id[CLUSTERFSM_MAX_NODES];
	char address[CLUSTERFSM_MAX_NODES][CLUSTERFSM_ADDR_MAX];
};

/*
 * Where the agent is in the cluster layer's life.  The phases exclude each
 * other: seeding blocks every membership change, a reset in any of its
 * steps refuses another and blocks the restart it is not part of, and
 * nothing starts once the layer is closing.  Only cluster_set_phase moves
 * it, along the moves its table allows.
 */
enum cluster_phase {
	CLUSTER_RUNNING,   /* joining (see started) or a member with nothing special going on */
	CLUSTER_SEEDING,   /* bootstrapped: the allowed list is being seeded */
	CLUSTER_RESETTING, /* coordinating a reset-members (cluster_reset_coord.c) */
	CLUSTER_RESET_PREPARED, /* phase 1 accepted: reset_set held until commit or expiry */
	CLUSTER_RESET_ARMED,    /* committed: restart with reset_set when reset_timer fires */
	CLUSTER_REOPENING,      /* raft closed, restarting with reset_set */
	CLUSTER_CLOSING,        /* cluster_shutdown called: leaving (if asked), then closing */
	CLUSTER_LEFT,           /* the leader removed us: the local state is wiped once closed */
};

/*
 * The booleans that remain beside the phase are facts that hold across
 * phases, not phases: whether Raft runs (started stays true while closing
 * or restarting), which handles are open, and the leader's and the
 * leaver's operations in flight, which are bounded by their own callbacks
 * and may overlap each other and a reset (an admission and a removal may
 * both wait on commits when leadership is lost).
 */
struct cluster {
	uv_loop_t *loop;
	const struct efm_config *cfg;
	struct cluster_hooks h;
	char name[128];
	char dir[4096];       /* STATE_DIR/CLUSTER/raft */
	char vote_path[4096]; /* STATE_DIR/CLUSTER/bootstrap-vote */
	char address[CLUSTERFSM_ADDR_MAX];
	uint64_t id;
	uint8_t key[32];
	char password[256]; /* database password, for the Promote Status probes */

	/* Timing, all ms; see cluster_timing() for how they follow the node timeout. */
	uint64_t node_timeout_ms, election_ms, heartbeat_ms, tick_ms, removal_ms;

	enum cluster_phase phase; /* moved by cluster_set_phase only */

	struct raftio rio;
	bool rio_open; /* raftio_init succeeded: must be closed */
	bool started;  /* raftio_start done */
	struct rpc *rpc;
	struct members mem;
	uv_timer_t tick;
	bool tick_open;

	/* Joining. */
	bool had_state;   /* raft state found at start */
	int seed_pending; /* ALLOW_NODE proposals outstanding */
	int join_pending; /* join calls outstanding */
	uint64_t join_last_ms;
	uint64_t hb_last_ms;
	struct members_report hb_rep; /* what the last heartbeat round said */
	int round_votes;              /* bootstrap votes granted to us in this discovery round */
	bool round_void;              /* we gave our own vote away during this round */
	/*
	 * Our bootstrap vote (cluster_join.c): held by one address at a
	 * time, ourselves (vote_for empty or our address) or a peer.  A vote
	 * given to a peer is kept on disk (vote_path) and stays with it until
	 * it says it no longer holds its own; a node bootstraps only with the
	 * votes of a majority of the listed agents, so at most one can.
	 */
	char vote_for[CLUSTERFSM_ADDR_MAX];

	/* The leader's membership operations in flight (cluster_admit.c). */
	bool admitting; /* one admission at a time */
	bool removing;  /* one removal at a time */
	/* a voter whose raft_remove failed after its MEMBER_LEAVE: retried by the leader's tick */
	uint64_t remove_retry_id;
	char remove_retry_address[CLUSTERFSM_ADDR_MAX];
	/*
	 * Reports of other agents the leader refused and warned about, one
	 * episode each (cluster_admit.c): the warning is not repeated for the
	 * same agent and report.
	 */
	struct cluster_refusal {
		uint64_t id;
		enum clusterfsm_role role;
		enum clusterfsm_up db;
	} warned[CLUSTERFSM_MAX_NODES];
	size_t n_warned;

	/*
	 * Our own report refused by the leader (cluster_admit.c): sent again at
	 * refused_next_ms, the delay doubling while the same report is refused.
	 */
	struct members_report report_sent; /* the report of our latest join */
	bool report_refused;
	struct members_report refused_rep;
	uint64_t refused_next_ms, refused_delay_ms;

	/* The .nodes file, kept equal to the applied state (cluster_util.c). */
	struct nodesfile nodes;
	bool nodes_dirty; /* the applied state changed since the text was last handed over */

	/* The loop-stall guard (cluster_live.c). */
	uint64_t tick_last_ms;  /* when the previous membership tick ran, 0 none yet */
	uint64_t last_stall_ms; /* when a stall was last noticed, 0 never */

	/*
	 * The two-way lease with the leader (cluster_live.c): every heartbeat
	 * round has a sequence number; peers echo the last one they heard from
	 * us, and an echo from the leader proves the leader heard the round
	 * sent at hb_sent_ms.  lease_ms is the send time of the latest round
	 * the leader has echoed (now, while we lead).
	 */
	uint64_t hb_seq;
	uint64_t hb_ring_seq[CLUSTER_HB_RING], hb_ring_ms[CLUSTER_HB_RING];
	uint64_t lease_ms;
	char leader_decision[512]; /* the leader's latest failover decision, from its heartbeats */

	/* The failover layer's hooks (cluster_set_ext); zeroed when unset. */
	struct cluster_ext ext;

	/* Majority. */
	bool majority_known, in_majority;
	uint64_t leader_since_ms; /* when we became leader, 0 if not */
	size_t last_voters;

	/* reset-members (cluster_reset_coord.c, cluster_reset_part.c). */
	uint64_t reset_id; /* the coordinator's random id of the prepared/armed reset */
	char reset_from[CLUSTERFSM_ADDR_MAX]; /* the coordinator of that reset */
	struct cluster_reset_set reset_set;
	uv_timer_t reset_timer;
	bool reset_timer_open;

	/* Shutdown. */
	uint64_t defer_until_ms; /* leave deadline */
	bool transferring;       /* leaving: our leadership transfer in flight */
	int leave_pending;       /* leave calls in flight */
	bool no_leave;           /* stop-cluster: keep membership and state */
	uv_timer_t stop_timer;
	bool stop_timer_open;
	int stops_pending; /* stop-cluster: members still to be told */
	uv_timer_t leave_timer;
	bool leave_timer_open;
	void (*done)(void *arg);
	void *done_arg;
	int closing_parts;

	struct status_rounds *status_rounds; /* cluster_status.c, made on first use */
};

/*
 * cluster_rpc_fn handles one request of a peer (its raft id and announced
 * address, authenticated); it answers on conn with rpc_reply now, or later
 * after rpc_conn_ref.  msg is valid only during the call.  cluster.c
 * dispatches the requests by type.
 */
typedef void (*cluster_rpc_fn)(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                               const char *peer_addr, const cJSON *msg);

/* cluster_util.c */
/*
 * cluster_set_phase moves c->phase, logging old -> new; an impossible move
 * is logged and refused (false).
 */
bool cluster_set_phase(struct cluster *c, enum cluster_phase to);
const char *cluster_phase_name(enum cluster_phase p);
/* cluster_closing: cluster_shutdown was called; nothing new may start. */
bool cluster_closing(const struct cluster *c);
/* cluster_in_reset: a reset-members is coordinated, prepared or armed here. */
bool cluster_in_reset(const struct cluster *c);
uint64_t cluster_now(const struct cluster *c);
/* cluster_leader_address: the leader's address or NULL when none is known. */
const char *cluster_leader_address(struct cluster *c);
/*
 * cluster_self_msg builds a message of type that says who we are and what
 * we report: {"type", "id", "address", "role", "db"} (heartbeat, join).
 */
cJSON *cluster_self_msg(struct cluster *c, const char *type, const struct members_report *rep);
/*
 * cluster_sync_nodes hands the .nodes text of the applied state to the
 * writer when the state changed since the last time (nodes_dirty) and Raft
 * has applied every entry it knows committed, or at once with force (at
 * close).  A state without members says nothing about the peers: the file
 * is kept.
 */
void cluster_sync_nodes(struct cluster *c, bool force);
/* Replies: {"ok":false,"error":...}, {"ok":true,"message":...}, {"ok":true,"cluster":true}. */
cJSON *cluster_error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cluster_retry_reply: an error from a node that has a cluster, worth asking again. */
cJSON *cluster_retry_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
cJSON *cluster_ok_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
cJSON *cluster_ok_reply(void);

/* cluster_join.c */
/*
 * cluster_load_vote reads a bootstrap vote given before a restart (an agent
 * with no cluster state yet): it stays with its holder while that agent is
 * still listed in the .nodes file.
 */
void cluster_load_vote(struct cluster *c);

/* cluster_start_raft starts the server, bootstrapping a one-member cluster when asked. */
bool cluster_start_raft(struct cluster *c, bool bootstrap);
/* cluster_join_msg builds our join request (also what the leader admits itself with). */
cJSON *cluster_join_msg(struct cluster *c, const struct members_report *rep);
/* cluster_send_joins asks the leader to admit us, or without one every listed or known peer. */
void cluster_send_joins(struct cluster *c, const struct members_report *rep);
/* cluster_seed proposes the initial allowed list: every .nodes address plus us. */
void cluster_seed(struct cluster *c);
void cluster_rpc_join(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                      const char *peer_addr, const cJSON *msg);

/* cluster_live.c */
/*
 * cluster_watch_stall measures the lateness of this membership tick; a
 * stall longer than T/4 is logged and remembered (cluster_stalled_recently).
 */
void cluster_watch_stall(struct cluster *c);
/*
 * cluster_track_peers watches the members of the applied state and the
 * servers of the Raft configuration (a voter without a member record must
 * be judged too), and forgets every other peer.
 */
void cluster_track_peers(struct cluster *c);
void cluster_send_heartbeats(struct cluster *c, const struct members_report *rep);
/* cluster_check_majority keeps the majority flag and logs every change. */
void cluster_check_majority(struct cluster *c);
/* cluster_update_lease recomputes the lease from the voters' echoes (cluster_live.c). */
void cluster_update_lease(struct cluster *c);
void cluster_rpc_hb(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                    const char *peer_addr, const cJSON *msg);

/* cluster_cmds.c */
/* cluster_forward relays msg to the leader and answers conn with its reply. */
void cluster_forward(struct cluster *c, struct rpc_conn *conn, const cJSON *msg);
void cluster_rpc_cmd(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                     const char *peer_addr, const cJSON *msg);
void cluster_rpc_stop(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                      const char *peer_addr, const cJSON *msg);

/* cluster_admit.c */
/* cluster_admit handles a join request on the leader (conn NULL: our own join). */
void cluster_admit(struct cluster *c, struct rpc_conn *conn, const cJSON *msg);
/*
 * The backoff of a refused self-report.  cluster_report_refused records
 * that the leader refused rep (why: its reason), warning once per episode;
 * cluster_report_held says whether rep must wait before it is sent again
 * (false once it differs from the refused one); cluster_report_accepted
 * ends the episode.
 */
void cluster_report_refused(struct cluster *c, const struct members_report *rep, const char *why);
bool cluster_report_held(struct cluster *c, const struct members_report *rep);
void cluster_report_accepted(struct cluster *c);
/* cluster_remove_member commits MEMBER_LEAVE then raft_remove; answers conn if given. */
void cluster_remove_member(struct cluster *c, uint64_t id, const char *address,
                           struct rpc_conn *conn);
/* cluster_leader_duties removes one long-silent voter and warns below three voters. */
void cluster_leader_duties(struct cluster *c);
/* cluster_reset_gone: after a reset, the leader drops one member left outside the voting set. */
void cluster_reset_gone(struct cluster *c);
/* cluster_rpc_leave: the leader removes the member that asks (never forwarded). */
void cluster_rpc_leave(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                       const char *peer_addr, const cJSON *msg);

/* cluster_status.c */
/* cluster_status_close answers the status requests still waiting and lets the probes finish. */
void cluster_status_close(struct cluster *c);

/* cluster.c */
/*
 * cluster_reopen closes the Raft server (and the RPC layer), then starts it
 * again with raft_recover forcing c->reset_set as the voting set.
 */
void cluster_reopen(struct cluster *c);

/* cluster_reset_part.c: the participant's requests, and what coordinator and participants share. */
void cluster_rpc_reset_probe(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg);
/* phase 1: validate the proposed voting set and hold it, restarting nothing */
void cluster_rpc_reset_apply(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg);
/* phase 2: check once more for a leader, then arm the restart */
void cluster_rpc_reset_commit(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                              const char *peer_addr, const cJSON *msg);
/* drop the prepared or armed (not yet restarted) reset named by the message */
void cluster_rpc_reset_abort(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg);
/* cluster_reset_arm restarts raft with c->reset_set after delay_ms, unless a leader appears. */
void cluster_reset_arm(struct cluster *c, uint64_t delay_ms);
/* cluster_reset_id_text formats a reset id for messages and logs (out: 17 bytes or more). */
void cluster_reset_id_text(uint64_t rid, char *out, size_t len);
/*
 * cluster_reset_newer: the log ending at (term, index) is more up to date
 * than the one ending at (than_term, than_index), Raft's comparison: the
 * later last term wins, then the longer log.
 */
bool cluster_reset_newer(uint64_t term, uint64_t index, uint64_t than_term, uint64_t than_index);
/* cluster_reset_set_text lists the addresses of a reset set, comma separated. */
void cluster_reset_set_text(const struct cluster_reset_set *s, char *out, size_t len);

#endif
