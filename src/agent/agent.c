/*
 * agent.c - efmd's life cycle: start, watch the local database, answer the
 * admin socket, reload on SIGHUP, stop cleanly on SIGTERM.  How it plugs
 * into the cluster and failover layers is agent_layers.c.
 */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef EFM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "admin.h"
#include "cluster.h"
#include "dbmon.h"
#include "fsutil.h"
#include "log.h"
#include "notify.h"
#include "preflight.h"
#include "script.h"
#include "version.h"

/* How often the lock file is checked for removal, in ms. */
#define LOCK_CHECK_INTERVAL_MS 5000

static void sd_notify_text(const char *text)
{
#ifdef EFM_HAVE_SYSTEMD
	sd_notify(0, text);
#else
	(void)text;
#endif
}

const char *agent_local_address(const struct agent *a)
{
	return a->cfg->bind.host;
}

void agent_emit(struct agent *a, enum notify_event ev, const struct notify_args *args)
{
	static const struct notify_args none;
	if (a->notify != NULL)
		notify_emit(a->notify, ev, args != NULL ? args : &none);
}

/* state_text is the "current state of the cluster" part of notification bodies. */
static void state_text(void *arg, char *buf, size_t len)
{
	struct agent *a = arg;
	const char *db = "not monitored (witness)";
	if (a->mon != NULL) {
		const struct dbmon_status *st = dbmon_status(a->mon);
		db = st->failed ? "declared failed" : st->last_ok ? "up" : "not answering";
	}
	snprintf(buf, len, "%s agent on %s, local database %s.", status_node_type_name(a->type),
	         agent_local_address(a), db);
}

/* set_type moves the agent's role and logs old -> new. */
void agent_set_type(struct agent *a, enum node_type type, const char *why)
{
	if (a->ready && a->type == type)
		return;
	if (a->ready)
		log_info("agent %s: role %s -> %s: %s", agent_local_address(a),
		         status_node_type_name(a->type), status_node_type_name(type), why);
	else
		log_info("agent %s: role %s: %s", agent_local_address(a),
		         status_node_type_name(type), why);
	a->type = type;
}

/* become_ready announces the role once it is known. */
static void become_ready(struct agent *a)
{
	if (a->ready)
		return;
	a->ready = true;
	static const enum notify_event started[] = {[NODE_MASTER] = NOTIFY_AGENT_STARTED_MASTER,
	                                            [NODE_STANDBY] = NOTIFY_AGENT_STARTED_STANDBY,
	                                            [NODE_WITNESS] = NOTIFY_AGENT_STARTED_WITNESS,
	                                            [NODE_IDLE] = NOTIFY_AGENT_STARTED_STANDBY};
	agent_emit(a, started[a->type], NULL);
	sd_notify_text("READY=1\nSTATUS=monitoring");
}

static const char *conn_error_text(enum db_conn_error e)
{
	switch (e) {
	case DB_ERR_TOO_MANY_CONNECTIONS:
		return "the maximum number of connections has been reached";
	case DB_ERR_BAD_PASSWORD:
		return "the password was refused";
	case DB_ERR_BAD_AUTHORIZATION:
		return "the server refused the user or database (pg_hba.conf, role, grants)";
	case DB_ERR_TIMEOUT:
		return "no answer in time";
	default:
		return "connection failed";
	}
}

static void on_db_failure_script(const struct script_result *r, void *arg)
{
	struct agent *a = arg;
	char how[128];
	a->db_failure_script = NULL;
	script_result_describe(r, how, sizeof(how));
	struct notify_args args = {
	    .script = a->cfg->script_db_failure, .exit_code = how, .results = r->output};
	agent_emit(
	    a, script_ok(r) ? NOTIFY_SCRIPT_DB_FAILURE_EXECUTED : NOTIFY_SCRIPT_DB_FAILURE_FAILED,
	    &args);
}

/* run_db_failure_script runs script.db.failure, if set, once per declared failure. */
static void run_db_failure_script(struct agent *a)
{
	if (a->cfg->script_db_failure[0] == '\0' || a->db_failure_script != NULL)
		return;
	char e_cluster[192], e_node[EFM_HOST_MAX + 16], e_role[64];
	snprintf(e_cluster, sizeof(e_cluster), "EFM_CLUSTER=%s", a->cluster);
	snprintf(e_node, sizeof(e_node), "EFM_NODE=%s", agent_local_address(a));
	snprintf(e_role, sizeof(e_role), "EFM_ROLE=%s",
	         a->mon != NULL && dbmon_status(a->mon)->last.role == DB_ROLE_MASTER ? "Master"
	                                                                             : "Standby");
	const char *env[] = {e_cluster, e_node, e_role, "EFM_EVENT=db.failure"};
	struct script_spec spec = {.what = "database-failure script",
	                           .path = a->cfg->script_db_failure,
	                           .env = env,
	                           .n_env = sizeof(env) / sizeof(env[0]),
	                           .timeout_ms = (uint64_t)a->cfg->script_timeout_s * 1000};
	log_info("agent %s: running script.db.failure %s", agent_local_address(a), spec.path);
	a->db_failure_script = script_start(a->loop, &spec, on_db_failure_script, a);
}

/* connect_failure_event maps why the database refused us to the guide's notification. */
static enum notify_event connect_failure_event(enum db_conn_error e)
{
	switch (e) {
	case DB_ERR_TOO_MANY_CONNECTIONS:
		return NOTIFY_DB_CONNECT_TOO_MANY;
	case DB_ERR_BAD_PASSWORD:
		return NOTIFY_DB_CONNECT_BAD_PASSWORD;
	case DB_ERR_BAD_AUTHORIZATION:
		return NOTIFY_DB_CONNECT_BAD_AUTHORIZATION;
	default:
		return NOTIFY_AGENT_EXITED_STARTUP;
	}
}

/* on_dbmon turns the monitor's observations into the agent's decisions. */
static void on_dbmon(void *arg, enum dbmon_event ev, const struct dbmon_status *st)
{
	struct agent *a = arg;
	const char *addr = agent_local_address(a);

	switch (ev) {
	case DBMON_STARTED:
		agent_set_type(a, st->last.role == DB_ROLE_MASTER ? NODE_MASTER : NODE_STANDBY,
		               st->last.role == DB_ROLE_MASTER ? "pg_is_in_recovery() is false"
		                                               : "pg_is_in_recovery() is true");
		become_ready(a);
		break;
	case DBMON_START_FAILED:
		log_severe("db %s:%d: unable to connect to the database at start: %s (%s)",
		           a->cfg->db_host, a->cfg->db_port, conn_error_text(st->conn_error),
		           st->error);
		log_severe("agent %s: exiting: the local database must be reachable when the agent "
		           "starts",
		           addr);
		if (connect_failure_event(st->conn_error) != NOTIFY_AGENT_EXITED_STARTUP) {
			struct notify_args args = {.error = st->error};
			agent_emit(a, connect_failure_event(st->conn_error), &args);
		}
		agent_stop(a, AGENT_EXIT_FAILURE, "database unreachable at start");
		break;
	case DBMON_TIMING_OUT:
		log_warning(
		    "db %s:%d: no successful check for %d s (local.timeout); making a final "
		    "check bounded by %d s (local.timeout.final)",
		    a->cfg->db_host, a->cfg->db_port, a->cfg->local_timeout_s,
		    a->cfg->local_timeout_final_s);
		break;
	case DBMON_RECOVERED:
		log_warning("db %s:%d: the agent timed out reaching the database but the final "
		            "check succeeded; monitoring resumed",
		            a->cfg->db_host, a->cfg->db_port);
		agent_emit(a, NOTIFY_AGENT_TIMING_OUT, NULL);
		break;
	case DBMON_FAILED:
		log_severe("db %s:%d: %s database failure for cluster %s: declared failed (%s)",
		           a->cfg->db_host, a->cfg->db_port, status_node_type_name(a->type),
		           a->cluster, st->error[0] ? st->error : "no answer");
		struct notify_args args = {.role = status_node_type_name(a->type),
		                           .error = st->error};
		agent_emit(a, NOTIFY_DB_FAILURE, &args);
		agent_set_type(a, NODE_IDLE,
		               "local database declared failed; monitoring stopped until "
		               "'efm resume'");
		run_db_failure_script(a);
		break;
	case DBMON_ROLE_CHANGED:
		log_warning("db %s:%d: pg_is_in_recovery() changed: the database is now a %s",
		            a->cfg->db_host, a->cfg->db_port,
		            st->last.role == DB_ROLE_MASTER ? "master" : "standby");
		if (st->last.role == DB_ROLE_MASTER && failover_expects_master(&a->fo)) {
			a->fo.expect_master = false;
			agent_set_type(a, NODE_MASTER, "the cluster promoted the local database");
		} else if (a->type != NODE_IDLE)
			agent_set_type(a, NODE_IDLE,
			               "the database changed role outside efm; 'efm resume' after "
			               "checking it");
		break;
	}
}

/*
 * on_db_alert: the database could not be checked, but not because it is
 * down (the monitor declares no failure): tell the operator once per
 * episode.  A server refusing for too many clients is the guide's
 * "too many connections" notification; the agent's own lack of
 * descriptors or memory is logged SEVERE by the monitor.
 */
static void on_db_alert(void *arg, enum db_verdict why, const struct dbmon_status *st)
{
	struct agent *a = arg;
	if (why == DB_VERDICT_BUSY) {
		struct notify_args args = {.error = st->error};
		agent_emit(a, NOTIFY_DB_CONNECT_TOO_MANY, &args);
	}
}

/* on_housekeeping notices a removed lock file (it no longer protects the node). */
static void on_housekeeping(uv_timer_t *t)
{
	struct agent *a = t->data;
	const struct lockfile *gone = !lockfile_intact(&a->lock)         ? &a->lock
	                              : !lockfile_intact(&a->state_lock) ? &a->state_lock
	                                                                 : NULL;
	if (gone != NULL && !a->lock_warned) {
		struct notify_args args = {.path = gone->path};
		agent_emit(a, NOTIFY_LOCK_REMOVED, &args);
	}
	a->lock_warned = gone != NULL;
}

/* reload re-reads the configuration; only the log level and the notification settings apply at
 * once. */
static void reload(struct agent *a)
{
	struct problems pr = {0};
	struct efm_config *cfg = preflight_load(a->paths.config_dir, a->cluster, NULL, 0, &pr);
	if (cfg == NULL || problems_total(&pr) > 0) {
		char more[128];
		log_warning("agent %s: reload refused, the configuration has %zu problem(s); the "
		            "running configuration stays",
		            agent_local_address(a), problems_total(&pr));
		for (size_t i = 0; i < pr.n; i++)
			log_warning("%s", pr.msgs[i]);
		if (problems_more(&pr, more, sizeof(more)))
			log_warning("%s", more);
		problems_free(&pr);
		config_free(cfg);
		return;
	}
	problems_free(&pr);
	if (cfg->efm_loglevel != a->cfg->efm_loglevel) {
		log_info("agent %s: efm.loglevel %s -> %s", agent_local_address(a),
		         log_level_name(a->cfg->efm_loglevel), log_level_name(cfg->efm_loglevel));
		log_set_level(cfg->efm_loglevel);
	}
	log_info("agent %s: configuration reloaded from %s (database and network settings take "
	         "effect at the next restart)",
	         agent_local_address(a), cfg->props_path);
	/*
	 * Besides a->cfg only the notifier keeps a pointer to a reloaded
	 * configuration (what it sends copies what it needs), so once it has the
	 * new one the old is unreferenced, unless it is the start-up one.
	 */
	if (a->notify != NULL)
		notify_set_config(a->notify, cfg);
	struct efm_config *old = a->cfg;
	a->cfg = cfg;
	if (old != a->start_cfg)
		config_free(old);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;
	switch (signum) {
	case SIGTERM:
	case SIGINT:
		agent_stop(a, AGENT_EXIT_OK, signum == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP:
		reload(a);
		break;
	case SIGUSR1:
		if (log_reopen() < 0)
			log_warning("agent: could not reopen the log file: %s", strerror(errno));
		break;
	}
}

static void close_handle(uv_handle_t *h)
{
	if (h->loop != NULL && !uv_is_closing(h))
		uv_close(h, NULL);
}

void agent_stop(struct agent *a, int exit_code, const char *why)
{
	if (a->stopping)
		return;
	a->stopping = true;
	a->exit_code = exit_code;
	log_info("agent %s: stopping (%s)", a->cfg ? agent_local_address(a) : "?", why);
	sd_notify_text("STOPPING=1");
	if (a->ready) {
		static const enum notify_event exited[] = {
		    [NODE_MASTER] = NOTIFY_AGENT_EXITED_MASTER,
		    [NODE_STANDBY] = NOTIFY_AGENT_EXITED_STANDBY,
		    [NODE_WITNESS] = NOTIFY_AGENT_EXITED_WITNESS,
		    [NODE_IDLE] = NOTIFY_AGENT_EXITED_IDLE};
		agent_emit(a, exited[a->type], NULL);
	} else {
		struct notify_args args = {.error = why};
		agent_emit(a, NOTIFY_AGENT_EXITED_STARTUP, &args);
	}
	if (a->db_failure_script != NULL)
		script_cancel(a->db_failure_script);
	if (a->notify != NULL) {
		/* Bounded: pending mail gets a few seconds, then is dropped with a log line. */
		notify_close(a->notify, NULL, NULL);
		a->notify = NULL;
	}
	if (a->admin != NULL) {
		admin_server_close(a->admin);
		a->admin = NULL;
	}
	if (a->mon != NULL) {
		dbmon_close(a->mon, NULL, NULL);
		a->mon = NULL;
	}
	failover_close(&a->fo);
	if (a->cl != NULL) {
		/* A clean stop leaves the membership; stop-cluster and failures keep it. */
		cluster_shutdown(a->cl, exit_code == AGENT_EXIT_OK, NULL, NULL);
		a->cl = NULL;
	}
	close_handle((uv_handle_t *)&a->sig_term);
	close_handle((uv_handle_t *)&a->sig_int);
	close_handle((uv_handle_t *)&a->sig_hup);
	close_handle((uv_handle_t *)&a->sig_usr1);
	close_handle((uv_handle_t *)&a->housekeeping);
}

/* make_dir creates path (mode) if missing; existing directories are fine. */
static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

/*
 * load_config reads the configuration and makes every start-up check on it,
 * the same as prop-check (preflight.h); false after logging every problem.
 */
static bool load_config(struct agent *a)
{
	struct problems pr = {0};
	a->cfg =
	    preflight_load(a->paths.config_dir, a->cluster, a->password, sizeof(a->password), &pr);
	if (a->cfg == NULL || problems_total(&pr) > 0) {
		char more[128];
		for (size_t i = 0; i < pr.n; i++)
			log_severe("%s", pr.msgs[i]);
		if (problems_more(&pr, more, sizeof(more)))
			log_severe("%s", more);
		log_severe("cluster %s: refusing to start: %zu problem(s) in the configuration in "
		           "%s ('efm prop-check %s' lists them)",
		           a->cluster, problems_total(&pr), a->paths.config_dir, a->cluster);
		problems_free(&pr);
		return false;
	}
	problems_free(&pr);
	a->start_cfg = a->cfg;
	log_set_level(a->cfg->efm_loglevel);
	return true;
}

/* take_lock holds one lock file; 0, or the exit code after saying what is wrong. */
static int take_lock(struct agent *a, struct lockfile *lf, const char *path, const char *scope)
{
	pid_t holder = 0;
	char why[256];
	int rc = lockfile_acquire(lf, path, &holder, why, sizeof(why));
	if (rc == 0)
		return 0;
	if (rc == -EWOULDBLOCK) {
		log_severe("cluster %s: another agent (pid %ld) is already running %s (lock %s)",
		           a->cluster, (long)holder, scope, path);
		return AGENT_EXIT_LOCKED;
	}
	log_severe("cluster %s: lock file %s: %s", a->cluster, path, why);
	return rc == -EAGAIN ? AGENT_EXIT_LOCKED : AGENT_EXIT_CANTCREAT;
}

/*
 * take_locks holds RUN_DIR/CLUSTER.lock, one agent per cluster on this node,
 * and STATE_DIR/CLUSTER/efmd.lock, one agent per Raft state: a second agent
 * with its own run directory and address must not share the first one's
 * state.  Returns 0, or the exit code after saying why.
 */
static int take_locks(struct agent *a)
{
	char path[4096], dir[4096], scope[4200];
	snprintf(path, sizeof(path), "%s/%s.lock", a->paths.run_dir, a->cluster);
	int code = take_lock(a, &a->lock, path, "for this cluster on this node");
	if (code != 0)
		return code;
	snprintf(dir, sizeof(dir), "%s/%s", a->paths.state_dir, a->cluster);
	/* 0700 as the Raft directory inside it, which used to create it. */
	int rc = fsutil_mkdirs(dir, 0700);
	if (rc < 0) {
		log_severe("cluster %s: cannot create the state directory %s: %s", a->cluster, dir,
		           strerror(-rc));
		lockfile_release(&a->lock);
		return AGENT_EXIT_CANTCREAT;
	}
	snprintf(path, sizeof(path), "%s/efmd.lock", dir);
	snprintf(scope, sizeof(scope), "on the state directory %s", dir);
	code = take_lock(a, &a->state_lock, path, scope);
	if (code != 0)
		lockfile_release(&a->lock);
	return code;
}

static int start_signals(struct agent *a)
{
	struct {
		uv_signal_t *h;
		int sig;
	} sigs[] = {{&a->sig_term, SIGTERM},
	            {&a->sig_int, SIGINT},
	            {&a->sig_hup, SIGHUP},
	            {&a->sig_usr1, SIGUSR1}};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		int rc = uv_signal_init(a->loop, sigs[i].h);
		if (rc < 0)
			return rc;
		sigs[i].h->data = a;
		rc = uv_signal_start(sigs[i].h, on_signal, sigs[i].sig);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* start_services brings up signals, the admin socket and the monitor; false on failure. */
static bool start_services(struct agent *a)
{
	int rc = start_signals(a);
	if (rc < 0) {
		log_severe("agent: cannot install signal handlers: %s", uv_strerror(rc));
		return false;
	}
	uv_timer_init(a->loop, &a->housekeeping);
	a->housekeeping.data = a;
	uv_timer_start(&a->housekeeping, on_housekeeping, LOCK_CHECK_INTERVAL_MS,
	               LOCK_CHECK_INTERVAL_MS);

	snprintf(a->socket_path, sizeof(a->socket_path), "%s/%s.sock", a->paths.run_dir,
	         a->cluster);
	rc = admin_server_start(a->loop, a->socket_path, agent_admin_commands,
	                        agent_admin_n_commands, a, &a->admin);
	if (rc < 0) {
		log_severe("agent: cannot listen on the admin socket %s: %s", a->socket_path,
		           uv_strerror(rc));
		return false;
	}
	if (!agent_start_cluster(a))
		return false;

	if (a->cfg->is_witness) {
		agent_set_type(a, NODE_WITNESS, "is.witness=true: no local database");
		become_ready(a);
		return true;
	}
	a->mon = dbmon_new(a->loop, a->cfg, a->password, on_dbmon, a);
	if (a->mon != NULL)
		dbmon_set_alert(a->mon, on_db_alert, a);
	if (a->mon == NULL || dbmon_start(a->mon) < 0) {
		log_severe("agent: cannot start the database monitor");
		return false;
	}
	return true;
}

/*
 * raise_nofile lifts the soft descriptor limit to the hard one: every admin
 * client, database probe and peer link takes a descriptor, and a monitor
 * that cannot get one learns nothing about its database.  The admin server
 * sizes its client cap from the limit in force, so this runs before it.
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warning("agent: cannot raise the open file limit from %llu to %llu: %s",
		            (unsigned long long)was, (unsigned long long)rl.rlim_max,
		            strerror(errno));
	else
		log_config("agent: open file limit raised from %llu to %llu",
		           (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

static void free_agent(struct agent *a)
{
	if (a->cfg != a->start_cfg)
		config_free(a->cfg);
	config_free(a->start_cfg);
	free(a->cluster);
	explicit_bzero(a->password, sizeof(a->password));
}

int agent_run(const char *cluster, const struct agent_paths *paths)
{
	struct agent a = {
	    .paths = *paths, .type = NODE_IDLE, .lock = {.fd = -1}, .state_lock = {.fd = -1}};
	a.cluster = strdup(cluster);
	if (a.cluster == NULL)
		return AGENT_EXIT_FAILURE;

	if (paths->log_file != NULL && log_open(paths->log_file) < 0) {
		fprintf(stderr, "efmd: cannot open log file %s: %s\n", paths->log_file,
		        strerror(errno));
		free_agent(&a);
		return AGENT_EXIT_FAILURE;
	}
	log_info("efmd %s starting for cluster %s (config %s, state %s, run %s)", EFM_VERSION,
	         cluster, paths->config_dir, paths->state_dir, paths->run_dir);

	if (!load_config(&a)) {
		free_agent(&a);
		return AGENT_EXIT_CONFIG;
	}
	int rc = make_dir(paths->run_dir, 0755);
	if (rc == 0)
		rc = make_dir(paths->state_dir, 0755);
	if (rc < 0) {
		log_severe("agent: cannot create %s or %s: %s", paths->run_dir, paths->state_dir,
		           strerror(-rc));
		free_agent(&a);
		return AGENT_EXIT_FAILURE;
	}
	int code = take_locks(&a);
	if (code != 0) {
		free_agent(&a);
		return code;
	}

	/* A peer closing a socket must be an error return, not a dead agent. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	uv_loop_t loop;
	uv_loop_init(&loop);
	a.loop = &loop;
	a.notify = notify_new(&loop, a.cfg, a.cfg->bind.host);
	if (a.notify != NULL)
		notify_set_state_fn(a.notify, state_text, &a);

	if (!start_services(&a))
		agent_stop(&a, AGENT_EXIT_FAILURE, "start-up failed");
	uv_run(&loop, UV_RUN_DEFAULT);
	if (!a.stopping)
		agent_stop(&a, AGENT_EXIT_FAILURE, "event loop ended");
	uv_run(&loop, UV_RUN_DEFAULT); /* let the close callbacks run */
	if (uv_loop_close(&loop) != 0)
		log_warning("agent: handles still open at exit");

	lockfile_release(&a.state_lock);
	lockfile_release(&a.lock);
	code = a.exit_code;
	free_agent(&a);
	return code;
}
