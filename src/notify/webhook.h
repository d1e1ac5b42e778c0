/*
 * webhook.h - notification as a JSON POST, sent through the curl loop.
 *
 * Body: {"event","severity","subject","body","cluster","node","time"} with
 * Content-Type application/json.  Any answer outside 2xx is a failure.
 */
#ifndef EFM_WEBHOOK_H
#define EFM_WEBHOOK_H

#include <stdbool.h>
#include <time.h>

#include "curlloop.h"

struct webhook_msg {
	const char *event;    /* stable event name, "db.failure" */
	const char *severity; /* "INFO", "WARNING", "SEVERE" */
	const char *subject;
	const char *body;
	const char *cluster;
	const char *node;
	time_t time; /* wall clock, rendered as RFC 3339 UTC */
};

/* Called once: ok, or the failure text ("HTTP 500", curl's message). */
typedef void (*webhook_done_cb)(bool ok, const char *error, void *arg);

/* webhook_payload renders the JSON text (malloc'd; NULL on ENOMEM). */
char *webhook_payload(const struct webhook_msg *m);

/*
 * webhook_post starts the POST to url; returns 0 (cb follows from the loop)
 * or a negative code without calling cb.
 */
int webhook_post(struct curlloop *cl, const char *url, const struct webhook_msg *m,
                 webhook_done_cb cb, void *arg) __attribute__((warn_unused_result));

#endif
