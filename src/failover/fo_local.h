/*
 * fo_local.h - the failover actions an agent takes on its own node: promote
 * the local standby, fence the local database, re-point the local standby at
 * a new master, assign or release the virtual IP, ping, run a user script.
 *
 * The failover engine decides; these act.  Every action is asynchronous on
 * the agent's loop (libpq through pgconn, programs through script_start, file
 * work on libuv's thread pool), bounded by a timeout, and idempotent: it
 * checks "already done?" first, so it may be run again after a crash or a
 * change of coordinator and then reports ok without changing anything.
 *
 * Contract shared by every start function:
 *   - cfg (and every string argument) is read only during the start call;
 *     the action copies what it needs, so a reload may free cfg at once.
 *   - It returns NULL only when it cannot even start (out of memory); then cb
 *     is never called.  Otherwise cb runs exactly once, later, from the loop
 *     (never from inside the start call).
 *   - fo_action_cancel abandons an action in progress: cb is NOT called.  It
 *     must not be called after cb returned (the action is freed then); from
 *     inside cb it is a no-op.
 *
 * Privileges the database user (db.user) needs when it is not a superuser,
 * PostgreSQL 15:
 *   promote: GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer),
 *            pg_wal_replay_resume() TO efm;
 *   follow:  GRANT pg_read_all_settings, pg_read_all_stats TO efm;
 *   rejoin:  GRANT pg_checkpoint TO efm;  (on the master, before pg_rewind)
 *            GRANT ALTER SYSTEM ON PARAMETER primary_conninfo TO efm;
 *            GRANT EXECUTE ON FUNCTION pg_reload_conf() TO efm;
 * A refusal reaches cb as the server's message.
 */
#ifndef EFM_FO_LOCAL_H
#define EFM_FO_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

/* Longest detail handed to fo_done_cb, including its NUL. */
#define FO_DETAIL_MAX 512

/*
 * End of one action: ok, and a one-line detail for logs and notifications
 * ("already a master", "pg_promote() returned true after 0.31 s",
 * "pg_ctl stop failed: exit code 1: ...").  detail is valid only during the
 * call.
 */
typedef void (*fo_done_cb)(void *arg, bool ok, const char *detail);
struct fo_action; /* one action in progress */

/* fo_action_cancel abandons a (NULL allowed); its cb is not called. */
void fo_action_cancel(struct fo_action *a);

/*
 * fo_action_output is the captured output (stdout and stderr together, at
 * most SCRIPT_OUTPUT_MAX bytes) of the last program the action ran, "" when
 * it ran none.  Valid only during the action's cb.  This is how the caller of
 * fo_script (or fo_vip, fo_ping, fo_fence: efm_address, ping, pg_ctl) gets
 * the output for a notification's "Results".
 */
const char *fo_action_output(const struct fo_action *a);

/*
 * fo_promote_db promotes the local standby at cfg->db_host:db_port (db.user,
 * db.database, password, jdbc.ssl as the monitor connects).  Already out of
 * recovery -> ok "already a master".  Paused replay is resumed first
 * (pg_wal_replay_resume(); its failure fails the action).  Then
 * pg_promote(true, <seconds left>) and a check that pg_is_in_recovery() is
 * false.  Bounded by timeout_ms.
 */
struct fo_action *fo_promote_db(uv_loop_t *loop, const struct efm_config *cfg, const char *password,
                                uint64_t timeout_ms, fo_done_cb cb, void *arg);

/*
 * fo_fence_db stops the local database at once (pg_ctl stop -m immediate,
 * as the data directory's owner: db.service.owner, else the directory's
 * owner; through runuser when the agent runs as root), then creates
 * <data dir>/standby.signal (owned by that owner, mode 0600) so a restart
 * comes back as a standby.  An already stopped server and an existing
 * standby.signal are fine.  standby.signal is written even when the stop
 * fails (the action then fails).  Data dir: db.recovery.conf.dir (alias
 * db.data.dir); pg_ctl: db.bin/pg_ctl; either unset -> not ok, the detail
 * names the property.
 */
struct fo_action *fo_fence_db(uv_loop_t *loop, const struct efm_config *cfg, uint64_t timeout_ms,
                              fo_done_cb cb, void *arg);

/*
 * fo_stop_db stops the local database cleanly for a switchover (pg_ctl stop
 * -m fast, as fo_fence_db runs pg_ctl): the server waits until its standbys
 * received every byte.  No standby.signal.  Then pg_controldata (LC_ALL=C);
 * its output, through fo_action_output, holds "Latest checkpoint location",
 * the final position (fo_final_lsn reads it).  Already stopped -> ok.
 */
struct fo_action *fo_stop_db(uv_loop_t *loop, const struct efm_config *cfg, uint64_t timeout_ms,
                             fo_done_cb cb, void *arg);
/* fo_final_lsn reads "Latest checkpoint location" from pg_controldata's output; false if none. */
bool fo_final_lsn(const char *controldata, char *lsn, size_t len);

/*
 * fo_start_db starts the local database (pg_ctl start -w, its log in
 * <data dir>/efm-start.log): as_standby writes standby.signal first.
 * Already running -> ok "server already running".
 */
struct fo_action *fo_start_db(uv_loop_t *loop, const struct efm_config *cfg, bool as_standby,
                              uint64_t timeout_ms, fo_done_cb cb, void *arg);

/*
 * fo_rewind_db runs pg_rewind (db.bin, as the data directory's owner) on the
 * stopped local database against source (a connection string without its
 * password, which is given as PGPASSWORD; password may be "").  "no rewind
 * required" is ok.  pg_rewind itself refuses a server that uses neither data
 * checksums nor wal_log_hints: the detail says so.
 */
struct fo_action *fo_rewind_db(uv_loop_t *loop, const struct efm_config *cfg, const char *source,
                               const char *password, uint64_t timeout_ms, fo_done_cb cb, void *arg);

/*
 * fo_read_conninfo_db reads the local database's primary_conninfo; the
 * text (it may hold a password: it is never logged) is the action's
 * output, through fo_action_output.  On a master it then runs CHECKPOINT
 * (pg_rewind reads the timeline from pg_control, written at checkpoints);
 * the detail says FO_CHECKPOINT_DONE or FO_CHECKPOINT_FAILED and why.
 */
#define FO_CHECKPOINT_DONE   "CHECKPOINT done"
#define FO_CHECKPOINT_FAILED "CHECKPOINT failed"
struct fo_action *fo_read_conninfo_db(uv_loop_t *loop, const struct efm_config *cfg,
                                      const char *password, uint64_t timeout_ms, fo_done_cb cb,
                                      void *arg);

/*
 * fo_follow_db re-points the local standby at host:port: reads its
 * primary_conninfo, replaces host= and port= (dropping hostaddr=) keeping
 * every other field, ALTER SYSTEM SET primary_conninfo, pg_reload_conf(),
 * then waits until pg_stat_wal_receiver streams from host:port.  Already
 * streaming from host:port -> ok without changes.  A server that is not in
 * recovery fails.  PostgreSQL before 13 applies primary_conninfo only at a
 * restart: the setting is written, and the action fails with "restart
 * required" in its detail.
 */
struct fo_action *fo_follow_db(uv_loop_t *loop, const struct efm_config *cfg, const char *password,
                               const char *host, int port, uint64_t timeout_ms, fo_done_cb cb,
                               void *arg);
/*
 * fo_follow_db_from is fo_follow_db where an empty local primary_conninfo
 * (a server that was never a standby) takes its other fields from
 * template, another standby's primary_conninfo.
 */
struct fo_action *fo_follow_db_from(uv_loop_t *loop, const struct efm_config *cfg,
                                    const char *password, const char *host, int port,
                                    const char *template, uint64_t timeout_ms, fo_done_cb cb,
                                    void *arg);

/*
 * fo_vip assigns (assign) or releases the cluster's virtual IP with
 * efm_address (assign IFACE ADDR PREFIX / release IFACE ADDR, idempotent).
 * No virtual IP configured -> ok "no virtual IP configured".
 */
struct fo_action *fo_vip(uv_loop_t *loop, const struct efm_config *cfg, bool assign,
                         uint64_t timeout_ms, fo_done_cb cb, void *arg);

/*
 * fo_address_tool is the efm_address to run: $EFM_ADDRESS_TOOL if set; else
 * efm_address next to the running executable (the build copies it there);
 * else <exe dir>/../lib/efm/efm_address (make install); else
 * <exe dir>/../contrib/efm_address (a build directory inside the source
 * tree); else /usr/lib/efm/efm_address.  The string lives until the next
 * call.
 */
const char *fo_address_tool(void);

/*
 * fo_ping runs cfg->ping_server_command (pingServerCommand, split on blanks)
 * with ip appended; ok = exit 0 (it answers).  ip NULL -> pingServerIp;
 * none -> ok "no ping server configured".
 */
struct fo_action *fo_ping(uv_loop_t *loop, const struct efm_config *cfg, const char *ip,
                          uint64_t timeout_ms, fo_done_cb cb, void *arg);

/*
 * fo_script runs one of the user's scripts (what: its property name,
 * "script.fence", "script.post.promotion", "script.master.isolated") for
 * script.timeout seconds, with EFM_CLUSTER, EFM_NODE (bind.address host),
 * EFM_EVENT (what without its "script." prefix: "fence") and the n_env
 * extra "NAME=value" entries of env.  path "" -> ok "<what> not set".
 * ok = exit 0; detail "script.fence /path: exit code 3"; the output through
 * fo_action_output.
 */
struct fo_action *fo_script(uv_loop_t *loop, const struct efm_config *cfg, const char *what,
                            const char *path, const char *const *env, size_t n_env, fo_done_cb cb,
                            void *arg);

/*
 * Building primary_conninfo (fo_conninfo.c, pure, unit-tested).
 *
 * fo_conninfo_repoint writes into out the connection string cur with its
 * host and port replaced by host and port, hostaddr dropped, every other
 * keyword kept (cur may be a URI or "key=value" text; "" is fine).  Values
 * are single-quoted with backslash escapes.  false with a reason in err when
 * cur does not parse or out is too small.  *same is set to whether cur
 * already names exactly host:port (no hostaddr).
 */
bool fo_conninfo_repoint(const char *cur, const char *host, int port, char *out, size_t outlen,
                         bool *same, char *err, size_t errlen) __attribute__((warn_unused_result));
/*
 * fo_conninfo_source builds, from another standby's primary_conninfo, the
 * connection string to host:port's database dbname (pg_rewind's source):
 * host, port, hostaddr, dbname, replication and password replaced or
 * dropped, the rest kept; the password goes to password ("" none), so that
 * it is passed in the environment, never on a command line.
 */
bool fo_conninfo_source(const char *template, const char *host, int port, const char *dbname,
                        char *out, size_t outlen, char *password, size_t pwlen, char *err,
                        size_t errlen) __attribute__((warn_unused_result));
/* fo_conninfo_quote writes 'v' with \ and ' escaped by a backslash; false when out is too small. */
bool fo_conninfo_quote(const char *v, char *out, size_t outlen) __attribute__((warn_unused_result));
/*
 * fo_sql_literal writes v as an escape-string literal E'...' (' doubled, \
 * doubled), correct whatever standard_conforming_strings says; false when
 * out is too small.
 */
bool fo_sql_literal(const char *v, char *out, size_t outlen) __attribute__((warn_unused_result));

#endif
