/*
 * test_lsn.c - WAL position parsing and the position a sample compares by.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dbmon.h"

static void test_parse_good(void **state)
{
	uint64_t v = 1;
	assert_true(lsn_parse("0/0", &v));
	assert_int_equal(v, 0);
	assert_true(lsn_parse("0/3000060", &v));
	assert_int_equal(v, 0x3000060);
	assert_true(lsn_parse("16/B374D848", &v));
	assert_int_equal(v, (UINT64_C(0x16) << 32) | 0xB374D848);
	assert_true(lsn_parse("ffffffff/FFFFFFFF", &v));
	assert_int_equal(v, UINT64_MAX);
	assert_true(lsn_parse("00000001/00000002", &v));
	assert_int_equal(v, (UINT64_C(1) << 32) | 2);
}

static void test_parse_garbage(void **state)
{
	static const char *const bad[] = {
	    "",      "/",           "0/",          "/0",    "0",    "0/0/0", "x/0",
	    "0/g",   " 0/1",        "0/1 ",        "0 /1",  "-1/0", "+1/0",  "0x1/0",
	    "1/0x2", "123456789/0", "0/123456789", "0/1\n", "0//1", "1.5/0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 42;
		if (lsn_parse(bad[i], &v))
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(v, 42); /* untouched on failure */
	}
	uint64_t v;
	assert_false(lsn_parse(NULL, &v));
}

/* Positions order numerically, not as text: "0/A0" > "0/9F", "1/0" > "0/FFFFFFFF". */
static void test_compare(void **state)
{
	uint64_t a, b;
	assert_true(lsn_parse("0/A0", &a));
	assert_true(lsn_parse("0/9F", &b));
	assert_true(a > b);
	assert_true(lsn_parse("1/0", &a));
	assert_true(lsn_parse("0/FFFFFFFF", &b));
	assert_true(a > b);
	assert_true(lsn_parse("0/10", &a));
	assert_true(lsn_parse("0/010", &b));
	assert_true(a == b);
}

static void test_sample_lsn(void **state)
{
	struct db_sample m = {.role = DB_ROLE_MASTER};
	snprintf(m.current_lsn, sizeof(m.current_lsn), "%s", "0/5000000");
	assert_string_equal(db_sample_lsn(&m), "0/5000000");

	struct db_sample s = {.role = DB_ROLE_STANDBY};
	snprintf(s.receive_lsn, sizeof(s.receive_lsn), "%s", "0/4000000");
	snprintf(s.replay_lsn, sizeof(s.replay_lsn), "%s", "0/3000000");
	assert_string_equal(db_sample_lsn(&s), "0/4000000");

	/* Archive-only standby: nothing received, use what was replayed. */
	s.receive_lsn[0] = '\0';
	assert_string_equal(db_sample_lsn(&s), "0/3000000");

	/* A restarted walreceiver can report less than was already replayed. */
	snprintf(s.receive_lsn, sizeof(s.receive_lsn), "%s", "0/2000000");
	assert_string_equal(db_sample_lsn(&s), "0/3000000");

	struct db_sample u = {.role = DB_ROLE_UNKNOWN};
	snprintf(u.current_lsn, sizeof(u.current_lsn), "%s", "0/1");
	assert_string_equal(db_sample_lsn(&u), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_garbage),
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_sample_lsn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
