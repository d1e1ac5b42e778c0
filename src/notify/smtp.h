/*
 * smtp.h - notification mail over SMTP, sent on libuv's thread pool.
 *
 * The message is a plain RFC 5322 text mail (Date, From, To, Subject,
 * Message-ID, MIME text/plain UTF-8, CRLF line ends).  smtp:// with
 * optional STARTTLS, or smtps://; AUTH when a user is set.
 *
 * Mail does not go through the curl loop (curlloop.h) that carries the
 * webhook: curl 7.88 blocks waiting for the SMTP server's reply to the
 * final "." even in multi mode, and removing an unfinished SMTP handle
 * blocks too (curl/curl#8555, #4015), so a slow mail server would stall the
 * agent's loop.  Each mail is sent with curl_easy_perform on the thread
 * pool instead, bounded by SMTP_TIMEOUT_MS and abortable, one message at a
 * time (the notifier's mail outbox has at most one in flight); the
 * callback runs on the loop.
 */
#ifndef EFM_SMTP_H
#define EFM_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <uv.h>

struct smtp_mail {
	const char *url;  /* smtp://host:port or smtps://host:port */
	const char *user; /* "" or NULL: no AUTH */
	const char *password;
	bool starttls;       /* require STARTTLS on smtp:// */
	const char *from;    /* envelope and header sender; "" -> efm@<hostname> */
	const char *to;      /* recipients, separated by commas, semicolons or blanks */
	const char *subject; /* full subject line, without CR/LF */
	const char *body;    /* text, LF or CRLF line ends */
};

/* Bound on one mail, connection and name resolution included. */
#define SMTP_TIMEOUT_MS 30000

struct smtp_job;

/* Called once, on the loop: ok, or the failure text (curl's message and the server's code). */
typedef void (*smtp_done_cb)(bool ok, const char *error, void *arg);

/*
 * smtp_send queues the mail on the threadpool; returns 0 (cb follows from
 * the loop; *job, when job is not NULL, can be aborted until then) or a
 * negative code without calling cb: -EINVAL when there is no valid
 * recipient, -ENOMEM.
 */
int smtp_send(uv_loop_t *loop, const struct smtp_mail *m, smtp_done_cb cb, void *arg,
              struct smtp_job **job) __attribute__((warn_unused_result));

/* smtp_abort makes a queued or running mail stop soon (within about a second); cb still follows. */
void smtp_abort(struct smtp_job *job);

/*
 * smtp_split_recipients copies each address of list into out[i] (a bounded
 * buffer each), skipping malformed ones; returns how many it kept.
 */
size_t smtp_split_recipients(const char *list, char (*out)[256], size_t max);

/* smtp_build_message renders the whole message (malloc'd; NULL on ENOMEM). */
char *smtp_build_message(const struct smtp_mail *m, time_t now);

#endif
