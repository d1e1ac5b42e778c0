/*
 * admin_guard.c - who gets a place on the admin socket, and for how long.
 *
 * Every client holds a descriptor, and so may each database probe its
 * status request starts; the database monitor and the peer links need
 * descriptors too, and one they cannot get reads as a failed database.  So
 * the number of clients is capped from RLIMIT_NOFILE, leaving
 * ADMIN_FD_RESERVE for the rest of the agent; a quarter of the places is
 * kept for root and the agent's own user, so another local user cannot lock
 * the operator out.  A client beyond the cap is answered "busy" at once and
 * closed, and then clients that connected but stay silent lose their places
 * after ADMIN_IDLE_BUSY_MS instead of ADMIN_IDLE_MS.  What a flood makes the
 * server say goes to the log once per window, with a count.
 */
#include "admin_int.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

bool admin_log_limit(struct admin_log_limit *l, uint64_t now, char *more, size_t len)
{
	more[0] = '\0';
	if (l->window_ms != 0 && now - l->window_ms < ADMIN_LOG_WINDOW_MS) {
		l->dropped++;
		return false;
	}
	if (l->dropped > 0)
		snprintf(more, len, " (and %u more like it in the last %d s)", l->dropped,
		         ADMIN_LOG_WINDOW_MS / 1000);
	l->dropped = 0;
	l->window_ms = now != 0 ? now : 1;
	return true;
}

unsigned admin_guard_cap(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return ADMIN_CONNS_MAX;
	if (rl.rlim_cur < ADMIN_FD_RESERVE + ADMIN_CONNS_MIN * ADMIN_FDS_PER_CONN)
		return ADMIN_CONNS_MIN;
	rlim_t n = (rl.rlim_cur - ADMIN_FD_RESERVE) / ADMIN_FDS_PER_CONN;
	return n < ADMIN_CONNS_MAX ? (unsigned)n : ADMIN_CONNS_MAX;
}

/* close_idle drops a client that connected but sent no complete request in time. */
static void close_idle(struct admin_conn *c)
{
	char more[96];
	if (c->srv != NULL &&
	    admin_log_limit(&c->srv->idle_log, uv_now(c->srv->loop), more, sizeof(more)))
		log_info("admin: client %s: no request within %u ms, closing%s", c->who, c->idle_ms,
		         more);
	admin_conn_close(c);
}

static void on_idle_timeout(uv_timer_t *t)
{
	close_idle(t->data);
}

void admin_guard_watch_idle(struct admin_conn *c)
{
	c->opened_ms = uv_now(c->srv->loop);
	c->idle_ms = ADMIN_IDLE_MS;
	uv_timer_start(&c->timer, on_idle_timeout, ADMIN_IDLE_MS, 0);
}

/*
 * trim_idle runs when the cap is reached: a client still silent
 * ADMIN_IDLE_BUSY_MS after connecting is not one that is about to ask
 * something (efm sends its request at once), so it loses its place now,
 * and the others get that bound instead of ADMIN_IDLE_MS.
 */
static void trim_idle(struct admin_server *s)
{
	uint64_t now = uv_now(s->loop);
	for (struct admin_conn *c = s->conns; c != NULL; c = c->next) {
		/* Closing leaves c linked until its handles have closed. */
		if (c->closing || !c->counted || c->got_request || c->idle_ms <= ADMIN_IDLE_BUSY_MS)
			continue;
		c->idle_ms = ADMIN_IDLE_BUSY_MS;
		uint64_t age = now - c->opened_ms;
		if (age >= ADMIN_IDLE_BUSY_MS)
			close_idle(c);
		else
			uv_timer_start(&c->timer, on_idle_timeout, ADMIN_IDLE_BUSY_MS - age, 0);
	}
}

/* refuse tells c at once that the agent is busy and closes it. */
static void refuse(struct admin_server *s, struct admin_conn *c)
{
	char line[256], more[96];
	int n = snprintf(line, sizeof(line),
	                 "{\"ok\":false,\"busy\":true,\"error\":\"the agent is busy: %u clients "
	                 "are connected to its admin socket (limit %u); try again\"}\n",
	                 c->privileged ? s->n_open : s->n_others,
	                 c->privileged ? s->cap : s->cap_others);
	/* A fresh socket's buffer takes one short line; if not, closing says enough. */
	uv_buf_t buf = uv_buf_init(line, (unsigned)n);
	(void)uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
	if (admin_log_limit(&s->busy_log, uv_now(s->loop), more, sizeof(more)))
		log_warning("admin %s: client %s refused: %u clients connected (limit %u, %u for "
		            "users other than root and the agent's)%s",
		            s->path, c->who, s->n_open, s->cap, s->cap_others, more);
	admin_conn_close(c);
	trim_idle(s);
}

bool admin_guard_admit(struct admin_server *s, struct admin_conn *c)
{
	c->privileged = c->req.uid == 0 || c->req.uid == geteuid();
	if (s->n_open >= s->cap || (!c->privileged && s->n_others >= s->cap_others)) {
		refuse(s, c);
		return false;
	}
	s->n_open++;
	if (!c->privileged)
		s->n_others++;
	c->counted = true;
	return true;
}

void admin_guard_release(struct admin_conn *c)
{
	if (c->counted && c->srv != NULL) {
		c->srv->n_open--;
		if (!c->privileged)
			c->srv->n_others--;
	}
	c->counted = false;
}
