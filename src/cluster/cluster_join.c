/*
 * cluster_join.c - getting into a cluster: the joiner's requests, the
 * bootstrap votes that let exactly one of several fresh agents start a new
 * cluster (cluster.h says how), the answer to a join request, and the
 * seeding of the allowed list after a bootstrap.
 */
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

static bool holds_own_vote(const struct cluster *c);
static bool set_vote(struct cluster *c, const char *address);

bool cluster_start_raft(struct cluster *c, bool bootstrap)
{
	char err[512] = "";
	if (c->started)
		return true;
	int rc = raftio_start(&c->rio, bootstrap, NULL, err, sizeof(err));
	if (rc != 0) {
		log_severe("cluster %s: cannot start the consensus module: %s", c->name, err);
		if (c->h.stop != NULL)
			c->h.stop(c->h.arg, CLUSTER_STOP_FAILED, "consensus module failed");
		return false;
	}
	c->started = true;
	/* In a cluster now: whatever bootstrap vote we gave has done its work. */
	if (c->vote_for[0] != '\0')
		log_fine("cluster %s: bootstrap vote with %s no longer needed", c->name,
		         c->vote_for);
	(void)set_vote(c, c->address);
	if (bootstrap) {
		(void)cluster_set_phase(c, CLUSTER_SEEDING);
		log_info("cluster %s: bootstrapped a new cluster with this agent (%s) as its first "
		         "member",
		         c->name, c->address);
	}
	return true;
}

cJSON *cluster_join_msg(struct cluster *c, const struct members_report *rep)
{
	cJSON *m = cluster_self_msg(c, "join", rep);
	if (m != NULL) {
		cJSON_AddBoolToObject(m, "started", c->started);
		if (!c->started)
			cJSON_AddBoolToObject(m, "own", holds_own_vote(c));
	}
	return m;
}

/* ---- bootstrap votes ---- */

/* holds_own_vote: our bootstrap vote is our own right now. */
static bool holds_own_vote(const struct cluster *c)
{
	return c->vote_for[0] == '\0' || strcmp(c->vote_for, c->address) == 0;
}

static bool is_listed(const struct cluster *c, const char *address)
{
	for (size_t i = 0; i < c->cfg->n_nodes; i++) {
		char a[CLUSTERFSM_ADDR_MAX];
		address_format(&c->cfg->nodes[i], a, sizeof(a));
		if (strcmp(a, address) == 0)
			return true;
	}
	return false;
}

/*
 * set_vote gives our bootstrap vote to address (back to ourselves when it is
 * ours).  A vote given to a peer is on disk before anyone hears of it: an
 * agent restarted after promising its vote must not promise it again, or two
 * agents could each count it and start two clusters.  False when it cannot
 * be kept, and then it is not given.
 *
 * The write (a line, fsynced) runs on the loop on purpose: the answer that
 * carries the vote must not leave before it is durable, and it happens only
 * while no cluster exists, a handful of times in a cluster's life.
 */
static bool set_vote(struct cluster *c, const char *address)
{
	bool own = strcmp(address, c->address) == 0;
	int rc = 0;
	if (own) {
		if (unlink(c->vote_path) != 0 && errno != ENOENT)
			rc = -errno;
	} else {
		char line[CLUSTERFSM_ADDR_MAX + 2];
		int n = snprintf(line, sizeof(line), "%s\n", address);
		rc = fsutil_write_atomic(c->vote_path, line, (size_t)n, 0600);
	}
	if (rc != 0) {
		log_warning("cluster %s: cannot %s %s: %s", c->name, own ? "remove" : "write",
		            c->vote_path, strerror(-rc));
		if (!own)
			return false;
	}
	snprintf(c->vote_for, sizeof(c->vote_for), "%s", own ? "" : address);
	return true;
}

void cluster_load_vote(struct cluster *c)
{
	char buf[CLUSTERFSM_ADDR_MAX + 2];
	ssize_t n = fsutil_read_small(c->vote_path, buf, sizeof(buf));
	c->vote_for[0] = '\0';
	if (n == -ENOENT)
		return;
	if (n < 0) {
		/* Whom we promised is unknown: promise nobody, start nothing. */
		log_warning("cluster %s: cannot read %s: %s; this agent will neither give a "
		            "bootstrap vote nor start a new cluster until it can (joining an "
		            "existing one still works)",
		            c->name, c->vote_path, strerror((int)-n));
		snprintf(c->vote_for, sizeof(c->vote_for), "(unreadable %s)", c->vote_path);
		return;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || strcmp(buf, c->address) == 0) {
		(void)set_vote(c, c->address);
		return;
	}
	if (!is_listed(c, buf)) {
		log_info("cluster %s: the bootstrap vote this agent gave to %s returns to it: %s "
		         "is no longer in %s",
		         c->name, buf, buf, c->cfg->nodes_path);
		(void)set_vote(c, c->address);
		return;
	}
	snprintf(c->vote_for, sizeof(c->vote_for), "%s", buf);
	log_info("cluster %s: this agent gave its bootstrap vote to %s before it stopped; the "
	         "vote stays there until %s starts the cluster or says it gave its own vote "
	         "away (or leaves %s)",
	         c->name, buf, buf, c->cfg->nodes_path);
}

/*
 * grant_vote decides whether a peer asking to join (we have no cluster) gets
 * our bootstrap vote.  A vote has one holder at a time.  An agent holds its
 * own vote first and only ever gives it to a lower address; a vote given to
 * a peer stays with it - however long it is silent, since it may have
 * started a cluster with it - until the peer says it has given its own vote
 * away, which it can only do while it has no cluster.  Votes flow towards the
 * lowest address, so simultaneous starts converge on one agent.
 *
 * A peer that says it has given its own vote away (peer_own false) gets
 * none, and gets ours back: it cannot start a cluster without its own vote,
 * and a vote parked with it would be taken back a round later and given to
 * it again by its next request, over and over, while the agent that does
 * hold its own vote is refused every time.  A request without the field
 * counts as holding.
 */
static bool grant_vote(struct cluster *c, const char *peer, bool peer_own)
{
	if (!peer_own) {
		if (strcmp(c->vote_for, peer) == 0) {
			log_fine("cluster %s: %s gave its own vote away; taking back ours", c->name,
			         peer);
			(void)set_vote(c, c->address);
		}
		return false;
	}
	if (strcmp(c->vote_for, peer) == 0)
		return true;
	if (!holds_own_vote(c) || strcmp(peer, c->address) >= 0 || !set_vote(c, peer))
		return false;
	log_info("cluster %s: bootstrap vote given to %s", c->name, peer);
	/* Votes counted so far this round may be taken back: count again next round. */
	c->round_void = true;
	return true;
}

static size_t count_peers(struct cluster *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->cfg->n_nodes; i++) {
		char a[CLUSTERFSM_ADDR_MAX];
		address_format(&c->cfg->nodes[i], a, sizeof(a));
		if (strcmp(a, c->address) != 0)
			n++;
	}
	return n;
}

/*
 * maybe_bootstrap ends a discovery round without a cluster: bootstrap if a
 * majority of the listed agents answered and we have the lowest address.
 */
static void maybe_bootstrap(struct cluster *c, size_t n_peers)
{
	size_t total = n_peers + 1;
	bool own_vote = holds_own_vote(c);
	size_t have = (size_t)c->round_votes + (own_vote ? 1 : 0);
	if (n_peers > 0) {
		if (!own_vote) {
			log_fine(
			    "cluster %s: no cluster yet; this agent's bootstrap vote is with %s",
			    c->name, c->vote_for);
			return;
		}
		if (c->round_void) {
			log_fine("cluster %s: this agent's vote moved during this round; counting "
			         "again",
			         c->name);
			return;
		}
		if (have * 2 <= total) {
			log_fine("cluster %s: no cluster found; %zu of %zu listed agents gave this "
			         "agent their bootstrap vote, waiting for a majority",
			         c->name, have, total);
			return;
		}
		log_info("cluster %s: no cluster among the listed agents and %zu of %zu voted for "
		         "this agent; starting it",
		         c->name, have, total);
	}
	(void)cluster_start_raft(c, true);
}

/* ---- the joiner's side ---- */

/* on_join_reply reads a peer's answer to our join request. */
static void on_join_reply(void *arg, int status, const cJSON *reply)
{
	struct cluster *c = arg;
	c->join_pending--;
	if (cluster_closing(c))
		goto out;
	if (status != 0 || reply == NULL)
		goto out;
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(reply, "ok");
	const cJSON *cl = cJSON_GetObjectItemCaseSensitive(reply, "cluster");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "refused"))) {
		log_severe("cluster %s: this agent (%s) was refused by the cluster: %s", c->name,
		           c->address, cJSON_IsString(err) ? err->valuestring : "not allowed");
		if (c->h.stop != NULL)
			c->h.stop(c->h.arg, CLUSTER_STOP_REFUSED, "not admitted to the cluster");
		goto out;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "rejected")))
		cluster_report_refused(c, &c->report_sent,
		                       cJSON_IsString(err) ? err->valuestring : "refused");
	if (cJSON_IsTrue(cl) || cJSON_IsTrue(ok)) {
		if (!c->started) {
			log_info("cluster %s: a cluster exists; starting to join it", c->name);
			(void)cluster_start_raft(c, false);
		}
	} else if (cJSON_IsFalse(cl)) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "vote")))
			c->round_votes++;
		/*
		 * A vote given to an agent that has since given its own vote away
		 * can never help it start a cluster (it needs its own vote for
		 * that, and cannot count ours in a round in which it gave its own
		 * away): take it back so it can go to a lower address.
		 */
		const cJSON *from = cJSON_GetObjectItemCaseSensitive(reply, "address");
		if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "own")) &&
		    cJSON_IsString(from) && strcmp(c->vote_for, from->valuestring) == 0) {
			log_fine("cluster %s: %s gave its own vote away; taking back ours", c->name,
			         from->valuestring);
			(void)set_vote(c, c->address);
		}
	} else if (cJSON_IsString(err)) {
		log_fine("cluster %s: join: %s", c->name, err->valuestring);
	}
out:
	if (c->join_pending == 0 && !c->started && !cluster_closing(c))
		maybe_bootstrap(c, count_peers(c));
}

/* send_join asks address to admit us; a call that cannot be made is skipped. */
static void send_join(struct cluster *c, const char *address, const struct members_report *rep)
{
	if (rpc_call(c->rpc, address, cluster_join_msg(c, rep), CLUSTER_CALL_TIMEOUT_MS,
	             on_join_reply, c) == 0)
		c->join_pending++;
}

void cluster_send_joins(struct cluster *c, const struct members_report *rep)
{
	uint64_t now = cluster_now(c);
	uint64_t pace = c->started ? 2 * c->tick_ms : c->tick_ms;
	if (c->join_pending > 0 || now - c->join_last_ms < pace)
		return;
	c->join_last_ms = now;
	c->round_votes = 0;
	c->round_void = false;
	c->report_sent = *rep;
	const char *leader = cluster_leader_address(c);
	if (leader != NULL && strcmp(leader, c->address) != 0) {
		send_join(c, leader, rep);
		return;
	}
	char seen[CLUSTERFSM_MAX_NODES * 2][CLUSTERFSM_ADDR_MAX];
	size_t n_seen = 0;
	for (size_t i = 0; i < c->cfg->n_nodes && n_seen < CLUSTERFSM_MAX_NODES; i++)
		address_format(&c->cfg->nodes[i], seen[n_seen++], CLUSTERFSM_ADDR_MAX);
	for (size_t i = 0; i < c->rio.st.n_members; i++)
		snprintf(seen[n_seen++], CLUSTERFSM_ADDR_MAX, "%s", c->rio.st.members[i].address);
	for (size_t i = 0; i < n_seen; i++) {
		bool dup = strcmp(seen[i], c->address) == 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(seen[i], seen[j]) == 0;
		if (!dup)
			send_join(c, seen[i], rep);
	}
	if (c->join_pending == 0 && !c->started)
		maybe_bootstrap(c, count_peers(c));
}

/* ---- a join request from a peer ---- */

void cluster_rpc_join(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                      const char *peer_addr, const cJSON *msg)
{
	if (c->started && raftio_configured(&c->rio)) {
		if (raftio_is_leader(&c->rio))
			cluster_admit(c, conn, msg);
		else
			cluster_forward(c, conn, msg);
		return;
	}
	/* No cluster here (yet): say so, with our bootstrap vote while we have no Raft. */
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", false);
	cJSON_AddBoolToObject(r, "cluster", c->started);
	cJSON_AddStringToObject(r, "address", c->address);
	if (!c->started) {
		bool peer_own = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(msg, "own"));
		cJSON_AddBoolToObject(r, "vote", grant_vote(c, peer_addr, peer_own));
		cJSON_AddBoolToObject(r, "own", holds_own_vote(c));
	}
	rpc_reply(conn, r);
}

/* ---- seeding the allowed list after a bootstrap ---- */

static void on_seeded(void *arg, int status, const struct clusterfsm_result *res)
{
	struct cluster *c = arg;
	(void)res;
	if (status != 0)
		log_warning("cluster %s: seeding the allowed node list failed: %s", c->name,
		            raft_strerror(status));
	if (--c->seed_pending == 0 && c->phase == CLUSTER_SEEDING)
		(void)cluster_set_phase(c, CLUSTER_RUNNING);
}

void cluster_seed(struct cluster *c)
{
	struct clusterfsm_cmd cmd;
	char a[CLUSTERFSM_ADDR_MAX];
	if (c->seed_pending > 0 || !raftio_is_leader(&c->rio))
		return;
	for (size_t i = 0; i <= c->cfg->n_nodes; i++) {
		if (i < c->cfg->n_nodes)
			address_format(&c->cfg->nodes[i], a, sizeof(a));
		else
			snprintf(a, sizeof(a), "%s", c->address);
		if (clusterfsm_is_allowed(&c->rio.st, a) || !clusterfsm_cmd_allow_node(&cmd, a, 0))
			continue;
		if (raftio_propose(&c->rio, &cmd, on_seeded, c) == 0)
			c->seed_pending++;
	}
	if (c->seed_pending == 0)
		(void)cluster_set_phase(c, CLUSTER_RUNNING);
}
