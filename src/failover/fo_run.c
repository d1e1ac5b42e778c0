/*
 * fo_run.c - the local actions that are one program: the virtual IP helper
 * (efm_address), the ping of pingServerIp, and the user's scripts.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fo_int.h"
#include "log.h"

/* Words of pingServerCommand kept; a ping command needs a handful. */
#define PING_MAX_WORDS 32

/* What a one-program action says about itself in its detail. */
struct prog {
	char subject[EFM_HOST_MAX + 160]; /* "assign 10.0.0.100/24 on eth0:1", "10.0.0.1" */
	char path[PATH_MAX];
};

static struct prog *prog_new(struct fo_action *a)
{
	a->kind = calloc(1, sizeof(struct prog));
	return a->kind;
}

/* start_fail ends an action that could not even set up; cb reports it from the loop. */
static struct fo_action *start_fail(struct fo_action *a)
{
	fo__finish_later(a, false, "out of memory");
	return a;
}

/* -- the virtual IP -------------------------------------------------------- */

/*
 * The path found last; the one mutable static of this layer, rewritten on
 * each call so that a tool installed while the agent runs is found.
 */
static char address_tool[PATH_MAX];

const char *fo_address_tool(void)
{
	const char *env = getenv("EFM_ADDRESS_TOOL");
	if (env != NULL && env[0] != '\0')
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash != NULL)
			*slash = '\0';
		static const char *const rel[] = {"efm_address", "../lib/efm/efm_address",
		                                  "../contrib/efm_address"};
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(address_tool, sizeof(address_tool), "%s/%s", exe, rel[i]);
			if (access(address_tool, X_OK) == 0)
				return address_tool;
		}
	}
	snprintf(address_tool, sizeof(address_tool), "/usr/lib/efm/efm_address");
	return address_tool;
}

/* vip_done reports efm_address's outcome with the first line it printed. */
static void vip_done(struct fo_action *a, const struct script_result *r)
{
	struct prog *p = a->kind;
	char how[128], line[256];
	script_result_describe(r, how, sizeof(how));
	fo__first_line(fo_action_output(a), line, sizeof(line));
	if (script_ok(r))
		fo__finish(a, true, "%s: %s", p->subject, line[0] ? line : "done");
	else
		fo__finish(a, false, "%s %s failed: %s%s%s", p->path, p->subject, how,
		           line[0] ? ": " : "", line);
}

struct fo_action *fo_vip(uv_loop_t *loop, const struct efm_config *cfg, bool assign,
                         uint64_t timeout_ms, fo_done_cb cb, void *arg)
{
	char label[EFM_HOST_MAX + 32];
	snprintf(label, sizeof(label), "vip %s", cfg->virtual_ip[0] ? cfg->virtual_ip : "(none)");
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	struct prog *p = prog_new(a);
	if (p == NULL)
		return start_fail(a);
	if (!config_vip_enabled(cfg)) {
		fo__finish_later(a, true, "no virtual IP configured");
		return a;
	}
	snprintf(p->path, sizeof(p->path), "%s", fo_address_tool());
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "%d", cfg->virtual_ip_prefix);
	if (assign) {
		snprintf(p->subject, sizeof(p->subject), "assign %s/%d on %s", cfg->virtual_ip,
		         cfg->virtual_ip_prefix, cfg->virtual_ip_interface);
		const char *args[] = {"assign", cfg->virtual_ip_interface, cfg->virtual_ip, prefix};
		fo__run(a, "virtual IP helper", p->path, args, 4, NULL, 0, timeout_ms, vip_done);
	} else {
		snprintf(p->subject, sizeof(p->subject), "release %s on %s", cfg->virtual_ip,
		         cfg->virtual_ip_interface);
		const char *args[] = {"release", cfg->virtual_ip_interface, cfg->virtual_ip};
		fo__run(a, "virtual IP helper", p->path, args, 3, NULL, 0, timeout_ms, vip_done);
	}
	return a;
}

/* -- ping ------------------------------------------------------------------ */

/* ping_done: exit 0 means the address answers; anything else that ran means it does not. */
static void ping_done(struct fo_action *a, const struct script_result *r)
{
	struct prog *p = a->kind;
	char how[128];
	script_result_describe(r, how, sizeof(how));
	if (script_ok(r))
		fo__finish(a, true, "%s answers (%s)", p->subject, p->path);
	else if (r->outcome == SCRIPT_EXITED)
		fo__finish(a, false, "%s does not answer (%s: %s)", p->subject, p->path, how);
	else
		fo__finish(a, false, "cannot ping %s: pingServerCommand %s %s", p->subject, p->path,
		           how);
}

struct fo_action *fo_ping(uv_loop_t *loop, const struct efm_config *cfg, const char *ip,
                          uint64_t timeout_ms, fo_done_cb cb, void *arg)
{
	if (ip == NULL)
		ip = cfg->ping_server_ip;
	char label[EFM_HOST_MAX + 16];
	snprintf(label, sizeof(label), "ping %s", ip[0] ? ip : "(none)");
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	struct prog *p = prog_new(a);
	if (p == NULL)
		return start_fail(a);
	if (ip[0] == '\0') {
		fo__finish_later(a, true, "no ping server configured");
		return a;
	}
	snprintf(p->subject, sizeof(p->subject), "%s", ip);
	if (ip[0] == '-' || strpbrk(ip, " \t\r\n") != NULL) {
		/* It would reach the command as an option, not as an address. */
		fo__finish_later(a, false, "refusing to ping \"%.80s\": not an address", ip);
		return a;
	}

	/* Split a copy of the command on blanks; the address goes last. */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s", cfg->ping_server_command);
	const char *words[PING_MAX_WORDS + 1];
	size_t n = 0;
	char *save = NULL;
	for (char *w = strtok_r(cmd, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		if (n == PING_MAX_WORDS) {
			fo__finish_later(a, false, "pingServerCommand has more than %d words",
			                 PING_MAX_WORDS);
			return a;
		}
		words[n++] = w;
	}
	if (n == 0) {
		fo__finish_later(a, false, "pingServerCommand is empty");
		return a;
	}
	snprintf(p->path, sizeof(p->path), "%s", words[0]);
	words[n] = ip;
	fo__run(a, "ping command", words[0], words + 1, n, NULL, 0, timeout_ms, ping_done);
	return a;
}

/* -- user scripts ---------------------------------------------------------- */

static void script_done(struct fo_action *a, const struct script_result *r)
{
	struct prog *p = a->kind;
	char how[128];
	script_result_describe(r, how, sizeof(how));
	fo__finish(a, script_ok(r), "%s %s: %s", p->subject, p->path, how);
}

struct fo_action *fo_script(uv_loop_t *loop, const struct efm_config *cfg, const char *what,
                            const char *path, const char *const *env, size_t n_env, fo_done_cb cb,
                            void *arg)
{
	char label[128];
	snprintf(label, sizeof(label), "%s", what);
	uint64_t timeout_ms = (uint64_t)cfg->script_timeout_s * 1000;
	struct fo_action *a = fo__new(loop, label, timeout_ms, cb, arg);
	if (a == NULL)
		return NULL;
	struct prog *p = prog_new(a);
	const char **envv = calloc(n_env + 3, sizeof(char *));
	if (p == NULL || envv == NULL) {
		free(envv);
		return start_fail(a);
	}
	snprintf(p->subject, sizeof(p->subject), "%s", what);
	snprintf(p->path, sizeof(p->path), "%s", path);
	if (path[0] == '\0') {
		free(envv);
		fo__finish_later(a, true, "%s not set", what);
		return a;
	}
	const char *event = strncmp(what, "script.", 7) == 0 ? what + 7 : what;
	char e_cluster[192], e_node[EFM_HOST_MAX + 16], e_event[128];
	snprintf(e_cluster, sizeof(e_cluster), "EFM_CLUSTER=%s", cfg->cluster);
	snprintf(e_node, sizeof(e_node), "EFM_NODE=%s", cfg->bind.host);
	snprintf(e_event, sizeof(e_event), "EFM_EVENT=%s", event);
	envv[0] = e_cluster;
	envv[1] = e_node;
	envv[2] = e_event;
	for (size_t i = 0; i < n_env; i++)
		envv[3 + i] = env[i];
	log_info("%s: running %s", a->label, path);
	fo__run(a, what, path, NULL, 0, envv, n_env + 3, timeout_ms, script_done);
	free(envv); /* script_start copied it */
	return a;
}
