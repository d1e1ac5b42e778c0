/*
 * fo_conninfo.c - rewriting a standby's primary_conninfo to point at a new
 * master, and quoting it for ALTER SYSTEM (fo_local.h).
 *
 * libpq parses the old string (PQconninfoParse: pure parsing, no network,
 * and it knows URIs and every quoting rule), so whatever the operator or
 * pg_basebackup wrote is read correctly; the new string is written as
 * keyword='value' pairs, which every libpq reads back the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "fo_local.h"

/* put appends s to out at *pos; false when it does not fit. */
static bool put(char *out, size_t outlen, size_t *pos, const char *s)
{
	size_t n = strlen(s);
	if (*pos + n + 1 > outlen)
		return false;
	memcpy(out + *pos, s, n + 1);
	*pos += n;
	return true;
}

bool fo_conninfo_quote(const char *v, char *out, size_t outlen)
{
	size_t pos = 0;
	if (outlen < 3)
		return false;
	out[pos++] = '\'';
	for (const char *p = v; *p != '\0'; p++) {
		size_t need = (*p == '\\' || *p == '\'') ? 2 : 1;
		if (pos + need + 2 > outlen)
			return false;
		if (need == 2)
			out[pos++] = '\\';
		out[pos++] = *p;
	}
	out[pos++] = '\'';
	out[pos] = '\0';
	return true;
}

bool fo_sql_literal(const char *v, char *out, size_t outlen)
{
	size_t pos = 0;
	if (outlen < 4)
		return false;
	out[pos++] = 'E';
	out[pos++] = '\'';
	for (const char *p = v; *p != '\0'; p++) {
		size_t need = (*p == '\\' || *p == '\'') ? 2 : 1;
		if (pos + need + 2 > outlen)
			return false;
		if (need == 2)
			out[pos++] = *p; /* '' and \\ both stand for one character in E'' */
		out[pos++] = *p;
	}
	out[pos++] = '\'';
	out[pos] = '\0';
	return true;
}

/* put_pair appends " key='value'" (no leading blank for the first pair). */
static bool put_pair(char *out, size_t outlen, size_t *pos, const char *key, const char *val)
{
	size_t qlen = 2 * strlen(val) + 3;
	char *q = malloc(qlen);
	if (q == NULL)
		return false;
	bool ok = fo_conninfo_quote(val, q, qlen) && (*pos == 0 || put(out, outlen, pos, " ")) &&
	          put(out, outlen, pos, key) && put(out, outlen, pos, "=") &&
	          put(out, outlen, pos, q);
	free(q);
	return ok;
}

bool fo_conninfo_repoint(const char *cur, const char *host, int port, char *out, size_t outlen,
                         bool *same, char *err, size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(cur, &perr);
	if (opts == NULL) {
		char line[256] = "out of memory";
		if (perr != NULL) {
			snprintf(line, sizeof(line), "%s", perr);
			line[strcspn(line, "\r\n")] = '\0';
		}
		snprintf(err, errlen, "cannot parse primary_conninfo: %s", line);
		PQfreemem(perr);
		return false;
	}

	char port_text[16];
	snprintf(port_text, sizeof(port_text), "%d", port);
	const char *old_host = NULL, *old_port = NULL;
	bool had_hostaddr = false;
	size_t pos = 0;
	bool ok = outlen > 0;
	if (ok)
		out[0] = '\0';
	for (PQconninfoOption *o = opts; ok && o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0) {
			old_host = o->val;
			continue;
		}
		if (strcmp(o->keyword, "port") == 0) {
			old_port = o->val;
			continue;
		}
		if (strcmp(o->keyword, "hostaddr") == 0) {
			/* It would win over host= and keep the standby on the old master. */
			had_hostaddr = true;
			continue;
		}
		ok = put_pair(out, outlen, &pos, o->keyword, o->val);
	}
	ok = ok && put_pair(out, outlen, &pos, "host", host) &&
	     put_pair(out, outlen, &pos, "port", port_text);
	*same = !had_hostaddr && old_host != NULL && strcmp(old_host, host) == 0 &&
	        ((old_port != NULL && strcmp(old_port, port_text) == 0) ||
	         (old_port == NULL && port == 5432));
	PQconninfoFree(opts);
	if (!ok)
		snprintf(err, errlen, "the new primary_conninfo does not fit in %zu bytes", outlen);
	return ok;
}

bool fo_conninfo_source(const char *template, const char *host, int port, const char *dbname,
                        char *out, size_t outlen, char *password, size_t pwlen, char *err,
                        size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(template, &perr);
	if (opts == NULL) {
		snprintf(err, errlen, "cannot parse the new master's primary_conninfo");
		PQfreemem(perr);
		return false;
	}
	/* what names the server, the database and the password is set here; the rest kept */
	static const char *const replaced[] = {"host",     "port",        "hostaddr", "dbname",
	                                       "password", "replication", NULL};
	char port_text[16];
	snprintf(port_text, sizeof(port_text), "%d", port);
	size_t pos = 0;
	bool ok = outlen > 0 && pwlen > 0;
	if (ok)
		out[0] = password[0] = '\0';
	for (PQconninfoOption *o = opts; ok && o->keyword != NULL; o++) {
		bool skip = o->val == NULL;
		for (const char *const *r = replaced; !skip && *r != NULL; r++)
			skip = strcmp(o->keyword, *r) == 0;
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			ok = (size_t)snprintf(password, pwlen, "%s", o->val) < pwlen;
		if (!skip)
			ok = put_pair(out, outlen, &pos, o->keyword, o->val);
	}
	ok = ok && put_pair(out, outlen, &pos, "host", host) &&
	     put_pair(out, outlen, &pos, "port", port_text) &&
	     put_pair(out, outlen, &pos, "dbname", dbname);
	PQconninfoFree(opts);
	if (!ok)
		snprintf(err, errlen, "the source server's connection string does not fit");
	return ok;
}

bool fo_final_lsn(const char *controldata, char *lsn, size_t len)
{
	static const char key[] = "Latest checkpoint location:";
	const char *p = strstr(controldata, key);
	if (p == NULL)
		return false;
	p += sizeof(key) - 1;
	p += strspn(p, " \t");
	size_t n = strspn(p, "0123456789ABCDEFabcdef/");
	if (n == 0 || n >= len || memchr(p, '/', n) == NULL)
		return false;
	memcpy(lsn, p, n);
	lsn[n] = '\0';
	return true;
}
