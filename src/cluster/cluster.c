/*
 * cluster.c - the cluster layer's life cycle (cluster.h): set up, start,
 * the membership tick, the requests of peers (one table, by type), the
 * restart of the Raft server that reset-members forces, graceful leave and
 * close.  What the tick drives lives beside it: joining and bootstrap in
 * cluster_join.c, liveness in cluster_live.c, the leader's membership
 * duties in cluster_admit.c.
 *
 * Timing (all derived from the node timeout T, node.timeout or
 * jgroups.timeout x jgroups.max.tries):
 *   Raft election timeout  E = T/4 clamped to 0.5..5 s (libraft waits E..2E),
 *   Raft heartbeat         E/10 (at least 50 ms),
 *   membership tick and agent heartbeat  T/6 clamped to 0.1..1 s,
 *   member reported Agent DOWN after T of silence,
 *   member removed from the voting set after 2T of silence (by the leader,
 *   which has led for at least T itself).
 * So a minority notices it has lost the leader within 2E <= T/2, well
 * before the majority reports it DOWN at T: the isolation side always
 * knows first, which the failover safety rule builds on.
 */
#include "cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "fsutil.h"
#include "log.h"
#include "peerauth.h"
#include "transport.h"

static uint64_t clamp64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* cluster_timing derives every interval from the node timeout (see the file comment). */
static void cluster_timing(struct cluster *c)
{
	c->node_timeout_ms =
	    (uint64_t)(c->cfg->node_timeout_s > 0 ? c->cfg->node_timeout_s : 40) * 1000;
	c->election_ms = clamp64(c->node_timeout_ms / 4, 500, 5000);
	c->heartbeat_ms = clamp64(c->election_ms / 10, 50, 500);
	c->tick_ms = clamp64(c->node_timeout_ms / 6, 100, 1000);
	c->removal_ms = 2 * c->node_timeout_ms;
}

static bool load_key(struct cluster *c, const char *password)
{
	const struct efm_config *cfg = c->cfg;
	char pw[256];
	snprintf(pw, sizeof(pw), "%s", password != NULL ? password : "");
	/* A witness has no database of its own but shares the cluster's password. */
	if (pw[0] == '\0' && cfg->db_password_encrypted[0] != '\0' &&
	    crypt_decrypt(cfg->cluster, cfg->db_password_encrypted, pw, sizeof(pw)) != 0)
		pw[0] = '\0';
	snprintf(c->password, sizeof(c->password), "%s", pw);
	bool ok;
	if (cfg->peer_key_file[0] != '\0') {
		char err[256] = "";
		int rc = peerauth_load_key_file(cfg->peer_key_file, c->key, err, sizeof(err));
		ok = rc == 0;
		if (!ok)
			log_severe("%s: peer.key.file %s: %s", cfg->props_path, cfg->peer_key_file,
			           err[0] ? err : strerror(-rc));
	} else {
		ok = peerauth_derive_key(cfg->cluster, pw, c->key);
		if (!ok)
			log_severe("cluster %s: cannot derive the peer key", cfg->cluster);
	}
	explicit_bzero(pw, sizeof(pw));
	return ok;
}

struct cluster *cluster_new(uv_loop_t *loop, const struct efm_config *cfg, const char *state_dir,
                            const char *password, const struct cluster_hooks *hooks)
{
	struct cluster *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->cfg = cfg;
	c->h = *hooks;
	snprintf(c->name, sizeof(c->name), "%s", cfg->cluster);
	snprintf(c->dir, sizeof(c->dir), "%s/%s/raft", state_dir, cfg->cluster);
	snprintf(c->vote_path, sizeof(c->vote_path), "%s/%s/bootstrap-vote", state_dir,
	         cfg->cluster);
	address_format(&cfg->bind, c->address, sizeof(c->address));
	c->id = raftio_id_of(c->address);
	cluster_timing(c);
	members_init(&c->mem, c->node_timeout_ms);
	if (!load_key(c, password)) {
		free(c);
		return NULL;
	}
	nodesfile_init(&c->nodes, loop, c->name, cfg->nodes_path);
	return c;
}

/*
 * on_applied follows the applied state: every change (an entry applied,
 * cmd NULL for a snapshot restored) marks the .nodes text for a check at
 * the next tick, which writes the file only when it differs: a restart's
 * log replay rewrites nothing, a snapshot install is not missed.  The log
 * lines are about the entry itself.
 */
static void on_applied(void *arg, const struct clusterfsm_cmd *cmd, enum clusterfsm_code code)
{
	struct cluster *c = arg;
	c->nodes_dirty = true;
	if (cmd == NULL || code != CLUSTERFSM_OK)
		return;
	switch (cmd->type) {
	case CLUSTERFSM_MEMBER_JOIN:
		log_info("cluster %s: agent %s joined as %s", c->name, cmd->address,
		         clusterfsm_role_name(cmd->role));
		break;
	case CLUSTERFSM_MEMBER_LEAVE:
		log_info("cluster %s: a member left (raft id %016llx)", c->name,
		         (unsigned long long)cmd->id);
		break;
	case CLUSTERFSM_ALLOW_NODE:
	case CLUSTERFSM_DISALLOW_NODE:
	case CLUSTERFSM_SET_PRIORITY:
		log_info("cluster %s: %s %s applied", c->name, clusterfsm_cmd_name(cmd->type),
		         cmd->address);
		break;
	default:
		break;
	}
}

/* ---- requests from peers ---- */

/*
 * peer_known: the peer may talk to us beyond asking to join.  Before the
 * replicated state has an allowed list (first start, joining) everybody
 * holding the cluster key is; afterwards only allowed hosts and current
 * members (a removed node keeps running until it is stopped, as the guide
 * says).
 */
static bool peer_known(const struct cluster *c, uint64_t id, const char *address)
{
	const struct cluster_state *st = &c->rio.st;
	return st->n_allowed == 0 || clusterfsm_is_allowed(st, address) ||
	       clusterfsm_member_by_id(st, id) != NULL;
}

/* allow_peer is the transport's filter: Raft traffic only from known peers. */
static bool allow_peer(void *arg, uint64_t id, const char *address, const char *peer_ip,
                       enum peerauth_channel channel)
{
	struct cluster *c = arg;
	/* A stranger's join gets a reasoned refusal over RPC, so RPC is let through. */
	if (channel == PEERAUTH_CHANNEL_RPC || peer_known(c, id, address))
		return true;
	log_warning("cluster %s: refusing a Raft connection from %s (%s): not in the allowed node "
	            "host list",
	            c->name, address, peer_ip);
	return false;
}

/* Every request type a peer may send, and who handles it. */
static const struct {
	const char *type;
	bool strangers; /* also from a peer outside the allowed list (it asks to join) */
	cluster_rpc_fn fn;
} requests[] = {
    {"hb", false, cluster_rpc_hb},
    {"join", true, cluster_rpc_join},
    {"leave", false, cluster_rpc_leave},
    {"cmd", false, cluster_rpc_cmd},
    {"stop", false, cluster_rpc_stop},
    {"reset-probe", false, cluster_rpc_reset_probe},
    {"reset-apply", false, cluster_rpc_reset_apply},
    {"reset-commit", false, cluster_rpc_reset_commit},
    {"reset-abort", false, cluster_rpc_reset_abort},
};

static void on_request(void *arg, struct rpc_conn *conn, uint64_t peer_id, const char *peer_addr,
                       const cJSON *msg)
{
	struct cluster *c = arg;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	if (!cJSON_IsString(type) || cluster_closing(c))
		return;
	const char *t = type->valuestring;
	size_t i = 0;
	while (i < sizeof(requests) / sizeof(requests[0]) && strcmp(requests[i].type, t) != 0)
		i++;
	bool known = i < sizeof(requests) / sizeof(requests[0]);
	bool failover = strncmp(t, "fo-", 3) == 0 && c->ext.request != NULL;
	if (!(known && requests[i].strangers) && !peer_known(c, peer_id, peer_addr)) {
		log_warning(
		    "cluster %s: ignoring \"%s\" from %s: not in the allowed node host list",
		    c->name, t, peer_addr);
		return;
	}
	if (known)
		requests[i].fn(c, conn, peer_id, peer_addr, msg);
	else if (failover)
		c->ext.request(c->ext.arg, conn, peer_id, peer_addr, msg);
	else
		log_fine("cluster %s: %s sent an unknown request \"%s\"", c->name, peer_addr, t);
}

/* open_raft sets up the Raft server's transport and the RPC layer on it; 0 or a RAFT_* error. */
static int open_raft(struct cluster *c, char *err, size_t errlen)
{
	int rc = raftio_init(&c->rio, c->loop, c->dir, c->key, c->address, (unsigned)c->election_ms,
	                     (unsigned)c->heartbeat_ms, on_applied, c, err, errlen);
	c->rio_open = true;
	if (rc != 0)
		return rc;
	transport_set_allow(&c->rio.t, allow_peer, c);
	c->rpc = rpc_new(c->loop, &c->rio.t, on_request, c);
	if (c->rpc == NULL) {
		snprintf(err, errlen, "out of memory");
		return RAFT_NOMEM;
	}
	return 0;
}

/* on_tick runs the membership: join, seed, heartbeats, the leader's duties. */
static void on_tick(uv_timer_t *t)
{
	struct cluster *c = t->data;
	struct members_report rep;
	memset(&rep, 0, sizeof(rep));
	cluster_watch_stall(c);
	if (cluster_closing(c) || c->phase == CLUSTER_REOPENING)
		return;
	cluster_sync_nodes(c, false);
	if (c->h.local == NULL || !c->h.local(c->h.arg, &rep))
		return;
	if (!c->started) {
		cluster_send_joins(c, &rep);
		return;
	}
	cluster_check_majority(c);
	cluster_update_lease(c);
	/*
	 * A leader whose replicated allowed list is empty was stopped between
	 * its first bootstrap and the seeding of that list (the two are
	 * separate Raft entries): seed it now, or it would refuse to admit
	 * even itself on every later start.  Seeding skips hosts already
	 * allowed, so doing it again is harmless.
	 */
	if (c->phase == CLUSTER_RUNNING && c->rio.st.n_allowed == 0 && raftio_is_leader(&c->rio) &&
	    cluster_set_phase(c, CLUSTER_SEEDING))
		log_warning("cluster %s: the allowed node list is empty: the first start was "
		            "interrupted before it was seeded; seeding it now",
		            c->name);
	if (c->phase == CLUSTER_SEEDING)
		cluster_seed(c);
	cluster_track_peers(c);
	/* A changed report (a database just seen down) goes out at once, not at the next round. */
	bool changed = rep.role != c->hb_rep.role || rep.db != c->hb_rep.db;
	if (changed || cluster_now(c) - c->hb_last_ms >= c->tick_ms) {
		c->hb_last_ms = cluster_now(c);
		c->hb_rep = rep;
		cluster_send_heartbeats(c, &rep);
	}
	const struct clusterfsm_member *me = clusterfsm_member_by_id(&c->rio.st, c->id);
	bool leading = raftio_is_leader(&c->rio);
	bool stale =
	    me == NULL || me->role != rep.role || me->db != rep.db || me->agent != CLUSTERFSM_UP;
	/* A report the leader refused waits for its backoff (the answer would be the same). */
	bool held = stale && cluster_report_held(c, &rep);
	if (!stale)
		cluster_report_accepted(c);
	if (leading && c->phase != CLUSTER_SEEDING && stale && !held && !c->admitting) {
		c->report_sent = rep;
		cJSON *m = cluster_join_msg(c, &rep);
		cluster_admit(c, NULL, m);
		cJSON_Delete(m);
	} else if (!leading && !held &&
	           (stale || !c->in_majority || !raftio_configured(&c->rio) ||
	            !raftio_voter(&c->rio, c->id))) {
		/* Also a standby of the configuration (after a reset): the join makes it a voter.
		 */
		cluster_send_joins(c, &rep);
	}
	if (leading) {
		cluster_leader_duties(c);
		cluster_reset_gone(c);
	}
	if (c->ext.tick != NULL)
		c->ext.tick(c->ext.arg);
}

bool cluster_start(struct cluster *c)
{
	char err[512] = "";
	if (open_raft(c, err, sizeof(err)) != 0) {
		log_severe("cluster %s: %s", c->name, err);
		return false;
	}
	c->had_state = raftio_has_state(c->dir);
	log_info("cluster %s: agent %s listening (raft id %016llx, node timeout %llu s, election "
	         "timeout %llu ms)%s",
	         c->name, c->address, (unsigned long long)c->id,
	         (unsigned long long)(c->node_timeout_ms / 1000),
	         (unsigned long long)c->election_ms,
	         c->had_state ? "; resuming the saved cluster state" : "");
	if (c->had_state && !cluster_start_raft(c, false))
		return false;
	if (!c->had_state)
		cluster_load_vote(c);
	uv_timer_init(c->loop, &c->tick);
	c->tick.data = c;
	c->tick_open = true;
	uv_timer_start(&c->tick, on_tick, CLUSTER_FIRST_TICK_MS, CLUSTER_POLL_MS);
	return true;
}

/* ---- reset-members: restarting the consensus module ---- */

static void close_all(struct cluster *c);

/*
 * reopen_start starts raft again after a reset: the source forces the
 * configuration {itself: voter, the other survivors: standby} on its log
 * (raft_recover) and leads alone at once; any other survivor discards its
 * log, keeping term and vote, and waits for the source's (cluster_reset_coord.c
 * says why).  0 or a RAFT_* error (err filled).
 */
static int reopen_start(struct cluster *c, char *err, size_t errlen)
{
	const struct cluster_reset_set *s = &c->reset_set;
	bool source = s->id[s->source] == c->id;
	if (!source) {
		/* A few unlinks, once per reset, on a closed server: on the loop. */
		int rc = raftio_discard_log(c->dir);
		if (rc < 0) {
			snprintf(err, errlen, "cannot discard the log in %s: %s", c->dir,
			         strerror(-rc));
			return RAFT_IOERR;
		}
		log_warning("cluster %s: reset-members: local log discarded (term and vote kept); "
		            "waiting for the log of %s, the most up-to-date survivor",
		            c->name, s->address[s->source]);
		return raftio_start(&c->rio, false, NULL, err, errlen);
	}
	struct raft_configuration conf;
	int rc = 0;
	raft_configuration_init(&conf);
	for (size_t i = 0; rc == 0 && i < s->n; i++) {
		rc = raft_configuration_add(&conf, s->id[i], s->address[i],
		                            i == s->source ? RAFT_VOTER : RAFT_STANDBY);
		if (rc != 0)
			snprintf(err, errlen, "cannot build the configuration");
	}
	if (rc == 0) {
		log_warning("cluster %s: reset-members: this agent has the most up-to-date log: "
		            "forcing the new configuration on it",
		            c->name);
		rc = raftio_start(&c->rio, false, &conf, err, errlen);
	}
	raft_configuration_close(&conf);
	return rc;
}

/* on_reopen_closed starts raft again with the reset voting set. */
static void on_reopen_closed(void *arg)
{
	struct cluster *c = arg;
	char err[512] = "";
	c->rio_open = false;
	if (cluster_closing(c)) {
		close_all(c);
		return;
	}
	int rc = open_raft(c, err, sizeof(err));
	if (rc == 0)
		rc = reopen_start(c, err, sizeof(err));
	(void)cluster_set_phase(c, CLUSTER_RUNNING);
	if (rc != 0) {
		log_severe("cluster %s: reset-members: the consensus module could not restart: %s",
		           c->name, err);
		if (c->h.stop != NULL)
			c->h.stop(c->h.arg, CLUSTER_STOP_FAILED,
			          "consensus module failed after reset-members");
		return;
	}
	c->majority_known = c->in_majority = false;
	c->leader_since_ms = 0;
	c->last_voters = 0;
	c->join_last_ms = c->hb_last_ms = 0;
	members_init(&c->mem, c->node_timeout_ms);
	log_info("cluster %s: reset-members: consensus module restarted with a voting set of %zu "
	         "member(s); %s leads them and the others take its log",
	         c->name, c->reset_set.n, c->reset_set.address[c->reset_set.source]);
}

void cluster_reopen(struct cluster *c)
{
	if (!cluster_set_phase(c, CLUSTER_REOPENING))
		return;
	log_info("cluster %s: reset-members: stopping the consensus module to force the new "
	         "voting set",
	         c->name);
	if (c->rpc != NULL) {
		rpc_close(c->rpc);
		c->rpc = NULL;
	}
	raftio_close(&c->rio, on_reopen_closed, c);
}

/* ---- leaving and closing ---- */

static void part_closed(struct cluster *c)
{
	if (--c->closing_parts > 0)
		return;
	if (c->phase == CLUSTER_LEFT) {
		int rc = fsutil_empty_dir(c->dir, NULL);
		if (rc < 0)
			log_warning("cluster %s: cannot wipe %s: %s", c->name, c->dir,
			            strerror(-rc));
		else
			log_info("cluster %s: left the cluster; local cluster state removed",
			         c->name);
	}
	cluster_status_close(c);
	void (*done)(void *) = c->done;
	void *arg = c->done_arg;
	explicit_bzero(c->key, sizeof(c->key));
	explicit_bzero(c->password, sizeof(c->password));
	free(c);
	if (done != NULL)
		done(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	part_closed(h->data);
}

static void on_rio_closed(void *arg)
{
	part_closed(arg);
}

static void on_nodes_closed(void *arg)
{
	part_closed(arg);
}

/* close_all stops timers, the RPC layer and the Raft server. */
static void close_all(struct cluster *c)
{
	c->closing_parts = 1; /* held until everything is started */
	if (c->tick_open) {
		c->closing_parts++;
		uv_close((uv_handle_t *)&c->tick, on_timer_closed);
		c->tick_open = false;
	}
	if (c->stop_timer_open) {
		c->closing_parts++;
		uv_close((uv_handle_t *)&c->stop_timer, on_timer_closed);
		c->stop_timer_open = false;
	}
	if (c->leave_timer_open) {
		c->closing_parts++;
		uv_close((uv_handle_t *)&c->leave_timer, on_timer_closed);
		c->leave_timer_open = false;
	}
	if (c->reset_timer_open) {
		c->closing_parts++;
		uv_close((uv_handle_t *)&c->reset_timer, on_timer_closed);
		c->reset_timer_open = false;
	}
	if (c->rpc != NULL) {
		rpc_close(c->rpc);
		c->rpc = NULL;
	}
	/* The last state's .nodes text lands before the struct is freed. */
	cluster_sync_nodes(c, true);
	c->closing_parts++;
	nodesfile_close(&c->nodes, on_nodes_closed, c);
	if (c->rio_open) {
		c->closing_parts++;
		raftio_close(&c->rio, on_rio_closed, c);
	}
	part_closed(c);
}

static void on_leave_reply(void *arg, int status, const cJSON *reply)
{
	struct cluster *c = arg;
	c->leave_pending--;
	if (c->phase == CLUSTER_LEFT || c->closing_parts > 0)
		return;
	if (status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		log_info("cluster %s: the leader removed this agent from the cluster", c->name);
		(void)cluster_set_phase(c, CLUSTER_LEFT);
		uv_timer_stop(&c->leave_timer);
		close_all(c);
	}
}

static void on_transfer_done(void *arg, int status)
{
	struct cluster *c = arg;
	c->transferring = false;
	if (status != 0)
		log_warning("cluster %s: leadership could not be handed over: %s", c->name,
		            raft_strerror(status));
}

/* leave_step retries the leave until the leader confirms or the deadline passes. */
static void leave_step(uv_timer_t *t)
{
	struct cluster *c = t->data;
	if (c->phase == CLUSTER_LEFT || c->closing_parts > 0)
		return;
	if (cluster_now(c) >= c->defer_until_ms) {
		log_warning("cluster %s: could not leave the cluster within %d s; stopping anyway "
		            "(the others will remove this agent after the node timeout)",
		            c->name, CLUSTER_LEAVE_TIMEOUT_MS / 1000);
		uv_timer_stop(t);
		close_all(c);
		return;
	}
	if (c->leave_pending > 0 || c->transferring)
		return;
	if (raftio_is_leader(&c->rio)) {
		log_info("cluster %s: handing the leadership over before leaving", c->name);
		if (raftio_transfer(&c->rio, on_transfer_done, c) == 0)
			c->transferring = true;
		return;
	}
	const char *leader = cluster_leader_address(c);
	if (leader == NULL)
		return;
	cJSON *m = rpc_msg("leave");
	if (m != NULL && rpc_call(c->rpc, leader, m, CLUSTER_LEAVE_CALL_MS, on_leave_reply, c) == 0)
		c->leave_pending++;
}

void cluster_shutdown(struct cluster *c, bool leave, void (*done)(void *arg), void *arg)
{
	if (c == NULL) {
		if (done != NULL)
			done(arg);
		return;
	}
	if (cluster_closing(c))
		return;
	bool reopening = c->phase == CLUSTER_REOPENING;
	(void)cluster_set_phase(c, CLUSTER_CLOSING);
	if (c->no_leave)
		leave = false;
	c->done = done;
	c->done_arg = arg;
	if (c->tick_open)
		uv_timer_stop(&c->tick);
	if (reopening) {
		/* raft is closing for a reset: on_reopen_closed finishes the shutdown. */
		log_info("cluster %s: stopping during reset-members; the restart is abandoned",
		         c->name);
		return;
	}
	uint64_t voters[2];
	size_t n = c->started ? raftio_voters(&c->rio, voters, 2) : 0;
	bool member = c->started && raftio_voter(&c->rio, c->id);
	if (leave && c->started && !raftio_configured(&c->rio)) {
		/* joined nothing yet: drop the partial state */
		(void)cluster_set_phase(c, CLUSTER_LEFT);
		close_all(c);
		return;
	}
	if (!leave || !member || n <= 1) {
		if (leave && n == 1)
			log_info("cluster %s: last member stopping; the cluster state is kept",
			         c->name);
		close_all(c);
		return;
	}
	log_info("cluster %s: leaving the cluster", c->name);
	c->leave_pending = 0;
	c->transferring = false;
	c->defer_until_ms = cluster_now(c) + CLUSTER_LEAVE_TIMEOUT_MS;
	uv_timer_init(c->loop, &c->leave_timer);
	c->leave_timer.data = c;
	c->leave_timer_open = true;
	uv_timer_start(&c->leave_timer, leave_step, 0, CLUSTER_POLL_MS);
}
