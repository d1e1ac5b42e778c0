/*
 * admin_client.c - the efm program's side of the admin socket: connect,
 * send one JSON request, wait (bounded) for one JSON reply.  Blocking is
 * fine here: this runs in the short-lived client, never in the agent.
 */
#define _GNU_SOURCE
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_REPLY_MAX (16 * 1024 * 1024) /* refuse larger replies */

/* now_ms reads the monotonic clock in milliseconds. */
static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd polls fd for events until deadline; 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * client_connect opens a connection to path, waiting at most wait_ms for
 * room in a full backlog, and makes it non-blocking; -1 with errno set
 * (EAGAIN when the backlog stayed full).
 */
static int client_connect(const char *path, long long wait_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/*
	 * A blocking connect bounded by SO_SNDTIMEO: when the backlog is full
	 * the kernel queues us and wakes us as soon as the agent accepts one,
	 * where retrying a non-blocking connect would lose the freed place to
	 * whoever spins fastest.  (A zero SO_SNDTIMEO would mean no bound.)
	 */
	if (wait_ms < 1)
		wait_ms = 1;
	struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		int err = errno == EINPROGRESS || errno == EWOULDBLOCK ? EAGAIN : errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* client_send writes all of text before the deadline; false with errno set. */
static bool client_send(int fd, const char *text, size_t len, long long deadline)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(fd, text + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return false;
		int w = wait_fd(fd, POLLOUT, deadline);
		if (w <= 0) {
			if (w == 0)
				errno = ETIMEDOUT;
			return false;
		}
	}
	return true;
}

/* client_receive reads one reply line (NUL-terminated, newline stripped); NULL with errno. */
static char *client_receive(int fd, long long deadline)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	if (buf == NULL)
		return NULL;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= ADMIN_REPLY_MAX) {
				free(buf);
				errno = EMSGSIZE;
				return NULL;
			}
			char *grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				free(buf);
				return NULL;
			}
			buf = grown;
			cap *= 2;
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			char *nl = memchr(buf + len, '\n', (size_t)n);
			len += (size_t)n;
			if (nl != NULL) {
				*nl = '\0';
				return buf;
			}
			continue;
		}
		if (n == 0) {
			if (len > 0) { /* a reply without its newline is still a reply */
				buf[len] = '\0';
				return buf;
			}
			free(buf);
			errno = ECONNRESET;
			return NULL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			int err = errno;
			free(buf);
			errno = err;
			return NULL;
		}
		int w = wait_fd(fd, POLLIN, deadline);
		if (w <= 0) {
			int err = w == 0 ? ETIMEDOUT : errno;
			free(buf);
			errno = err;
			return NULL;
		}
	}
}

/* call_once makes one exchange of line with the agent; NULL with errno and err on failure. */
static cJSON *call_once(const char *path, const char *line, size_t len, long long deadline,
                        long long retry_until, int timeout_ms, char *err, size_t errlen)
{
	int fd = client_connect(path, retry_until - now_ms());
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED)
			snprintf(err, errlen, "no agent running (cannot connect to %s: %s)", path,
			         strerror(e));
		else if (e == EAGAIN)
			snprintf(err, errlen, "the agent is too busy to accept (socket %s)", path);
		else
			snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	bool sent = client_send(fd, line, len, deadline);
	int e = errno;
	/*
	 * An agent that refuses us (busy) answers and closes at once, maybe
	 * before our request is out: its answer is still there to read.
	 */
	bool hung_up = !sent && (e == EPIPE || e == ECONNRESET);
	char *reply = sent || hung_up ? client_receive(fd, deadline) : NULL;
	if (sent || (hung_up && reply != NULL))
		e = errno;
	close(fd);
	if (reply == NULL) {
		if (e == ETIMEDOUT)
			snprintf(err, errlen, "no reply from the agent within %d ms (socket %s)",
			         timeout_ms, path);
		else if (e == ECONNRESET || e == EPIPE)
			snprintf(err, errlen,
			         "the agent closed the connection without a reply (socket %s)",
			         path);
		else if (e == EMSGSIZE)
			snprintf(err, errlen, "the agent's reply is too large (socket %s)", path);
		else
			snprintf(err, errlen, "talking to the agent at %s: %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	cJSON *j = cJSON_Parse(reply);
	free(reply);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		snprintf(err, errlen, "malformed reply from the agent (socket %s)", path);
		errno = EPROTO;
		return NULL;
	}
	return j;
}

/*
 * worth_retrying: the agent is there but could not take us just now.  A
 * socket file nobody listens on (ECONNREFUSED) is an agent restarting, or a
 * dead one; only the bounded retry tells them apart.
 */
static bool worth_retrying(const char *path, const cJSON *reply, int e)
{
	struct stat st;
	if (reply != NULL)
		return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "busy"));
	return e == EAGAIN || (e == ECONNREFUSED && stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
}

/* pause_ms sleeps ms milliseconds (the client may block; the agent never does). */
static void pause_ms(long long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	/* The efm CLI process, never an agent loop: it waits before a retry. */
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) /* IGNORE-BANNED: CLI only */
		;
}

/* admin_call sends request to the agent at path and returns its reply; see admin.h. */
cJSON *admin_call(const char *path, const cJSON *request, int timeout_ms, char *err, size_t errlen)
{
	long long start = now_ms();
	long long deadline = start + (timeout_ms > 0 ? timeout_ms : 0);
	long long retry_until =
	    start + ADMIN_RETRY_MS < deadline ? start + ADMIN_RETRY_MS : deadline;
	long long delay = 10; /* ms before the next attempt, doubling up to 250 */

	char *text = cJSON_PrintUnformatted(request);
	size_t len = text != NULL ? strlen(text) : 0;
	char *line = text != NULL ? malloc(len + 2) : NULL;
	if (line == NULL) {
		free(text);
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	memcpy(line, text, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	free(text);

	for (;;) {
		cJSON *reply =
		    call_once(path, line, len + 1, deadline, retry_until, timeout_ms, err, errlen);
		int e = errno;
		if (!worth_retrying(path, reply, e) || now_ms() + delay > retry_until) {
			free(line);
			errno = e;
			return reply;
		}
		cJSON_Delete(reply);
		pause_ms(delay);
		delay = delay * 2 < 250 ? delay * 2 : 250;
	}
}
