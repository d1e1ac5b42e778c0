/*
 * cli.h - the efm client's subcommands.  efm_main.c parses the global
 * options and dispatches through a table to these handlers; each returns the
 * process exit code.
 */
#ifndef EFM_CLI_H
#define EFM_CLI_H

#include <stdbool.h>

#include <cJSON.h>

/* Named exit codes of efm. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,  /* the command failed, or the cluster is not healthy */
	CLI_EXIT_USAGE = 2, /* bad command line */
};

/* What the global options resolved to; read-only for the handlers. */
struct cli_ctx {
	const char *config_dir;
	const char *run_dir;
	const char *state_dir;
	int timeout_ms; /* bound on one request to the agent */
	const char *command;
	const char *synopsis; /* of the command, for usage errors */
};

/*
 * A handler gets the positional arguments after the command name (argv[0]
 * is the cluster, or DIR for sample-config); efm_main checked their count.
 */
typedef int (*cli_handler)(const struct cli_ctx *ctx, int argc, char **argv);

/* cli_rejoin: rejoin CLUSTER, then the new status. */
int cli_rejoin(const struct cli_ctx *ctx, int argc, char **argv);

/* cli_error prints "efm: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cli_usage_error prints the message and the command's synopsis; returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_valid_cluster: letters, digits, '-', '_', '.', not starting with '.', <= 64 bytes. */
bool cli_valid_cluster(const char *name);

/*
 * cli_request sends {"command": ..., "args": [...]} to CLUSTER's agent and
 * returns the reply, or NULL after printing why on stderr.
 */
cJSON *cli_request(const struct cli_ctx *ctx, const char *cluster, const char *command, int nargs,
                   char *const *args);

/* cli_agent.c */
int cli_cluster_status(const struct cli_ctx *ctx, int argc, char **argv);
int cli_cluster_status_json(const struct cli_ctx *ctx, int argc, char **argv);
int cli_node_status_json(const struct cli_ctx *ctx, int argc, char **argv);
int cli_node_change(const struct cli_ctx *ctx, int argc, char **argv); /* add/remove/... */
int cli_set_priority(const struct cli_ctx *ctx, int argc, char **argv);
int cli_promote(const struct cli_ctx *ctx, int argc, char **argv);
int cli_simple(const struct cli_ctx *ctx, int argc, char **argv); /* resume, stop-cluster */
int cli_reset_members(const struct cli_ctx *ctx, int argc, char **argv);

/* cli_local.c: commands that need no agent */
int cli_prop_check(const struct cli_ctx *ctx, int argc, char **argv);
int cli_encrypt(const struct cli_ctx *ctx, int argc, char **argv);
int cli_sample_config(const struct cli_ctx *ctx, int argc, char **argv);

#endif
