/*
 * raftio.c - one libraft server on our transport, applying the cluster
 * state machine (raftio.h).
 */
#include "raftio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "log.h"
#include "transport.h"

/*
 * Snapshot often: the state is small (tens of KB at most), and a member
 * joining after many entries then gets one snapshot instead of the log.
 */
#define SNAPSHOT_THRESHOLD 64
#define SNAPSHOT_TRAILING  32

/* One request in flight; the union member matches kind. */
struct raftio_req {
	union {
		struct raft_apply apply;
		struct raft_change change;
		struct raft_transfer transfer;
	} u;
	struct raftio *x;
	raftio_propose_cb propose_cb;
	raftio_done_cb done_cb;
	void *arg;
	uint64_t id; /* add: the server to promote */
};

uint64_t raftio_id_of(const char *address)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a, 64 bit */
	for (const unsigned char *p = (const unsigned char *)address; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h != 0 ? h : 1;
}

bool raftio_has_state(const char *dir)
{
	char path[4200];
	struct stat sb;
	for (int i = 1; i <= 2; i++) {
		snprintf(path, sizeof(path), "%s/metadata%d", dir, i);
		if (stat(path, &sb) == 0 && sb.st_size > 0)
			return true;
	}
	return false;
}

int raftio_discard_log(const char *dir)
{
	static const char *const metadata[] = {"metadata1", "metadata2", NULL};
	return fsutil_empty_dir(dir, metadata);
}

uint64_t raftio_last_index(struct raftio *x)
{
	return x->r_ready ? raft_last_index(&x->r) : 0;
}

/*
 * raftio_last_term reads the term of the last entry from the server's
 * trail (struct raft_trail, declared in raft.h: one record per term, the
 * last index reached in it), which libraft has no call for.  With no
 * record the log holds nothing beyond the last snapshot, whose term it is.
 */
uint64_t raftio_last_term(struct raftio *x)
{
	if (!x->r_ready)
		return 0;
	const struct raft_trail *t = &x->r.trail;
	if (t->front != t->back && t->size > 0)
		return t->records[(t->back + t->size - 1) % t->size].term;
	return t->snapshot.term;
}

/* fsm_apply decodes and applies one committed command; the result goes in the ring. */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct raftio *x = fsm->data;
	struct clusterfsm_result res;
	struct clusterfsm_cmd cmd;
	memset(&cmd, 0, sizeof(cmd));
	bool decoded = clusterfsm_cmd_decode(buf->base, buf->len, &cmd) == 0;
	enum clusterfsm_code code = clusterfsm_apply(&x->st, buf->base, buf->len, &res);
	uint64_t seq = ++x->n_results;
	x->results[seq % RAFTIO_RESULTS] = res;
	*result = (void *)(uintptr_t)seq;
	if (code == CLUSTERFSM_REJECTED)
		log_fine("cluster: %s rejected: %s",
		         decoded ? clusterfsm_cmd_name(cmd.type) : "entry", res.reason);
	if (decoded && x->on_applied != NULL)
		x->on_applied(x->arg, &cmd, code);
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct raftio *x = fsm->data;
	struct raft_buffer *b = raft_malloc(sizeof(*b));
	void *base = raft_malloc(CLUSTERFSM_SNAPSHOT_MAX);
	if (b == NULL || base == NULL) {
		raft_free(b);
		raft_free(base);
		return RAFT_NOMEM;
	}
	ssize_t n = clusterfsm_snapshot_encode(&x->st, base, CLUSTERFSM_SNAPSHOT_MAX);
	if (n < 0) {
		raft_free(b);
		raft_free(base);
		return RAFT_INVALID;
	}
	b->base = base;
	b->len = (size_t)n;
	*bufs = b;
	*n_bufs = 1;
	return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	(void)fsm;
	if (*bufs != NULL) {
		for (unsigned i = 0; i < *n_bufs; i++)
			raft_free((*bufs)[i].base);
		raft_free(*bufs);
	}
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct raftio *x = fsm->data;
	int rc = clusterfsm_snapshot_restore(&x->st, buf->base, buf->len);
	if (rc != 0) {
		log_severe("cluster: a snapshot could not be restored: it is malformed");
		return RAFT_MALFORMED;
	}
	raft_free(buf->base);
	log_info("cluster: state restored from a snapshot (%zu members, %zu allowed hosts)",
	         x->st.n_members, x->st.n_allowed);
	if (x->on_applied != NULL)
		x->on_applied(x->arg, NULL, CLUSTERFSM_OK);
	return 0;
}

int raftio_init(struct raftio *x, uv_loop_t *loop, const char *dir, const uint8_t *key,
                const char *address, unsigned election_ms, unsigned heartbeat_ms,
                raftio_applied_cb on_applied, void *arg, char *errmsg, size_t errlen)
{
	memset(x, 0, sizeof(*x));
	x->loop = loop;
	snprintf(x->dir, sizeof(x->dir), "%s", dir);
	snprintf(x->address, sizeof(x->address), "%s", address);
	x->id = raftio_id_of(address);
	x->election_ms = election_ms;
	x->heartbeat_ms = heartbeat_ms;
	x->on_applied = on_applied;
	x->arg = arg;
	clusterfsm_init(&x->st);
	int rc = fsutil_mkdirs(dir, 0700);
	if (rc < 0) {
		snprintf(errmsg, errlen, "cannot create %s: %s", dir, strerror(-rc));
		return RAFT_IOERR;
	}
	rc = transport_init(&x->t, loop, key, NULL);
	if (rc != 0) {
		snprintf(errmsg, errlen, "transport: %s", raft_strerror(rc));
		return rc;
	}
	x->t_ready = true;
	rc = transport_start(&x->t, x->id, address);
	if (rc != 0) {
		snprintf(errmsg, errlen, "cannot listen on %s: %s", address,
		         x->t.errmsg[0] ? x->t.errmsg : raft_strerror(rc));
		return rc;
	}
	return 0;
}

int raftio_start(struct raftio *x, bool bootstrap_self, const struct raft_configuration *recover,
                 char *errmsg, size_t errlen)
{
	int rc = raft_uv_init(&x->io, x->loop, x->dir, &x->t);
	if (rc != 0) {
		snprintf(errmsg, errlen, "raft storage in %s: %s", x->dir, raft_strerror(rc));
		return rc;
	}
	x->io_ready = true;
	x->fsm.version = 2;
	x->fsm.data = x;
	x->fsm.apply = fsm_apply;
	x->fsm.snapshot = fsm_snapshot;
	x->fsm.snapshot_finalize = fsm_snapshot_finalize;
	x->fsm.restore = fsm_restore;
	rc = raft_init(&x->r, &x->io, &x->fsm, x->id, x->address);
	if (rc != 0) {
		snprintf(errmsg, errlen, "raft: %s", raft_strerror(rc));
		return rc;
	}
	x->r_ready = true;
	raft_set_election_timeout(&x->r, x->election_ms);
	raft_set_heartbeat_timeout(&x->r, x->heartbeat_ms);
	raft_set_pre_vote(&x->r, true);
	raft_set_snapshot_threshold(&x->r, SNAPSHOT_THRESHOLD);
	raft_set_snapshot_trailing(&x->r, SNAPSHOT_TRAILING);
	if (recover != NULL && recover->n > 0) {
		rc = raft_recover(&x->r, recover);
		if (rc != 0) {
			snprintf(errmsg, errlen, "raft recover: %s", raft_errmsg(&x->r));
			return rc;
		}
	} else if (bootstrap_self) {
		struct raft_configuration conf;
		raft_configuration_init(&conf);
		rc = raft_configuration_add(&conf, x->id, x->address, RAFT_VOTER);
		if (rc == 0)
			rc = raft_bootstrap(&x->r, &conf);
		raft_configuration_close(&conf);
		if (rc != 0 && rc != RAFT_CANTBOOTSTRAP) {
			snprintf(errmsg, errlen, "raft bootstrap: %s", raft_strerror(rc));
			return rc;
		}
	}
	rc = raft_start(&x->r);
	if (rc != 0) {
		snprintf(errmsg, errlen, "raft start: %s", raft_errmsg(&x->r));
		return rc;
	}
	x->started = true;
	return 0;
}

uint64_t raftio_leader(struct raftio *x, const char **address)
{
	raft_id id = 0;
	const char *addr = NULL;
	if (x->started && !x->closing)
		raft_leader(&x->r, &id, &addr);
	if (address != NULL)
		*address = addr != NULL ? addr : "";
	return id;
}

bool raftio_is_leader(struct raftio *x)
{
	return x->started && !x->closing && raft_state(&x->r) == RAFT_LEADER;
}

bool raftio_configured(struct raftio *x)
{
	return x->started && x->r.configuration.n > 0;
}

static const struct raft_server *server_of(struct raftio *x, uint64_t id)
{
	if (!x->started)
		return NULL;
	for (unsigned i = 0; i < x->r.configuration.n; i++)
		if (x->r.configuration.servers[i].id == id)
			return &x->r.configuration.servers[i];
	return NULL;
}

bool raftio_voter(struct raftio *x, uint64_t id)
{
	const struct raft_server *s = server_of(x, id);
	return s != NULL && s->role == RAFT_VOTER;
}

bool raftio_in_config(struct raftio *x, uint64_t id)
{
	return server_of(x, id) != NULL;
}

size_t raftio_voters(struct raftio *x, uint64_t *ids, size_t n)
{
	size_t k = 0;
	if (!x->started)
		return 0;
	for (unsigned i = 0; i < x->r.configuration.n; i++) {
		if (x->r.configuration.servers[i].role != RAFT_VOTER)
			continue;
		if (k < n)
			ids[k] = x->r.configuration.servers[i].id;
		k++;
	}
	return k;
}

bool raftio_change_pending(struct raftio *x)
{
	return x->started && x->r.configuration_uncommitted_index != 0;
}

static struct raftio_req *new_req(struct raftio *x, void *arg)
{
	struct raftio_req *q = calloc(1, sizeof(*q));
	if (q != NULL) {
		q->x = x;
		q->arg = arg;
	}
	return q;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
	struct raftio_req *q = req->data;
	struct raftio *x = q->x;
	struct clusterfsm_result res = {.code = CLUSTERFSM_REJECTED};
	if (status == 0) {
		uint64_t seq = (uint64_t)(uintptr_t)result;
		if (seq != 0 && x->n_results - seq < RAFTIO_RESULTS)
			res = x->results[seq % RAFTIO_RESULTS];
		else
			snprintf(res.reason, sizeof(res.reason), "result no longer available");
	}
	q->propose_cb(q->arg, status, &res);
	free(q);
}

int raftio_propose(struct raftio *x, const struct clusterfsm_cmd *cmd, raftio_propose_cb cb,
                   void *arg)
{
	if (!raftio_is_leader(x))
		return RAFT_NOTLEADER;
	struct raftio_req *q = new_req(x, arg);
	void *base = raft_malloc(CLUSTERFSM_CMD_MAX);
	if (q == NULL || base == NULL) {
		free(q);
		raft_free(base);
		return RAFT_NOMEM;
	}
	ssize_t n = clusterfsm_cmd_encode(cmd, base, CLUSTERFSM_CMD_MAX);
	if (n < 0) {
		free(q);
		raft_free(base);
		return RAFT_INVALID;
	}
	struct raft_buffer buf = {.base = base, .len = (size_t)n};
	q->propose_cb = cb;
	q->u.apply.data = q;
	int rc = raft_apply(&x->r, &q->u.apply, &buf, 1, on_applied);
	if (rc != 0) {
		raft_free(base);
		free(q);
	}
	return rc;
}

static void on_change_done(struct raft_change *req, int status)
{
	struct raftio_req *q = req->data;
	q->done_cb(q->arg, status);
	free(q);
}

/* on_added continues an add with the promotion to voter. */
static void on_added(struct raft_change *req, int status)
{
	struct raftio_req *q = req->data;
	struct raftio *x = q->x;
	if (status == 0 && !x->closing) {
		memset(&q->u.change, 0, sizeof(q->u.change));
		q->u.change.data = q;
		int rc = raft_assign(&x->r, &q->u.change, q->id, RAFT_VOTER, on_change_done);
		if (rc == 0)
			return;
		status = rc;
	} else if (status == 0) {
		/* Added as a spare but never made a voter: not a success. */
		status = RAFT_CANCELED;
	}
	q->done_cb(q->arg, status);
	free(q);
}

int raftio_add_voter(struct raftio *x, uint64_t id, const char *address, raftio_done_cb cb,
                     void *arg)
{
	if (!raftio_is_leader(x))
		return RAFT_NOTLEADER;
	struct raftio_req *q = new_req(x, arg);
	if (q == NULL)
		return RAFT_NOMEM;
	q->done_cb = cb;
	q->id = id;
	q->u.change.data = q;
	int rc;
	if (server_of(x, id) == NULL)
		rc = raft_add(&x->r, &q->u.change, id, address, on_added);
	else
		rc = raft_assign(&x->r, &q->u.change, id, RAFT_VOTER, on_change_done);
	if (rc != 0)
		free(q);
	return rc;
}

int raftio_remove(struct raftio *x, uint64_t id, raftio_done_cb cb, void *arg)
{
	if (!raftio_is_leader(x))
		return RAFT_NOTLEADER;
	struct raftio_req *q = new_req(x, arg);
	if (q == NULL)
		return RAFT_NOMEM;
	q->done_cb = cb;
	q->u.change.data = q;
	int rc = raft_remove(&x->r, &q->u.change, id, on_change_done);
	if (rc != 0)
		free(q);
	return rc;
}

static void on_transferred(struct raft_transfer *req)
{
	struct raftio_req *q = req->data;
	q->done_cb(q->arg, raftio_is_leader(q->x) ? RAFT_NOTFOUND : 0);
	free(q);
}

int raftio_transfer(struct raftio *x, raftio_done_cb cb, void *arg)
{
	if (!raftio_is_leader(x))
		return RAFT_NOTLEADER;
	struct raftio_req *q = new_req(x, arg);
	if (q == NULL)
		return RAFT_NOMEM;
	q->done_cb = cb;
	q->u.transfer.data = q;
	int rc = raft_transfer(&x->r, &q->u.transfer, 0, on_transferred);
	if (rc != 0)
		free(q);
	return rc;
}

static void on_transport_closed(struct raft_uv_transport *t)
{
	struct raftio *x = t->data;
	transport_free(&x->t);
	x->t_ready = false;
	if (x->close_cb != NULL)
		x->close_cb(x->close_arg);
}

static void on_raft_closed(struct raft *r)
{
	struct raftio *x = r->data;
	raft_uv_close(&x->io);
	transport_free(&x->t);
	x->t_ready = x->io_ready = x->r_ready = false;
	if (x->close_cb != NULL)
		x->close_cb(x->close_arg);
}

void raftio_close(struct raftio *x, void (*cb)(void *arg), void *arg)
{
	x->closing = true;
	x->close_cb = cb;
	x->close_arg = arg;
	if (x->r_ready) {
		x->r.data = x;
		raft_close(&x->r, on_raft_closed);
		return;
	}
	if (x->io_ready) {
		raft_uv_close(&x->io);
		x->io_ready = false;
	}
	if (x->t_ready) {
		x->t.data = x;
		transport_close(&x->t, on_transport_closed);
		return;
	}
	if (cb != NULL)
		cb(arg);
}
