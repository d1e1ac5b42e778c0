/*
 * coord_int.h - what coord.c and coord_drive.c share.
 */
#ifndef EFM_COORD_INT_H
#define EFM_COORD_INT_H

#include "failover.h"

/* The context of one call or probe: answers of an abandoned round are stale. */
struct fo_ctx {
	struct failover *fo;
	uint64_t gen;
	uint64_t term;
	char address[CLUSTERFSM_ADDR_MAX];
	char detail[512]; /* what an earlier step said, carried to the next */
};

struct fo_ctx *fo_ctx_new(struct failover *fo, const char *address);
bool fo_ctx_stale(struct fo_ctx *x);

/* fo_call sends msg (ownership taken) to a member, or runs it here when it is us. */
int fo_call(struct failover *fo, const char *address, cJSON *msg, uint64_t timeout_ms,
            rpc_call_cb cb, struct fo_ctx *x);
/* remote.timeout in ms. */
uint64_t fo_remote_ms(const struct failover *fo);
/* fo_host_of: the host part of a member address. */
void fo_host_of(const char *address, char *host, size_t len);
/* fo_notify sends a notification about node (a member address, or NULL for us). */
void fo_notify(struct failover *fo, enum notify_event ev, const char *node, const char *error);

/* coord_drive.c */
/* the bound of one step: it may run pg_ctl, a user script and pg_promote on the other side */
uint64_t fo_step_timeout(const struct failover *fo);
/* fo_release ends the promotion, DONE or ABORTED with why (a switchover first restarts its master)
 */
void fo_release(struct failover *fo, bool done, const char *why);
/* fo_step_failed counts a failed attempt; true when the step has no attempt left. */
bool fo_step_failed(struct failover *fo, const char *what);
bool fo_answer_ok(int status, const cJSON *reply);
const char *fo_answer_detail(int status, const cJSON *reply);
/* fo_send_step sends one request of the current phase; false when it could not be sent. */
bool fo_send_step(struct failover *fo, const char *type, const char *to, rpc_call_cb cb);
/* fo_fenced records the old master Idle and moves to PROMOTING. */
void fo_fenced(struct failover *fo);
/* fo_follow_end: one re-pointing of RECONFIGURING ended; the last one releases DONE. */
void fo_follow_end(struct failover *fo);

/* coord_switch.c: the phases of a switchover that differ from a failover's */
/* fo_switch_fence: stop the running master cleanly, wait until the candidate has its WAL. */
void fo_switch_fence(struct failover *fo);
/* fo_switch_rejoin: in RECONFIGURING, restart the old master as a standby (one follow_pending). */
void fo_switch_rejoin(struct failover *fo);
/* fo_switch_abort: start the old master again, then release ABORTED with why. */
void fo_switch_abort(struct failover *fo, const char *why);
/* fo_take_lock commits the promotion lock for fo->best. */
void fo_take_lock(struct failover *fo);
/* fo_drive carries the committed promotion one step further (one step in flight at a time). */
void fo_drive(struct failover *fo);

/*
 * node_switch.c: a switchover's requests on this node; false when msg is
 * none of them.  The answer goes to conn, or to reply(reply_arg, ...).
 */
bool fo_switch_request(struct failover *fo, const cJSON *msg, struct rpc_conn *conn,
                       rpc_call_cb reply, void *reply_arg);

/* manual.c: efm promote on the leader */
/* fo_manual_peer takes a request forwarded by another agent ("fo-manual"). */
void fo_manual_peer(struct failover *fo, struct rpc_conn *conn, const cJSON *msg);
/* fo_manual_facts adds the pending request to the facts of a tick. */
void fo_manual_facts(const struct failover *fo, struct fo_facts *f);
/* fo_manual_note_master keeps the master's last reported WAL position (every agent, every tick). */
void fo_manual_note_master(struct failover *fo);
/* fo_manual_decided answers the request when rule r settles it. */
void fo_manual_decided(struct failover *fo, const struct fo_rule *r);
/* fo_manual_locked answers the request once its promotion lock is committed, or not. */
void fo_manual_locked(struct failover *fo, bool ok, const char *why);
/* fo_manual_only: the request names a candidate and address is not it. */
bool fo_manual_only(const struct failover *fo, const char *address);
/* fo_manual_switchover: the pending request is a switchover. */
bool fo_manual_switchover(const struct failover *fo);
/* fo_manual_drop refuses the pending request, if any, with why. */
void fo_manual_drop(struct failover *fo, const char *why);

#endif
