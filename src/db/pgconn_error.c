/*
 * pgconn_error.c - what a failed libpq step was: the SQLSTATE the server
 * sent, or libpq's own words, sorted into the db_conn_error classes that
 * the monitor judges and the notifications name.
 */
/* strcasestr */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pgconn.h"

/* pgconn_one_line flattens a libpq message (it may span lines) for a single log line. */
void pgconn_one_line(const char *msg, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	size_t n = 0;
	bool space = false;
	for (const char *p = msg; *p != '\0' && n + 1 < outlen; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			space = n > 0;
			continue;
		}
		if (space) {
			out[n++] = ' ';
			space = false;
			if (n + 1 >= outlen)
				break;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
}

/*
 * find_sqlstate finds the SQLSTATE in a message libpq built with
 * PQERRORS_VERBOSE ("...: FATAL:  53300: sorry, too many clients
 * already"): five digits or capitals between ":  " and ": ".  The severity
 * word before it may be translated; the code never is.
 */
static bool find_sqlstate(const char *msg, char out[6])
{
	for (const char *p = strstr(msg, ":  "); p != NULL; p = strstr(p + 1, ":  ")) {
		const char *code = p + 3;
		size_t n = 0;
		while (n < 5 &&
		       ((code[n] >= '0' && code[n] <= '9') || (code[n] >= 'A' && code[n] <= 'Z')))
			n++;
		if (n == 5 && code[5] == ':' && code[6] == ' ') {
			memcpy(out, code, 5);
			out[5] = '\0';
			return true;
		}
	}
	return false;
}

/* short_of_resources: libpq could not make its socket for want of descriptors or memory. */
static bool short_of_resources(const char *msg)
{
	static const int errs[] = {EMFILE, ENFILE, ENOMEM, ENOBUFS};
	if (strstr(msg, "could not create socket") == NULL)
		return strncmp(msg, "out of memory", 13) ==
		       0; /* libpq's or ours, never the server's */
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (strstr(msg, strerror(errs[i])) != NULL)
			return true;
	return false;
}

/*
 * classify_code sorts a failure by the SQLSTATE the server sent; DB_ERR_NONE
 * when the code alone does not say.  57P03 covers both a server starting
 * and one shutting down, which mean opposite things here; only the message
 * tells them apart, so a 57P03 in words not recognised (a translated
 * server) is left to the message rules and counts as a failure, as before.
 */
static enum db_conn_error classify_code(const char *sqlstate, const char *msg)
{
	if (strcmp(sqlstate, "53300") == 0)
		return DB_ERR_TOO_MANY_CONNECTIONS;
	if (strcmp(sqlstate, "53200") == 0)
		return DB_ERR_SERVER_OUT_OF_MEMORY;
	if (strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0)
		return DB_ERR_SHUTTING_DOWN;
	if (strcmp(sqlstate, "28P01") == 0)
		return DB_ERR_BAD_PASSWORD;
	if (strcmp(sqlstate, "57P03") != 0)
		return DB_ERR_NONE;
	if (strcasestr(msg, "shutting down") != NULL)
		return DB_ERR_SHUTTING_DOWN;
	if (strcasestr(msg, "starting up") != NULL || strcasestr(msg, "in recovery mode") != NULL ||
	    strcasestr(msg, "not yet accepting connections") != NULL ||
	    strcasestr(msg, "not accepting connections") != NULL)
		return DB_ERR_STARTING_UP;
	return DB_ERR_NONE;
}

/* classify_text sorts a failure by libpq's message (the agent runs in the C locale). */
static enum db_conn_error classify_text(const char *msg)
{
	if (short_of_resources(msg))
		return DB_ERR_AGENT_RESOURCES;
	if (strcasestr(msg, "too many clients") != NULL ||
	    strcasestr(msg, "too many connections") != NULL ||
	    strcasestr(msg, "remaining connection slots are reserved") != NULL)
		return DB_ERR_TOO_MANY_CONNECTIONS;
	if (strcasestr(msg, "password authentication failed") != NULL ||
	    strcasestr(msg, "no password supplied") != NULL)
		return DB_ERR_BAD_PASSWORD;
	if (strcasestr(msg, "no pg_hba.conf entry") != NULL ||
	    strcasestr(msg, "permission denied") != NULL ||
	    strcasestr(msg, "authentication failed") != NULL ||
	    ((strcasestr(msg, "role \"") != NULL || strcasestr(msg, "database \"") != NULL) &&
	     strcasestr(msg, "does not exist") != NULL))
		return DB_ERR_BAD_AUTHORIZATION;
	if (strcasestr(msg, "shutting down") != NULL)
		return DB_ERR_SHUTTING_DOWN;
	if (strstr(msg, strerror(ECONNREFUSED)) != NULL || strstr(msg, strerror(ENOENT)) != NULL)
		return DB_ERR_REFUSED;
	if (strcasestr(msg, "server closed the connection") != NULL ||
	    strstr(msg, strerror(ECONNRESET)) != NULL || strstr(msg, "EOF detected") != NULL)
		return DB_ERR_CONNECTION_LOST;
	return DB_ERR_OTHER;
}

/* pgconn_classify_sqlstate sorts a failure the server reported with sqlstate (NULL: none). */
enum db_conn_error pgconn_classify_sqlstate(const char *sqlstate, const char *msg)
{
	enum db_conn_error e = sqlstate != NULL ? classify_code(sqlstate, msg) : DB_ERR_NONE;
	return e != DB_ERR_NONE ? e : classify_text(msg);
}

/* pgconn_classify sorts a failure by its message, using the SQLSTATE a verbose one carries. */
enum db_conn_error pgconn_classify(const char *msg)
{
	char sqlstate[6];
	return pgconn_classify_sqlstate(find_sqlstate(msg, sqlstate) ? sqlstate : NULL, msg);
}

/* pgconn_error_name is a short name of e for log lines. */
const char *pgconn_error_name(enum db_conn_error e)
{
	switch (e) {
	case DB_ERR_NONE:
		return "none";
	case DB_ERR_TOO_MANY_CONNECTIONS:
		return "too many connections";
	case DB_ERR_BAD_PASSWORD:
		return "bad password";
	case DB_ERR_BAD_AUTHORIZATION:
		return "bad authorization";
	case DB_ERR_TIMEOUT:
		return "timeout";
	case DB_ERR_SERVER_OUT_OF_MEMORY:
		return "server out of memory";
	case DB_ERR_STARTING_UP:
		return "starting up";
	case DB_ERR_SHUTTING_DOWN:
		return "shutting down";
	case DB_ERR_REFUSED:
		return "refused";
	case DB_ERR_CONNECTION_LOST:
		return "connection lost";
	case DB_ERR_AGENT_RESOURCES:
		return "agent out of descriptors or memory";
	case DB_ERR_OTHER:
		break;
	}
	return "other";
}

/* pgconn_classify_uv: a libuv failure of ours is the agent's trouble when it is about resources. */
enum db_conn_error pgconn_classify_uv(int rc)
{
	if (rc == UV_EMFILE || rc == UV_ENFILE || rc == UV_ENOMEM || rc == UV_ENOBUFS ||
	    rc == UV_EAI_MEMORY)
		return DB_ERR_AGENT_RESOURCES;
	return DB_ERR_OTHER;
}
