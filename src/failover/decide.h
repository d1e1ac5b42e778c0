/*
 * decide.h - the failover coordinator's decisions as one transition table
 * {state, event, guard, action, next}.
 *
 * Pure: no I/O, no clock.  The coordinator (coord.c) gathers the facts of
 * one moment (struct fo_facts: what the replicated state, the heartbeats
 * and its own probes say), fo_event_of names the event those facts make in
 * the current state, and fo_decide picks the first rule of the table whose
 * state, event and guard match.  The coordinator then carries out the
 * action, logging the rule's reason with the facts.  `efmd --dump-decisions`
 * prints the table.
 */
#ifndef EFM_DECIDE_H
#define EFM_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum fo_state {
	FO_WATCHING,   /* the master is fine, or there is none to watch */
	FO_CONFIRMING, /* every agent is asked to reach the master database */
	FO_SELECTING,  /* the standbys' databases are probed for the best candidate */
	FO_PROMOTING,  /* a promotion holds the replicated lock: drive its phases */
	FO_HOLDING,    /* no failover now (master reachable, manual mode, no candidate) */
	FO_STATE_COUNT
};

enum fo_event {
	FO_EV_NONE,             /* nothing new */
	FO_EV_MASTER_OK,        /* the master agent is alive and reports a running master */
	FO_EV_MASTER_UNKNOWN,   /* no master record while a member reports a running master */
	FO_EV_MASTER_DB_DOWN,   /* the master agent is alive but reports its database down */
	FO_EV_MASTER_LOST,      /* the master agent has been silent for the node timeout */
	FO_EV_REACHED,          /* a confirmation probe reached the master database */
	FO_EV_UNVERIFIED,       /* no probe reached it, but some could not tell */
	FO_EV_UNREACHED,        /* every confirmation probe says the database is down */
	FO_EV_CANDIDATE,        /* a standby database qualifies for promotion */
	FO_EV_NO_CANDIDATE,     /* none does */
	FO_EV_LOCK_ACTIVE,      /* the replicated state holds an active promotion */
	FO_EV_LOCK_ENDED,       /* the promotion ended (DONE or ABORTED) */
	FO_EV_RECHECK,          /* holding long enough: look at the master again */
	FO_EV_PROMOTE_ASKED,    /* an operator asked for a promotion (efm promote) */
	FO_EV_SWITCHOVER_ASKED, /* an operator asked for a switchover (efm promote -switchover) */
	FO_EVENT_COUNT
};

enum fo_guard {
	FO_G_ALWAYS,
	FO_G_AUTO,           /* auto.failover=true */
	FO_G_MANUAL,         /* auto.failover=false */
	FO_G_ABORTED,        /* the promotion that just ended was aborted */
	FO_G_ASKED,          /* an operator's promotion request is pending */
	FO_G_NO_MASTER,      /* no master is recorded */
	FO_G_MASTER_RUNNING, /* the master agent is alive and reports its database running */
	FO_G_BEHIND,         /* manual mode, the operator's request did not say --yes, and the
	                        candidate is behind the master's last known WAL position */
	FO_GUARD_COUNT
};

enum fo_rule_action {
	FO_A_NONE,
	FO_A_RECORD_MASTER,     /* commit SET_MASTER for the member that runs the master */
	FO_A_CONFIRM,           /* ask every live agent to reach the master database */
	FO_A_HOLD_REACHABLE,    /* tell the operator: master database reachable, no failover */
	FO_A_HOLD_UNVERIFIED,   /* tell the operator: could not verify, no failover yet */
	FO_A_HOLD_MANUAL,       /* tell the operator: manual failover required */
	FO_A_SELECT,            /* probe the standby databases and pick the candidate */
	FO_A_HOLD_NO_CANDIDATE, /* tell the operator: no standby can be promoted */
	FO_A_LOCK,              /* commit the promotion lock for the candidate */
	FO_A_DRIVE,             /* carry the committed promotion one phase further */
	FO_A_HOLD_ABORTED,      /* wait before trying again after an aborted promotion */
	FO_A_REFUSE,            /* refuse the operator's promotion request, saying why */
	FO_ACTION_COUNT
};

/* What the coordinator knows at one moment. */
struct fo_facts {
	bool master_recorded; /* the replicated state names a master */
	bool master_alive;    /* its agent was heard within the node timeout */
	bool master_running;  /* ... and reports a running master database */
	bool master_claimed;  /* no record, but a live member reports a running master */
	bool lock_active;     /* a promotion holds the replicated lock */
	bool lock_aborted;    /* the last promotion ended ABORTED */
	bool auto_failover;
	bool confirm_done; /* the confirmation round has all its answers */
	int reached;       /* probes that reached the master database */
	int unverified;    /* probes that could not tell */
	bool select_done;  /* the candidate probes have all answered */
	bool have_candidate;
	bool recheck_due;      /* holding on a reachable/unverified master long enough */
	bool asked;            /* an operator's promotion request is pending (efm promote) */
	bool asked_yes;        /* ... and it accepts a candidate behind the master */
	bool asked_switchover; /* ... and it is a planned switchover */
	bool candidate_behind; /* the candidate received less WAL than the master last reported */
};

struct fo_rule {
	enum fo_state state;
	enum fo_event event;
	enum fo_guard guard;
	enum fo_rule_action action;
	enum fo_state next;
	const char *why; /* for the log and the status */
};

/* fo_event_of names the event the facts make in state s. */
enum fo_event fo_event_of(enum fo_state s, const struct fo_facts *f);

/* fo_decide: the first rule for (s, ev) whose guard holds, or NULL (nothing to do). */
const struct fo_rule *fo_decide(enum fo_state s, enum fo_event ev, const struct fo_facts *f);

const char *fo_state_name(enum fo_state s);
const char *fo_event_name(enum fo_event e);
const char *fo_guard_name(enum fo_guard g);
const char *fo_rule_action_name(enum fo_rule_action a);

/* fo_rules: the table itself, for printing and tests. */
const struct fo_rule *fo_rules(size_t *n);

/* fo_dump_decisions prints the table, one rule a line (efmd --dump-decisions). */
void fo_dump_decisions(FILE *out);

#endif
