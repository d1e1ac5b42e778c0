/*
 * failover.c - the engine's life cycle and its hooks into the cluster layer
 * (failover.h).
 */
#include "failover.h"

#include "coord_int.h"

#include <string.h>

static void on_tick(void *arg)
{
	struct failover *fo = arg;
	if (fo->closed)
		return;
	fo_node_tick(fo);
	fo_coord_tick(fo);
}

static void on_request(void *arg, struct rpc_conn *conn, uint64_t peer_id, const char *peer_addr,
                       const cJSON *msg)
{
	(void)peer_id;
	fo_node_request(arg, conn, peer_addr, msg);
}

static void on_status(void *arg, struct status_model *m)
{
	fo_coord_status(arg, m);
}

static const char *on_decision(void *arg)
{
	return fo_decision(arg);
}

static void on_kick(uv_timer_t *t)
{
	struct failover *fo = t->data;
	if (!fo->closed)
		fo_coord_tick(fo);
}

void fo_kick(struct failover *fo)
{
	if (fo->kick_open && !fo->closed)
		uv_timer_start(&fo->kick, on_kick, 0, 0);
}

uint64_t failover_isolation_ms(uint64_t node_timeout_ms)
{
	return node_timeout_ms / 2;
}

void failover_init(struct failover *fo, uv_loop_t *loop, const struct efm_config *cfg,
                   const char *password, struct cluster *cl, const struct failover_hooks *h)
{
	memset(fo, 0, sizeof(*fo));
	fo->loop = loop;
	fo->cfg = cfg;
	fo->password = password;
	fo->cl = cl;
	fo->h = *h;
	fo->state = FO_WATCHING;
	fo->kick_open = uv_timer_init(loop, &fo->kick) == 0;
	fo->kick.data = fo;
	struct cluster_ext ext = {.arg = fo,
	                          .tick = on_tick,
	                          .request = on_request,
	                          .status = on_status,
	                          .decision = on_decision};
	cluster_set_ext(cl, &ext);
}

void failover_close(struct failover *fo)
{
	fo_manual_drop(fo, "the agent is stopping");
	fo->closed = true;
	fo->gen++;
	if (fo->kick_open) {
		uv_close((uv_handle_t *)&fo->kick, NULL);
		fo->kick_open = false;
	}
}

bool failover_expects_master(const struct failover *fo)
{
	return fo->expect_master;
}
