/*
 * notify.c - the event funnel: every notification is logged, kept in the
 * ring, and queued on each configured transport whose outbox then sends it
 * (mail through smtp.c, the webhook through webhook.c, the notification
 * script through script.c).
 *
 * Lifetime: the notifier owns one uv timer per transport plus the close
 * timer and the curl loop.  notify_close waits (bounded) for the queues to
 * empty, cancels what is left, and frees everything once every handle,
 * transfer and script has reported back.
 */
#include "notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curlloop.h"
#include "log.h"
#include "script.h"
#include "smtp.h"
#include "webhook.h"

#define NOTIFY_RING        20
#define NOTIFY_RING_LINE   320
#define NOTIFY_SUBJECT_MAX 256
#define NOTIFY_TEXT_MAX    (80 * 1024) /* script output (64 KiB) plus the prose */
#define NOTIFY_STATE_MAX   8192

enum transport_kind { T_MAIL, T_WEBHOOK, T_SCRIPT, T_COUNT };

struct transport {
	struct notifier *n;
	enum transport_kind kind;
	struct outbox ob;
	uv_timer_t timer;       /* next attempt, retry, or rate window */
	struct script_run *run; /* T_SCRIPT: the run in flight, for cancelling */
	struct smtp_job *mail;  /* T_MAIL: the mail in flight, for aborting */
	bool busy;              /* a send was started and has not reported back */
};

struct notifier {
	uv_loop_t *loop;
	const struct efm_config *cfg;
	char node[EFM_HOST_MAX];
	void (*state_fn)(void *arg, char *buf, size_t len);
	void *state_arg;
	uint64_t (*clock)(void *arg);
	void *clock_arg;
	struct curlloop *curl; /* NULL once closed */
	struct transport tr[T_COUNT];

	char ring[NOTIFY_RING][NOTIFY_RING_LINE];
	size_t ring_head, ring_count;

	bool closing;   /* notify_close called: no new sends queued */
	bool finishing; /* flush time over: cancelling and closing handles */
	uv_timer_t close_timer;
	int open_handles;
	void (*done)(void *arg);
	void *done_arg;
};

static const char *const transport_names[T_COUNT] = {"mail", "webhook", "script"};

static void pump(struct transport *t);
static void finish_close(struct notifier *n);
static void maybe_free(struct notifier *n);

/* default_clock: monotonic milliseconds. */
static uint64_t default_clock(void *arg)
{
	return uv_hrtime() / 1000000;
}

static uint64_t now_ms(const struct notifier *n)
{
	return n->clock(n->clock_arg);
}

/* transport_enabled: the transport has a destination in the current configuration. */
static bool transport_enabled(const struct notifier *n, enum transport_kind k)
{
	const struct efm_config *c = n->cfg;
	switch (k) {
	case T_MAIL:
		return c->user_email != NULL && c->user_email[0] != '\0';
	case T_WEBHOOK:
		return c->notification_webhook_url != NULL &&
		       c->notification_webhook_url[0] != '\0';
	case T_SCRIPT:
		return c->script_notification != NULL && c->script_notification[0] != '\0';
	case T_COUNT:
		break;
	}
	return false;
}

struct notifier *notify_new(uv_loop_t *loop, const struct efm_config *cfg, const char *node_address)
{
	struct notifier *n = calloc(1, sizeof(*n));
	if (n == NULL)
		return NULL;
	n->loop = loop;
	n->cfg = cfg;
	snprintf(n->node, sizeof(n->node), "%s", node_address ? node_address : "");
	n->clock = default_clock;
	n->curl = curlloop_new(loop);
	bool ok = n->curl != NULL;
	for (int k = 0; k < T_COUNT && ok; k++)
		ok = outbox_init(&n->tr[k].ob, transport_names[k], cfg->notification_rate_limit);
	if (!ok) {
		for (int k = 0; k < T_COUNT; k++)
			outbox_free(&n->tr[k].ob);
		if (n->curl != NULL)
			curlloop_close(n->curl, NULL, NULL); /* frees itself from the loop */
		free(n);
		return NULL;
	}
	for (int k = 0; k < T_COUNT; k++) {
		struct transport *t = &n->tr[k];
		t->n = n;
		t->kind = (enum transport_kind)k;
		uv_timer_init(loop, &t->timer);
		t->timer.data = t;
		n->open_handles++;
	}
	uv_timer_init(loop, &n->close_timer);
	n->close_timer.data = n;
	n->open_handles++;
	return n;
}

void notify_set_config(struct notifier *n, const struct efm_config *cfg)
{
	n->cfg = cfg;
	for (int k = 0; k < T_COUNT; k++) {
		struct outbox *ob = &n->tr[k].ob;
		int rate = cfg->notification_rate_limit > 0 ? cfg->notification_rate_limit : 0;
		if (rate == ob->rate_limit)
			continue;
		/* A new window size: start counting afresh rather than reshaping the ring. */
		uint64_t *adm = rate > 0 ? calloc((size_t)rate, sizeof(*adm)) : NULL;
		if (rate > 0 && adm == NULL)
			continue;
		free(ob->admitted);
		ob->admitted = adm;
		ob->rate_limit = rate;
		ob->adm_head = ob->adm_count = 0;
	}
}

void notify_set_state_fn(struct notifier *n, void (*fn)(void *arg, char *buf, size_t len),
                         void *arg)
{
	n->state_fn = fn;
	n->state_arg = arg;
}

void notify_set_clock(struct notifier *n, uint64_t (*fn)(void *arg), void *arg)
{
	n->clock = fn ? fn : default_clock;
	n->clock_arg = arg;
}

/* ring_add keeps "SEVERITY subject" of the last NOTIFY_RING notifications. */
static void ring_add(struct notifier *n, enum efm_severity sev, const char *subject)
{
	size_t slot = (n->ring_head + n->ring_count) % NOTIFY_RING;
	if (n->ring_count == NOTIFY_RING)
		n->ring_head = (n->ring_head + 1) % NOTIFY_RING;
	else
		n->ring_count++;
	snprintf(n->ring[slot], NOTIFY_RING_LINE, "%s %s", notify_severity_name(sev), subject);
}

size_t notify_recent(const struct notifier *n, const char **out, size_t max)
{
	size_t skip = n->ring_count > max ? n->ring_count - max : 0;
	size_t k = 0;
	for (size_t i = skip; i < n->ring_count; i++)
		out[k++] = n->ring[(n->ring_head + i) % NOTIFY_RING];
	return k;
}

size_t notify_pending(const struct notifier *n)
{
	size_t total = 0;
	for (int k = 0; k < T_COUNT; k++)
		total += n->tr[k].ob.count + n->tr[k].ob.suppressed;
	return total;
}

/* compose_body lays out the header block, the event's text and the cluster state. */
static char *compose_body(struct notifier *n, const char *text)
{
	const struct efm_config *c = n->cfg;
	char *state = NULL;
	if (n->state_fn != NULL && (state = calloc(1, NOTIFY_STATE_MAX)) != NULL)
		n->state_fn(n->state_arg, state, NOTIFY_STATE_MAX);
	size_t len = strlen(text) + (state ? strlen(state) : 0) + 1024;
	char *body = malloc(len);
	if (body != NULL) {
		/* The agent validates that the VIP keys are all set or all empty. */
		bool vip = c->virtual_ip != NULL && c->virtual_ip[0] != '\0';
		snprintf(body, len,
		         "Node:          %s\n"
		         "Cluster name:  %s\n"
		         "Database name: %s\n"
		         "VIP support:   %s\n"
		         "\n%s\n%s%s",
		         n->node, c->cluster ? c->cluster : "",
		         (c->db_database && c->db_database[0]) ? c->db_database : "(none)",
		         vip ? "ENABLED" : "DISABLED", text,
		         (state && state[0]) ? "\nCurrent state of the cluster:\n" : "",
		         state ? state : "");
	}
	free(state);
	return body;
}

void notify_emit(struct notifier *n, enum notify_event ev, const struct notify_args *args)
{
	static const enum efm_level levels[] = {[EFM_SEV_INFO] = EFM_INFO,
	                                        [EFM_SEV_WARNING] = EFM_WARNING,
	                                        [EFM_SEV_SEVERE] = EFM_SEVERE};
	enum efm_severity sev = notify_event_severity(ev);
	char subject[NOTIFY_SUBJECT_MAX];
	char *text = malloc(NOTIFY_TEXT_MAX);
	if (text == NULL) {
		log_always(EFM_SEVERE, "%s: notification %s: out of memory", n->node,
		           notify_event_name(ev));
		return;
	}
	notify_render(ev, n->cfg, n->node, args, subject, sizeof(subject), text, NOTIFY_TEXT_MAX);
	log_always(levels[sev], "%s: notification %s %s: %s -- %s", n->node, notify_event_name(ev),
	           notify_severity_name(sev), subject, text);
	ring_add(n, sev, subject);

	if (!n->closing && sev >= n->cfg->notification_level) {
		char *body = compose_body(n, text);
		int64_t wall = (int64_t)time(NULL);
		for (int k = 0; k < T_COUNT && body != NULL; k++) {
			if (!transport_enabled(n, (enum transport_kind)k))
				continue;
			outbox_push(&n->tr[k].ob, ev, sev, subject, body, wall, now_ms(n));
			pump(&n->tr[k]);
		}
		free(body);
	}
	free(text);
}

/* on_tick: a transport's timer (retry due, rate window open, or a deferred pump). */
static void on_tick(uv_timer_t *timer)
{
	pump(timer->data);
}

/* sent records one attempt's outcome and schedules what comes next. */
static void sent(struct transport *t, bool ok, const char *error)
{
	struct notifier *n = t->n;
	t->busy = false;
	t->run = NULL;
	t->mail = NULL;
	outbox_done(&t->ob, ok, error, now_ms(n));
	if (n->finishing) {
		maybe_free(n);
		return;
	}
	/* Not pumping from inside the transport's callback keeps the call depth flat. */
	uv_timer_start(&t->timer, on_tick, 0, 0);
}

static void on_mail_done(bool ok, const char *error, void *arg)
{
	sent(arg, ok, error);
}

static void on_webhook_done(bool ok, const char *error, void *arg)
{
	sent(arg, ok, error);
}

/* on_script_done: the notification script counts as delivered when it exits 0. */
static void on_script_done(const struct script_result *r, void *arg)
{
	char desc[160];
	script_result_describe(r, desc, sizeof(desc));
	sent(arg, script_ok(r), desc);
}

/* start_script runs script.notification with argv [script, severity, subject, body]. */
static int start_script(struct transport *t, const struct outbox_msg *m)
{
	struct notifier *n = t->n;
	const struct efm_config *c = n->cfg;
	char why[512];
	if (!script_check(c->script_notification, why, sizeof(why))) {
		log_warning("notification script: refusing to run: %s", why);
		return -EPERM;
	}
	char e_cluster[192], e_node[EFM_HOST_MAX + 16], e_event[96], e_sev[32];
	snprintf(e_cluster, sizeof(e_cluster), "EFM_CLUSTER=%s", c->cluster ? c->cluster : "");
	snprintf(e_node, sizeof(e_node), "EFM_NODE=%s", n->node);
	snprintf(e_event, sizeof(e_event), "EFM_EVENT=%s",
	         m->ev == NOTIFY_EVENT_COUNT ? "notify.summary" : notify_event_name(m->ev));
	snprintf(e_sev, sizeof(e_sev), "EFM_SEVERITY=%s", notify_severity_name(m->sev));
	const char *env[] = {e_cluster, e_node, e_event, e_sev};
	const char *args[] = {notify_severity_name(m->sev), m->subject, m->body};
	struct script_spec spec = {
	    .what = "notification script",
	    .path = c->script_notification,
	    .args = args,
	    .n_args = 3,
	    .env = env,
	    .n_env = 4,
	    .timeout_ms = (uint64_t)c->script_timeout_s * 1000,
	};
	t->run = script_start(n->loop, &spec, on_script_done, t);
	return t->run != NULL ? 0 : -ENOMEM;
}

/* start_send hands one message to the transport; 0 means a callback will follow. */
static int start_send(struct transport *t, const struct outbox_msg *m)
{
	struct notifier *n = t->n;
	const struct efm_config *c = n->cfg;
	char subject[NOTIFY_SUBJECT_MAX + 32];
	switch (t->kind) {
	case T_MAIL: {
		snprintf(subject, sizeof(subject), "[efm] %s: %s", notify_severity_name(m->sev),
		         m->subject);
		struct smtp_mail mail = {
		    .url = c->notification_smtp_url,
		    .user = c->notification_smtp_user,
		    .password = c->notification_smtp_password,
		    .starttls = c->notification_smtp_starttls,
		    .from = c->from_email,
		    .to = c->user_email,
		    .subject = subject,
		    .body = m->body,
		};
		return smtp_send(n->loop, &mail, on_mail_done, t, &t->mail);
	}
	case T_WEBHOOK: {
		struct webhook_msg w = {
		    .event =
		        m->ev == NOTIFY_EVENT_COUNT ? "notify.summary" : notify_event_name(m->ev),
		    .severity = notify_severity_name(m->sev),
		    .subject = m->subject,
		    .body = m->body,
		    .cluster = c->cluster,
		    .node = n->node,
		    .time = (time_t)m->wall_time,
		};
		return webhook_post(n->curl, c->notification_webhook_url, &w, on_webhook_done, t);
	}
	case T_SCRIPT:
		return start_script(t, m);
	case T_COUNT:
		break;
	}
	return -EINVAL;
}

/* pump starts the next due message of a transport, or arms its timer for later. */
static void pump(struct transport *t)
{
	struct notifier *n = t->n;
	if (n->finishing || t->busy)
		return;
	uint64_t wait;
	struct outbox_msg *m = outbox_next(&t->ob, now_ms(n), &wait);
	if (m == NULL) {
		if (wait != UINT64_MAX)
			uv_timer_start(&t->timer, on_tick, wait, 0);
		else if (n->closing && notify_pending(n) == 0)
			finish_close(n);
		return;
	}
	if (!transport_enabled(n, t->kind)) {
		/* Unset by a reload: nowhere to send it any more (it is in the log). */
		outbox_done(&t->ob, true, NULL, now_ms(n));
		uv_timer_start(&t->timer, on_tick, 0, 0);
		return;
	}
	t->busy = true;
	int rc = start_send(t, m);
	if (rc == 0)
		return;
	t->busy = false;
	if (rc == -EINVAL || rc == -EPERM) {
		/* Misconfiguration (no valid recipient, unsafe script): retrying cannot help. */
		log_warning("notification %s: cannot send \"%s\": %s", transport_names[t->kind],
		            m->subject, rc == -EINVAL ? "no valid destination" : "refused");
		outbox_done(&t->ob, true, NULL, now_ms(n));
	} else {
		outbox_done(&t->ob, false, strerror(-rc), now_ms(n));
	}
	uv_timer_start(&t->timer, on_tick, 0, 0);
}

/* on_close_timer: the flush time is over. */
static void on_close_timer(uv_timer_t *timer)
{
	finish_close(timer->data);
}

void notify_close(struct notifier *n, void (*done)(void *arg), void *arg)
{
	n->done = done;
	n->done_arg = arg;
	n->closing = true;
	if (notify_pending(n) == 0) {
		finish_close(n);
		return;
	}
	uv_timer_start(&n->close_timer, on_close_timer, NOTIFY_CLOSE_FLUSH_MS, 0);
}

/* on_transport_timer_closed / on_close_timer_closed count the notifier's timers down. */
static void on_transport_timer_closed(uv_handle_t *h)
{
	struct notifier *n = ((struct transport *)h->data)->n;
	n->open_handles--;
	maybe_free(n);
}

static void on_close_timer_closed(uv_handle_t *h)
{
	struct notifier *n = h->data;
	n->open_handles--;
	maybe_free(n);
}

/* on_curl_closed: every transfer has reported and the curl loop is gone. */
static void on_curl_closed(void *arg)
{
	struct notifier *n = arg;
	n->curl = NULL;
	maybe_free(n);
}

/* finish_close abandons what is left and closes every handle. */
static void finish_close(struct notifier *n)
{
	if (n->finishing)
		return;
	n->finishing = true;
	size_t left = notify_pending(n);
	if (left > 0)
		log_warning("notification: shutting down with %zu notifications not sent (they are "
		            "in the log)",
		            left);
	for (int k = 0; k < T_COUNT; k++) {
		struct transport *t = &n->tr[k];
		if (t->run != NULL)
			script_cancel(t->run);
		if (t->mail != NULL)
			smtp_abort(t->mail);
		uv_timer_stop(&t->timer);
		uv_close((uv_handle_t *)&t->timer, on_transport_timer_closed);
	}
	uv_timer_stop(&n->close_timer);
	uv_close((uv_handle_t *)&n->close_timer, on_close_timer_closed);
	curlloop_close(n->curl, on_curl_closed, n);
}

/* maybe_free releases the notifier once nothing can call back into it. */
static void maybe_free(struct notifier *n)
{
	if (!n->finishing || n->open_handles > 0 || n->curl != NULL)
		return;
	for (int k = 0; k < T_COUNT; k++)
		if (n->tr[k].busy)
			return;
	for (int k = 0; k < T_COUNT; k++)
		outbox_free(&n->tr[k].ob);
	void (*done)(void *) = n->done;
	void *arg = n->done_arg;
	free(n);
	if (done != NULL)
		done(arg);
}
