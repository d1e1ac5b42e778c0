/*
 * script.c - run user scripts safely on the loop: argv only, own process
 * group, scrubbed environment, bounded output, group-wide timeout.
 *
 * A run owns three handles (process, output pipe, timer).  It is over when
 * the process has exited and the pipe is closed; then all three are closed
 * and the callback runs from the last close callback, so it is always called
 * from the loop and the memory is freed right after.
 */
#include "script.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define SCRIPT_PATH_ENV "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
/* How long to keep reading after the script exited while a leftover child holds the pipe. */
#define SCRIPT_PIPE_GRACE_MS 2000

static const char truncated_note[] = "\n[output truncated]\n";
static const char held_note[] =
    "\n[output pipe held open by a leftover process; stopped reading]\n";

enum run_phase {
	PHASE_RUNNING,   /* timer: the timeout */
	PHASE_EXITED,    /* exited in time; timer: grace for the pipe to close */
	PHASE_TERM_SENT, /* timer: grace before SIGKILL */
	PHASE_KILL_SENT, /* timer: grace before giving up on the pipe */
};

struct script_run {
	uv_loop_t *loop;
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t timer;
	int open_handles; /* handles not yet closed; freed at 0 */

	char *what;
	char *path;
	char **argv; /* NULL-terminated, owned */
	char **envp; /* NULL-terminated, owned */
	uint64_t timeout_ms;
	uint64_t start_ms; /* uv_now at spawn */
	uint64_t exit_ms;  /* uv_now at exit */

	enum run_phase phase;
	enum script_outcome
	    forced; /* SCRIPT_TIMED_OUT / SCRIPT_CANCELLED once we killed; else EXITED */
	bool exited;
	bool pipe_closing;
	bool finishing;
	bool held_open; /* we stopped reading while a leftover process held the pipe */
	bool out_inited;
	int spawn_error;
	int pid;
	int64_t exit_status;
	int term_signal;

	char *buf; /* SCRIPT_OUTPUT_MAX + room for a note and NUL */
	size_t len;
	bool truncated;
	char scratch[8192]; /* reads past the cap land here and are dropped */

	script_done_cb cb;
	void *cb_arg;
};

bool script_ok(const struct script_result *r)
{
	return r->outcome == SCRIPT_EXITED && r->exit_code == 0;
}

/* strv_free frees a NULL-terminated owned string vector. */
static void strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* run_free releases everything the run owns (handles already closed). */
static void run_free(struct script_run *run)
{
	free(run->what);
	free(run->path);
	strv_free(run->argv);
	strv_free(run->envp);
	free(run->buf);
	free(run);
}

/* env_name_ok accepts NAME=value with NAME made of [A-Z0-9_]. */
static bool env_name_ok(const char *entry)
{
	const char *eq = strchr(entry, '=');
	if (eq == NULL || eq == entry)
		return false;
	for (const char *p = entry; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* build_vectors copies argv and the scrubbed environment from the spec. */
static bool build_vectors(struct script_run *run, const struct script_spec *spec)
{
	run->argv = calloc(spec->n_args + 2, sizeof(char *));
	run->envp = calloc(spec->n_env + 3, sizeof(char *));
	if (run->argv == NULL || run->envp == NULL)
		return false;
	if ((run->argv[0] = strdup(spec->path)) == NULL)
		return false;
	for (size_t i = 0; i < spec->n_args; i++)
		if ((run->argv[i + 1] = strdup(spec->args[i] ? spec->args[i] : "")) == NULL)
			return false;

	size_t e = 0;
	if ((run->envp[e++] = strdup(SCRIPT_PATH_ENV)) == NULL ||
	    (run->envp[e++] = strdup("LANG=C")) == NULL)
		return false;
	for (size_t i = 0; i < spec->n_env; i++) {
		if (spec->env[i] == NULL || !env_name_ok(spec->env[i])) {
			log_warning("%s %s: ignoring malformed environment entry", run->what,
			            run->path);
			continue;
		}
		if ((run->envp[e++] = strdup(spec->env[i])) == NULL)
			return false;
	}
	return true;
}

/* kill_group signals the script's whole process group (never pid 0 or 1). */
static void kill_group(struct script_run *run, int sig)
{
	if (run->pid <= 1)
		return;
	if (kill(-run->pid, sig) != 0 && errno != ESRCH)
		log_warning("%s %s: cannot send signal %d to process group %d: %s", run->what,
		            run->path, sig, run->pid, strerror(errno));
	run->term_signal = sig;
}

static void on_close(uv_handle_t *h);

/* report builds the result and hands it to the caller. */
static void report(struct script_run *run)
{
	struct script_result r = {0};
	r.timeout_ms = run->timeout_ms;
	r.pid = run->pid;
	r.elapsed_ms = run->exited ? run->exit_ms - run->start_ms : 0;
	if (run->spawn_error != 0) {
		r.outcome = SCRIPT_SPAWN_FAILED;
		r.spawn_error = run->spawn_error;
	} else if (run->forced != SCRIPT_EXITED) {
		r.outcome = run->forced;
		r.term_signal = run->term_signal;
	} else if (run->term_signal != 0) {
		r.outcome = SCRIPT_SIGNALED;
		r.term_signal = run->term_signal;
	} else {
		r.outcome = SCRIPT_EXITED;
		r.exit_code = (int)run->exit_status;
	}

	/* The buffer has room past SCRIPT_OUTPUT_MAX for one note and the NUL. */
	const char *note = run->truncated ? truncated_note : run->held_open ? held_note : NULL;
	if (note != NULL) {
		size_t n = strlen(note);
		memcpy(run->buf + run->len, note, n);
		run->len += n;
	}
	run->buf[run->len] = '\0';
	r.output = run->buf;
	r.output_len = run->len;
	r.truncated = run->truncated;

	char desc[128];
	script_result_describe(&r, desc, sizeof(desc));
	log_msg(script_ok(&r) ? EFM_FINE : EFM_INFO, "%s %s: %s after %llu ms", run->what,
	        run->path, desc, (unsigned long long)r.elapsed_ms);
	run->cb(&r, run->cb_arg);
}

/* on_close counts the run's handles down and finishes on the last one. */
static void on_close(uv_handle_t *h)
{
	struct script_run *run = h->data;
	if (--run->open_handles > 0)
		return;
	report(run);
	run_free(run);
}

/* maybe_finish closes the timer once the process is gone and the pipe closed. */
static void maybe_finish(struct script_run *run)
{
	if (run->finishing || !run->exited || !run->pipe_closing)
		return;
	run->finishing = true;
	uv_timer_stop(&run->timer);
	uv_close((uv_handle_t *)&run->timer, on_close);
}

/* close_pipe stops reading output (EOF, error, or we gave up waiting). */
static void close_pipe(struct script_run *run)
{
	if (run->pipe_closing)
		return;
	run->pipe_closing = true;
	uv_read_stop((uv_stream_t *)&run->out);
	uv_close((uv_handle_t *)&run->out, on_close);
	maybe_finish(run);
}

/* on_alloc hands out the rest of the capture buffer, then a throwaway one. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct script_run *run = h->data;
	if (run->len < SCRIPT_OUTPUT_MAX)
		*buf = uv_buf_init(run->buf + run->len, (unsigned)(SCRIPT_OUTPUT_MAX - run->len));
	else
		*buf = uv_buf_init(run->scratch, sizeof(run->scratch));
}

/* on_read keeps what fits and drains the rest so the script never blocks on a full pipe. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct script_run *run = s->data;
	if (nread > 0) {
		if (buf->base == run->scratch)
			run->truncated = true;
		else
			run->len += (size_t)nread;
		return;
	}
	if (nread < 0)
		close_pipe(run);
}

/* on_timer walks the kill sequence, or gives up on a pipe held by a leftover process. */
static void on_timer(uv_timer_t *t)
{
	struct script_run *run = t->data;
	switch (run->phase) {
	case PHASE_RUNNING:
		log_warning("%s %s: timed out after %llu ms; stopping process group %d", run->what,
		            run->path, (unsigned long long)run->timeout_ms, run->pid);
		run->forced = SCRIPT_TIMED_OUT;
		kill_group(run, SIGTERM);
		run->phase = PHASE_TERM_SENT;
		uv_timer_start(&run->timer, on_timer, SCRIPT_KILL_GRACE_MS, 0);
		break;
	case PHASE_TERM_SENT:
		kill_group(run, SIGKILL);
		run->phase = PHASE_KILL_SENT;
		uv_timer_start(&run->timer, on_timer, SCRIPT_KILL_GRACE_MS, 0);
		break;
	case PHASE_EXITED:
	case PHASE_KILL_SENT:
		/* A process outside our group (it called setsid) may keep the pipe. */
		run->held_open = !run->truncated;
		close_pipe(run);
		break;
	}
}

/* on_proc_exit records the status; the run ends once the pipe is closed too. */
static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct script_run *run = p->data;
	run->exited = true;
	run->exit_ms = uv_now(run->loop);
	run->exit_status = exit_status;
	if (run->forced == SCRIPT_EXITED)
		run->term_signal = term_signal;
	uv_close((uv_handle_t *)&run->proc, on_close);
	if (run->phase == PHASE_RUNNING && !run->pipe_closing) {
		run->phase = PHASE_EXITED;
		uv_timer_start(&run->timer, on_timer, SCRIPT_PIPE_GRACE_MS, 0);
	}
	maybe_finish(run);
}

/* spawn starts the process with the output pipe on fds 1 and 2. */
static int spawn(struct script_run *run)
{
	uv_file fds[2];
	int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
	if (rc != 0)
		return rc;
	uv_pipe_init(run->loop, &run->out, 0);
	run->out.data = run;
	run->out_inited = true;
	run->open_handles++;
	rc = uv_pipe_open(&run->out, fds[0]);
	if (rc != 0) {
		close(fds[0]);
		close(fds[1]);
		return rc;
	}

	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null */
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = fds[1];
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = fds[1];

	uv_process_options_t opt = {0};
	opt.exit_cb = on_proc_exit;
	opt.file = run->path;
	opt.args = run->argv;
	opt.env = run->envp;
	opt.cwd = "/";
	opt.flags = UV_PROCESS_DETACHED; /* setsid(): own session and process group */
	opt.stdio_count = 3;
	opt.stdio = stdio;

	run->proc.data = run;
	rc = uv_spawn(run->loop, &run->proc, &opt);
	/* The handle is initialised even when the spawn fails, so it is always closed. */
	run->open_handles++;
	close(fds[1]);
	if (rc != 0) {
		uv_close((uv_handle_t *)&run->proc, on_close);
		return rc;
	}
	run->pid = run->proc.pid;
	return uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
}

struct script_run *script_start(uv_loop_t *loop, const struct script_spec *spec, script_done_cb cb,
                                void *arg)
{
	struct script_run *run = calloc(1, sizeof(*run));
	if (run == NULL)
		return NULL;
	run->loop = loop;
	run->cb = cb;
	run->cb_arg = arg;
	run->timeout_ms = spec->timeout_ms;
	run->forced = SCRIPT_EXITED;
	run->what = strdup(spec->what ? spec->what : "script");
	run->path = strdup(spec->path ? spec->path : "");
	run->buf = malloc(SCRIPT_OUTPUT_MAX + sizeof(held_note) + 1);
	if (run->what == NULL || run->path == NULL || run->buf == NULL ||
	    !build_vectors(run, spec)) {
		run_free(run);
		return NULL;
	}

	uv_timer_init(loop, &run->timer);
	run->timer.data = run;
	run->open_handles = 1;
	run->start_ms = uv_now(loop);

	int rc = spawn(run);
	if (rc != 0 && run->pid == 0) {
		/* Never started: close whatever was opened; on_close reports the error. */
		log_warning("%s %s: cannot start: %s", run->what, run->path, uv_strerror(rc));
		run->spawn_error = rc;
		run->exited = true;
		run->exit_ms = run->start_ms;
		if (run->out_inited) {
			close_pipe(run);
		} else {
			run->pipe_closing = true;
			maybe_finish(run);
		}
		return run;
	}
	if (rc != 0) {
		/* Started but cannot read its output: stop it rather than let it run blind. */
		log_warning("%s %s: cannot read output: %s", run->what, run->path, uv_strerror(rc));
		close_pipe(run);
		script_cancel(run);
		return run;
	}
	log_fine("%s %s: started, pid %d", run->what, run->path, run->pid);
	if (run->timeout_ms > 0)
		uv_timer_start(&run->timer, on_timer, run->timeout_ms, 0);
	return run;
}

void script_cancel(struct script_run *run)
{
	if (run->finishing)
		return;
	if (run->phase == PHASE_EXITED) {
		kill_group(run, SIGKILL);
		close_pipe(run);
		return;
	}
	if (run->phase != PHASE_RUNNING)
		return;
	run->forced = SCRIPT_CANCELLED;
	kill_group(run, SIGTERM);
	run->phase = PHASE_TERM_SENT;
	uv_timer_start(&run->timer, on_timer, SCRIPT_KILL_GRACE_MS, 0);
}

/* check_owner_mode refuses an object writable by others or owned by a stranger. */
static bool check_owner_mode(const char *what, const char *path, const struct stat *st, char *why,
                             size_t len)
{
	uid_t me = geteuid();
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "%s %s is writable by group or others (mode %04o)", what, path,
		         (unsigned)(st->st_mode & 07777));
		return false;
	}
	if (st->st_uid != 0 && st->st_uid != me) {
		snprintf(why, len,
		         "%s %s is owned by uid %u, not by root or the agent's user (uid %u)", what,
		         path, (unsigned)st->st_uid, (unsigned)me);
		return false;
	}
	return true;
}

/* check_dir vets the directory holding path. */
static bool check_dir(const char *path, char *why, size_t len)
{
	char copy[PATH_MAX];
	if ((size_t)snprintf(copy, sizeof(copy), "%s", path) >= sizeof(copy)) {
		snprintf(why, len, "script path is too long");
		return false;
	}
	const char *dir = dirname(copy);
	struct stat st;
	if (stat(dir, &st) != 0) {
		snprintf(why, len, "directory %s: %s", dir, strerror(errno));
		return false;
	}
	return check_owner_mode("directory", dir, &st, why, len);
}

bool script_check(const char *path, char *why, size_t len)
{
	struct stat st;
	if (path == NULL || path[0] == '\0') {
		snprintf(why, len, "no script path is set");
		return false;
	}
	if (path[0] != '/') {
		snprintf(why, len, "script %s is not an absolute path", path);
		return false;
	}
	if (stat(path, &st) != 0) {
		snprintf(why, len, "script %s: %s", path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "script %s is not a regular file", path);
		return false;
	}
	if (access(path, X_OK) != 0 || (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) == 0) {
		snprintf(why, len, "script %s is not executable", path);
		return false;
	}
	if (!check_owner_mode("script", path, &st, why, len) || !check_dir(path, why, len))
		return false;

	/* Through a symlink, the real file's directory must be safe as well. */
	char real[PATH_MAX];
	if (realpath(path, real) == NULL) {
		snprintf(why, len, "script %s: %s", path, strerror(errno));
		return false;
	}
	if (strcmp(real, path) != 0 && !check_dir(real, why, len))
		return false;
	return true;
}

void script_result_describe(const struct script_result *r, char *buf, size_t len)
{
	switch (r->outcome) {
	case SCRIPT_EXITED:
		snprintf(buf, len, "exit code %d", r->exit_code);
		break;
	case SCRIPT_SIGNALED:
		snprintf(buf, len, "killed by signal %d (%s)", r->term_signal,
		         strsignal(r->term_signal));
		break;
	case SCRIPT_TIMED_OUT:
		if (r->timeout_ms % 1000 == 0)
			snprintf(buf, len, "timed out after %llu s",
			         (unsigned long long)(r->timeout_ms / 1000));
		else
			snprintf(buf, len, "timed out after %llu ms",
			         (unsigned long long)r->timeout_ms);
		break;
	case SCRIPT_CANCELLED:
		snprintf(buf, len, "stopped by the agent (signal %d)", r->term_signal);
		break;
	case SCRIPT_SPAWN_FAILED:
		snprintf(buf, len, "could not be started: %s", uv_strerror(r->spawn_error));
		break;
	}
}
