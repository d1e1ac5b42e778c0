/*
 * clusterfsm_promotion.c - apply for the promotion lock: take it, advance
 * its phase, release it.  The lock's serial is the compare-and-set that
 * lets at most one promotion win, whatever the submitters race.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clusterfsm_int.h"

/*
 * clusterfsm_do_promotion_lock takes the promotion lock for a standby.  The
 * compare-and-set on the serial is what lets at most one of several
 * competing requests (same expected serial) win; the term check refuses a
 * request from a leader older than the one that took the last lock.
 */
enum clusterfsm_code clusterfsm_do_promotion_lock(struct cluster_state *s,
                                                  const struct clusterfsm_cmd *c,
                                                  struct clusterfsm_result *r)
{
	struct clusterfsm_lock *l = &s->lock;
	const struct clusterfsm_member *m = clusterfsm_member_by_host(s, c->address);

	/* The same request applied twice (a retried submission) is no contest. */
	if (m != NULL && c->serial != UINT64_MAX && l->serial == c->serial + 1 &&
	    l->term == c->term && strcmp(l->candidate, m->address) == 0)
		return clusterfsm_verdict(r, CLUSTERFSM_ALREADY,
		                          "promotion lock %" PRIu64 " is held by %s", l->serial,
		                          l->candidate);
	if (clusterfsm_phase_active(l->phase))
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "promotion %" PRIu64 " of %s is in progress (phase %s)",
		                          l->serial, l->candidate, clusterfsm_phase_name(l->phase));
	if (c->serial != l->serial)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "stale request: expected serial %" PRIu64
		                          ", lock is at %" PRIu64,
		                          c->serial, l->serial);
	if (c->term < l->term)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "stale request: term %" PRIu64
		                          " is older than term %" PRIu64,
		                          c->term, l->term);
	if (m == NULL)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "\"%s\" is not a member",
		                          c->address);
	if (m->role != CLUSTERFSM_STANDBY)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "%s is a %s, not a standby",
		                          m->address, clusterfsm_role_name(m->role));
	if (l->serial == UINT64_MAX)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "promotion serial exhausted");
	snprintf(l->candidate, sizeof(l->candidate), "%s", m->address);
	l->term = c->term;
	l->phase = CLUSTERFSM_PHASE_FENCING;
	l->switchover = c->switchover;
	snprintf(l->from, sizeof(l->from), "%s", s->master);
	l->serial++;
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/*
 * names_last_lock: c names the last lock taken; false, with r filled, for a
 * stale or made-up serial.
 */
static bool names_last_lock(const struct clusterfsm_lock *l, const struct clusterfsm_cmd *c,
                            struct clusterfsm_result *r)
{
	if (c->serial == l->serial && l->serial != 0)
		return true;
	clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
	                   "stale request: promotion serial %" PRIu64 ", lock is at %" PRIu64,
	                   c->serial, l->serial);
	return false;
}

/*
 * clusterfsm_do_promotion_phase advances the lock one or more steps forward.  A step
 * that is already behind the committed phase answers ALREADY, so a new
 * leader replaying a half-done promotion does not see errors.
 */
enum clusterfsm_code clusterfsm_do_promotion_phase(struct cluster_state *s,
                                                   const struct clusterfsm_cmd *c,
                                                   struct clusterfsm_result *r)
{
	struct clusterfsm_lock *l = &s->lock;

	if (!clusterfsm_phase_active(c->from) || !clusterfsm_phase_active(c->to) ||
	    c->to <= c->from)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED, "invalid phase step %s -> %s",
		                          clusterfsm_phase_name(c->from),
		                          clusterfsm_phase_name(c->to));
	if (!names_last_lock(l, c, r))
		return r->code;
	if (!clusterfsm_phase_active(l->phase))
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "promotion %" PRIu64 " is over (%s)", l->serial,
		                          clusterfsm_phase_name(l->phase));
	if (l->phase >= c->to)
		return clusterfsm_verdict(r, CLUSTERFSM_ALREADY,
		                          "promotion %" PRIu64 " is already at %s", l->serial,
		                          clusterfsm_phase_name(l->phase));
	if (l->phase != c->from)
		return clusterfsm_verdict(
		    r, CLUSTERFSM_REJECTED, "promotion %" PRIu64 " is at %s, not %s", l->serial,
		    clusterfsm_phase_name(l->phase), clusterfsm_phase_name(c->from));
	l->phase = c->to;
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}

/* clusterfsm_do_promotion_release ends a promotion as DONE or ABORTED. */
enum clusterfsm_code clusterfsm_do_promotion_release(struct cluster_state *s,
                                                     const struct clusterfsm_cmd *c,
                                                     struct clusterfsm_result *r)
{
	struct clusterfsm_lock *l = &s->lock;

	if (c->to != CLUSTERFSM_PHASE_DONE && c->to != CLUSTERFSM_PHASE_ABORTED)
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "a release ends in DONE or ABORTED, not %s",
		                          clusterfsm_phase_name(c->to));
	if (!names_last_lock(l, c, r))
		return r->code;
	if (l->phase == c->to)
		return clusterfsm_verdict(r, CLUSTERFSM_ALREADY,
		                          "promotion %" PRIu64 " is already %s", l->serial,
		                          clusterfsm_phase_name(l->phase));
	if (!clusterfsm_phase_active(l->phase))
		return clusterfsm_verdict(r, CLUSTERFSM_REJECTED,
		                          "promotion %" PRIu64 " already ended %s", l->serial,
		                          clusterfsm_phase_name(l->phase));
	l->phase = c->to;
	return clusterfsm_verdict(r, CLUSTERFSM_OK, "%s", "");
}
