/*
 * cluster_reset_part.c - reset-members, the participants' side (the
 * protocol is described in cluster_reset_coord.c): answer the probe, hold a
 * proposed voting set (phase 1), arm the restart on its commit (phase 2) or
 * drop it on an abort or when it expires, and restart the consensus module
 * with it, unless a leader appeared meanwhile.  The coordinator arms its
 * own restart here too.
 */
#include "cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void cluster_reset_id_text(uint64_t rid, char *out, size_t len)
{
	snprintf(out, len, "%016llx", (unsigned long long)rid);
}

/* parse_rid reads the "reset_id" of a message; 0 when missing or malformed. */
static uint64_t parse_rid(const cJSON *msg)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, "reset_id");
	char *end = NULL;
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return 0;
	errno = 0;
	unsigned long long x = strtoull(v->valuestring, &end, 16);
	if (errno != 0 || *end != '\0')
		return 0;
	return (uint64_t)x;
}

bool cluster_reset_newer(uint64_t term, uint64_t index, uint64_t than_term, uint64_t than_index)
{
	return term != than_term ? term > than_term : index > than_index;
}

void cluster_reset_set_text(const struct cluster_reset_set *s, char *out, size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->n && used < len; i++) {
		int k = snprintf(out + used, len - used, "%s%s", i > 0 ? ", " : "", s->address[i]);
		if (k < 0)
			break;
		used += (size_t)k;
	}
}

/* on_reset_timer restarts raft with c->reset_set, unless a leader appeared since the commit. */
static void on_reset_timer(uv_timer_t *t)
{
	struct cluster *c = t->data;
	char rid[32];
	if (c->phase != CLUSTER_RESET_ARMED)
		return;
	cluster_reset_id_text(c->reset_id, rid, sizeof(rid));
	const char *leader = cluster_leader_address(c);
	if (leader != NULL) {
		(void)cluster_set_phase(c, CLUSTER_RUNNING);
		log_warning("cluster %s: reset-members: reset %s dropped right before the restart: "
		            "a leader (%s) appeared, so quorum is not lost; this agent keeps its "
		            "configuration",
		            c->name, rid, leader);
		return;
	}
	log_warning("cluster %s: reset-members: reset %s: still no leader, restarting the "
	            "consensus module with the new voting set",
	            c->name, rid);
	cluster_reopen(c);
}

/* on_prepare_expired drops a prepared voting set whose commit never came. */
static void on_prepare_expired(uv_timer_t *t)
{
	struct cluster *c = t->data;
	char rid[32];
	if (c->phase != CLUSTER_RESET_PREPARED)
		return;
	(void)cluster_set_phase(c, CLUSTER_RUNNING);
	cluster_reset_id_text(c->reset_id, rid, sizeof(rid));
	log_warning("cluster %s: reset-members: the voting set prepared for reset %s (from %s) "
	            "expired after %d s without a commit: dropped, this agent keeps its "
	            "configuration",
	            c->name, rid, c->reset_from, CLUSTER_RESET_PREPARE_MS / 1000);
}

/* start_reset_timer (re)starts the reset timer with cb after delay_ms. */
static void start_reset_timer(struct cluster *c, uv_timer_cb cb, uint64_t delay_ms)
{
	if (!c->reset_timer_open) {
		uv_timer_init(c->loop, &c->reset_timer);
		c->reset_timer.data = c;
		c->reset_timer_open = true;
	}
	uv_timer_start(&c->reset_timer, cb, delay_ms, 0);
}

void cluster_reset_arm(struct cluster *c, uint64_t delay_ms)
{
	(void)cluster_set_phase(c, CLUSTER_RESET_ARMED);
	start_reset_timer(c, on_reset_timer, delay_ms);
}

/* disarm drops a prepared or armed reset that has not restarted anything yet. */
static void disarm(struct cluster *c)
{
	(void)cluster_set_phase(c, CLUSTER_RUNNING);
	if (c->reset_timer_open)
		uv_timer_stop(&c->reset_timer);
}

/*
 * parse_set reads the "servers" array and the "source" of a reset-apply
 * into s; false if malformed (the source must be one of the servers).
 */
static bool parse_set(const cJSON *msg, struct cluster_reset_set *s)
{
	const cJSON *servers = cJSON_GetObjectItemCaseSensitive(msg, "servers");
	const cJSON *source = cJSON_GetObjectItemCaseSensitive(msg, "source");
	const cJSON *e;
	bool has_source = false;
	s->n = 0;
	s->source = 0;
	if (!cJSON_IsArray(servers) || !cJSON_IsString(source))
		return false;
	cJSON_ArrayForEach(e, servers)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "address");
		if (s->n >= CLUSTERFSM_MAX_NODES || !cJSON_IsString(id) || !cJSON_IsString(a) ||
		    strlen(a->valuestring) >= CLUSTERFSM_ADDR_MAX)
			return false;
		char *end = NULL;
		s->id[s->n] = strtoull(id->valuestring, &end, 16);
		if (end == id->valuestring || *end != '\0' || s->id[s->n] == 0 ||
		    s->id[s->n] != raftio_id_of(a->valuestring))
			return false;
		if (strcmp(a->valuestring, source->valuestring) == 0) {
			has_source = true;
			s->source = s->n;
		}
		snprintf(s->address[s->n++], CLUSTERFSM_ADDR_MAX, "%s", a->valuestring);
	}
	return s->n > 0 && has_source;
}

/* cluster_rpc_reset_probe answers whether this agent runs, and whether it has a leader. */
void cluster_rpc_reset_probe(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg)
{
	const char *leader = cluster_leader_address(c);
	cJSON *r;
	/*
	 * An agent running Raft with no log (a reset it took part in whose
	 * source never restarted) answers too: it can take a source's log.
	 */
	if (!c->started || c->phase == CLUSTER_REOPENING) {
		r = cluster_error_reply("%s has no cluster state", c->address);
	} else if (cluster_in_reset(c)) {
		r = cluster_error_reply("%s is busy with another reset-members", c->address);
	} else {
		r = cJSON_CreateObject();
		cJSON_AddBoolToObject(r, "ok", true);
		cJSON_AddBoolToObject(r, "leader", leader != NULL);
		cJSON_AddStringToObject(r, "leader_address", leader != NULL ? leader : "");
		cJSON_AddStringToObject(r, "address", c->address);
		cJSON_AddBoolToObject(r, "configured", raftio_configured(&c->rio));
		cJSON_AddNumberToObject(r, "last_term", (double)raftio_last_term(&c->rio));
		cJSON_AddNumberToObject(r, "last_index", (double)raftio_last_index(&c->rio));
	}
	log_info("cluster %s: reset-members: %s asks whether this agent runs without a leader: "
	         "%s%s",
	         c->name, peer_addr, leader != NULL ? "no, the leader is " : "yes",
	         leader != NULL ? leader : "");
	rpc_reply(conn, r);
}

/* cluster_rpc_reset_apply is phase 1: validate the proposed set and hold it, restarting nothing. */
void cluster_rpc_reset_apply(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg)
{
	struct cluster_reset_set s;
	const char *leader = cluster_leader_address(c);
	uint64_t rid = parse_rid(msg);
	bool self = false;
	if (rid == 0 || !parse_set(msg, &s)) {
		log_warning("cluster %s: reset-members: malformed reset proposal from %s", c->name,
		            peer_addr);
		rpc_reply(conn, cluster_error_reply("malformed reset proposal"));
		return;
	}
	for (size_t i = 0; i < s.n; i++)
		self = self || s.id[i] == c->id;
	if (leader != NULL || !self || !c->started || c->phase != CLUSTER_RUNNING) {
		const char *why = leader != NULL       ? "this agent has a cluster leader"
		                  : !self              ? "this agent is not in the new voting set"
		                  : !c->started        ? "this agent has no cluster state"
		                  : cluster_closing(c) ? "this agent is stopping"
		                  : c->phase == CLUSTER_SEEDING
		                      ? "this agent is seeding a new cluster"
		                      : "this agent is busy with another reset";
		log_warning(
		    "cluster %s: reset-members: refusing the new voting set from %s: %s%s%s",
		    c->name, peer_addr, why, leader != NULL ? " " : "",
		    leader != NULL ? leader : "");
		rpc_reply(conn, cluster_error_reply("%s%s%s", why, leader != NULL ? " " : "",
		                                    leader != NULL ? leader : ""));
		return;
	}
	char set[1024], rtext[32];
	c->reset_set = s;
	c->reset_id = rid;
	snprintf(c->reset_from, sizeof(c->reset_from), "%s", peer_addr);
	(void)cluster_set_phase(c, CLUSTER_RESET_PREPARED);
	start_reset_timer(c, on_prepare_expired, CLUSTER_RESET_PREPARE_MS);
	cluster_reset_set_text(&s, set, sizeof(set));
	cluster_reset_id_text(rid, rtext, sizeof(rtext));
	log_warning("cluster %s: reset-members: %s proposes the voting set {%s} with the log of "
	            "%s (reset %s): prepared, waiting %d s for its commit; nothing restarts "
	            "before it",
	            c->name, peer_addr, set, s.address[s.source], rtext,
	            CLUSTER_RESET_PREPARE_MS / 1000);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddBoolToObject(r, "prepared", true);
	rpc_reply(conn, r);
}

/* matches: the message names the reset this agent prepared (or armed), from its coordinator. */
static bool matches(const struct cluster *c, const char *peer_addr, uint64_t rid)
{
	return rid != 0 && rid == c->reset_id && strcmp(peer_addr, c->reset_from) == 0;
}

/* cluster_rpc_reset_commit is phase 2: check once more for a leader, then arm the restart. */
void cluster_rpc_reset_commit(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                              const char *peer_addr, const cJSON *msg)
{
	uint64_t rid = parse_rid(msg);
	char rtext[32], set[1024];
	const char *leader = cluster_leader_address(c);
	cluster_reset_id_text(rid, rtext, sizeof(rtext));
	if (c->phase != CLUSTER_RESET_PREPARED || !matches(c, peer_addr, rid)) {
		log_warning("cluster %s: reset-members: commit of reset %s from %s refused: this "
		            "agent holds no such prepared reset (expired or aborted?)",
		            c->name, rtext, peer_addr);
		rpc_reply(conn, cluster_error_reply("no prepared reset %s from %s here (expired?)",
		                                    rtext, peer_addr));
		return;
	}
	/* Prepared, so neither stopping nor restarting: only a leader can stop it now. */
	if (leader != NULL) {
		disarm(c);
		log_warning("cluster %s: reset-members: commit of reset %s from %s refused: this "
		            "agent found a cluster leader %s; the prepared set is dropped and this "
		            "agent keeps its configuration",
		            c->name, rtext, peer_addr, leader);
		rpc_reply(conn,
		          cluster_error_reply("this agent found a cluster leader %s", leader));
		return;
	}
	cluster_reset_set_text(&c->reset_set, set, sizeof(set));
	log_warning("cluster %s: reset-members: %s commits reset %s, which forces the voting set "
	            "{%s}: restarting the consensus module in %d ms unless a leader appears or "
	            "the reset is aborted",
	            c->name, peer_addr, rtext, set, CLUSTER_RESET_DELAY_MS);
	cluster_reset_arm(c, CLUSTER_RESET_DELAY_MS);
	rpc_reply(conn, cluster_ok_reply());
}

/* cluster_rpc_reset_abort drops the prepared or armed (not yet restarted) reset named by the
 * message. */
void cluster_rpc_reset_abort(struct cluster *c, struct rpc_conn *conn, uint64_t peer_id,
                             const char *peer_addr, const cJSON *msg)
{
	uint64_t rid = parse_rid(msg);
	char rtext[32];
	cluster_reset_id_text(rid, rtext, sizeof(rtext));
	if ((c->phase != CLUSTER_RESET_PREPARED && c->phase != CLUSTER_RESET_ARMED) ||
	    !matches(c, peer_addr, rid)) {
		log_info("cluster %s: reset-members: %s aborts reset %s, which this agent does not "
		         "hold: nothing to do",
		         c->name, peer_addr, rtext);
		rpc_reply(conn, cluster_error_reply("no pending reset %s here", rtext));
		return;
	}
	disarm(c);
	log_warning("cluster %s: reset-members: %s aborted reset %s: dropped, this agent keeps "
	            "its configuration",
	            c->name, peer_addr, rtext);
	rpc_reply(conn, cluster_ok_reply());
}
