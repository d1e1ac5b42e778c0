/*
 * fo_action.c - the life cycle every local failover action shares (fo_int.h):
 * start, deadline, database steps, programs, thread-pool work, the one
 * callback, cancellation, and freeing once everything it started is back.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fo_int.h"
#include "log.h"

static void on_close(uv_handle_t *h);

/* maybe_free frees a once it has ended and nothing it started can still call back. */
static void maybe_free(struct fo_action *a)
{
	if (a->phase != FO_DONE || a->open_handles > 0 || a->run != NULL || a->work_pending)
		return;
	explicit_bzero(a->db_password, sizeof(a->db_password));
	free(a->output);
	free(a->kind);
	free(a);
}

static void on_close(uv_handle_t *h)
{
	struct fo_action *a = h->data;
	a->open_handles--;
	maybe_free(a);
}

/* stop_work abandons the connection, the program and the work; the timers stay. */
static void stop_work(struct fo_action *a)
{
	uv_timer_stop(&a->tick);
	if (a->conn != NULL) {
		pgconn_close(a->conn);
		a->conn = NULL;
	}
	if (a->run != NULL)
		script_cancel(a->run); /* its callback still comes; maybe_free waits for it */
	if (a->work_pending)
		uv_cancel((uv_req_t *)&a->work); /* fails once running; after_work still comes */
}

/* close_timers closes both timers; the last close callback frees a. */
static void close_timers(struct fo_action *a)
{
	if (!uv_is_closing((uv_handle_t *)&a->deadline))
		uv_close((uv_handle_t *)&a->deadline, on_close);
	if (!uv_is_closing((uv_handle_t *)&a->tick))
		uv_close((uv_handle_t *)&a->tick, on_close);
}

/* deliver logs the outcome and calls cb; a stays allocated until its timers are closed. */
static void deliver(struct fo_action *a, bool ok, const char *detail)
{
	if (ok)
		log_info("%s: done: %s", a->label, detail);
	else
		log_warning("%s: failed: %s", a->label, detail);
	a->cb(a->arg, ok, detail);
}

void fo__finish(struct fo_action *a, bool ok, const char *fmt, ...)
{
	if (a->phase != FO_RUNNING)
		return;
	char detail[FO_DETAIL_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	a->phase = FO_DONE;
	stop_work(a);
	close_timers(a);
	deliver(a, ok, detail);
}

/* on_later delivers the outcome fo__finish_later decided. */
static void on_later(uv_timer_t *t)
{
	struct fo_action *a = t->data;
	a->phase = FO_DONE;
	close_timers(a);
	deliver(a, a->later_ok, a->later_detail);
}

void fo__finish_later(struct fo_action *a, bool ok, const char *fmt, ...)
{
	if (a->phase != FO_RUNNING)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->later_detail, sizeof(a->later_detail), fmt, ap);
	va_end(ap);
	a->later_ok = ok;
	a->phase = FO_ENDING;
	stop_work(a);
	uv_timer_start(&a->deadline, on_later, 0, 0);
}

void fo_action_cancel(struct fo_action *a)
{
	if (a == NULL || a->phase == FO_DONE)
		return;
	log_info("%s: cancelled while %s", a->label, a->step);
	a->phase = FO_DONE;
	a->cancelled = true;
	stop_work(a);
	close_timers(a);
}

const char *fo_action_output(const struct fo_action *a)
{
	return a != NULL && a->output != NULL ? a->output : "";
}

void fo__step(struct fo_action *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->step, sizeof(a->step), fmt, ap);
	va_end(ap);
	log_fine("%s: %s", a->label, a->step);
}

uint64_t fo__remaining_ms(const struct fo_action *a)
{
	uint64_t now = uv_now(a->loop);
	return a->end_ms > now ? a->end_ms - now : 1;
}

bool fo__expired(const struct fo_action *a)
{
	return uv_now(a->loop) >= a->end_ms;
}

/* on_deadline is the backstop: a step that should have timed out on its own did not. */
static void on_deadline(uv_timer_t *t)
{
	struct fo_action *a = t->data;
	fo__finish(a, false, "timed out after %.1f s while %s",
	           (double)(uv_now(a->loop) - a->start_ms) / 1000.0, a->step);
}

struct fo_action *fo__new(uv_loop_t *loop, const char *label, uint64_t timeout_ms, fo_done_cb cb,
                          void *arg)
{
	struct fo_action *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->loop = loop;
	snprintf(a->label, sizeof(a->label), "%s", label);
	a->cb = cb;
	a->arg = arg;
	a->phase = FO_RUNNING;
	snprintf(a->step, sizeof(a->step), "starting");
	uv_timer_init(loop, &a->deadline);
	uv_timer_init(loop, &a->tick);
	a->deadline.data = a;
	a->tick.data = a;
	a->open_handles = 2;
	a->start_ms = uv_now(loop);
	a->end_ms = a->start_ms + timeout_ms;
	uv_timer_start(&a->deadline, on_deadline, timeout_ms + FO_BACKSTOP_MS, 0);
	return a;
}

void fo__db_params(struct fo_action *a, const struct efm_config *cfg, const char *password)
{
	snprintf(a->db_host, sizeof(a->db_host), "%s", cfg->db_host);
	snprintf(a->db_name, sizeof(a->db_name), "%s", cfg->db_database);
	snprintf(a->db_user, sizeof(a->db_user), "%s", cfg->db_user);
	snprintf(a->db_password, sizeof(a->db_password), "%s", password != NULL ? password : "");
	a->db_port = cfg->db_port;
	a->db_ssl = cfg->jdbc_ssl;
}

void fo__db_open(struct fo_action *a, pgconn_open_cb cb)
{
	struct pgconn_params p = {.host = a->db_host,
	                          .port = a->db_port,
	                          .dbname = a->db_name,
	                          .user = a->db_user,
	                          .password = a->db_password,
	                          .ssl_require = a->db_ssl};
	char label[EFM_HOST_MAX + 16];
	snprintf(label, sizeof(label), "db %s:%d", a->db_host, a->db_port);
	fo__step(a, "connecting to the database at %s:%d", a->db_host, a->db_port);
	a->conn = pgconn_open(a->loop, label, &p, fo__remaining_ms(a), cb, a);
	if (a->conn == NULL)
		fo__finish_later(a, false, "out of memory opening a database connection");
}

void fo__db_reopen(struct fo_action *a, pgconn_open_cb cb)
{
	if (a->conn != NULL)
		pgconn_close(a->conn);
	a->conn = NULL;
	fo__db_open(a, cb);
}

void fo__db_query(struct fo_action *a, const char *sql, pgconn_query_cb cb)
{
	int rc = pgconn_query(a->conn, sql, fo__remaining_ms(a), cb, a);
	if (rc < 0)
		fo__finish_later(a, false, "cannot send a query while %s: %s", a->step,
		                 rc == -EBUSY ? "connection busy" : "not connected");
}

/* on_run_done keeps the program's output and hands its result on, unless a ended. */
static void on_run_done(const struct script_result *r, void *arg)
{
	struct fo_action *a = arg;
	a->run = NULL;
	free(a->output);
	a->output = strdup(r->output != NULL ? r->output : "");
	if (a->phase != FO_RUNNING) {
		maybe_free(a);
		return;
	}
	if (a->output == NULL) {
		fo__finish(a, false, "out of memory keeping the output of %s", a->step);
		return;
	}
	a->run_done(a, r);
}

void fo__run(struct fo_action *a, const char *what, const char *path, const char *const *args,
             size_t n_args, const char *const *env, size_t n_env, uint64_t timeout_ms,
             fo_run_cb done)
{
	struct script_spec spec = {.what = what,
	                           .path = path,
	                           .args = args,
	                           .n_args = n_args,
	                           .env = env,
	                           .n_env = n_env,
	                           .timeout_ms = timeout_ms};
	fo__step(a, "running %s (%s)", what, path);
	a->run_done = done;
	a->run = script_start(a->loop, &spec, on_run_done, a);
	if (a->run == NULL)
		fo__finish_later(a, false, "out of memory starting %s", what);
}

void fo__first_line(const char *text, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	out[0] = '\0';
	if (text == NULL)
		return;
	text += strspn(text, " \t\r\n");
	size_t n = strcspn(text, "\r\n");
	while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, text, n);
	out[n] = '\0';
}

static void work_cb(uv_work_t *req)
{
	struct fo_action *a = req->data;
	a->work_fn(a);
}

static void after_work_cb(uv_work_t *req, int status)
{
	struct fo_action *a = req->data;
	a->work_pending = false;
	if (a->phase != FO_RUNNING) {
		maybe_free(a);
		return;
	}
	if (status != 0) {
		fo__finish(a, false, "work abandoned while %s: %s", a->step, uv_strerror(status));
		return;
	}
	a->work_done(a);
}

void fo__work(struct fo_action *a, fo_work_fn fn, fo_work_done done)
{
	a->work.data = a;
	a->work_fn = fn;
	a->work_done = done;
	a->work_pending = true;
	int rc = uv_queue_work(a->loop, &a->work, work_cb, after_work_cb);
	if (rc != 0) {
		a->work_pending = false;
		fo__finish_later(a, false, "cannot queue work while %s: %s", a->step,
		                 uv_strerror(rc));
	}
}
