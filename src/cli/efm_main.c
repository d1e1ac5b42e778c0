/*
 * efm - the client: reports cluster status, checks and encrypts
 * configuration, and passes operator commands to the local agent.
 *
 *   efm [--config-dir DIR] [--run-dir DIR] [--timeout SECONDS] COMMAND CLUSTER [ARGS]
 *
 * Global options may also follow the command.  Exit codes: 0 success (for
 * the status commands: a healthy cluster), 1 failure, 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "version.h"

#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S     86400

struct cli_command {
	const char *name;
	const char *synopsis;
	const char *help;
	cli_handler handler;
	int min_args, max_args; /* positional arguments after the command name */
	bool hidden;
};

static const struct cli_command commands[] = {
    {"add-node", "CLUSTER ADDRESS [PRIORITY]",
     "allow ADDRESS to join the cluster; a standby goes to PRIORITY in the promotion order "
     "(1 = first; default last)",
     cli_node_change, 2, 3, false},
    {"allow-node", "CLUSTER ADDRESS [PRIORITY]", "the same as add-node", cli_node_change, 2, 3,
     false},
    {"cluster-status", "CLUSTER",
     "show the cluster status report; exit 0 only when the cluster is healthy", cli_cluster_status,
     1, 1, false},
    {"cluster-status-json", "CLUSTER",
     "show the cluster status as JSON; exit code as for cluster-status", cli_cluster_status_json, 1,
     1, false},
    {"disallow-node", "CLUSTER ADDRESS", "the same as remove-node", cli_node_change, 2, 2, false},
    {"encrypt", "CLUSTER",
     "encrypt the database password for db.password.encrypted (reads $EFM_PASSWORD if set)",
     cli_encrypt, 1, 1, false},
    {"node-status-json", "CLUSTER",
     "show this node's agent and database status as JSON; exit 0 when healthy",
     cli_node_status_json, 1, 1, false},
    {"promote", "CLUSTER [-switchover] [-node ADDRESS] [--yes]",
     "fail over now, whatever auto.failover says: once every agent confirms that the master "
     "database is down, promote the most up-to-date standby (or the one -node names), fence "
     "the old master, move the VIP and re-point the other standbys; it prints each phase and "
     "the new status.  It refuses while the master database answers, when no standby can take "
     "over, or while a promotion runs.  When the candidate received less WAL than the master "
     "last reported it asks first; --yes accepts that loss (required when stdin is not a "
     "terminal).\n\n"
     "-switchover makes a planned change from a running master: it stops cleanly, the "
     "standby (the most up-to-date, or -node ADDRESS) is promoted once it has received every "
     "byte, the VIP moves, the other standbys follow and the old master restarts as a "
     "standby of the new one.  If a step fails before the promotion, the old master is "
     "started again.\n\n"
     "Examples: efm promote acctg\n"
     "          efm promote acctg -switchover -node 10.0.0.12",
     cli_promote, 1, 5, false},
    {"prop-check", "CLUSTER",
     "check the cluster's properties and nodes files without an agent; exit 0 when they are "
     "valid",
     cli_prop_check, 1, 1, false},
    {"remove-node", "CLUSTER ADDRESS",
     "stop allowing ADDRESS to join the cluster and drop it from the promotion order",
     cli_node_change, 2, 2, false},
    {"rejoin", "CLUSTER",
     "on an old master whose agent is Idle (fenced, or its database declared failed): make "
     "its database a standby of the cluster's master.  A stopped database is first rewound "
     "with pg_rewind onto the master's timeline (this needs data checksums or wal_log_hints "
     "= on; otherwise rebuild it with pg_basebackup); then it starts with standby.signal and "
     "the master's primary_conninfo, the command waits until it streams, and the agent "
     "watches it again as a Standby.  It refuses while the local database runs as a "
     "master.\n\n"
     "Example: efm rejoin acctg",
     cli_rejoin, 1, 1, false},
    {"reset-members", "CLUSTER [--yes]",
     "rebuild the voting membership from the reachable members after quorum is lost for good",
     cli_reset_members, 1, 2, false},
    {"resume", "CLUSTER", "resume monitoring the local database after it was repaired", cli_simple,
     1, 1, false},
    {"sample-config", "DIR", "write efm.properties.in and efm.nodes.in into DIR", cli_sample_config,
     1, 1, true},
    {"set-priority", "CLUSTER ADDRESS PRIORITY",
     "move the standby ADDRESS to PRIORITY in the promotion order", cli_set_priority, 3, 3, false},
    {"stop-cluster", "CLUSTER", "stop the agents on every node (databases keep running)",
     cli_simple, 1, 1, false},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* usage prints the global synopsis and the command list. */
static void usage(FILE *out)
{
	fprintf(out, "usage: efm [OPTIONS] COMMAND CLUSTER [ARGS]\n"
	             "\n"
	             "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (commands[i].hidden)
			continue;
		fprintf(out, "  %-20s %s\n", commands[i].name, commands[i].synopsis);
	}
	fprintf(out,
	        "\n"
	        "Options:\n"
	        "  --config-dir DIR   cluster properties and nodes files (default /etc/efm, or\n"
	        "                     $EFM_CONFIG_DIR)\n"
	        "  --run-dir DIR      where the agent's admin socket is (default /run/efm, or\n"
	        "                     $EFM_RUN_DIR)\n"
	        "  --state-dir DIR    accepted for symmetry with efmd ($EFM_STATE_DIR)\n"
	        "  --timeout SECONDS  how long to wait for the agent (default %d)\n"
	        "  -h, --help         show this help; 'efm COMMAND --help' explains a command\n"
	        "  -V, --version      show the version\n",
	        DEFAULT_TIMEOUT_S);
}

/* command_help prints one command's synopsis and description. */
static void command_help(FILE *out, const struct cli_command *c)
{
	fprintf(out, "usage: efm [OPTIONS] %s %s\n\n%s.\n", c->name, c->synopsis, c->help);
}

/* find_command looks a command name up in the table. */
static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* env_or returns the environment variable name if set and non-empty, else def. */
static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? v : def;
}

/* parse_timeout reads a whole number of seconds, 1..MAX_TIMEOUT_S. */
static bool parse_timeout(const char *s, int *ms)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > MAX_TIMEOUT_S)
		return false;
	*ms = (int)v * 1000;
	return true;
}

/* Global options that take a value; they are recognised anywhere on the line. */
enum opt_id { OPT_CONFIG_DIR, OPT_RUN_DIR, OPT_STATE_DIR, OPT_TIMEOUT, OPT_NONE };
static const char *const opt_names[] = {"--config-dir", "--run-dir", "--state-dir", "--timeout"};

/* match_option recognises "--name VALUE" and "--name=VALUE"; *value NULL if VALUE is next. */
static enum opt_id match_option(const char *arg, const char **value)
{
	for (int i = 0; i < OPT_NONE; i++) {
		size_t len = strlen(opt_names[i]);
		if (strncmp(arg, opt_names[i], len) != 0)
			continue;
		if (arg[len] == '\0') {
			*value = NULL;
			return (enum opt_id)i;
		}
		if (arg[len] == '=') {
			*value = arg + len + 1;
			return (enum opt_id)i;
		}
	}
	return OPT_NONE;
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = {
	    .config_dir = env_or("EFM_CONFIG_DIR", "/etc/efm"),
	    .run_dir = env_or("EFM_RUN_DIR", "/run/efm"),
	    .state_dir = env_or("EFM_STATE_DIR", "/var/lib/efm"),
	    .timeout_ms = DEFAULT_TIMEOUT_S * 1000,
	};
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	int npos = 0;
	bool help = false, version = false, only_positional = false;
	if (pos == NULL) {
		cli_error("out of memory");
		return CLI_EXIT_FAIL;
	}

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *value;
		enum opt_id id = only_positional ? OPT_NONE : match_option(a, &value);
		if (only_positional) {
			pos[npos++] = argv[i];
		} else if (strcmp(a, "--") == 0) {
			only_positional = true;
		} else if (id != OPT_NONE) {
			if (value == NULL) {
				if (i + 1 >= argc) {
					cli_error("%s needs a value", opt_names[id]);
					free(pos);
					return CLI_EXIT_USAGE;
				}
				value = argv[++i];
			}
			if (id == OPT_CONFIG_DIR) {
				ctx.config_dir = value;
			} else if (id == OPT_RUN_DIR) {
				ctx.run_dir = value;
			} else if (id == OPT_STATE_DIR) {
				ctx.state_dir = value;
			} else if (!parse_timeout(value, &ctx.timeout_ms)) {
				cli_error(
				    "invalid --timeout \"%s\": expected whole seconds, 1 to %d",
				    value, MAX_TIMEOUT_S);
				free(pos);
				return CLI_EXIT_USAGE;
			}
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = true;
		} else if (npos == 0 && (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)) {
			version = true;
		} else if (npos == 0 && a[0] == '-') {
			cli_error("unknown option \"%s\"", a);
			usage(stderr);
			free(pos);
			return CLI_EXIT_USAGE;
		} else {
			/* Command-specific flags (-switchover, --yes) are checked by the command.
			 */
			pos[npos++] = argv[i];
		}
	}

	int rc;
	const struct cli_command *cmd = npos > 0 ? find_command(pos[0]) : NULL;
	if (version && npos == 0) {
		printf("efm %s\n", EFM_VERSION);
		rc = CLI_EXIT_OK;
	} else if (help && npos == 0) {
		usage(stdout);
		rc = CLI_EXIT_OK;
	} else if (npos == 0) {
		usage(stderr);
		rc = CLI_EXIT_USAGE;
	} else if (cmd == NULL) {
		cli_error("unknown command \"%s\"", pos[0]);
		usage(stderr);
		rc = CLI_EXIT_USAGE;
	} else if (help) {
		command_help(stdout, cmd);
		rc = CLI_EXIT_OK;
	} else if (npos - 1 < cmd->min_args || npos - 1 > cmd->max_args) {
		cli_error("%s: wrong number of arguments", cmd->name);
		fprintf(stderr, "usage: efm %s %s\n", cmd->name, cmd->synopsis);
		rc = CLI_EXIT_USAGE;
	} else {
		ctx.command = cmd->name;
		ctx.synopsis = cmd->synopsis;
		rc = cmd->handler(&ctx, npos - 1, pos + 1);
	}
	free(pos);
	return rc;
}
