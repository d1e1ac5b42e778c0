/*
 * fo_action.c - run one local failover action (src/failover/fo_local.h) on a
 * uv loop, for the integration tests.
 *
 *   fo_action [--config-dir D] [--timeout S] [--cancel-after MS] CLUSTER ACTION [ARGS]
 *     promote | fence | follow HOST PORT | vip-assign | vip-release |
 *     ping [IP] | script WHAT PATH [NAME=value...]
 *
 * The configuration is read and checked exactly as efmd does (preflight_load).
 * Prints "ok: DETAIL" or "failed: DETAIL" on its first line, then the output of
 * the program the action ran, each line prefixed by "| ".  Exit status: 0 ok,
 * 1 failed, 2 usage or configuration, 3 cancelled (--cancel-after: the action
 * is cancelled after MS ms; its callback must then never run), 4 the loop did
 * not close cleanly (a handle was left behind).  The log goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fo_local.h"
#include "log.h"
#include "preflight.h"

struct run {
	struct fo_action *action;
	bool called;
	bool ok;
	int calls;
	uv_timer_t cancel_timer;
};

static void on_done(void *arg, bool ok, const char *detail)
{
	struct run *r = arg;
	r->calls++;
	r->called = true;
	r->ok = ok;
	printf("%s: %s\n", ok ? "ok" : "failed", detail);
	const char *out = fo_action_output(r->action);
	while (*out != '\0') {
		size_t n = strcspn(out, "\n");
		printf("| %.*s\n", (int)n, out);
		out += n;
		if (*out == '\n')
			out++;
	}
	fflush(stdout);
	if (!uv_is_closing((uv_handle_t *)&r->cancel_timer))
		uv_close((uv_handle_t *)&r->cancel_timer, NULL);
}

static void on_cancel(uv_timer_t *t)
{
	struct run *r = t->data;
	fo_action_cancel(r->action);
	uv_close((uv_handle_t *)&r->cancel_timer, NULL);
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: fo_action [--config-dir D] [--timeout S] [--cancel-after MS] [--checks "
	        "start|parse] "
	        "CLUSTER ACTION\n"
	        "  ACTION: promote | fence | follow HOST PORT | vip-assign | vip-release |\n"
	        "          ping [IP] | script WHAT PATH [NAME=value...]\n");
	return 2;
}

/* start begins the action named by argv[0]; NULL with *bad set on a usage error. */
static struct fo_action *start(uv_loop_t *loop, const struct efm_config *cfg, const char *pw,
                               uint64_t ms, int argc, char **argv, struct run *r, bool *bad)
{
	const char *act = argv[0];
	*bad = false;
	if (strcmp(act, "promote") == 0 && argc == 1)
		return fo_promote_db(loop, cfg, pw, ms, on_done, r);
	if (strcmp(act, "fence") == 0 && argc == 1)
		return fo_fence_db(loop, cfg, ms, on_done, r);
	if (strcmp(act, "follow") == 0 && argc == 3)
		return fo_follow_db(loop, cfg, pw, argv[1], atoi(argv[2]), ms, on_done, r);
	if (strcmp(act, "vip-assign") == 0 && argc == 1)
		return fo_vip(loop, cfg, true, ms, on_done, r);
	if (strcmp(act, "vip-release") == 0 && argc == 1)
		return fo_vip(loop, cfg, false, ms, on_done, r);
	if (strcmp(act, "ping") == 0 && argc <= 2)
		return fo_ping(loop, cfg, argc == 2 ? argv[1] : NULL, ms, on_done, r);
	if (strcmp(act, "script") == 0 && argc >= 3)
		return fo_script(loop, cfg, argv[1], argv[2], (const char *const *)argv + 3,
		                 (size_t)argc - 3, on_done, r);
	*bad = true;
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = "/etc/efm";
	double timeout_s = 30;
	long cancel_ms = -1;
	bool unchecked = false;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc)
			return usage();
		if (strcmp(argv[i], "--config-dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout_s = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--cancel-after") == 0)
			cancel_ms = atol(argv[i + 1]);
		/* --checks start|parse: the agent's start-up checks, or only reading the files */
		else if (strcmp(argv[i], "--checks") == 0)
			unchecked = strcmp(argv[i + 1], "parse") == 0;
		else
			return usage();
	}
	if (argc - i < 2)
		return usage();
	const char *cluster = argv[i];

	log_set_level(EFM_FINE);
	struct problems pr = {0};
	char password[256];
	password[0] = '\0';
	/*
	 * The actions check what they need themselves, behind the agent's start-up
	 * checks; --checks parse lets a test reach those inner checks.
	 */
	struct efm_config *cfg =
	    unchecked ? config_load(dir, cluster, &pr)
	              : preflight_load(dir, cluster, password, sizeof(password), &pr);
	if (cfg == NULL || problems_total(&pr) > 0) {
		for (size_t k = 0; k < pr.n; k++)
			fprintf(stderr, "%s\n", pr.msgs[k]);
		fprintf(stderr, "fo_action: the configuration of %s in %s is not usable\n", cluster,
		        dir);
		problems_free(&pr);
		config_free(cfg);
		return 2;
	}
	problems_free(&pr);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct run r = {0};
	uv_timer_init(&loop, &r.cancel_timer);
	r.cancel_timer.data = &r;
	bool bad;
	r.action = start(&loop, cfg, password, (uint64_t)(timeout_s * 1000), argc - i - 1,
	                 argv + i + 1, &r, &bad);
	/* The action copied what it needs: the configuration may go at once (a reload does). */
	config_free(cfg);
	explicit_bzero(password, sizeof(password));
	if (bad) {
		uv_close((uv_handle_t *)&r.cancel_timer, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return usage();
	}
	if (r.action == NULL) {
		fprintf(stderr, "fo_action: out of memory\n");
		return 2;
	}
	if (r.called) {
		fprintf(stderr, "fo_action: the callback ran inside the start call\n");
		return 4;
	}
	if (cancel_ms >= 0)
		uv_timer_start(&r.cancel_timer, on_cancel, (uint64_t)cancel_ms, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0) {
		fprintf(stderr, "fo_action: handles left open on the loop\n");
		return 4;
	}
	if (r.calls > 1) {
		fprintf(stderr, "fo_action: the callback ran %d times\n", r.calls);
		return 4;
	}
	if (!r.called) {
		printf("cancelled\n");
		return 3;
	}
	return r.ok ? 0 : 1;
}
