/*
 * watch.c - the leader's watch over the members other than the master (the
 * guide's 8.2, 8.4 and 8.5): a lost standby, witness or idle agent, and a
 * standby that declared its database failed, are checked and reported.
 *
 *   standby agent lost        its database is probed: it answers -> "standby
 *                             agent failed"; it does not -> "standby
 *                             database failed"
 *   standby reports Idle      (its monitor declared the database failed) the
 *                             database is probed: it does not answer ->
 *                             "standby database failed"; it does -> "standby
 *                             agent cannot reach its database"
 *   witness / idle agent lost "witness failed" / "idle agent failed"
 *
 * Nothing is promoted or fenced here.  A new leader starts with no memory of
 * earlier states, so it never reports what happened before it led.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"
#include "dbmon.h"
#include "log.h"

struct watch_probe {
	struct fo_ctx *x;
	bool agent_lost; /* the probe follows a lost agent, not an Idle report */
};

static struct fo_seen *seen_of(struct failover *fo, uint64_t id, bool add)
{
	for (size_t i = 0; i < fo->n_seen; i++)
		if (fo->seen[i].id == id)
			return &fo->seen[i];
	if (!add || fo->n_seen >= CLUSTERFSM_MAX_NODES)
		return NULL;
	struct fo_seen *s = &fo->seen[fo->n_seen++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	return s;
}

static void on_probe(void *arg, const struct db_probe_result *r)
{
	struct watch_probe *p = arg;
	struct failover *fo = p->x->fo;
	if (!fo_ctx_stale(p->x)) {
		bool answers = r->ok || db_error_verdict(r->conn_error) == DB_VERDICT_BUSY;
		enum notify_event ev = answers ? (p->agent_lost ? NOTIFY_STANDBY_AGENT_FAILED
		                                                : NOTIFY_STANDBY_DB_UNREACHABLE)
		                               : NOTIFY_STANDBY_DB_FAILED;
		log_warning("failover: standby %s: %s; its database %s", p->x->address,
		            p->agent_lost ? "agent lost" : "agent declared its database failed",
		            answers ? "answers" : "does not answer");
		fo_notify(fo, ev, p->x->address, r->ok ? NULL : r->error);
	}
	free(p->x);
	free(p);
}

static void probe_standby(struct failover *fo, const struct clusterfsm_member *m, bool agent_lost)
{
	char host[CLUSTERFSM_HOST_MAX];
	struct watch_probe *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return;
	p->x = fo_ctx_new(fo, m->address);
	p->agent_lost = agent_lost;
	fo_host_of(m->address, host, sizeof(host));
	if (p->x == NULL || db_probe(fo->loop, fo->cfg, cluster_db_password(fo->cl), host,
	                             fo->cfg->db_port, fo_remote_ms(fo), on_probe, p) != 0) {
		free(p->x);
		free(p);
	}
}

void fo_watch_tick(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	for (size_t i = 0; i < st->n_members; i++) {
		const struct clusterfsm_member *m = &st->members[i];
		if (m->id == cluster_self_id(fo->cl) || strcmp(m->address, st->master) == 0)
			continue;
		struct members_report rep;
		bool alive = cluster_member_alive(fo->cl, m->id);
		bool reported = alive && cluster_member_report(fo->cl, m->id, &rep);
		struct fo_seen *s = seen_of(fo, m->id, true);
		if (s == NULL)
			continue;
		if (s->known && s->alive && !alive) {
			if (s->role == CLUSTERFSM_STANDBY)
				probe_standby(fo, m, true);
			else if (s->role == CLUSTERFSM_WITNESS)
				fo_notify(fo, NOTIFY_WITNESS_FAILED, m->address, NULL);
			else if (s->role == CLUSTERFSM_IDLE)
				fo_notify(fo, NOTIFY_IDLE_FAILED, m->address, NULL);
		}
		if (reported && s->known && s->reported && s->role == CLUSTERFSM_STANDBY &&
		    rep.role == CLUSTERFSM_IDLE && rep.db == CLUSTERFSM_DOWN)
			probe_standby(fo, m, false);
		s->known = true;
		s->alive = alive;
		s->reported = reported;
		if (reported)
			s->role = rep.role;
	}
}

void fo_watch_forget(struct failover *fo)
{
	fo->n_seen = 0;
}
