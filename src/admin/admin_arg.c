/*
 * admin_arg.c - checking the arguments of admin commands (see admin_arg.h).
 *
 * The values end up in the replicated cluster state and in log lines of
 * every node, so nothing is taken on trust: an address must parse and its
 * host must be a name or an IP address, a number must be all digits and in
 * range (strtoll with errno and the end pointer, never atoi).
 */
#include "admin_arg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_MAX 48 /* characters of an offending value shown back */
#define ARGS_MAX  4

enum arg_kind {
	ARG_ADDRESS,
	ARG_PRIORITY,
};

struct arg_spec {
	const char *name;
	enum arg_kind kind;
};

static const char *const switchover_spellings[] = {"-switchover", "--switchover", NULL};
static const char *const yes_spellings[] = {"--yes", "-yes", NULL};
static const char *const node_spellings[] = {"-node", "--node", NULL};

static const struct arg_spec address = {"ADDRESS", ARG_ADDRESS};
static const struct arg_spec priority = {"PRIORITY", ARG_PRIORITY};

struct cmd_schema {
	const char *command;
	int min, max;                          /* how many arguments */
	const struct arg_spec *args[ARGS_MAX]; /* in order */
};

/* The commands that take arguments; any other takes none. */
static const struct cmd_schema schemas[] = {
    {"add-node", 1, 2, {&address, &priority}},
    {"allow-node", 1, 2, {&address, &priority}},
    {"remove-node", 1, 1, {&address}},
    {"disallow-node", 1, 1, {&address}},
    {"set-priority", 2, 2, {&address, &priority}},
    {"promote", 0, 4, {NULL}}, /* options in any order: check_promote */
};

/* fail writes "what" into err, printf-style, and returns false. */
static bool fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen > 0)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

/*
 * quote renders text for a message: at most QUOTE_MAX characters, quotes,
 * backslashes and anything unprintable escaped, so a hostile value cannot
 * forge log lines or terminal output.
 */
static void quote(const char *text, char *out, size_t outlen)
{
	size_t n = 0;
	size_t shown = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++, shown++) {
		char piece[8];
		if (shown == QUOTE_MAX) {
			snprintf(piece, sizeof(piece), "...");
		} else if (*p == '"' || *p == '\\') {
			snprintf(piece, sizeof(piece), "\\%c", *p);
		} else if (*p < 0x20 || *p >= 0x7f) {
			snprintf(piece, sizeof(piece), "\\x%02x", *p);
		} else {
			piece[0] = (char)*p;
			piece[1] = '\0';
		}
		size_t len = strlen(piece);
		if (n + len + 1 > outlen)
			break;
		memcpy(out + n, piece, len);
		n += len;
		if (shown == QUOTE_MAX)
			break;
	}
	if (outlen > 0)
		out[n] = '\0';
}

/* hostname_ok: dot-separated labels of letters, digits, '-' and '_', 1..63 bytes, no edge '-'. */
static bool hostname_ok(const char *h)
{
	size_t len = strlen(h), label = 0;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = h[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_')
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

/* numeric_ok: a host of digits and dots only must be a real IPv4 address ("10.1" is not). */
static bool numeric_ok(const char *h)
{
	struct in_addr a;
	return inet_pton(AF_INET, h, &a) == 1;
}

/* zone_ok: an IPv6 %zone is an interface name or number. */
static bool zone_ok(const char *zone)
{
	if (zone[0] == '\0')
		return false;
	for (const char *p = zone; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
			return false;
	return true;
}

bool admin_arg_address(const char *name, const char *text, char *host, size_t hostlen,
                       uint16_t *port, char *err, size_t errlen)
{
	char shown[QUOTE_MAX * 4 + 8];
	char h[EFM_HOST_MAX];
	uint16_t pv = 0;

	quote(text, shown, sizeof(shown));
	if (text[0] == '\0')
		return fail(err, errlen, "invalid %s: it is empty", name);
	if (strlen(text) >= EFM_ADDR_MAX)
		return fail(err, errlen, "invalid %s \"%s\": longer than %d bytes", name, shown,
		            EFM_ADDR_MAX - 1);
	if (!address_split(text, h, sizeof(h), &pv))
		return fail(err, errlen,
		            "invalid %s \"%s\": expected HOST, HOST:PORT or [IPv6]:PORT with a "
		            "port from 1 to 65535",
		            name, shown);
	bool ok;
	if (strchr(h, ':') != NULL) {
		const char *zone = strchr(h, '%');
		ok = zone == NULL || zone_ok(zone + 1); /* address_split checked the address part */
	} else if (strspn(h, "0123456789.") == strlen(h)) {
		ok = numeric_ok(h);
	} else {
		ok = hostname_ok(h);
	}
	if (!ok)
		return fail(err, errlen, "invalid %s \"%s\": not a host name or an IP address",
		            name, shown);
	if (host != NULL) {
		if (strlen(h) >= hostlen)
			return fail(err, errlen, "invalid %s \"%s\": host too long", name, shown);
		memcpy(host, h, strlen(h) + 1);
	}
	if (port != NULL)
		*port = pv;
	return true;
}

bool admin_arg_int(const char *name, const char *text, long long min, long long max, long long *out,
                   char *err, size_t errlen)
{
	char shown[QUOTE_MAX * 4 + 8];
	quote(text, shown, sizeof(shown));
	/* strtoll would also take leading spaces and a '+'; an operator's number has neither. */
	bool sign_ok = min < 0 && text[0] == '-';
	if (!isdigit((unsigned char)text[sign_ok ? 1 : 0]))
		return fail(err, errlen,
		            "invalid %s \"%s\": expected a whole number from %lld to %lld", name,
		            shown, min, max);
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (*end != '\0')
		return fail(err, errlen,
		            "invalid %s \"%s\": expected a whole number from %lld to %lld", name,
		            shown, min, max);
	if (errno == ERANGE || v < min || v > max)
		return fail(err, errlen, "invalid %s \"%s\": out of range (%lld to %lld)", name,
		            shown, min, max);
	*out = v;
	return true;
}

/* find_schema looks command up; NULL when it takes no arguments. */
static const struct cmd_schema *find_schema(const char *command)
{
	for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++)
		if (strcmp(schemas[i].command, command) == 0)
			return &schemas[i];
	return NULL;
}

/* check_one checks one argument against its spec and records its value. */
static bool check_one(const struct arg_spec *spec, const char *text, struct admin_arg_values *out,
                      char *err, size_t errlen)
{
	long long v;
	switch (spec->kind) {
	case ARG_ADDRESS:
		if (!admin_arg_address(spec->name, text, out->host, sizeof(out->host), &out->port,
		                       err, errlen))
			return false;
		snprintf(out->address, sizeof(out->address), "%s", text);
		out->has_address = true;
		return true;
	case ARG_PRIORITY:
		if (!admin_arg_int(spec->name, text, ADMIN_PRIORITY_MIN, ADMIN_PRIORITY_MAX, &v,
		                   err, errlen))
			return false;
		out->priority = (int)v;
		return true;
	}
	return fail(err, errlen, "%s: unknown kind of argument", spec->name);
}

/* spelled: text is one of the spellings. */
static bool spelled(const char *text, const char *const *spellings)
{
	for (const char *const *p = spellings; *p != NULL; p++)
		if (strcmp(text, *p) == 0)
			return true;
	return false;
}

/* check_promote: promote's options, each at most once, in any order. */
static bool check_promote(int argc, const char *const *argv, struct admin_arg_values *out,
                          char *err, size_t errlen)
{
	char shown[QUOTE_MAX * 4 + 8];
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool *flag = spelled(a, switchover_spellings) ? &out->switchover
		             : spelled(a, yes_spellings)      ? &out->yes
		             : spelled(a, node_spellings)     ? &out->has_address
		                                              : NULL;
		quote(a, shown, sizeof(shown));
		if (flag == NULL)
			return fail(err, errlen,
			            "unexpected argument \"%s\" (expected -switchover, --yes or "
			            "-node ADDRESS)",
			            shown);
		if (*flag)
			return fail(err, errlen, "\"%s\" given twice", shown);
		if (flag == &out->has_address) {
			if (i + 1 >= argc)
				return fail(err, errlen, "missing ADDRESS after %s", shown);
			if (!admin_arg_address("ADDRESS", argv[++i], out->host, sizeof(out->host),
			                       &out->port, err, errlen))
				return false;
			snprintf(out->address, sizeof(out->address), "%s", argv[i]);
		}
		*flag = true;
	}
	return true;
}

/* count_error says why argc does not fit the schema. */
static bool count_error(const struct cmd_schema *s, int argc, char *err, size_t errlen)
{
	if (s == NULL || s->max == 0)
		return fail(err, errlen, "too many arguments (it takes none)");
	if (argc > s->max)
		return fail(err, errlen, "too many arguments (it takes at most %d)", s->max);
	return fail(err, errlen, "missing %s", s->args[argc]->name);
}

bool admin_arg_check(const char *command, int argc, const char *const *argv,
                     struct admin_arg_values *out, char *err, size_t errlen)
{
	const struct cmd_schema *s = find_schema(command);
	memset(out, 0, sizeof(*out));
	out->n = argc;
	if (argc < (s != NULL ? s->min : 0) || argc > (s != NULL ? s->max : 0))
		return count_error(s, argc, err, errlen);
	if (strcmp(command, "promote") == 0)
		return check_promote(argc, argv, out, err, errlen);
	for (int i = 0; i < argc; i++)
		if (!check_one(s->args[i], argv[i], out, err, errlen))
			return false;
	return true;
}

bool admin_arg_check_json(const char *command, const cJSON *args, struct admin_arg_values *out,
                          char *err, size_t errlen)
{
	const char *argv[ARGS_MAX];
	const struct cmd_schema *s = find_schema(command);
	int argc = cJSON_IsArray(args) ? cJSON_GetArraySize(args) : -1;

	memset(out, 0, sizeof(*out));
	if (argc < 0)
		return fail(err, errlen, "the arguments must be an array of strings");
	if (argc > (s != NULL ? s->max : 0))
		return count_error(s, argc, err, errlen);
	for (int i = 0; i < argc; i++) {
		const cJSON *a = cJSON_GetArrayItem(args, i);
		if (!cJSON_IsString(a))
			return fail(err, errlen, "invalid %s: expected a string",
			            s->args[i] != NULL ? s->args[i]->name : "argument");
		argv[i] = a->valuestring;
	}
	return admin_arg_check(command, argc, argv, out, err, errlen);
}

cJSON *admin_parse_request(const char *line, size_t len, const char **command, const cJSON **args,
                           char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *body = cJSON_ParseWithLengthOpts(line, len, &end, false);
	/* The whole line: nothing but white space may follow the object. */
	while (body != NULL && end != NULL && end < line + len && isspace((unsigned char)*end))
		end++;
	if (body != NULL && (end == NULL || end != line + len)) {
		cJSON_Delete(body);
		body = NULL;
	}
	const char *why = NULL;
	const cJSON *cmd = NULL;
	const cJSON *a = NULL;
	if (!cJSON_IsObject(body)) {
		why = "expected one JSON object";
	} else {
		cmd = cJSON_GetObjectItemCaseSensitive(body, "command");
		a = cJSON_GetObjectItemCaseSensitive(body, "args");
		if (!cJSON_IsString(cmd) || cmd->valuestring[0] == '\0')
			why = "no \"command\"";
		else if (a == NULL && (a = cJSON_AddArrayToObject(body, "args")) == NULL)
			why = "out of memory";
		else if (!cJSON_IsArray(a))
			why = "\"args\" must be an array";
	}
	if (why != NULL) {
		cJSON_Delete(body);
		(void)fail(err, errlen, "malformed request: %s", why);
		return NULL;
	}
	*command = cmd->valuestring;
	*args = a;
	return body;
}
