/*
 * config.h - the cluster's configuration: one declarative option table that
 * drives parsing (.properties or .yaml), validation, `efm prop-check` and the
 * generated sample file conf/efm.properties.in.
 *
 * A struct efm_config is immutable once loaded; a reload builds a new one.
 * String fields are never NULL: an unset string is "".
 */
#ifndef EFM_CONFIG_H
#define EFM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "address.h"
#include "log.h"
#include "problems.h"

/* Severity of a notification; also the type of notification.level. */
enum efm_severity {
	EFM_SEV_INFO,
	EFM_SEV_WARNING,
	EFM_SEV_SEVERE,
};

/*
 * The timing floor.  The cluster layer derives the Raft election timeout E
 * from the node timeout T as T/4 clamped to CONFIG_ELECTION_MIN_MS..5 s, and
 * libraft notices a lost leader after E to 2E.  The safety rule needs an
 * isolated master to notice (2E) within half the node timeout, before the
 * majority may act at T: 2E <= T/2.  Above the floor E = T/4 and this holds
 * exactly; at the floor it needs T >= 4 x CONFIG_ELECTION_MIN_MS = 2 s.
 */
#define CONFIG_ELECTION_MIN_MS    500
#define CONFIG_NODE_TIMEOUT_MIN_S 2
_Static_assert(CONFIG_NODE_TIMEOUT_MIN_S * 1000 >= 4 * CONFIG_ELECTION_MIN_MS,
               "an isolated master could notice too late");
_Static_assert((CONFIG_NODE_TIMEOUT_MIN_S - 1) * 1000 < 4 * CONFIG_ELECTION_MIN_MS,
               "the floor is higher than the election timeout needs");

struct efm_config {
	char *cluster; /* from the file name */
	char *config_dir;
	char *props_path; /* the .properties or .yaml file that was read */
	char *nodes_path;

	/* database */
	char *db_user;
	char *db_password_encrypted;
	int db_port;
	char *db_database;
	char *db_host; /* default: the bind.address host */
	int db_reuse_connection_count;
	bool jdbc_ssl; /* libpq sslmode=require */
	char *db_service_owner;
	char *db_recovery_conf_dir; /* alias db.data.dir: the data directory */
	char *db_bin;

	/* agent */
	bool auto_failover;
	bool auto_reconfigure;
	bool is_witness;
	int admin_port; /* accepted; the admin interface is a Unix socket */
	int local_period_s;
	int local_timeout_s;
	int local_timeout_final_s;
	int remote_timeout_s;
	int jgroups_max_tries;
	int jgroups_timeout_ms;
	int node_timeout_s;   /* node.timeout, or derived from the jgroups pair */
	struct efm_addr bind; /* bind.address */
	char *peer_key_file;
	enum efm_level efm_loglevel;
	enum efm_level jgroups_loglevel;

	/* virtual IP (all three set, or none) */
	char *virtual_ip;
	char *virtual_ip_interface;
	int virtual_ip_prefix; /* from virtualIp.netmask or virtual.ip.prefix; -1 unset */
	char *ping_server_ip;
	char *ping_server_command;

	/* user scripts */
	char *script_fence;
	char *script_post_promotion;
	char *script_db_failure;
	char *script_master_isolated;
	char *script_notification;
	int script_timeout_s;

	/* notifications */
	char *user_email;            /* recipients, comma- or space-separated */
	char *from_email;            /* default efm@<hostname> */
	char *notification_smtp_url; /* default smtp://localhost:25 */
	char *notification_smtp_user;
	char *notification_smtp_password;
	bool notification_smtp_starttls;
	enum efm_severity notification_level;
	char *notification_webhook_url;
	int notification_rate_limit; /* at most this many notifications per minute sent out */

	/* CLUSTER.nodes */
	struct efm_addr *nodes;
	size_t n_nodes;
};

/*
 * config_load reads DIR/CLUSTER.properties (or DIR/CLUSTER.yaml) and
 * DIR/CLUSTER.nodes.  It always returns a config (defaults where the input
 * was bad) unless memory runs out; the configuration is usable only when
 * pr->n == 0 afterwards.  A missing properties file is a problem, a missing
 * .nodes file is not (an empty cluster list).
 */
struct efm_config *config_load(const char *dir, const char *cluster, struct problems *pr);
void config_free(struct efm_config *cfg);

/* config_vip_enabled: all of virtualIp, its interface and netmask/prefix set. */
bool config_vip_enabled(const struct efm_config *cfg);

/*
 * config_prop_check prints the guide's prop-check report for cfg to out,
 * then every problem in pr; returns the number of problems.
 */
size_t config_prop_check(FILE *out, const struct efm_config *cfg, const struct problems *pr);

/*
 * config_write_samples writes DIR/efm.properties.in (every key with a comment,
 * its default and its bounds) and DIR/efm.nodes.in.  Returns 0 or -errno.
 */
int config_write_samples(const char *dir);

#endif
