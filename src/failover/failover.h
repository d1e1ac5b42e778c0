/*
 * failover.h - the failover engine as the agent sees it.
 *
 * Two halves run in every agent, on its loop, driven by the cluster tick:
 *  - the coordinator (coord.c), active only on the Raft leader: it watches
 *    the master record of the replicated state and the master agent's
 *    reports, confirms a lost master database through every agent, picks
 *    the standby to promote, and carries the promotion through the phases
 *    committed in the replicated lock (FENCING -> PROMOTING -> VIP ->
 *    RECONFIGURING -> DONE).  Its policy is the table in decide.h.  It acts
 *    only from committed state, so a leader that takes over half-way
 *    resumes from the last committed phase, after its own barrier entry
 *    has been applied.
 *  - the node side (node.c), in every agent: it answers the coordinator's
 *    requests on this node (probe the master database, fence, promote,
 *    assign the VIP, follow the new master), each idempotent, and keeps
 *    the safety rule: a master agent that has not had two-way contact with
 *    the leader for the isolation time fences its own database.
 *
 * The numbers of the safety rule, from the node timeout T:
 *   isolation time  L = T/2: a master without a proven two-way contact
 *                   with the leader for L fences itself (the lease, see
 *                   cluster_lease_ms);
 *   the majority    takes the master agent for lost only after T of
 *                   silence, so with the membership tick (<= T/6) and a
 *                   fence that stops the database at once (pg_ctl -m
 *                   immediate) the old master has stopped taking writes
 *                   before a promotion can begin.
 * The rule applies with three or more voters only; with two, a lost
 * master host cannot be failed over (there is no majority without it).
 */
#ifndef EFM_FAILOVER_H
#define EFM_FAILOVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "cluster.h"
#include "config.h"
#include "decide.h"
#include "notify.h"

struct fo_action;
struct fo_manual;
struct db_sample;
struct admin_request;

/* What the failover engine needs from the agent. */
struct failover_hooks {
	void *arg;
	/* the agent's role (Master/Standby/Witness/Idle) */
	enum node_type (*role)(void *arg);
	/* the local database is running as a master (the monitor's latest check) */
	bool (*db_is_master)(void *arg);
	/* move the agent's role, with the reason for the log */
	void (*set_role)(void *arg, enum node_type type, const char *why);
	/* check the local database now (it was just promoted) */
	void (*check_now)(void *arg);
	/* watch the local database again (it was stopped and started by a switchover) */
	void (*resume)(void *arg, const struct db_sample *seen, const char *why);
	/* send a notification */
	void (*notify)(void *arg, enum notify_event ev, const struct notify_args *args);
};

/* What the leader last saw of a member (watch.c). */
struct fo_seen {
	uint64_t id;
	bool known, alive, reported;
	enum clusterfsm_role role;
};

/* One candidate found by the select round. */
struct fo_candidate {
	char address[CLUSTERFSM_ADDR_MAX];
	char lsn[32];
	uint64_t lsn_value;
	int priority; /* 1-based position in the priority list, 0 unlisted */
	bool paused;
};

struct failover {
	uv_loop_t *loop;
	const struct efm_config *cfg;
	const char *password; /* the local database's, for probes */
	struct cluster *cl;
	struct failover_hooks h;
	bool closed;

	/* ---- coordinator (coord.c) ---- */
	enum fo_state state;
	uint64_t gen;            /* bumped when a round is abandoned; stale answers are dropped */
	uint64_t ready_term;     /* term whose barrier entry has been applied */
	uint64_t barrier_term;   /* term of the barrier in flight, 0 none */
	char decision[512];      /* the latest decision, for logs and the status */
	char aborted[512];       /* why the last promotion was aborted, for the decision after */
	uint64_t aborted_serial; /* the promotion it is about */
	char claimed[CLUSTERFSM_ADDR_MAX]; /* the member that runs a master, none recorded */
	bool record_pending;               /* SET_MASTER of claimed in flight */
	bool warned_claims;                /* logged that several members run a master */
	/* confirmation round */
	int asked, answered, reached, unverified;
	bool confirm_done;
	/* selection round */
	int probes_pending;
	bool select_done;
	struct fo_candidate best;
	bool have_best;
	bool other_master; /* a standby's database already runs as a master */
	char no_best_why[256];
	/* holding */
	uint64_t hold_since_ms;
	bool hold_recheck;
	int hold_notified; /* 1 + the notification sent in this episode, 0 none */
	/* driving the committed promotion */
	bool step_busy;
	uint64_t step_serial;
	int step_phase;
	int step_failures;
	uint64_t step_retry_at;
	uint64_t step_since_ms; /* when this agent began driving the current phase */
	int follow_pending, follow_failed;
	/* a switchover (coord_switch.c) */
	char sw_final[32]; /* the stopped master's final position, "" not known yet */
	uint64_t sw_final_value;
	bool sw_restarted; /* the abort restarted the old master: release now */
	bool sw_restarting;
	bool lock_pending;

	/* efm promote: the operator's request being handled (manual.c), NULL none */
	struct fo_manual *manual;
	/* the master's last reported WAL position, for the lag a manual promotion accepts */
	char master_lsn_of[CLUSTERFSM_ADDR_MAX];
	char master_lsn[32];
	uint64_t master_lsn_value;

	/* the other members as last seen (watch.c) */
	struct fo_seen seen[CLUSTERFSM_MAX_NODES];
	size_t n_seen;

	/* ---- node side (node.c) ---- */
	bool expect_master;       /* this node was asked to promote: the role change is ours */
	bool fenced;              /* this node fenced its database (isolation or request) */
	bool fencing;             /* a self-fence is in progress */
	uint64_t master_since_ms; /* when the agent was last seen becoming Master */
	uint64_t last_tick_ms;    /* for the loop-stall guard */
	uint64_t stall_grace_until;
	size_t last_voters; /* the voting set's size at the last tick */
	bool vip_checked;   /* the VIP was assigned (or found held) at start as master */
	struct fo_action *self_action;
	void *node_jobs[8]; /* node.c: the running job of each kind that others may join */

	/* Runs the coordinator right after an answer, not at the next tick (fo_kick). */
	uv_timer_t kick;
	bool kick_open;
};

/* failover_init prepares the engine and installs its cluster hooks; before cluster_start. */
void failover_init(struct failover *fo, uv_loop_t *loop, const struct efm_config *cfg,
                   const char *password, struct cluster *cl, const struct failover_hooks *h);

/* failover_close stops every round and action in flight; later answers are dropped. */
void failover_close(struct failover *fo);

/*
 * failover_expects_master: the local database turning master is the
 * promotion this node was asked for (the agent becomes Master, not Idle).
 */
bool failover_expects_master(const struct failover *fo);

/* failover_isolation_ms: L, the lease a master must renew (see the file comment). */
uint64_t failover_isolation_ms(uint64_t node_timeout_ms);

/*
 * failover_promote_command answers efm promote (admin socket): the request
 * goes to the leader's coordinator, which answers once the promotion lock
 * is taken or with the reason it refuses.
 */
void failover_promote_command(struct failover *fo, struct admin_request *req);

/*
 * failover_rejoin_command answers efm rejoin (admin socket): this old
 * master's database, rewound when it diverged, starts as a standby of the
 * cluster's master and the agent watches it again (rejoin.c).
 */
void failover_rejoin_command(struct failover *fo, struct admin_request *req);

/* coord.c */
void fo_coord_tick(struct failover *fo);
/* fo_kick runs the coordinator again as soon as the loop is free (after an answer came). */
void fo_kick(struct failover *fo);
void fo_coord_status(struct failover *fo, struct status_model *m);
/* fo_decision: the decision to show; why an aborted promotion failed while it is the last. */
const char *fo_decision(struct failover *fo);

/* watch.c: the leader's checks and notifications for members other than the master */
void fo_watch_tick(struct failover *fo);
void fo_watch_forget(struct failover *fo);

/* node.c */
void fo_node_tick(struct failover *fo);
void fo_node_request(struct failover *fo, struct rpc_conn *conn, const char *peer_addr,
                     const cJSON *msg);
/*
 * fo_node_run answers msg on this node as if a peer had sent it: reply(arg,
 * status, answer) runs exactly once, possibly before fo_node_run returns.
 */
void fo_node_run(struct failover *fo, const cJSON *msg, rpc_call_cb reply, void *arg);

#endif
