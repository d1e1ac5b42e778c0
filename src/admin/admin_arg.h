/*
 * admin_arg.h - the arguments of admin commands, checked one way
 * everywhere: by the admin server before any handler runs, by the efm
 * client before it asks, and by the cluster leader for commands forwarded
 * from other agents.  Each command has a schema (which arguments, in which
 * order, of which kind); a command without one takes no arguments.
 *
 * Every failure fills err with one line naming the argument ("invalid
 * PRIORITY \"1x\": ..."), the offending text quoted with control characters
 * escaped, so it is safe to show and to log.
 */
#ifndef EFM_ADMIN_ARG_H
#define EFM_ADMIN_ARG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "address.h"

/* Standby priorities an operator may give: 1 is first in line. */
#define ADMIN_PRIORITY_MIN 1
#define ADMIN_PRIORITY_MAX 1000000

/* What a command's arguments said, once checked. */
struct admin_arg_values {
	int n;                      /* arguments given */
	bool has_address;           /* address, host and port are set (promote: -node) */
	char address[EFM_ADDR_MAX]; /* the ADDRESS as written */
	char host[EFM_HOST_MAX];    /* its host, lowercased */
	uint16_t port;              /* its port, 0 when none was written */
	int priority;               /* the PRIORITY, 0 when not given */
	bool switchover;            /* promote -switchover */
	bool yes;                   /* promote --yes: no question about a lagging candidate */
};

/*
 * admin_arg_address checks that text is a node address: a host name, an
 * IPv4 address or an IPv6 address (with an optional %zone), optionally with
 * ":port" ("[v6]:port" for IPv6).  host (hostlen bytes, lowercased) and
 * port (0 when none) may be NULL.  name is the argument's name for err.
 */
bool admin_arg_address(const char *name, const char *text, char *host, size_t hostlen,
                       uint16_t *port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * admin_arg_int reads a whole decimal number within min..max: no sign
 * unless min is negative, no spaces, nothing after it, no overflow.
 */
bool admin_arg_int(const char *name, const char *text, long long min, long long max, long long *out,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * admin_arg_check checks argc arguments of command against its schema and
 * fills out.  err says what is wrong, without the command's name.
 */
bool admin_arg_check(const char *command, int argc, const char *const *argv,
                     struct admin_arg_values *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* admin_arg_check_json is admin_arg_check for a JSON array of strings (a request's "args"). */
bool admin_arg_check_json(const char *command, const cJSON *args, struct admin_arg_values *out,
                          char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * admin_parse_request decodes one request line (len bytes, no newline): a
 * JSON object with a non-empty string "command" and an "args" array (added,
 * empty, when absent).  Returns the object, which the caller frees with
 * cJSON_Delete and into which *command and *args point; NULL with err
 * ("malformed request: ...") otherwise.  The arguments are not checked yet:
 * that is admin_arg_check_json, once the command is known.
 */
cJSON *admin_parse_request(const char *line, size_t len, const char **command, const cJSON **args,
                           char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
