/*
 * preflight.c - the checks between reading a configuration and starting
 * with it (preflight.h).
 */
#include "preflight.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt.h"
#include "peerauth.h"
#include "script.h"

/* check_scripts vets every configured user script before anything can run one. */
static void check_scripts(const struct efm_config *cfg, struct problems *pr)
{
	const struct {
		const char *key;
		const char *path;
	} scripts[] = {
	    {"script.fence", cfg->script_fence},
	    {"script.post.promotion", cfg->script_post_promotion},
	    {"script.db.failure", cfg->script_db_failure},
	    {"script.master.isolated", cfg->script_master_isolated},
	    {"script.notification", cfg->script_notification},
	};
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		char why[512];
		if (scripts[i].path[0] == '\0' || script_check(scripts[i].path, why, sizeof(why)))
			continue;
		problems_add(pr, "%s: %s: refusing to run %s: %s", cfg->props_path, scripts[i].key,
		             scripts[i].path, why);
	}
}

/*
 * check_password decrypts db.password.encrypted.  A witness has no database
 * but derives the peer key from the password too, so its copy must decrypt
 * as well.
 */
static void check_password(const struct efm_config *cfg, char *out, size_t len, struct problems *pr)
{
	if (cfg->db_password_encrypted[0] == '\0')
		return;
	int rc = crypt_decrypt(cfg->cluster, cfg->db_password_encrypted, out, len);
	if (rc == 0)
		return;
	explicit_bzero(out, len);
	problems_add(pr, "%s: db.password.encrypted: cannot decrypt the password: %s",
	             cfg->props_path,
	             rc == -EBADMSG ? "it was not encrypted for this cluster name, or was altered "
	                              "(run 'efm encrypt' for this cluster again)"
	                            : "the value is malformed (paste the output of 'efm encrypt')");
}

/* check_peer_key loads peer.key.file as the cluster layer will, and forgets the key. */
static void check_peer_key(const struct efm_config *cfg, struct problems *pr)
{
	uint8_t key[PEERAUTH_KEY_LEN];
	char err[256] = "";

	if (cfg->peer_key_file[0] == '\0')
		return;
	int rc = peerauth_load_key_file(cfg->peer_key_file, key, err, sizeof(err));
	explicit_bzero(key, sizeof(key));
	if (rc != 0)
		problems_add(pr, "%s: peer.key.file: %s", cfg->props_path,
		             err[0] ? err : strerror(-rc));
}

/*
 * check_fencing: a database node must be able to fence its database, the
 * safety rule's last resort: stop it with db.bin/pg_ctl and leave
 * standby.signal in db.recovery.conf.dir.  Without them an isolated master
 * would keep taking writes beside the one the others promote.
 */
static void check_fencing(const struct efm_config *cfg, struct problems *pr)
{
	struct stat sb;
	char pg_ctl[4200];

	if (cfg->is_witness)
		return;
	if (cfg->db_recovery_conf_dir[0] == '\0')
		problems_add(pr,
		             "%s: db.recovery.conf.dir: required on a database node: it names the "
		             "data directory, where fencing leaves standby.signal",
		             cfg->props_path);
	else if (stat(cfg->db_recovery_conf_dir, &sb) != 0)
		problems_add(pr, "%s: db.recovery.conf.dir: %s: %s", cfg->props_path,
		             cfg->db_recovery_conf_dir, strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		problems_add(pr, "%s: db.recovery.conf.dir: %s is not a directory", cfg->props_path,
		             cfg->db_recovery_conf_dir);
	if (cfg->db_bin[0] == '\0') {
		problems_add(pr,
		             "%s: db.bin: required on a database node: the directory of pg_ctl, "
		             "which fencing uses to stop the database",
		             cfg->props_path);
		return;
	}
	snprintf(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", cfg->db_bin);
	if (access(pg_ctl, X_OK) != 0)
		problems_add(pr, "%s: db.bin: %s: %s", cfg->props_path, pg_ctl, strerror(errno));
}

/*
 * check_ping_command: the command that tests the VIP and the ping server
 * must exist when either is configured (a missing ping reads as "nothing
 * answers": the VIP would look free and every candidate orphaned).
 */
static void check_ping_command(const struct efm_config *cfg, struct problems *pr)
{
	char prog[4096];
	if (cfg->ping_server_ip[0] == '\0' && !config_vip_enabled(cfg))
		return;
	const char *cmd = cfg->ping_server_command + strspn(cfg->ping_server_command, " \t");
	size_t n = strcspn(cmd, " \t");
	snprintf(prog, sizeof(prog), "%.*s", (int)n, cmd);
	if (prog[0] != '/')
		problems_add(pr, "%s: pingServerCommand: %s is not an absolute path",
		             cfg->props_path, prog);
	else if (access(prog, X_OK) != 0)
		problems_add(
		    pr,
		    "%s: pingServerCommand: cannot run %s: %s (install iputils-ping, or name "
		    "another command)",
		    cfg->props_path, prog, strerror(errno));
}

struct efm_config *preflight_load(const char *dir, const char *cluster, char *password,
                                  size_t pwlen, struct problems *pr)
{
	char scratch[256];
	char *pw = password != NULL ? password : scratch;
	size_t pwl = password != NULL ? pwlen : sizeof(scratch);

	if (pwl > 0)
		pw[0] = '\0';
	struct efm_config *cfg = config_load(dir, cluster, pr);
	if (cfg == NULL)
		return NULL;
	/*
	 * A value the configuration refused stays at its empty default, so these
	 * checks never repeat a problem config_load reported.
	 */
	check_scripts(cfg, pr);
	check_password(cfg, pw, pwl, pr);
	check_peer_key(cfg, pr);
	check_fencing(cfg, pr);
	check_ping_command(cfg, pr);
	explicit_bzero(scratch, sizeof(scratch));
	return cfg;
}
