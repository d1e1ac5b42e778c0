/*
 * cluster_reset_op.h - the coordinator's state of one reset-members, shared
 * by its two halves: the probes and the choice of the set and its source
 * (cluster_reset_probe.c), then the prepare, commit and abort steps
 * (cluster_reset_coord.c, which describes the protocol).
 */
#ifndef EFM_CLUSTER_RESET_OP_H
#define EFM_CLUSTER_RESET_OP_H

#include "cluster_int.h"

/* What the probe of a participant found. */
enum reset_answer { ANS_WAITING, ANS_UNREACHABLE, ANS_NO_LEADER, ANS_HAS_LEADER, ANS_REFUSED };

/*
 * The steps sent to the participants after the probes: the prepare, then
 * the commit, or the abort instead of whichever failed.
 */
enum reset_step { RESET_PREPARE, RESET_COMMIT, RESET_ABORT, RESET_STEPS };

/* The answer of a participant to one step. */
enum step_answer { STEP_NONE, STEP_OK, STEP_REFUSED, STEP_SILENT };

struct reset_op;

struct reset_peer {
	struct reset_op *op;
	uint64_t id;
	char address[CLUSTERFSM_ADDR_MAX];
	enum reset_answer ans;
	bool configured;    /* it has a log (an empty one only takes the source's) */
	uint64_t last_term; /* its last log entry, from the probe */
	uint64_t last_index;
	enum step_answer step[RESET_STEPS];
	char detail[192];
};

struct reset_op {
	struct cluster *c;
	struct admin_request *req; /* NULL once the operator has the answer */
	size_t n;                  /* other servers of the configuration */
	size_t voters;             /* voters of the configuration, this agent included */
	int pending;               /* calls of the probe or of the current step in flight */
	enum reset_step step;      /* the step in flight, once the probes are done */
	uint64_t rid;              /* random id of this reset, carried by every step */
	struct reset_peer p[CLUSTERFSM_MAX_NODES];
};

/* reset_end_op answers the operator (reply taken); op is freed once nothing is in flight. */
void reset_end_op(struct reset_op *op, cJSON *reply);
/* reset_msg builds a reset request of type carrying our address and, but for the probe, rid. */
cJSON *reset_msg(struct cluster *c, const char *type, uint64_t rid);
/* reset_send_prepare starts phase 1 with c->reset_set, the probes being done. */
void reset_send_prepare(struct reset_op *op);

#endif
