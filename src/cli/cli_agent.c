/*
 * cli_agent.c - the efm subcommands that ask the local agent over its admin
 * socket: the status reports and the cluster-changing commands.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "admin_arg.h"
#include "status.h"

/* cli_error prints "efm: message" on stderr. */
void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("efm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* cli_usage_error prints the problem and the command's synopsis. */
int cli_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("efm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fprintf(stderr, "usage: efm %s %s\n", ctx->command, ctx->synopsis);
	return CLI_EXIT_USAGE;
}

/* cli_valid_cluster: the name becomes part of file names, so keep it plain. */
bool cli_valid_cluster(const char *name)
{
	if (name[0] == '\0' || name[0] == '.' || strlen(name) > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

/* cli_request sends one command to CLUSTER's agent; NULL after printing why. */
cJSON *cli_request(const struct cli_ctx *ctx, const char *cluster, const char *command, int nargs,
                   char *const *args)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/%s.sock", ctx->run_dir, cluster) >=
	    (int)sizeof(path)) {
		cli_error("run directory path too long: %s", ctx->run_dir);
		return NULL;
	}
	cJSON *req = cJSON_CreateObject();
	cJSON *cmd = req != NULL ? cJSON_AddStringToObject(req, "command", command) : NULL;
	cJSON *arr = cmd != NULL ? cJSON_AddArrayToObject(req, "args") : NULL;
	if (arr == NULL) {
		cJSON_Delete(req);
		cli_error("out of memory");
		return NULL;
	}
	for (int i = 0; i < nargs; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(args[i]));

	char err[1024];
	cJSON *reply = admin_call(path, req, ctx->timeout_ms, err, sizeof(err));
	int e = errno;
	cJSON_Delete(req);
	if (reply == NULL) {
		if (e == ENOENT || e == ECONNREFUSED)
			cli_error("no agent running for cluster %s (cannot connect to %s: %s)",
			          cluster, path, strerror(e));
		else
			cli_error("cluster %s: %s", cluster, err);
	}
	return reply;
}

/* reply_ok tells whether the agent said "ok": true; prints its error otherwise. */
static bool reply_ok(const cJSON *reply, const char *cluster)
{
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
		return true;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
	cli_error("cluster %s: %s", cluster,
	          cJSON_IsString(e) ? e->valuestring : "the agent refused without saying why");
	return false;
}

/* fetch_status asks for cluster-status and parses the model; the reply is kept in *reply. */
static int fetch_status(const struct cli_ctx *ctx, const char *cluster, cJSON **reply,
                        struct status_model *m)
{
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);
	*reply = cli_request(ctx, cluster, "cluster-status", 0, NULL);
	if (*reply == NULL)
		return CLI_EXIT_FAIL;
	if (!reply_ok(*reply, cluster))
		return CLI_EXIT_FAIL;
	if (!status_from_json(cJSON_GetObjectItemCaseSensitive(*reply, "status"), m)) {
		cli_error("cluster %s: the agent's status reply is malformed", cluster);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* cli_cluster_status prints the text report; exit code by the guide's rules. */
int cli_cluster_status(const struct cli_ctx *ctx, int argc, char **argv)
{
	cJSON *reply = NULL;
	struct status_model m = {0};
	int rc = fetch_status(ctx, argv[0], &reply, &m);
	if (rc == CLI_EXIT_OK) {
		status_render_text(stdout, &m);
		rc = status_exit_code(&m);
	}
	status_free(&m);
	cJSON_Delete(reply);
	return rc;
}

/* cli_cluster_status_json prints the status object as the agent sent it, pretty. */
int cli_cluster_status_json(const struct cli_ctx *ctx, int argc, char **argv)
{
	cJSON *reply = NULL;
	struct status_model m = {0};
	int rc = fetch_status(ctx, argv[0], &reply, &m);
	if (rc == CLI_EXIT_OK) {
		char *text = cJSON_Print(cJSON_GetObjectItemCaseSensitive(reply, "status"));
		if (text == NULL) {
			cli_error("out of memory");
			rc = CLI_EXIT_FAIL;
		} else {
			printf("%s\n", text);
			free(text);
			rc = status_exit_code(&m);
		}
	}
	status_free(&m);
	cJSON_Delete(reply);
	return rc;
}

/* cli_node_status_json prints this node's status object; 0 when it says healthy. */
int cli_node_status_json(const struct cli_ctx *ctx, int argc, char **argv)
{
	const char *cluster = argv[0];
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);
	cJSON *reply = cli_request(ctx, cluster, "node-status-json", 0, NULL);
	if (reply == NULL)
		return CLI_EXIT_FAIL;
	int rc = CLI_EXIT_FAIL;
	const cJSON *node = cJSON_GetObjectItemCaseSensitive(reply, "node");
	if (!reply_ok(reply, cluster)) {
		rc = CLI_EXIT_FAIL;
	} else if (!cJSON_IsObject(node)) {
		cli_error("cluster %s: the agent's reply has no node status", cluster);
	} else {
		char *text = cJSON_Print(node);
		if (text != NULL) {
			printf("%s\n", text);
			free(text);
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "healthy")))
				rc = CLI_EXIT_OK;
		}
	}
	cJSON_Delete(reply);
	return rc;
}

/* run_command sends a validated command and reports the agent's answer. */
static int run_command(const struct cli_ctx *ctx, const char *cluster, int nargs, char *const *args)
{
	cJSON *reply = cli_request(ctx, cluster, ctx->command, nargs, args);
	if (reply == NULL)
		return CLI_EXIT_FAIL;
	int rc = CLI_EXIT_FAIL;
	if (reply_ok(reply, cluster)) {
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(reply, "message");
		if (cJSON_IsString(msg) && msg->valuestring[0] != '\0')
			printf("%s\n", msg->valuestring);
		else
			printf("%s: done\n", ctx->command);
		rc = CLI_EXIT_OK;
	}
	cJSON_Delete(reply);
	return rc;
}

/* check_args applies the agent's own argument checks before asking it. */
static bool check_args(const struct cli_ctx *ctx, int nargs, char *const *args,
                       struct admin_arg_values *v, int *rc)
{
	char why[512];
	if (admin_arg_check(ctx->command, nargs, (const char *const *)args, v, why, sizeof(why)))
		return true;
	*rc = cli_usage_error(ctx, "%s", why);
	return false;
}

/* cli_node_change: add-node/allow-node CLUSTER ADDRESS [PRIORITY], remove-/disallow-node. */
int cli_node_change(const struct cli_ctx *ctx, int argc, char **argv)
{
	struct admin_arg_values v;
	int rc;
	if (!cli_valid_cluster(argv[0]))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", argv[0]);
	if (!check_args(ctx, argc - 1, argv + 1, &v, &rc))
		return rc;
	return run_command(ctx, argv[0], argc - 1, argv + 1);
}

/* cli_set_priority: set-priority CLUSTER ADDRESS PRIORITY. */
int cli_set_priority(const struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_node_change(ctx, argc, argv);
}

/* cli_promote: promote CLUSTER [-switchover]. */
int cli_promote(const struct cli_ctx *ctx, int argc, char **argv)
{
	char *sw[] = {"-switchover"};
	struct admin_arg_values v;
	int rc;
	if (!cli_valid_cluster(argv[0]))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", argv[0]);
	if (!check_args(ctx, argc - 1, argv + 1, &v, &rc))
		return rc;
	/* One spelling on the wire, whichever the operator typed. */
	return run_command(ctx, argv[0], v.switchover ? 1 : 0, v.switchover ? sw : NULL);
}

/* cli_simple: commands that take only the cluster name (resume, stop-cluster). */
int cli_simple(const struct cli_ctx *ctx, int argc, char **argv)
{
	if (!cli_valid_cluster(argv[0]))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", argv[0]);
	return run_command(ctx, argv[0], 0, NULL);
}

/* confirm asks a yes/no question on the terminal; false unless the answer is yes. */
static bool confirm(const char *question)
{
	char line[64];
	if (!isatty(STDIN_FILENO))
		return false;
	printf("%s [y/N] ", question);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

/* cli_reset_members: reset-members CLUSTER [--yes]; asks first unless --yes. */
int cli_reset_members(const struct cli_ctx *ctx, int argc, char **argv)
{
	if (!cli_valid_cluster(argv[0]))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", argv[0]);
	if (argc > 1 && strcmp(argv[1], "--yes") != 0)
		return cli_usage_error(ctx, "unexpected argument \"%s\"", argv[1]);
	if (argc == 1) {
		if (!isatty(STDIN_FILENO))
			return cli_usage_error(ctx, "not a terminal: pass --yes to confirm");
		if (!confirm("This rebuilds the cluster's voting membership from the members this "
		             "agent can reach now. Use it only when quorum is lost for good. "
		             "Continue?")) {
			cli_error("reset-members cancelled");
			return CLI_EXIT_FAIL;
		}
	}
	return run_command(ctx, argv[0], 0, NULL);
}
