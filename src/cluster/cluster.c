/*
 * cluster.c - the cluster layer's life cycle: start, bootstrap or join,
 * heartbeats and liveness, removal of dead members by the leader, the
 * majority flag, graceful leave and close (cluster.h), and the restart of
 * the Raft server that reset-members forces (cluster_reset.c).
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

#include <errno.h>
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

uint64_t cluster_now(const struct cluster *c)
{
	return uv_now(c->loop);
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
	c->defer_ms = clamp64(4 * c->tick_ms + 2 * CLUSTER_CALL_TIMEOUT_MS, 10000, 60000);
}

const char *cluster_leader_address(struct cluster *c)
{
	const char *addr = NULL;
	if (!c->started || raftio_leader(&c->rio, &addr) == 0 || addr == NULL || addr[0] == '\0')
		return NULL;
	return addr;
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
	address_format(&cfg->bind, c->address, sizeof(c->address));
	c->id = raftio_id_of(c->address);
	cluster_timing(c);
	members_init(&c->mem, c->node_timeout_ms);
	if (!load_key(c, password)) {
		free(c);
		return NULL;
	}
	return c;
}

void cluster_write_nodes(struct cluster *c)
{
	char text[CLUSTERFSM_MAX_NODES * CLUSTERFSM_ADDR_MAX + 2];
	int n = clusterfsm_nodes_text(&c->rio.st, text, sizeof(text));
	if (n < 0 || c->cfg->nodes_path[0] == '\0')
		return;
	int rc = fsutil_write_atomic(c->cfg->nodes_path, text, (size_t)n, 0644);
	if (rc < 0)
		log_warning("cluster %s: cannot rewrite %s: %s", c->name, c->cfg->nodes_path,
		            strerror(-rc));
	else
		log_fine("cluster %s: %s now lists: %.*s", c->name, c->cfg->nodes_path,
		         n > 0 ? n - 1 : 0, text);
}

/* on_applied follows committed membership changes: the .nodes file and the log. */
static void on_applied(void *arg, const struct clusterfsm_cmd *cmd, enum clusterfsm_code code)
{
	struct cluster *c = arg;
	if (code != CLUSTERFSM_OK)
		return;
	switch (cmd->type) {
	case CLUSTERFSM_MEMBER_JOIN:
		log_info("cluster %s: agent %s joined as %s", c->name, cmd->address,
		         clusterfsm_role_name(cmd->role));
		cluster_write_nodes(c);
		break;
	case CLUSTERFSM_MEMBER_LEAVE:
		log_info("cluster %s: a member left (raft id %016llx)", c->name,
		         (unsigned long long)cmd->id);
		members_forget(&c->mem, cmd->id);
		cluster_write_nodes(c);
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

/* start_raft starts the server, bootstrapping a one-member cluster when asked. */
static bool start_raft(struct cluster *c, bool bootstrap)
{
	char err[512] = "";
	if (c->started)
		return true;
	int rc = raftio_start(&c->rio, bootstrap, NULL, err, sizeof(err));
	if (rc != 0) {
		log_severe("cluster %s: cannot start the consensus module: %s", c->name, err);
		if (c->h.stop != NULL)
			c->h.stop(c->h.arg, 1, "consensus module failed");
		return false;
	}
	c->started = true;
	if (bootstrap) {
		c->seeding = true;
		log_info("cluster %s: bootstrapped a new cluster with this agent (%s) as its first "
		         "member",
		         c->name, c->address);
	}
	return true;
}

/* ---- joining (joiner side) ---- */

static cJSON *join_msg(struct cluster *c, const struct members_report *rep)
{
	char id[32];
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)c->id);
	cJSON *m = rpc_msg("join");
	if (m == NULL)
		return NULL;
	cJSON_AddStringToObject(m, "id", id);
	cJSON_AddStringToObject(m, "address", c->address);
	cJSON_AddNumberToObject(m, "role", rep->role);
	cJSON_AddNumberToObject(m, "db", rep->db);
	cJSON_AddBoolToObject(m, "started", c->started);
	return m;
}

static void maybe_bootstrap(struct cluster *c, size_t n_peers);

/* vote_held: our bootstrap vote is promised to somebody (vote_for) right now. */
static bool vote_held(const struct cluster *c)
{
	return c->vote_for[0] != '\0' && cluster_now(c) < c->vote_until_ms;
}

/* holds_own_vote: our bootstrap vote is our own right now. */
static bool holds_own_vote(const struct cluster *c)
{
	return vote_held(c) && strcmp(c->vote_for, c->address) == 0;
}

/*
 * grant_vote decides whether a peer asking to join (we have no cluster) gets
 * our bootstrap vote.  A vote has one holder at a time, for defer_ms.  An
 * agent holds its own vote first and only ever gives it to a lower address,
 * never from one peer to another before it expires: votes flow towards the
 * lowest live address, so simultaneous starts converge on one agent.
 */
static bool grant_vote(struct cluster *c, const char *peer)
{
	if (!vote_held(c)) {
		snprintf(c->vote_for, sizeof(c->vote_for), "%s", c->address);
		c->vote_until_ms = cluster_now(c) + c->defer_ms;
	}
	if (strcmp(c->vote_for, peer) == 0)
		return true;
	if (strcmp(c->vote_for, c->address) != 0 || strcmp(peer, c->address) >= 0)
		return false;
	log_fine("cluster %s: bootstrap vote to %s", c->name, peer);
	snprintf(c->vote_for, sizeof(c->vote_for), "%s", peer);
	c->vote_until_ms = cluster_now(c) + c->defer_ms;
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

/* on_join_reply reads a peer's answer to our join request. */
static void on_join_reply(void *arg, int status, const cJSON *reply)
{
	struct cluster *c = arg;
	c->join_pending--;
	if (c->shutting)
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
			c->h.stop(c->h.arg, CLUSTER_EXIT_REFUSED, "not admitted to the cluster");
		goto out;
	}
	if (cJSON_IsTrue(cl) || cJSON_IsTrue(ok)) {
		if (!c->started) {
			log_info("cluster %s: a cluster exists; starting to join it", c->name);
			(void)start_raft(c, false);
		}
	} else if (cJSON_IsFalse(cl)) {
		c->round_nocluster++;
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "vote")))
			c->round_votes++;
		/*
		 * A vote given to an agent that has since given its own vote away
		 * can never help it start a cluster (it needs its own vote for
		 * that, and cannot get it back for defer_ms): take it back so it
		 * can go to a lower address.
		 */
		const cJSON *from = cJSON_GetObjectItemCaseSensitive(reply, "address");
		if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "own")) &&
		    cJSON_IsString(from) && vote_held(c) &&
		    strcmp(c->vote_for, from->valuestring) == 0) {
			log_fine("cluster %s: %s gave its own vote away; taking back ours", c->name,
			         from->valuestring);
			c->vote_for[0] = '\0';
		}
	} else if (cJSON_IsString(err)) {
		log_fine("cluster %s: join: %s", c->name, err->valuestring);
	}
out:
	if (c->join_pending == 0 && !c->started && !c->shutting)
		maybe_bootstrap(c, count_peers(c));
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
	(void)start_raft(c, true);
}

/* send_joins asks peers to admit us: the leader if known, else every listed or known peer. */
static void send_joins(struct cluster *c, const struct members_report *rep)
{
	uint64_t now = cluster_now(c);
	uint64_t pace = c->started ? 2 * c->tick_ms : c->tick_ms;
	if (c->join_pending > 0 || now - c->join_last_ms < pace)
		return;
	c->join_last_ms = now;
	c->round_answers = c->round_nocluster = c->round_votes = 0;
	if (!c->started && (!vote_held(c) || strcmp(c->vote_for, c->address) == 0)) {
		snprintf(c->vote_for, sizeof(c->vote_for), "%s", c->address);
		c->vote_until_ms = now + c->defer_ms;
	}
	const char *leader = cluster_leader_address(c);
	if (leader != NULL && strcmp(leader, c->address) != 0) {
		if (rpc_call(c->rpc, leader, join_msg(c, rep), CLUSTER_CALL_TIMEOUT_MS,
		             on_join_reply, c) == 0)
			c->join_pending++;
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
		if (dup)
			continue;
		if (rpc_call(c->rpc, seen[i], join_msg(c, rep), CLUSTER_CALL_TIMEOUT_MS,
		             on_join_reply, c) == 0)
			c->join_pending++;
	}
	if (c->join_pending == 0 && !c->started)
		maybe_bootstrap(c, count_peers(c));
}

/* ---- seeding the allowed list after a bootstrap ---- */

static void on_seeded(void *arg, int status, const struct clusterfsm_result *res)
{
	struct cluster *c = arg;
	(void)res;
	if (status != 0)
		log_warning("cluster %s: seeding the allowed node list failed: %s", c->name,
		            raft_strerror(status));
	if (--c->seed_pending == 0)
		c->seeding = false;
}

/* seed proposes the initial allowed list: every .nodes address plus us. */
static void seed(struct cluster *c)
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
		c->seeding = false;
}

/* ---- liveness ---- */

static void send_heartbeats(struct cluster *c, const struct members_report *rep)
{
	uint64_t now = cluster_now(c);
	const struct cluster_state *st = &c->rio.st;
	char id[32];
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)c->id);
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		if (m->id == c->id)
			continue;
		members_track(&c->mem, m->id, m->address, now);
		cJSON *hb = rpc_msg("hb");
		if (hb == NULL)
			continue;
		cJSON_AddStringToObject(hb, "id", id);
		cJSON_AddStringToObject(hb, "address", c->address);
		cJSON_AddNumberToObject(hb, "role", rep->role);
		cJSON_AddNumberToObject(hb, "db", rep->db);
		cJSON_AddStringToObject(hb, "xlog", rep->xlog);
		cJSON_AddStringToObject(hb, "info", rep->info);
		rpc_send(c->rpc, m->address, hb);
	}
	/* Forget peers that are no longer members. */
	for (size_t i = 0; i < c->mem.n;) {
		if (clusterfsm_member_by_id(st, c->mem.e[i].id) == NULL) {
			rpc_drop_link(c->rpc, c->mem.e[i].address);
			members_forget(&c->mem, c->mem.e[i].id);
		} else {
			i++;
		}
	}
}

static void on_heartbeat(struct cluster *c, uint64_t peer_id, const cJSON *msg)
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
}

/* check_majority keeps the majority flag and logs every change. */
static void check_majority(struct cluster *c)
{
	const char *leader = cluster_leader_address(c);
	bool in = leader != NULL;
	bool leading = raftio_is_leader(&c->rio);
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

static void on_tick(uv_timer_t *t)
{
	struct cluster *c = t->data;
	struct members_report rep;
	memset(&rep, 0, sizeof(rep));
	if (c->shutting || c->reopening || c->h.local == NULL || !c->h.local(c->h.arg, &rep))
		return;
	if (!c->started) {
		send_joins(c, &rep);
		return;
	}
	check_majority(c);
	if (c->seeding)
		seed(c);
	if (cluster_now(c) - c->hb_last_ms >= c->tick_ms) {
		c->hb_last_ms = cluster_now(c);
		send_heartbeats(c, &rep);
	}
	const struct clusterfsm_member *me = clusterfsm_member_by_id(&c->rio.st, c->id);
	bool leading = raftio_is_leader(&c->rio);
	bool stale =
	    me == NULL || me->role != rep.role || me->db != rep.db || me->agent != CLUSTERFSM_UP;
	if (leading && !c->seeding && stale && !c->admitting) {
		cJSON *m = join_msg(c, &rep);
		cluster_admit(c, NULL, m);
		cJSON_Delete(m);
	} else if (!leading && (stale || !c->in_majority || !raftio_configured(&c->rio))) {
		send_joins(c, &rep);
	}
	if (leading) {
		cluster_leader_duties(c);
		cluster_reset_gone(c);
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

static void on_request(void *arg, struct rpc_conn *conn, uint64_t peer_id, const char *peer_addr,
                       const cJSON *msg)
{
	struct cluster *c = arg;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	if (!cJSON_IsString(type) || c->shutting)
		return;
	const char *t = type->valuestring;
	if (strcmp(t, "join") != 0 && !peer_known(c, peer_id, peer_addr)) {
		log_warning(
		    "cluster %s: ignoring \"%s\" from %s: not in the allowed node host list",
		    c->name, t, peer_addr);
		return;
	}
	if (strcmp(t, "hb") == 0) {
		on_heartbeat(c, peer_id, msg);
		return;
	}
	if (strcmp(t, "join") == 0) {
		if (!c->started || !raftio_configured(&c->rio)) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddBoolToObject(r, "ok", false);
			cJSON_AddBoolToObject(r, "cluster", c->started);
			cJSON_AddStringToObject(r, "address", c->address);
			if (!c->started) {
				cJSON_AddBoolToObject(r, "vote", grant_vote(c, peer_addr));
				cJSON_AddBoolToObject(r, "own", holds_own_vote(c));
			}
			rpc_reply(conn, r);
		} else if (raftio_is_leader(&c->rio)) {
			cluster_admit(c, conn, msg);
		} else {
			cluster_forward(c, conn, msg);
		}
		return;
	}
	if (strcmp(t, "leave") == 0) {
		/*
		 * Never forwarded: the leader removes the member named by the
		 * authenticated connection, which for a forwarded request would be
		 * the forwarder.  The leaver retries against the leader it learns.
		 */
		if (!raftio_is_leader(&c->rio)) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddBoolToObject(r, "ok", false);
			cJSON_AddStringToObject(r, "error", "not the leader");
			rpc_reply(conn, r);
			return;
		}
		log_info("cluster %s: agent %s is leaving the cluster", c->name, peer_addr);
		cluster_remove_member(c, peer_id, peer_addr, conn);
		return;
	}
	if (!cluster_cmds_rpc(c, conn, peer_id, t, msg) &&
	    !cluster_reset_rpc(c, conn, peer_addr, t, msg))
		log_fine("cluster %s: %s sent an unknown request \"%s\"", c->name, peer_addr, t);
}

bool cluster_start(struct cluster *c)
{
	char err[512] = "";
	int rc = raftio_init(&c->rio, c->loop, c->dir, c->key, c->address, (unsigned)c->election_ms,
	                     (unsigned)c->heartbeat_ms, on_applied, c, err, sizeof(err));
	c->rio_open = true;
	if (rc != 0) {
		log_severe("cluster %s: %s", c->name, err);
		return false;
	}
	transport_set_allow(&c->rio.t, allow_peer, c);
	c->rpc = rpc_new(c->loop, &c->rio.t, on_request, c);
	if (c->rpc == NULL)
		return false;
	c->had_state = raftio_has_state(c->dir);
	log_info("cluster %s: agent %s listening (raft id %016llx, node timeout %llu s, election "
	         "timeout %llu ms)%s",
	         c->name, c->address, (unsigned long long)c->id,
	         (unsigned long long)(c->node_timeout_ms / 1000),
	         (unsigned long long)c->election_ms,
	         c->had_state ? "; resuming the saved cluster state" : "");
	if (c->had_state && !start_raft(c, false))
		return false;
	uv_timer_init(c->loop, &c->tick);
	c->tick.data = c;
	c->tick_open = true;
	uv_timer_start(&c->tick, on_tick, 20, CLUSTER_POLL_MS);
	return true;
}

/* ---- reset-members: restarting the consensus module ---- */

static void close_all(struct cluster *c);

/* on_reopen_closed starts raft again, forcing the reset voting set (raft_recover). */
static void on_reopen_closed(void *arg)
{
	struct cluster *c = arg;
	char err[512] = "";
	c->rio_open = false;
	if (c->shutting) {
		c->reopening = false;
		close_all(c);
		return;
	}
	int rc = raftio_init(&c->rio, c->loop, c->dir, c->key, c->address, (unsigned)c->election_ms,
	                     (unsigned)c->heartbeat_ms, on_applied, c, err, sizeof(err));
	c->rio_open = true;
	if (rc == 0) {
		transport_set_allow(&c->rio.t, allow_peer, c);
		c->rpc = rpc_new(c->loop, &c->rio.t, on_request, c);
		if (c->rpc == NULL) {
			rc = RAFT_NOMEM;
			snprintf(err, sizeof(err), "out of memory");
		}
	}
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	for (size_t i = 0; rc == 0 && i < c->reset_set.n; i++)
		if (raft_configuration_add(&conf, c->reset_set.id[i], c->reset_set.address[i],
		                           RAFT_VOTER) != 0) {
			rc = RAFT_NOMEM;
			snprintf(err, sizeof(err), "cannot build the configuration");
		}
	if (rc == 0)
		rc = raftio_start(&c->rio, false, &conf, err, sizeof(err));
	raft_configuration_close(&conf);
	c->reopening = false;
	if (rc != 0) {
		log_severe("cluster %s: reset-members: the consensus module could not restart: %s",
		           c->name, err);
		if (c->h.stop != NULL)
			c->h.stop(c->h.arg, 1, "consensus module failed after reset-members");
		return;
	}
	c->majority_known = c->in_majority = false;
	c->leader_since_ms = 0;
	c->last_voters = 0;
	c->join_last_ms = c->hb_last_ms = 0;
	members_init(&c->mem, c->node_timeout_ms);
	log_info("cluster %s: reset-members: consensus module restarted with a voting set of %zu "
	         "member(s); the survivors now elect a leader among themselves",
	         c->name, c->reset_set.n);
}

void cluster_reopen(struct cluster *c)
{
	if (c->reopening || c->shutting || !c->rio_open)
		return;
	c->reopening = true;
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
	if (c->left) {
		int rc = fsutil_empty_dir(c->dir);
		if (rc < 0)
			log_warning("cluster %s: cannot wipe %s: %s", c->name, c->dir,
			            strerror(-rc));
		else
			log_info("cluster %s: left the cluster; local cluster state removed",
			         c->name);
	}
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
	if (c->left || c->closing_parts > 0)
		return;
	if (status == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		log_info("cluster %s: the leader removed this agent from the cluster", c->name);
		c->left = true;
		uv_timer_stop(&c->leave_timer);
		close_all(c);
	}
}

static void on_transfer_done(void *arg, int status)
{
	struct cluster *c = arg;
	c->updating = false;
	if (status != 0)
		log_warning("cluster %s: leadership could not be handed over: %s", c->name,
		            raft_strerror(status));
}

/* leave_step retries the leave until the leader confirms or the deadline passes. */
static void leave_step(uv_timer_t *t)
{
	struct cluster *c = t->data;
	if (c->left || c->closing_parts > 0)
		return;
	if (cluster_now(c) >= c->defer_until_ms) {
		log_warning("cluster %s: could not leave the cluster within %d s; stopping anyway "
		            "(the others will remove this agent after the node timeout)",
		            c->name, CLUSTER_LEAVE_TIMEOUT_MS / 1000);
		uv_timer_stop(t);
		close_all(c);
		return;
	}
	if (c->leave_pending > 0 || c->updating)
		return;
	if (raftio_is_leader(&c->rio)) {
		log_info("cluster %s: handing the leadership over before leaving", c->name);
		if (raftio_transfer(&c->rio, on_transfer_done, c) == 0)
			c->updating = true;
		return;
	}
	const char *leader = cluster_leader_address(c);
	if (leader == NULL)
		return;
	cJSON *m = rpc_msg("leave");
	if (m != NULL && rpc_call(c->rpc, leader, m, 2000, on_leave_reply, c) == 0)
		c->leave_pending++;
}

void cluster_shutdown(struct cluster *c, bool leave, void (*done)(void *arg), void *arg)
{
	if (c == NULL) {
		if (done != NULL)
			done(arg);
		return;
	}
	if (c->shutting)
		return;
	c->shutting = true;
	if (c->no_leave)
		leave = false;
	c->done = done;
	c->done_arg = arg;
	if (c->tick_open)
		uv_timer_stop(&c->tick);
	if (c->reopening) {
		/* raft is closing for a reset: on_reopen_closed finishes the shutdown. */
		log_info("cluster %s: stopping during reset-members; the restart is abandoned",
		         c->name);
		return;
	}
	uint64_t voters[2];
	size_t n = c->started ? raftio_voters(&c->rio, voters, 2) : 0;
	bool member = c->started && raftio_voter(&c->rio, c->id);
	if (leave && c->started && !raftio_configured(&c->rio)) {
		c->left = true; /* joined nothing yet: drop the partial state */
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
	c->updating = false;
	c->defer_until_ms = cluster_now(c) + CLUSTER_LEAVE_TIMEOUT_MS;
	uv_timer_init(c->loop, &c->leave_timer);
	c->leave_timer.data = c;
	c->leave_timer_open = true;
	uv_timer_start(&c->leave_timer, leave_step, 0, 100);
}
