/*
 * cluster_util.c - what every part of the cluster layer uses: the phase,
 * the clock, the leader's address, the .nodes file's text, and the shape of
 * replies.
 */
#include "cluster_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const phase_names[] = {
    [CLUSTER_RUNNING] = "running",
    [CLUSTER_SEEDING] = "seeding",
    [CLUSTER_RESETTING] = "coordinating a reset",
    [CLUSTER_RESET_PREPARED] = "reset prepared",
    [CLUSTER_RESET_ARMED] = "reset armed",
    [CLUSTER_REOPENING] = "reopening",
    [CLUSTER_CLOSING] = "closing",
    [CLUSTER_LEFT] = "left",
};

#define N_PHASES (sizeof(phase_names) / sizeof(phase_names[0]))

/* The moves cluster_set_phase allows: [from][to]. */
static const bool phase_moves[N_PHASES][N_PHASES] = {
    [CLUSTER_RUNNING] = {[CLUSTER_SEEDING] = true,
                         [CLUSTER_RESETTING] = true,
                         [CLUSTER_RESET_PREPARED] = true,
                         [CLUSTER_CLOSING] = true},
    [CLUSTER_SEEDING] = {[CLUSTER_RUNNING] = true, [CLUSTER_CLOSING] = true},
    /* The coordinator arms its own restart once every participant committed. */
    [CLUSTER_RESETTING] =
        {[CLUSTER_RUNNING] = true, [CLUSTER_RESET_ARMED] = true, [CLUSTER_CLOSING] = true},
    [CLUSTER_RESET_PREPARED] =
        {[CLUSTER_RUNNING] = true, [CLUSTER_RESET_ARMED] = true, [CLUSTER_CLOSING] = true},
    [CLUSTER_RESET_ARMED] =
        {[CLUSTER_RUNNING] = true, [CLUSTER_REOPENING] = true, [CLUSTER_CLOSING] = true},
    /* Closing while reopening: the restart's close callback finishes the shutdown. */
    [CLUSTER_REOPENING] = {[CLUSTER_RUNNING] = true, [CLUSTER_CLOSING] = true},
    [CLUSTER_CLOSING] = {[CLUSTER_LEFT] = true},
};

const char *cluster_phase_name(enum cluster_phase p)
{
	return (unsigned)p < N_PHASES ? phase_names[p] : "?";
}

bool cluster_set_phase(struct cluster *c, enum cluster_phase to)
{
	if (c->phase == to)
		return true;
	if ((unsigned)to >= N_PHASES || !phase_moves[c->phase][to]) {
		log_severe("cluster %s: impossible phase change %s -> %s, refused", c->name,
		           cluster_phase_name(c->phase), cluster_phase_name(to));
		return false;
	}
	log_info("cluster %s: phase %s -> %s", c->name, cluster_phase_name(c->phase),
	         cluster_phase_name(to));
	c->phase = to;
	return true;
}

bool cluster_closing(const struct cluster *c)
{
	return c->phase >= CLUSTER_CLOSING;
}

bool cluster_in_reset(const struct cluster *c)
{
	return c->phase == CLUSTER_RESETTING || c->phase == CLUSTER_RESET_PREPARED ||
	       c->phase == CLUSTER_RESET_ARMED;
}

uint64_t cluster_now(const struct cluster *c)
{
	return uv_now(c->loop);
}

const char *cluster_leader_address(struct cluster *c)
{
	const char *addr = NULL;
	if (!c->started || raftio_leader(&c->rio, &addr) == 0 || addr == NULL || addr[0] == '\0')
		return NULL;
	return addr;
}

void cluster_sync_nodes(struct cluster *c, bool force)
{
	if (!c->nodes_dirty || !c->rio_open)
		return;
	/*
	 * While Raft still applies entries it knows committed (a restart
	 * replaying its log), the state is on its way: wait for the end.
	 */
	if (!force && c->rio.r_ready && c->rio.r.last_applied < c->rio.r.commit_index)
		return;
	c->nodes_dirty = false;
	if (c->rio.st.n_members == 0)
		return;
	char *text = malloc(CLUSTERFSM_MAX_NODES * CLUSTERFSM_ADDR_MAX + 2);
	if (text == NULL)
		return;
	int n =
	    clusterfsm_nodes_text(&c->rio.st, text, CLUSTERFSM_MAX_NODES * CLUSTERFSM_ADDR_MAX + 2);
	if (n >= 0)
		nodesfile_set(&c->nodes, text);
	free(text);
}

cJSON *cluster_self_msg(struct cluster *c, const char *type, const struct members_report *rep)
{
	char id[32];
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)c->id);
	cJSON *m = rpc_msg(type);
	if (m == NULL)
		return NULL;
	cJSON_AddStringToObject(m, "id", id);
	cJSON_AddStringToObject(m, "address", c->address);
	cJSON_AddNumberToObject(m, "role", rep->role);
	cJSON_AddNumberToObject(m, "db", rep->db);
	return m;
}

/* reply_v builds {"ok": ok, key: formatted text}, the shape of every command reply. */
static cJSON *reply_v(bool ok, const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static cJSON *reply_v(bool ok, const char *key, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", ok);
	cJSON_AddStringToObject(r, key, msg);
	return r;
}

cJSON *cluster_error_reply(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *r = reply_v(false, "error", fmt, ap);
	va_end(ap);
	return r;
}

cJSON *cluster_retry_reply(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *r = reply_v(false, "error", fmt, ap);
	va_end(ap);
	cJSON_AddBoolToObject(r, "retry", true);
	cJSON_AddBoolToObject(r, "cluster", true);
	return r;
}

cJSON *cluster_ok_message(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *r = reply_v(true, "message", fmt, ap);
	va_end(ap);
	return r;
}

cJSON *cluster_ok_reply(void)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddBoolToObject(r, "cluster", true);
	return r;
}
