/*
 * decide.c - the failover transition table and the naming of events
 * (decide.h).  Read the table top to bottom: it is the whole policy.
 */
#include "decide.h"

static const struct fo_rule rules[] = {
    /* A promotion in the replicated state is resumed whatever we were doing. */
    {FO_WATCHING, FO_EV_LOCK_ACTIVE, FO_G_ALWAYS, FO_A_DRIVE, FO_PROMOTING,
     "a promotion is in progress: resume it from its committed phase"},
    {FO_CONFIRMING, FO_EV_LOCK_ACTIVE, FO_G_ALWAYS, FO_A_DRIVE, FO_PROMOTING,
     "a promotion is in progress: resume it from its committed phase"},
    {FO_SELECTING, FO_EV_LOCK_ACTIVE, FO_G_ALWAYS, FO_A_DRIVE, FO_PROMOTING,
     "a promotion is in progress: resume it from its committed phase"},
    {FO_HOLDING, FO_EV_LOCK_ACTIVE, FO_G_ALWAYS, FO_A_DRIVE, FO_PROMOTING,
     "a promotion is in progress: resume it from its committed phase"},

    /* efm promote: a manual failover, only from a master that is down. */
    {FO_WATCHING, FO_EV_PROMOTE_ASKED, FO_G_NO_MASTER, FO_A_REFUSE, FO_WATCHING,
     "efm promote: no master is recorded, so there is no failed master to replace"},
    {FO_WATCHING, FO_EV_PROMOTE_ASKED, FO_G_MASTER_RUNNING, FO_A_REFUSE, FO_WATCHING,
     "efm promote: the master agent reports its database running; promoting now would make "
     "two masters (a planned change is efm promote -switchover)"},
    {FO_WATCHING, FO_EV_PROMOTE_ASKED, FO_G_ALWAYS, FO_A_CONFIRM, FO_CONFIRMING,
     "efm promote: check from every agent that the master database is down"},
    {FO_HOLDING, FO_EV_PROMOTE_ASKED, FO_G_ALWAYS, FO_A_CONFIRM, FO_CONFIRMING,
     "efm promote: check from every agent that the master database is down"},
    /* efm promote -switchover: a planned change, only from a running master. */
    {FO_WATCHING, FO_EV_SWITCHOVER_ASKED, FO_G_MASTER_RUNNING, FO_A_SELECT, FO_SELECTING,
     "efm promote -switchover: choose the standby to take over from the running master"},
    {FO_WATCHING, FO_EV_SWITCHOVER_ASKED, FO_G_ALWAYS, FO_A_REFUSE, FO_WATCHING,
     "efm promote -switchover: the master is not running; a failed master is replaced with "
     "efm promote"},
    {FO_HOLDING, FO_EV_SWITCHOVER_ASKED, FO_G_ALWAYS, FO_A_REFUSE, FO_HOLDING,
     "efm promote -switchover: the master is not running; a failed master is replaced with "
     "efm promote"},

    {FO_WATCHING, FO_EV_MASTER_UNKNOWN, FO_G_ALWAYS, FO_A_RECORD_MASTER, FO_WATCHING,
     "no master recorded and one member runs a master database: record it"},
    {FO_WATCHING, FO_EV_MASTER_DB_DOWN, FO_G_ALWAYS, FO_A_CONFIRM, FO_CONFIRMING,
     "the master agent reports its database down: confirm from every agent"},
    {FO_WATCHING, FO_EV_MASTER_LOST, FO_G_ALWAYS, FO_A_CONFIRM, FO_CONFIRMING,
     "the master agent is silent beyond the node timeout: check its database from every "
     "agent"},

    {FO_CONFIRMING, FO_EV_MASTER_OK, FO_G_ALWAYS, FO_A_NONE, FO_WATCHING,
     "the master reports a running database again: no failover"},
    {FO_CONFIRMING, FO_EV_REACHED, FO_G_ALWAYS, FO_A_HOLD_REACHABLE, FO_HOLDING,
     "an agent reached the master database: no failover"},
    {FO_CONFIRMING, FO_EV_UNVERIFIED, FO_G_ALWAYS, FO_A_HOLD_UNVERIFIED, FO_HOLDING,
     "some agent could not tell whether the master database runs: no failover yet"},
    {FO_CONFIRMING, FO_EV_UNREACHED, FO_G_ASKED, FO_A_SELECT, FO_SELECTING,
     "no agent reaches the master database and an operator asked for a promotion: choose the "
     "standby to promote"},
    {FO_CONFIRMING, FO_EV_UNREACHED, FO_G_MANUAL, FO_A_HOLD_MANUAL, FO_HOLDING,
     "no agent reaches the master database and auto.failover=false: manual failover "
     "required"},
    {FO_CONFIRMING, FO_EV_UNREACHED, FO_G_AUTO, FO_A_SELECT, FO_SELECTING,
     "no agent reaches the master database: choose the standby to promote"},

    {FO_SELECTING, FO_EV_MASTER_OK, FO_G_ALWAYS, FO_A_NONE, FO_WATCHING,
     "the master reports a running database again: no failover"},
    {FO_SELECTING, FO_EV_CANDIDATE, FO_G_BEHIND, FO_A_REFUSE, FO_HOLDING,
     "the best candidate received less WAL than the master last reported: the operator must "
     "accept the loss (efm promote --yes)"},
    {FO_SELECTING, FO_EV_CANDIDATE, FO_G_ALWAYS, FO_A_LOCK, FO_PROMOTING,
     "promote the most up-to-date standby"},
    {FO_SELECTING, FO_EV_NO_CANDIDATE, FO_G_ALWAYS, FO_A_HOLD_NO_CANDIDATE, FO_HOLDING,
     "no standby agent and database are up to take over: no failover"},

    {FO_PROMOTING, FO_EV_LOCK_ACTIVE, FO_G_ALWAYS, FO_A_DRIVE, FO_PROMOTING,
     "carry the promotion to its next phase"},
    {FO_PROMOTING, FO_EV_LOCK_ENDED, FO_G_ABORTED, FO_A_HOLD_ABORTED, FO_HOLDING,
     "the promotion was aborted: look at the master again only after a while"},
    {FO_PROMOTING, FO_EV_LOCK_ENDED, FO_G_ALWAYS, FO_A_NONE, FO_WATCHING,
     "the promotion ended: watch the master again"},

    {FO_HOLDING, FO_EV_MASTER_OK, FO_G_ALWAYS, FO_A_NONE, FO_WATCHING,
     "the master reports a running database again"},
    {FO_HOLDING, FO_EV_RECHECK, FO_G_ALWAYS, FO_A_CONFIRM, FO_CONFIRMING,
     "the master is still not reporting: check its database again"},
};

#define N_RULES (sizeof(rules) / sizeof(rules[0]))

/* master_event: what the master's reports say, in the states that watch it. */
static enum fo_event master_event(const struct fo_facts *f)
{
	if (!f->master_recorded)
		return f->master_claimed ? FO_EV_MASTER_UNKNOWN : FO_EV_NONE;
	if (f->master_alive)
		return f->master_running ? FO_EV_MASTER_OK : FO_EV_MASTER_DB_DOWN;
	return FO_EV_MASTER_LOST;
}

enum fo_event fo_event_of(enum fo_state s, const struct fo_facts *f)
{
	if (s == FO_PROMOTING)
		return f->lock_active ? FO_EV_LOCK_ACTIVE : FO_EV_LOCK_ENDED;
	if (f->lock_active)
		return FO_EV_LOCK_ACTIVE;
	switch (s) {
	case FO_WATCHING:
		if (f->asked)
			return f->asked_switchover ? FO_EV_SWITCHOVER_ASKED : FO_EV_PROMOTE_ASKED;
		return master_event(f);
	case FO_CONFIRMING:
		if (f->master_recorded && f->master_alive && f->master_running)
			return FO_EV_MASTER_OK;
		if (!f->confirm_done)
			return FO_EV_NONE;
		return f->reached > 0      ? FO_EV_REACHED
		       : f->unverified > 0 ? FO_EV_UNVERIFIED
		                           : FO_EV_UNREACHED;
	case FO_SELECTING:
		/* a switchover selects beside the running master it replaces */
		if (f->master_recorded && f->master_alive && f->master_running &&
		    !f->asked_switchover)
			return FO_EV_MASTER_OK;
		if (!f->select_done)
			return FO_EV_NONE;
		return f->have_candidate ? FO_EV_CANDIDATE : FO_EV_NO_CANDIDATE;
	case FO_HOLDING:
		if (master_event(f) == FO_EV_MASTER_OK || !f->master_recorded)
			return FO_EV_MASTER_OK;
		if (f->asked)
			return f->asked_switchover ? FO_EV_SWITCHOVER_ASKED : FO_EV_PROMOTE_ASKED;
		return f->recheck_due ? FO_EV_RECHECK : FO_EV_NONE;
	default:
		return FO_EV_NONE;
	}
}

static bool guard_holds(enum fo_guard g, const struct fo_facts *f)
{
	switch (g) {
	case FO_G_AUTO:
		return f->auto_failover;
	case FO_G_MANUAL:
		return !f->auto_failover;
	case FO_G_ABORTED:
		return f->lock_aborted;
	case FO_G_ASKED:
		return f->asked;
	case FO_G_NO_MASTER:
		return !f->master_recorded;
	case FO_G_MASTER_RUNNING:
		return f->master_recorded && f->master_alive && f->master_running;
	case FO_G_BEHIND:
		/* a switchover's candidate catches up once the master stopped cleanly */
		return f->asked && !f->asked_yes && !f->asked_switchover && !f->auto_failover &&
		       f->candidate_behind;
	default:
		return true;
	}
}

const struct fo_rule *fo_decide(enum fo_state s, enum fo_event ev, const struct fo_facts *f)
{
	if (ev == FO_EV_NONE)
		return NULL;
	for (size_t i = 0; i < N_RULES; i++)
		if (rules[i].state == s && rules[i].event == ev && guard_holds(rules[i].guard, f))
			return &rules[i];
	return NULL;
}

const struct fo_rule *fo_rules(size_t *n)
{
	*n = N_RULES;
	return rules;
}

static const char *const state_names[] = {
    [FO_WATCHING] = "WATCHING",   [FO_CONFIRMING] = "CONFIRMING", [FO_SELECTING] = "SELECTING",
    [FO_PROMOTING] = "PROMOTING", [FO_HOLDING] = "HOLDING",
};

static const char *const event_names[] = {
    [FO_EV_NONE] = "none",
    [FO_EV_MASTER_OK] = "master-ok",
    [FO_EV_MASTER_UNKNOWN] = "master-unrecorded",
    [FO_EV_MASTER_DB_DOWN] = "master-db-down",
    [FO_EV_MASTER_LOST] = "master-agent-lost",
    [FO_EV_REACHED] = "master-db-reached",
    [FO_EV_UNVERIFIED] = "master-db-unverified",
    [FO_EV_UNREACHED] = "master-db-unreached",
    [FO_EV_CANDIDATE] = "candidate-found",
    [FO_EV_NO_CANDIDATE] = "no-candidate",
    [FO_EV_LOCK_ACTIVE] = "promotion-active",
    [FO_EV_LOCK_ENDED] = "promotion-ended",
    [FO_EV_RECHECK] = "recheck-due",
    [FO_EV_PROMOTE_ASKED] = "promote-asked",
    [FO_EV_SWITCHOVER_ASKED] = "switchover-asked",
};

static const char *const guard_names[] = {
    [FO_G_ALWAYS] = "-",
    [FO_G_AUTO] = "auto.failover",
    [FO_G_MANUAL] = "!auto.failover",
    [FO_G_ABORTED] = "aborted",
    [FO_G_ASKED] = "promote-asked",
    [FO_G_NO_MASTER] = "no-master",
    [FO_G_MASTER_RUNNING] = "master-running",
    [FO_G_BEHIND] = "behind-unaccepted",
};

static const char *const action_names[] = {
    [FO_A_NONE] = "none",
    [FO_A_RECORD_MASTER] = "record-master",
    [FO_A_CONFIRM] = "confirm",
    [FO_A_HOLD_REACHABLE] = "hold-master-reachable",
    [FO_A_HOLD_UNVERIFIED] = "hold-unverified",
    [FO_A_HOLD_MANUAL] = "hold-manual-failover",
    [FO_A_SELECT] = "select-candidate",
    [FO_A_HOLD_NO_CANDIDATE] = "hold-no-candidate",
    [FO_A_LOCK] = "take-promotion-lock",
    [FO_A_DRIVE] = "drive-promotion",
    [FO_A_HOLD_ABORTED] = "hold-after-abort",
    [FO_A_REFUSE] = "refuse-request",
};

_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == FO_STATE_COUNT, "state names");
_Static_assert(sizeof(event_names) / sizeof(event_names[0]) == FO_EVENT_COUNT, "event names");
_Static_assert(sizeof(guard_names) / sizeof(guard_names[0]) == FO_GUARD_COUNT, "guard names");
_Static_assert(sizeof(action_names) / sizeof(action_names[0]) == FO_ACTION_COUNT, "action names");

const char *fo_state_name(enum fo_state s)
{
	return (unsigned)s < FO_STATE_COUNT ? state_names[s] : "?";
}

const char *fo_event_name(enum fo_event e)
{
	return (unsigned)e < FO_EVENT_COUNT ? event_names[e] : "?";
}

const char *fo_guard_name(enum fo_guard g)
{
	return (unsigned)g < FO_GUARD_COUNT ? guard_names[g] : "?";
}

const char *fo_rule_action_name(enum fo_rule_action a)
{
	return (unsigned)a < FO_ACTION_COUNT ? action_names[a] : "?";
}

void fo_dump_decisions(FILE *out)
{
	fprintf(out, "%-11s %-21s %-15s %-22s %-11s %s\n", "STATE", "EVENT", "GUARD", "ACTION",
	        "NEXT", "WHY");
	for (size_t i = 0; i < N_RULES; i++)
		fprintf(out, "%-11s %-21s %-15s %-22s %-11s %s\n", fo_state_name(rules[i].state),
		        fo_event_name(rules[i].event), fo_guard_name(rules[i].guard),
		        fo_rule_action_name(rules[i].action), fo_state_name(rules[i].next),
		        rules[i].why);
}
