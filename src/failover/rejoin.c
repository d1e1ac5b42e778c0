/*
 * rejoin.c - efm rejoin: an old master (fenced or failed over, its agent
 * Idle) comes back as a standby of the cluster's master, on this node:
 *   1. the local database is checked: running as a master, it is refused
 *      (stop it first); running as a standby, step 3 is skipped;
 *   2. the master's agent gives its primary_conninfo (fo-conninfo: the
 *      replication user and settings its standbys use);
 *   3. pg_rewind against the master brings a stopped database onto the
 *      master's timeline ("no rewind required" when it has not diverged);
 *   4. the database starts as a standby of the master (node_switch.c's
 *      fo-rejoin: standby.signal, primary_conninfo, wait until it streams)
 *      and the agent watches it again as a Standby.
 * The answer lists the steps taken.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "coord_int.h"
#include "dbmon.h"
#include "fo_local.h"
#include "log.h"

struct rejoin {
	struct failover *fo;
	struct admin_request *req;
	char master[CLUSTERFSM_ADDR_MAX];
	char host[CLUSTERFSM_HOST_MAX]; /* the master's database host */
	bool running;                   /* the local database runs as a standby */
	char *conninfo;                 /* the master's primary_conninfo */
	char steps[2048];
};

static void done(struct rejoin *r, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void done(struct rejoin *r, bool ok, const char *fmt, ...)
{
	char last[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last, sizeof(last), fmt, ap);
	va_end(ap);
	if (ok) {
		log_warning("failover: efm rejoin: %s", last);
		cJSON *reply = cJSON_CreateObject();
		char text[sizeof(r->steps) + sizeof(last) + 8];
		snprintf(text, sizeof(text), "%s%s", r->steps, last);
		cJSON_AddBoolToObject(reply, "ok", true);
		cJSON_AddStringToObject(reply, "message", text);
		admin_reply(r->req, reply);
	} else {
		log_severe("failover: efm rejoin failed: %s", last);
		admin_reply_error(r->req, "%s%s", r->steps, last);
	}
	free(r->conninfo);
	free(r);
}

/* step records one step done, for the answer. */
static void step(struct rejoin *r, const char *what)
{
	size_t n = strlen(r->steps);
	snprintf(r->steps + n, sizeof(r->steps) - n, "%s\n", what);
	log_info("failover: efm rejoin: %s", what);
}

static void on_rejoined(void *arg, int status, const cJSON *reply)
{
	struct rejoin *r = arg;
	if (fo_answer_ok(status, reply))
		done(r, true, "the local database is a standby of %s and is watched again: %s",
		     r->host, fo_answer_detail(status, reply));
	else
		done(r, false, "starting the local database as a standby of %s failed: %s", r->host,
		     fo_answer_detail(status, reply));
}

static void follow(struct rejoin *r)
{
	struct failover *fo = r->fo;
	cJSON *msg = rpc_msg("fo-rejoin");
	if (msg == NULL) {
		done(r, false, "out of memory");
		return;
	}
	cJSON_AddStringToObject(msg, "host", r->host);
	cJSON_AddNumberToObject(msg, "port", fo->cfg->db_port);
	cJSON_AddStringToObject(msg, "conninfo", r->conninfo != NULL ? r->conninfo : "");
	fo_switch_request(fo, msg, NULL, on_rejoined, r);
	cJSON_Delete(msg);
}

static void on_rewound(void *arg, bool ok, const char *detail)
{
	struct rejoin *r = arg;
	if (!ok) {
		done(r, false, "%s", detail);
		return;
	}
	step(r, detail);
	follow(r);
}

static void on_conninfo(void *arg, int status, const cJSON *reply)
{
	struct rejoin *r = arg;
	struct failover *fo = r->fo;
	const cJSON *ci = cJSON_GetObjectItemCaseSensitive(reply, "conninfo");
	if (!fo_answer_ok(status, reply) || !cJSON_IsString(ci)) {
		done(r, false, "the master %s did not give its primary_conninfo: %s", r->master,
		     fo_answer_detail(status, reply));
		return;
	}
	r->conninfo = strdup(ci->valuestring);
	if (r->conninfo == NULL) {
		done(r, false, "out of memory");
		return;
	}
	step(r, "the master's replication settings (primary_conninfo) received");
	if (r->running) {
		follow(r);
		return;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "checkpointed"))) {
		done(r, false,
		     "the master %s could not make a checkpoint (%s): pg_rewind would misjudge its "
		     "timeline; grant pg_checkpoint to the database user, or run CHECKPOINT on the "
		     "master, then run efm rejoin again",
		     r->master, fo_answer_detail(status, reply));
		return;
	}
	char source[4096], password[256], why[256];
	if (!fo_conninfo_source(r->conninfo, r->host, fo->cfg->db_port, fo->cfg->db_database,
	                        source, sizeof(source), password, sizeof(password), why,
	                        sizeof(why))) {
		done(r, false, "%s", why);
		return;
	}
	if (fo_rewind_db(fo->loop, fo->cfg, source, password, fo_step_timeout(fo) + 240000,
	                 on_rewound, r) == NULL)
		done(r, false, "out of memory");
}

static void on_local(void *arg, const struct db_probe_result *res)
{
	struct rejoin *r = arg;
	struct failover *fo = r->fo;
	if (res->ok && res->sample.role == DB_ROLE_MASTER) {
		done(
		    r, false,
		    "the local database runs as a master beside %s: stop it (pg_ctl stop -m fast), "
		    "then run efm rejoin again, which rewinds it",
		    r->master);
		return;
	}
	r->running = res->ok;
	step(r, res->ok ? "the local database runs as a standby: no rewind"
	                : "the local database is stopped: it is rewound first");
	cJSON *msg = rpc_msg("fo-conninfo");
	if (msg == NULL ||
	    cluster_call(fo->cl, r->master, msg, fo_step_timeout(fo), on_conninfo, r) != 0)
		done(r, false, "cannot reach the master's agent %s", r->master);
}

void failover_rejoin_command(struct failover *fo, struct admin_request *req)
{
	enum node_type role = fo->h.role(fo->h.arg);
	if (fo->cfg->is_witness) {
		admin_reply_error(req, "nothing to rejoin: a witness has no database");
		return;
	}
	if (role != NODE_IDLE) {
		admin_reply_error(req, "nothing to rejoin: this agent is a %s",
		                  status_node_type_name(role));
		return;
	}
	if (!cluster_in_majority(fo->cl)) {
		admin_reply_error(req, "this agent is not in the cluster's majority, so it cannot "
		                       "tell who the master is; try again once it is");
		return;
	}
	/* the replicated master record: the member's own role may lag behind it */
	const char *recorded = cluster_state(fo->cl)->master;
	if (recorded[0] == '\0' || strcmp(recorded, cluster_self_address(fo->cl)) == 0) {
		admin_reply_error(req, "no other member is recorded as the master, so there is "
		                       "none to follow (if this database is the master, use efm "
		                       "resume)");
		return;
	}
	struct rejoin *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		admin_reply_error(req, "out of memory");
		return;
	}
	r->fo = fo;
	r->req = req;
	snprintf(r->master, sizeof(r->master), "%s", recorded);
	fo_host_of(r->master, r->host, sizeof(r->host));
	log_warning("failover: efm rejoin from uid %ld: following the master %s", (long)req->uid,
	            r->master);
	if (db_probe(fo->loop, fo->cfg, fo->password, fo->cfg->db_host, fo->cfg->db_port,
	             fo_remote_ms(fo), on_local, r) != 0)
		done(r, false, "cannot check the local database");
}
