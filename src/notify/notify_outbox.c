/*
 * notify_outbox.c - one transport's queue of notifications: rate limit with
 * a summary of what it held back, drop-oldest when full, retries with
 * exponential backoff.  Pure bookkeeping on an explicit millisecond clock, so
 * the tests drive it without a loop; notify.c wires it to timers.
 */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define NOTIFY_SUBJECT_MAX   256
#define SUMMARY_SUBJECTS_MAX (OUTBOX_SUMMARY_SUBJECTS * (NOTIFY_SUBJECT_MAX + 1))

bool outbox_init(struct outbox *ob, const char *name, int rate_limit)
{
	memset(ob, 0, sizeof(*ob));
	ob->name = name;
	ob->rate_limit = rate_limit > 0 ? rate_limit : 0;
	ob->q = calloc(OUTBOX_CAPACITY, sizeof(*ob->q));
	if (ob->rate_limit > 0)
		ob->admitted = calloc((size_t)ob->rate_limit, sizeof(*ob->admitted));
	if (ob->q == NULL || (ob->rate_limit > 0 && ob->admitted == NULL)) {
		outbox_free(ob);
		return false;
	}
	return true;
}

/* msg_clear frees one slot's strings. */
static void msg_clear(struct outbox_msg *m)
{
	free(m->subject);
	free(m->body);
	memset(m, 0, sizeof(*m));
}

void outbox_free(struct outbox *ob)
{
	if (ob->q != NULL)
		for (size_t i = 0; i < ob->count; i++)
			msg_clear(&ob->q[(ob->head + i) % OUTBOX_CAPACITY]);
	free(ob->q);
	free(ob->admitted);
	free(ob->suppressed_subjects);
	memset(ob, 0, sizeof(*ob));
}

/* window_room: fewer than rate_limit admissions in the last minute (forgets older ones). */
static bool window_room(struct outbox *ob, uint64_t now)
{
	if (ob->rate_limit <= 0)
		return true;
	size_t cap = (size_t)ob->rate_limit;
	while (ob->adm_count > 0 && ob->admitted[ob->adm_head] + OUTBOX_RATE_WINDOW_MS <= now) {
		ob->adm_head = (ob->adm_head + 1) % cap;
		ob->adm_count--;
	}
	return ob->adm_count < cap;
}

/* window_wait: ms until the oldest admission leaves the window. */
static uint64_t window_wait(const struct outbox *ob, uint64_t now)
{
	if (ob->rate_limit <= 0 || ob->adm_count == 0)
		return 0;
	uint64_t free_at = ob->admitted[ob->adm_head] + OUTBOX_RATE_WINDOW_MS;
	return free_at > now ? free_at - now : 0;
}

/* window_admit records one admission (caller checked window_room). */
static void window_admit(struct outbox *ob, uint64_t now)
{
	if (ob->rate_limit <= 0)
		return;
	size_t cap = (size_t)ob->rate_limit;
	ob->admitted[(ob->adm_head + ob->adm_count) % cap] = now;
	ob->adm_count++;
}

/* pop_head removes the first message. */
static void pop_head(struct outbox *ob)
{
	msg_clear(&ob->q[ob->head]);
	ob->head = (ob->head + 1) % OUTBOX_CAPACITY;
	ob->count--;
}

/* drop_oldest makes room by discarding the oldest message not being sent. */
static void drop_oldest(struct outbox *ob)
{
	size_t victim = ob->in_flight ? (ob->head + 1) % OUTBOX_CAPACITY : ob->head;
	log_warning("notification %s: queue full (%d messages); dropped the oldest: \"%s\"",
	            ob->name, OUTBOX_CAPACITY, ob->q[victim].subject);
	ob->dropped++;
	if (!ob->in_flight) {
		pop_head(ob);
		return;
	}
	/* Keep the in-flight head by moving it into the victim's slot. */
	msg_clear(&ob->q[victim]);
	ob->q[victim] = ob->q[ob->head];
	memset(&ob->q[ob->head], 0, sizeof(ob->q[0]));
	ob->head = victim;
	ob->count--;
}

/* enqueue appends a copy of the message, dropping the oldest when full. */
static void enqueue(struct outbox *ob, enum notify_event ev, enum efm_severity sev,
                    const char *subject, const char *body, int64_t wall_time)
{
	if (ob->count == OUTBOX_CAPACITY)
		drop_oldest(ob);
	struct outbox_msg *m = &ob->q[(ob->head + ob->count) % OUTBOX_CAPACITY];
	memset(m, 0, sizeof(*m));
	m->subject = strdup(subject);
	m->body = strdup(body);
	if (m->subject == NULL || m->body == NULL) {
		log_warning("notification %s: out of memory; not sending \"%s\"", ob->name,
		            subject);
		msg_clear(m);
		return;
	}
	m->ev = ev;
	m->sev = sev;
	m->wall_time = wall_time;
	ob->count++;
}

/* fold_into_summary remembers a rate-limited message for the next summary. */
static void fold_into_summary(struct outbox *ob, enum efm_severity sev, const char *subject)
{
	if (ob->suppressed == 0 || sev > ob->suppressed_sev)
		ob->suppressed_sev = sev;
	ob->suppressed++;
	log_info("notification %s: rate limit of %d per minute reached; \"%s\" will be summarised",
	         ob->name, ob->rate_limit, subject);
	if (ob->suppressed > OUTBOX_SUMMARY_SUBJECTS)
		return;
	if (ob->suppressed_subjects == NULL &&
	    (ob->suppressed_subjects = calloc(1, SUMMARY_SUBJECTS_MAX)) == NULL)
		return;
	size_t used = strlen(ob->suppressed_subjects);
	snprintf(ob->suppressed_subjects + used, SUMMARY_SUBJECTS_MAX - used, "  %s %.*s\n",
	         notify_severity_name(sev), NOTIFY_SUBJECT_MAX - 16, subject);
}

/* flush_summary queues one summary of the suppressed messages once the window allows. */
static void flush_summary(struct outbox *ob, uint64_t now)
{
	if (ob->suppressed == 0 || !window_room(ob, now))
		return;
	char subject[NOTIFY_SUBJECT_MAX];
	char body[SUMMARY_SUBJECTS_MAX + 512];
	snprintf(subject, sizeof(subject), "%zu notifications held back by the rate limit",
	         ob->suppressed);
	int n = snprintf(body, sizeof(body),
	                 "More than %d notifications per minute were raised, so %zu were not "
	                 "sent one by one. All of them are in the agent log.\n\n%s",
	                 ob->rate_limit, ob->suppressed,
	                 ob->suppressed_subjects ? ob->suppressed_subjects : "");
	if (n > 0 && (size_t)n < sizeof(body) && ob->suppressed > OUTBOX_SUMMARY_SUBJECTS)
		snprintf(body + n, sizeof(body) - (size_t)n, "  ... and %zu more\n",
		         ob->suppressed - OUTBOX_SUMMARY_SUBJECTS);
	log_warning("notification %s: %zu notifications were suppressed by the rate limit; "
	            "sending one summary",
	            ob->name, ob->suppressed);
	window_admit(ob, now);
	enqueue(ob, NOTIFY_EVENT_COUNT, ob->suppressed_sev, subject, body, (int64_t)time(NULL));
	ob->suppressed = 0;
	free(ob->suppressed_subjects);
	ob->suppressed_subjects = NULL;
}

bool outbox_push(struct outbox *ob, enum notify_event ev, enum efm_severity sev,
                 const char *subject, const char *body, int64_t wall_time, uint64_t now_ms)
{
	flush_summary(ob, now_ms); /* an older summary goes before this message */
	if (!window_room(ob, now_ms)) {
		fold_into_summary(ob, sev, subject);
		return false;
	}
	window_admit(ob, now_ms);
	enqueue(ob, ev, sev, subject, body, wall_time);
	return true;
}

struct outbox_msg *outbox_next(struct outbox *ob, uint64_t now_ms, uint64_t *wait_ms)
{
	flush_summary(ob, now_ms);
	*wait_ms = UINT64_MAX;
	if (ob->suppressed > 0)
		*wait_ms = window_wait(ob, now_ms);
	if (ob->in_flight || ob->count == 0)
		return NULL;
	struct outbox_msg *m = &ob->q[ob->head];
	if (m->next_try_ms > now_ms) {
		uint64_t w = m->next_try_ms - now_ms;
		if (w < *wait_ms)
			*wait_ms = w;
		return NULL;
	}
	if (m->attempts == 0)
		m->first_try_ms = now_ms;
	m->attempts++;
	ob->in_flight = true;
	return m;
}

uint64_t outbox_backoff_ms(unsigned failures)
{
	if (failures == 0)
		return 0;
	uint64_t ms = OUTBOX_RETRY_FIRST_MS;
	for (unsigned i = 1; i < failures && ms < OUTBOX_RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < OUTBOX_RETRY_MAX_MS ? ms : OUTBOX_RETRY_MAX_MS;
}

void outbox_done(struct outbox *ob, bool ok, const char *error, uint64_t now_ms)
{
	if (!ob->in_flight)
		return;
	ob->in_flight = false;
	struct outbox_msg *m = &ob->q[ob->head];
	if (ok) {
		log_fine("notification %s: sent \"%s\"", ob->name, m->subject);
		pop_head(ob);
		return;
	}
	uint64_t spent = now_ms - m->first_try_ms;
	if (spent >= OUTBOX_GIVE_UP_MS) {
		log_severe("notification %s: giving up on \"%s\" after %u attempts over %llu s: %s",
		           ob->name, m->subject, m->attempts, (unsigned long long)(spent / 1000),
		           error ? error : "unknown error");
		ob->given_up++;
		pop_head(ob);
		return;
	}
	uint64_t wait = outbox_backoff_ms(m->attempts);
	m->next_try_ms = now_ms + wait;
	log_warning("notification %s: sending \"%s\" failed (attempt %u): %s; retrying in %llu s",
	            ob->name, m->subject, m->attempts, error ? error : "unknown error",
	            (unsigned long long)(wait / 1000));
}
