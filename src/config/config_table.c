/*
 * config_table.c - the option table: every key, its type, default, bounds
 * and the sample file's words about it.
 */
#include "config_table.h"

#include <stddef.h>
#include <string.h>

#define F(field) offsetof(struct efm_config, field)

/* Later-version names share their 2.0 counterpart's row data and field. */
#define ALIAS(n, t, field, canon, ex)                                                              \
	{                                                                                          \
		.name = n, .type = t, .offset = F(field), .alias_of = canon, .example = ex         \
	}

static const struct config_option table[] = {
    {.name = "efm.license",
     .type = CONFIG_T_IGNORED,
     .flags = CONFIG_F_RELOAD,
     .group = "Licence",
     .example = "none",
     .comment = "efm is open source and needs no product key.  This key is accepted so that "
                "files written for the proprietary product keep working; its value is ignored."},

    {.name = "auto.failover",
     .type = CONFIG_T_BOOL,
     .offset = F(auto_failover),
     .def = "true",
     .flags = CONFIG_F_SAME_ALL,
     .group = "Failover behaviour",
     .example = "false",
     .comment = "When true, the cluster promotes a standby by itself once the master is "
                "confirmed lost.  When false, the agents still detect the failure and send "
                "notifications, but a person must run 'efm promote'."},
    {.name = "auto.reconfigure",
     .type = CONFIG_T_BOOL,
     .offset = F(auto_reconfigure),
     .def = "true",
     .flags = CONFIG_F_DB_ONLY,
     .example = "false",
     .comment = "When true, the standbys that were not promoted are pointed at the new master "
                "(primary_conninfo is changed and the server reloaded or restarted).  Set it to "
                "false when replication slots or your own tooling manage this."},

    {.name = "db.user",
     .type = CONFIG_T_STRING,
     .offset = F(db_user),
     .flags = CONFIG_F_REQUIRED,
     .group = "Local database",
     .example = "efm",
     .comment = "The database role the agent connects as to watch its database.  A witness "
                "uses these connection settings, when given, to check the master's database "
                "itself."},
    {.name = "db.password.encrypted",
     .type = CONFIG_T_HEX,
     .offset = F(db_password_encrypted),
     .flags = CONFIG_F_REQUIRED | CONFIG_F_EMPTY_OK,
     .example = "00112233445566778899aabbccddeeff",
     .comment = "The role's password as printed by 'efm encrypt CLUSTER'; the cluster name is "
                "mixed into the encryption, so re-encrypt after renaming the cluster.  Leave it "
                "empty to let libpq take the password from the service owner's ~/.pgpass."},
    {.name = "db.port",
     .type = CONFIG_T_INT,
     .offset = F(db_port),
     .min = 1,
     .max = 65535,
     .flags = CONFIG_F_REQUIRED | CONFIG_F_SAME_ALL,
     .example = "5432",
     .comment = "The TCP port of the database servers."},
    {.name = "db.database",
     .type = CONFIG_T_STRING,
     .offset = F(db_database),
     .flags = CONFIG_F_REQUIRED,
     .example = "postgres",
     .comment = "The database the agent connects to."},
    {.name = "db.host",
     .type = CONFIG_T_HOST,
     .offset = F(db_host),
     .def_note = "the host part of bind.address",
     .example = "127.0.0.1",
     .comment = "Where this node's agent reaches its own database.  Other agents always use the "
                "node's bind.address host."},
    {.name = "db.reuse.connection.count",
     .type = CONFIG_T_INT,
     .offset = F(db_reuse_connection_count),
     .def = "0",
     .min = 0,
     .max = 1000000,
     .flags = CONFIG_F_DB_ONLY,
     .example = "5",
     .comment = "How many health checks may share one database connection before it is "
                "replaced.  0 opens a fresh connection for every check, which also proves that "
                "the server still accepts new connections."},
    {.name = "jdbc.ssl",
     .type = CONFIG_T_BOOL,
     .offset = F(jdbc_ssl),
     .def = "false",
     .example = "true",
     .comment = "When true, every database connection, local or remote, requires TLS "
                "(libpq sslmode=require)."},
    {.name = "db.service.owner",
     .type = CONFIG_T_STRING,
     .offset = F(db_service_owner),
     .flags = CONFIG_F_DB_ONLY,
     .example = "postgres",
     .comment = "The operating system user that owns the data directory and runs the "
                "database server; commands that touch the data directory run as this user."},
    {.name = "db.recovery.conf.dir",
     .type = CONFIG_T_PATH,
     .offset = F(db_recovery_conf_dir),
     .flags = CONFIG_F_DB_ONLY,
     .example = "/var/lib/postgresql/15/main",
     .comment = "The database's data directory.  On PostgreSQL 12 and later this is where "
                "standby.signal lives; after a failover the old master's directory is changed "
                "so that it cannot come back as a second master."},
    ALIAS("db.data.dir", CONFIG_T_PATH, db_recovery_conf_dir, "db.recovery.conf.dir",
          "/var/lib/postgresql/15/main"),
    {.name = "db.bin",
     .type = CONFIG_T_PATH,
     .offset = F(db_bin),
     .flags = CONFIG_F_DB_ONLY,
     .example = "/usr/lib/postgresql/15/bin",
     .comment = "The directory holding pg_ctl, used to restart a standby when a setting "
                "needs a restart to change."},

    {.name = "admin.port",
     .type = CONFIG_T_INT,
     .offset = F(admin_port),
     .min = 1,
     .max = 65535,
     .group = "Administration",
     .example = "7809",
     .comment = "Accepted for compatibility and otherwise unused: the efm command talks to "
                "its agent through a Unix socket, not a TCP port."},

    {.name = "local.period",
     .type = CONFIG_T_INT,
     .offset = F(local_period_s),
     .def = "10",
     .min = 1,
     .max = 3600,
     .unit = "s",
     .flags = CONFIG_F_DB_ONLY,
     .group = "Database monitoring",
     .example = "5",
     .comment = "The agent checks its local database every local.period seconds.  When no "
                "check has succeeded for local.timeout seconds, it makes one last attempt that "
                "may take up to local.timeout.final seconds; if that fails too the database is "
                "declared failed.  So a dead database is noticed after about local.timeout + "
                "local.timeout.final seconds, and local.timeout must be at least local.period."},
    {.name = "local.timeout",
     .type = CONFIG_T_INT,
     .offset = F(local_timeout_s),
     .def = "60",
     .min = 1,
     .max = 86400,
     .unit = "s",
     .flags = CONFIG_F_DB_ONLY,
     .example = "30",
     .comment = "How long checks may keep failing before the last attempt (see above)."},
    {.name = "local.timeout.final",
     .type = CONFIG_T_INT,
     .offset = F(local_timeout_final_s),
     .def = "10",
     .min = 1,
     .max = 3600,
     .unit = "s",
     .flags = CONFIG_F_DB_ONLY,
     .example = "5",
     .comment = "How long the last attempt may take (see above)."},
    {.name = "remote.timeout",
     .type = CONFIG_T_INT,
     .offset = F(remote_timeout_s),
     .def = "10",
     .min = 1,
     .max = 3600,
     .unit = "s",
     .example = "5",
     .comment = "How long an agent waits for another node's database to answer when the "
                "cluster asks it to confirm a failure, e.g. before a standby is promoted."},

    {.name = "jgroups.max.tries",
     .type = CONFIG_T_INT,
     .offset = F(jgroups_max_tries),
     .def = "8",
     .min = 1,
     .max = 100,
     .flags = CONFIG_F_SAME_ALL,
     .group = "Cluster membership",
     .example = "4",
     .comment = "The node timeout is how long a member may stay silent before the others "
                "declare it down.  Unless node.timeout is set it is jgroups.timeout x "
                "jgroups.max.tries (5000 ms x 8 = 40 s by default).  The safety rule (with "
                "three or more voters): a master whose heartbeats the cluster leader has not "
                "answered for half of it (the isolation time) stops its database and releases "
                "the virtual IP, while the others take a silent master agent for lost only "
                "after the whole of it, so the two can never both be master.  From it: the Raft "
                "election timeout is a quarter of it (0.5 to 5 s), agents send heartbeats every "
                "sixth of it (0.1 to 1 s), a silent member is shown DOWN after it and removed "
                "from the voting set after twice it.  It must be at least " CONFIG_STR(
                    CONFIG_NODE_TIMEOUT_MIN_S) " s: " CONFIG_NODE_TIMEOUT_WHY "."},
    {.name = "jgroups.timeout",
     .type = CONFIG_T_INT,
     .offset = F(jgroups_timeout_ms),
     .def = "5000",
     .min = 100,
     .max = 600000,
     .unit = "ms",
     .flags = CONFIG_F_SAME_ALL,
     .example = "2000",
     .comment = "One heartbeat interval's allowance; see jgroups.max.tries."},
    {.name = "node.timeout",
     .type = CONFIG_T_INT,
     .offset = F(node_timeout_s),
     .def_note = "jgroups.timeout x jgroups.max.tries",
     .min = CONFIG_NODE_TIMEOUT_MIN_S,
     .max = 86400,
     .min_why = CONFIG_NODE_TIMEOUT_WHY,
     .unit = "s",
     .flags = CONFIG_F_SAME_ALL,
     .example = "30",
     .comment = "The node timeout in seconds, given directly (the later-version name); when "
                "set it wins over the jgroups pair above.  At least " CONFIG_STR(
                    CONFIG_NODE_TIMEOUT_MIN_S) " s, for the reason given above."},
    {.name = "bind.address",
     .type = CONFIG_T_ADDR,
     .offset = F(bind),
     .flags = CONFIG_F_REQUIRED | CONFIG_F_WITNESS_REQ,
     .example = "192.168.2.54:7800",
     .comment = "This node's IP address and the port agents use to talk to each other, as "
                "IP:PORT ([IPv6]:PORT).  Other nodes list this address in their .nodes file."},
    {.name = "is.witness",
     .type = CONFIG_T_BOOL,
     .offset = F(is_witness),
     .def = "false",
     .example = "true",
     .comment = "True on a witness: a node without a database that only helps the cluster "
                "reach a majority.  A witness needs no db.* settings."},
    {.name = "peer.key.file",
     .type = CONFIG_T_PATH,
     .offset = F(peer_key_file),
     .example = "/etc/efm/acctg.key",
     .comment = "A file holding the secret agents use to authenticate each other; the same "
                "content on every node.  When empty the secret is derived from the cluster name "
                "and the database password."},

    {.name = "virtualIp",
     .type = CONFIG_T_IP,
     .offset = F(virtual_ip),
     .flags = CONFIG_F_SAME_ALL,
     .group = "Virtual IP address",
     .example = "192.168.2.200",
     .comment = "The address that follows the master.  Leave the three virtualIp keys empty "
                "to manage no address; set all three to have one."},
    ALIAS("virtual.ip", CONFIG_T_IP, virtual_ip, "virtualIp", "192.168.2.200"),
    {.name = "virtualIp.interface",
     .type = CONFIG_T_IFACE,
     .offset = F(virtual_ip_interface),
     .example = "eth0:1",
     .comment = "The network interface that carries the virtual address, optionally with a "
                "label such as eth0:1."},
    ALIAS("virtual.ip.interface", CONFIG_T_IFACE, virtual_ip_interface, "virtualIp.interface",
          "eth0:1"),
    {.name = "virtualIp.netmask",
     .type = CONFIG_T_NETMASK,
     .offset = F(virtual_ip_prefix),
     .flags = CONFIG_F_SAME_ALL,
     .example = "255.255.255.0",
     .comment = "The netmask of the virtual address as a dotted IPv4 mask.  The later name "
                "virtual.ip.prefix takes a prefix length instead (0..32, or 0..128 for IPv6)."},
    ALIAS("virtual.ip.prefix", CONFIG_T_PREFIX, virtual_ip_prefix, "virtualIp.netmask", "24"),
    {.name = "pingServerIp",
     .type = CONFIG_T_HOST,
     .offset = F(ping_server_ip),
     .example = "192.168.2.1",
     .comment = "A server outside the cluster that every node should always reach, such as "
                "a router or name server.  A node that cannot reach it suspects its own network "
                "rather than the others.  Do not use a cluster member.  Empty: no such check."},
    ALIAS("ping.server.ip", CONFIG_T_HOST, ping_server_ip, "pingServerIp", "192.168.2.1"),
    {.name = "pingServerCommand",
     .type = CONFIG_T_COMMAND,
     .offset = F(ping_server_command),
     .def = "/bin/ping -q -c3 -w5",
     .example = "/bin/ping -q -c1 -w2",
     .comment = "The command that tests whether an address answers; the address is appended "
                "as the last argument.  It must finish quickly."},
    ALIAS("ping.server.command", CONFIG_T_COMMAND, ping_server_command, "pingServerCommand",
          "/bin/ping -q -c1 -w2"),

    {.name = "script.fence",
     .type = CONFIG_T_PATH,
     .offset = F(script_fence),
     .flags = CONFIG_F_DB_ONLY | CONFIG_F_RELOAD,
     .group = "Scripts",
     .example = "/usr/local/bin/efm-fence",
     .comment = "Run on the standby about to be promoted, before the promotion.  If it exits "
                "non-zero the failover is abandoned.  Scripts run without a shell, as the "
                "agent's user, and are killed after script.timeout seconds."},
    {.name = "script.post.promotion",
     .type = CONFIG_T_PATH,
     .offset = F(script_post_promotion),
     .flags = CONFIG_F_DB_ONLY | CONFIG_F_RELOAD,
     .example = "/usr/local/bin/efm-promoted",
     .comment = "Run on the new master once it has left recovery.  Its exit code is "
                "reported in a notification and changes nothing else."},
    {.name = "script.db.failure",
     .type = CONFIG_T_PATH,
     .offset = F(script_db_failure),
     .flags = CONFIG_F_DB_ONLY | CONFIG_F_RELOAD,
     .example = "/usr/local/bin/efm-dbfail",
     .comment = "Run when an agent finds that its local database has failed."},
    {.name = "script.master.isolated",
     .type = CONFIG_T_PATH,
     .offset = F(script_master_isolated),
     .flags = CONFIG_F_DB_ONLY | CONFIG_F_RELOAD,
     .example = "/usr/local/bin/efm-isolated",
     .comment = "Run on a master that has lost contact with the majority of the cluster, "
                "right after it releases the virtual address."},
    {.name = "script.notification",
     .type = CONFIG_T_PATH,
     .offset = F(script_notification),
     .flags = CONFIG_F_RELOAD,
     .example = "/usr/local/bin/efm-notify",
     .comment = "Run for every notification, with the subject and the message as its two "
                "arguments."},
    {.name = "script.timeout",
     .type = CONFIG_T_INT,
     .offset = F(script_timeout_s),
     .def = "60",
     .min = 1,
     .max = 3600,
     .unit = "s",
     .flags = CONFIG_F_RELOAD,
     .example = "30",
     .comment = "How long any of the scripts above may run before it is killed."},

    {.name = "user.email",
     .type = CONFIG_T_EMAILS,
     .offset = F(user_email),
     .flags = CONFIG_F_SAME_ALL | CONFIG_F_RELOAD,
     .group = "Notifications",
     .example = "dba@example.com, oncall@example.com",
     .comment = "Who receives notification mail: addresses separated by commas or spaces.  "
                "Empty: no mail is sent."},
    {.name = "from.email",
     .type = CONFIG_T_EMAIL,
     .offset = F(from_email),
     .def_note = "efm@ followed by this host's name",
     .flags = CONFIG_F_RELOAD,
     .example = "efm@db1.example.com",
     .comment = "The sender address of notification mail."},
    {.name = "notification.level",
     .type = CONFIG_T_SEVERITY,
     .offset = F(notification_level),
     .def = "INFO",
     .flags = CONFIG_F_RELOAD,
     .example = "WARNING",
     .comment = "The least severe notifications sent out by mail, webhook and script: INFO, "
                "WARNING or SEVERE.  Every notification is logged whatever this says."},
    {.name = "notification.smtp.url",
     .type = CONFIG_T_SMTP_URL,
     .offset = F(notification_smtp_url),
     .def = "smtp://localhost:25",
     .flags = CONFIG_F_RELOAD,
     .example = "smtp://mail.example.com:587",
     .comment = "The mail server, as smtp://HOST:PORT or smtps://HOST:PORT."},
    {.name = "notification.smtp.user",
     .type = CONFIG_T_STRING,
     .offset = F(notification_smtp_user),
     .flags = CONFIG_F_RELOAD,
     .example = "efm",
     .comment = "The user to log in to the mail server as; empty: no login."},
    {.name = "notification.smtp.password",
     .type = CONFIG_T_SECRET,
     .offset = F(notification_smtp_password),
     .flags = CONFIG_F_RELOAD,
     .example = "secret",
     .comment = "The mail server password, in clear text: keep this file readable by root "
                "and the agent only."},
    {.name = "notification.smtp.starttls",
     .type = CONFIG_T_BOOL,
     .offset = F(notification_smtp_starttls),
     .def = "false",
     .flags = CONFIG_F_RELOAD,
     .example = "true",
     .comment = "When true, an smtp:// connection must switch to TLS (STARTTLS) before "
                "anything is sent."},
    {.name = "notification.webhook.url",
     .type = CONFIG_T_HTTP_URL,
     .offset = F(notification_webhook_url),
     .flags = CONFIG_F_RELOAD,
     .example = "https://hooks.example.com/efm",
     .comment = "Notifications are also POSTed as JSON to this URL; empty: no webhook."},
    {.name = "notification.rate.limit",
     .type = CONFIG_T_INT,
     .offset = F(notification_rate_limit),
     .def = "20",
     .min = 1,
     .max = 10000,
     .unit = "per minute",
     .flags = CONFIG_F_RELOAD,
     .example = "5",
     .comment = "At most this many notifications a minute go out; the rest are only logged, "
                "so a flapping node cannot flood a mailbox."},

    {.name = "jgroups.loglevel",
     .type = CONFIG_T_LOGLEVEL,
     .offset = F(jgroups_loglevel),
     .def = "INFO",
     .flags = CONFIG_F_RELOAD,
     .group = "Logging",
     .example = "FINE",
     .comment = "How much the cluster layer (membership, consensus) logs: FINEST, FINER, "
                "FINE, CONFIG, INFO, WARNING or SEVERE."},
    {.name = "efm.loglevel",
     .type = CONFIG_T_LOGLEVEL,
     .offset = F(efm_loglevel),
     .def = "INFO",
     .flags = CONFIG_F_RELOAD,
     .example = "FINER",
     .comment = "How much the rest of the agent logs, at the same levels.  Raise it only "
                "while chasing a problem."},
};

#undef ALIAS
#undef F

size_t config_table_size(void)
{
	return sizeof(table) / sizeof(table[0]);
}

const struct config_option *config_table_get(size_t i)
{
	return i < config_table_size() ? &table[i] : NULL;
}

const struct config_option *config_option_find(const char *name)
{
	for (size_t i = 0; i < config_table_size(); i++) {
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	}
	return NULL;
}

const struct config_option *config_option_canonical(const struct config_option *opt)
{
	if (opt->alias_of == NULL)
		return opt;
	const struct config_option *c = config_option_find(opt->alias_of);
	return c != NULL ? c : opt;
}

const char *config_type_name(enum config_type type)
{
	static const char *const names[] = {
	    [CONFIG_T_IGNORED] = "ignored",
	    [CONFIG_T_BOOL] = "boolean",
	    [CONFIG_T_INT] = "integer",
	    [CONFIG_T_STRING] = "text",
	    [CONFIG_T_SECRET] = "secret text",
	    [CONFIG_T_HEX] = "encrypted password",
	    [CONFIG_T_PATH] = "absolute path",
	    [CONFIG_T_COMMAND] = "command",
	    [CONFIG_T_ADDR] = "IP:port",
	    [CONFIG_T_IP] = "IP address",
	    [CONFIG_T_HOST] = "host name or IP address",
	    [CONFIG_T_IFACE] = "network interface",
	    [CONFIG_T_NETMASK] = "netmask",
	    [CONFIG_T_PREFIX] = "prefix length",
	    [CONFIG_T_LOGLEVEL] = "log level",
	    [CONFIG_T_SEVERITY] = "severity",
	    [CONFIG_T_EMAIL] = "mail address",
	    [CONFIG_T_EMAILS] = "mail address list",
	    [CONFIG_T_SMTP_URL] = "SMTP URL",
	    [CONFIG_T_HTTP_URL] = "HTTP URL",
	};
	if ((unsigned)type >= sizeof(names) / sizeof(names[0]) || names[type] == NULL)
		return "unknown";
	return names[type];
}

/* lower: ASCII lower case, so that case slips count as small edits. */
static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* edit_distance: Levenshtein distance, case-insensitive; large for long input. */
static size_t edit_distance(const char *a, const char *b)
{
	enum { MAXLEN = 64 };
	size_t la = strlen(a), lb = strlen(b);
	size_t prev[MAXLEN + 1], cur[MAXLEN + 1];

	if (la > MAXLEN || lb > MAXLEN)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (lower(a[i - 1]) != lower(b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

const char *config_suggest(const char *name)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	size_t len = strlen(name);
	/* Allow more slips in longer names, but never so many that anything matches. */
	size_t limit = len / 3 > 2 ? len / 3 : 2;

	for (size_t i = 0; i < config_table_size(); i++) {
		size_t d = edit_distance(name, table[i].name);
		if (d < best_d) {
			best_d = d;
			best = table[i].name;
		}
	}
	return best_d <= limit ? best : NULL;
}
