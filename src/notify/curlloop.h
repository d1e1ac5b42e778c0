/*
 * curlloop.h - libcurl's multi interface driven by the uv loop, for the
 * webhook transport (mail only shares curlloop_global_init: see smtp.h).
 *
 * curl tells us which sockets to watch (one uv_poll_t each) and when to
 * wake it (one uv_timer_t); we call curl_multi_socket_action from those
 * callbacks.  Name resolution uses curl's threaded resolver, so nothing here
 * blocks the loop -- for HTTP.  Not for SMTP: see smtp.h.
 */
#ifndef EFM_CURLLOOP_H
#define EFM_CURLLOOP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <uv.h>

/* Bound on one transfer, connection and name resolution included. */
#define CURLLOOP_TRANSFER_TIMEOUT_MS 30000

struct curlloop;

/*
 * Called once per transfer when it ends: rc is CURLE_OK or the error,
 * errbuf curl's detailed message ("" when none).  The easy handle is still
 * valid during the call (read CURLINFO_* from it) and is cleaned up after.
 * CURLE_ABORTED_BY_CALLBACK means the loop was closed under the transfer.
 */
typedef void (*curlloop_done_cb)(CURL *easy, CURLcode rc, const char *errbuf, void *arg);

/* curlloop_global_init runs curl_global_init once per process (call from the loop thread). */
bool curlloop_global_init(void);

/* curlloop_new makes a driver on loop; NULL when curl or memory fails. */
struct curlloop *curlloop_new(uv_loop_t *loop);

/*
 * curlloop_add takes ownership of easy (configured by the caller) and starts
 * it; sets NOSIGNAL, the total timeout when none is set and the error buffer.
 * Returns 0, or a negative code (easy is then cleaned up and cb not called).
 */
int curlloop_add(struct curlloop *cl, CURL *easy, curlloop_done_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* curlloop_active is the number of transfers in progress. */
int curlloop_active(const struct curlloop *cl);

/*
 * curlloop_close aborts the transfers still running (their callbacks run
 * with CURLE_ABORTED_BY_CALLBACK), closes the handles, frees the driver and
 * then calls done (may be NULL) from the loop.
 */
void curlloop_close(struct curlloop *cl, void (*done)(void *arg), void *arg);

#endif
