/*
 * admission.c - the admission rules for inbound handshakes (admission.h).
 */
#include "admission.h"

#include <stdio.h>
#include <string.h>

/* find returns ip's entry, or NULL. */
static struct admission_known *find(const struct admission *a, const char *ip)
{
	for (size_t i = 0; i < a->n_known; i++)
		if (strcmp(a->known[i].ip, ip) == 0)
			return (struct admission_known *)&a->known[i];
	return NULL;
}

void admission_learn(struct admission *a, const char *ip, uint64_t now_ms)
{
	if (ip[0] == '\0' || strlen(ip) >= ADMISSION_IP_MAX)
		return;
	struct admission_known *k = find(a, ip);
	if (k == NULL && a->n_known < ADMISSION_KNOWN_MAX) {
		k = &a->known[a->n_known++];
	} else if (k == NULL) {
		k = &a->known[0];
		for (size_t i = 1; i < a->n_known; i++)
			if (a->known[i].seen_ms < k->seen_ms)
				k = &a->known[i];
	}
	snprintf(k->ip, sizeof(k->ip), "%s", ip);
	k->seen_ms = now_ms;
}

bool admission_is_known(const struct admission *a, const char *ip)
{
	return ip[0] != '\0' && find(a, ip) != NULL;
}

enum admission_verdict admission_decide(bool known, const struct admission_load *load,
                                        unsigned max_total, unsigned max_per_source)
{
	if (!known && load->from_source >= max_per_source)
		return ADMISSION_REFUSE_SOURCE;
	if (load->in_flight < max_total)
		return ADMISSION_ACCEPT;
	if (known && load->stranger_waiting)
		return ADMISSION_EVICT_STRANGER;
	return ADMISSION_REFUSE_FULL;
}

const char *admission_refusal(enum admission_verdict v)
{
	switch (v) {
	case ADMISSION_REFUSE_FULL:
		return "too many handshakes in progress";
	case ADMISSION_REFUSE_SOURCE:
		return "too many handshakes in progress from this address";
	case ADMISSION_ACCEPT:
	case ADMISSION_EVICT_STRANGER:
		break;
	}
	return "";
}
