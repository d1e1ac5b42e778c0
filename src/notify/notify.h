/*
 * notify.h - the event funnel: every notification of the guide's section 7
 * goes through notify_emit, which
 *   - writes it to the log whatever the log level,
 *   - keeps it in a small ring (the "messages" of cluster-status-json),
 *   - and, when its severity reaches notification.level, queues it for each
 *     configured transport: mail (user.email), webhook, notification script.
 *
 * Each transport has its own bounded outbox with a rate limit
 * (notification.rate.limit per minute; the excess is folded into one
 * summary), drop-oldest when full (logged, never silent) and retries with
 * exponential backoff.  Everything runs on the agent's loop.
 */
#ifndef EFM_NOTIFY_H
#define EFM_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

/* Every notification; names are stable (webhook "event", script EFM_EVENT). */
enum notify_event {
	/* INFO */
	NOTIFY_SCRIPT_FENCE_EXECUTED,
	NOTIFY_SCRIPT_POST_PROMOTION_EXECUTED,
	NOTIFY_SCRIPT_DB_FAILURE_EXECUTED,
	NOTIFY_SCRIPT_MASTER_ISOLATED_EXECUTED,
	NOTIFY_AGENT_STARTED_WITNESS,
	NOTIFY_AGENT_STARTED_MASTER,
	NOTIFY_AGENT_STARTED_STANDBY,
	NOTIFY_VIP_ASSIGNED,
	NOTIFY_VIP_RELEASED,
	NOTIFY_AGENT_EXITED_WITNESS,
	NOTIFY_AGENT_EXITED_MASTER,
	NOTIFY_CLUSTER_MASTER_LEFT,
	NOTIFY_AGENT_EXITED_STANDBY,
	NOTIFY_AGENT_EXITED_PROMOTING,
	NOTIFY_AGENT_EXITED_IDLE,
	NOTIFY_AGENT_EXITED_STARTUP,
	/* WARNING */
	NOTIFY_VIP_ON_NON_MASTER,
	NOTIFY_CLUSTER_NO_STANDBY,
	NOTIFY_STANDBY_AGENT_FAILED,
	NOTIFY_STANDBY_DB_FAILED,
	NOTIFY_STANDBY_DB_UNREACHABLE,
	NOTIFY_CLUSTER_BELOW_THREE,
	NOTIFY_CLUSTER_SUBSET_DISCONNECTED,
	NOTIFY_PROMOTION_STARTED,
	NOTIFY_WITNESS_FAILED,
	NOTIFY_IDLE_FAILED,
	NOTIFY_NODE_ISOLATED,
	NOTIFY_NODE_NOT_ISOLATED,
	NOTIFY_PROMOTION_REFUSED_MASTER_RUNNING,
	NOTIFY_PROMOTION_REFUSED_MASTER_UNVERIFIED,
	NOTIFY_PROMOTION_REFUSED_VIP_ASSIGNED,
	NOTIFY_PROMOTION_REFUSED_ORPHANED,
	NOTIFY_FAILOVER_NO_STANDBY,
	NOTIFY_FAILOVER_MANUAL_REQUIRED,
	NOTIFY_FAILOVER_COMPLETED,
	NOTIFY_LOCK_REMOVED,
	NOTIFY_RECOVERY_CONF_FOUND,
	NOTIFY_PROMOTION_ALREADY_RUNNING,
	NOTIFY_STANDBY_NOT_RECONFIGURED,
	NOTIFY_REPLAY_RESUME_FAILED,
	/* SEVERE */
	NOTIFY_DB_CONNECT_TOO_MANY,
	NOTIFY_DB_CONNECT_BAD_PASSWORD,
	NOTIFY_DB_CONNECT_BAD_AUTHORIZATION,
	NOTIFY_MASTER_CANNOT_PING_LOCAL_DB,
	NOTIFY_CLUSTER_COMMUNICATION_ERROR,
	NOTIFY_SCRIPT_FENCE_FAILED,
	NOTIFY_SCRIPT_POST_PROMOTION_FAILED,
	NOTIFY_SCRIPT_DB_FAILURE_FAILED,
	NOTIFY_SCRIPT_MASTER_ISOLATED_FAILED,
	NOTIFY_PROMOTION_FAILED,
	NOTIFY_RECOVERY_CONF_FAILED,
	NOTIFY_UNEXPECTED_ERROR,
	NOTIFY_MASTER_FENCED,
	NOTIFY_VIP_ASSIGN_FAILED,
	NOTIFY_DB_FAILURE,
	NOTIFY_AGENT_TIMING_OUT,
	NOTIFY_RESUME_TIMED_OUT,
	NOTIFY_EVENT_COUNT
};

/*
 * What an event's text refers to; every field may be NULL.  Missing values
 * fall back to something sensible (node: this agent; vip: virtualIp;
 * others: "unknown" / "(none)").
 */
struct notify_args {
	const char *node;      /* the node concerned, "10.0.1.12" */
	const char *role;      /* "Master" / "Standby", for db.failure */
	const char *script;    /* script path */
	const char *results;   /* script output */
	const char *exit_code; /* script_result_describe(): "exit code 3" */
	const char *vip;       /* virtual IP */
	const char *path;      /* lock file, recovery file */
	const char *error;     /* error details */
	const char *nodes;     /* list of visible nodes, "10.0.1.11, 10.0.1.12" */
};

const char *notify_event_name(enum notify_event ev); /* "db.failure"; "unknown" if out of range */
enum efm_severity notify_event_severity(enum notify_event ev);
const char *notify_severity_name(enum efm_severity sev); /* "INFO", "WARNING", "SEVERE" */
/* notify_event_by_name finds an event by its stable name; false if unknown. */
bool notify_event_by_name(const char *name, enum notify_event *out);

/*
 * notify_render fills subject (one line) and body (the event's text only,
 * no header block) for ev.  self is this agent's address, the fallback
 * for args->node.  Both outputs are always NUL-terminated.
 */
void notify_render(enum notify_event ev, const struct efm_config *cfg, const char *self,
                   const struct notify_args *args, char *subject, size_t subject_len, char *body,
                   size_t body_len);

/* ---- the funnel ---- */

struct notifier;

/* notify_new builds the funnel for this agent (node_address: bind host). NULL on ENOMEM. */
struct notifier *notify_new(uv_loop_t *loop, const struct efm_config *cfg,
                            const char *node_address);
/* notify_set_config switches to a reloaded configuration (cfg must outlive the notifier or the next
 * switch). */
void notify_set_config(struct notifier *n, const struct efm_config *cfg);
/* fn writes the "current state of the cluster" text appended to every body. */
void notify_set_state_fn(struct notifier *n, void (*fn)(void *arg, char *buf, size_t len),
                         void *arg);
/* notify_set_clock replaces the monotonic millisecond clock (tests). */
void notify_set_clock(struct notifier *n, uint64_t (*now_ms)(void *arg), void *arg);

void notify_emit(struct notifier *n, enum notify_event ev, const struct notify_args *args);

/* notify_recent points out[] at the last "SEVERITY subject" lines, oldest first; returns the count.
 */
size_t notify_recent(const struct notifier *n, const char **out, size_t max);

/* notify_pending is the number of messages still queued or in flight, all transports. */
size_t notify_pending(const struct notifier *n);

/*
 * notify_close stops accepting, gives queued messages up to
 * NOTIFY_CLOSE_FLUSH_MS to go out, abandons the rest (logged), frees the
 * notifier and calls done (may be NULL) from the loop.
 */
#define NOTIFY_CLOSE_FLUSH_MS 5000
void notify_close(struct notifier *n, void (*done)(void *arg), void *arg);

/* ---- the per-transport outbox: pure logic, exposed for unit tests ---- */

#define OUTBOX_CAPACITY         100
#define OUTBOX_RATE_WINDOW_MS   60000
#define OUTBOX_RETRY_FIRST_MS   1000
#define OUTBOX_RETRY_MAX_MS     60000
#define OUTBOX_GIVE_UP_MS       (10 * 60 * 1000)
#define OUTBOX_SUMMARY_SUBJECTS 20 /* subjects listed in a summary */

struct outbox_msg {
	enum notify_event ev; /* NOTIFY_EVENT_COUNT for a rate-limit summary */
	enum efm_severity sev;
	char *subject;
	char *body;
	int64_t wall_time;     /* time(NULL) at emit, for Date/time fields */
	uint64_t first_try_ms; /* 0 until first attempt */
	uint64_t next_try_ms;  /* not before this */
	unsigned attempts;
};

struct outbox {
	const char *name;     /* "mail", "webhook", "script" */
	struct outbox_msg *q; /* ring of OUTBOX_CAPACITY */
	size_t head, count;
	bool in_flight;     /* q[head] is being sent */
	int rate_limit;     /* per minute; <= 0: unlimited */
	uint64_t *admitted; /* ring of admission times (ms), rate_limit entries */
	size_t adm_head, adm_count;
	size_t suppressed; /* folded into the pending summary */
	enum efm_severity suppressed_sev;
	char *suppressed_subjects; /* newline-separated, bounded */
	size_t dropped;            /* lifetime count of drop-oldest */
	size_t given_up;           /* lifetime count of give-ups */
};

bool outbox_init(struct outbox *ob, const char *name, int rate_limit);
void outbox_free(struct outbox *ob);
/*
 * outbox_push queues a copy of subject/body.  Returns false when the rate
 * limit folded it into the pending summary instead (logged).  When the
 * ring is full, the oldest message not in flight is dropped (logged).
 */
bool outbox_push(struct outbox *ob, enum notify_event ev, enum efm_severity sev,
                 const char *subject, const char *body, int64_t wall_time, uint64_t now_ms);
/*
 * outbox_next returns the message to send now (marked in flight), or NULL
 * and *wait_ms: how long until something may be due (UINT64_MAX: nothing).
 */
struct outbox_msg *outbox_next(struct outbox *ob, uint64_t now_ms, uint64_t *wait_ms);
/*
 * outbox_done ends the in-flight attempt: ok pops it; a failure schedules a
 * retry after the backoff, or gives up (SEVERE log) past OUTBOX_GIVE_UP_MS.
 */
void outbox_done(struct outbox *ob, bool ok, const char *error, uint64_t now_ms);
/* outbox_backoff_ms: the wait after the given number of failed attempts (>= 1). */
uint64_t outbox_backoff_ms(unsigned failures);

#endif
