/*
 * test_status.c - the status model: JSON rendering and parsing, the text
 * report, and the exit-code rules of `efm cluster-status`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"

/* add_node appends a node with the given fields. */
static struct status_node *add_node(struct status_model *m, const char *addr, enum node_type t,
                                    enum up_state agent, enum up_state db, const char *xlog)
{
	struct status_node *n = status_add_node(m);
	assert_non_null(n);
	snprintf(n->address, sizeof(n->address), "%s", addr);
	n->type = t;
	n->agent = agent;
	n->db = db;
	snprintf(n->xlog, sizeof(n->xlog), "%s", xlog);
	return n;
}

/* healthy3 builds a master and two in-sync standbys. */
static void healthy3(struct status_model *m)
{
	snprintf(m->cluster, sizeof(m->cluster), "acctg");
	add_node(m, "10.0.1.8", NODE_MASTER, STATE_UP, STATE_UP, "2/35000230");
	add_node(m, "10.0.1.13", NODE_STANDBY, STATE_UP, STATE_UP, "2/35000230");
	add_node(m, "10.0.1.14", NODE_STANDBY, STATE_UP, STATE_UP, "2/35000230");
	status_add_allowed(m, "10.0.1.8");
	status_add_allowed(m, "10.0.1.13");
	status_add_allowed(m, "10.0.1.14");
	status_add_priority(m, "10.0.1.14");
	status_add_priority(m, "10.0.1.13");
}

/* render captures status_render_text in a malloc'd string. */
/* noinline: GCC 12 otherwise mistakes the returned buffer for a dangling local. */
__attribute__((noinline)) static char *render(const struct status_model *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	status_render_text(f, m);
	fclose(f);
	return buf;
}

static void test_json_keys_and_order(void **state)
{
	struct status_model m = {0};
	healthy3(&m);
	snprintf(m.nodes[1].info, sizeof(m.nodes[1].info), "catching up");
	snprintf(m.nodes[1].xloginfo, sizeof(m.nodes[1].xloginfo), "queried directly");
	status_add_message(&m, "first");
	status_add_message(&m, "second");

	cJSON *j = status_to_json(&m);
	assert_non_null(j);
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	/* Parse the text back, as jq or the client would. */
	cJSON *p = cJSON_Parse(text);
	free(text);
	assert_non_null(p);
	assert_string_equal(cJSON_GetObjectItem(p, "cluster")->valuestring, "acctg");
	cJSON *nodes = cJSON_GetObjectItem(p, "nodes");
	assert_true(cJSON_IsObject(nodes));
	assert_int_equal(cJSON_GetArraySize(nodes), 3);
	const char *order[] = {"10.0.1.8", "10.0.1.13", "10.0.1.14"};
	int i = 0;
	cJSON *it;
	cJSON_ArrayForEach(it, nodes)
	{
		assert_string_equal(it->string, order[i]);
		i++;
	}
	cJSON *n = cJSON_GetObjectItem(nodes, "10.0.1.13");
	const char *keys[] = {"type", "agent", "db", "info", "xlog", "xloginfo"};
	i = 0;
	cJSON_ArrayForEach(it, n)
	{
		assert_string_equal(it->string, keys[i]);
		i++;
	}
	assert_int_equal(i, 6);
	assert_string_equal(cJSON_GetObjectItem(n, "type")->valuestring, "Standby");
	assert_string_equal(cJSON_GetObjectItem(n, "agent")->valuestring, "UP");
	assert_string_equal(cJSON_GetObjectItem(n, "db")->valuestring, "UP");
	assert_string_equal(cJSON_GetObjectItem(n, "info")->valuestring, "catching up");
	assert_string_equal(cJSON_GetObjectItem(n, "xlog")->valuestring, "2/35000230");
	assert_string_equal(cJSON_GetObjectItem(n, "xloginfo")->valuestring, "queried directly");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(nodes, "10.0.1.8"), "type")->valuestring,
	    "Master");

	cJSON *allowed = cJSON_GetObjectItem(p, "allowednodes");
	assert_int_equal(cJSON_GetArraySize(allowed), 3);
	assert_string_equal(cJSON_GetArrayItem(allowed, 0)->valuestring, "10.0.1.8");
	cJSON *prio = cJSON_GetObjectItem(p, "failoverpriority");
	assert_int_equal(cJSON_GetArraySize(prio), 2);
	assert_string_equal(cJSON_GetArrayItem(prio, 0)->valuestring, "10.0.1.14");
	cJSON *msgs = cJSON_GetObjectItem(p, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 2);
	assert_string_equal(cJSON_GetArrayItem(msgs, 1)->valuestring, "second");
	cJSON_Delete(p);
	status_free(&m);
}

static void test_json_round_trip(void **state)
{
	struct status_model m = {0}, back = {0};
	healthy3(&m);
	add_node(&m, "10.0.1.20", NODE_IDLE, STATE_UP, STATE_UNKNOWN, "");
	snprintf(m.nodes[3].xloginfo, sizeof(m.nodes[3].xloginfo), "Connection refused.");
	add_node(&m, "10.0.1.30", NODE_WITNESS, STATE_DOWN, STATE_UNKNOWN, "");
	status_add_message(&m, "a message");

	cJSON *j1 = status_to_json(&m);
	assert_true(status_from_json(j1, &back));
	cJSON *j2 = status_to_json(&back);
	char *t1 = cJSON_PrintUnformatted(j1);
	char *t2 = cJSON_PrintUnformatted(j2);
	assert_string_equal(t1, t2);
	assert_int_equal(back.n_nodes, 5);
	assert_int_equal(back.nodes[4].type, NODE_WITNESS);
	assert_int_equal(back.nodes[4].agent, STATE_DOWN);
	assert_string_equal(back.nodes[3].xloginfo, "Connection refused.");
	free(t1);
	free(t2);
	cJSON_Delete(j1);
	cJSON_Delete(j2);
	status_free(&back);
	status_free(&m);
}

static void test_from_json_garbage(void **state)
{
	const char *bad[] = {
	    "[]",
	    "42",
	    "{}",
	    "{\"nodes\": []}",
	    "{\"nodes\": {\"a\": 1}}",
	    "{\"nodes\": {\"a\": {\"type\": \"Boss\", \"agent\": \"UP\", \"db\": \"UP\"}}}",
	    "{\"nodes\": {\"a\": {\"type\": \"Master\", \"agent\": \"MAYBE\", \"db\": \"UP\"}}}",
	    "{\"nodes\": {\"a\": {\"type\": \"Master\", \"agent\": \"UP\", \"db\": 1}}}",
	    "{\"nodes\": {\"a\": {\"type\": \"Master\", \"agent\": \"UP\", \"db\": \"UP\", "
	    "\"info\": 5}}}",
	    "{\"nodes\": {}, \"allowednodes\": \"x\"}",
	    "{\"nodes\": {}, \"messages\": [1]}",
	    "{\"nodes\": {\"a\": {\"type\": \"Master\", \"agent\": \"UP\", \"db\": \"UP\"}}, "
	    "\"failoverpriority\": [null]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct status_model m = {0};
		cJSON *j = cJSON_Parse(bad[i]);
		assert_non_null(j);
		assert_false(status_from_json(j, &m));
		assert_int_equal(m.n_nodes, 0);
		assert_null(m.nodes);
		cJSON_Delete(j);
	}
	struct status_model m = {0};
	assert_false(status_from_json(NULL, &m));

	/* The minimal valid object: missing optional parts read as empty. */
	cJSON *j = cJSON_Parse("{\"nodes\": {\"a\": {\"type\": \"Idle\", \"agent\": \"UP\", "
	                       "\"db\": \"DOWN\"}}}");
	assert_true(status_from_json(j, &m));
	assert_int_equal(m.n_nodes, 1);
	assert_int_equal(m.nodes[0].db, STATE_DOWN);
	assert_string_equal(m.nodes[0].xlog, "");
	cJSON_Delete(j);
	status_free(&m);
}

static void test_text_master_only(void **state)
{
	struct status_model m = {0};
	snprintf(m.cluster, sizeof(m.cluster), "solo");
	add_node(&m, "127.0.0.1", NODE_MASTER, STATE_UP, STATE_UP, "0/3000060");
	status_add_allowed(&m, "127.0.0.1");
	char *t = render(&m);
	assert_non_null(strstr(t, "Cluster Status: solo\n"));
	assert_non_null(strstr(t, "Agent Type  Address    Agent  DB  Info\n"));
	assert_non_null(strstr(t, "Master      127.0.0.1  UP     UP\n"));
	assert_non_null(strstr(t, "Allowed node host list:\n\t127.0.0.1\n"));
	assert_non_null(strstr(t, "Standby priority host list:\n\t(List is empty.)\n"));
	assert_non_null(strstr(t, "Promote Status:\n"));
	assert_non_null(strstr(t, "Master   127.0.0.1  0/3000060\n"));
	assert_non_null(strstr(t, "No standby database"));
	assert_null(strstr(t, "safe to promote"));
	assert_non_null(strstr(t, "(No idle nodes.)"));
	assert_null(strstr(t, "Messages:"));
	free(t);
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);
}

static void test_text_healthy3(void **state)
{
	struct status_model m = {0};
	healthy3(&m);
	add_node(&m, "10.0.1.152", NODE_IDLE, STATE_UP, STATE_UNKNOWN, "2/35000160");
	snprintf(m.nodes[3].xloginfo, sizeof(m.nodes[3].xloginfo), "DB is not in recovery.");
	status_add_message(&m, "standby 10.0.1.14 joined");
	char *t = render(&m);
	assert_non_null(strstr(t, "Cluster Status: acctg\n"));
	assert_non_null(strstr(t, "Agent Type  Address     Agent  DB       Info\n"));
	assert_non_null(strstr(t, "Standby     10.0.1.13   UP     UP\n"));
	assert_non_null(strstr(t, "Idle        10.0.1.152  UP     UNKNOWN\n"));
	assert_non_null(strstr(t, "\t10.0.1.8 10.0.1.13 10.0.1.14\n"));
	assert_non_null(strstr(t, "Standby priority host list:\n\t10.0.1.14 10.0.1.13\n"));
	assert_non_null(strstr(t, "DB Type  Address    XLog Loc    Info\n"));
	/* The master comes first in Promote Status, idle nodes are not in it. */
	const char *pm = strstr(t, "Master   10.0.1.8   2/35000230\n");
	const char *ps = strstr(t, "Standby  10.0.1.13  2/35000230\n");
	assert_non_null(pm);
	assert_non_null(ps);
	assert_true(pm < ps);
	assert_non_null(
	    strstr(t, "Standby database(s) in sync with master. It is safe to promote.\n"));
	const char *idle = strstr(t, "Idle Node Status (idle nodes ignored in XLog location "
	                             "comparisons):\n");
	assert_non_null(idle);
	assert_non_null(strstr(idle, "Address     XLog Loc    Info\n"));
	assert_non_null(strstr(idle, "10.0.1.152  2/35000160  DB is not in recovery.\n"));
	assert_non_null(strstr(t, "Messages:\n\tstandby 10.0.1.14 joined\n"));
	free(t);
	status_free(&m);
}

static void test_text_not_in_sync(void **state)
{
	struct status_model m = {0};
	healthy3(&m);
	snprintf(m.nodes[2].xlog, sizeof(m.nodes[2].xlog), "2/35000000");
	char *t = render(&m);
	assert_non_null(
	    strstr(t, "One or more standby databases are not in sync with the master database."));
	assert_null(strstr(t, "safe to promote"));
	free(t);
	status_free(&m);

	healthy3(&m);
	m.nodes[1].xlog[0] = '\0';
	t = render(&m);
	assert_non_null(strstr(t, "Standby  10.0.1.13  UNKNOWN"));
	assert_non_null(strstr(t, "is unknown"));
	free(t);
	status_free(&m);
}

static void test_exit_codes(void **state)
{
	struct status_model m = {0};

	healthy3(&m);
	assert_int_equal(status_exit_code(&m), 0);
	status_free(&m);

	/* A witness with its agent up does not spoil a healthy cluster. */
	healthy3(&m);
	add_node(&m, "10.0.1.9", NODE_WITNESS, STATE_UP, STATE_UNKNOWN, "");
	assert_int_equal(status_exit_code(&m), 0);
	status_free(&m);

	/* Same position written differently (leading zeros, case) is in sync. */
	healthy3(&m);
	snprintf(m.nodes[0].xlog, sizeof(m.nodes[0].xlog), "2/3500023a");
	snprintf(m.nodes[1].xlog, sizeof(m.nodes[1].xlog), "02/3500023A");
	snprintf(m.nodes[2].xlog, sizeof(m.nodes[2].xlog), "2/3500023A");
	assert_int_equal(status_exit_code(&m), 0);
	status_free(&m);

	/* No master. */
	healthy3(&m);
	m.nodes[0].type = NODE_IDLE;
	m.nodes[0].agent = STATE_UP;
	assert_int_equal(status_exit_code(&m), 1);
	m.nodes[0].type = NODE_STANDBY;
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* No standby. */
	healthy3(&m);
	m.nodes[1].type = NODE_WITNESS;
	m.nodes[2].type = NODE_WITNESS;
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* A database down (master or standby), or unknown. */
	healthy3(&m);
	m.nodes[0].db = STATE_DOWN;
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);
	healthy3(&m);
	m.nodes[2].db = STATE_UNKNOWN;
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* An agent down, on any kind of node. */
	healthy3(&m);
	m.nodes[1].agent = STATE_DOWN;
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);
	healthy3(&m);
	add_node(&m, "10.0.1.9", NODE_WITNESS, STATE_DOWN, STATE_UNKNOWN, "");
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* An idle agent (the guide counts it as a database problem). */
	healthy3(&m);
	add_node(&m, "10.0.1.20", NODE_IDLE, STATE_UP, STATE_UP, "2/35000230");
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* A standby not in sync. */
	healthy3(&m);
	snprintf(m.nodes[2].xlog, sizeof(m.nodes[2].xlog), "2/3500022F");
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* Unknown or unparsable xlog locations, on master or standby. */
	const char *bad[] = {"", "UNKNOWN", "2/", "/5", "2-35", "2/35000230x", "123456789/0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		healthy3(&m);
		snprintf(m.nodes[1].xlog, sizeof(m.nodes[1].xlog), "%s", bad[i]);
		assert_int_equal(status_exit_code(&m), 1);
		status_free(&m);
		healthy3(&m);
		snprintf(m.nodes[0].xlog, sizeof(m.nodes[0].xlog), "%s", bad[i]);
		assert_int_equal(status_exit_code(&m), 1);
		status_free(&m);
	}

	/* Two masters is never healthy. */
	healthy3(&m);
	m.nodes[2].type = NODE_MASTER;
	assert_int_equal(status_exit_code(&m), 1);
	status_free(&m);

	/* An empty model. */
	assert_int_equal(status_exit_code(&m), 1);
}

static void test_names(void **state)
{
	assert_string_equal(status_node_type_name(NODE_MASTER), "Master");
	assert_string_equal(status_node_type_name(NODE_STANDBY), "Standby");
	assert_string_equal(status_node_type_name(NODE_WITNESS), "Witness");
	assert_string_equal(status_node_type_name(NODE_IDLE), "Idle");
	assert_string_equal(status_up_state_name(STATE_UP), "UP");
	assert_string_equal(status_up_state_name(STATE_DOWN), "DOWN");
	assert_string_equal(status_up_state_name(STATE_UNKNOWN), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_keys_and_order), cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_from_json_garbage),   cmocka_unit_test(test_text_master_only),
	    cmocka_unit_test(test_text_healthy3),       cmocka_unit_test(test_text_not_in_sync),
	    cmocka_unit_test(test_exit_codes),          cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
