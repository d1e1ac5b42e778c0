/*
 * webhook.c - POST a notification as JSON to notification.webhook.url.
 */
#include "webhook.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "log.h"

/* One POST in flight. */
struct webhook_job {
	struct curl_slist *headers;
	webhook_done_cb cb;
	void *arg;
};

char *webhook_payload(const struct webhook_msg *m)
{
	char stamp[32];
	struct tm tm;
	gmtime_r(&m->time, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	bool ok = cJSON_AddStringToObject(o, "event", m->event ? m->event : "") &&
	          cJSON_AddStringToObject(o, "severity", m->severity ? m->severity : "") &&
	          cJSON_AddStringToObject(o, "subject", m->subject ? m->subject : "") &&
	          cJSON_AddStringToObject(o, "body", m->body ? m->body : "") &&
	          cJSON_AddStringToObject(o, "cluster", m->cluster ? m->cluster : "") &&
	          cJSON_AddStringToObject(o, "node", m->node ? m->node : "") &&
	          cJSON_AddStringToObject(o, "time", stamp);
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

/* discard_cb swallows the response body. */
static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	return size * nmemb;
}

/* on_done maps the transfer result and HTTP status to ok / error text. */
static void on_done(CURL *easy, CURLcode rc, const char *errbuf, void *arg)
{
	struct webhook_job *job = arg;
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	char err[CURL_ERROR_SIZE + 64];
	if (rc != CURLE_OK) {
		snprintf(err, sizeof(err), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
		job->cb(false, err, job->arg);
	} else if (code < 200 || code > 299) {
		snprintf(err, sizeof(err), "HTTP %ld", code);
		job->cb(false, err, job->arg);
	} else {
		job->cb(true, NULL, job->arg);
	}
	curl_slist_free_all(job->headers);
	free(job);
}

int webhook_post(struct curlloop *cl, const char *url, const struct webhook_msg *m,
                 webhook_done_cb cb, void *arg)
{
	char *json = webhook_payload(m);
	struct webhook_job *job = calloc(1, sizeof(*job));
	CURL *easy = curl_easy_init();
	if (json != NULL && job != NULL)
		job->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (json == NULL || job == NULL || easy == NULL || job->headers == NULL) {
		free(json);
		if (job != NULL)
			curl_slist_free_all(job->headers);
		free(job);
		if (easy != NULL)
			curl_easy_cleanup(easy);
		return -ENOMEM;
	}
	job->cb = cb;
	job->arg = arg;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
	curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, json);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_cb);
	curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "efm");
	free(json);
	int rc = curlloop_add(cl, easy, on_done, job);
	if (rc != 0) {
		curl_slist_free_all(job->headers);
		free(job);
	}
	return rc;
}
