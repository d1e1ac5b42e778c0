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
#include <stdint.h>
#include <string.h>
#include <time.h>
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

/*
 * request sends one command to CLUSTER's agent; NULL after printing why.
 * no_probe asks a status from what the agent knows, without probing the
 * databases (cheap enough to poll).
 */
static cJSON *request(const struct cli_ctx *ctx, const char *cluster, const char *command,
                      int nargs, char *const *args, bool no_probe)
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
	if (no_probe)
		cJSON_AddBoolToObject(req, "probe", false);

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

cJSON *cli_request(const struct cli_ctx *ctx, const char *cluster, const char *command, int nargs,
                   char *const *args)
{
	return request(ctx, cluster, command, nargs, args, false);
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
                        struct status_model *m, bool probe)
{
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);
	*reply = request(ctx, cluster, "cluster-status", 0, NULL, !probe);
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
	int rc = fetch_status(ctx, argv[0], &reply, &m, true);
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
	int rc = fetch_status(ctx, argv[0], &reply, &m, true);
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

/* How long the agents may take to confirm, select and lock (their bound is below this). */
#define PROMOTE_ASK_MS (120 * 1000)
/* How long a started promotion is followed through the status. */
#define PROMOTE_FOLLOW_MS (600 * 1000)
#define PROMOTE_POLL_MS   250
/* How long, after DONE, the new master's agent is given to report itself Master. */
#define PROMOTE_SETTLE_MS (15 * 1000)

/* pause_ms waits between two looks at the status. */
static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* IGNORE-BANNED: CLI only */
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* settled: the candidate's own agent reports it as the Master (or the wait is over). */
static bool settled(const struct status_model *m, long long done_at)
{
	char host[EFM_HOST_MAX];
	if (now_ms() - done_at >= PROMOTE_SETTLE_MS ||
	    !address_split(m->failover.candidate, host, sizeof(host), NULL))
		return true;
	for (size_t i = 0; i < m->n_nodes; i++)
		if (strcmp(m->nodes[i].address, host) == 0)
			return m->nodes[i].type == NODE_MASTER;
	return true;
}

/*
 * follow_promotion prints the phases of promotion serial as the local
 * agent's status shows them, then the cluster's status; 0 when it ended DONE.
 */
static int follow_promotion(const struct cli_ctx *ctx, const char *cluster, uint64_t serial)
{
	char shown[32] = "";
	long long deadline = now_ms() + PROMOTE_FOLLOW_MS, done_at = 0;
	int rc = CLI_EXIT_FAIL;
	for (;;) {
		cJSON *reply = NULL;
		struct status_model m = {0};
		bool got = fetch_status(ctx, cluster, &reply, &m, false) == CLI_EXIT_OK;
		bool over = false;
		if (got && m.failover.present && m.failover.serial >= serial) {
			const char *phase = m.failover.serial > serial ? "DONE" : m.failover.phase;
			if (strcmp(phase, shown) != 0) {
				printf("  phase %s\n", phase);
				fflush(stdout);
				snprintf(shown, sizeof(shown), "%s", phase);
			}
			/* the leader's reason reaches this agent with its next heartbeats */
			if (strcmp(phase, "ABORTED") == 0) {
				if (done_at == 0)
					done_at = now_ms();
				over = strstr(m.failover.decision, "aborted") != NULL ||
				       now_ms() - done_at >= PROMOTE_SETTLE_MS / 3;
			}
			if (strcmp(phase, "DONE") == 0) {
				/* the new master's agent takes its role at its next check */
				if (done_at == 0)
					done_at = now_ms();
				over = settled(&m, done_at);
			}
			if (over) {
				if (strcmp(phase, "ABORTED") == 0)
					cli_error("cluster %s: the promotion was aborted: %s",
					          cluster, m.failover.decision);
				printf("\n");
				status_render_text(stdout, &m);
				rc = strcmp(phase, "DONE") == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
			}
		}
		status_free(&m);
		cJSON_Delete(reply);
		if (over)
			return rc;
		if (now_ms() >= deadline) {
			cli_error(
			    "cluster %s: promotion %llu has not ended after %d s; follow it with "
			    "efm cluster-status",
			    cluster, (unsigned long long)serial, PROMOTE_FOLLOW_MS / 1000);
			return CLI_EXIT_FAIL;
		}
		pause_ms(PROMOTE_POLL_MS);
	}
}

/* ask_promote sends the request once, with --yes when yes. */
static cJSON *ask_promote(const struct cli_ctx *ctx, const char *cluster,
                          const struct admin_arg_values *v, bool yes)
{
	char *args[5];
	int n = 0;
	char node[sizeof(v->address)];
	if (v->switchover)
		args[n++] = "-switchover";
	if (yes)
		args[n++] = "--yes";
	if (v->has_address) {
		snprintf(node, sizeof(node), "%s", v->address);
		args[n++] = "-node";
		args[n++] = node;
	}
	struct cli_ctx long_ctx = *ctx;
	if (long_ctx.timeout_ms < PROMOTE_ASK_MS)
		long_ctx.timeout_ms = PROMOTE_ASK_MS;
	return cli_request(&long_ctx, cluster, "promote", n, args);
}

static bool confirm(const char *question);

/* cli_promote: promote CLUSTER [-switchover] [-node ADDRESS] [--yes]. */
int cli_promote(const struct cli_ctx *ctx, int argc, char **argv)
{
	struct admin_arg_values v;
	int rc;
	const char *cluster = argv[0];
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);
	if (!check_args(ctx, argc - 1, argv + 1, &v, &rc))
		return rc;
	printf("Asking the cluster to %s%s%s...\n",
	       v.switchover ? "switch over" : "promote a standby", v.has_address ? " to " : "",
	       v.has_address ? v.address : "");
	fflush(stdout);
	cJSON *reply = ask_promote(ctx, cluster, &v, v.yes);
	if (reply == NULL)
		return CLI_EXIT_FAIL;
	const cJSON *behind = cJSON_GetObjectItemCaseSensitive(reply, "behind_bytes");
	if (!v.yes && cJSON_IsNumber(behind) && isatty(STDIN_FILENO)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
		printf("%s\n", cJSON_IsString(e) ? e->valuestring : "the candidate is behind");
		if (!confirm("Promote it anyway?")) {
			cJSON_Delete(reply);
			cli_error("promote cancelled: nothing was promoted");
			return CLI_EXIT_FAIL;
		}
		cJSON_Delete(reply);
		reply = ask_promote(ctx, cluster, &v, true);
		if (reply == NULL)
			return CLI_EXIT_FAIL;
	}
	if (!reply_ok(reply, cluster)) {
		cJSON_Delete(reply);
		return CLI_EXIT_FAIL;
	}
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(reply, "message");
	const cJSON *serial = cJSON_GetObjectItemCaseSensitive(reply, "serial");
	printf("%s\n", cJSON_IsString(msg) ? msg->valuestring : "promotion started");
	fflush(stdout);
	uint64_t s =
	    cJSON_IsNumber(serial) && serial->valuedouble >= 1 ? (uint64_t)serial->valuedouble : 0;
	cJSON_Delete(reply);
	if (s == 0) {
		cli_error("cluster %s: the agent did not say which promotion started", cluster);
		return CLI_EXIT_FAIL;
	}
	return follow_promotion(ctx, cluster, s);
}

int cli_rejoin(const struct cli_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	const char *cluster = argv[0];
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);
	printf("Rejoining this node to cluster %s as a standby...\n", cluster);
	fflush(stdout);
	struct cli_ctx long_ctx = *ctx;
	if (long_ctx.timeout_ms < PROMOTE_FOLLOW_MS)
		long_ctx.timeout_ms = PROMOTE_FOLLOW_MS;
	cJSON *reply = cli_request(&long_ctx, cluster, "rejoin", 0, NULL);
	if (reply == NULL)
		return CLI_EXIT_FAIL;
	bool ok = reply_ok(reply, cluster);
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(reply, "message");
	if (ok && cJSON_IsString(msg))
		printf("%s\n", msg->valuestring);
	cJSON_Delete(reply);
	if (!ok)
		return CLI_EXIT_FAIL;
	struct status_model m = {0};
	if (fetch_status(ctx, cluster, &reply, &m, false) == CLI_EXIT_OK) {
		printf("\n");
		status_render_text(stdout, &m);
	}
	status_free(&m);
	cJSON_Delete(reply);
	return CLI_EXIT_OK;
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
