/*
 * sql.h - the SQL the database layer sends, and the parsers of its results.
 *
 * Kept apart from the connection code so the parsers can be unit-tested with
 * results built by hand (PQmakeEmptyPGresult/PQsetvalue).
 */
#ifndef EFM_SQL_H
#define EFM_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "dbmon.h"

/*
 * The health check: one row of (in_recovery, current_lsn, receive_lsn,
 * replay_lsn, replay_paused).  Valid on a master and on a standby alike
 * (PostgreSQL 10 and later).
 */
extern const char sql_check_query[];

/*
 * sql_parse_check fills out from a result of sql_check_query (server_version
 * is left alone).  Returns false with a one-line reason in err when the
 * result has not the expected shape.
 */
bool sql_parse_check(const PGresult *res, struct db_sample *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
