/*
 * cluster_live.c - liveness: who is watched (members and voters), heartbeats
 * to and from every member (members.h keeps who was heard when), the
 * majority flag, which says whether this agent is in contact with a leader,
 * and the loop-stall guard.
 */
#include "cluster_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

void cluster_watch_stall(struct cluster *c)
{
	uint64_t now = cluster_now(c);
	uint64_t last = c->tick_last_ms;
	c->tick_last_ms = now;
	if (last == 0 || now - last <= CLUSTER_POLL_MS)
		return;
	uint64_t late = now - last - CLUSTER_POLL_MS;
	if (late <= c->node_timeout_ms / CLUSTER_STALL_DIVISOR)
		return;
	c->last_stall_ms = now;
	log_warning("cluster %s: the event loop was stalled for %llu ms (the membership tick "
	            "ran %llu ms late, more than a quarter of the node timeout of %llu s): "
	            "timers spanning the stall are not trusted for the next %llu s",
	            c->name, (unsigned long long)(now - last), (unsigned long long)late,
	            (unsigned long long)(c->node_timeout_ms / 1000),
	            (unsigned long long)(c->node_timeout_ms / 1000));
}

bool cluster_stalled_recently(const struct cluster *c)
{
	return c->last_stall_ms != 0 && cluster_now(c) - c->last_stall_ms < c->node_timeout_ms;
}

uint64_t cluster_last_stall_ms(const struct cluster *c)
{
	return c->last_stall_ms;
}

static void on_forget(void *arg, const struct members_entry *e)
{
	struct cluster *c = arg;
	if (c->rpc != NULL && e->address[0] != '\0')
		rpc_drop_link(c->rpc, e->address);
}

void cluster_track_peers(struct cluster *c)
{
	const struct cluster_state *st = &c->rio.st;
	struct members_peer peers[2 * CLUSTERFSM_MAX_NODES];
	size_t n = 0;
	for (size_t i = 0; i < st->n_members && n < 2 * CLUSTERFSM_MAX_NODES; i++)
		peers[n++] = (struct members_peer){st->members[i].id, st->members[i].address};
	if (c->started && c->rio.r_ready) {
		const struct raft_configuration *conf = &c->rio.r.configuration;
		for (unsigned i = 0; i < conf->n && n < 2 * CLUSTERFSM_MAX_NODES; i++)
			peers[n++] =
			    (struct members_peer){conf->servers[i].id, conf->servers[i].address};
	}
	members_sync(&c->mem, c->id, peers, n, cluster_now(c), on_forget, c);
}

void cluster_send_heartbeats(struct cluster *c, const struct members_report *rep)
{
	uint64_t now = cluster_now(c);
	const struct cluster_state *st = &c->rio.st;
	uint64_t seq = ++c->hb_seq;
	const char *decision = raftio_is_leader(&c->rio) && c->ext.decision != NULL
	                           ? c->ext.decision(c->ext.arg)
	                           : NULL;
	c->hb_ring_seq[seq % CLUSTER_HB_RING] = seq;
	c->hb_ring_ms[seq % CLUSTER_HB_RING] = now;
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		if (m->id == c->id)
			continue;
		cJSON *hb = cluster_self_msg(c, "hb", rep);
		if (hb == NULL)
			continue;
		cJSON_AddStringToObject(hb, "xlog", rep->xlog);
		cJSON_AddStringToObject(hb, "info", rep->info);
		const struct members_entry *e = members_get(&c->mem, m->id);
		if (decision != NULL && decision[0] != '\0')
			cJSON_AddStringToObject(hb, "decision", decision);
		cJSON_AddNumberToObject(hb, "seq", (double)seq);
		cJSON_AddNumberToObject(hb, "echo", e != NULL ? (double)e->seq_heard : 0);
		rpc_send(c->rpc, m->address, hb);
	}
}

/*
 * hb_sequence keeps the lease: it remembers the peer's round number (to
 * echo it back) and, when the peer is the leader, extends the lease to the
 * send time of our round it echoes.  Only the leader's echo counts: it
 * proves that our heartbeats reach the node whose majority decides.
 */
static void hb_sequence(struct cluster *c, uint64_t peer_id, const cJSON *msg)
{
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(msg, "seq");
	const cJSON *echo = cJSON_GetObjectItemCaseSensitive(msg, "echo");
	struct members_entry *e = (struct members_entry *)members_get(&c->mem, peer_id);
	/*
	 * The peer's round is remembered whatever it echoes: a peer that has
	 * not heard us yet echoes 0, and if neither side recorded a round until
	 * the other echoed one, neither would ever echo anything.
	 */
	if (e != NULL && cJSON_IsNumber(seq) && seq->valuedouble >= 1 &&
	    seq->valuedouble <= 9007199254740992.0)
		e->seq_heard = (uint64_t)seq->valuedouble;
	const cJSON *decision = cJSON_GetObjectItemCaseSensitive(msg, "decision");
	if (peer_id == raftio_leader(&c->rio, NULL) && cJSON_IsString(decision))
		snprintf(c->leader_decision, sizeof(c->leader_decision), "%s",
		         decision->valuestring);
	if (e == NULL || !cJSON_IsNumber(echo) || echo->valuedouble < 1 ||
	    echo->valuedouble > (double)c->hb_seq)
		return;
	uint64_t n = (uint64_t)echo->valuedouble;
	if (c->hb_ring_seq[n % CLUSTER_HB_RING] != n)
		return;
	/* This peer heard our round sent at that time: two-way contact since then. */
	if (c->hb_ring_ms[n % CLUSTER_HB_RING] > e->echo_ms)
		e->echo_ms = c->hb_ring_ms[n % CLUSTER_HB_RING];
}

/*
 * cluster_update_lease: the lease is the latest time since which a
 * majority of the voters (this agent included) have proven two-way contact
 * with it, by echoing a heartbeat round sent then; while leading, now
 * (libraft steps a leader down without a majority).  A majority, not only
 * the leader: when the leader crashes, a master still in touch with the
 * rest keeps its lease through the election.
 */
void cluster_update_lease(struct cluster *c)
{
	uint64_t now = cluster_now(c);
	if (raftio_is_leader(&c->rio)) {
		c->lease_ms = now;
		return;
	}
	uint64_t ids[CLUSTERFSM_MAX_NODES], when[CLUSTERFSM_MAX_NODES];
	size_t n = raftio_voters(&c->rio, ids, CLUSTERFSM_MAX_NODES);
	if (n == 0 || n > CLUSTERFSM_MAX_NODES)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct members_entry *e = members_get(&c->mem, ids[i]);
		when[i] = ids[i] == c->id ? now : e != NULL ? e->echo_ms : 0;
	}
	/* the (n/2+1)-th most recent contact: a majority has it at least that recent */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && when[j] > when[j - 1]; j--) {
			uint64_t t = when[j];
			when[j] = when[j - 1];
			when[j - 1] = t;
		}
	uint64_t lease = when[n / 2];
	if (lease <= c->lease_ms)
		return;
	if (c->lease_ms == 0 || lease - c->lease_ms > c->node_timeout_ms)
		log_info("cluster %s: two-way contact with a majority of the voters proven",
		         c->name);
	c->lease_ms = lease;
}

void cluster_rpc_hb(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                    const char *peer_addr, const cJSON *msg)
{
	struct members_report r;
	memset(&r, 0, sizeof(r));
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(msg, "address");
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
	const cJSON *db = cJSON_GetObjectItemCaseSensitive(msg, "db");
	const cJSON *xlog = cJSON_GetObjectItemCaseSensitive(msg, "xlog");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(msg, "info");
	if (!cJSON_IsString(addr) || !cJSON_IsNumber(role) || !cJSON_IsNumber(db) ||
	    role->valueint < 0 || role->valueint > CLUSTERFSM_IDLE || db->valueint < 0 ||
	    db->valueint > CLUSTERFSM_UNKNOWN)
		return;
	r.role = (enum clusterfsm_role)role->valueint;
	r.db = (enum clusterfsm_up)db->valueint;
	if (cJSON_IsString(xlog))
		snprintf(r.xlog, sizeof(r.xlog), "%s", xlog->valuestring);
	if (cJSON_IsString(info))
		snprintf(r.info, sizeof(r.info), "%s", info->valuestring);
	const struct members_entry *before = members_get(&c->mem, peer_id);
	bool was_down = before != NULL && before->heard_ms != 0 &&
	                !members_alive(&c->mem, peer_id, cluster_now(c));
	members_heard(&c->mem, peer_id, addr->valuestring, cluster_now(c), &r);
	if (was_down)
		log_info("cluster %s: agent %s is UP again", c->name, addr->valuestring);
	hb_sequence(c, peer_id, msg);
}

void cluster_check_majority(struct cluster *c)
{
	const char *leader = cluster_leader_address(c);
	bool in = leader != NULL;
	bool leading = raftio_is_leader(&c->rio);
	if (leading)
		c->lease_ms = cluster_now(c); /* libraft steps a leader down without a majority */
	if (leading && c->leader_since_ms == 0) {
		c->leader_since_ms = cluster_now(c);
		log_info("cluster %s: this agent is now the cluster leader", c->name);
	} else if (!leading) {
		c->leader_since_ms = 0;
	}
	if (c->majority_known && in == c->in_majority)
		return;
	if (in)
		log_info("cluster %s: in the majority: the leader is %s", c->name, leader);
	else if (c->majority_known)
		log_warning(
		    "cluster %s: lost contact with the majority: no leader is reachable, this "
		    "agent is in the minority and takes no cluster decision",
		    c->name);
	/* The guide's 8.6: the agent that finds itself cut off says so, and again when back. */
	if (c->majority_known && c->h.event != NULL)
		c->h.event(c->h.arg, in ? NOTIFY_NODE_NOT_ISOLATED : NOTIFY_NODE_ISOLATED,
		           c->cfg->bind.host);
	c->majority_known = c->majority_known || in;
	c->in_majority = in;
}

bool cluster_in_majority(const struct cluster *c)
{
	return c->in_majority;
}

bool cluster_other_master(const struct cluster *c, char *addr, size_t len)
{
	const struct cluster_state *st = &c->rio.st;
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		if (m->id != c->id && m->role == CLUSTERFSM_MASTER) {
			snprintf(addr, len, "%s", m->address);
			return true;
		}
	}
	return false;
}
