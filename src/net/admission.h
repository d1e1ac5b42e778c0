/*
 * admission.h - which inbound connections may start a handshake.
 *
 * The transport has max_handshakes slots for connections that have not
 * authenticated yet.  Strangers could take them all and keep a member, a
 * restarted one say, from getting back in.  So the transport remembers the
 * addresses members are known by (sources of links that authenticated and
 * were admitted, and the addresses it connects to itself), and
 * admission_decide lets a newcomer from a known address in ahead of
 * strangers: when every slot is taken, the oldest stranger's handshake is
 * dropped for it.  One stranger address may hold max_per_source slots.
 *
 * Plain data and decisions, no sockets and no clock of its own.
 */
#ifndef EFM_ADMISSION_H
#define EFM_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Addresses remembered; the one seen longest ago makes room for a new one. */
#define ADMISSION_KNOWN_MAX 128
/* An IPv4 or IPv6 address as text, with its NUL. */
#define ADMISSION_IP_MAX 64

struct admission_known {
	char ip[ADMISSION_IP_MAX];
	uint64_t seen_ms; /* loop time (ms) it was last learned */
};

struct admission {
	struct admission_known known[ADMISSION_KNOWN_MAX];
	size_t n_known;
};

/* admission_learn remembers ip (or refreshes it) as a member's address. */
void admission_learn(struct admission *a, const char *ip, uint64_t now_ms);

/* admission_is_known: ip was learned and not forgotten since. */
bool admission_is_known(const struct admission *a, const char *ip);

/* What the transport counts before deciding about a newcomer. */
struct admission_load {
	unsigned in_flight;    /* inbound handshakes in progress */
	unsigned from_source;  /* of those, from the newcomer's address */
	bool stranger_waiting; /* one of those comes from an address not known */
};

enum admission_verdict {
	ADMISSION_ACCEPT,
	ADMISSION_EVICT_STRANGER, /* accept once the oldest stranger's handshake is dropped */
	ADMISSION_REFUSE_FULL,    /* every slot taken, none by a stranger we may drop */
	ADMISSION_REFUSE_SOURCE,  /* this stranger address holds its share already */
};

/* admission_decide rules on a newcomer from a known address or not. */
enum admission_verdict admission_decide(bool known, const struct admission_load *load,
                                        unsigned max_total, unsigned max_per_source);

/* admission_refusal says why a verdict refuses, for the log ("" when it does not). */
const char *admission_refusal(enum admission_verdict v);

#endif
