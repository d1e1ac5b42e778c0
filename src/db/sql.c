/*
 * sql.c - the health check query, its parser, and WAL positions.
 */
#include "sql.h"

#include <stdio.h>
#include <string.h>

/*
 * pg_is_in_recovery() is read once, in a subquery that OFFSET 0 keeps the
 * planner from flattening, so a promotion between two calls cannot make the
 * CASE pick a function that errors on the new role (pg_current_wal_lsn() on
 * a standby, pg_is_wal_replay_paused() on a master).
 */
const char sql_check_query[] =
    "SELECT r,"
    " CASE WHEN r THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END,"
    " CASE WHEN r THEN pg_catalog.pg_last_wal_receive_lsn() END,"
    " CASE WHEN r THEN pg_catalog.pg_last_wal_replay_lsn() END,"
    " CASE WHEN r THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END"
    " FROM (SELECT pg_catalog.pg_is_in_recovery() AS r OFFSET 0) AS s";

/* copy_lsn copies column col of row 0 into out after checking it parses; NULL gives "". */
static bool copy_lsn(const PGresult *res, int col, char *out, size_t outlen)
{
	out[0] = '\0';
	if (PQgetisnull(res, 0, col))
		return true;
	const char *v = PQgetvalue(res, 0, col);
	uint64_t pos;
	if (!lsn_parse(v, &pos) || strlen(v) >= outlen)
		return false;
	snprintf(out, outlen, "%s", v);
	return true;
}

/* sql_parse_check reads the one row of sql_check_query into a sample. */
bool sql_parse_check(const PGresult *res, struct db_sample *out, char *err, size_t errlen)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 5) {
		snprintf(err, errlen, "check query returned %s with %d rows of %d columns",
		         PQresStatus(PQresultStatus(res)), PQntuples(res), PQnfields(res));
		return false;
	}
	const char *rec = PQgetvalue(res, 0, 0);
	if (PQgetisnull(res, 0, 0) || (strcmp(rec, "t") != 0 && strcmp(rec, "f") != 0)) {
		snprintf(err, errlen, "check query: pg_is_in_recovery() gave \"%s\"", rec);
		return false;
	}
	struct db_sample s = {.role = rec[0] == 't' ? DB_ROLE_STANDBY : DB_ROLE_MASTER,
	                      .server_version = out->server_version};
	if (!copy_lsn(res, 1, s.current_lsn, sizeof(s.current_lsn)) ||
	    !copy_lsn(res, 2, s.receive_lsn, sizeof(s.receive_lsn)) ||
	    !copy_lsn(res, 3, s.replay_lsn, sizeof(s.replay_lsn))) {
		snprintf(err, errlen, "check query returned a malformed WAL position");
		return false;
	}
	if (s.role == DB_ROLE_MASTER && s.current_lsn[0] == '\0') {
		snprintf(err, errlen, "check query returned no WAL position for a master");
		return false;
	}
	s.replay_paused = !PQgetisnull(res, 0, 4) && strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	*out = s;
	return true;
}

/* hex_part reads 1 to 8 hex digits from *p, advancing it; false if none or too many. */
static bool hex_part(const char **p, uint32_t *out)
{
	uint32_t v = 0;
	int n = 0;
	for (;; n++) {
		char ch = (*p)[n];
		int d;
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			break;
		if (n == 8)
			return false;
		v = v << 4 | (uint32_t)d;
	}
	if (n == 0)
		return false;
	*p += n;
	*out = v;
	return true;
}

/* lsn_parse reads "X/Y" (1 to 8 hex digits each) as X << 32 | Y. */
bool lsn_parse(const char *text, uint64_t *out)
{
	if (text == NULL)
		return false;
	const char *p = text;
	uint32_t hi, lo;
	if (!hex_part(&p, &hi) || *p++ != '/' || !hex_part(&p, &lo) || *p != '\0')
		return false;
	*out = (uint64_t)hi << 32 | lo;
	return true;
}

/* db_sample_lsn picks the position a sample is compared by. */
const char *db_sample_lsn(const struct db_sample *s)
{
	switch (s->role) {
	case DB_ROLE_MASTER:
		return s->current_lsn;
	case DB_ROLE_STANDBY: {
		/*
		 * A standby that never streamed (archive only) has only a replay
		 * position, and a restarted walreceiver reports from the start of a
		 * segment, behind what was already replayed: take the further one.
		 */
		uint64_t rx, rp;
		if (!lsn_parse(s->receive_lsn, &rx))
			return s->replay_lsn;
		if (lsn_parse(s->replay_lsn, &rp) && rp > rx)
			return s->replay_lsn;
		return s->receive_lsn;
	}
	case DB_ROLE_UNKNOWN:
		break;
	}
	return "";
}
