/*
 * members.c - liveness bookkeeping of the peer agents (see members.h).
 */
#include "members.h"

#include <stdio.h>
#include <string.h>

void members_init(struct members *m, uint64_t timeout_ms)
{
	memset(m, 0, sizeof(*m));
	m->timeout_ms = timeout_ms;
}

static struct members_entry *find(struct members *m, uint64_t id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].id == id)
			return &m->e[i];
	return NULL;
}

const struct members_entry *members_get(const struct members *m, uint64_t id)
{
	return find((struct members *)m, id);
}

bool members_track(struct members *m, uint64_t id, const char *address, uint64_t now_ms)
{
	struct members_entry *e = find(m, id);
	if (e != NULL) {
		if (address != NULL && address[0] != '\0')
			snprintf(e->address, sizeof(e->address), "%s", address);
		return true;
	}
	if (id == 0 || m->n >= CLUSTERFSM_MAX_NODES)
		return false;
	e = &m->e[m->n++];
	memset(e, 0, sizeof(*e));
	e->id = id;
	e->tracked_ms = now_ms;
	snprintf(e->address, sizeof(e->address), "%s", address != NULL ? address : "");
	return true;
}

void members_heard(struct members *m, uint64_t id, const char *address, uint64_t now_ms,
                   const struct members_report *report)
{
	if (!members_track(m, id, address, now_ms))
		return;
	struct members_entry *e = find(m, id);
	e->heard_ms = now_ms;
	if (report != NULL) {
		e->report = *report;
		e->reported = true;
	}
}

void members_forget(struct members *m, uint64_t id)
{
	struct members_entry *e = find(m, id);
	if (e == NULL)
		return;
	size_t i = (size_t)(e - m->e);
	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(m->e[0]));
	m->n--;
}

void members_sync(struct members *m, uint64_t self, const struct members_peer *peers, size_t n,
                  uint64_t now_ms, void (*forget)(void *arg, const struct members_entry *e),
                  void *arg)
{
	for (size_t i = 0; i < n; i++)
		if (peers[i].id != self)
			(void)members_track(m, peers[i].id, peers[i].address, now_ms);
	for (size_t i = 0; i < m->n;) {
		bool keep = false;
		for (size_t j = 0; j < n && !keep; j++)
			keep = peers[j].id == m->e[i].id && peers[j].id != self;
		if (keep) {
			i++;
			continue;
		}
		if (forget != NULL)
			forget(arg, &m->e[i]);
		members_forget(m, m->e[i].id);
	}
}

uint64_t members_silent_ms(const struct members *m, uint64_t id, uint64_t now_ms)
{
	const struct members_entry *e = members_get(m, id);
	if (e == NULL)
		return 0;
	uint64_t since = e->heard_ms > e->tracked_ms ? e->heard_ms : e->tracked_ms;
	return now_ms > since ? now_ms - since : 0;
}

bool members_alive(const struct members *m, uint64_t id, uint64_t now_ms)
{
	const struct members_entry *e = members_get(m, id);
	if (e == NULL || e->heard_ms == 0)
		return false;
	return now_ms - e->heard_ms <= m->timeout_ms;
}

uint64_t members_removal_candidate(const struct members *m, const uint64_t *voters, size_t n,
                                   uint64_t self, uint64_t now_ms, uint64_t after_ms)
{
	uint64_t best = 0, best_silent = 0;
	for (size_t i = 0; i < n; i++) {
		if (voters[i] == self || members_get(m, voters[i]) == NULL)
			continue;
		uint64_t s = members_silent_ms(m, voters[i], now_ms);
		if (s >= after_ms && s > best_silent) {
			best = voters[i];
			best_silent = s;
		}
	}
	return best;
}
