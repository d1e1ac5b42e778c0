/*
 * cluster_api.c - what the failover layer reads and does through the
 * cluster layer (cluster.h): the applied state, liveness, the lease, and
 * proposals and calls on its behalf.
 */
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

void cluster_set_ext(struct cluster *c, const struct cluster_ext *ext)
{
	c->ext = *ext;
}

const struct cluster_state *cluster_state(const struct cluster *c)
{
	return &c->rio.st;
}

uint64_t cluster_self_id(const struct cluster *c)
{
	return c->id;
}

const char *cluster_self_address(const struct cluster *c)
{
	return c->address;
}

uint64_t cluster_node_timeout_ms(const struct cluster *c)
{
	return c->node_timeout_ms;
}

uint64_t cluster_tick_ms(const struct cluster *c)
{
	return c->tick_ms;
}

uint64_t cluster_clock(const struct cluster *c)
{
	return cluster_now(c);
}

bool cluster_is_leader(struct cluster *c)
{
	return c->started && !cluster_closing(c) && raftio_is_leader(&c->rio);
}

uint64_t cluster_term(struct cluster *c)
{
	return c->started ? (uint64_t)c->rio.r.current_term : 0;
}

size_t cluster_voter_count(struct cluster *c)
{
	return c->started ? raftio_voters(&c->rio, NULL, 0) : 0;
}

bool cluster_member_alive(struct cluster *c, uint64_t id)
{
	return id == c->id || members_alive(&c->mem, id, cluster_now(c));
}

uint64_t cluster_member_silent_ms(struct cluster *c, uint64_t id)
{
	return id == c->id ? 0 : members_silent_ms(&c->mem, id, cluster_now(c));
}

bool cluster_member_report(struct cluster *c, uint64_t id, struct members_report *out)
{
	memset(out, 0, sizeof(*out));
	if (id == c->id)
		return c->h.local != NULL && c->h.local(c->h.arg, out);
	const struct members_entry *e = members_get(&c->mem, id);
	if (e == NULL || !e->reported || !members_alive(&c->mem, id, cluster_now(c)))
		return false;
	*out = e->report;
	return true;
}

uint64_t cluster_lease_ms(const struct cluster *c)
{
	return c->lease_ms;
}

const char *cluster_leader_decision(const struct cluster *c)
{
	return c->leader_decision;
}

const char *cluster_leader(struct cluster *c)
{
	const char *a = c->started ? cluster_leader_address(c) : NULL;
	return a != NULL ? a : "";
}

const char *cluster_db_password(const struct cluster *c)
{
	return c->password;
}

int cluster_propose(struct cluster *c, const struct clusterfsm_cmd *cmd, raftio_propose_cb cb,
                    void *arg)
{
	if (!c->started || cluster_closing(c) || c->phase == CLUSTER_REOPENING)
		return RAFT_NOTLEADER;
	return raftio_propose(&c->rio, cmd, cb, arg);
}

int cluster_call(struct cluster *c, const char *address, cJSON *req, uint64_t timeout_ms,
                 rpc_call_cb cb, void *arg)
{
	if (c->rpc == NULL || cluster_closing(c)) {
		cJSON_Delete(req);
		return -ECANCELED;
	}
	return rpc_call(c->rpc, address, req, timeout_ms, cb, arg);
}

void cluster_notify(struct cluster *c, enum notify_event ev, const char *node)
{
	if (c->h.event != NULL)
		c->h.event(c->h.arg, ev, node);
}

/* state_digest fills hex (65 bytes) with the SHA-256 of the encoded applied state; false if none.
 */
static bool state_digest(const struct cluster_state *st, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	void *buf = malloc(CLUSTERFSM_SNAPSHOT_MAX);
	if (buf == NULL)
		return false;
	ssize_t n = clusterfsm_snapshot_encode(st, buf, CLUSTERFSM_SNAPSHOT_MAX);
	bool ok = n > 0 && EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1;
	free(buf);
	for (unsigned i = 0; ok && i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return ok;
}

cJSON *cluster_log_json(struct cluster *c)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	bool up =
	    c->started && c->rio.r_ready && !cluster_closing(c) && c->phase != CLUSTER_REOPENING;
	char digest[65] = "";
	cJSON_AddBoolToObject(o, "configured", up && raftio_configured(&c->rio));
	cJSON_AddBoolToObject(o, "voter", up && raftio_voter(&c->rio, c->id));
	cJSON_AddNumberToObject(o, "voters", up ? (double)raftio_voters(&c->rio, NULL, 0) : 0);
	cJSON_AddNumberToObject(o, "term", up ? (double)c->rio.r.current_term : 0);
	cJSON_AddNumberToObject(o, "last_index", up ? (double)raftio_last_index(&c->rio) : 0);
	cJSON_AddNumberToObject(o, "last_term", up ? (double)raftio_last_term(&c->rio) : 0);
	cJSON_AddNumberToObject(o, "commit_index", up ? (double)raft_commit_index(&c->rio.r) : 0);
	cJSON_AddNumberToObject(o, "applied_index", up ? (double)raft_last_applied(&c->rio.r) : 0);
	if (up)
		(void)state_digest(&c->rio.st, digest);
	cJSON_AddStringToObject(o, "state_digest", digest);
	return o;
}
