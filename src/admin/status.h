/*
 * status.h - the cluster status model and its two renderings: the JSON of
 * `efm cluster-status-json` (the guide's keys) and the text report of
 * `efm cluster-status`, plus the guide's exit-code rules.
 *
 * The agent builds the model and sends it as JSON over the admin socket; the
 * client parses it back and renders text, so both views come from one source.
 */
#ifndef EFM_STATUS_H
#define EFM_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cJSON.h>

#include "config.h"

enum node_type { NODE_MASTER, NODE_STANDBY, NODE_WITNESS, NODE_IDLE };
enum up_state { STATE_UP, STATE_DOWN, STATE_UNKNOWN };

struct status_node {
	char address[EFM_HOST_MAX];
	enum node_type type;
	enum up_state agent;
	enum up_state db;
	char info[256];     /* agent-reported remark, "" if none */
	char xlog[32];      /* queried directly for Promote Status; "" unknown */
	char xloginfo[512]; /* why xlog is unknown, or "DB is not in recovery." etc. */
};

/* The failover part: the replicated promotion lock and the coordinator's latest decision. */
struct status_failover {
	bool present;
	char phase[24];      /* NONE, FENCING, PROMOTING, VIP, RECONFIGURING, DONE, ABORTED */
	char candidate[264]; /* the last promotion's candidate, "" none */
	unsigned long long serial;
	char master[264];   /* the replicated master record, "" none */
	char decision[512]; /* one line */
};

struct status_model {
	char cluster[128];
	struct status_failover failover;
	struct status_node *nodes;
	size_t n_nodes;
	char **allowed; /* allowed node host list */
	size_t n_allowed;
	char **priority; /* standby priority host list */
	size_t n_priority;
	char **messages; /* recent notifications and warnings, newest last */
	size_t n_messages;
};

const char *status_node_type_name(enum node_type t); /* "Master", "Standby", ... */
const char *status_up_state_name(enum up_state s);   /* "UP", "DOWN", "UNKNOWN" */

/* The model owns every string and array; these manage it. */
struct status_node *status_add_node(struct status_model *m);
void status_add_allowed(struct status_model *m, const char *addr);
void status_add_priority(struct status_model *m, const char *addr);
void status_add_message(struct status_model *m, const char *msg);
void status_free(struct status_model *m);

/* status_to_json renders the guide's JSON object (caller frees with cJSON_Delete). */
cJSON *status_to_json(const struct status_model *m);
/* status_from_json fills m (zeroed by the caller); false if j is not a status object. */
bool status_from_json(const cJSON *j, struct status_model *m);

/*
 * status_render_text writes the guide's text report: Cluster Status table,
 * allowed list, standby priority list, Promote Status with the in-sync
 * verdict, Idle Node Status.
 */
void status_render_text(FILE *out, const struct status_model *m);

/*
 * status_exit_code: 0 only when every agent is up, there is a master and at
 * least one standby, their databases are up with known XLog locations, and
 * every standby is in sync with the master; 1 otherwise (the guide's list).
 * An idle agent also gives 1: the guide counts it as a database problem.
 */
int status_exit_code(const struct status_model *m);

#endif
