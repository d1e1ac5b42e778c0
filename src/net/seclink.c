/*
 * seclink.c - the pump between a peer's TCP connection and its owner's
 * socketpair end, sealing and opening records on the way (seclink.h).
 *
 * Writes try uv_try_write first and copy only what the kernel did not take,
 * so the usual small message costs no allocation.  uv_try_write refuses
 * while writes are queued, which keeps the order of bytes.
 */
#include "seclink.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <raft.h>

#include "log.h"
#include "ratelog.h"
#include "record.h"

/* Largest read from either side, and the sealed form of one such read. */
#define READ_MAX   65536
#define SEALED_MAX (READ_MAX + (READ_MAX / RECORD_MAX_PAYLOAD + 1) * RECORD_OVERHEAD)

struct seclink {
	uv_loop_t *loop;
	uv_tcp_t *tcp; /* raft_malloc'd, freed by its close callback */
	bool tcp_open;
	uv_pipe_t inner; /* our end of the socketpair */
	bool inner_open;
	uv_shutdown_t tcp_shut, inner_shut;
	bool ending;       /* an orderly end is under way: read no more */
	bool tcp_paused;   /* TCP not read: the owner's side is backed up */
	bool inner_paused; /* owner not read: the TCP side is backed up */
	struct record_sealer tx;
	struct record_opener rx;
	const char *channel;
	char peer[PEERAUTH_ADDR_MAX + 16];
};

/* A write that could not complete at once: the rest of the bytes, copied. */
struct sl_write {
	uv_write_t req;
	struct seclink *sl;
	uint8_t data[];
};

static unsigned n_alive;
static struct ratelog warn;
static bool warn_ready;

unsigned seclink_count(void)
{
	return n_alive;
}

/* sl_warn logs a broken or attacked link, rate-limited across all links. */
static void sl_warn(struct seclink *sl, const char *what)
{
	if (!warn_ready) {
		ratelog_init(&warn, "peer records", uv_now(sl->loop));
		warn_ready = true;
	}
	ratelog_warn(&warn, uv_now(sl->loop), "peer %s: %s link closed: %s", sl->peer, sl->channel,
	             what);
}

/* sl_maybe_free releases sl once both handles have closed. */
static void sl_maybe_free(struct seclink *sl)
{
	if (sl->tcp_open || sl->inner_open)
		return;
	record_sealer_free(&sl->tx);
	record_opener_free(&sl->rx);
	OPENSSL_cleanse(sl, sizeof(*sl));
	free(sl);
	n_alive--;
}

static void on_tcp_closed(uv_handle_t *h)
{
	struct seclink *sl = h->data;
	raft_free(h);
	sl->tcp_open = false;
	sl_maybe_free(sl);
}

static void on_inner_closed(uv_handle_t *h)
{
	struct seclink *sl = h->data;
	sl->inner_open = false;
	sl_maybe_free(sl);
}

static void close_tcp(struct seclink *sl)
{
	if (sl->tcp_open && !uv_is_closing((uv_handle_t *)sl->tcp))
		uv_close((uv_handle_t *)sl->tcp, on_tcp_closed);
}

static void close_inner(struct seclink *sl)
{
	if (sl->inner_open && !uv_is_closing((uv_handle_t *)&sl->inner))
		uv_close((uv_handle_t *)&sl->inner, on_inner_closed);
}

/* sl_abort ends the link at once: queued writes are dropped. */
static void sl_abort(struct seclink *sl)
{
	sl->ending = true;
	close_tcp(sl);
	close_inner(sl);
}

static void on_inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static uint8_t slab[READ_MAX]; /* one loop thread: reads never overlap */
	(void)h;
	(void)suggested;
	*buf = uv_buf_init((char *)slab, sizeof(slab));
}

/* resume restarts reading the side that was paused for dst's backlog. */
static void resume(struct seclink *sl, uv_stream_t *dst)
{
	if (sl->ending || uv_stream_get_write_queue_size(dst) > SECLINK_LOW_WATER)
		return;
	if (dst == (uv_stream_t *)sl->tcp && sl->inner_paused) {
		sl->inner_paused = false;
		if (uv_read_start((uv_stream_t *)&sl->inner, on_alloc, on_inner_read) != 0)
			sl_abort(sl);
	} else if (dst == (uv_stream_t *)&sl->inner && sl->tcp_paused) {
		sl->tcp_paused = false;
		if (uv_read_start((uv_stream_t *)sl->tcp, on_alloc, on_tcp_read) != 0)
			sl_abort(sl);
	}
}

static void on_write_done(uv_write_t *req, int status)
{
	struct sl_write *w = req->data;
	struct seclink *sl = w->sl;
	uv_stream_t *dst = req->handle;
	free(w);
	if (status == UV_ECANCELED)
		return; /* the handle is closing */
	if (status < 0) {
		if (dst == (uv_stream_t *)sl->tcp) {
			char what[96];
			snprintf(what, sizeof(what), "send failed: %s", uv_strerror(status));
			log_fine("peer %s: %s link closed: %s", sl->peer, sl->channel, what);
		}
		sl_abort(sl);
		return;
	}
	resume(sl, dst);
}

/*
 * sl_write sends len bytes to dst, copying what the kernel does not take at
 * once, and pauses reading the other side past the high-water mark.
 */
static bool sl_write(struct seclink *sl, uv_stream_t *dst, const uint8_t *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
	int n = uv_try_write(dst, &b, 1);
	if (n == (int)len)
		return true;
	if (n < 0 && n != UV_EAGAIN)
		return false;
	size_t done = n > 0 ? (size_t)n : 0;
	struct sl_write *w = malloc(sizeof(*w) + (len - done));
	if (w == NULL)
		return false;
	memcpy(w->data, data + done, len - done);
	w->sl = sl;
	w->req.data = w;
	b = uv_buf_init((char *)w->data, (unsigned int)(len - done));
	if (uv_write(&w->req, dst, &b, 1, on_write_done) != 0) {
		free(w);
		return false;
	}
	if (uv_stream_get_write_queue_size(dst) > SECLINK_HIGH_WATER) {
		if (dst == (uv_stream_t *)sl->tcp && !sl->inner_paused) {
			sl->inner_paused = true;
			uv_read_stop((uv_stream_t *)&sl->inner);
		} else if (dst == (uv_stream_t *)&sl->inner && !sl->tcp_paused) {
			sl->tcp_paused = true;
			uv_read_stop((uv_stream_t *)sl->tcp);
		}
	}
	return true;
}

static void on_tcp_shutdown(uv_shutdown_t *req, int status)
{
	struct seclink *sl = req->data;
	(void)status; /* sent or not, the link is over */
	close_tcp(sl);
}

static void on_inner_shutdown(uv_shutdown_t *req, int status)
{
	struct seclink *sl = req->data;
	(void)status;
	close_inner(sl);
}

/* seal_failed ends the link when the sealer refuses (record limit reached, OpenSSL). */
static void seal_failed(struct seclink *sl, long rc)
{
	if (rc == -ERANGE)
		log_info("peer %s: %s link used up its record numbers; closing it to reconnect "
		         "with fresh keys",
		         sl->peer, sl->channel);
	else
		sl_warn(sl, "cannot seal a record");
	sl_abort(sl);
}

/* on_inner_read seals what the owner wrote and sends it to the peer. */
static void on_inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	static uint8_t sealed[SEALED_MAX];
	struct seclink *sl = s->data;
	if (nread == 0 || sl->ending)
		return;
	if (nread < 0) {
		/* The owner closed its end: say so to the peer, after what is queued. */
		sl->ending = true;
		uv_read_stop((uv_stream_t *)sl->tcp);
		close_inner(sl);
		long n = record_seal_close(&sl->tx, sealed);
		if (n < 0 || !sl_write(sl, (uv_stream_t *)sl->tcp, sealed, (size_t)n) ||
		    uv_shutdown(&sl->tcp_shut, (uv_stream_t *)sl->tcp, on_tcp_shutdown) != 0)
			close_tcp(sl);
		return;
	}
	long n = record_seal_data(&sl->tx, (const uint8_t *)buf->base, (size_t)nread, sealed);
	if (n < 0) {
		seal_failed(sl, n);
		return;
	}
	if (!sl_write(sl, (uv_stream_t *)sl->tcp, sealed, (size_t)n)) {
		log_fine("peer %s: %s link closed: cannot send", sl->peer, sl->channel);
		sl_abort(sl);
	}
}

/* deliver passes one authenticated payload to the owner. */
static int deliver(void *arg, const uint8_t *data, size_t len)
{
	struct seclink *sl = arg;
	if (!sl_write(sl, (uv_stream_t *)&sl->inner, data, len)) {
		log_fine("peer %s: %s link closed: its owner is gone", sl->peer, sl->channel);
		sl_abort(sl);
		return 1;
	}
	return 0;
}

/* tcp_ended handles the end of the peer's stream (EOF or error). */
static void tcp_ended(struct seclink *sl, ssize_t nread)
{
	if (nread != UV_EOF) {
		log_fine("peer %s: %s link closed: %s", sl->peer, sl->channel,
		         uv_strerror((int)nread));
		sl_abort(sl);
		return;
	}
	switch (record_open_end(&sl->rx)) {
	case RECORD_END_CLEAN:
		log_finest("peer %s: %s link closed by the peer", sl->peer, sl->channel);
		break;
	case RECORD_END_NO_CLOSE:
		/* A killed or crashed peer's kernel ends the stream this way too. */
		log_fine("peer %s: %s link ended without a close record", sl->peer, sl->channel);
		break;
	case RECORD_END_TRUNCATED:
		sl_warn(sl, sl->rx.err);
		sl_abort(sl);
		return;
	}
	/* Let the owner read what arrived, then EOF. */
	sl->ending = true;
	close_tcp(sl);
	if (uv_shutdown(&sl->inner_shut, (uv_stream_t *)&sl->inner, on_inner_shutdown) != 0)
		close_inner(sl);
}

/* on_tcp_read opens records from the peer and passes their payloads on. */
static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct seclink *sl = s->data;
	if (nread == 0 || sl->ending)
		return;
	if (nread < 0) {
		tcp_ended(sl, nread);
		return;
	}
	int rc = record_open_feed(&sl->rx, (const uint8_t *)buf->base, (size_t)nread, deliver, sl);
	if (rc < 0) {
		sl_warn(sl, sl->rx.err);
		sl_abort(sl);
	}
}

uv_stream_t *seclink_start(uv_loop_t *loop, uv_tcp_t *tcp, const struct peerauth *pa,
                           const char *peer, uint64_t record_limit)
{
	uint8_t txk[PEERAUTH_KEY_LEN], rxk[PEERAUTH_KEY_LEN];
	uv_os_sock_t fds[2] = {-1, -1};
	uv_pipe_t *outer = NULL;
	/*
	 * A write to a socketpair whose owner has just closed its end raises
	 * SIGPIPE; the error must reach the write callback instead.
	 */
	signal(SIGPIPE, SIG_IGN);
	struct seclink *sl = calloc(1, sizeof(*sl));
	const char *why = "out of memory";
	if (sl == NULL)
		goto fail;
	sl->loop = loop;
	sl->tcp_shut.data = sl;
	sl->inner_shut.data = sl;
	sl->channel = peerauth_channel_name(pa->channel);
	snprintf(sl->peer, sizeof(sl->peer), "%s", peer);
	why = "cannot derive the session keys";
	bool keys = peerauth_session_keys(pa, txk, rxk);
	bool ok = keys && record_sealer_init(&sl->tx, txk, record_limit) &&
	          record_opener_init(&sl->rx, rxk, record_limit);
	OPENSSL_cleanse(txk, sizeof(txk));
	OPENSSL_cleanse(rxk, sizeof(rxk));
	if (!ok)
		goto fail;
	why = "cannot create a socketpair";
	outer = raft_malloc(sizeof(*outer));
	if (outer == NULL ||
	    uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE, UV_NONBLOCK_PIPE) != 0)
		goto fail;
	uv_pipe_init(loop, &sl->inner, 0); /* clears data */
	sl->inner.data = sl;
	sl->inner_open = true;
	uv_pipe_init(loop, outer, 0);
	if (uv_pipe_open(&sl->inner, fds[0]) != 0) {
		close(fds[0]); /* not adopted by the handle */
		uv_pipe_open(outer, fds[1]);
		goto fail_handles;
	}
	if (uv_pipe_open(outer, fds[1]) != 0) {
		close(fds[1]);
		goto fail_handles;
	}
	sl->tcp = tcp;
	sl->tcp_open = true;
	tcp->data = sl;
	n_alive++;
	if (uv_read_start((uv_stream_t *)tcp, on_alloc, on_tcp_read) != 0 ||
	    uv_read_start((uv_stream_t *)&sl->inner, on_alloc, on_inner_read) != 0) {
		uv_close((uv_handle_t *)outer, (uv_close_cb)raft_free);
		sl_warn(sl, "cannot start reading");
		sl_abort(sl);
		return NULL;
	}
	return (uv_stream_t *)outer;

fail_handles:
	/* Both pipes are initialised: close them; sl goes with the inner one. */
	uv_close((uv_handle_t *)outer, (uv_close_cb)raft_free);
	n_alive++;
	sl_warn(sl, why);
	uv_close((uv_handle_t *)tcp, (uv_close_cb)raft_free);
	close_inner(sl);
	return NULL;

fail:
	log_warning("peer %s: link closed: %s", peer, why);
	if (fds[0] >= 0) {
		close(fds[0]);
		close(fds[1]);
	}
	raft_free(outer);
	if (sl != NULL) {
		record_sealer_free(&sl->tx);
		record_opener_free(&sl->rx);
		free(sl);
	}
	uv_close((uv_handle_t *)tcp, (uv_close_cb)raft_free);
	return NULL;
}
