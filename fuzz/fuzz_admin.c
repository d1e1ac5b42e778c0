/*
 * fuzz_admin.c - the admin socket's request decoding and argument checks on
 * arbitrary request lines, as any local user may send them.
 *
 * Input: one request line (the server cuts at the newline and at
 * ADMIN_REQUEST_MAX bytes).  A decoded request is checked against its own
 * command's schema and against every command's, so the argument checks are
 * reached whatever the command name says.  Besides not crashing or leaking:
 * an accepted request has a command and an argument array, accepted values
 * are within their ranges, and every message is one printable line (the
 * offending text is echoed back and logged).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin_arg.h"

#define FUZZ_REQUEST_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const commands[] = {
    "cluster-status", "cluster-status-json", "node-status-json", "add-node", "allow-node",
    "remove-node",    "disallow-node",       "set-priority",     "promote",  "resume",
    "stop-cluster",   "reset-members",
};

/* check_printable: err is one line of printable characters (UTF-8 bytes allowed). */
static void check_printable(const char *err)
{
	for (const unsigned char *p = (const unsigned char *)err; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			abort();
}

static void check_values(const struct admin_arg_values *v)
{
	if (v->n < 0 || v->n > 3)
		abort();
	if (v->priority != 0 &&
	    (v->priority < ADMIN_PRIORITY_MIN || v->priority > ADMIN_PRIORITY_MAX))
		abort();
	if (v->has_address) {
		if (v->address[0] == '\0' || v->host[0] == '\0')
			abort();
		for (const char *h = v->host; *h != '\0'; h++)
			if (*h >= 'A' && *h <= 'Z')
				abort(); /* hosts are lowercased */
	}
}

static void check_args(const char *command, const cJSON *args)
{
	struct admin_arg_values v;
	char err[512];
	err[0] = '\0';
	if (admin_arg_check_json(command, args, &v, err, sizeof(err)))
		check_values(&v);
	else if (err[0] == '\0')
		abort(); /* a refusal always says why */
	else
		check_printable(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_REQUEST_MAX || memchr(data, '\n', size) != NULL)
		return 0;
	/* The server keeps the line NUL-terminated, as cJSON may read one byte past. */
	char *line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';

	const char *command = NULL;
	const cJSON *args = NULL;
	char err[512];
	err[0] = '\0';
	cJSON *body = admin_parse_request(line, size, &command, &args, err, sizeof(err));
	if (body == NULL) {
		if (strncmp(err, "malformed request: ", 19) != 0)
			abort();
	} else {
		if (command == NULL || command[0] == '\0' || !cJSON_IsArray(args))
			abort();
		check_args(command, args);
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			check_args(commands[i], args);
		/* Each string argument on its own, as an address and as a priority. */
		const cJSON *a;
		cJSON_ArrayForEach(a, args)
		{
			if (!cJSON_IsString(a))
				continue;
			char host[EFM_HOST_MAX];
			uint16_t port;
			long long n;
			if (!admin_arg_address("ADDRESS", a->valuestring, host, sizeof(host), &port,
			                       err, sizeof(err)))
				check_printable(err);
			if (admin_arg_int("PRIORITY", a->valuestring, ADMIN_PRIORITY_MIN,
			                  ADMIN_PRIORITY_MAX, &n, err, sizeof(err))) {
				if (n < ADMIN_PRIORITY_MIN || n > ADMIN_PRIORITY_MAX)
					abort();
			} else {
				check_printable(err);
			}
		}
		cJSON_Delete(body);
	}
	free(line);
	return 0;
}
