/*
 * script.h - the safe runner for every user script (fence, post-promotion,
 * db-failure, master-isolated, notification, the VIP helper).
 *
 * A script is started with uv_spawn from an argv array (never a shell), in
 * its own session and process group, with a scrubbed environment (a fixed
 * PATH, LANG=C, and only the EFM_* variables the caller passes), stdin on
 * /dev/null, and stdout and stderr captured together into one bounded
 * buffer.  A timeout kills the whole group: SIGTERM to -pgid, SIGKILL after a
 * short grace.  Nothing here blocks the loop.
 */
#ifndef EFM_SCRIPT_H
#define EFM_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Output kept per run; the rest is read and discarded. */
#define SCRIPT_OUTPUT_MAX (64 * 1024)
/* Time between SIGTERM and SIGKILL to the group when a script is stopped. */
#define SCRIPT_KILL_GRACE_MS 2000

struct script_spec {
	const char *what;        /* for log lines and results: "fence script" */
	const char *path;        /* absolute path; becomes argv[0] */
	const char *const *args; /* argv[1..n_args], may be NULL when n_args == 0 */
	size_t n_args;
	const char *const *env; /* extra "NAME=value" entries (EFM_CLUSTER=...) */
	size_t n_env;
	uint64_t timeout_ms; /* 0: no timeout (not recommended) */
};

enum script_outcome {
	SCRIPT_EXITED,       /* exit_code is valid */
	SCRIPT_SIGNALED,     /* killed by term_signal, not by us */
	SCRIPT_TIMED_OUT,    /* we killed the group at the timeout */
	SCRIPT_CANCELLED,    /* we killed the group on script_cancel() */
	SCRIPT_SPAWN_FAILED, /* never started: spawn_error is a negative errno */
};

struct script_result {
	enum script_outcome outcome;
	int exit_code;       /* SCRIPT_EXITED */
	int term_signal;     /* SCRIPT_SIGNALED, or the last signal we sent */
	int spawn_error;     /* SCRIPT_SPAWN_FAILED: negative errno (uv error code) */
	uint64_t timeout_ms; /* copied from the spec, for describing a timeout */
	uint64_t elapsed_ms; /* start to exit */
	int pid;             /* 0 when never started */
	const char *output;  /* NUL-terminated, at most SCRIPT_OUTPUT_MAX bytes + note */
	size_t output_len;
	bool truncated; /* output was longer than SCRIPT_OUTPUT_MAX */
};

/* script_ok: the script ran and exited with status 0. */
bool script_ok(const struct script_result *r);

/*
 * Called exactly once per run, from the loop (never from inside
 * script_start), after the process has exited and its output pipe is closed.
 * The result and its output are valid only during the call.
 */
typedef void (*script_done_cb)(const struct script_result *res, void *arg);

struct script_run;

/*
 * script_start launches spec->path.  Returns the run, or NULL when memory
 * runs out (the callback is then never called).  A failure to spawn is
 * reported through the callback as SCRIPT_SPAWN_FAILED.  The spec's strings
 * are copied; the caller may free them at once.
 */
struct script_run *script_start(uv_loop_t *loop, const struct script_spec *spec, script_done_cb cb,
                                void *arg);

/* script_cancel kills the run's process group; the callback still follows. */
void script_cancel(struct script_run *run);

/*
 * script_check vets a script path before it is ever run: absolute, exists,
 * a regular file, executable, not writable by group or others, owned by root
 * or by the agent's effective user; its directory likewise owned by root or
 * the agent and not writable by group or others.  On refusal writes the
 * reason into why and returns false.
 */
bool script_check(const char *path, char *why, size_t len);

/*
 * script_result_describe renders the status for notifications and logs:
 * "exit code 3", "killed by signal 9 (Killed)", "timed out after 60 s",
 * "could not be started: No such file or directory".
 */
void script_result_describe(const struct script_result *r, char *buf, size_t len);

#endif
