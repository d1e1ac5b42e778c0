/*
 * test_clusterfsm.c - the replicated cluster state machine: every command,
 * accepted and refused, the priority rules of the guide, the promotion lock,
 * snapshots, and decoding of garbage.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clusterfsm.h"

/* A fresh state on the heap (the struct is ~50 KB). */
static struct cluster_state *new_state(void)
{
	struct cluster_state *s = malloc(sizeof(*s));
	assert_non_null(s);
	clusterfsm_init(s);
	return s;
}

/* run encodes c, applies the entry and returns the code: the full path. */
static enum clusterfsm_code run(struct cluster_state *s, const struct clusterfsm_cmd *c)
{
	uint8_t buf[CLUSTERFSM_CMD_MAX];
	struct clusterfsm_result r;
	ssize_t n = clusterfsm_cmd_encode(c, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(n % 8, 0);
	enum clusterfsm_code code = clusterfsm_apply(s, buf, (size_t)n, &r);
	assert_int_equal(code, r.code);
	assert_int_equal(code, s->last.code);
	assert_string_equal(r.reason, s->last.reason);
	/* Only refusals and no-ops carry a reason; OK never does. */
	if (code == CLUSTERFSM_OK)
		assert_string_equal(r.reason, "");
	else
		assert_true(r.reason[0] != '\0');
	return code;
}

static enum clusterfsm_code allow(struct cluster_state *s, const char *a, int prio)
{
	struct clusterfsm_cmd c;
	assert_true(clusterfsm_cmd_allow_node(&c, a, prio));
	return run(s, &c);
}

static enum clusterfsm_code disallow(struct cluster_state *s, const char *a)
{
	struct clusterfsm_cmd c;
	assert_true(clusterfsm_cmd_disallow_node(&c, a));
	return run(s, &c);
}

static enum clusterfsm_code setprio(struct cluster_state *s, const char *a, int prio)
{
	struct clusterfsm_cmd c;
	assert_true(clusterfsm_cmd_set_priority(&c, a, prio));
	return run(s, &c);
}

static enum clusterfsm_code join(struct cluster_state *s, uint64_t id, const char *a,
                                 enum clusterfsm_role role)
{
	struct clusterfsm_cmd c;
	assert_true(clusterfsm_cmd_member_join(&c, id, a, role));
	return run(s, &c);
}

static enum clusterfsm_code leave(struct cluster_state *s, uint64_t id)
{
	struct clusterfsm_cmd c;
	clusterfsm_cmd_member_leave(&c, id);
	return run(s, &c);
}

static enum clusterfsm_code update(struct cluster_state *s, uint64_t id, enum clusterfsm_role role,
                                   enum clusterfsm_up agent, enum clusterfsm_up db)
{
	struct clusterfsm_cmd c;
	clusterfsm_cmd_member_update(&c, id, role, agent, db);
	return run(s, &c);
}

static enum clusterfsm_code lock(struct cluster_state *s, const char *cand, uint64_t term,
                                 uint64_t serial)
{
	struct clusterfsm_cmd c;
	assert_true(clusterfsm_cmd_promotion_lock(&c, cand, term, serial));
	return run(s, &c);
}

static enum clusterfsm_code phase(struct cluster_state *s, uint64_t serial,
                                  enum clusterfsm_phase from, enum clusterfsm_phase to)
{
	struct clusterfsm_cmd c;
	clusterfsm_cmd_promotion_phase(&c, serial, from, to);
	return run(s, &c);
}

static enum clusterfsm_code release(struct cluster_state *s, uint64_t serial, bool done)
{
	struct clusterfsm_cmd c;
	clusterfsm_cmd_promotion_release(&c, serial, done);
	return run(s, &c);
}

static enum clusterfsm_code set_master(struct cluster_state *s, const char *a)
{
	struct clusterfsm_cmd c;
	assert_true(clusterfsm_cmd_set_master(&c, a));
	return run(s, &c);
}

/* snap encodes s into a malloc'd buffer; *len gets its size. */
static uint8_t *snap(const struct cluster_state *s, size_t *len)
{
	uint8_t *buf = malloc(CLUSTERFSM_SNAPSHOT_MAX);
	assert_non_null(buf);
	ssize_t n = clusterfsm_snapshot_encode(s, buf, CLUSTERFSM_SNAPSHOT_MAX);
	assert_true(n > 0);
	assert_int_equal(n % 8, 0);
	*len = (size_t)n;
	return buf;
}

/* assert_same_state compares two states through their snapshot bytes. */
static void assert_same_state(const struct cluster_state *a, const struct cluster_state *b)
{
	size_t la, lb;
	uint8_t *sa = snap(a, &la), *sb = snap(b, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(sa, sb, la);
	free(sa);
	free(sb);
}

/* priorities renders the priority list as "a b c" for short asserts. */
static const char *priorities(const struct cluster_state *s)
{
	static char out[1024];
	size_t pos = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->n_priority; i++)
		pos += (size_t)snprintf(out + pos, sizeof(out) - pos, "%s%s", i ? " " : "",
		                        s->priority[i]);
	return out;
}

/* Addresses split into host and port; malformed ones are refused. */
static void test_host_of(void **state)
{
	char h[CLUSTERFSM_HOST_MAX];
	uint16_t port;
	assert_true(address_split("10.0.1.9:7800", h, sizeof(h), &port));
	assert_string_equal(h, "10.0.1.9");
	assert_int_equal(port, 7800);
	assert_true(address_split("10.0.1.9", h, sizeof(h), &port));
	assert_int_equal(port, 0);
	assert_true(address_split("[fe80::1]:7800", h, sizeof(h), &port));
	assert_string_equal(h, "fe80::1");
	assert_int_equal(port, 7800);
	assert_true(address_split("::1", h, sizeof(h), &port));
	assert_string_equal(h, "::1");
	assert_true(address_split("DB1.Example.com:5", h, sizeof(h), NULL));
	assert_string_equal(h, "db1.example.com");
	const char *bad[] = {"",     ":7800",  "h:",       "h:0", "h:65536", "h:123456", "h:12a",
	                     "[::1", "[::1]x", "[host]:1", "a b", "a/b:1",   "[]:1",     "h:7800:"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(address_split(bad[i], h, sizeof(h), &port));
	assert_false(address_split(NULL, h, sizeof(h), &port));
	assert_false(address_split("10.0.0.1", h, 4, &port)); /* does not fit */
}

/* add-node / remove-node, valid and invalid; refusals change nothing. */
static void test_allow_disallow(void **state)
{
	struct cluster_state *s = new_state();
	assert_int_equal(allow(s, "10.0.1.8", 0), CLUSTERFSM_OK);
	assert_int_equal(s->version, 1);
	assert_int_equal(allow(s, "10.0.1.13:7800", 0), CLUSTERFSM_OK);
	assert_int_equal(s->n_allowed, 2);
	assert_string_equal(s->allowed[0], "10.0.1.8");
	assert_string_equal(s->allowed[1], "10.0.1.13");
	assert_true(clusterfsm_is_allowed(s, "10.0.1.13:9999"));
	assert_int_equal(s->n_priority, 0); /* priority 0 adds no priority */
	assert_int_equal(allow(s, "10.0.1.8:7800", 0), CLUSTERFSM_ALREADY);
	assert_int_equal(s->version, 2);

	struct cluster_state *before = new_state();
	*before = *s;
	assert_int_equal(allow(s, "not/an/address", 0), CLUSTERFSM_REJECTED);
	assert_int_equal(allow(s, "10.0.1.20", -1), CLUSTERFSM_REJECTED);
	assert_int_equal(allow(s, "10.0.1.20", 2), CLUSTERFSM_REJECTED); /* n = 0: only 1 */
	assert_non_null(strstr(s->last.reason, "between 1 and 1"));
	assert_int_equal(disallow(s, "10.0.1.99"), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "not in the allowed"));
	assert_int_equal(disallow(s, "10.0.1.8:70000"), CLUSTERFSM_REJECTED);
	assert_same_state(s, before);
	assert_false(clusterfsm_is_allowed(s, "10.0.1.20"));

	assert_int_equal(allow(s, "10.0.1.20", 1), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.20");
	assert_int_equal(disallow(s, "10.0.1.20:7800"), CLUSTERFSM_OK);
	assert_false(clusterfsm_is_allowed(s, "10.0.1.20"));
	assert_int_equal(s->n_priority, 0); /* remove-node drops the priority too */
	assert_int_equal(disallow(s, "10.0.1.20"), CLUSTERFSM_REJECTED);
	free(before);
	free(s);
}

/* The guide's priority cases: 1 goes first, no priority goes last. */
static void test_priority_ordering(void **state)
{
	struct cluster_state *s = new_state();
	assert_int_equal(allow(s, "10.0.1.8", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 1, "10.0.1.8:7800", CLUSTERFSM_MASTER), CLUSTERFSM_OK);
	assert_int_equal(allow(s, "10.0.1.9", 0), CLUSTERFSM_OK);
	assert_int_equal(allow(s, "10.0.1.10", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 2, "10.0.1.9:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_int_equal(join(s, 3, "10.0.1.10:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.9 10.0.1.10");

	/* add-node with priority 1 before the agent starts: a reservation at the front. */
	assert_int_equal(allow(s, "10.0.1.11", 1), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.11 10.0.1.9 10.0.1.10");
	assert_int_equal(join(s, 4, "10.0.1.11:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.11 10.0.1.9 10.0.1.10");
	assert_int_equal(clusterfsm_priority_of(s, "10.0.1.9:7800"), 2);

	/* A standby joining without a priority goes to the end. */
	assert_int_equal(allow(s, "10.0.1.12", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 5, "10.0.1.12:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.11 10.0.1.9 10.0.1.10 10.0.1.12");

	/* The guide's "efm add-node acctg 10.0.1.9:7800 1" on a member moves it first. */
	assert_int_equal(allow(s, "10.0.1.10:7800", 1), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.10 10.0.1.11 10.0.1.9 10.0.1.12");
	assert_int_equal(allow(s, "10.0.1.10", 1), CLUSTERFSM_ALREADY);
	/* n = 4, the host itself excluded: valid 1..4; 5 is refused. */
	assert_int_equal(allow(s, "10.0.1.10", 5), CLUSTERFSM_REJECTED);
	assert_int_equal(allow(s, "10.0.1.10", 4), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.11 10.0.1.9 10.0.1.12 10.0.1.10");

	/* SET_PRIORITY: valid, idempotent, refusals. */
	assert_int_equal(setprio(s, "10.0.1.12", 1), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.12 10.0.1.11 10.0.1.9 10.0.1.10");
	assert_int_equal(setprio(s, "10.0.1.12", 1), CLUSTERFSM_ALREADY);
	uint64_t v = s->version;
	assert_int_equal(setprio(s, "10.0.1.12", 0), CLUSTERFSM_REJECTED);
	assert_int_equal(setprio(s, "10.0.1.12", 5), CLUSTERFSM_REJECTED);
	assert_int_equal(setprio(s, "10.0.1.12", -3), CLUSTERFSM_REJECTED);
	assert_int_equal(setprio(s, "10.0.1.77", 1), CLUSTERFSM_REJECTED); /* not allowed */
	assert_int_equal(setprio(s, "10.0.1.8", 1), CLUSTERFSM_REJECTED);  /* the master */
	assert_non_null(strstr(s->last.reason, "Master"));
	assert_int_equal(allow(s, "10.0.1.8", 1), CLUSTERFSM_REJECTED);
	assert_int_equal(setprio(s, "bad/address", 1), CLUSTERFSM_REJECTED);
	assert_int_equal(s->version, v);
	assert_string_equal(priorities(s), "10.0.1.12 10.0.1.11 10.0.1.9 10.0.1.10");

	/* A new host may take the slot after the last one (n + 1), not beyond. */
	assert_int_equal(allow(s, "10.0.1.30", 6), CLUSTERFSM_REJECTED);
	assert_false(clusterfsm_is_allowed(s, "10.0.1.30")); /* refused as a whole */
	assert_int_equal(allow(s, "10.0.1.30", 5), CLUSTERFSM_OK);
	assert_int_equal(clusterfsm_priority_of(s, "10.0.1.30"), 5);
	free(s);
}

/* Joins: allowed list enforced, duplicates, roles and the priority list. */
static void test_member_join(void **state)
{
	struct cluster_state *s = new_state();
	assert_int_equal(join(s, 1, "10.0.1.8:7800", CLUSTERFSM_MASTER), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "not in the allowed"));
	assert_int_equal(s->n_members, 0);
	assert_int_equal(allow(s, "10.0.1.8", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 0, "10.0.1.8:7800", CLUSTERFSM_MASTER), CLUSTERFSM_REJECTED);
	assert_int_equal(join(s, 1, "10.0.1.8", CLUSTERFSM_MASTER), CLUSTERFSM_REJECTED);
	assert_int_equal(join(s, 1, "10.0.1.8:7800", CLUSTERFSM_MASTER), CLUSTERFSM_OK);
	const struct clusterfsm_member *m = clusterfsm_member_by_id(s, 1);
	assert_non_null(m);
	assert_string_equal(m->address, "10.0.1.8:7800");
	assert_int_equal(m->role, CLUSTERFSM_MASTER);
	assert_int_equal(m->agent, CLUSTERFSM_UP);
	assert_int_equal(m->db, CLUSTERFSM_UNKNOWN);
	assert_ptr_equal(clusterfsm_member_by_host(s, "10.0.1.8"), m);

	/* Duplicates: the same join is a no-op; anything else conflicting is refused. */
	assert_int_equal(join(s, 1, "10.0.1.8:7800", CLUSTERFSM_MASTER), CLUSTERFSM_ALREADY);
	assert_int_equal(join(s, 1, "10.0.1.8:7801", CLUSTERFSM_MASTER), CLUSTERFSM_REJECTED);
	assert_int_equal(join(s, 1, "10.0.1.8:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_REJECTED);
	assert_int_equal(join(s, 2, "10.0.1.8:7801", CLUSTERFSM_STANDBY), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "already runs member 1"));
	assert_int_equal(s->n_members, 1);

	/* A witness is never a promotion candidate; a reservation is dropped. */
	assert_int_equal(allow(s, "10.0.1.5", 1), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.1.5");
	assert_int_equal(join(s, 5, "10.0.1.5:7800", CLUSTERFSM_WITNESS), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "");
	assert_int_equal(allow(s, "10.0.1.5", 1), CLUSTERFSM_REJECTED);

	/* IPv6 members. */
	assert_int_equal(allow(s, "fd00::2", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 6, "[fd00::2]:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "fd00::2");
	free(s);
}

/* The state never records two masters: a join or an update that would is refused. */
static void test_one_master(void **state)
{
	struct cluster_state *s = new_state();
	assert_int_equal(allow(s, "10.0.1.8", 0), CLUSTERFSM_OK);
	assert_int_equal(allow(s, "10.0.1.9", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 1, "10.0.1.8:7800", CLUSTERFSM_MASTER), CLUSTERFSM_OK);
	assert_int_equal(join(s, 2, "10.0.1.9:7800", CLUSTERFSM_MASTER), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "10.0.1.8:7800 is already the master"));
	assert_int_equal(s->n_members, 1);
	assert_int_equal(join(s, 2, "10.0.1.9:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);

	struct clusterfsm_cmd c;
	clusterfsm_cmd_member_update(&c, 2, CLUSTERFSM_MASTER, CLUSTERFSM_UP, CLUSTERFSM_UP);
	assert_int_equal(run(s, &c), CLUSTERFSM_REJECTED);
	assert_int_equal(clusterfsm_member_by_id(s, 2)->role, CLUSTERFSM_STANDBY);
	/* Once the old master is Idle, the other may become master. */
	clusterfsm_cmd_member_update(&c, 1, CLUSTERFSM_IDLE, CLUSTERFSM_UP, CLUSTERFSM_DOWN);
	assert_int_equal(run(s, &c), CLUSTERFSM_OK);
	clusterfsm_cmd_member_update(&c, 2, CLUSTERFSM_MASTER, CLUSTERFSM_UP, CLUSTERFSM_UP);
	assert_int_equal(run(s, &c), CLUSTERFSM_OK);
	free(s);
}

/* Leaves and updates, valid and invalid. */
static void test_member_leave_update(void **state)
{
	struct cluster_state *s = new_state();
	assert_int_equal(leave(s, 7), CLUSTERFSM_REJECTED);
	assert_int_equal(update(s, 7, CLUSTERFSM_STANDBY, CLUSTERFSM_UP, CLUSTERFSM_UP),
	                 CLUSTERFSM_REJECTED);
	assert_int_equal(s->version, 0);
	assert_int_equal(allow(s, "10.0.0.1", 0), CLUSTERFSM_OK);
	assert_int_equal(allow(s, "10.0.0.2", 0), CLUSTERFSM_OK);
	assert_int_equal(allow(s, "10.0.0.3", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 1, "10.0.0.1:7800", CLUSTERFSM_MASTER), CLUSTERFSM_OK);
	assert_int_equal(join(s, 2, "10.0.0.2:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_int_equal(join(s, 3, "10.0.0.3:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.2 10.0.0.3");

	assert_int_equal(update(s, 2, CLUSTERFSM_STANDBY, CLUSTERFSM_UP, CLUSTERFSM_UP),
	                 CLUSTERFSM_OK);
	assert_int_equal(clusterfsm_member_by_id(s, 2)->db, CLUSTERFSM_UP);
	assert_int_equal(update(s, 2, CLUSTERFSM_STANDBY, CLUSTERFSM_UP, CLUSTERFSM_UP),
	                 CLUSTERFSM_ALREADY);
	/* A standby whose database failed goes Idle: no longer a candidate. */
	assert_int_equal(update(s, 2, CLUSTERFSM_IDLE, CLUSTERFSM_UP, CLUSTERFSM_DOWN),
	                 CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.3");
	/* Resumed, it is a standby again, at the end. */
	assert_int_equal(update(s, 2, CLUSTERFSM_STANDBY, CLUSTERFSM_UP, CLUSTERFSM_UP),
	                 CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.3 10.0.0.2");

	/* Leaving drops the member and its priority; rejoining goes to the end. */
	assert_int_equal(leave(s, 3), CLUSTERFSM_OK);
	assert_null(clusterfsm_member_by_id(s, 3));
	assert_int_equal(s->n_members, 2);
	assert_string_equal(priorities(s), "10.0.0.2");
	assert_true(clusterfsm_is_allowed(s, "10.0.0.3")); /* a stop keeps the allowed entry */
	assert_int_equal(leave(s, 3), CLUSTERFSM_REJECTED);
	assert_int_equal(join(s, 3, "10.0.0.3:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.2 10.0.0.3");

	/* remove-node does not stop a running agent, but ends its candidacy. */
	assert_int_equal(disallow(s, "10.0.0.3"), CLUSTERFSM_OK);
	assert_non_null(clusterfsm_member_by_id(s, 3));
	assert_string_equal(priorities(s), "10.0.0.2");
	assert_int_equal(update(s, 3, CLUSTERFSM_STANDBY, CLUSTERFSM_DOWN, CLUSTERFSM_UP),
	                 CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.2"); /* still not allowed */
	assert_int_equal(leave(s, 3), CLUSTERFSM_OK);
	assert_int_equal(join(s, 3, "10.0.0.3:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_REJECTED);
	/* add-node again and a running standby is a candidate again. */
	assert_int_equal(join(s, 4, "10.0.0.3:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_REJECTED);
	assert_int_equal(allow(s, "10.0.0.3", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 4, "10.0.0.3:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.2 10.0.0.3");
	assert_int_equal(disallow(s, "10.0.0.3"), CLUSTERFSM_OK);
	assert_int_equal(allow(s, "10.0.0.3", 0), CLUSTERFSM_OK);
	assert_string_equal(priorities(s), "10.0.0.2 10.0.0.3");

	/* A hand-built command with an out-of-range enum is refused by apply. */
	struct clusterfsm_cmd c;
	clusterfsm_cmd_member_update(&c, 2, (enum clusterfsm_role)9, CLUSTERFSM_UP, CLUSTERFSM_UP);
	assert_int_equal(clusterfsm_apply_cmd(s, &c, NULL), CLUSTERFSM_REJECTED);
	c.type = (enum clusterfsm_cmd_type)99;
	assert_int_equal(clusterfsm_apply_cmd(s, &c, NULL), CLUSTERFSM_REJECTED);
	free(s);
}

/* SET_MASTER: members only; idempotent; clearable. */
static void test_set_master(void **state)
{
	struct cluster_state *s = new_state();
	assert_int_equal(set_master(s, ""), CLUSTERFSM_ALREADY);
	assert_int_equal(set_master(s, "10.0.0.1:7800"), CLUSTERFSM_REJECTED);
	assert_int_equal(allow(s, "10.0.0.1", 0), CLUSTERFSM_OK);
	assert_int_equal(join(s, 1, "10.0.0.1:7800", CLUSTERFSM_MASTER), CLUSTERFSM_OK);
	assert_int_equal(set_master(s, "10.0.0.1"), CLUSTERFSM_OK);
	assert_string_equal(s->master, "10.0.0.1:7800");
	assert_int_equal(set_master(s, "10.0.0.1:7800"), CLUSTERFSM_ALREADY);
	/* A leaving master agent does not clear the master: its database may live on. */
	assert_int_equal(leave(s, 1), CLUSTERFSM_OK);
	assert_string_equal(s->master, "10.0.0.1:7800");
	assert_int_equal(set_master(s, ""), CLUSTERFSM_OK);
	assert_string_equal(s->master, "");
	free(s);
}

/* three_nodes: master 1, standbys 2 and 3. */
static struct cluster_state *three_nodes(void)
{
	struct cluster_state *s = new_state();
	for (int i = 1; i <= 3; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.0.0.%d:7800", i);
		assert_int_equal(allow(s, a, 0), CLUSTERFSM_OK);
		assert_int_equal(
		    join(s, (uint64_t)i, a, i == 1 ? CLUSTERFSM_MASTER : CLUSTERFSM_STANDBY),
		    CLUSTERFSM_OK);
	}
	assert_int_equal(set_master(s, "10.0.0.1"), CLUSTERFSM_OK);
	return s;
}

/* Two competing locks with the same expected serial: exactly one wins. */
static void test_lock_competing(void **state)
{
	struct cluster_state *s = three_nodes();
	assert_false(clusterfsm_promotion_active(s));
	assert_int_equal(s->lock.serial, 0);
	assert_int_equal(lock(s, "10.0.0.2", 5, 0), CLUSTERFSM_OK);
	assert_int_equal(lock(s, "10.0.0.3", 5, 0), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "in progress"));
	assert_true(clusterfsm_promotion_active(s));
	assert_string_equal(s->lock.candidate, "10.0.0.2:7800");
	assert_int_equal(s->lock.serial, 1);
	assert_int_equal(s->lock.term, 5);
	assert_int_equal(s->lock.phase, CLUSTERFSM_PHASE_FENCING);
	/* The winner's retried entry is ALREADY, not a second win. */
	uint64_t v = s->version;
	assert_int_equal(lock(s, "10.0.0.2:7800", 5, 0), CLUSTERFSM_ALREADY);
	assert_int_equal(s->version, v);
	assert_int_equal(s->lock.serial, 1);

	/* The other order on a fresh state: the other one wins, still only one. */
	struct cluster_state *t = three_nodes();
	assert_int_equal(lock(t, "10.0.0.3", 5, 0), CLUSTERFSM_OK);
	assert_int_equal(lock(t, "10.0.0.2", 5, 0), CLUSTERFSM_REJECTED);
	assert_string_equal(t->lock.candidate, "10.0.0.3:7800");

	/* Refusals before any lock: not a member, not a standby, wrong serial. */
	struct cluster_state *u = three_nodes();
	assert_int_equal(lock(u, "10.0.0.9", 1, 0), CLUSTERFSM_REJECTED);
	assert_int_equal(lock(u, "10.0.0.1", 1, 0), CLUSTERFSM_REJECTED); /* the master */
	assert_non_null(strstr(u->last.reason, "not a standby"));
	assert_int_equal(lock(u, "10.0.0.2", 1, 3), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(u->last.reason, "stale"));
	assert_int_equal(u->lock.serial, 0);
	free(s);
	free(t);
	free(u);
}

/* Three candidates racing with one expected serial, in every order: one wins. */
static void test_lock_race_orders(void **state)
{
	static const int orders[6][3] = {{2, 3, 4}, {2, 4, 3}, {3, 2, 4},
	                                 {3, 4, 2}, {4, 2, 3}, {4, 3, 2}};
	for (int o = 0; o < 6; o++) {
		struct cluster_state *s = three_nodes();
		char a[32];
		int wins = 0;
		assert_int_equal(allow(s, "10.0.0.4", 0), CLUSTERFSM_OK);
		assert_int_equal(join(s, 4, "10.0.0.4:7800", CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
		/* A finished promotion first, so the race is for serial 1, not 0. */
		assert_int_equal(lock(s, "10.0.0.2", 1, 0), CLUSTERFSM_OK);
		assert_int_equal(release(s, 1, false), CLUSTERFSM_OK);
		for (int k = 0; k < 3; k++) {
			snprintf(a, sizeof(a), "10.0.0.%d", orders[o][k]);
			if (lock(s, a, 2, 1) == CLUSTERFSM_OK) {
				wins++;
				assert_int_equal(k, 0);
			}
		}
		assert_int_equal(wins, 1);
		snprintf(a, sizeof(a), "10.0.0.%d:7800", orders[o][0]);
		assert_string_equal(s->lock.candidate, a);
		assert_int_equal(s->lock.serial, 2);
		free(s);
	}
}

/* Phase steps: forward only, idempotent, serial checked; release; relock. */
static void test_lock_phases(void **state)
{
	struct cluster_state *s = three_nodes();
	assert_int_equal(phase(s, 0, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING),
	                 CLUSTERFSM_REJECTED); /* no lock yet */
	assert_int_equal(release(s, 0, true), CLUSTERFSM_REJECTED);
	assert_int_equal(lock(s, "10.0.0.2", 3, 0), CLUSTERFSM_OK);

	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING),
	                 CLUSTERFSM_OK);
	assert_int_equal(s->lock.phase, CLUSTERFSM_PHASE_PROMOTING);
	uint64_t v = s->version;
	/* Re-applying the same step (a new leader resuming) is ALREADY. */
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING),
	                 CLUSTERFSM_ALREADY);
	assert_int_equal(s->version, v);
	assert_int_equal(phase(s, 2, CLUSTERFSM_PHASE_PROMOTING, CLUSTERFSM_PHASE_VIP),
	                 CLUSTERFSM_REJECTED); /* wrong serial */
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_VIP, CLUSTERFSM_PHASE_PROMOTING),
	                 CLUSTERFSM_REJECTED); /* backwards */
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_PROMOTING, CLUSTERFSM_PHASE_DONE),
	                 CLUSTERFSM_REJECTED); /* ends go through release */
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_NONE, CLUSTERFSM_PHASE_FENCING),
	                 CLUSTERFSM_REJECTED);
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_VIP, CLUSTERFSM_PHASE_RECONFIGURING),
	                 CLUSTERFSM_REJECTED); /* not at VIP yet */
	assert_int_equal(s->lock.phase, CLUSTERFSM_PHASE_PROMOTING);
	/* A skip forward (no VIP configured) is allowed. */
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_PROMOTING, CLUSTERFSM_PHASE_RECONFIGURING),
	                 CLUSTERFSM_OK);
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_PROMOTING, CLUSTERFSM_PHASE_VIP),
	                 CLUSTERFSM_ALREADY); /* superseded */
	/* While in progress no other lock, whatever serial. */
	assert_int_equal(lock(s, "10.0.0.3", 4, 1), CLUSTERFSM_REJECTED);

	assert_int_equal(release(s, 2, true), CLUSTERFSM_REJECTED);
	assert_int_equal(release(s, 1, true), CLUSTERFSM_OK);
	assert_int_equal(s->lock.phase, CLUSTERFSM_PHASE_DONE);
	assert_false(clusterfsm_promotion_active(s));
	assert_int_equal(release(s, 1, true), CLUSTERFSM_ALREADY);
	assert_int_equal(release(s, 1, false), CLUSTERFSM_REJECTED);
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_RECONFIGURING, CLUSTERFSM_PHASE_VIP),
	                 CLUSTERFSM_REJECTED);
	assert_int_equal(phase(s, 1, CLUSTERFSM_PHASE_FENCING, CLUSTERFSM_PHASE_PROMOTING),
	                 CLUSTERFSM_REJECTED); /* over */

	/* A new lock after release: the old serial and an older term lose. */
	assert_int_equal(lock(s, "10.0.0.3", 4, 0), CLUSTERFSM_REJECTED);
	assert_int_equal(lock(s, "10.0.0.3", 2, 1), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "term"));
	assert_int_equal(lock(s, "10.0.0.3", 4, 1), CLUSTERFSM_OK);
	assert_int_equal(s->lock.serial, 2);
	assert_int_equal(s->lock.phase, CLUSTERFSM_PHASE_FENCING);
	assert_int_equal(release(s, 2, false), CLUSTERFSM_OK);
	assert_int_equal(s->lock.phase, CLUSTERFSM_PHASE_ABORTED);
	assert_int_equal(release(s, 2, true), CLUSTERFSM_REJECTED);
	assert_int_equal(lock(s, "10.0.0.2", 4, 2), CLUSTERFSM_OK);
	assert_int_equal(s->lock.serial, 3);

	/* Hand-built release with a non-terminal outcome is refused. */
	struct clusterfsm_cmd c;
	clusterfsm_cmd_promotion_release(&c, 3, true);
	c.to = CLUSTERFSM_PHASE_VIP;
	assert_int_equal(clusterfsm_apply_cmd(s, &c, NULL), CLUSTERFSM_REJECTED);
	free(s);
}

/* Every command type round-trips through the encoding; bad ones do not encode. */
static void test_encode_roundtrip(void **state)
{
	struct clusterfsm_cmd cmds[11], d;
	uint8_t buf[CLUSTERFSM_CMD_MAX];
	char longest[CLUSTERFSM_ADDR_MAX];
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';

	assert_true(clusterfsm_cmd_allow_node(&cmds[0], "10.0.1.9:7800", -7));
	assert_true(clusterfsm_cmd_disallow_node(&cmds[1], "h"));
	assert_true(clusterfsm_cmd_set_priority(&cmds[2], "[::1]:1", 2147483647));
	assert_true(clusterfsm_cmd_member_join(&cmds[3], UINT64_MAX, "a:1", CLUSTERFSM_IDLE));
	clusterfsm_cmd_member_leave(&cmds[4], 0x0102030405060708ull);
	clusterfsm_cmd_member_update(&cmds[5], 9, CLUSTERFSM_WITNESS, CLUSTERFSM_DOWN,
	                             CLUSTERFSM_UNKNOWN);
	assert_true(clusterfsm_cmd_promotion_lock(&cmds[6], longest, UINT64_MAX - 1, 77));
	clusterfsm_cmd_promotion_phase(&cmds[7], 8, CLUSTERFSM_PHASE_VIP,
	                               CLUSTERFSM_PHASE_RECONFIGURING);
	clusterfsm_cmd_promotion_release(&cmds[8], 8, false);
	assert_true(clusterfsm_cmd_set_master(&cmds[9], ""));
	assert_true(clusterfsm_cmd_switchover_lock(&cmds[10], "b:2", 3, 4));
	for (size_t i = 0; i < 11; i++) {
		ssize_t n = clusterfsm_cmd_encode(&cmds[i], buf, sizeof(buf));
		assert_true(n >= 8);
		assert_int_equal(n % 8, 0);
		assert_int_equal(clusterfsm_cmd_decode(buf, (size_t)n, &d), 0);
		assert_memory_equal(&d, &cmds[i], sizeof(d));
		/* One byte short of room is ENOSPC, never an overrun. */
		assert_int_equal(clusterfsm_cmd_encode(&cmds[i], buf, (size_t)n - 1), -ENOSPC);
	}
	int32_t prios[] = {INT32_MIN, -1, 0, 1, INT32_MAX};
	for (size_t i = 0; i < 5; i++) {
		assert_true(clusterfsm_cmd_allow_node(&cmds[0], "h", prios[i]));
		ssize_t n = clusterfsm_cmd_encode(&cmds[0], buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(clusterfsm_cmd_decode(buf, (size_t)n, &d), 0);
		assert_int_equal(d.priority, prios[i]);
	}
	/* Too long for a builder; spaces, control bytes and bad enums do not encode. */
	char toolong[CLUSTERFSM_ADDR_MAX + 1];
	memset(toolong, 'a', sizeof(toolong) - 1);
	toolong[sizeof(toolong) - 1] = '\0';
	assert_false(clusterfsm_cmd_allow_node(&d, toolong, 0));
	assert_true(clusterfsm_cmd_allow_node(&d, "a b", 0));
	assert_int_equal(clusterfsm_cmd_encode(&d, buf, sizeof(buf)), -EINVAL);
	assert_true(clusterfsm_cmd_allow_node(&d, "a\tb", 0));
	assert_int_equal(clusterfsm_cmd_encode(&d, buf, sizeof(buf)), -EINVAL);
	clusterfsm_cmd_member_update(&d, 1, (enum clusterfsm_role)4, CLUSTERFSM_UP, CLUSTERFSM_UP);
	assert_int_equal(clusterfsm_cmd_encode(&d, buf, sizeof(buf)), -EINVAL);
	clusterfsm_cmd_member_leave(&d, 1);
	d.type = (enum clusterfsm_cmd_type)0;
	assert_int_equal(clusterfsm_cmd_encode(&d, buf, sizeof(buf)), -EINVAL);
}

/* xorshift64: a deterministic generator so failures reproduce. */
static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Weights of the command types in random_cmd, in enum order from ALLOW_NODE. */
static const unsigned weights[] = {15, 4, 8, 20, 5, 12, 12, 12, 6, 6};

/* random_cmd draws a command over a small world so that many succeed. */
static void random_cmd(uint64_t *x, const struct cluster_state *s, struct clusterfsm_cmd *c)
{
	char a[64];
	unsigned node = (unsigned)(rnd(x) % 8) + 1;
	int prio = (int)(rnd(x) % 7) - 1;
	/* Mostly the node's own id, sometimes a clashing or unknown one. */
	uint64_t id = rnd(x) % 8 ? node : rnd(x) % 12;
	enum clusterfsm_role role = (enum clusterfsm_role)(rnd(x) % 4);
	enum clusterfsm_phase p1 = (enum clusterfsm_phase)(rnd(x) % 7);
	enum clusterfsm_phase p2 = (enum clusterfsm_phase)(rnd(x) % 7);
	uint64_t serial = s->lock.serial - (rnd(x) % 4 == 0 ? 1 : 0);
	unsigned pick = (unsigned)(rnd(x) % 100), type = 0;

	if (rnd(x) % 4 == 0)
		role = CLUSTERFSM_STANDBY; /* candidates for the lock */
	/* Half the time, the next step of the promotion in progress (the coordinator). */
	if (clusterfsm_promotion_active(s) && rnd(x) % 2)
		p1 = s->lock.phase;
	if (p1 >= CLUSTERFSM_PHASE_FENCING && p1 < CLUSTERFSM_PHASE_RECONFIGURING && rnd(x) % 2)
		p2 = p1 + 1;
	while (pick >= weights[type])
		pick -= weights[type++];
	if (rnd(x) % 2)
		snprintf(a, sizeof(a), "10.0.0.%u:7800", node);
	else
		snprintf(a, sizeof(a), "10.0.0.%u", node);
	switch (type + CLUSTERFSM_ALLOW_NODE) {
	case CLUSTERFSM_ALLOW_NODE:
		assert_true(clusterfsm_cmd_allow_node(c, a, prio));
		break;
	case CLUSTERFSM_DISALLOW_NODE:
		assert_true(clusterfsm_cmd_disallow_node(c, a));
		break;
	case CLUSTERFSM_SET_PRIORITY:
		assert_true(clusterfsm_cmd_set_priority(c, a, prio));
		break;
	case CLUSTERFSM_MEMBER_JOIN:
		snprintf(a, sizeof(a), "10.0.0.%u:%u", node, 7800 + (unsigned)(rnd(x) % 8 == 0));
		assert_true(clusterfsm_cmd_member_join(c, id, a, role));
		break;
	case CLUSTERFSM_MEMBER_LEAVE:
		clusterfsm_cmd_member_leave(c, id);
		break;
	case CLUSTERFSM_MEMBER_UPDATE:
		clusterfsm_cmd_member_update(c, id, role, (enum clusterfsm_up)(rnd(x) % 2),
		                             (enum clusterfsm_up)(rnd(x) % 3));
		break;
	case CLUSTERFSM_PROMOTION_LOCK:
		assert_true(clusterfsm_cmd_promotion_lock(c, a, rnd(x) % 3 + s->lock.term, serial));
		c->switchover = rnd(x) % 2; /* the snapshot must carry it */
		break;
	case CLUSTERFSM_PROMOTION_PHASE:
		clusterfsm_cmd_promotion_phase(c, serial, p1, p2);
		break;
	case CLUSTERFSM_PROMOTION_RELEASE:
		clusterfsm_cmd_promotion_release(c, serial, rnd(x) % 2);
		break;
	default:
		assert_true(clusterfsm_cmd_set_master(c, rnd(x) % 4 ? a : ""));
		break;
	}
}

/*
 * Many random commands: two replicas stay byte-identical, a snapshot restores
 * to the same bytes, and the restored copy keeps evolving identically.
 */
static void test_snapshot_many(void **state)
{
	struct cluster_state *a = new_state(), *b = new_state(), *c = new_state();
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned counts[3] = {0}, phase_ok = 0;
	struct clusterfsm_cmd cmd;

	for (int i = 0; i < 1000; i++) {
		random_cmd(&x, a, &cmd);
		enum clusterfsm_code ca = run(a, &cmd);
		enum clusterfsm_code cb = run(b, &cmd);
		assert_int_equal(ca, cb);
		assert_string_equal(a->last.reason, b->last.reason);
		counts[ca]++;
		phase_ok += ca == CLUSTERFSM_OK && cmd.type == CLUSTERFSM_PROMOTION_PHASE;
		/* Restore checks apply's invariants: a state apply made must pass. */
		if (i % 10 == 0) {
			size_t l;
			uint8_t *bytes = snap(a, &l);
			assert_int_equal(clusterfsm_snapshot_restore(c, bytes, l), 0);
			free(bytes);
		}
	}
	assert_true(phase_ok > 5);
	/* The mix exercised all three outcomes, plenty of each. */
	assert_true(counts[CLUSTERFSM_OK] > 100);
	assert_true(counts[CLUSTERFSM_ALREADY] > 20);
	assert_true(counts[CLUSTERFSM_REJECTED] > 100);
	assert_int_equal(a->version, counts[CLUSTERFSM_OK]);
	assert_true(a->lock.serial > 0);
	assert_same_state(a, b);

	size_t len;
	uint8_t *bytes = snap(a, &len);
	assert_int_equal(clusterfsm_snapshot_restore(c, bytes, len), 0);
	assert_same_state(a, c);
	assert_int_equal(c->version, a->version);
	assert_int_equal(c->n_members, a->n_members);
	assert_int_equal(c->n_priority, a->n_priority);
	for (int i = 0; i < 300; i++) {
		random_cmd(&x, a, &cmd);
		assert_int_equal(run(a, &cmd), run(c, &cmd));
	}
	assert_same_state(a, c);
	free(bytes);
	free(a);
	free(b);
	free(c);
}

/* The largest state fits CLUSTERFSM_SNAPSHOT_MAX; the lists refuse a 65th. */
static void test_full_state(void **state)
{
	struct cluster_state *s = new_state(), *t = new_state();
	char a[CLUSTERFSM_ADDR_MAX];
	for (int i = 0; i < CLUSTERFSM_MAX_NODES; i++) {
		/* 249 chars of host + ":65535" + NUL; 255 + ":65535" too long for a host. */
		memset(a, 'a' + (i % 26), 240);
		snprintf(a + 240, sizeof(a) - 240, "%09d:65535", i);
		assert_int_equal(allow(s, a, 1), CLUSTERFSM_OK);
		assert_int_equal(join(s, (uint64_t)i + 1, a, CLUSTERFSM_STANDBY), CLUSTERFSM_OK);
	}
	assert_int_equal(s->n_priority, CLUSTERFSM_MAX_NODES);
	assert_int_equal(allow(s, "10.9.9.9", 0), CLUSTERFSM_REJECTED);
	assert_non_null(strstr(s->last.reason, "full"));
	assert_int_equal(lock(s, s->members[0].address, UINT64_MAX, 0), CLUSTERFSM_OK);
	assert_int_equal(set_master(s, s->members[1].address), CLUSTERFSM_OK);
	size_t len;
	uint8_t *bytes = snap(s, &len);
	assert_true(len <= CLUSTERFSM_SNAPSHOT_MAX);
	/* a buffer one byte short is refused (it is scratch: encode may have begun writing) */
	uint8_t *scratch = malloc(len);
	assert_non_null(scratch);
	assert_int_equal(clusterfsm_snapshot_encode(s, scratch, len - 1), -ENOSPC);
	free(scratch);
	assert_int_equal(clusterfsm_snapshot_restore(t, bytes, len), 0);
	assert_same_state(s, t);

	char nodes[128];
	assert_int_equal(clusterfsm_nodes_text(s, nodes, sizeof(nodes)), -ENOSPC);
	free(bytes);
	free(s);
	free(t);
}

/* Garbage entries never crash, never decode loosely, never change the state. */
static void test_decode_garbage(void **state)
{
	struct cluster_state *s = three_nodes(), *before = new_state();
	struct clusterfsm_cmd cmd, d;
	uint8_t buf[CLUSTERFSM_CMD_MAX + 64], enc[CLUSTERFSM_CMD_MAX];
	uint64_t x = 12345;
	*before = *s;

	/* Random bytes, random lengths, sometimes behind a valid magic and type. */
	for (int i = 0; i < 200000; i++) {
		size_t len = (size_t)(rnd(&x) % sizeof(buf));
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rnd(&x);
		if (len >= 8 && i % 2) {
			memcpy(buf, "EFMC\1", 5);
			buf[5] = (uint8_t)(rnd(&x) % 12);
			buf[7] = 0;
		}
		if (clusterfsm_cmd_decode(buf, len, &d) == 0) {
			/* What decodes must be canonical: it re-encodes to the same bytes. */
			ssize_t n = clusterfsm_cmd_encode(&d, enc, sizeof(enc));
			assert_int_equal(n, (ssize_t)len);
			assert_memory_equal(enc, buf, len);
		}
	}
	assert_int_equal(clusterfsm_cmd_decode(NULL, 0, &d), -EINVAL);

	/* Every truncation and every single-byte change of valid entries. */
	for (int i = 0; i < 300; i++) {
		random_cmd(&x, s, &cmd);
		ssize_t n = clusterfsm_cmd_encode(&cmd, enc, sizeof(enc));
		assert_true(n > 0);
		for (ssize_t cut = 0; cut < n; cut++) {
			assert_int_equal(clusterfsm_cmd_decode(enc, (size_t)cut, &d), -EINVAL);
			assert_int_equal(clusterfsm_apply(s, enc, (size_t)cut, NULL),
			                 CLUSTERFSM_REJECTED);
			assert_non_null(strstr(s->last.reason, "corrupt"));
		}
		memcpy(buf, enc, (size_t)n);
		memset(buf + n, 0, 8);
		assert_int_equal(clusterfsm_cmd_decode(buf, (size_t)n + 8, &d), -EINVAL);
		for (ssize_t k = 0; k < n; k++) {
			memcpy(buf, enc, (size_t)n);
			buf[k] ^= (uint8_t)(1 + rnd(&x) % 255);
			if (clusterfsm_cmd_decode(buf, (size_t)n, &d) == 0) {
				uint8_t again[CLUSTERFSM_CMD_MAX];
				ssize_t m = clusterfsm_cmd_encode(&d, again, sizeof(again));
				assert_int_equal(m, n);
				assert_memory_equal(again, buf, (size_t)n);
			}
		}
	}
	/* Nothing above was an OK command: the state is as it was. */
	assert_int_equal(s->version, before->version);
	assert_same_state(s, before);
	free(s);
	free(before);
}

/* Garbage snapshots are refused and leave the state untouched. */
static void test_snapshot_garbage(void **state)
{
	struct cluster_state *s = new_state(), *t = new_state(), *keep = new_state();
	struct clusterfsm_cmd cmd;
	uint64_t x = 777;
	size_t len;

	for (int i = 0; i < 400; i++) {
		random_cmd(&x, s, &cmd);
		(void)run(s, &cmd);
	}
	uint8_t *good = snap(s, &len);
	uint8_t *buf = malloc(len + 16);
	assert_non_null(buf);
	assert_int_equal(allow(t, "192.168.0.1", 0), CLUSTERFSM_OK); /* something to keep */
	*keep = *t;

	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(clusterfsm_snapshot_restore(t, good, cut), -EINVAL);
	memcpy(buf, good, len);
	memset(buf + len, 0, 8);
	assert_int_equal(clusterfsm_snapshot_restore(t, buf, len + 8), -EINVAL);
	for (size_t k = 0; k < len; k++) {
		memcpy(buf, good, len);
		buf[k] ^= (uint8_t)(1 + rnd(&x) % 255);
		if (clusterfsm_snapshot_restore(t, buf, len) == 0) {
			/* Accepted only if canonical; then put t back. */
			size_t l2;
			uint8_t *again = snap(t, &l2);
			assert_int_equal(l2, len);
			assert_memory_equal(again, buf, len);
			free(again);
			*t = *keep;
		}
	}
	for (int i = 0; i < 20000; i++) {
		size_t l = (size_t)(rnd(&x) % (len + 8));
		for (size_t k = 0; k < l; k++)
			buf[k] = (uint8_t)rnd(&x);
		if (l >= 12 && i % 2)
			memcpy(buf, "EFMS\1\0\0\0", 8);
		assert_int_equal(clusterfsm_snapshot_restore(t, buf, l), -EINVAL);
	}
	assert_int_equal(clusterfsm_snapshot_restore(t, NULL, 0), -EINVAL);
	assert_same_state(t, keep);

	/* A snapshot of a state that breaks an invariant is refused. */
	struct cluster_state *bad = new_state();
	snprintf(bad->priority[0], CLUSTERFSM_HOST_MAX, "10.1.1.1"); /* not allowed */
	bad->n_priority = 1;
	size_t blen;
	uint8_t *bb = snap(bad, &blen);
	assert_int_equal(clusterfsm_snapshot_restore(t, bb, blen), -EINVAL);
	free(bb);
	clusterfsm_init(bad);
	bad->lock.serial = 1; /* a lock with no candidate */
	bad->lock.phase = CLUSTERFSM_PHASE_FENCING;
	bb = snap(bad, &blen);
	assert_int_equal(clusterfsm_snapshot_restore(t, bb, blen), -EINVAL);
	assert_same_state(t, keep);
	free(bb);
	free(bad);
	free(good);
	free(buf);
	free(s);
	free(t);
	free(keep);
}

/* The .nodes text lists members' host:port in join order. */
static void test_nodes_text(void **state)
{
	struct cluster_state *s = new_state();
	char buf[256];
	assert_int_equal(clusterfsm_nodes_text(s, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "\n");
	free(s);
	s = three_nodes();
	int n = clusterfsm_nodes_text(s, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.1:7800 10.0.0.2:7800 10.0.0.3:7800\n");
	assert_int_equal(n, (int)strlen(buf));
	assert_int_equal(leave(s, 2), CLUSTERFSM_OK);
	assert_true(clusterfsm_nodes_text(s, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "10.0.0.1:7800 10.0.0.3:7800\n");
	assert_int_equal(clusterfsm_nodes_text(s, buf, 28), -ENOSPC);
	assert_int_equal(clusterfsm_nodes_text(s, buf, 29), 28);
	free(s);
}

/* Names used in logs and status. */
static void test_names(void **state)
{
	assert_string_equal(clusterfsm_role_name(CLUSTERFSM_WITNESS), "Witness");
	assert_string_equal(clusterfsm_up_name(CLUSTERFSM_UNKNOWN), "UNKNOWN");
	assert_string_equal(clusterfsm_phase_name(CLUSTERFSM_PHASE_RECONFIGURING), "RECONFIGURING");
	assert_string_equal(clusterfsm_phase_name((enum clusterfsm_phase)42), "?");
	assert_string_equal(clusterfsm_code_name(CLUSTERFSM_ALREADY), "ALREADY");
	assert_string_equal(clusterfsm_cmd_name(CLUSTERFSM_SET_MASTER), "SET_MASTER");
	assert_string_equal(clusterfsm_cmd_name((enum clusterfsm_cmd_type)0), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_of),
	    cmocka_unit_test(test_allow_disallow),
	    cmocka_unit_test(test_priority_ordering),
	    cmocka_unit_test(test_member_join),
	    cmocka_unit_test(test_member_leave_update),
	    cmocka_unit_test(test_one_master),
	    cmocka_unit_test(test_set_master),
	    cmocka_unit_test(test_lock_competing),
	    cmocka_unit_test(test_lock_race_orders),
	    cmocka_unit_test(test_lock_phases),
	    cmocka_unit_test(test_encode_roundtrip),
	    cmocka_unit_test(test_snapshot_many),
	    cmocka_unit_test(test_full_state),
	    cmocka_unit_test(test_decode_garbage),
	    cmocka_unit_test(test_snapshot_garbage),
	    cmocka_unit_test(test_nodes_text),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
