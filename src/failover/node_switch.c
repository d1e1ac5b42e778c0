/*
 * node_switch.c - a switchover's requests on this node (the rest of the
 * node side is node.c).  Each is idempotent, like every coordinator request:
 *   fo-stop      {}                        release the VIP, stop the local master
 *                                          cleanly; answers its final position
 *                                          {"lsn"}; the agent goes Idle
 *   fo-conninfo  {}                        answers the local primary_conninfo
 *                                          {"conninfo"} (the new master's, kept
 *                                          from its standby days)
 *   fo-rejoin    {host, port, conninfo}    start the local database as a standby
 *                                          of host:port (conninfo gives the other
 *                                          fields when it has none), wait until
 *                                          it streams; the agent watches it again
 *   fo-restart   {}                        start the local database as it was (a
 *                                          switchover that failed before its
 *                                          promotion); the agent watches it again
 * Each answers {"ok": bool, "detail": text, ...}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "dbmon.h"
#include "fo_local.h"
#include "log.h"

enum sw_kind { SW_STOP, SW_CONNINFO, SW_REJOIN, SW_RESTART };

struct sw_job {
	struct failover *fo;
	enum sw_kind kind;
	int step;
	struct rpc_conn *conn; /* a peer's request, or */
	rpc_call_cb reply;     /* our own coordinator's */
	void *reply_arg;
	char host[CLUSTERFSM_HOST_MAX];
	int port;
	char *conninfo; /* fo-rejoin's template, or fo-conninfo's answer */
	char lsn[32];   /* fo-stop's answer */
	char detail[FO_DETAIL_MAX];
	struct fo_action *act;
};

static void sw_finish(struct sw_job *j, bool ok)
{
	cJSON *ans = cJSON_CreateObject();
	cJSON_AddBoolToObject(ans, "ok", ok);
	cJSON_AddStringToObject(ans, "detail", j->detail);
	if (j->kind == SW_STOP && ok)
		cJSON_AddStringToObject(ans, "lsn", j->lsn);
	if (j->kind == SW_CONNINFO && ok) {
		cJSON_AddStringToObject(ans, "conninfo", j->conninfo != NULL ? j->conninfo : "");
		cJSON_AddBoolToObject(ans, "checkpointed",
		                      strstr(j->detail, FO_CHECKPOINT_DONE) != NULL);
	}
	if (j->conn != NULL) {
		rpc_reply_release(j->conn, ans);
	} else {
		j->reply(j->reply_arg, 0, ans);
		cJSON_Delete(ans);
	}
	free(j->conninfo);
	free(j);
}

static uint64_t sw_ms(const struct failover *fo)
{
	return fo_remote_ms(fo) + 60000;
}

static void sw_step(void *arg, bool ok, const char *detail);

static void sw_start(struct sw_job *j, struct fo_action *a)
{
	j->act = a;
	if (a == NULL)
		sw_step(j, false, "out of memory");
}

/* on_local_probe: the database started; the agent watches it again in the role it has. */
static void on_local_probe(void *arg, const struct db_probe_result *r)
{
	struct sw_job *j = arg;
	struct failover *fo = j->fo;
	bool want_master = j->kind == SW_RESTART;
	if (!r->ok) {
		snprintf(j->detail, sizeof(j->detail),
		         "the database started but does not answer: %s", r->error);
		sw_finish(j, false);
		return;
	}
	if ((r->sample.role == DB_ROLE_MASTER) != want_master) {
		snprintf(j->detail, sizeof(j->detail), "the database runs as a %s, not as a %s",
		         r->sample.role == DB_ROLE_MASTER ? "master" : "standby",
		         want_master ? "master" : "standby");
		sw_finish(j, false);
		return;
	}
	fo->fenced = false;
	if (want_master)
		fo->vip_checked = false; /* the node tick takes the VIP back */
	if (fo->h.resume != NULL && !fo->closed)
		fo->h.resume(fo->h.arg, &r->sample,
		             want_master
		                 ? "switchover failed: the database runs as the master again"
		                 : "switchover: the database runs as a standby of the new "
		                   "master");
	sw_finish(j, true);
}

static void probe_local(struct sw_job *j)
{
	struct failover *fo = j->fo;
	if (db_probe(fo->loop, fo->cfg, fo->password, fo->cfg->db_host, fo->cfg->db_port,
	             fo_remote_ms(fo), on_local_probe, j) != 0) {
		snprintf(j->detail, sizeof(j->detail), "cannot check the local database");
		sw_finish(j, false);
	}
}

static void stop_steps(struct sw_job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	switch (j->step++) {
	case 0:
		sw_start(j, fo_vip(fo->loop, fo->cfg, false, sw_ms(fo), sw_step, j));
		return;
	case 1:
		if (!ok) {
			snprintf(j->detail, sizeof(j->detail),
			         "releasing the virtual IP failed: %s", detail);
			sw_finish(j, false);
			return;
		}
		log_warning("failover: switchover: stopping the local master cleanly");
		sw_start(j, fo_stop_db(fo->loop, fo->cfg, sw_ms(fo), sw_step, j));
		return;
	default:
		snprintf(j->detail, sizeof(j->detail), "%s", detail);
		if (ok && !fo_final_lsn(fo_action_output(j->act), j->lsn, sizeof(j->lsn))) {
			snprintf(j->detail, sizeof(j->detail),
			         "pg_controldata gave no latest checkpoint location");
			ok = false;
		}
		if (ok) {
			fo->fenced = true;
			if (fo->h.set_role != NULL)
				fo->h.set_role(
				    fo->h.arg, NODE_IDLE,
				    "switchover: the local database was stopped cleanly for "
				    "the new master");
			log_warning("failover: switchover: local master stopped, final position %s",
			            j->lsn);
		}
		sw_finish(j, ok);
		return;
	}
}

static void conninfo_steps(struct sw_job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	if (j->step++ == 0) {
		sw_start(
		    j, fo_read_conninfo_db(fo->loop, fo->cfg, fo->password, sw_ms(fo), sw_step, j));
		return;
	}
	snprintf(j->detail, sizeof(j->detail), "%s", detail);
	if (ok && (j->conninfo = strdup(fo_action_output(j->act))) == NULL) {
		snprintf(j->detail, sizeof(j->detail), "out of memory");
		ok = false;
	}
	sw_finish(j, ok);
}

static void rejoin_steps(struct sw_job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	switch (j->step++) {
	case 0:
		log_warning("failover: switchover: starting the local database as a standby of "
		            "%s:%d",
		            j->host, j->port);
		sw_start(j, fo_start_db(fo->loop, fo->cfg, true, sw_ms(fo), sw_step, j));
		return;
	case 1:
		if (!ok)
			break;
		sw_start(j, fo_follow_db_from(fo->loop, fo->cfg, fo->password, j->host, j->port,
		                              j->conninfo, sw_ms(fo), sw_step, j));
		return;
	default:
		if (!ok)
			break;
		snprintf(j->detail, sizeof(j->detail), "%s", detail);
		probe_local(j);
		return;
	}
	snprintf(j->detail, sizeof(j->detail), "%s", detail);
	log_severe("failover: switchover: restarting the local database as a standby failed: %s",
	           detail);
	sw_finish(j, false);
}

static void restart_steps(struct sw_job *j, bool ok, const char *detail)
{
	struct failover *fo = j->fo;
	if (j->step++ == 0) {
		log_warning("failover: switchover failed: starting the local master again");
		sw_start(j, fo_start_db(fo->loop, fo->cfg, false, sw_ms(fo), sw_step, j));
		return;
	}
	snprintf(j->detail, sizeof(j->detail), "%s", detail);
	if (!ok) {
		log_severe("failover: starting the local master again failed: %s", detail);
		sw_finish(j, false);
		return;
	}
	probe_local(j);
}

static void sw_step(void *arg, bool ok, const char *detail)
{
	struct sw_job *j = arg;
	switch (j->kind) {
	case SW_STOP:
		stop_steps(j, ok, detail);
		break;
	case SW_CONNINFO:
		conninfo_steps(j, ok, detail);
		break;
	case SW_REJOIN:
		rejoin_steps(j, ok, detail);
		break;
	case SW_RESTART:
		restart_steps(j, ok, detail);
		break;
	}
}

bool fo_switch_request(struct failover *fo, const cJSON *msg, struct rpc_conn *conn,
                       rpc_call_cb reply, void *reply_arg)
{
	static const struct {
		const char *type;
		enum sw_kind kind;
	} kinds[] = {{"fo-stop", SW_STOP},
	             {"fo-conninfo", SW_CONNINFO},
	             {"fo-rejoin", SW_REJOIN},
	             {"fo-restart", SW_RESTART}};
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	size_t i = 0;
	while (cJSON_IsString(type) && i < sizeof(kinds) / sizeof(kinds[0]) &&
	       strcmp(kinds[i].type, type->valuestring) != 0)
		i++;
	if (!cJSON_IsString(type) || i == sizeof(kinds) / sizeof(kinds[0]))
		return false;
	struct sw_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		if (reply != NULL)
			reply(reply_arg, -12, NULL);
		return true;
	}
	j->fo = fo;
	j->kind = kinds[i].kind;
	j->conn = conn;
	if (conn != NULL)
		rpc_conn_ref(conn);
	j->reply = reply;
	j->reply_arg = reply_arg;
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(msg, "host");
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(msg, "port");
	const cJSON *ci = cJSON_GetObjectItemCaseSensitive(msg, "conninfo");
	if (j->kind == SW_REJOIN) {
		if (!cJSON_IsString(host) || strlen(host->valuestring) >= sizeof(j->host) ||
		    !cJSON_IsNumber(port) || port->valueint < 1 || port->valueint > 65535 ||
		    !cJSON_IsString(ci) || (j->conninfo = strdup(ci->valuestring)) == NULL) {
			snprintf(j->detail, sizeof(j->detail), "malformed request \"%s\"",
			         type->valuestring);
			sw_finish(j, false);
			return true;
		}
		snprintf(j->host, sizeof(j->host), "%s", host->valuestring);
		j->port = port->valueint;
	}
	if (fo->closed || fo->cfg->is_witness) {
		snprintf(j->detail, sizeof(j->detail), "%s: cannot run \"%s\"",
		         fo->closed ? "closing" : "a witness has no database", type->valuestring);
		sw_finish(j, false);
		return true;
	}
	log_info("failover: request %s from the coordinator", type->valuestring);
	sw_step(j, true, "");
	return true;
}
