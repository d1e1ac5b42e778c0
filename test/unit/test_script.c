/*
 * test_script.c - the script runner with real processes on a real loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "script.h"

static char dir[64];

/* What one run reported, copied out of the callback. */
struct outcome {
	int calls;
	struct script_result r;
	char *output;
};

static void on_done(const struct script_result *r, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->r = *r;
	o->output = malloc(r->output_len + 1);
	memcpy(o->output, r->output, r->output_len + 1);
	o->r.output = o->output;
}

/* write_script puts body into dir/name with the given mode; returns the path (static buffer per
 * name). */
static const char *write_script(const char *name, const char *body, mode_t mode)
{
	static char paths[16][128];
	static int next;
	char *path = paths[next++ % 16];
	snprintf(path, 128, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

/* run starts spec and runs the loop until the callback came; checks it came once and
 * asynchronously. */
static void run(struct script_spec *spec, struct outcome *o)
{
	uv_loop_t loop;
	memset(o, 0, sizeof(*o));
	assert_int_equal(uv_loop_init(&loop), 0);
	struct script_run *r = script_start(&loop, spec, on_done, o);
	assert_non_null(r);
	assert_int_equal(o->calls, 0); /* never from inside script_start */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(o->calls, 1);
	assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */
}

static void outcome_free(struct outcome *o)
{
	free(o->output);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/efm-test-script-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_exit_code(void **state)
{
	struct script_spec spec = {
	    .what = "test script",
	    .path = write_script("exit3", "echo hello; echo oops >&2; exit 3", 0700),
	    .timeout_ms = 10000};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_EXITED);
	assert_int_equal(o.r.exit_code, 3);
	assert_false(script_ok(&o.r));
	assert_string_equal(o.output, "hello\noops\n"); /* stdout and stderr in one buffer */
	char desc[128];
	script_result_describe(&o.r, desc, sizeof(desc));
	assert_string_equal(desc, "exit code 3");
	outcome_free(&o);
}

static void test_signal(void **state)
{
	struct script_spec spec = {.path = write_script("sig", "kill -KILL $$", 0700),
	                           .timeout_ms = 10000};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_SIGNALED);
	assert_int_equal(o.r.term_signal, SIGKILL);
	char desc[128];
	script_result_describe(&o.r, desc, sizeof(desc));
	assert_non_null(strstr(desc, "killed by signal 9"));
	outcome_free(&o);
}

/* pid_gone: no such process, or only a zombie waiting for its new parent to reap it. */
static bool pid_gone(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return true;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* wait_gone polls for up to 5 s for pid to disappear. */
static bool wait_gone(pid_t pid)
{
	for (int i = 0; i < 100; i++) {
		if (pid_gone(pid))
			return true;
		usleep(50 * 1000);
	}
	return false;
}

static pid_t read_pid(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	int pid = 0;
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	assert_true(pid > 1);
	return pid;
}

static void test_timeout_kills_group(void **state)
{
	char body[256];
	snprintf(body, sizeof(body), "sleep 1000 &\necho $! > %s/child.pid\nsleep 1000", dir);
	struct script_spec spec = {.path = write_script("slow", body, 0700), .timeout_ms = 500};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_TIMED_OUT);
	assert_true(o.r.elapsed_ms >= 500);
	char desc[128];
	script_result_describe(&o.r, desc, sizeof(desc));
	assert_string_equal(desc, "timed out after 500 ms");
	assert_true(wait_gone(o.r.pid));
	assert_true(wait_gone(read_pid("child.pid")));
	outcome_free(&o);
}

static void test_timeout_term_ignored(void **state)
{
	/* Ignoring TERM is inherited by the child: only SIGKILL to the group ends both. */
	char body[256];
	snprintf(body, sizeof(body), "trap '' TERM\nsleep 1000 &\necho $! > %s/child2.pid\nwait",
	         dir);
	struct script_spec spec = {.path = write_script("stubborn", body, 0700), .timeout_ms = 300};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_TIMED_OUT);
	assert_int_equal(o.r.term_signal, SIGKILL);
	assert_true(wait_gone(read_pid("child2.pid")));
	outcome_free(&o);
}

static void test_output_bounded(void **state)
{
	struct script_spec spec = {
	    .path =
	        write_script("big", "head -c 10000000 /dev/zero | tr '\\0' x; echo done >&2", 0700),
	    .timeout_ms = 30000};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_EXITED);
	assert_int_equal(o.r.exit_code, 0); /* the script was never blocked on a full pipe */
	assert_true(o.r.truncated);
	assert_true(o.r.output_len <= SCRIPT_OUTPUT_MAX + 100);
	assert_true(o.r.output_len > SCRIPT_OUTPUT_MAX);
	assert_int_equal(strlen(o.output), o.r.output_len);
	assert_non_null(strstr(o.output, "[output truncated]"));
	assert_int_equal(o.output[0], 'x');
	outcome_free(&o);
}

static void test_argv_exact(void **state)
{
	const char *args[] = {"two words", "it's \"quoted\" $HOME `x`", "", "*"};
	struct script_spec spec = {.path = write_script("argv", "printf '[%s]\\n' \"$@\"", 0700),
	                           .args = args,
	                           .n_args = 4,
	                           .timeout_ms = 10000};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.exit_code, 0);
	assert_string_equal(o.output, "[two words]\n[it's \"quoted\" $HOME `x`]\n[]\n[*]\n");
	outcome_free(&o);
}

static void test_env_scrubbed(void **state)
{
	setenv("EFM_TEST_SECRET", "leaked", 1);
	const char *env[] = {"EFM_CLUSTER=acctg", "EFM_EVENT=db.failure", "bad name=x"};
	struct script_spec spec = {
	    .path = write_script("env",
	                         "echo \"secret=${EFM_TEST_SECRET-unset} home=${HOME-unset} "
	                         "cluster=$EFM_CLUSTER event=$EFM_EVENT lang=$LANG path=$PATH "
	                         "cwd=$(pwd)\"; read line; echo \"read=$?\"",
	                         0700),
	    .env = env,
	    .n_env = 3,
	    .timeout_ms = 10000};
	struct outcome o;
	run(&spec, &o);
	unsetenv("EFM_TEST_SECRET");
	assert_int_equal(o.r.exit_code, 0);
	assert_string_equal(o.output,
	                    "secret=unset home=unset cluster=acctg event=db.failure lang=C "
	                    "path=/usr/sbin:/usr/bin:/sbin:/bin cwd=/\nread=1\n");
	outcome_free(&o);
}

static void test_spawn_failure(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/does-not-exist", dir);
	struct script_spec spec = {.path = path, .timeout_ms = 1000};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_SPAWN_FAILED);
	assert_int_equal(o.r.spawn_error, UV_ENOENT);
	char desc[128];
	script_result_describe(&o.r, desc, sizeof(desc));
	assert_non_null(strstr(desc, "could not be started"));
	outcome_free(&o);
}

/* cancel_soon cancels the run from a timer, as an agent stopping would. */
static void cancel_soon(uv_timer_t *t)
{
	script_cancel(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void **state)
{
	struct script_spec spec = {.path = write_script("cancel", "sleep 1000", 0700),
	                           .timeout_ms = 60000};
	struct outcome o = {0};
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct script_run *r = script_start(&loop, &spec, on_done, &o);
	assert_non_null(r);
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	t.data = r;
	uv_timer_start(&t, cancel_soon, 100, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.r.outcome, SCRIPT_CANCELLED);
	assert_true(o.r.elapsed_ms < 5000);
	assert_int_equal(uv_loop_close(&loop), 0);
	outcome_free(&o);
}

static void test_leftover_child_holding_pipe(void **state)
{
	char body[256];
	snprintf(body, sizeof(body), "sleep 30 &\necho $! > %s/bg.pid\necho started\nexit 0", dir);
	struct script_spec spec = {.path = write_script("bg", body, 0700), .timeout_ms = 20000};
	struct outcome o;
	run(&spec, &o);
	assert_int_equal(o.r.outcome, SCRIPT_EXITED);
	assert_int_equal(o.r.exit_code, 0);
	assert_non_null(strstr(o.output, "started\n"));
	assert_non_null(strstr(o.output, "held open"));
	kill(read_pid("bg.pid"), SIGKILL);
	outcome_free(&o);
}

static void test_describe(void **state)
{
	struct script_result r = {.outcome = SCRIPT_TIMED_OUT, .timeout_ms = 60000};
	char desc[128];
	script_result_describe(&r, desc, sizeof(desc));
	assert_string_equal(desc, "timed out after 60 s");
	r = (struct script_result){.outcome = SCRIPT_EXITED, .exit_code = 0};
	assert_true(script_ok(&r));
	script_result_describe(&r, desc, sizeof(desc));
	assert_string_equal(desc, "exit code 0");
}

static void test_check(void **state)
{
	char why[512];
	const char *good = write_script("good", "exit 0", 0700);
	assert_true(script_check(good, why, sizeof(why)));

	const char *gw = write_script("groupw", "exit 0", 0770);
	assert_false(script_check(gw, why, sizeof(why)));
	assert_non_null(strstr(why, "writable by group or others"));

	const char *ow = write_script("otherw", "exit 0", 0702);
	assert_false(script_check(ow, why, sizeof(why)));

	const char *noexec = write_script("noexec", "exit 0", 0600);
	assert_false(script_check(noexec, why, sizeof(why)));
	assert_non_null(strstr(why, "not executable"));

	assert_false(script_check("bin/fence.sh", why, sizeof(why)));
	assert_non_null(strstr(why, "not an absolute path"));
	assert_false(script_check("", why, sizeof(why)));

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	assert_false(script_check(missing, why, sizeof(why)));
	assert_non_null(strstr(why, "No such file"));

	assert_false(script_check(dir, why, sizeof(why)));
	assert_non_null(strstr(why, "not a regular file"));

	/* A script owned by another user (not root, not us). */
	const char *foreign = write_script("foreign", "exit 0", 0700);
	assert_int_equal(chown(foreign, 12345, 12345), 0);
	assert_false(script_check(foreign, why, sizeof(why)));
	assert_non_null(strstr(why, "owned by uid 12345"));

	/* A safe file in an unsafe directory. */
	char sub[128], inner[160];
	snprintf(sub, sizeof(sub), "%s/shared", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/fence", sub);
	FILE *f = fopen(inner, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexit 0\n", f);
	fclose(f);
	assert_int_equal(chmod(inner, 0700), 0);
	assert_true(script_check(inner, why, sizeof(why)));
	assert_int_equal(chmod(sub, 0777), 0);
	assert_false(script_check(inner, why, sizeof(why)));
	assert_non_null(strstr(why, "directory"));

	/* A symlink from a safe place into the unsafe directory is refused too. */
	char link[160];
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(inner, link), 0);
	assert_false(script_check(link, why, sizeof(why)));
}

int main(void)
{
	/* Children must not inherit an ignored SIGPIPE/CHLD setup from ctest. */
	signal(SIGPIPE, SIG_DFL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exit_code),
	    cmocka_unit_test(test_signal),
	    cmocka_unit_test(test_timeout_kills_group),
	    cmocka_unit_test(test_timeout_term_ignored),
	    cmocka_unit_test(test_output_bounded),
	    cmocka_unit_test(test_argv_exact),
	    cmocka_unit_test(test_env_scrubbed),
	    cmocka_unit_test(test_spawn_failure),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_leftover_child_holding_pipe),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
