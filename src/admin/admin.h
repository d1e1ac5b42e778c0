/*
 * admin.h - the admin socket: RUN_DIR/CLUSTER.sock, one JSON request per
 * connection, one JSON reply.
 *
 *   request: {"command": "cluster-status", "args": ["..."]}\n
 *   reply:   {"ok": true, ...}\n   or   {"ok": false, "error": "..."}\n
 *
 * The server reads the caller's credentials with SO_PEERCRED.  Commands marked
 * mutating are refused (and the refusal logged) unless the caller is root,
 * the agent's own user, or a member of the "efm" group.  Every request's
 * arguments are checked (admin_arg.h) before its handler runs.
 *
 * Whoever can open the socket must not be able to starve the agent: the
 * number of clients at once is capped from the descriptor limit (a quarter
 * of the places kept for root and the agent's user), the excess is answered
 * {"ok": false, "busy": true, ...} at once, and when the cap is reached a
 * client that has not sent its request within a second loses its place.
 */
#ifndef EFM_ADMIN_H
#define EFM_ADMIN_H

#include <stdbool.h>
#include <sys/types.h>

#include <cJSON.h>
#include <uv.h>

#include "admin_arg.h"

struct admin_server;

/* One request in flight.  Valid until admin_reply() is called on it. */
struct admin_request {
	const char *command;
	const cJSON *args;              /* the "args" array (may be empty, never NULL) */
	struct admin_arg_values values; /* args, checked against the command's schema */
	const cJSON *body;              /* the whole request object */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	void *agent; /* the pointer given to admin_server_start */
};

/*
 * A handler must call admin_reply exactly once, now or later from another
 * callback (a status query waits on database probes).  If the client has
 * gone away meanwhile the reply is dropped.
 */
typedef void (*admin_handler)(struct admin_request *req);

struct admin_command {
	const char *name;
	bool mutating;
	admin_handler handler;
};

/*
 * admin_server_start listens on path (removing a stale socket first; the
 * caller holds the cluster lock, so a socket file there is stale) with mode
 * 0666 so anybody may ask for status.  The table must outlive the server.
 */
int admin_server_start(uv_loop_t *loop, const char *path, const struct admin_command *table,
                       size_t n_commands, void *agent, struct admin_server **out)
    __attribute__((warn_unused_result));

/* admin_reply sends reply (ownership taken) and closes the connection. */
void admin_reply(struct admin_request *req, cJSON *reply);
/* admin_reply_error sends {"ok": false, "error": msg}. */
void admin_reply_error(struct admin_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* admin_server_close stops listening, unlinks the socket, drops open requests' connections. */
void admin_server_close(struct admin_server *s);

/* admin_caller_may_mutate: root, the agent's euid, or a member of group "efm". */
bool admin_caller_may_mutate(uid_t uid, gid_t gid);

/*
 * Client side (blocking, for the efm program): send request to the socket
 * at path and wait up to timeout_ms for the reply.  Returns the parsed reply
 * or NULL with err filled ("no agent running (cannot connect to PATH: ...)").
 * A full backlog (EAGAIN), a socket nobody listens on yet (ECONNREFUSED, as
 * while the agent restarts) and a "busy" reply are retried with backoff for
 * up to ADMIN_RETRY_MS (within timeout_ms) before giving up.
 * On NULL errno tells why: ENOENT or ECONNREFUSED when no agent listens (the
 * caller may reword err with the cluster name), EAGAIN when it stayed too
 * busy, ETIMEDOUT when no reply came in time, ECONNRESET when the agent hung
 * up, EPROTO for a malformed reply.
 */
#define ADMIN_RETRY_MS 2000
cJSON *admin_call(const char *path, const cJSON *request, int timeout_ms, char *err, size_t errlen);

#endif
