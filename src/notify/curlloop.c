/*
 * curlloop.c - the standard libcurl multi + libuv pairing.
 *
 * Handle lifetime follows libuv's rule: a socket watcher is freed in its
 * close callback, and the driver itself is freed only when its timer and
 * every watcher have closed.
 */
#include "curlloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct curlloop {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer; /* curl's requested wake-up */
	int active;       /* transfers added and not yet finished */
	int open_handles; /* timer + socket watchers not yet closed */
	bool closing;
	struct xfer *xfers;     /* transfers in progress, for aborting on close */
	struct curlsock *socks; /* open watchers, for the sweep on close */
	void (*done)(void *arg);
	void *done_arg;
};

/* One socket curl asked us to watch. */
struct curlsock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct curlloop *cl;
	struct curlsock *prev, *next;
};

/* One transfer: the caller's callback and curl's error text. */
struct xfer {
	CURL *easy;
	struct xfer *prev, *next;
	curlloop_done_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
};

static void on_handle_closed(uv_handle_t *h);

/* finish_xfer detaches one transfer, reports it, and cleans it up. */
static void finish_xfer(struct curlloop *cl, CURL *easy, CURLcode rc)
{
	struct xfer *x = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	curl_multi_remove_handle(cl->multi, easy);
	cl->active--;
	if (x != NULL) {
		if (x->prev != NULL)
			x->prev->next = x->next;
		else
			cl->xfers = x->next;
		if (x->next != NULL)
			x->next->prev = x->prev;
		x->cb(easy, rc, x->errbuf, x->arg);
		free(x);
	}
	curl_easy_cleanup(easy);
}

/* drain_done reports every transfer curl says has completed. */
static void drain_done(struct curlloop *cl)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(cl->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* Read both fields before finish_xfer frees what msg points into. */
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;
		finish_xfer(cl, easy, rc);
	}
}

/* on_poll tells curl which way its socket became ready. */
static void on_poll(uv_poll_t *p, int status, int events)
{
	struct curlsock *cs = p->data;
	struct curlloop *cl = cs->cl;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	curl_multi_socket_action(cl->multi, cs->fd, flags, &running);
	drain_done(cl);
}

/* on_timer lets curl run its timeouts. */
static void on_timer(uv_timer_t *t)
{
	struct curlloop *cl = t->data;
	int running;
	curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain_done(cl);
}

/* timer_fn: CURLMOPT_TIMERFUNCTION, re-arms (or stops) our one timer. */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct curlloop *cl = userp;
	if (cl->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&cl->timer);
	else /* 0 too: curl must not be re-entered from inside its own callback */
		uv_timer_start(&cl->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* sock_close unlinks a watcher and closes it; freed in on_handle_closed. */
static void sock_close(struct curlsock *cs)
{
	struct curlloop *cl = cs->cl;
	if (cs->prev != NULL)
		cs->prev->next = cs->next;
	else
		cl->socks = cs->next;
	if (cs->next != NULL)
		cs->next->prev = cs->prev;
	uv_poll_stop(&cs->poll);
	uv_close((uv_handle_t *)&cs->poll, on_handle_closed);
}

/* socket_fn: CURLMOPT_SOCKETFUNCTION, keeps one uv_poll_t per curl socket. */
static int socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct curlloop *cl = userp;
	struct curlsock *cs = socketp;

	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL) {
			sock_close(cs);
			curl_multi_assign(cl->multi, s, NULL);
		}
		return 0;
	}
	if (cs == NULL) {
		cs = calloc(1, sizeof(*cs));
		if (cs == NULL)
			return -1;
		cs->fd = s;
		cs->cl = cl;
		if (uv_poll_init_socket(cl->loop, &cs->poll, s) != 0) {
			free(cs);
			return -1;
		}
		cs->poll.data = cs;
		cl->open_handles++;
		cs->next = cl->socks;
		if (cl->socks != NULL)
			cl->socks->prev = cs;
		cl->socks = cs;
		curl_multi_assign(cl->multi, s, cs);
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&cs->poll, events, on_poll);
	return 0;
}

bool curlloop_global_init(void)
{
	/* Process-wide; must happen before any other curl call, and not concurrently. */
	static bool done;
	if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
		done = true;
	return done;
}

struct curlloop *curlloop_new(uv_loop_t *loop)
{
	if (!curlloop_global_init())
		return NULL;
	struct curlloop *cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return NULL;
	cl->multi = curl_multi_init();
	if (cl->multi == NULL) {
		free(cl);
		return NULL;
	}
	cl->loop = loop;
	uv_timer_init(loop, &cl->timer);
	cl->timer.data = cl;
	cl->open_handles = 1;
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	return cl;
}

int curlloop_add(struct curlloop *cl, CURL *easy, curlloop_done_cb cb, void *arg)
{
	struct xfer *x = cl->closing ? NULL : calloc(1, sizeof(*x));
	if (x == NULL) {
		curl_easy_cleanup(easy);
		return cl->closing ? -ECANCELED : -ENOMEM;
	}
	x->cb = cb;
	x->arg = arg;
	x->easy = easy;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)CURLLOOP_TRANSFER_TIMEOUT_MS);
	CURLMcode mc = curl_multi_add_handle(cl->multi, easy);
	if (mc != CURLM_OK) {
		log_warning("curl: cannot start a transfer: %s", curl_multi_strerror(mc));
		curl_easy_cleanup(easy);
		free(x);
		return -EIO;
	}
	cl->active++;
	x->next = cl->xfers;
	if (cl->xfers != NULL)
		cl->xfers->prev = x;
	cl->xfers = x;
	return 0;
}

int curlloop_active(const struct curlloop *cl)
{
	return cl->active;
}

/* on_handle_closed frees watchers and, after the last handle, the driver. */
static void on_handle_closed(uv_handle_t *h)
{
	struct curlloop *cl;
	if (h->type == UV_POLL) {
		struct curlsock *cs = h->data;
		cl = cs->cl;
		free(cs);
	} else {
		cl = h->data;
	}
	if (--cl->open_handles > 0 || !cl->closing)
		return;
	void (*done)(void *) = cl->done;
	void *arg = cl->done_arg;
	free(cl);
	if (done != NULL)
		done(arg);
}

void curlloop_close(struct curlloop *cl, void (*done)(void *arg), void *arg)
{
	cl->done = done;
	cl->done_arg = arg;
	cl->closing = true;
	while (cl->xfers != NULL)
		finish_xfer(cl, cl->xfers->easy, CURLE_ABORTED_BY_CALLBACK);
	/* Cleanup closes cached connections, removing their watchers through socket_fn. */
	curl_multi_cleanup(cl->multi);
	cl->multi = NULL;
	while (cl->socks != NULL)
		sock_close(cl->socks);
	uv_timer_stop(&cl->timer);
	uv_close((uv_handle_t *)&cl->timer, on_handle_closed);
}
