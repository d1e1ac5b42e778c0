/*
 * test_members.c - member liveness bookkeeping (members and ghost voters),
 * the atomic file writes used for the .nodes file, and its coalescing writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster_int.h"
#include "fsutil.h"
#include "members.h"
#include "nodesfile.h"
#include "raftio.h"

/* A member is alive within the timeout of its last heartbeat, never before the first. */
static void test_alive_and_silent(void **state)
{
	struct members m;
	members_init(&m, 3000);
	assert_true(members_track(&m, 7, "10.0.0.7:7800", 1000));
	assert_false(members_alive(&m, 7, 1000));
	assert_int_equal(members_silent_ms(&m, 7, 2500), 1500);
	struct members_report r = {.role = CLUSTERFSM_STANDBY, .db = CLUSTERFSM_UP};
	members_heard(&m, 7, "10.0.0.7:7800", 4000, &r);
	assert_true(members_alive(&m, 7, 7000));
	assert_false(members_alive(&m, 7, 7001));
	assert_int_equal(members_get(&m, 7)->report.role, CLUSTERFSM_STANDBY);
	assert_false(members_alive(&m, 8, 4000));
	assert_int_equal(members_silent_ms(&m, 8, 4000), 0);
	members_forget(&m, 7);
	assert_null(members_get(&m, 7));
}

/* The removal candidate is the longest-silent voter past the limit, never self. */
static void test_removal_candidate(void **state)
{
	struct members m;
	members_init(&m, 1000);
	uint64_t voters[] = {1, 2, 3, 4};
	members_track(&m, 2, "b", 0);
	members_track(&m, 3, "c", 0);
	members_heard(&m, 2, "b", 500, NULL);
	members_heard(&m, 1, "self", 0, NULL);
	assert_int_equal(members_removal_candidate(&m, voters, 4, 1, 1500, 2000), 0);
	/* 3 silent since 0, 2 since 500: 3 goes first. */
	assert_int_equal(members_removal_candidate(&m, voters, 4, 1, 2600, 2000), 3);
	/* Self is never chosen, unknown voters (4) neither. */
	uint64_t two[] = {2, 3, 4};
	assert_int_equal(members_removal_candidate(&m, two, 3, 3, 2600, 2000), 2);
	members_heard(&m, 2, "b", 2600, NULL);
	members_heard(&m, 3, "c", 2600, NULL);
	assert_int_equal(members_removal_candidate(&m, voters, 4, 1, 2700, 2000), 0);
}

static int forgotten;

static void count_forget(void *arg, const struct members_entry *e)
{
	(void)arg;
	(void)e;
	forgotten++;
}

/*
 * A voter of the Raft configuration without a member record (a ghost) is
 * watched like a member: its silence grows from when it was first tracked,
 * and it becomes the removal candidate after 2T like a dead member.  The
 * caller syncs every tick with the members and the configuration's servers.
 */
static void test_ghost_voter_is_judged(void **state)
{
	struct members m;
	members_init(&m, 1000);
	uint64_t self = 1, voters[] = {1, 2, 3, 9};
	struct members_peer peers[] = {
	    {2, "b:1"}, {3, "c:1"},                         /* members */
	    {1, "a:1"}, {2, "b:1"}, {3, "c:1"}, {9, "g:1"}, /* the configuration */
	};
	forgotten = 0;
	uint64_t dead = 0, at = 0;
	for (uint64_t now = 0; now <= 2500 && dead == 0; now += 100) {
		members_sync(&m, self, peers, 6, now, count_forget, NULL);
		members_heard(&m, 2, "b:1", now, NULL);
		members_heard(&m, 3, "c:1", now, NULL);
		dead = members_removal_candidate(&m, voters, 4, self, now, 2000);
		at = now;
	}
	assert_int_equal(dead, 9);
	assert_int_equal(at, 2000);
	assert_int_equal(forgotten, 0);
	assert_null(members_get(&m, self));
	assert_string_equal(members_get(&m, 9)->address, "g:1");
	/* Out of the configuration and the members: forgotten (the link is dropped). */
	members_sync(&m, self, peers, 2, 2600, count_forget, NULL);
	assert_int_equal(forgotten, 1);
	assert_null(members_get(&m, 9));
	assert_non_null(members_get(&m, 2));
	assert_int_equal(members_silent_ms(&m, 2, 2600), 2600 - 2000);
}

static void on_closed(void *arg)
{
	(*(int *)arg)++;
}

/* The .nodes writer: unchanged text not written, a burst coalesced, the last text lands. */
static void test_nodesfile_coalesced(void **state)
{
	char dir[] = "/tmp/test_nodesfile_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], buf[64];
	snprintf(path, sizeof(path), "%s/acctg.nodes", dir);
	assert_int_equal(fsutil_write_atomic(path, "a:1 b:2\n", 8, 0644), 0);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct nodesfile f;
	nodesfile_init(&f, &loop, "acctg", path);
	nodesfile_set(&f, "a:1 b:2\n"); /* what the file holds: nothing to do */
	assert_false(nodesfile_busy(&f));
	nodesfile_set(&f, "x:1\n");
	assert_true(nodesfile_busy(&f));
	nodesfile_set(&f, "y:1\n");
	nodesfile_set(&f, "z:1\n"); /* replaces y, which is never written */
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_false(nodesfile_busy(&f));
	assert_int_equal(f.writes, 2);
	assert_int_equal(fsutil_read_small(path, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "z:1\n");
	nodesfile_set(&f, "z:1\n");
	assert_false(nodesfile_busy(&f));
	/* Closing with a write in flight: it lands, then the close callback runs. */
	nodesfile_set(&f, "q:1\n");
	int closed = 0;
	nodesfile_close(&f, on_closed, &closed);
	assert_int_equal(closed, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(closed, 1);
	assert_int_equal(fsutil_read_small(path, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "q:1\n");
	assert_int_equal(f.writes, 3);
	assert_int_equal(uv_loop_close(&loop), 0);
	/* A file that does not exist yet is written at the first text. */
	unlink(path);
	assert_int_equal(uv_loop_init(&loop), 0);
	nodesfile_init(&f, &loop, "acctg", path);
	nodesfile_set(&f, "a:1\n");
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(fsutil_read_small(path, buf, sizeof(buf)), 4);
	nodesfile_close(&f, NULL, NULL);
	assert_int_equal(uv_loop_close(&loop), 0);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* Raft ids are stable, nonzero and differ per address. */
static void test_raft_ids(void **state)
{
	uint64_t a = raftio_id_of("10.0.0.1:7800");
	assert_true(a != 0);
	assert_true(a == raftio_id_of("10.0.0.1:7800"));
	assert_true(a != raftio_id_of("10.0.0.2:7800"));
	assert_true(a != raftio_id_of("10.0.0.1:7801"));
}

/* fsutil_write_atomic replaces the content and leaves no temporary file. */
static void test_write_atomic(void **state)
{
	char dir[] = "/tmp/test_members_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], tmp[300], buf[64];
	snprintf(path, sizeof(path), "%s/acctg.nodes", dir);
	assert_int_equal(fsutil_write_atomic(path, "a:1 b:2\n", 8, 0644), 0);
	assert_int_equal(fsutil_read_small(path, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "a:1 b:2\n");
	assert_int_equal(fsutil_write_atomic(path, "b:2\n", 4, 0644), 0);
	assert_int_equal(fsutil_read_small(path, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "b:2\n");
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_true(fsutil_dir_has_files(dir));
	/* A kept name survives; everything else goes. */
	static const char *const keep[] = {"acctg.nodes", NULL};
	char other[300];
	snprintf(other, sizeof(other), "%s/open-1", dir);
	assert_int_equal(fsutil_write_atomic(other, "x", 1, 0600), 0);
	assert_int_equal(fsutil_empty_dir(dir, keep), 0);
	assert_int_equal(access(other, F_OK), -1);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(fsutil_empty_dir(dir, NULL), 0);
	assert_false(fsutil_dir_has_files(dir));
	assert_true(fsutil_write_atomic("/nonexistent/dir/x", "x", 1, 0644) < 0);
	char deep[300];
	snprintf(deep, sizeof(deep), "%s/a/b/c", dir);
	assert_int_equal(fsutil_mkdirs(deep, 0700), 0);
	struct stat sb;
	assert_int_equal(stat(deep, &sb), 0);
	rmdir(deep);
	snprintf(deep, sizeof(deep), "%s/a/b", dir);
	rmdir(deep);
	snprintf(deep, sizeof(deep), "%s/a", dir);
	rmdir(deep);
	assert_int_equal(rmdir(dir), 0);
}

/* The reset source is chosen as Raft compares logs: last term first, then length. */
static void test_reset_newer(void **state)
{
	(void)state;
	assert_true(cluster_reset_newer(5, 10, 4, 20));
	assert_false(cluster_reset_newer(4, 20, 5, 10));
	assert_true(cluster_reset_newer(5, 11, 5, 10));
	assert_false(cluster_reset_newer(5, 10, 5, 11));
	assert_false(cluster_reset_newer(5, 10, 5, 10)); /* a tie is not newer */
	assert_true(cluster_reset_newer(1, 1, 0, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alive_and_silent),
	    cmocka_unit_test(test_removal_candidate),
	    cmocka_unit_test(test_ghost_voter_is_judged),
	    cmocka_unit_test(test_nodesfile_coalesced),
	    cmocka_unit_test(test_raft_ids),
	    cmocka_unit_test(test_write_atomic),
	    cmocka_unit_test(test_reset_newer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
