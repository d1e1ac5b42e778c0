/*
 * smtp.c - compose a notification mail and send it with curl's SMTP client
 * on the libuv threadpool (see smtp.h for why not on the loop).  The worker
 * touches only its own job; logging and the callback happen on the loop.
 */
#include "smtp.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "curlloop.h"
#include "log.h"

#define SMTP_MAX_RCPT 32

/* One mail: the message being uploaded, the recipients, and the worker's result. */
struct smtp_job {
	uv_work_t work;
	CURL *easy;
	char *msg;
	size_t len;
	size_t off;
	struct curl_slist *rcpt;
	atomic_bool abort; /* set on the loop, read by the worker's progress callback */
	CURLcode rc;       /* written by the worker */
	long reply;        /* the server's last reply code */
	char errbuf[CURL_ERROR_SIZE];
	smtp_done_cb cb;
	void *arg;
};

/* addr_ok accepts a plain address: one '@', no blanks, brackets or control characters. */
static bool addr_ok(const char *a)
{
	const char *at = strchr(a, '@');
	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p < 0x21 || *p == 0x7f || *p == '<' || *p == '>' || *p == '"')
			return false;
	return true;
}

size_t smtp_split_recipients(const char *list, char (*out)[256], size_t max)
{
	size_t n = 0;
	const char *p = list ? list : "";
	while (*p != '\0' && n < max) {
		p += strspn(p, ", ;\t\r\n");
		size_t w = strcspn(p, ", ;\t\r\n");
		if (w == 0)
			break;
		if (w < sizeof(out[0])) {
			memcpy(out[n], p, w);
			out[n][w] = '\0';
			if (addr_ok(out[n]))
				n++;
			else
				log_warning("mail: ignoring malformed recipient \"%s\"", out[n]);
		}
		p += w;
	}
	return n;
}

/* default_from fills efm@<hostname> when from.email is unset. */
static void default_from(const char *from, char *buf, size_t len)
{
	if (from != NULL && from[0] != '\0') {
		if (addr_ok(from) && strlen(from) < len) {
			snprintf(buf, len, "%s", from);
			return;
		}
		log_warning("mail: from.email \"%s\" is not a plain address; using efm@<hostname>",
		            from);
	}
	char host[256] = "localhost";
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, len, "efm@%s", host);
}

/* rfc5322_date writes the Date header value in UTC, independent of the locale. */
static void rfc5322_date(time_t now, char *buf, size_t len)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	gmtime_r(&now, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
	         tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	         tm.tm_sec);
}

/* encode_subject keeps ASCII as is and wraps anything else as an RFC 2047 word. */
static void encode_subject(const char *subject, char *buf, size_t len)
{
	char clean[512];
	size_t n = 0;
	bool ascii = true;
	for (const unsigned char *p = (const unsigned char *)subject; *p && n + 1 < sizeof(clean);
	     p++) {
		unsigned char c = (*p < 0x20 || *p == 0x7f) ? ' ' : *p; /* no header injection */
		if (c >= 0x80)
			ascii = false;
		clean[n++] = (char)c;
	}
	clean[n] = '\0';
	if (ascii) {
		snprintf(buf, len, "%s", clean);
		return;
	}
	unsigned char b64[4 * (sizeof(clean) / 3 + 1) + 1];
	EVP_EncodeBlock(b64, (const unsigned char *)clean, (int)n);
	snprintf(buf, len, "=?UTF-8?B?%s?=", (const char *)b64);
}

/* append_crlf copies text turning bare LF into CRLF; returns bytes written. */
static size_t append_crlf(char *dst, const char *text)
{
	size_t n = 0;
	for (const char *p = text; *p; p++) {
		if (*p == '\n' && (p == text || p[-1] != '\r'))
			dst[n++] = '\r';
		dst[n++] = *p;
	}
	return n;
}

char *smtp_build_message(const struct smtp_mail *m, time_t now)
{
	char from[256], date[64], subject[1024], to[SMTP_MAX_RCPT * 258];
	char rcpt[SMTP_MAX_RCPT][256];
	default_from(m->from, from, sizeof(from));
	rfc5322_date(now, date, sizeof(date));
	encode_subject(m->subject ? m->subject : "", subject, sizeof(subject));
	size_t nr = smtp_split_recipients(m->to, rcpt, SMTP_MAX_RCPT);
	size_t tl = 0;
	to[0] = '\0';
	for (size_t i = 0; i < nr; i++)
		tl += (size_t)snprintf(to + tl, sizeof(to) - tl, "%s%s", i ? ", " : "", rcpt[i]);

	static unsigned counter;
	const char *at = strchr(from, '@');
	const char *domain = at != NULL ? at + 1 : "localhost";
	char head[4096];
	int hl =
	    snprintf(head, sizeof(head),
	             "Date: %s\r\n"
	             "From: %s\r\n"
	             "To: %s\r\n"
	             "Subject: %s\r\n"
	             "Message-ID: <%lld.%ld.%u@%s>\r\n"
	             "MIME-Version: 1.0\r\n"
	             "Content-Type: text/plain; charset=utf-8\r\n"
	             "Content-Transfer-Encoding: 8bit\r\n"
	             "X-Mailer: efm\r\n"
	             "\r\n",
	             date, from, to, subject, (long long)now, (long)getpid(), ++counter, domain);
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return NULL;
	const char *body = m->body ? m->body : "";
	/* Worst case every LF doubles, plus a final CRLF. */
	char *msg = malloc((size_t)hl + 2 * strlen(body) + 3);
	if (msg == NULL)
		return NULL;
	memcpy(msg, head, (size_t)hl);
	size_t len = (size_t)hl + append_crlf(msg + hl, body);
	if (len < 2 || msg[len - 1] != '\n') {
		msg[len++] = '\r';
		msg[len++] = '\n';
	}
	msg[len] = '\0';
	return msg;
}

/* read_cb feeds the message to curl; curl itself dot-stuffs and ends the DATA. */
static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
	struct smtp_job *job = userp;
	size_t room = size * nitems;
	size_t n = job->len - job->off;
	if (n > room)
		n = room;
	memcpy(buf, job->msg + job->off, n);
	job->off += n;
	return n;
}

/* job_free releases a mail (on the loop). */
static void job_free(struct smtp_job *job)
{
	if (job->easy != NULL)
		curl_easy_cleanup(job->easy);
	curl_slist_free_all(job->rcpt);
	free(job->msg);
	free(job);
}

/* progress_cb lets smtp_abort stop a running transfer (curl calls it at least once a second). */
static int progress_cb(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct smtp_job *job = userp;
	return atomic_load(&job->abort) ? 1 : 0;
}

/* work_cb runs on a threadpool thread: the blocking transfer, nothing else. */
static void work_cb(uv_work_t *req)
{
	struct smtp_job *job = req->data;
	job->rc = curl_easy_perform(job->easy);
	curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &job->reply);
	/* Cleanup says QUIT and waits for the reply: that wait must not happen on the loop. */
	curl_easy_cleanup(job->easy);
	job->easy = NULL;
}

/* after_work_cb reports on the loop. */
static void after_work_cb(uv_work_t *req, int status)
{
	struct smtp_job *job = req->data;
	if (status == UV_ECANCELED) {
		job->cb(false, "cancelled before it was sent", job->arg);
	} else if (job->rc == CURLE_OK) {
		job->cb(true, NULL, job->arg);
	} else {
		char err[CURL_ERROR_SIZE + 64];
		snprintf(err, sizeof(err), "%s (server reply %ld)",
		         job->errbuf[0] ? job->errbuf : curl_easy_strerror(job->rc), job->reply);
		job->cb(false, err, job->arg);
	}
	job_free(job);
}

/* configure sets every option of the mail's easy handle. */
static void configure(struct smtp_job *job, const struct smtp_mail *m)
{
	CURL *easy = job->easy;
	char from[256];
	default_from(m->from, from, sizeof(from));
	curl_easy_setopt(easy, CURLOPT_URL, m->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(easy, CURLOPT_MAIL_FROM, from); /* curl copies strings */
	curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, job->rcpt);
	curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(easy, CURLOPT_READDATA, job);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)SMTP_TIMEOUT_MS);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	/* Also bounds the wait for the reply to QUIT, which CURLOPT_TIMEOUT does not cover. */
	curl_easy_setopt(easy, CURLOPT_SERVER_RESPONSE_TIMEOUT, 10L);
	curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, job->errbuf);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, job);
	if (m->starttls)
		curl_easy_setopt(easy, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (m->user != NULL && m->user[0] != '\0') {
		curl_easy_setopt(easy, CURLOPT_USERNAME, m->user);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, m->password ? m->password : "");
	}
}

int smtp_send(uv_loop_t *loop, const struct smtp_mail *m, smtp_done_cb cb, void *arg,
              struct smtp_job **out)
{
	char rcpt[SMTP_MAX_RCPT][256];
	size_t nr = smtp_split_recipients(m->to, rcpt, SMTP_MAX_RCPT);
	if (nr == 0)
		return -EINVAL;
	if (!curlloop_global_init())
		return -ENOMEM;

	struct smtp_job *job = calloc(1, sizeof(*job));
	if (job == NULL)
		return -ENOMEM;
	job->cb = cb;
	job->arg = arg;
	job->work.data = job;
	atomic_init(&job->abort, false);
	job->easy = curl_easy_init();
	job->msg = smtp_build_message(m, time(NULL));
	for (size_t i = 0; i < nr; i++) {
		struct curl_slist *l = curl_slist_append(job->rcpt, rcpt[i]);
		if (l == NULL)
			break;
		job->rcpt = l;
	}
	if (job->easy == NULL || job->msg == NULL || job->rcpt == NULL) {
		job_free(job);
		return -ENOMEM;
	}
	job->len = strlen(job->msg);
	configure(job, m);
	int rc = uv_queue_work(loop, &job->work, work_cb, after_work_cb);
	if (rc != 0) {
		job_free(job);
		return rc;
	}
	if (out != NULL)
		*out = job;
	return 0;
}

void smtp_abort(struct smtp_job *job)
{
	atomic_store(&job->abort, true);
	uv_cancel((uv_req_t *)&job->work); /* only succeeds while still queued */
}
