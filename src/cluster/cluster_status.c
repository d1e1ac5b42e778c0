/*
 * cluster_status.c - the cluster-wide status: every member with its agent
 * and database state (liveness and heartbeats), the allowed and priority
 * lists from the replicated state, and the Promote Status columns, which
 * this agent fills by querying every member database directly and in
 * parallel, each bounded by remote.timeout.
 */
#include "cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbmon.h"
#include "log.h"

/* One cluster-status request waiting on its database probes. */
struct status_query {
	struct cluster *c;
	struct admin_request *req;
	struct status_model m;
	int pending;
};

/* One probe of one member database. */
struct status_probe {
	struct status_query *q;
	size_t node; /* index into q->m.nodes */
};

static void reply_status(struct status_query *q)
{
	if (q->c->ext.status != NULL && !cluster_closing(q->c))
		q->c->ext.status(q->c->ext.arg, &q->m);
	cJSON *reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(reply, "ok", true);
	cJSON_AddItemToObject(reply, "status", status_to_json(&q->m));
	admin_reply(q->req, reply);
	status_free(&q->m);
	free(q);
}

void cluster_status_xlog(struct status_node *n, const struct db_probe_result *r)
{
	if (!r->ok) {
		snprintf(n->xlog, sizeof(n->xlog), "UNKNOWN");
		snprintf(n->xloginfo, sizeof(n->xloginfo), "%s", r->error);
		return;
	}
	snprintf(n->xlog, sizeof(n->xlog), "%s", db_sample_lsn(&r->sample));
	if (n->type == NODE_IDLE)
		snprintf(n->xloginfo, sizeof(n->xloginfo), "%s",
		         r->sample.role == DB_ROLE_MASTER ? "DB is not in recovery."
		                                          : "DB is in recovery.");
}

static void on_probe(void *arg, const struct db_probe_result *r)
{
	struct status_probe *p = arg;
	struct status_query *q = p->q;
	cluster_status_xlog(&q->m.nodes[p->node], r);
	free(p);
	if (--q->pending == 0)
		reply_status(q);
}

/* add_member_row describes one member from the replicated state and its heartbeats. */
static void add_member_row(struct cluster *c, struct status_model *m,
                           const struct clusterfsm_member *fm)
{
	struct status_node *n = status_add_node(m);
	if (n == NULL)
		return;
	char host[CLUSTERFSM_HOST_MAX];
	if (!address_split(fm->address, host, sizeof(host), NULL))
		snprintf(host, sizeof(host), "%s", fm->address);
	snprintf(n->address, sizeof(n->address), "%s", host);
	n->type = (enum node_type)fm->role;
	n->db = STATE_UNKNOWN;
	if (fm->id == c->id) {
		n->agent = STATE_UP;
		n->db = (enum up_state)fm->db;
		if (c->h.local_node != NULL)
			c->h.local_node(c->h.arg, m, n);
		return;
	}
	uint64_t now = cluster_now(c);
	const struct members_entry *e = members_get(&c->mem, fm->id);
	bool alive = members_alive(&c->mem, fm->id, now);
	n->agent = alive ? STATE_UP : STATE_DOWN;
	if (alive && e->reported) {
		n->type = (enum node_type)e->report.role;
		n->db = (enum up_state)e->report.db;
		snprintf(n->info, sizeof(n->info), "%s", e->report.info);
	} else if (!alive) {
		snprintf(n->info, sizeof(n->info), "no heartbeat for %llu s",
		         (unsigned long long)(members_silent_ms(&c->mem, fm->id, now) / 1000));
	}
}

/* build fills the model; the xlog columns are left to the probes. */
static void build(struct cluster *c, struct status_model *m)
{
	const struct cluster_state *st = &c->rio.st;
	snprintf(m->cluster, sizeof(m->cluster), "%s", c->name);
	bool joined = c->started && clusterfsm_member_by_id(st, c->id) != NULL;
	if (!joined) {
		struct clusterfsm_member self = {.id = c->id, .db = CLUSTERFSM_UNKNOWN};
		struct members_report rep;
		memset(&rep, 0, sizeof(rep));
		if (c->h.local != NULL && c->h.local(c->h.arg, &rep)) {
			self.role = rep.role;
			self.db = rep.db;
		} else {
			self.role = CLUSTERFSM_IDLE;
		}
		snprintf(self.address, sizeof(self.address), "%s", c->address);
		add_member_row(c, m, &self);
	}
	for (size_t i = 0; i < st->n_members; i++)
		add_member_row(c, m, &st->members[i]);
	for (size_t i = 0; i < st->n_allowed; i++)
		status_add_allowed(m, st->allowed[i]);
	if (st->n_allowed == 0) {
		status_add_allowed(m, c->cfg->bind.host);
		for (size_t i = 0; i < c->cfg->n_nodes; i++)
			if (strcmp(c->cfg->nodes[i].host, c->cfg->bind.host) != 0)
				status_add_allowed(m, c->cfg->nodes[i].host);
	}
	for (size_t i = 0; i < st->n_priority; i++)
		status_add_priority(m, st->priority[i]);
	if (!joined && m->n_nodes > 0 && m->nodes[0].type == NODE_STANDBY)
		status_add_priority(m, c->cfg->bind.host);
	if (!joined)
		status_add_message(m,
		                   "This agent has not joined the cluster yet: it is waiting for "
		                   "the other agents listed in its .nodes file.");
	else if (!c->in_majority)
		status_add_message(
		    m, "This agent is in the minority: it has no contact with a "
		       "cluster leader, so this view may be out of date and it takes no "
		       "part in cluster decisions.");
	uint64_t voters[2];
	if (joined && raftio_voters(&c->rio, voters, 2) == 2)
		status_add_message(
		    m, "Only two agents vote in this cluster: if either fails the other "
		       "cannot act alone, so there is no automatic failover protection. "
		       "Add a standby or a witness.");
}

void cluster_status_command(struct cluster *c, struct admin_request *req)
{
	struct status_query *q = calloc(1, sizeof(*q));
	if (q == NULL) {
		admin_reply_error(req, "out of memory");
		return;
	}
	q->c = c;
	q->req = req;
	build(c, &q->m);
	q->pending = 1; /* held while the probes are started */
	for (size_t i = 0; i < q->m.n_nodes; i++) {
		struct status_node *n = &q->m.nodes[i];
		if (n->type == NODE_WITNESS)
			continue;
		struct status_probe *p = calloc(1, sizeof(*p));
		if (p == NULL)
			continue;
		p->q = q;
		p->node = i;
		q->pending++;
		/*
		 * Our own database is where our monitor finds it (db.host, which
		 * defaults to the bind address but may differ); the others' at
		 * their agents' addresses.
		 */
		const char *host = n->address;
		if (strcasecmp(n->address, c->cfg->bind.host) == 0 && c->cfg->db_host != NULL &&
		    c->cfg->db_host[0] != '\0')
			host = c->cfg->db_host;
		int rc = db_probe(c->loop, c->cfg, c->password, host, c->cfg->db_port,
		                  (uint64_t)c->cfg->remote_timeout_s * 1000, on_probe, p);
		if (rc < 0) {
			struct db_probe_result r = {.ok = false};
			snprintf(r.error, sizeof(r.error), "could not start the query: %s",
			         uv_strerror(rc));
			on_probe(p, &r);
		}
	}
	if (--q->pending == 0)
		reply_status(q);
}
