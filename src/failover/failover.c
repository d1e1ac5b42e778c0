/*
 * failover.c - the engine's life cycle and its hooks into the cluster layer
 * (failover.h).
 */
#include "failover.h"

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
	struct cluster_ext ext = {
	    .arg = fo, .tick = on_tick, .request = on_request, .status = on_status};
	cluster_set_ext(cl, &ext);
}

void failover_close(struct failover *fo)
{
	fo->closed = true;
	fo->gen++;
}

bool failover_expects_master(const struct failover *fo)
{
	return fo->expect_master;
}
