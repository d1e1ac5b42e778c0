/*
 * test_admin.c - the admin socket: a real server on a uv loop in a temporary
 * directory, and clients (admin_call and raw sockets) in a second thread and
 * unprivileged child processes; and the argument checks of admin_arg.h.
 *
 * cmocka's asserts must not run off the main thread, so the client thread
 * records failures with CHECK and the main thread asserts there were none.
 */
#define _GNU_SOURCE /* setresuid */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin.h"
#include "admin_arg.h"
#include "log.h"

#define LATE_MS 200
/* The server is started under this descriptor limit, which caps it at 16 clients, 12 of them
 * for users other than root and its own. */
#define TEST_NOFILE     128
#define TEST_CAP        16
#define TEST_CAP_OTHERS 12
#define HOG_CONNECTIONS 20

static struct {
	char dir[64];
	char sock[100];
	char log[100];
	uv_loop_t loop;
	uv_async_t done;
	struct admin_server *server;
	atomic_int late_replied; /* replies the "later" handler has sent (or had dropped) */
	atomic_int mutate_calls;
	atomic_int later_started; /* requests the "later" handler has taken */
	char failure[512];        /* first CHECK failure, "" if none */
	pid_t child;              /* the unprivileged client, or 0 */
	int child_status;
	pid_t hog;      /* an unprivileged client holding idle connections, or 0 */
	int hog_go[2];  /* the client thread tells the hog: 'o' open, 'q' quit */
	int hog_out[2]; /* the hog reports "held refused\n" */
	int hog_status;
} t;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond) && t.failure[0] == '\0')                                               \
			snprintf(t.failure, sizeof(t.failure), "%s:%d: %s", __FILE__, __LINE__,    \
			         #cond);                                                           \
	} while (0)

/* ---- the server side: three commands ---- */

static void cmd_ping(struct admin_request *req)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddTrueToObject(r, "ok");
	cJSON_AddStringToObject(r, "message", "pong");
	cJSON_AddNumberToObject(r, "nargs", cJSON_GetArraySize(req->args));
	cJSON_AddNumberToObject(r, "uid", (double)req->uid);
	cJSON_AddNumberToObject(r, "pid", (double)req->pid);
	admin_reply(req, r);
}

struct later {
	uv_timer_t timer;
	struct admin_request *req;
};

static void on_later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_later(uv_timer_t *timer)
{
	struct later *l = timer->data;
	cJSON *r = cJSON_CreateObject();
	cJSON_AddTrueToObject(r, "ok");
	cJSON_AddStringToObject(r, "message", "late");
	admin_reply(l->req, r);
	atomic_fetch_add(&t.late_replied, 1);
	uv_close((uv_handle_t *)&l->timer, on_later_closed);
}

/* cmd_later answers from a timer, as a status query waiting on databases does. */
static void cmd_later(struct admin_request *req)
{
	struct later *l = calloc(1, sizeof(*l));
	atomic_fetch_add(&t.later_started, 1);
	l->req = req;
	uv_timer_init(req->agent, &l->timer);
	l->timer.data = l;
	uv_timer_start(&l->timer, on_later, LATE_MS, 0);
}

static void cmd_mutate(struct admin_request *req)
{
	atomic_fetch_add(&t.mutate_calls, 1);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddTrueToObject(r, "ok");
	cJSON_AddStringToObject(r, "message", "changed");
	admin_reply(req, r);
}

/* cmd_add_node shows what the server made of the arguments. */
static void cmd_add_node(struct admin_request *req)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddTrueToObject(r, "ok");
	cJSON_AddStringToObject(r, "host", req->values.host);
	cJSON_AddNumberToObject(r, "port", req->values.port);
	cJSON_AddNumberToObject(r, "priority", req->values.priority);
	admin_reply(req, r);
}

static const struct admin_command table[] = {
    {"ping", false, cmd_ping},
    {"later", false, cmd_later},
    {"mutate", true, cmd_mutate},
    {"add-node", false, cmd_add_node},
};
#define N_TABLE (sizeof(table) / sizeof(table[0]))

/* ---- client helpers ---- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* call sends {"command": cmd} (with n string args) and returns the reply. */
static cJSON *call(const char *cmd, int nargs, int timeout_ms, char *err, size_t errlen)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "command", cmd);
	cJSON *args = cJSON_AddArrayToObject(req, "args");
	for (int i = 0; i < nargs; i++)
		cJSON_AddItemToArray(args, cJSON_CreateString("x"));
	cJSON *reply = admin_call(t.sock, req, timeout_ms, err, errlen);
	cJSON_Delete(req);
	return reply;
}

/* reply_is checks "ok" and the message or error text (a substring). */
static bool reply_is(const cJSON *r, bool ok, const char *key, const char *text)
{
	if (r == NULL || cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) != ok)
		return false;
	const cJSON *v = cJSON_GetObjectItem(r, key);
	return cJSON_IsString(v) && strstr(v->valuestring, text) != NULL;
}

/* raw_connect opens a plain blocking connection to the server. */
static int raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* raw_read_all reads until EOF (bounded) into buf; returns the length. */
static size_t raw_read_all(int fd, char *buf, size_t size)
{
	size_t len = 0;
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len + 1 < size) {
		ssize_t n = recv(fd, buf + len, size - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

/* wait_late waits until the "later" handler has replied n times in all. */
static bool wait_late(int n)
{
	long long deadline = now_ms() + 5000;
	while (atomic_load(&t.late_replied) < n && now_ms() < deadline)
		usleep(10 * 1000);
	return atomic_load(&t.late_replied) >= n;
}

/* ---- the client thread: every scenario in turn ---- */

static void check_basic(void)
{
	char err[512];
	cJSON *r = call("ping", 0, 5000, err, sizeof(err));
	CHECK(reply_is(r, true, "message", "pong"));
	CHECK(r != NULL && cJSON_GetObjectItem(r, "nargs")->valuedouble == 0);
	CHECK(r != NULL && cJSON_GetObjectItem(r, "uid")->valuedouble == (double)getuid());
	CHECK(r != NULL && cJSON_GetObjectItem(r, "pid")->valuedouble == (double)getpid());
	cJSON_Delete(r);

	long long start = now_ms();
	r = call("later", 0, 5000, err, sizeof(err));
	CHECK(reply_is(r, true, "message", "late"));
	CHECK(now_ms() - start >= LATE_MS - 20);
	cJSON_Delete(r);

	/* A command without an argument schema takes none. */
	r = call("ping", 2, 5000, err, sizeof(err));
	CHECK(reply_is(r, false, "error", "ping: too many arguments"));
	cJSON_Delete(r);

	r = call("nosuch", 0, 5000, err, sizeof(err));
	CHECK(reply_is(r, false, "error", "unknown command \"nosuch\""));
	cJSON_Delete(r);

	/* We are root or the server's own user, so the mutating command runs. */
	r = call("mutate", 0, 5000, err, sizeof(err));
	CHECK(reply_is(r, true, "message", "changed"));
	cJSON_Delete(r);
	CHECK(atomic_load(&t.mutate_calls) == 1);
}

static void check_malformed(void)
{
	char buf[4096];
	const char *cases[][2] = {
	    {"not json\n", "malformed request"},
	    {"[1,2]\n", "malformed request"},
	    {"{\"args\": []}\n", "no \\\"command\\\""},
	    {"{\"command\": \"ping\", \"args\": 3}\n", "must be an array"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = raw_connect(t.sock);
		CHECK(fd >= 0);
		if (fd < 0)
			continue;
		CHECK(send(fd, cases[i][0], strlen(cases[i][0]), 0) > 0);
		raw_read_all(fd, buf, sizeof(buf));
		CHECK(strstr(buf, "\"ok\":false") != NULL);
		CHECK(strstr(buf, cases[i][1]) != NULL);
		close(fd);
	}

	/* Without "args" the handler still sees an (empty) array. */
	int fd = raw_connect(t.sock);
	CHECK(fd >= 0);
	const char *req = "{\"command\":\"ping\"}\n";
	CHECK(send(fd, req, strlen(req), 0) > 0);
	raw_read_all(fd, buf, sizeof(buf));
	CHECK(strstr(buf, "\"nargs\":0") != NULL);
	close(fd);

	/* A client that sends its request, no newline, then shuts down its side. */
	fd = raw_connect(t.sock);
	req = "{\"command\":\"later\"}";
	CHECK(send(fd, req, strlen(req), 0) > 0);
	shutdown(fd, SHUT_WR);
	raw_read_all(fd, buf, sizeof(buf));
	CHECK(strstr(buf, "\"message\":\"late\"") != NULL);
	size_t len = strlen(buf);
	CHECK(len > 0 && buf[len - 1] == '\n');
	close(fd);
}

/* raw_exchange sends one request line and returns the reply line in buf. */
static void raw_exchange(const char *line, char *buf, size_t size)
{
	buf[0] = '\0';
	int fd = raw_connect(t.sock);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(send(fd, line, strlen(line), 0) == (ssize_t)strlen(line));
	raw_read_all(fd, buf, size);
	close(fd);
}

/* Hostile arguments never reach the handler; good ones arrive checked and parsed. */
static void check_arguments(void)
{
	char buf[4096];
	const char *cases[][2] = {
	    {"{\"command\":\"add-node\",\"args\":[\"%n%n%n%s%s\"]}\n", "invalid ADDRESS"},
	    {"{\"command\":\"add-node\",\"args\":[\"10.0.0.9\",\"99999999999999\"]}\n",
	     "invalid PRIORITY \\\"99999999999999\\\": out of range"},
	    {"{\"command\":\"add-node\",\"args\":[\"10.0.0.9\",\"+5\"]}\n", "invalid PRIORITY"},
	    {"{\"command\":\"add-node\",\"args\":[\"10.0.0.9\",5]}\n",
	     "invalid PRIORITY: expected a string"},
	    {"{\"command\":\"add-node\",\"args\":[]}\n", "missing ADDRESS"},
	    {"{\"command\":\"add-node\",\"args\":[\"a\",\"1\",\"b\"]}\n", "too many arguments"},
	    {"{\"command\":\"add-node\",\"args\":[\"x\\ny\"]}\n", "\\\\x0a"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_exchange(cases[i][0], buf, sizeof(buf));
		CHECK(strstr(buf, "\"ok\":false") != NULL);
		CHECK(strstr(buf, "add-node: ") != NULL);
		if (strstr(buf, cases[i][1]) == NULL && t.failure[0] == '\0')
			snprintf(t.failure, sizeof(t.failure), "argument case %zu: reply %s", i,
			         buf);
	}
	raw_exchange("{\"command\":\"add-node\",\"args\":[\"[FE80::1]:7800\",\"3\"]}\n", buf,
	             sizeof(buf));
	CHECK(strstr(buf, "\"host\":\"fe80::1\"") != NULL);
	CHECK(strstr(buf, "\"port\":7800") != NULL);
	CHECK(strstr(buf, "\"priority\":3") != NULL);
}

static void check_oversized(void)
{
	char err[512];
	size_t big = 100 * 1024;
	char *s = malloc(big + 1);
	memset(s, 'a', big);
	s[big] = '\0';
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "command", "ping");
	cJSON_AddStringToObject(req, "pad", s);
	free(s);
	cJSON *r = admin_call(t.sock, req, 5000, err, sizeof(err));
	cJSON_Delete(req);
	CHECK(reply_is(r, false, "error", "too large"));
	if (r == NULL)
		fprintf(stderr, "oversized: %s\n", err);
	cJSON_Delete(r);
}

static void check_disconnects(void)
{
	char err[512];
	int late = atomic_load(&t.late_replied);

	/* The client leaves before the delayed reply: it is dropped, nothing leaks. */
	int fd = raw_connect(t.sock);
	CHECK(fd >= 0);
	const char *req = "{\"command\":\"later\"}\n";
	CHECK(send(fd, req, strlen(req), 0) > 0);
	close(fd);

	/* The same through admin_call giving up early. */
	long long start = now_ms();
	cJSON *r = call("later", 0, 50, err, sizeof(err));
	CHECK(r == NULL);
	CHECK(errno == ETIMEDOUT);
	CHECK(strstr(err, "no reply") != NULL);
	CHECK(now_ms() - start < LATE_MS);
	cJSON_Delete(r);

	CHECK(wait_late(late + 2));
	/* The server is still fine afterwards. */
	r = call("ping", 0, 5000, err, sizeof(err));
	CHECK(reply_is(r, true, "message", "pong"));
	cJSON_Delete(r);
}

static void check_idle_client(void)
{
	char buf[256];
	long long start = now_ms();
	int fd = raw_connect(t.sock);
	CHECK(fd >= 0);
	/* Say nothing: the server hangs up after its idle timeout (5 s). */
	size_t n = raw_read_all(fd, buf, sizeof(buf));
	long long took = now_ms() - start;
	CHECK(n == 0);
	CHECK(took >= 4000 && took < 9000);
	close(fd);
}

static void check_no_agent(void)
{
	char err[512], path[100];
	long long start = now_ms();
	snprintf(path, sizeof(path), "%s/missing.sock", t.dir);
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "command", "ping");
	cJSON *r = admin_call(path, req, 30000, err, sizeof(err));
	CHECK(r == NULL);
	CHECK(errno == ENOENT);
	CHECK(strstr(err, "no agent running") != NULL);
	CHECK(strstr(err, path) != NULL);
	CHECK(now_ms() - start < 1000);

	/* A socket file left behind by a dead agent: nobody listens. */
	snprintf(path, sizeof(path), "%s/stale.sock", t.dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	/* It could be an agent restarting, so it is retried, briefly. */
	start = now_ms();
	r = admin_call(path, req, 30000, err, sizeof(err));
	CHECK(r == NULL);
	CHECK(errno == ECONNREFUSED);
	CHECK(strstr(err, "no agent running") != NULL);
	CHECK(now_ms() - start >= ADMIN_RETRY_MS - 300);
	CHECK(now_ms() - start < ADMIN_RETRY_MS + 1000);
	/* ... and never beyond the caller's own bound. */
	start = now_ms();
	r = admin_call(path, req, 300, err, sizeof(err));
	CHECK(r == NULL && errno == ECONNREFUSED);
	CHECK(now_ms() - start < 800);
	close(fd);
	unlink(path);
	cJSON_Delete(req);
}

/* A listener that answers one request after a pause, once its backlog was full. */
struct slow_listener {
	int fd;
	int fillers[64];
	int n_fillers;
};

static void *slow_accept(void *arg)
{
	struct slow_listener *l = arg;
	char buf[4096];
	usleep(300 * 1000);
	/* The fillers' connections come first; then the one that waited. */
	for (int i = 0; i < l->n_fillers; i++) {
		int fd = accept(l->fd, NULL, NULL);
		if (fd >= 0)
			close(fd);
	}
	int fd = accept(l->fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	const char *reply = "{\"ok\":true,\"message\":\"accepted late\"}\n";
	if (n > 0)
		(void)send(fd, reply, strlen(reply), 0);
	close(fd);
	return NULL;
}

/* A full backlog (EAGAIN) is retried, so a burst of other clients does not fail efm. */
static void check_full_backlog(void)
{
	char err[512], path[100];
	struct slow_listener l = {0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(path, sizeof(path), "%s/slow.sock", t.dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	l.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(bind(l.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(l.fd, 1) == 0);
	bool full = false;
	while (l.n_fillers < 64 && !full) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			l.fillers[l.n_fillers++] = fd;
			continue;
		}
		full = errno == EAGAIN;
		close(fd);
	}
	CHECK(full);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, slow_accept, &l) == 0);
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "command", "ping");
	long long start = now_ms();
	cJSON *r = admin_call(path, req, 5000, err, sizeof(err));
	CHECK(reply_is(r, true, "message", "accepted late"));
	if (r == NULL)
		fprintf(stderr, "full backlog: %s\n", err);
	CHECK(now_ms() - start < ADMIN_RETRY_MS);
	cJSON_Delete(r);
	cJSON_Delete(req);
	pthread_join(th, NULL);
	for (int i = 0; i < l.n_fillers; i++)
		close(l.fillers[i]);
	close(l.fd);
	unlink(path);
}

/* hog_command tells the hog child what to do next. */
static void hog_command(char c)
{
	CHECK(write(t.hog_go[1], &c, 1) == 1);
}

/* got_busy waits up to ms for fd's reply and tells whether it was "busy". */
static bool got_busy(int fd, int ms)
{
	char buf[512];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n = poll(&p, 1, ms) == 1 ? recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT) : 0;
	if (n <= 0)
		return false;
	buf[n] = '\0';
	CHECK(strstr(buf, "{\"ok\":false,\"busy\":true,\"error\":\"the agent is busy") == buf);
	return true;
}

/*
 * The cap: an unprivileged user gets at most TEST_CAP_OTHERS places, the
 * rest is refused at once with a "busy" reply, and root still gets in.
 * When root fills every place itself, the next client is told "busy",
 * silent clients lose their places within a second, and admin_call's retry
 * gets through.
 */
static void check_cap(void)
{
	char err[512], line[64] = "";
	int held = -1, refused = -1;
	if (t.hog > 0) {
		hog_command('o');
		ssize_t n = read(t.hog_out[0], line, sizeof(line) - 1);
		if (n > 0)
			line[n] = '\0';
		CHECK(sscanf(line, "%d %d", &held, &refused) == 2);
		CHECK(held == TEST_CAP_OTHERS);
		CHECK(refused == HOG_CONNECTIONS - TEST_CAP_OTHERS);
		/* Root is not locked out by them: the reserved places are its. */
		long long start = now_ms();
		cJSON *r = call("ping", 0, 5000, err, sizeof(err));
		CHECK(reply_is(r, true, "message", "pong"));
		CHECK(now_ms() - start < 500);
		cJSON_Delete(r);
		hog_command('q');
		CHECK(waitpid(t.hog, &t.hog_status, 0) == t.hog);
	}
	int mine[TEST_CAP + 1];
	int n_mine = 0;
	bool busy = false;
	while (n_mine <= TEST_CAP && !busy) {
		mine[n_mine] = raw_connect(t.sock);
		CHECK(mine[n_mine] >= 0);
		busy = got_busy(mine[n_mine++], 50);
	}
	CHECK(busy);
	/* That refusal costs the silent clients their places; a real request gets one. */
	long long start = now_ms();
	cJSON *r = call("ping", 0, 5000, err, sizeof(err));
	CHECK(reply_is(r, true, "message", "pong"));
	CHECK(now_ms() - start < ADMIN_RETRY_MS);
	cJSON_Delete(r);
	for (int i = 0; i < n_mine; i++)
		close(mine[i]);
}

static void *client_thread(void *arg)
{
	check_basic();
	check_arguments();
	check_malformed();
	check_oversized();
	check_disconnects();
	check_idle_client();
	check_no_agent();
	check_full_backlog();
	if (t.child > 0) {
		CHECK(waitpid(t.child, &t.child_status, 0) == t.child);
	}
	check_cap();

	/*
	 * The server closes while a handler still holds a request: the late
	 * reply is dropped and the request freed (ASan reports a leak otherwise).
	 */
	int started = atomic_load(&t.later_started);
	int late = atomic_load(&t.late_replied);
	int fd = raw_connect(t.sock);
	CHECK(fd >= 0);
	const char *req = "{\"command\":\"later\"}\n";
	CHECK(send(fd, req, strlen(req), 0) > 0);
	long long deadline = now_ms() + 5000;
	while (atomic_load(&t.later_started) == started && now_ms() < deadline)
		usleep(5 * 1000);
	CHECK(atomic_load(&t.later_started) == started + 1);
	uv_async_send(&t.done);
	char buf[256];
	CHECK(raw_read_all(fd, buf, sizeof(buf)) == 0);
	close(fd);
	CHECK(wait_late(late + 1));
	return NULL;
}

/*
 * unprivileged_client runs in a child as nobody: status is allowed, a
 * mutating command is refused.  Exit status 0 when both behave.
 */
static void unprivileged_client(void)
{
	char err[512];
	if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(65534, 65534, 65534) != 0)
		_exit(10);
	cJSON *r = call("ping", 0, 5000, err, sizeof(err));
	if (!reply_is(r, true, "message", "pong"))
		_exit(11);
	cJSON_Delete(r);
	r = call("mutate", 0, 5000, err, sizeof(err));
	if (!reply_is(r, false, "error", "permission denied"))
		_exit(12);
	cJSON_Delete(r);
	_exit(0);
}

/*
 * unprivileged_hog runs in a child as nobody: on 'o' it opens
 * HOG_CONNECTIONS connections at once and says nothing on them, then
 * reports "held refused": how many the server kept and how many it
 * answered "busy"; it holds them until 'q'.  Raw syscalls only: no thread
 * of the parent's can hold a lock the child would need.
 */
static void unprivileged_hog(void)
{
	char c;
	int fds[HOG_CONNECTIONS];
	int held = 0, refused = 0;
	if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(65534, 65534, 65534) != 0)
		_exit(10);
	if (read(t.hog_go[0], &c, 1) != 1 || c != 'o')
		_exit(11);
	for (int i = 0; i < HOG_CONNECTIONS; i++) {
		fds[i] = raw_connect(t.sock);
		if (fds[i] < 0)
			_exit(12);
	}
	/* A refusal comes at once; a kept connection stays silent for a second at least. */
	usleep(300 * 1000);
	for (int i = 0; i < HOG_CONNECTIONS; i++) {
		char buf[512];
		ssize_t n = recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0)
			buf[n] = '\0';
		if (n > 0 && strstr(buf, "\"busy\":true") != NULL)
			refused++;
		else if (n < 0 && errno == EAGAIN)
			held++;
	}
	char line[64];
	int n = snprintf(line, sizeof(line), "%d %d\n", held, refused);
	if (write(t.hog_out[1], line, (size_t)n) != n)
		_exit(13);
	if (read(t.hog_go[0], &c, 1) != 1 || c != 'q')
		_exit(14);
	_exit(0);
}

static void on_done(uv_async_t *a)
{
	admin_server_close(t.server);
	uv_close((uv_handle_t *)a, NULL);
}

static void test_server_and_client(void **state)
{
	snprintf(t.dir, sizeof(t.dir), "/tmp/efm-admin-XXXXXX");
	assert_non_null(mkdtemp(t.dir));
	assert_int_equal(chmod(t.dir, 0755), 0); /* the unprivileged child must reach the socket */
	snprintf(t.sock, sizeof(t.sock), "%s/test.sock", t.dir);
	snprintf(t.log, sizeof(t.log), "%s/log", t.dir);
	assert_int_equal(log_open(t.log), 0);

	/* A stale socket file from an earlier agent is replaced. */
	FILE *stale = fopen(t.sock, "w");
	assert_non_null(stale);
	fclose(stale);

	assert_int_equal(uv_loop_init(&t.loop), 0);
	/* The client cap is sized from the descriptor limit in force at start. */
	struct rlimit saved, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = TEST_NOFILE;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(admin_server_start(&t.loop, t.sock, table, N_TABLE, &t.loop, &t.server),
	                 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	struct stat st;
	assert_int_equal(stat(t.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0666);
	assert_int_equal(uv_async_init(&t.loop, &t.done, on_done), 0);

	/* Fork before any thread exists; the child blocks until the loop accepts. */
	if (geteuid() == 0) {
		t.child = fork();
		assert_true(t.child >= 0);
		if (t.child == 0)
			unprivileged_client();
		assert_int_equal(pipe(t.hog_go), 0);
		assert_int_equal(pipe(t.hog_out), 0);
		t.hog = fork();
		assert_true(t.hog >= 0);
		if (t.hog == 0)
			unprivileged_hog();
	}
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, client_thread, NULL), 0);
	assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
	pthread_join(th, NULL);
	assert_int_equal(uv_loop_close(&t.loop), 0);
	log_close();

	if (t.failure[0] != '\0')
		fail_msg("%s", t.failure);
	assert_int_equal(atomic_load(&t.mutate_calls), 1); /* the child's call never ran */
	assert_int_equal(access(t.sock, F_OK), -1);        /* closing removed the socket */

	if (t.child > 0) {
		assert_true(WIFEXITED(t.child_status));
		assert_int_equal(WEXITSTATUS(t.child_status), 0);
		/* The refusal is logged at WARNING with the caller's uid, pid and command. */
		char buf[65536] = "";
		FILE *f = fopen(t.log, "r");
		assert_non_null(f);
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		char want[128];
		snprintf(want, sizeof(want),
		         "WARNING admin: client uid 65534 pid %d: refused \"mutate\"",
		         (int)t.child);
		if (strstr(buf, want) == NULL)
			fail_msg("log lacks '%s':\n%s", want, buf);
		assert_true(WIFEXITED(t.hog_status));
		assert_int_equal(WEXITSTATUS(t.hog_status), 0);
		/* Hundreds of refusals or idle closes would not make hundreds of lines. */
		int busy_lines = 0, idle_lines = 0;
		for (const char *p = buf; (p = strstr(p, "clients connected (limit")) != NULL; p++)
			busy_lines++;
		for (const char *p = buf; (p = strstr(p, "no request within")) != NULL; p++)
			idle_lines++;
		assert_in_range(busy_lines, 1, 2);
		assert_in_range(idle_lines, 1, 3);
	}
	unlink(t.log);
	rmdir(t.dir);
}

static void test_may_mutate(void **state)
{
	assert_true(admin_caller_may_mutate(0, 0));
	assert_true(admin_caller_may_mutate(geteuid(), 12345));
	struct group *g = getgrnam("efm");
	if (g != NULL)
		assert_true(admin_caller_may_mutate(54321, g->gr_gid));
	/* An unknown user in an ordinary group. */
	if (geteuid() != 54321)
		assert_false(admin_caller_may_mutate(54321, 54321));
	if (geteuid() != 65534 && (g == NULL || g->gr_gid != 65534))
		assert_false(admin_caller_may_mutate(65534, 65534));
}

/* Numbers: strtoll's range, errno and end pointer, never atoi's wrap-around. */
static void test_arg_int(void **state)
{
	char err[256];
	long long v = -7;
	assert_true(admin_arg_int("PRIORITY", "42", 1, 1000000, &v, err, sizeof(err)));
	assert_int_equal(v, 42);
	assert_true(admin_arg_int("N", "-3", -5, 5, &v, err, sizeof(err)));
	assert_int_equal(v, -3);
	const char *bad[] = {"99999999999999",
	                     "9223372036854775808",
	                     "0",
	                     "-1",
	                     "+5",
	                     " 5",
	                     "5 ",
	                     "1x",
	                     "",
	                     "0x10",
	                     "1e3",
	                     "1000001"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = -7;
		err[0] = '\0';
		if (admin_arg_int("PRIORITY", bad[i], 1, 1000000, &v, err, sizeof(err)))
			fail_msg("\"%s\" accepted as %lld", bad[i], v);
		assert_int_equal(v, -7);
		assert_non_null(strstr(err, "invalid PRIORITY"));
	}
	assert_true(!admin_arg_int("PRIORITY", "99999999999999", 1, 1000000, &v, err, sizeof(err)));
	assert_string_equal(err,
	                    "invalid PRIORITY \"99999999999999\": out of range (1 to 1000000)");
}

static void test_arg_address(void **state)
{
	char err[256], host[EFM_HOST_MAX];
	uint16_t port = 1;
	const struct {
		const char *text, *host;
		uint16_t port;
	} good[] = {
	    {"10.0.1.9", "10.0.1.9", 0},
	    {"10.0.1.9:7800", "10.0.1.9", 7800},
	    {"DB1.Example.com", "db1.example.com", 0},
	    {"db_2:5430", "db_2", 5430},
	    {"::1", "::1", 0},
	    {"[fe80::1%eth0]:7800", "fe80::1%eth0", 7800},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!admin_arg_address("ADDRESS", good[i].text, host, sizeof(host), &port, err,
		                       sizeof(err)))
			fail_msg("\"%s\" refused: %s", good[i].text, err);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	const char *bad[] = {"%n%n%n%s%s",  "",     "a b",       "-db",         "db-",
	                     "a..b",        "10.1", "999.1.1.1", "db:0",        "db:65536",
	                     "db:x",        "[::1", "::1%%n",    "fe80::1%a/b", "x\x1b[31m",
	                     "db;rm -rf /", "\"q\""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (admin_arg_address("ADDRESS", bad[i], host, sizeof(host), &port, err,
		                      sizeof(err)))
			fail_msg("\"%s\" accepted as %s", bad[i], host);
		assert_non_null(strstr(err, "invalid ADDRESS"));
		/* The value is shown back escaped: no control character, no bare quote. */
		for (const char *p = err; *p != '\0'; p++)
			assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	}
	assert_false(admin_arg_address("ADDRESS", "x\x1b[31m", NULL, 0, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "\"x\\x1b[31m\""));
	assert_false(admin_arg_address("ADDRESS", "\"q\"", NULL, 0, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "\"\\\"q\\\"\""));
	/* A long value is cut short in the message. */
	char longv[600];
	memset(longv, '%', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	assert_false(admin_arg_address("ADDRESS", longv, NULL, 0, NULL, err, sizeof(err)));
	assert_true(strlen(err) < 120);
}

/* The per-command schema, as the server, the client and the leader apply it. */
static void test_arg_check(void **state)
{
	char err[256];
	struct admin_arg_values v;
	const char *add[] = {"10.0.0.9:7800", "2"};
	assert_true(admin_arg_check("add-node", 2, add, &v, err, sizeof(err)));
	assert_true(v.has_address);
	assert_string_equal(v.address, "10.0.0.9:7800");
	assert_string_equal(v.host, "10.0.0.9");
	assert_int_equal(v.port, 7800);
	assert_int_equal(v.priority, 2);
	assert_true(admin_arg_check("remove-node", 1, add, &v, err, sizeof(err)));
	assert_int_equal(v.priority, 0);
	assert_false(admin_arg_check("remove-node", 2, add, &v, err, sizeof(err)));
	assert_string_equal(err, "too many arguments (it takes at most 1)");
	assert_false(admin_arg_check("set-priority", 1, add, &v, err, sizeof(err)));
	assert_string_equal(err, "missing PRIORITY");
	assert_false(admin_arg_check("stop-cluster", 1, add, &v, err, sizeof(err)));
	assert_string_equal(err, "too many arguments (it takes none)");
	assert_true(admin_arg_check("cluster-status", 0, NULL, &v, err, sizeof(err)));

	const char *sw[] = {"--switchover"};
	assert_true(admin_arg_check("promote", 1, sw, &v, err, sizeof(err)));
	assert_true(v.switchover);
	const char *now[] = {"--now"};
	assert_false(admin_arg_check("promote", 1, now, &v, err, sizeof(err)));
	assert_string_equal(err, "unexpected argument \"--now\" (expected -switchover, --yes or "
	                         "-node ADDRESS)");
	const char *all[] = {"--yes", "-node", "10.0.0.2:7800", "-switchover"};
	assert_true(admin_arg_check("promote", 4, all, &v, err, sizeof(err)));
	assert_true(v.switchover && v.yes && v.has_address);
	assert_string_equal(v.host, "10.0.0.2");
	const char *twice[] = {"--yes", "-yes"};
	assert_false(admin_arg_check("promote", 2, twice, &v, err, sizeof(err)));
	assert_string_equal(err, "\"-yes\" given twice");
	const char *bare[] = {"-node"};
	assert_false(admin_arg_check("promote", 1, bare, &v, err, sizeof(err)));
	assert_string_equal(err, "missing ADDRESS after -node");

	cJSON *args = cJSON_Parse("[\"db1\", \"4294967297\"]");
	assert_false(admin_arg_check_json("set-priority", args, &v, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid PRIORITY \"4294967297\": out of range"));
	cJSON_Delete(args);
	args = cJSON_Parse("[\"db1\", 3]");
	assert_false(admin_arg_check_json("set-priority", args, &v, err, sizeof(err)));
	assert_string_equal(err, "invalid PRIORITY: expected a string");
	cJSON_Delete(args);
	args = cJSON_Parse("[\"db1\", \"3\"]");
	assert_true(admin_arg_check_json("set-priority", args, &v, err, sizeof(err)));
	assert_int_equal(v.priority, 3);
	cJSON_Delete(args);
	args = cJSON_Parse("{\"a\": 1}");
	assert_false(admin_arg_check_json("set-priority", args, &v, err, sizeof(err)));
	cJSON_Delete(args);
	args = cJSON_Parse("[\"1\", \"2\", \"3\", \"4\", \"5\"]");
	assert_false(admin_arg_check_json("add-node", args, &v, err, sizeof(err)));
	assert_non_null(strstr(err, "too many arguments"));
	cJSON_Delete(args);
}

static void test_parse_request(void **state)
{
	(void)state;
	char err[256];
	const char *command = NULL;
	const cJSON *args = NULL;
	const char *ok = "{\"command\": \"add-node\", \"args\": [\"10.0.0.9\", \"1\"]}";
	cJSON *body = admin_parse_request(ok, strlen(ok), &command, &args, err, sizeof(err));
	assert_non_null(body);
	assert_string_equal(command, "add-node");
	assert_int_equal(cJSON_GetArraySize(args), 2);
	cJSON_Delete(body);
	/* No "args": an empty array is added. */
	const char *bare = "{\"command\": \"stop-cluster\"}";
	body = admin_parse_request(bare, strlen(bare), &command, &args, err, sizeof(err));
	assert_non_null(body);
	assert_true(cJSON_IsArray(args) && cJSON_GetArraySize(args) == 0);
	cJSON_Delete(body);
	static const struct {
		const char *line;
		const char *says;
	} bad[] = {
	    {"", "one JSON object"},
	    {"[1, 2]", "one JSON object"},
	    {"{\"command\": 7}", "no \"command\""},
	    {"{\"command\": \"\"}", "no \"command\""},
	    {"{\"command\": \"promote\", \"args\": \"-switchover\"}", "must be an array"},
	    {"{\"command\": \"promote\"} trailing", "one JSON object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		command = NULL;
		assert_null(admin_parse_request(bad[i].line, strlen(bad[i].line), &command, &args,
		                                err, sizeof(err)));
		assert_null(command);
		if (strstr(err, "malformed request: ") != err || strstr(err, bad[i].says) == NULL)
			fail_msg("%s: %s", bad[i].line, err);
	}
}

static void test_bad_path(void **state)
{
	uv_loop_t loop;
	struct admin_server *s = (struct admin_server *)&loop;
	char path[200];
	assert_int_equal(uv_loop_init(&loop), 0);
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(admin_server_start(&loop, path, table, N_TABLE, NULL, &s), -ENAMETOOLONG);
	assert_null(s);
	assert_int_not_equal(
	    admin_server_start(&loop, "/nonexistent-dir/x.sock", table, N_TABLE, NULL, &s), 0);
	assert_null(s);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	log_set_prefixes(false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_arg_int),       cmocka_unit_test(test_arg_address),
	    cmocka_unit_test(test_arg_check),     cmocka_unit_test(test_may_mutate),
	    cmocka_unit_test(test_bad_path),      cmocka_unit_test(test_server_and_client),
	    cmocka_unit_test(test_parse_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
