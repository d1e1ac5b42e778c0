/*
 * agent.h - the one agent context of efmd: configuration, the local
 * database monitor, the admin socket, signals.  Everything hangs off one
 * struct agent and runs on its loop; there are no other mutable globals.
 */
#ifndef EFM_AGENT_H
#define EFM_AGENT_H

#include <stdbool.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "failover.h"
#include "lockfile.h"
#include "status.h"

struct dbmon;
struct admin_server;
struct notifier;
struct cluster;
struct script_run;

/* Named exit codes of efmd. */
enum agent_exit {
	AGENT_EXIT_OK = 0,
	AGENT_EXIT_FAILURE = 1,    /* runtime failure (database unreachable at start...) */
	AGENT_EXIT_USAGE = 2,      /* bad command line */
	AGENT_EXIT_CONFIG = 78,    /* EX_CONFIG: the configuration is invalid */
	AGENT_EXIT_CANTCREAT = 73, /* EX_CANTCREAT: a lock path is unusable (a directory...) */
	AGENT_EXIT_LOCKED = 75,    /* EX_TEMPFAIL: another agent runs this cluster here */
	AGENT_EXIT_REFUSED = 77,   /* EX_NOPERM: the cluster refused to admit this node */
};

struct agent_paths {
	const char *config_dir;
	const char *state_dir;
	const char *run_dir;
	const char *log_file; /* NULL: stderr */
};

struct agent {
	uv_loop_t *loop;
	struct agent_paths paths;
	char *cluster;
	struct efm_config *cfg; /* current configuration */
	/*
	 * The configuration the agent started with.  The cluster layer and the
	 * database monitor keep pointers into it until they close (their settings
	 * change only with a restart), so it lives until exit; every later one is
	 * freed as soon as a reload replaces it.
	 */
	struct efm_config *start_cfg;
	char password[256]; /* decrypted db password, "" for .pgpass */

	struct lockfile lock;       /* RUN_DIR/CLUSTER.lock */
	struct lockfile state_lock; /* STATE_DIR/CLUSTER/efmd.lock */
	char socket_path[4096];
	struct dbmon *mon;
	struct admin_server *admin;
	struct notifier *notify;
	struct cluster *cl;                   /* the cluster layer (cluster.h) */
	struct failover fo;                   /* the failover engine (failover.h) */
	struct script_run *db_failure_script; /* script.db.failure while it runs */

	uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
	uv_timer_t housekeeping; /* lock file watch */
	bool lock_warned;

	enum node_type type; /* Master / Standby / Witness / Idle */
	bool ready;          /* role known, READY sent */
	bool stopping;
	int exit_code;
};

/*
 * agent_run sets up everything, runs the loop until the agent stops, and
 * tears down.  Returns the process exit code.
 */
int agent_run(const char *cluster, const struct agent_paths *paths);

/* agent_stop begins a clean stop with the given exit code (idempotent). */
void agent_stop(struct agent *a, int exit_code, const char *why);

/* agent_set_type moves the agent's role (Master/Standby/Witness/Idle), logging old -> new and why.
 */
void agent_set_type(struct agent *a, enum node_type type, const char *why);

/* agent_emit sends a notification (always logged) through the agent's funnel. */
void agent_emit(struct agent *a, enum notify_event ev, const struct notify_args *args);

/* agent_start_cluster (agent_layers.c) listens on bind.address and begins joining; false on
 * failure. */
bool agent_start_cluster(struct agent *a);

/* agent_local_address: the address other nodes and the status know us by. */
const char *agent_local_address(const struct agent *a);

/* agent_status_local_node fills this node's status row and messages (agent_cmds.c). */
void agent_status_local_node(void *arg, struct status_model *m, struct status_node *n);

/* agent_cmds.c: the admin command table. */
extern const struct admin_command agent_admin_commands[];
extern const size_t agent_admin_n_commands;

#endif
