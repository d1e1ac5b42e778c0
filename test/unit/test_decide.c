/*
 * test_decide.c - the failover transition table: which event the facts make
 * in each state, and which rule answers it.  The table is the whole policy,
 * so every path that could promote is pinned here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "decide.h"

/* A healthy cluster: a recorded master whose agent reports a running database. */
static struct fo_facts healthy(void)
{
	struct fo_facts f = {.master_recorded = true,
	                     .master_alive = true,
	                     .master_running = true,
	                     .auto_failover = true};
	return f;
}

static const struct fo_rule *step(enum fo_state s, const struct fo_facts *f)
{
	return fo_decide(s, fo_event_of(s, f), f);
}

/* Nothing happens while the master runs, or with no master at all. */
static void test_quiet(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	assert_null(step(FO_WATCHING, &f));
	struct fo_facts none = {.auto_failover = true};
	assert_null(step(FO_WATCHING, &none));
}

/* A member running a master with no record gets recorded, and only that. */
static void test_record(void **state)
{
	(void)state;
	struct fo_facts f = {.master_claimed = true, .auto_failover = true};
	const struct fo_rule *r = step(FO_WATCHING, &f);
	assert_non_null(r);
	assert_int_equal(r->action, FO_A_RECORD_MASTER);
	assert_int_equal(r->next, FO_WATCHING);
}

/* Both ways of losing the master lead to confirmation first, never straight to promotion. */
static void test_loss_confirms_first(void **state)
{
	(void)state;
	struct fo_facts down = healthy();
	down.master_running = false;
	const struct fo_rule *r = step(FO_WATCHING, &down);
	assert_int_equal(fo_event_of(FO_WATCHING, &down), FO_EV_MASTER_DB_DOWN);
	assert_int_equal(r->action, FO_A_CONFIRM);
	assert_int_equal(r->next, FO_CONFIRMING);

	struct fo_facts lost = healthy();
	lost.master_alive = false;
	lost.master_running = false;
	assert_int_equal(fo_event_of(FO_WATCHING, &lost), FO_EV_MASTER_LOST);
	assert_int_equal(step(FO_WATCHING, &lost)->action, FO_A_CONFIRM);
}

/* While confirming, nothing is decided before every answer is in. */
static void test_confirm_waits(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.master_running = false;
	f.reached = 0;
	assert_null(step(FO_CONFIRMING, &f));
}

/* Any agent reaching the master database, or unable to tell, stops the failover. */
static void test_reached_or_unverified_holds(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.master_alive = false;
	f.master_running = false;
	f.confirm_done = true;
	f.reached = 1;
	assert_int_equal(step(FO_CONFIRMING, &f)->action, FO_A_HOLD_REACHABLE);
	f.reached = 0;
	f.unverified = 1;
	assert_int_equal(step(FO_CONFIRMING, &f)->action, FO_A_HOLD_UNVERIFIED);
	/* reached wins over unverified */
	f.reached = 1;
	assert_int_equal(step(FO_CONFIRMING, &f)->action, FO_A_HOLD_REACHABLE);
	assert_int_equal(step(FO_CONFIRMING, &f)->next, FO_HOLDING);
}

/* Unreached by all: auto.failover decides between selecting and asking the operator. */
static void test_unreached(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.master_running = false;
	f.confirm_done = true;
	const struct fo_rule *r = step(FO_CONFIRMING, &f);
	assert_int_equal(r->action, FO_A_SELECT);
	assert_int_equal(r->next, FO_SELECTING);
	f.auto_failover = false;
	r = step(FO_CONFIRMING, &f);
	assert_int_equal(r->action, FO_A_HOLD_MANUAL);
	assert_int_equal(r->next, FO_HOLDING);
}

/* A master that recovers while confirming or selecting cancels the failover. */
static void test_recovery_cancels(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.confirm_done = true;
	assert_int_equal(step(FO_CONFIRMING, &f)->next, FO_WATCHING);
	f.select_done = true;
	f.have_candidate = true;
	const struct fo_rule *r = step(FO_SELECTING, &f);
	assert_int_equal(r->action, FO_A_NONE);
	assert_int_equal(r->next, FO_WATCHING);
}

/* The lock is taken only for a candidate; none holds. */
static void test_select(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.master_running = false;
	assert_null(step(FO_SELECTING, &f));
	f.select_done = true;
	assert_int_equal(step(FO_SELECTING, &f)->action, FO_A_HOLD_NO_CANDIDATE);
	f.have_candidate = true;
	const struct fo_rule *r = step(FO_SELECTING, &f);
	assert_int_equal(r->action, FO_A_LOCK);
	assert_int_equal(r->next, FO_PROMOTING);
}

/* A committed promotion is resumed from any state, and driven until it ends. */
static void test_resume_and_drive(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.lock_active = true;
	for (enum fo_state s = FO_WATCHING; s < FO_STATE_COUNT; s++) {
		const struct fo_rule *r = step(s, &f);
		assert_non_null(r);
		assert_int_equal(r->action, FO_A_DRIVE);
		assert_int_equal(r->next, FO_PROMOTING);
	}
	f.lock_active = false;
	const struct fo_rule *r = step(FO_PROMOTING, &f);
	assert_int_equal(r->event, FO_EV_LOCK_ENDED);
	assert_int_equal(r->next, FO_WATCHING);
	/* An aborted promotion is not tried again at once: the cluster holds, then rechecks. */
	f.lock_aborted = true;
	r = step(FO_PROMOTING, &f);
	assert_int_equal(r->action, FO_A_HOLD_ABORTED);
	assert_int_equal(r->next, FO_HOLDING);
}

/* Holding rechecks only when due, and ends when the master runs again. */
static void test_holding(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.master_alive = false;
	f.master_running = false;
	assert_null(step(FO_HOLDING, &f));
	f.recheck_due = true;
	assert_int_equal(step(FO_HOLDING, &f)->action, FO_A_CONFIRM);
	struct fo_facts ok = healthy();
	assert_int_equal(step(FO_HOLDING, &ok)->next, FO_WATCHING);
}

/* Every rule is reachable by its own (state, event) and every name is set. */
static void test_table_sound(void **state)
{
	(void)state;
	size_t n;
	const struct fo_rule *rules = fo_rules(&n);
	assert_true(n > 10);
	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(fo_state_name(rules[i].state), "?");
		assert_string_not_equal(fo_event_name(rules[i].event), "?");
		assert_string_not_equal(fo_rule_action_name(rules[i].action), "?");
		assert_true(strlen(rules[i].why) > 10);
		/* no rule fires on "nothing new" */
		assert_int_not_equal(rules[i].event, FO_EV_NONE);
		/* the only rules that take the lock start from a found candidate */
		if (rules[i].action == FO_A_LOCK)
			assert_int_equal(rules[i].event, FO_EV_CANDIDATE);
	}
	char buf[8192];
	FILE *out = fmemopen(buf, sizeof(buf), "w");
	fo_dump_decisions(out);
	fclose(out);
	assert_non_null(strstr(buf, "take-promotion-lock"));
}

/* efm promote: refused while the master runs or when none is recorded; confirmation first. */
static void test_promote_asked(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.auto_failover = false;
	f.asked = true;
	const struct fo_rule *r = step(FO_WATCHING, &f);
	assert_int_equal(r->action, FO_A_REFUSE);
	assert_int_equal(r->next, FO_WATCHING);
	f.master_recorded = false;
	r = step(FO_WATCHING, &f);
	assert_int_equal(r->action, FO_A_REFUSE);

	struct fo_facts lost = {.master_recorded = true, .asked = true};
	r = step(FO_WATCHING, &lost);
	assert_int_equal(r->action, FO_A_CONFIRM);
	/* manual mode holding on the lost master: the request confirms again */
	assert_int_equal(step(FO_HOLDING, &lost)->action, FO_A_CONFIRM);
	/* never past a reached master, whoever asked */
	lost.confirm_done = true;
	lost.reached = 1;
	assert_int_equal(step(FO_CONFIRMING, &lost)->action, FO_A_HOLD_REACHABLE);
	lost.reached = 0;
	assert_int_equal(step(FO_CONFIRMING, &lost)->action, FO_A_SELECT);
	lost.asked = false;
	assert_int_equal(step(FO_CONFIRMING, &lost)->action, FO_A_HOLD_MANUAL);

	/* a lagging candidate needs --yes in manual mode */
	struct fo_facts sel = {.master_recorded = true,
	                       .asked = true,
	                       .select_done = true,
	                       .have_candidate = true,
	                       .candidate_behind = true};
	r = step(FO_SELECTING, &sel);
	assert_int_equal(r->action, FO_A_REFUSE);
	assert_int_equal(r->next, FO_HOLDING);
	sel.asked_yes = true;
	assert_int_equal(step(FO_SELECTING, &sel)->action, FO_A_LOCK);
	sel.asked_yes = false;
	sel.candidate_behind = false;
	assert_int_equal(step(FO_SELECTING, &sel)->action, FO_A_LOCK);
}

/* efm promote -switchover: only from a running master, selecting beside it. */
static void test_switchover_asked(void **state)
{
	(void)state;
	struct fo_facts f = healthy();
	f.asked = f.asked_switchover = true;
	const struct fo_rule *r = step(FO_WATCHING, &f);
	assert_int_equal(r->action, FO_A_SELECT);
	assert_int_equal(r->next, FO_SELECTING);
	f.select_done = f.have_candidate = f.candidate_behind = true;
	f.auto_failover = false;
	assert_int_equal(step(FO_SELECTING, &f)->action, FO_A_LOCK);
	f.master_running = false;
	f.select_done = false;
	r = step(FO_WATCHING, &f);
	assert_int_equal(r->action, FO_A_REFUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quiet),
	    cmocka_unit_test(test_record),
	    cmocka_unit_test(test_loss_confirms_first),
	    cmocka_unit_test(test_confirm_waits),
	    cmocka_unit_test(test_reached_or_unverified_holds),
	    cmocka_unit_test(test_unreached),
	    cmocka_unit_test(test_recovery_cancels),
	    cmocka_unit_test(test_select),
	    cmocka_unit_test(test_resume_and_drive),
	    cmocka_unit_test(test_holding),
	    cmocka_unit_test(test_table_sound),
	    cmocka_unit_test(test_promote_asked),
	    cmocka_unit_test(test_switchover_asked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
