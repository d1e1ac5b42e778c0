/*
 * clusterfsm.h - the replicated cluster state machine: the state every agent
 * applies, in the same order, from the committed Raft log.
 *
 * The module is pure: no I/O, no clock, no globals.  Everything it decides
 * depends only on the state and the command bytes, so every agent that
 * applies the same log reaches the same state, byte for byte (compare
 * snapshots to check it).
 *
 * Every command is a compare-and-set decision evaluated in apply: the
 * submitter proposes, the log orders, and apply says OK (changed), ALREADY
 * (the same change is already in place; nothing changed) or REJECTED (with a
 * reason).  At most one PROMOTION_LOCK can win for a given serial.
 *
 * Addresses.  The allowed node host list and the standby priority list hold
 * hosts ("10.0.1.9", "::1"); a member has an agent peer address
 * "host:port" ("[v6]:port" for IPv6).  Commands that name a node accept
 * either form and use its host part, as `efm add-node acctg 10.0.1.9:7800 1`
 * does in the guide.  Hosts are unique among members (the status report is
 * keyed by host).
 *
 * Priority list rules (the guide's 4.1.2, 4.1.3, 4.1.7, 5.3):
 *  - it only holds allowed hosts;
 *  - ALLOW_NODE/SET_PRIORITY with priority p (1..n+1, n = the list length
 *    without that host) put the host at position p, moving it if present;
 *    a host may be placed before its agent joins (a reservation);
 *  - a standby that joins, or a member that becomes a standby, goes to the
 *    end unless already listed; a re-allowed running standby too;
 *  - a member that joins as or becomes Master/Witness/Idle leaves the list
 *    (only standbys are promotion candidates), as does a member that leaves
 *    the cluster: on rejoin it goes to the end again, which is the guide's
 *    "priority may change if a node ... later re-joins";
 *  - DISALLOW_NODE removes the host from both lists; the running agent stays
 *    a member (remove-node does not stop it) but cannot rejoin.
 *
 * MEMBER_LEAVE does not clear the master address: the master's database may
 * well outlive a stopped agent; the coordinator decides with SET_MASTER.
 */
#ifndef EFM_CLUSTERFSM_H
#define EFM_CLUSTERFSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "address.h"

#define CLUSTERFSM_MAX_NODES  64           /* allowed hosts, members */
#define CLUSTERFSM_HOST_MAX   EFM_HOST_MAX /* host text incl. NUL */
#define CLUSTERFSM_ADDR_MAX   264          /* "[host]:port" incl. NUL */
#define CLUSTERFSM_REASON_MAX 192

/* Largest encoded command; buffers of this size always suffice. */
#define CLUSTERFSM_CMD_MAX 304
/* Largest encoded snapshot (all lists full, all strings longest). */
#define CLUSTERFSM_SNAPSHOT_MAX                                                                    \
	(24 + 8 + 2 * (2 + CLUSTERFSM_MAX_NODES * (2 + CLUSTERFSM_HOST_MAX)) + 2 +                 \
	 CLUSTERFSM_MAX_NODES * (8 + 2 + CLUSTERFSM_ADDR_MAX + 3) +                                \
	 3 * (2 + CLUSTERFSM_ADDR_MAX) + 8 + 1 + 8 + 8 + 1)

/* Same order as status.h's enum node_type, so the status model can map 1:1. */
enum clusterfsm_role {
	CLUSTERFSM_MASTER,
	CLUSTERFSM_STANDBY,
	CLUSTERFSM_WITNESS,
	CLUSTERFSM_IDLE,
};

/* Same order as status.h's enum up_state. */
enum clusterfsm_up {
	CLUSTERFSM_UP,
	CLUSTERFSM_DOWN,
	CLUSTERFSM_UNKNOWN,
};

/*
 * Phases of a promotion, in the order they are taken.  NONE only before the
 * first lock ever; DONE and ABORTED are the two ends; a new lock may be
 * taken from NONE, DONE or ABORTED.
 */
enum clusterfsm_phase {
	CLUSTERFSM_PHASE_NONE,
	CLUSTERFSM_PHASE_FENCING,
	CLUSTERFSM_PHASE_PROMOTING,
	CLUSTERFSM_PHASE_VIP,
	CLUSTERFSM_PHASE_RECONFIGURING,
	CLUSTERFSM_PHASE_DONE,
	CLUSTERFSM_PHASE_ABORTED,
};

enum clusterfsm_code {
	CLUSTERFSM_OK,       /* applied; version bumped */
	CLUSTERFSM_ALREADY,  /* already in place; nothing changed */
	CLUSTERFSM_REJECTED, /* refused; reason says why; nothing changed */
};

struct clusterfsm_result {
	enum clusterfsm_code code;
	char reason[CLUSTERFSM_REASON_MAX]; /* "" when OK */
};

struct clusterfsm_member {
	uint64_t id;                       /* raft server id, never 0 */
	char address[CLUSTERFSM_ADDR_MAX]; /* agent peer address host:port */
	enum clusterfsm_role role;
	enum clusterfsm_up agent; /* UP or DOWN */
	enum clusterfsm_up db;    /* UNKNOWN until reported */
};

struct clusterfsm_lock {
	char candidate[CLUSTERFSM_ADDR_MAX]; /* member address; "" before the first lock */
	uint64_t term;                       /* raft term of the leader that took it */
	enum clusterfsm_phase phase;
	uint64_t serial; /* 0 before the first lock, +1 per lock */
	/*
	 * A planned switchover (efm promote -switchover): FENCING stops the
	 * running master cleanly and waits for the candidate to receive its
	 * last WAL; RECONFIGURING restarts the old master as a standby; an
	 * abort restarts it as the master.
	 */
	bool switchover;
	char from[CLUSTERFSM_ADDR_MAX]; /* the master recorded when the lock was taken, "" none */
};

/* Copyable by value; no pointers inside.  Initialise with clusterfsm_init. */
struct cluster_state {
	char allowed[CLUSTERFSM_MAX_NODES][CLUSTERFSM_HOST_MAX]; /* in order added */
	size_t n_allowed;
	char priority[CLUSTERFSM_MAX_NODES][CLUSTERFSM_HOST_MAX]; /* [0] is priority 1 */
	size_t n_priority;
	struct clusterfsm_member members[CLUSTERFSM_MAX_NODES]; /* in order joined */
	size_t n_members;
	char master[CLUSTERFSM_ADDR_MAX]; /* member address, "" if none */
	struct clusterfsm_lock lock;
	uint64_t version; /* +1 per OK command */
	/* Result of the last apply, for the submitter; not in the snapshot. */
	struct clusterfsm_result last;
};

/*
 * Commands and their decisions (ALREADY never changes anything):
 *  ALLOW_NODE(addr, p)      add the host; p 1..n+1 also places it in the
 *                           priority list, 0 leaves the priority alone; p < 0,
 *                           p > n+1, or p for a non-standby member: REJECTED
 *                           (as a whole).  Already allowed and p 0: ALREADY.
 *  DISALLOW_NODE(addr)      drop the host from both lists; unknown: REJECTED.
 *  SET_PRIORITY(addr, p)    p 1..n+1 for an allowed host, else REJECTED.
 *  MEMBER_JOIN(id, addr, r) addr must be host:port on an allowed host not
 *                           used by another member, id != 0 and unused.  The
 *                           identical join again: ALREADY; same id with other
 *                           address or role: REJECTED (MEMBER_LEAVE first).
 *  MEMBER_LEAVE(id)         unknown id: REJECTED.
 *  MEMBER_UPDATE(id, r, a, d)  unknown id: REJECTED.
 *  PROMOTION_LOCK(cand, term, expected)  OK only if no promotion is active,
 *                           expected == lock.serial, term >= lock.term, and
 *                           cand is a Standby member; then serial+1, FENCING.
 *                           The winner's own request again: ALREADY.
 *  PROMOTION_PHASE(serial, from, to)  forward steps within FENCING..
 *                           RECONFIGURING (skips allowed); OK if the lock is
 *                           at from; ALREADY if it is already at to or later;
 *                           REJECTED for a wrong serial or an ended promotion.
 *  PROMOTION_RELEASE(serial, DONE|ABORTED)  ends an active promotion; the
 *                           same end again: ALREADY; the other end: REJECTED.
 *  SET_MASTER(addr)         a member (by host) or "" for none.
 */
enum clusterfsm_cmd_type {
	CLUSTERFSM_ALLOW_NODE = 1,    /* address, priority */
	CLUSTERFSM_DISALLOW_NODE,     /* address */
	CLUSTERFSM_SET_PRIORITY,      /* address, priority */
	CLUSTERFSM_MEMBER_JOIN,       /* id, address, role */
	CLUSTERFSM_MEMBER_LEAVE,      /* id */
	CLUSTERFSM_MEMBER_UPDATE,     /* id, role, agent, db */
	CLUSTERFSM_PROMOTION_LOCK,    /* address (candidate), term, serial (expected) */
	CLUSTERFSM_PROMOTION_PHASE,   /* serial, from, to */
	CLUSTERFSM_PROMOTION_RELEASE, /* serial, to (DONE or ABORTED) */
	CLUSTERFSM_SET_MASTER,        /* address ("" clears) */
};

/* One decoded command; fields a type does not use are zero. */
struct clusterfsm_cmd {
	enum clusterfsm_cmd_type type;
	char address[CLUSTERFSM_ADDR_MAX];
	int32_t priority;
	uint64_t id;
	enum clusterfsm_role role;
	enum clusterfsm_up agent;
	enum clusterfsm_up db;
	uint64_t term;
	uint64_t serial;
	enum clusterfsm_phase from;
	enum clusterfsm_phase to;
	bool switchover; /* PROMOTION_LOCK: a planned switchover */
};

/* clusterfsm_init makes the empty state: no hosts, no members, no lock. */
void clusterfsm_init(struct cluster_state *s);

const char *clusterfsm_role_name(enum clusterfsm_role r);    /* "Master", ... */
const char *clusterfsm_up_name(enum clusterfsm_up u);        /* "UP", ... */
const char *clusterfsm_phase_name(enum clusterfsm_phase p);  /* "FENCING", ... */
const char *clusterfsm_code_name(enum clusterfsm_code c);    /* "OK", ... */
const char *clusterfsm_cmd_name(enum clusterfsm_cmd_type t); /* "ALLOW_NODE", ... */

/* Queries; all return NULL / 0 / false when absent. */
const struct clusterfsm_member *clusterfsm_member_by_id(const struct cluster_state *s, uint64_t id);
/* by host, or by address (its host part is used) */
const struct clusterfsm_member *clusterfsm_member_by_host(const struct cluster_state *s,
                                                          const char *addr);
bool clusterfsm_is_allowed(const struct cluster_state *s, const char *addr);
/* 1-based position in the standby priority list, 0 if not listed. */
int clusterfsm_priority_of(const struct cluster_state *s, const char *addr);
/* True while a promotion holds the lock (FENCING..RECONFIGURING). */
bool clusterfsm_promotion_active(const struct cluster_state *s);

/* Command builders: fill *c; false if an address does not fit. */
bool clusterfsm_cmd_allow_node(struct clusterfsm_cmd *c, const char *addr, int priority);
bool clusterfsm_cmd_disallow_node(struct clusterfsm_cmd *c, const char *addr);
bool clusterfsm_cmd_set_priority(struct clusterfsm_cmd *c, const char *addr, int priority);
bool clusterfsm_cmd_member_join(struct clusterfsm_cmd *c, uint64_t id, const char *addr,
                                enum clusterfsm_role role);
void clusterfsm_cmd_member_leave(struct clusterfsm_cmd *c, uint64_t id);
void clusterfsm_cmd_member_update(struct clusterfsm_cmd *c, uint64_t id, enum clusterfsm_role role,
                                  enum clusterfsm_up agent, enum clusterfsm_up db);
/* clusterfsm_cmd_switchover_lock: PROMOTION_LOCK for a planned switchover to candidate. */
bool clusterfsm_cmd_switchover_lock(struct clusterfsm_cmd *c, const char *candidate, uint64_t term,
                                    uint64_t expected_serial);
bool clusterfsm_cmd_promotion_lock(struct clusterfsm_cmd *c, const char *candidate, uint64_t term,
                                   uint64_t expected_serial);
void clusterfsm_cmd_promotion_phase(struct clusterfsm_cmd *c, uint64_t serial,
                                    enum clusterfsm_phase from, enum clusterfsm_phase to);
void clusterfsm_cmd_promotion_release(struct clusterfsm_cmd *c, uint64_t serial, bool done);
bool clusterfsm_cmd_set_master(struct clusterfsm_cmd *c, const char *addr);

/*
 * clusterfsm_cmd_encode writes c into buf as a log entry whose length is a
 * multiple of 8 (libraft pads entries to 8).  Returns the length written,
 * -EINVAL if c is malformed (bad type or enum, string too long or with
 * characters outside printable ASCII), -ENOSPC if len is too small
 * (CLUSTERFSM_CMD_MAX always suffices).
 */
ssize_t clusterfsm_cmd_encode(const struct clusterfsm_cmd *c, void *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * clusterfsm_cmd_decode parses an entry; 0 or -EINVAL.  Every byte is
 * checked (magic, format version, type, lengths, enums, string characters,
 * zero padding, exact total length); garbage is refused, never trusted.
 */
int clusterfsm_cmd_decode(const void *buf, size_t len, struct clusterfsm_cmd *c)
    __attribute__((warn_unused_result));

/*
 * clusterfsm_apply_cmd evaluates one command against s and returns its
 * code; the result (code + reason) is also stored in s->last and, when res
 * is not NULL, in *res.  Only OK changes s (and bumps s->version).
 */
enum clusterfsm_code clusterfsm_apply_cmd(struct cluster_state *s, const struct clusterfsm_cmd *c,
                                          struct clusterfsm_result *res);

/*
 * clusterfsm_apply decodes a committed entry and applies it; an entry that
 * does not decode is REJECTED ("corrupt entry") and changes nothing, so one
 * bad entry cannot stop the log.
 */
enum clusterfsm_code clusterfsm_apply(struct cluster_state *s, const void *buf, size_t len,
                                      struct clusterfsm_result *res);

/*
 * clusterfsm_snapshot_encode serializes the whole state (but s->last) into
 * buf, padded to a multiple of 8.  Returns the length or -ENOSPC
 * (CLUSTERFSM_SNAPSHOT_MAX always suffices).  Equal states give equal bytes.
 */
ssize_t clusterfsm_snapshot_encode(const struct cluster_state *s, void *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * clusterfsm_snapshot_restore replaces *s with the snapshot in buf; 0, or
 * -EINVAL with *s untouched if the bytes are not a valid snapshot (framing,
 * enums, duplicates, priority hosts not allowed, lock fields inconsistent).
 */
int clusterfsm_snapshot_restore(struct cluster_state *s, const void *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * clusterfsm_nodes_text writes the `.nodes` file content: the members'
 * host:port addresses in join order, separated by spaces, ending with a
 * newline ("\n" alone when there is no member).  Returns the length
 * (without NUL) or -ENOSPC.
 */
int clusterfsm_nodes_text(const struct cluster_state *s, char *buf, size_t len);

#endif
