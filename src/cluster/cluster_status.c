/*
 * cluster_status.c - the cluster-wide status: every member with its agent
 * and database state (liveness and heartbeats), the allowed and priority
 * lists from the replicated state, and the Promote Status columns.
 *
 * Anybody on the host may ask for the status, as often as they like, so it
 * is answered from what the agents already know: the XLog position of each
 * member's latest heartbeat, and our own monitor's latest check, when they
 * are fresh (local.period plus a margin).  Only the rows nothing fresh is
 * known about (an Idle node, a silent agent, a database its agent reports
 * down) need a direct query of the database, and those go through probe
 * rounds: at most one round in flight, rounds at least local.period apart
 * (10 s at most, counted from the end of the previous one), every request
 * that needs a probe waiting for the round in flight or the next one and all
 * of them answered from its results.  A flood of requests therefore costs
 * each database at most one connection per agent and interval, never one
 * per request.
 */
#include "cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbmon.h"
#include "log.h"

/* The longest interval between probe rounds, ms (round_interval). */
#define STATUS_ROUND_MAX_MS 10000

/*
 * The probe rounds of one agent.  Lives beside the cluster and outlives it
 * while probes are in flight or its timer closes (cluster_status_close).
 */
struct status_rounds {
	struct cluster *c; /* NULL once the cluster is closed */
	uv_timer_t timer;  /* starts the next round once the interval has passed */
	bool timer_armed;
	bool timer_closed;
	bool running;      /* a round is in flight */
	int pending;       /* its probes still out */
	uint64_t ended_ms; /* end of the latest round, 0 never */
	size_t n;          /* rows probed by the latest round */
	char host[CLUSTERFSM_MAX_NODES + 1][CLUSTERFSM_HOST_MAX]; /* row address per result */
	struct db_probe_result res[CLUSTERFSM_MAX_NODES + 1];
	struct admin_request **waiting; /* requests answered when the round ends */
	size_t n_waiting, cap_waiting;
	uint64_t rounds; /* rounds run so far (log lines) */
};

/* One probe of one row's database in a round. */
struct status_probe {
	struct status_rounds *r;
	size_t slot; /* index into r->res */
};

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
		/*
		 * A recent heartbeat of a master or standby whose database answers
		 * its monitor carries the position that monitor saw.  An Idle
		 * node's (whether its database is in recovery) is not in it.
		 */
		if (e->report.db == CLUSTERFSM_UP && e->report.xlog[0] != '\0' &&
		    (e->report.role == CLUSTERFSM_MASTER || e->report.role == CLUSTERFSM_STANDBY) &&
		    now - e->heard_ms <= cluster_status_fresh_ms(c->cfg))
			snprintf(n->xlog, sizeof(n->xlog), "%s", e->report.xlog);
	} else if (!alive) {
		snprintf(n->info, sizeof(n->info), "no heartbeat for %llu s",
		         (unsigned long long)(members_silent_ms(&c->mem, fm->id, now) / 1000));
	}
}

/*
 * build fills the model; the xlog columns are filled where something fresh
 * is known and left "" where a probe must tell (see needs_probe).
 */
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
	if (c->ext.status != NULL && !cluster_closing(c))
		c->ext.status(c->ext.arg, m);
}

uint64_t cluster_status_fresh_ms(const struct efm_config *cfg)
{
	int period = cfg->local_period_s > 0 ? cfg->local_period_s : 1;
	return (uint64_t)period * 1000 + CLUSTER_STATUS_MARGIN_MS;
}

/*
 * round_interval: the least time between the end of a round and the start
 * of the next, ms: local.period, but no more than STATUS_ROUND_MAX_MS, as a
 * request may wait that long (plus remote.timeout) for its answer.
 */
static uint64_t round_interval(const struct cluster *c)
{
	uint64_t ms = (uint64_t)(c->cfg->local_period_s > 0 ? c->cfg->local_period_s : 1) * 1000;
	return ms < STATUS_ROUND_MAX_MS ? ms : STATUS_ROUND_MAX_MS;
}

/* needs_probe: a row whose database only a direct query can tell about. */
static bool needs_probe(const struct status_node *n)
{
	return n->type != NODE_WITNESS && n->xlog[0] == '\0';
}

/* results_valid: the latest round ended less than an interval ago (and none runs). */
static bool results_valid(const struct status_rounds *r)
{
	return !r->running && r->ended_ms != 0 && r->c != NULL &&
	       cluster_now(r->c) - r->ended_ms < round_interval(r->c);
}

/*
 * fill_from_round fills the rows still unknown from the latest round's
 * results; with final, a row the round did not cover (a member that appeared
 * meanwhile) is marked unknown rather than left for another round.  Returns
 * whether some row still needs a probe.
 */
static bool fill_from_round(struct status_rounds *r, struct status_model *m, bool final)
{
	bool valid = r != NULL && results_valid(r);
	bool missing = false;
	for (size_t i = 0; i < m->n_nodes; i++) {
		struct status_node *n = &m->nodes[i];
		if (!needs_probe(n))
			continue;
		size_t k = 0;
		while (valid && k < r->n && strcmp(r->host[k], n->address) != 0)
			k++;
		if (valid && k < r->n) {
			cluster_status_xlog(n, &r->res[k]);
		} else if (final) {
			snprintf(n->xlog, sizeof(n->xlog), "UNKNOWN");
			snprintf(n->xloginfo, sizeof(n->xloginfo),
			         "not queried yet: ask again in a moment");
		} else {
			missing = true;
		}
	}
	return missing;
}

static cJSON *status_reply(const struct status_model *m)
{
	cJSON *reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(reply, "ok", true);
	cJSON_AddItemToObject(reply, "status", status_to_json(m));
	return reply;
}

/* answer_waiting answers every waiting request with one status built now. */
static void answer_waiting(struct status_rounds *r)
{
	struct status_model m = {0};
	build(r->c, &m);
	(void)fill_from_round(r, &m, true);
	cJSON *reply = status_reply(&m);
	status_free(&m);
	for (size_t i = 0; i < r->n_waiting; i++) {
		cJSON *copy = i + 1 < r->n_waiting ? cJSON_Duplicate(reply, true) : reply;
		if (copy == NULL)
			admin_reply_error(r->waiting[i], "out of memory");
		else
			admin_reply(r->waiting[i], copy);
	}
	if (r->n_waiting == 0)
		cJSON_Delete(reply);
	r->n_waiting = 0;
}

static void rounds_maybe_free(struct status_rounds *r)
{
	if (r->c == NULL && !r->running && r->timer_closed) {
		free(r->waiting);
		free(r);
	}
}

/* round_done ends the round: its results hold for an interval; the waiting are answered. */
static void round_done(struct status_rounds *r)
{
	r->running = false;
	if (r->c == NULL) {
		rounds_maybe_free(r);
		return;
	}
	r->ended_ms = cluster_now(r->c);
	log_fine("cluster %s: status probe round %llu done; answering %zu waiting requests",
	         r->c->name, (unsigned long long)r->rounds, r->n_waiting);
	answer_waiting(r);
}

static void on_round_probe(void *arg, const struct db_probe_result *res)
{
	struct status_probe *p = arg;
	struct status_rounds *r = p->r;
	r->res[p->slot] = *res;
	free(p);
	if (--r->pending == 0)
		round_done(r);
}

/* start_round probes every row of a status built now that nothing fresh is known about. */
static void start_round(struct status_rounds *r)
{
	struct cluster *c = r->c;
	struct status_model m = {0};
	build(c, &m);
	r->running = true;
	r->pending = 1; /* held while the probes are started */
	r->n = 0;
	r->rounds++;
	for (size_t i = 0; i < m.n_nodes && r->n < sizeof(r->res) / sizeof(r->res[0]); i++) {
		const struct status_node *n = &m.nodes[i];
		if (!needs_probe(n))
			continue;
		struct status_probe *p = calloc(1, sizeof(*p));
		if (p == NULL)
			continue;
		p->r = r;
		p->slot = r->n++;
		snprintf(r->host[p->slot], sizeof(r->host[p->slot]), "%s", n->address);
		r->pending++;
		/*
		 * Our own database is where our monitor finds it (db.host, which
		 * defaults to the bind address but may differ); the others' at
		 * their agents' addresses.
		 */
		const char *host = n->address;
		if (strcasecmp(n->address, c->cfg->bind.host) == 0 && c->cfg->db_host != NULL &&
		    c->cfg->db_host[0] != '\0')
			host = c->cfg->db_host;
		log_fine("cluster %s: status probe round %llu: querying the database at %s",
		         c->name, (unsigned long long)r->rounds, host);
		int rc = db_probe(c->loop, c->cfg, c->password, host, c->cfg->db_port,
		                  (uint64_t)c->cfg->remote_timeout_s * 1000, on_round_probe, p);
		if (rc < 0) {
			struct db_probe_result res = {.ok = false};
			snprintf(res.error, sizeof(res.error), "could not start the query: %s",
			         uv_strerror(rc));
			on_round_probe(p, &res);
		}
	}
	status_free(&m);
	if (--r->pending == 0)
		round_done(r);
}

static void on_round_timer(uv_timer_t *t)
{
	struct status_rounds *r = t->data;
	r->timer_armed = false;
	if (r->c != NULL && !r->running && r->n_waiting > 0)
		start_round(r);
}

static void on_round_timer_closed(uv_handle_t *h)
{
	struct status_rounds *r = h->data;
	r->timer_closed = true;
	rounds_maybe_free(r);
}

/* rounds_of gives the cluster's probe rounds, made on first use; NULL when out of memory. */
static struct status_rounds *rounds_of(struct cluster *c)
{
	if (c->status_rounds != NULL)
		return c->status_rounds;
	struct status_rounds *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	if (uv_timer_init(c->loop, &r->timer) < 0) {
		free(r);
		return NULL;
	}
	r->timer.data = r;
	r->c = c;
	c->status_rounds = r;
	return r;
}

/* wait_for_round queues req for the round in flight, or the next one; false when out of memory. */
static bool wait_for_round(struct status_rounds *r, struct admin_request *req)
{
	if (r->n_waiting == r->cap_waiting) {
		size_t cap = r->cap_waiting ? 2 * r->cap_waiting : 16;
		struct admin_request **w = realloc(r->waiting, cap * sizeof(*w));
		if (w == NULL)
			return false;
		r->waiting = w;
		r->cap_waiting = cap;
	}
	r->waiting[r->n_waiting++] = req;
	if (r->running || r->timer_armed)
		return true;
	uint64_t now = cluster_now(r->c);
	uint64_t next = r->ended_ms != 0 ? r->ended_ms + round_interval(r->c) : now;
	if (next <= now) {
		start_round(r);
	} else {
		uv_timer_start(&r->timer, on_round_timer, next - now, 0);
		r->timer_armed = true;
	}
	return true;
}

void cluster_status_command(struct cluster *c, struct admin_request *req)
{
	struct status_model m = {0};
	build(c, &m);
	bool missing = fill_from_round(c->status_rounds, &m, false);
	/* a client polling through a change (efm promote) takes what is known */
	if (!missing || cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(req->body, "probe"))) {
		admin_reply(req, status_reply(&m));
		status_free(&m);
		return;
	}
	status_free(&m);
	struct status_rounds *r = rounds_of(c);
	if (r == NULL || !wait_for_round(r, req))
		admin_reply_error(req, "out of memory");
}

void cluster_status_close(struct cluster *c)
{
	struct status_rounds *r = c->status_rounds;
	if (r == NULL)
		return;
	c->status_rounds = NULL;
	for (size_t i = 0; i < r->n_waiting; i++)
		admin_reply_error(r->waiting[i], "cluster-status: the agent is stopping");
	r->n_waiting = 0;
	r->c = NULL;
	uv_close((uv_handle_t *)&r->timer, on_round_timer_closed);
}
