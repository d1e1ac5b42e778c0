/*
 * manual.c - efm promote: an operator's request for a failover, whatever
 * auto.failover says.
 *
 * The request is taken on any agent and carried to the Raft leader
 * ("fo-manual"), where the coordinator treats it as one more fact of its
 * table (decide.c: the rules on promote-asked).  It goes through the same
 * confirmation and selection rounds as an automatic failover, so it never
 * promotes beside a master database some agent still reaches, and it is
 * answered by the first decision that settles it:
 *   - the promotion lock committed: "started", with its serial, which the
 *     client then follows through the status until DONE or ABORTED;
 *   - a refusal (the master runs, no candidate, a promotion already runs,
 *     a candidate behind the master's last position without --yes): the
 *     rule's reason with the facts it rests on.
 * One request at a time; leaving the leadership or stopping answers it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "coord_int.h"
#include "dbmon.h"
#include "log.h"

struct fo_manual {
	struct admin_request *req; /* from this agent's admin socket, or */
	struct rpc_conn *conn;     /* from the agent that forwarded it */
	bool yes;
	bool switchover;
	char node[CLUSTERFSM_ADDR_MAX]; /* -node: the only candidate, "" any */
};

/* How long a forwarded request may take: both rounds, then the lock's commit. */
static uint64_t manual_ms(const struct failover *fo)
{
	return 2 * fo_remote_ms(fo) + 20000;
}

static cJSON *reply_v(bool ok, const char *fmt, va_list ap)
{
	char text[1024];
	vsnprintf(text, sizeof(text), fmt, ap);
	cJSON *r = cJSON_CreateObject();
	if (r == NULL)
		return NULL;
	cJSON_AddBoolToObject(r, "ok", ok);
	cJSON_AddStringToObject(r, ok ? "message" : "error", text);
	return r;
}

static cJSON *reply_f(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *reply_f(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *r = reply_v(ok, fmt, ap);
	va_end(ap);
	return r;
}

/* send_to answers the origin of a request (reply ownership taken). */
static void send_to(struct admin_request *req, struct rpc_conn *conn, cJSON *reply)
{
	if (req != NULL)
		admin_reply(req, reply);
	else
		rpc_reply_release(conn, reply);
}

/* answer settles the pending request with reply (ownership taken). */
static void answer(struct failover *fo, cJSON *reply)
{
	struct fo_manual *m = fo->manual;
	if (m == NULL) {
		cJSON_Delete(reply);
		return;
	}
	fo->manual = NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
	if (cJSON_IsString(e))
		log_warning("failover: efm promote refused: %s", e->valuestring);
	send_to(m->req, m->conn, reply);
	free(m);
}

void fo_manual_drop(struct failover *fo, const char *why)
{
	if (fo->manual != NULL)
		answer(fo, reply_f(false, "%s; nothing was promoted", why));
}

bool fo_manual_switchover(const struct failover *fo)
{
	return fo->manual != NULL && fo->manual->switchover;
}

bool fo_manual_only(const struct failover *fo, const char *address)
{
	return fo->manual != NULL && fo->manual->node[0] != '\0' &&
	       strcmp(fo->manual->node, address) != 0;
}

void fo_manual_facts(const struct failover *fo, struct fo_facts *f)
{
	f->asked = fo->manual != NULL;
	f->asked_yes = f->asked && fo->manual->yes;
	f->asked_switchover = f->asked && fo->manual->switchover;
	f->candidate_behind = fo->have_best && fo->master_lsn_value > fo->best.lsn_value &&
	                      strcmp(fo->master_lsn_of, cluster_state(fo->cl)->master) == 0;
}

void fo_manual_note_master(struct failover *fo)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	if (st->master[0] == '\0')
		return;
	if (strcmp(fo->master_lsn_of, st->master) != 0) {
		snprintf(fo->master_lsn_of, sizeof(fo->master_lsn_of), "%s", st->master);
		fo->master_lsn[0] = '\0';
		fo->master_lsn_value = 0;
	}
	const struct clusterfsm_member *m = clusterfsm_member_by_host(st, st->master);
	struct members_report rep;
	uint64_t v;
	if (m != NULL && cluster_member_report(fo->cl, m->id, &rep) &&
	    rep.role == CLUSTERFSM_MASTER && lsn_parse(rep.xlog, &v) && v > fo->master_lsn_value) {
		snprintf(fo->master_lsn, sizeof(fo->master_lsn), "%s", rep.xlog);
		fo->master_lsn_value = v;
	}
}

void fo_manual_decided(struct failover *fo, const struct fo_rule *r)
{
	if (fo->manual == NULL)
		return;
	switch (r->action) {
	case FO_A_CONFIRM:
	case FO_A_SELECT:
	case FO_A_LOCK: /* fo_manual_locked answers */
		return;
	case FO_A_DRIVE:
		answer(fo, reply_f(false, "a promotion is already running (%s)", fo->decision));
		return;
	default:
		break;
	}
	if (r->guard == FO_G_BEHIND) {
		uint64_t gap = fo->master_lsn_value - fo->best.lsn_value;
		cJSON *reply = reply_f(
		    false,
		    "the best candidate %s received WAL up to %s, %" PRIu64 " bytes behind %s, the "
		    "last position the master %s reported: promoting it loses those writes. Run "
		    "efm promote again with --yes to accept that",
		    fo->best.address, fo->best.lsn, gap, fo->master_lsn, fo->master_lsn_of);
		cJSON_AddNumberToObject(reply, "behind_bytes", (double)gap);
		cJSON_AddStringToObject(reply, "candidate", fo->best.address);
		answer(fo, reply);
		return;
	}
	answer(fo, reply_f(false, "%s", fo->decision));
}

void fo_manual_locked(struct failover *fo, bool ok, const char *why)
{
	if (fo->manual == NULL)
		return;
	const struct cluster_state *st = cluster_state(fo->cl);
	if (!ok) {
		answer(fo, reply_f(false, "the promotion lock for %s was not taken: %s",
		                   fo->best.address, why));
		return;
	}
	cJSON *reply =
	    reply_f(true, "promotion %" PRIu64 " of %s started (received LSN %s, priority %d%s)",
	            st->lock.serial, st->lock.candidate, fo->best.lsn, fo->best.priority,
	            fo->best.paused ? ", replay paused" : "");
	cJSON_AddNumberToObject(reply, "serial", (double)st->lock.serial);
	cJSON_AddStringToObject(reply, "candidate", st->lock.candidate);
	answer(fo, reply);
}

/* refuse_now: what makes a request unanswerable before the coordinator sees it, or NULL. */
static cJSON *refuse_now(struct failover *fo, const struct fo_manual *want)
{
	const struct cluster_state *st = cluster_state(fo->cl);
	if (fo->closed)
		return reply_f(false, "the agent is stopping");
	if (!cluster_is_leader(fo->cl))
		return reply_f(false, "this agent stopped leading the cluster; try again");
	if (fo->manual != NULL)
		return reply_f(false, "another efm promote is being handled; try again once it "
		                      "is answered");
	if (clusterfsm_promotion_active(st))
		return reply_f(false, "promotion %" PRIu64 " of %s is already running (phase %s)",
		               st->lock.serial, st->lock.candidate,
		               clusterfsm_phase_name(st->lock.phase));
	if (want->node[0] != '\0') {
		const struct clusterfsm_member *m = clusterfsm_member_by_host(st, want->node);
		if (m == NULL)
			return reply_f(false, "%s is not a member of the cluster", want->node);
		if (m->role != CLUSTERFSM_STANDBY)
			return reply_f(false, "%s is not a standby (it is recorded as %s)",
			               want->node, clusterfsm_role_name(m->role));
	}
	return NULL;
}

/* take hands a request to the coordinator, or answers it at once. */
static void take(struct failover *fo, struct admin_request *req, struct rpc_conn *conn,
                 const struct fo_manual *want)
{
	cJSON *no = refuse_now(fo, want);
	struct fo_manual *m = no == NULL ? malloc(sizeof(*m)) : NULL;
	if (m == NULL) {
		send_to(req, conn, no != NULL ? no : reply_f(false, "out of memory"));
		return;
	}
	*m = *want;
	m->req = req;
	m->conn = conn;
	fo->manual = m;
	log_warning("failover: efm promote%s%s%s%s: the coordinator takes it",
	            m->yes ? " --yes" : "", m->node[0] ? " -node " : "", m->node,
	            m->switchover ? " -switchover" : "");
	fo_kick(fo);
}

/* read_want fills a request's options from a forwarded message. */
static void read_want(const cJSON *msg, struct fo_manual *want)
{
	const cJSON *node = cJSON_GetObjectItemCaseSensitive(msg, "node");
	memset(want, 0, sizeof(*want));
	want->yes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "yes"));
	want->switchover = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "switchover"));
	if (cJSON_IsString(node))
		snprintf(want->node, sizeof(want->node), "%s", node->valuestring);
}

void fo_manual_peer(struct failover *fo, struct rpc_conn *conn, const cJSON *msg)
{
	struct fo_manual want;
	read_want(msg, &want);
	rpc_conn_ref(conn);
	take(fo, NULL, conn, &want);
}

/* ---- this agent's admin socket ---- */

struct forward {
	struct admin_request *req;
	char leader[CLUSTERFSM_ADDR_MAX];
};

static void on_forwarded(void *arg, int status, const cJSON *reply)
{
	struct forward *f = arg;
	if (status != 0 || reply == NULL)
		admin_reply_error(f->req,
		                  "the cluster leader %s did not answer (%s); the promotion may "
		                  "still have started: look at efm cluster-status",
		                  f->leader, status != 0 ? strerror(-status) : "no reply");
	else
		admin_reply(f->req, cJSON_Duplicate(reply, true));
	free(f);
}

/* member_address: the member whose host is the -node ADDRESS's, or the text as given. */
static void member_address(struct failover *fo, const struct admin_arg_values *v, char *out,
                           size_t len)
{
	const struct clusterfsm_member *m =
	    clusterfsm_member_by_host(cluster_state(fo->cl), v->host);
	snprintf(out, len, "%s", m != NULL ? m->address : v->address);
}

void failover_promote_command(struct failover *fo, struct admin_request *req)
{
	const struct admin_arg_values *v = &req->values;
	struct fo_manual want = {.yes = v->yes, .switchover = v->switchover};
	if (v->has_address)
		member_address(fo, v, want.node, sizeof(want.node));
	log_info("failover: efm promote from uid %ld", (long)req->uid);
	if (cluster_is_leader(fo->cl)) {
		take(fo, req, NULL, &want);
		return;
	}
	const char *leader = cluster_leader(fo->cl);
	struct forward *f = calloc(1, sizeof(*f));
	cJSON *msg = rpc_msg("fo-manual");
	if (leader == NULL || leader[0] == '\0' || f == NULL || msg == NULL) {
		free(f);
		cJSON_Delete(msg);
		admin_reply_error(req,
		                  "no cluster leader is reachable from this agent (it is in the "
		                  "minority or an election is in progress); try again in a few "
		                  "seconds");
		return;
	}
	f->req = req;
	snprintf(f->leader, sizeof(f->leader), "%s", leader);
	cJSON_AddBoolToObject(msg, "yes", want.yes);
	cJSON_AddBoolToObject(msg, "switchover", want.switchover);
	if (want.node[0] != '\0')
		cJSON_AddStringToObject(msg, "node", want.node);
	if (cluster_call(fo->cl, leader, msg, manual_ms(fo), on_forwarded, f) != 0) {
		free(f);
		admin_reply_error(req, "cannot reach the cluster leader %s; try again", leader);
	}
}
