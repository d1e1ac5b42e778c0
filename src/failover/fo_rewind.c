/*
 * fo_rewind.c - fo_rewind_db (fo_local.h): pg_rewind brings a stopped old
 * master onto the current master's timeline.  It starts as the other
 * server controls do (fo_fence.c: owner, a stale postmaster.pid removed,
 * pg_ctl status: the server must be stopped), then:
 *   hide    (thread pool) keep postgresql.conf, postgresql.auto.conf,
 *           pg_hba.conf and pg_ident.conf (pg_rewind copies the source's
 *           over them, its listen address and all) and remove
 *           standby.signal (pg_rewind first recovers a crashed server in
 *           single-user mode, which refuses standby mode)
 *   rewind  pg_rewind -D <data dir> --source-server=<conninfo>, the
 *           password in PGPASSWORD, as the data directory's owner
 *   back    (thread pool) put the files and standby.signal back, whatever
 *           pg_rewind did
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fo_fence_int.h"

static void put_conf_back(struct fo_action *a);
static void on_conf_back(struct fo_action *a);

/* rewound: pg_rewind's outcome, kept while the files and standby.signal are put back. */
static void rewound(struct fo_action *a, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rewound(struct fo_action *a, bool ok, const char *fmt, ...)
{
	struct fence *f = a->kind;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->rw.detail, sizeof(f->rw.detail), fmt, ap);
	va_end(ap);
	f->rw.ok = ok;
	fo__step(a, "putting the configuration files and standby.signal back");
	fo__work(a, put_conf_back, on_conf_back);
}

static void on_rewind(struct fo_action *a, const struct script_result *r)
{
	char how[128], line[256];
	const char *out = fo_action_output(a);
	if (script_ok(r)) {
		rewound(a, true, "%s",
		        strstr(out, "no rewind required") != NULL
		            ? "pg_rewind: no rewind required"
		            : "pg_rewind: rewound to the new master's timeline");
		return;
	}
	script_result_describe(r, how, sizeof(how));
	/* pg_rewind's own message: its last "error:" line says what is wrong */
	const char *e = strstr(out, "error:");
	fo__first_line(e != NULL ? e : out, line, sizeof(line));
	if (strstr(out, "wal_log_hints") != NULL)
		rewound(a, false,
		        "pg_rewind cannot run: the database uses neither data checksums nor "
		        "wal_log_hints = on, so a diverged timeline cannot be rewound; rebuild it "
		        "with pg_basebackup (and set wal_log_hints = on for next time)");
	else
		rewound(a, false, "pg_rewind failed: %s%s%s", how, line[0] ? ": " : "", line);
}

static const char *const conf_files[FENCE_CONF_FILES] = {"postgresql.conf", "postgresql.auto.conf",
                                                         "pg_hba.conf", "pg_ident.conf"};

/* keep_conf reads the local configuration files before pg_rewind. */
static void keep_conf(struct fence *f)
{
	for (size_t i = 0; i < FENCE_CONF_FILES && f->err[0] == '\0'; i++) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s", f->datadir, conf_files[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno != ENOENT)
				snprintf(f->err, sizeof(f->err), "cannot read %s: %s", path,
				         strerror(errno));
			continue;
		}
		ssize_t n = read(fd, f->rw.conf[i], sizeof(f->rw.conf[i]));
		char extra;
		if (n < 0 || (n == (ssize_t)sizeof(f->rw.conf[i]) && read(fd, &extra, 1) > 0))
			snprintf(f->err, sizeof(f->err), "cannot keep %s across pg_rewind: %s",
			         path, n < 0 ? strerror(errno) : "larger than 64 kB");
		close(fd);
		f->rw.conf_had[i] = n >= 0;
		f->rw.conf_len[i] = n > 0 ? (size_t)n : 0;
	}
}

/* put_conf_back writes the kept configuration files over the source's, then standby.signal. */
static void put_conf_back(struct fo_action *a)
{
	struct fence *f = a->kind;
	for (size_t i = 0; i < FENCE_CONF_FILES && f->err[0] == '\0'; i++) {
		if (!f->rw.conf_had[i])
			continue;
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s", f->datadir, conf_files[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 ||
		    write(fd, f->rw.conf[i], f->rw.conf_len[i]) != (ssize_t)f->rw.conf_len[i] ||
		    (f->as_root && fchown(fd, f->uid, f->gid) != 0) || fsync(fd) != 0)
			snprintf(f->err, sizeof(f->err), "cannot put %s back after pg_rewind: %s",
			         path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (f->err[0] == '\0')
		fence_write_signal(a);
}

static void on_conf_back(struct fo_action *a)
{
	struct fence *f = a->kind;
	if (f->err[0] != '\0')
		fo__finish(a, false, "%s%s%s", f->rw.detail, f->rw.detail[0] ? "; " : "", f->err);
	else
		fo__finish(a, f->rw.ok, "%s", f->rw.detail);
}

/* hide_signal is the hide step (see the file comment); rewound puts everything back. */
static void hide_signal(struct fo_action *a)
{
	struct fence *f = a->kind;
	keep_conf(f);
	if (f->err[0] != '\0')
		return;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/standby.signal", f->datadir);
	if (unlink(path) != 0 && errno != ENOENT)
		snprintf(f->err, sizeof(f->err), "cannot remove %s for pg_rewind: %s", path,
		         strerror(errno));
}

static void rewind_run(struct fo_action *a)
{
	struct fence *f = a->kind;
	char path[PATH_MAX + 32], source[sizeof(f->rw.source) + 32];
	snprintf(path, sizeof(path), "%s/pg_rewind", f->bin);
	snprintf(source, sizeof(source), "--source-server=%s", f->rw.source);
	const char *args[] = {"-D", f->datadir, source};
	const char *env[] = {"LC_ALL=C", f->rw.pgpassword};
	fo__step(a, "running pg_rewind");
	fence_run_as_owner(a, "pg_rewind", path, args, 3, env, f->rw.pgpassword[0] ? 2 : 1,
	                   on_rewind);
}

static void on_signal_hidden(struct fo_action *a)
{
	struct fence *f = a->kind;
	if (f->err[0] != '\0') {
		fo__finish(a, false, "%s", f->err);
		return;
	}
	rewind_run(a);
}

void fence_rewind_step(struct fo_action *a)
{
	fo__step(a, "removing standby.signal for pg_rewind");
	fo__work(a, hide_signal, on_signal_hidden);
}

struct fo_action *fo_rewind_db(uv_loop_t *loop, const struct efm_config *cfg, const char *source,
                               const char *password, uint64_t timeout_ms, fo_done_cb cb, void *arg)
{
	struct fence *f;
	struct fo_action *a = fence_new(loop, cfg, MODE_REWIND, "rewind", timeout_ms, cb, arg, &f);
	if (f == NULL)
		return a;
	snprintf(f->rw.source, sizeof(f->rw.source), "%s", source);
	if (password[0] != '\0')
		snprintf(f->rw.pgpassword, sizeof(f->rw.pgpassword), "PGPASSWORD=%s", password);
	fence_begin(a);
	return a;
}
