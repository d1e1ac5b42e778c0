/*
 * raftio.h - libraft glue: one raft server on our authenticated transport,
 * with the cluster state machine (clusterfsm.h) as its FSM.
 *
 * Start-up order: raftio_init (transport listening, so RPCs work before the
 * server runs), then raftio_start (load the data directory, bootstrap or
 * recover if asked, start).  raftio_close stops everything and calls back
 * once every handle has closed.  Every callback runs on the loop thread.
 *
 * Requests (propose, add, remove, transfer) call their callback exactly
 * once, also when the server closes (status RAFT_CANCELED).
 */
#ifndef EFM_RAFTIO_H
#define EFM_RAFTIO_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "clusterfsm.h"
#include "peerauth.h"

#define RAFTIO_RESULTS 32 /* apply results kept for the proposers */

/*
 * Called after every committed command was applied on this server, and with
 * cmd NULL after the whole state was replaced by a snapshot (installed by
 * the leader or loaded at start).
 */
typedef void (*raftio_applied_cb)(void *arg, const struct clusterfsm_cmd *cmd,
                                  enum clusterfsm_code code);
/* End of a propose: status 0 (res valid) or a RAFT_* error. */
typedef void (*raftio_propose_cb)(void *arg, int status, const struct clusterfsm_result *res);
/* End of a membership change or transfer: status 0 or a RAFT_* error. */
typedef void (*raftio_done_cb)(void *arg, int status);

struct raftio {
	uv_loop_t *loop;
	struct raft_uv_transport t;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft r;
	bool t_ready, io_ready, r_ready, started, closing;
	char dir[4096];
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	unsigned election_ms, heartbeat_ms;
	struct cluster_state st; /* the applied state */
	struct clusterfsm_result results[RAFTIO_RESULTS];
	uint64_t n_results;
	raftio_applied_cb on_applied;
	void *arg;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* raftio_id_of: the stable nonzero raft id of an agent address "host:port". */
uint64_t raftio_id_of(const char *address);

/*
 * raftio_init sets up the transport with key and listens on address.
 * Returns 0 or a RAFT_* error (errmsg filled).
 */
int raftio_init(struct raftio *x, uv_loop_t *loop, const char *dir, const uint8_t *key,
                const char *address, unsigned election_ms, unsigned heartbeat_ms,
                raftio_applied_cb on_applied, void *arg, char *errmsg, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * raftio_start loads the data directory and starts the server.  With
 * bootstrap_self a pristine directory first gets the one-member
 * configuration {us}; with recover (n > 0) the configuration is forced to
 * the given servers (raft_recover; operator escape hatch).
 */
int raftio_start(struct raftio *x, bool bootstrap_self, const struct raft_configuration *recover,
                 char *errmsg, size_t errlen) __attribute__((warn_unused_result));

/* raftio_has_state: the data directory holds a raft state (metadata). */
bool raftio_has_state(const char *dir);

/*
 * raftio_discard_log removes the log and the snapshots from the data
 * directory of a closed server and keeps its metadata (current term and
 * vote, which must survive: a vote given in a term is never given twice).
 * Started again, the server has no entry and no configuration and takes
 * both from a leader.  0 or -errno.
 */
int raftio_discard_log(const char *dir) __attribute__((warn_unused_result));

/*
 * The last entry of the local log, committed or not: its index and its
 * term (0 and 0 for an empty log), what Raft compares to tell which of two
 * logs is more up to date.
 */
uint64_t raftio_last_index(struct raftio *x);
uint64_t raftio_last_term(struct raftio *x);

/* raftio_leader: the known leader's id and address (0 / "" when none). */
uint64_t raftio_leader(struct raftio *x, const char **address);
bool raftio_is_leader(struct raftio *x);
/* raftio_configured: the server knows a configuration (bootstrapped or joined). */
bool raftio_configured(struct raftio *x);
/* raftio_voter: id is a voter in the current configuration. */
bool raftio_voter(struct raftio *x, uint64_t id);
/* raftio_in_config: id is in the current configuration, whatever its role. */
bool raftio_in_config(struct raftio *x, uint64_t id);
/* raftio_voters fills ids (up to n); returns how many voters there are. */
size_t raftio_voters(struct raftio *x, uint64_t *ids, size_t n);
/* raftio_change_pending: a configuration change has not committed yet. */
bool raftio_change_pending(struct raftio *x);

int raftio_propose(struct raftio *x, const struct clusterfsm_cmd *cmd, raftio_propose_cb cb,
                   void *arg) __attribute__((warn_unused_result));
/* raftio_add_voter adds id (if absent) and makes it a voter (if it is not). */
int raftio_add_voter(struct raftio *x, uint64_t id, const char *address, raftio_done_cb cb,
                     void *arg) __attribute__((warn_unused_result));
int raftio_remove(struct raftio *x, uint64_t id, raftio_done_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* raftio_transfer hands leadership to any voting follower. */
int raftio_transfer(struct raftio *x, raftio_done_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* raftio_close stops the server and transport; cb(arg) when all handles are closed. */
void raftio_close(struct raftio *x, void (*cb)(void *arg), void *arg);

#endif
