/*
 * fo_fence.c - fence the local database (fo_local.h): stop it at once and
 * leave standby.signal in its data directory, so it can neither take writes
 * now nor come back as a master after a restart.
 *
 * Steps:
 *   owner   (thread pool) who owns the data directory, where runuser is,
 *           whether pg_ctl is there: user lookups may ask NSS over the
 *           network, so never on the loop
 *   status  pg_ctl status: 3 = not running, 0 = running
 *   stop    pg_ctl stop -m immediate, then status again to be sure
 *   signal  (thread pool) create <data dir>/standby.signal, 0600, owner's
 * The signal step runs even when the stop failed: a server that will not
 * stop still must not come back as a master.
 *
 * The same steps serve a switchover's server control (fo_stop_db,
 * fo_start_db): a clean stop (-m fast, so that the standbys receive every
 * byte) followed by pg_controldata for the final checkpoint's position,
 * and a start, as a standby (standby.signal first) or as it was.  The
 * rewind of an old master (fo_rewind.c) starts with the same steps.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fo_fence_int.h"
#include "log.h"

/* -- thread-pool steps ------------------------------------------------------ */

/*
 * postmaster_gone: the data directory's postmaster.pid names a process that
 * has exited, or has exited and waits to be reaped (a zombie, which
 * pg_ctl status still counts as running: pg_ctl stop then waits for it in
 * vain).  False whenever in doubt, so pg_ctl decides.
 */
static bool postmaster_gone(const char *datadir)
{
	char path[PATH_MAX + 32], line[64], stat[512];
	snprintf(path, sizeof(path), "%s/postmaster.pid", datadir);
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return false;
	bool got = fgets(line, sizeof(line), fp) != NULL;
	fclose(fp);
	char *end = NULL;
	long pid = got ? strtol(line, &end, 10) : 0;
	if (!got || pid <= 0 || end == line)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fp = fopen(path, "re");
	if (fp == NULL)
		return errno == ENOENT;
	got = fgets(stat, sizeof(stat), fp) != NULL;
	fclose(fp);
	/* "pid (comm) S ...": the state follows the last ')' */
	const char *close = got ? strrchr(stat, ')') : NULL;
	return close != NULL && close[1] == ' ' && close[2] == 'Z';
}

/* find_owner fills uid, gid, owner from db.service.owner or the data directory. */
static void find_owner(struct fo_action *a)
{
	struct fence *f = a->kind;
	char buf[4096];
	struct passwd pw, *res = NULL;
	f->as_root = geteuid() == 0;

	if (f->owner[0] != '\0') {
		int rc = getpwnam_r(f->owner, &pw, buf, sizeof(buf), &res);
		if (res == NULL) {
			snprintf(f->err, sizeof(f->err), "db.service.owner %s: %s", f->owner,
			         rc != 0 ? strerror(rc) : "no such user");
			return;
		}
		f->uid = pw.pw_uid;
		f->gid = pw.pw_gid;
	} else {
		struct stat st;
		int serr = stat(f->datadir, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
		if (serr != 0) {
			snprintf(f->err, sizeof(f->err),
			         "db.recovery.conf.dir %s: cannot use it as the data directory: %s",
			         f->datadir, strerror(serr));
			return;
		}
		f->uid = st.st_uid;
		f->gid = st.st_gid;
		int rc = getpwuid_r(st.st_uid, &pw, buf, sizeof(buf), &res);
		if (res == NULL && f->as_root) {
			snprintf(f->err, sizeof(f->err),
			         "the owner (uid %u) of the data directory %s has no user name "
			         "(%s); set db.service.owner",
			         (unsigned)st.st_uid, f->datadir,
			         rc != 0 ? strerror(rc) : "not found");
			return;
		}
		snprintf(f->owner, sizeof(f->owner), "%s", res != NULL ? pw.pw_name : "");
	}

	if (access(f->pg_ctl, X_OK) != 0) {
		snprintf(f->err, sizeof(f->err), "db.bin: cannot run %s: %s", f->pg_ctl,
		         strerror(errno));
		return;
	}
	if (f->as_root) {
		static const char *const runusers[] = {"/usr/sbin/runuser", "/sbin/runuser",
		                                       "/usr/bin/runuser", "/bin/runuser"};
		for (size_t i = 0; i < sizeof(runusers) / sizeof(runusers[0]); i++) {
			if (f->runuser[0] == '\0' && access(runusers[i], X_OK) == 0)
				snprintf(f->runuser, sizeof(f->runuser), "%s", runusers[i]);
		}
		if (f->runuser[0] == '\0') {
			snprintf(
			    f->err, sizeof(f->err),
			    "runuser not found: cannot run pg_ctl as %s (the agent runs as root)",
			    f->owner);
			return;
		}
	}
	f->postmaster_gone = postmaster_gone(f->datadir);
	/*
	 * Before a start (or pg_rewind, which starts the server alone), a
	 * postmaster.pid naming an exited or unreaped postmaster would make
	 * the new server refuse ("another server might be running"): it is
	 * stale, so it goes.
	 */
	if (f->postmaster_gone && f->mode != MODE_FENCE && f->mode != MODE_STOP_CLEAN) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/postmaster.pid", f->datadir);
		if (unlink(path) != 0 && errno != ENOENT)
			snprintf(f->err, sizeof(f->err), "cannot remove the stale %s: %s", path,
			         strerror(errno));
	}
}

void fence_write_signal(struct fo_action *a)
{
	struct fence *f = a->kind;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/standby.signal", f->datadir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		f->signal_existed = true;
		fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(f->err, sizeof(f->err), "cannot create %s: %s", path, strerror(errno));
		return;
	}
	if ((f->as_root && fchown(fd, f->uid, f->gid) != 0) || fchmod(fd, 0600) != 0 ||
	    fsync(fd) != 0) {
		snprintf(f->err, sizeof(f->err), "cannot set up %s: %s", path, strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	/* The file must survive a crash of the node, not only of the server. */
	int dfd = open(f->datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		snprintf(f->err, sizeof(f->err), "cannot sync the directory %s: %s", f->datadir,
		         strerror(errno));
	if (dfd >= 0)
		close(dfd);
}

/* -- loop steps ------------------------------------------------------------- */

static void status_step(struct fo_action *a);

void fence_run_as_owner(struct fo_action *a, const char *what, const char *prog,
                        const char *const *args, size_t n, const char *const *env, size_t n_env,
                        fo_run_cb done)
{
	struct fence *f = a->kind;
	const char *argv[16];
	size_t k = 0;
	const char *path = prog;
	if (f->runuser[0] != '\0') {
		path = f->runuser;
		argv[k++] = "-u";
		argv[k++] = f->owner;
		argv[k++] = "--";
		argv[k++] = prog;
	}
	for (size_t i = 0; i < n && k < sizeof(argv) / sizeof(argv[0]); i++)
		argv[k++] = args[i];
	char label[192];
	snprintf(label, sizeof(label), "%s%s%s", what, f->runuser[0] ? " as " : "",
	         f->runuser[0] ? f->owner : "");
	fo__run(a, label, path, argv, k, env, n_env, fo__remaining_ms(a), done);
}

/* run_pg_ctl runs pg_ctl with args as the data directory's owner. */
static void run_pg_ctl(struct fo_action *a, const char *const *args, size_t n, fo_run_cb done)
{
	struct fence *f = a->kind;
	char what[64];
	snprintf(what, sizeof(what), "pg_ctl %s", args[0]);
	fence_run_as_owner(a, what, f->pg_ctl, args, n, NULL, 0, done);
}

static void start_step(struct fo_action *a);

static void on_signal_written(struct fo_action *a)
{
	struct fence *f = a->kind;
	if (f->mode == MODE_START_STANDBY) {
		if (f->err[0] != '\0')
			fo__finish(a, false, "%s", f->err);
		else
			start_step(a);
		return;
	}
	const char *sig =
	    f->signal_existed ? "standby.signal already present" : "standby.signal created";
	if (f->err[0] != '\0') {
		fo__finish(a, false, "%s%s%s", f->stop_failure, f->stop_failure[0] ? "; " : "",
		           f->err);
		return;
	}
	if (f->stop_failure[0] != '\0') {
		fo__finish(a, false, "%s; %s", f->stop_failure, sig);
		return;
	}
	fo__finish(a, true, "%s, %s in %s",
	           f->was_running ? "server stopped (immediate)" : "server already stopped", sig,
	           f->datadir);
}

static void signal_step(struct fo_action *a)
{
	fo__step(a, "writing standby.signal");
	fo__work(a, fence_write_signal, on_signal_written);
}

/* pg_ctl_failure describes a pg_ctl run that did not do what was asked. */
static void pg_ctl_failure(struct fo_action *a, const char *what, const struct script_result *r,
                           char *out, size_t outlen)
{
	char how[128], line[256];
	script_result_describe(r, how, sizeof(how));
	fo__first_line(fo_action_output(a), line, sizeof(line));
	snprintf(out, outlen, "pg_ctl %s failed: %s%s%s", what, how, line[0] ? ": " : "", line);
}

static void on_controldata(struct fo_action *a, const struct script_result *r)
{
	struct fence *f = a->kind;
	char why[FO_DETAIL_MAX / 2];
	if (!script_ok(r)) {
		script_result_describe(r, why, sizeof(why));
		fo__finish(a, false, "server stopped, but pg_controldata failed: %s", why);
		return;
	}
	/* only a clean shutdown's checkpoint is the end of the WAL the standbys must have */
	static const char key[] = "Database cluster state:";
	const char *state = strstr(fo_action_output(a), key);
	if (state != NULL) {
		state += strlen(key);
		state += strspn(state, " \t");
	}
	if (state == NULL || strncmp(state, "shut down\n", 10) != 0) {
		fo__finish(a, false,
		           "the server did not shut down cleanly (pg_controldata): its last "
		           "checkpoint is not its final position");
		return;
	}
	fo__finish(a, true, "%s (fast), final checkpoint read by pg_controldata",
	           f->was_running ? "server stopped" : "server already stopped");
}

/* controldata_step runs pg_controldata: its output is the action's (fo_stop_db). */
static void controldata_step(struct fo_action *a)
{
	struct fence *f = a->kind;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/pg_controldata", f->bin);
	const char *args[] = {"-D", f->datadir};
	const char *env[] = {"LC_ALL=C"};
	fo__run(a, "pg_controldata", path, args, 2, env, 1, fo__remaining_ms(a), on_controldata);
}

static void on_start(struct fo_action *a, const struct script_result *r)
{
	char why[FO_DETAIL_MAX / 2];
	if (!script_ok(r)) {
		pg_ctl_failure(a, "start", r, why, sizeof(why));
		fo__finish(a, false, "%s", why);
		return;
	}
	struct fence *f = a->kind;
	fo__finish(a, true, "server started%s",
	           f->mode == MODE_START_STANDBY ? " as a standby (standby.signal)" : "");
}

static void start_step(struct fo_action *a)
{
	struct fence *f = a->kind;
	char secs[16], logfile[PATH_MAX + 32];
	uint64_t left = fo__remaining_ms(a);
	snprintf(secs, sizeof(secs), "%llu",
	         (unsigned long long)(left > 2000 ? (left - 1000) / 1000 : 1));
	/* The server's own output must not hold the pipe pg_ctl is read through. */
	snprintf(logfile, sizeof(logfile), "%s/efm-start.log", f->datadir);
	const char *args[] = {"start", "-D", f->datadir, "-w", "-t", secs, "-l", logfile};
	fo__step(a, "starting the server");
	run_pg_ctl(a, args, 8, on_start);
}

static void on_stop(struct fo_action *a, const struct script_result *r)
{
	struct fence *f = a->kind;
	if (!script_ok(r))
		pg_ctl_failure(a, "stop", r, f->stop_failure, sizeof(f->stop_failure));
	else
		log_info("%s: server stopped (%s)", a->label,
		         f->mode == MODE_STOP_CLEAN ? "fast" : "immediate");
	/* Whatever pg_ctl said, ask again: it may have stopped, or stopped by itself. */
	status_step(a);
}

static void on_status(struct fo_action *a, const struct script_result *r)
{
	struct fence *f = a->kind;
	if (f->mode == MODE_REWIND) {
		if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_NOT_RUNNING) {
			fence_rewind_step(a);
			return;
		}
		if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_RUNNING) {
			fo__finish(a, false, "the database runs: pg_rewind needs it stopped");
			return;
		}
	}
	if (f->mode == MODE_START || f->mode == MODE_START_STANDBY) {
		if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_RUNNING) {
			fo__finish(a, true, "server already running");
			return;
		}
		if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_NOT_RUNNING) {
			if (f->mode == MODE_START_STANDBY)
				signal_step(a);
			else
				start_step(a);
			return;
		}
	}
	if (f->mode == MODE_STOP_CLEAN && r->outcome == SCRIPT_EXITED &&
	    r->exit_code == PG_CTL_NOT_RUNNING) {
		if (f->stop_tried && f->stop_failure[0] != '\0')
			log_info("%s: %s, but the server is down", a->label, f->stop_failure);
		controldata_step(a);
		return;
	}
	if (f->mode == MODE_STOP_CLEAN && f->stop_tried) {
		char why[FO_DETAIL_MAX / 2];
		pg_ctl_failure(a, "status", r, why, sizeof(why));
		fo__finish(a, false, "%s",
		           f->stop_failure[0] ? f->stop_failure
		           : r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_RUNNING
		               ? "server still running after pg_ctl stop -m fast"
		               : why);
		return;
	}
	if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_NOT_RUNNING) {
		if (f->stop_tried)
			f->stop_failure[0] = '\0'; /* it is down, which is all the stop was for */
		else
			log_info("%s: server already stopped", a->label);
		signal_step(a);
		return;
	}
	if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_RUNNING) {
		if (f->stop_tried) {
			if (f->stop_failure[0] == '\0')
				snprintf(f->stop_failure, sizeof(f->stop_failure),
				         "server still running after pg_ctl stop");
			signal_step(a);
			return;
		}
		f->was_running = true;
		f->stop_tried = true;
		char secs[16];
		uint64_t left = fo__remaining_ms(a);
		snprintf(secs, sizeof(secs), "%llu",
		         (unsigned long long)(left > 2000 ? (left - 1000) / 1000 : 1));
		const char *args[] = {"stop",
		                      "-D",
		                      f->datadir,
		                      "-m",
		                      f->mode == MODE_STOP_CLEAN ? "fast" : "immediate",
		                      "-w",
		                      "-t",
		                      secs};
		run_pg_ctl(a, args, 8, on_stop);
		return;
	}
	char why[FO_DETAIL_MAX / 2];
	pg_ctl_failure(a, "status", r, why, sizeof(why));
	if (r->outcome == SCRIPT_EXITED && r->exit_code == PG_CTL_NO_DATA_DIR)
		fo__finish(a, false, "%s (db.recovery.conf.dir %s is not a data directory)", why,
		           f->datadir);
	else
		fo__finish(a, false, "%s", why);
}

static void status_step(struct fo_action *a)
{
	struct fence *f = a->kind;
	const char *args[] = {"status", "-D", f->datadir};
	run_pg_ctl(a, args, 3, on_status);
}

static void on_owner(struct fo_action *a)
{
	struct fence *f = a->kind;
	if (f->err[0] != '\0') {
		fo__finish(a, false, "%s", f->err);
		return;
	}
	log_fine("%s: data directory %s owned by %s (uid %u)%s", a->label, f->datadir,
	         f->owner[0] ? f->owner : "?", (unsigned)f->uid,
	         f->runuser[0] ? ", pg_ctl through runuser" : "");
	if (f->postmaster_gone && f->mode != MODE_FENCE && f->mode != MODE_STOP_CLEAN) {
		log_info("%s: the server's postmaster has exited: removed its stale postmaster.pid",
		         a->label);
		if (f->mode == MODE_REWIND)
			fence_rewind_step(a);
		else if (f->mode == MODE_START_STANDBY)
			signal_step(a);
		else
			start_step(a);
		return;
	}
	if (f->postmaster_gone && f->mode == MODE_FENCE) {
		log_info("%s: server already stopped (its postmaster has exited)", a->label);
		signal_step(a);
		return;
	}
	status_step(a);
}

/* fence_new: what names the action in the log and in a missing setting. */
struct fo_action *fence_new(uv_loop_t *loop, const struct efm_config *cfg, enum fence_mode mode,
                            const char *what, uint64_t timeout_ms, fo_done_cb cb, void *arg,
                            struct fence **out)
{
	*out = NULL;
	char label[PATH_MAX];
	snprintf(label, sizeof(label), "%s db %s", what,
	         cfg->db_recovery_conf_dir[0] ? cfg->db_recovery_conf_dir : "(no data directory)");
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	struct fence *f = calloc(1, sizeof(*f));
	a->kind = f;
	if (f == NULL) {
		fo__finish_later(a, false, "out of memory");
		return a;
	}
	if (cfg->db_recovery_conf_dir[0] == '\0') {
		fo__finish_later(a, false,
		                 "db.recovery.conf.dir (the data directory, alias db.data.dir) is "
		                 "not set: cannot %s the database",
		                 what);
		return a;
	}
	if (cfg->db_bin[0] == '\0') {
		fo__finish_later(a, false,
		                 "db.bin (the directory holding pg_ctl) is not set: cannot %s the "
		                 "database",
		                 what);
		return a;
	}
	f->mode = mode;
	snprintf(f->datadir, sizeof(f->datadir), "%s", cfg->db_recovery_conf_dir);
	snprintf(f->bin, sizeof(f->bin), "%s", cfg->db_bin);
	snprintf(f->pg_ctl, sizeof(f->pg_ctl), "%s/pg_ctl", cfg->db_bin);
	snprintf(f->owner, sizeof(f->owner), "%s", cfg->db_service_owner);
	log_info("%s: %s the local database (within %.1f s)", a->label,
	         mode == MODE_FENCE ? "fencing" : what, (double)timeout_ms / 1000.0);
	*out = f;
	return a;
}

void fence_begin(struct fo_action *a)
{
	fo__step(a, "finding the data directory's owner");
	fo__work(a, find_owner, on_owner);
}

/* server_action sets up one of the modes that need nothing more, and starts it. */
static struct fo_action *server_action(uv_loop_t *loop, const struct efm_config *cfg,
                                       enum fence_mode mode, const char *what, uint64_t timeout_ms,
                                       fo_done_cb cb, void *arg)
{
	struct fence *f;
	struct fo_action *a = fence_new(loop, cfg, mode, what, timeout_ms, cb, arg, &f);
	if (f != NULL)
		fence_begin(a);
	return a;
}

struct fo_action *fo_fence_db(uv_loop_t *loop, const struct efm_config *cfg, uint64_t timeout_ms,
                              fo_done_cb cb, void *arg)
{
	return server_action(loop, cfg, MODE_FENCE, "fence", timeout_ms, cb, arg);
}

struct fo_action *fo_stop_db(uv_loop_t *loop, const struct efm_config *cfg, uint64_t timeout_ms,
                             fo_done_cb cb, void *arg)
{
	return server_action(loop, cfg, MODE_STOP_CLEAN, "stop", timeout_ms, cb, arg);
}

struct fo_action *fo_start_db(uv_loop_t *loop, const struct efm_config *cfg, bool as_standby,
                              uint64_t timeout_ms, fo_done_cb cb, void *arg)
{
	return server_action(loop, cfg, as_standby ? MODE_START_STANDBY : MODE_START, "start",
	                     timeout_ms, cb, arg);
}
