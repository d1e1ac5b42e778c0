/*
 * members.h - member liveness: when each peer agent was last heard from and
 * what it said about itself (role, database state, WAL position).
 *
 * Pure bookkeeping over times given by the caller (milliseconds of a
 * monotonic clock), so it is unit-tested without sockets.  A member is
 * alive while it has been heard within the node timeout; a member never
 * heard counts from the moment it was first tracked, so a freshly elected
 * leader gives everybody a full node timeout before judging them.
 */
#ifndef EFM_MEMBERS_H
#define EFM_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clusterfsm.h"

/* What a member reports about itself in its heartbeats. */
struct members_report {
	enum clusterfsm_role role;
	enum clusterfsm_up db;
	char xlog[32]; /* last WAL position its monitor saw, "" unknown */
	char info[128];
};

struct members_entry {
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	uint64_t tracked_ms; /* when we started watching it */
	uint64_t heard_ms;   /* last heartbeat received, 0 never */
	bool reported;       /* report is valid */
	struct members_report report;
	uint64_t seq_heard; /* the heartbeat sequence number it sent last (echoed back to it) */
	uint64_t echo_ms;   /* send time of our latest round it echoed (two-way contact), 0 never */
};

struct members {
	struct members_entry e[CLUSTERFSM_MAX_NODES];
	size_t n;
	uint64_t timeout_ms; /* node timeout */
};

void members_init(struct members *m, uint64_t timeout_ms);

/* members_track starts watching id (no-op when already watched); false when full. */
bool members_track(struct members *m, uint64_t id, const char *address, uint64_t now_ms);

/* members_heard records a heartbeat (tracking id if new); report may be NULL. */
void members_heard(struct members *m, uint64_t id, const char *address, uint64_t now_ms,
                   const struct members_report *report);

/* A peer to watch: its id and address (NULL or "" unknown). */
struct members_peer {
	uint64_t id;
	const char *address;
};

/*
 * members_sync watches exactly the peers given (self and id 0 skipped,
 * duplicates allowed): a new one is tracked from now_ms, a known one keeps
 * its times (its address is refreshed), and every other entry is forgotten,
 * forget(arg, entry) being called just before.  The caller passes the
 * members of the replicated state and the servers of the Raft
 * configuration, so that a voter without a member record is judged like a
 * member instead of being forgotten and tracked anew on every tick.
 */
void members_sync(struct members *m, uint64_t self, const struct members_peer *peers, size_t n,
                  uint64_t now_ms, void (*forget)(void *arg, const struct members_entry *e),
                  void *arg);

/* members_forget stops watching id. */
void members_forget(struct members *m, uint64_t id);

const struct members_entry *members_get(const struct members *m, uint64_t id);

/* members_silent_ms: time since id was last heard (or first tracked); 0 if unknown id. */
uint64_t members_silent_ms(const struct members *m, uint64_t id, uint64_t now_ms);

/* members_alive: id heard within the node timeout (unknown ids are not alive). */
bool members_alive(const struct members *m, uint64_t id, uint64_t now_ms);

/*
 * members_removal_candidate picks, among voters (self excluded), the one
 * silent the longest for at least after_ms; 0 when none.  The caller (the
 * leader) removes at most one member at a time.
 */
uint64_t members_removal_candidate(const struct members *m, const uint64_t *voters, size_t n,
                                   uint64_t self, uint64_t now_ms, uint64_t after_ms);

#endif
