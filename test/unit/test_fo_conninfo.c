/*
 * test_fo_conninfo.c - re-pointing primary_conninfo and quoting it, checked by
 * parsing the results back with libpq.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "fo_local.h"

/* value_of returns the parsed value of key in conninfo (static copy), NULL when unset. */
static const char *value_of(const char *conninfo, const char *key)
{
	static char out[512];
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL)
		fail_msg("libpq cannot parse its own kind of string: %s: %s", conninfo,
		         err ? err : "?");
	const char *found = NULL;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, key) == 0 && o->val != NULL) {
			snprintf(out, sizeof(out), "%s", o->val);
			found = out;
		}
	}
	PQconninfoFree(opts);
	return found;
}

static void test_quote(void **state)
{
	char out[64];
	assert_true(fo_conninfo_quote("plain", out, sizeof(out)));
	assert_string_equal(out, "'plain'");
	assert_true(fo_conninfo_quote("it's a \\ path", out, sizeof(out)));
	assert_string_equal(out, "'it\\'s a \\\\ path'");
	assert_true(fo_conninfo_quote("", out, sizeof(out)));
	assert_string_equal(out, "''");
	assert_false(fo_conninfo_quote("toolong", out, 8));
	assert_true(fo_conninfo_quote("fits!", out, 8));

	assert_true(fo_sql_literal("a'b\\c", out, sizeof(out)));
	assert_string_equal(out, "E'a''b\\\\c'");
	assert_true(fo_sql_literal("", out, sizeof(out)));
	assert_string_equal(out, "E''");
	assert_false(fo_sql_literal("abcdef", out, 9));
	assert_true(fo_sql_literal("abcde", out, 9));
}

static void test_repoint_keeps_fields(void **state)
{
	const char *cur = "user=postgres password='pa ss\\'word' channel_binding=prefer "
	                  "host=127.0.0.2 port=5432 sslmode=prefer application_name='it\\'s s2' "
	                  "connect_timeout=2";
	char out[1024], err[256];
	bool same = true;
	assert_true(
	    fo_conninfo_repoint(cur, "127.0.0.3", 5433, out, sizeof(out), &same, err, sizeof(err)));
	assert_false(same);
	assert_string_equal(value_of(out, "host"), "127.0.0.3");
	assert_string_equal(value_of(out, "port"), "5433");
	assert_string_equal(value_of(out, "user"), "postgres");
	assert_string_equal(value_of(out, "password"), "pa ss'word");
	assert_string_equal(value_of(out, "application_name"), "it's s2");
	assert_string_equal(value_of(out, "connect_timeout"), "2");
	assert_string_equal(value_of(out, "sslmode"), "prefer");
	/* host= appears once: the old one is gone, not shadowed. */
	assert_null(strstr(out, "127.0.0.2"));

	/* Pointing at where it points already is recognised. */
	assert_true(
	    fo_conninfo_repoint(out, "127.0.0.3", 5433, out + 512, 512, &same, err, sizeof(err)));
	assert_true(same);
}

static void test_repoint_hostaddr_uri_empty(void **state)
{
	char out[512], err[256];
	bool same = true;
	/* hostaddr would win over the new host: it must go. */
	assert_true(fo_conninfo_repoint("host=a hostaddr=10.0.0.1 port=5432 user=u", "a", 5432, out,
	                                sizeof(out), &same, err, sizeof(err)));
	assert_false(same);
	assert_null(value_of(out, "hostaddr"));
	assert_string_equal(value_of(out, "host"), "a");

	assert_true(fo_conninfo_repoint("postgresql://rep@old.example:6000/?application_name=x",
	                                "new.example", 5432, out, sizeof(out), &same, err,
	                                sizeof(err)));
	assert_false(same);
	assert_string_equal(value_of(out, "host"), "new.example");
	assert_string_equal(value_of(out, "port"), "5432");
	assert_string_equal(value_of(out, "user"), "rep");
	assert_string_equal(value_of(out, "application_name"), "x");

	assert_true(
	    fo_conninfo_repoint("", "10.0.0.9", 5432, out, sizeof(out), &same, err, sizeof(err)));
	assert_false(same);
	assert_string_equal(out, "host='10.0.0.9' port='5432'");

	/* No port written means 5432. */
	assert_true(fo_conninfo_repoint("host=10.0.0.9", "10.0.0.9", 5432, out, sizeof(out), &same,
	                                err, sizeof(err)));
	assert_true(same);
}

static void test_repoint_refuses(void **state)
{
	char out[512], err[256] = "";
	bool same;
	assert_false(fo_conninfo_repoint("host='unterminated", "h", 1, out, sizeof(out), &same, err,
	                                 sizeof(err)));
	assert_non_null(strstr(err, "cannot parse primary_conninfo"));
	assert_false(
	    fo_conninfo_repoint("nosuchkey=1", "h", 1, out, sizeof(out), &same, err, sizeof(err)));
	assert_non_null(strstr(err, "nosuchkey"));
	assert_false(fo_conninfo_repoint("user=someone application_name=long", "h", 1, out, 20,
	                                 &same, err, sizeof(err)));
	assert_non_null(strstr(err, "does not fit"));
}

/* pg_rewind's source: the standby's settings, the master's address, the password apart. */
static void test_source(void **state)
{
	(void)state;
	char out[512], pw[64], err[128];
	assert_true(fo_conninfo_source("user=repl password='s3 cr\\'et' host=old port=5433 "
	                               "hostaddr=10.0.0.1 sslmode=require replication=true",
	                               "new", 5432, "postgres", out, sizeof(out), pw, sizeof(pw),
	                               err, sizeof(err)));
	assert_string_equal(pw, "s3 cr'et");
	assert_null(strstr(out, "password"));
	assert_null(strstr(out, "hostaddr"));
	assert_null(strstr(out, "replication"));
	assert_non_null(strstr(out, "user='repl'"));
	assert_non_null(strstr(out, "sslmode='require'"));
	assert_non_null(strstr(out, "host='new' port='5432' dbname='postgres'"));
	assert_false(fo_conninfo_source("host=", "new", 5432, "postgres", out, 8, pw, sizeof(pw),
	                                err, sizeof(err)));
}

/* pg_controldata's final checkpoint, as a switchover reads it. */
static void test_final_lsn(void **state)
{
	(void)state;
	char lsn[32];
	assert_true(fo_final_lsn("Database cluster state:               shut down\n"
	                         "Latest checkpoint location:           0/3000060\n"
	                         "Latest checkpoint's REDO location:    0/3000060\n",
	                         lsn, sizeof(lsn)));
	assert_string_equal(lsn, "0/3000060");
	assert_false(fo_final_lsn("pg_controldata: error: could not open file", lsn, sizeof(lsn)));
	assert_false(fo_final_lsn("Latest checkpoint location: garbage\n", lsn, sizeof(lsn)));
	assert_false(fo_final_lsn("Latest checkpoint location: 0/3000060\n", lsn, 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_repoint_keeps_fields),
	    cmocka_unit_test(test_repoint_hostaddr_uri_empty),
	    cmocka_unit_test(test_repoint_refuses),
	    cmocka_unit_test(test_final_lsn),
	    cmocka_unit_test(test_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
