/*
 * config_value.c - turning a value's text into a typed field of struct
 * efm_config and back, one function per type of the option table.
 */
#include "config_table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* field: the address of opt's field inside cfg. */
#define FIELD(cfg, opt, type)  ((type *)(void *)((char *)(cfg) + (opt)->offset))
#define CFIELD(cfg, opt, type) ((const type *)(const void *)((const char *)(cfg) + (opt)->offset))

/* is_string_type: the types stored as a malloc'ed char *. */
static bool is_string_type(enum config_type t)
{
	switch (t) {
	case CONFIG_T_STRING:
	case CONFIG_T_SECRET:
	case CONFIG_T_HEX:
	case CONFIG_T_PATH:
	case CONFIG_T_COMMAND:
	case CONFIG_T_IP:
	case CONFIG_T_HOST:
	case CONFIG_T_IFACE:
	case CONFIG_T_EMAIL:
	case CONFIG_T_EMAILS:
	case CONFIG_T_SMTP_URL:
	case CONFIG_T_HTTP_URL:
		return true;
	default:
		return false;
	}
}

/* is_ip: an IPv4 or IPv6 address literal. */
static bool is_ip(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool config_addr_unspecified(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return a4.s_addr == htonl(INADDR_ANY);
	if (inet_pton(AF_INET6, host, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_UNSPECIFIED(&a6))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 0 && a6.s6_addr[13] == 0 &&
	       a6.s6_addr[14] == 0 && a6.s6_addr[15] == 0;
}

/* is_hostname: letters, digits, '-' and '.', as DNS allows. */
static bool is_hostname(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* has_space: any blank, which no address, URL or path of ours may contain. */
static bool has_space(const char *s)
{
	return strpbrk(s, " \t\f\r\n\v") != NULL;
}

/* email_ok: one address, local@domain, no blanks or angle brackets. */
static bool email_ok(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	if (at == NULL || at == s || at == s + n - 1 ||
	    memchr(at + 1, '@', n - (size_t)(at - s) - 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (strchr(" \t<>(),;:\"[]\\", s[i]) != NULL)
			return false;
	}
	return true;
}

/* emails_ok: a list separated by commas and/or blanks, at least one address. */
static bool emails_ok(const char *s, char *why, size_t whylen)
{
	size_t count = 0;
	while (*s != '\0') {
		size_t sep = strspn(s, ", \t");
		s += sep;
		size_t n = strcspn(s, ", \t");
		if (n == 0)
			break;
		if (!email_ok(s, n)) {
			snprintf(why, whylen, "\"%.*s\" is not a mail address",
			         (int)(n > 80 ? 80 : n), s);
			return false;
		}
		count++;
		s += n;
	}
	if (count == 0) {
		snprintf(why, whylen, "no mail address given");
		return false;
	}
	return true;
}

/* netmask_prefix converts a dotted mask to a prefix length; -1 unless contiguous. */
static int netmask_prefix(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	uint32_t m = ntohl(a.s_addr), inv = ~m;
	/* Contiguous ones followed by zeros: the inverse is 2^k - 1. */
	if ((inv & (inv + 1)) != 0)
		return -1;
	return __builtin_popcount(m);
}

/* parse_long reads a whole decimal number; false on anything else. */
static bool parse_long(const char *s, long *out)
{
	char *end;
	if (*s == '\0' || strlen(s) > 18)
		return false;
	for (const char *p = (*s == '-' || *s == '+') ? s + 1 : s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
	}
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

/* check_text validates text for a string type; false with why set. */
static bool check_string(const struct config_option *opt, const char *text, char *why, size_t wl)
{
	switch (opt->type) {
	case CONFIG_T_HEX:
		for (const char *p = text; *p; p++) {
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			      (*p >= 'A' && *p <= 'F'))) {
				snprintf(why, wl,
				         "is not the output of 'efm encrypt' (hex digits only)");
				return false;
			}
		}
		return true;
	case CONFIG_T_PATH:
		if (text[0] != '/') {
			snprintf(why, wl,
			         "\"%.80s\" is not an absolute path (it must start with '/')",
			         text);
			return false;
		}
		return true;
	case CONFIG_T_COMMAND:
		if (text[strspn(text, " \t")] == '\0') {
			snprintf(why, wl, "names no command");
			return false;
		}
		return true;
	case CONFIG_T_IP:
		if (!is_ip(text)) {
			snprintf(why, wl, "\"%.80s\" is not an IP address", text);
			return false;
		}
		return true;
	case CONFIG_T_HOST:
		if (!is_ip(text) && !is_hostname(text)) {
			snprintf(why, wl, "\"%.80s\" is not a host name or IP address", text);
			return false;
		}
		return true;
	case CONFIG_T_IFACE:
		if (strlen(text) > 31 || has_space(text) || strchr(text, '/') != NULL ||
		    text[0] == ':') {
			snprintf(why, wl, "\"%.80s\" is not a network interface name", text);
			return false;
		}
		return true;
	case CONFIG_T_EMAIL:
		if (!email_ok(text, strlen(text))) {
			snprintf(why, wl, "\"%.80s\" is not a mail address", text);
			return false;
		}
		return true;
	case CONFIG_T_EMAILS:
		return emails_ok(text, why, wl);
	case CONFIG_T_SMTP_URL:
		if ((strncmp(text, "smtp://", 7) != 0 && strncmp(text, "smtps://", 8) != 0) ||
		    has_space(text) || text[strlen(text) - 1] == '/') {
			snprintf(why, wl, "\"%.80s\" is not an smtp://HOST:PORT or smtps:// URL",
			         text);
			return false;
		}
		return true;
	case CONFIG_T_HTTP_URL:
		if ((strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) ||
		    has_space(text)) {
			snprintf(why, wl, "\"%.80s\" is not an http:// or https:// URL", text);
			return false;
		}
		return true;
	default:
		return true;
	}
}

/* set_string replaces a string field with a copy of text. */
static bool set_string(struct efm_config *cfg, const struct config_option *opt, const char *text,
                       char *why, size_t wl)
{
	if (!check_string(opt, text, why, wl))
		return false;
	char *copy = strdup(text);
	if (copy == NULL) {
		snprintf(why, wl, "out of memory");
		return false;
	}
	char **f = FIELD(cfg, opt, char *);
	free(*f);
	*f = copy;
	return true;
}

bool config_option_set(struct efm_config *cfg, const struct config_option *opt, const char *text,
                       char *why, size_t wl)
{
	long v;
	int level;

	if (is_string_type(opt->type))
		return set_string(cfg, opt, text, why, wl);
	switch (opt->type) {
	case CONFIG_T_IGNORED:
		return true;
	case CONFIG_T_BOOL:
		if (strcasecmp(text, "true") == 0 || strcasecmp(text, "false") == 0) {
			*FIELD(cfg, opt, bool) = strcasecmp(text, "true") == 0;
			return true;
		}
		snprintf(why, wl, "\"%.80s\" is not a boolean: write true or false", text);
		return false;
	case CONFIG_T_INT:
		if (!parse_long(text, &v)) {
			snprintf(why, wl, "\"%.80s\" is not a whole number", text);
			return false;
		}
		if (v < opt->min || v > opt->max) {
			bool low = v < opt->min && opt->min_why != NULL;
			snprintf(why, wl, "%ld is out of range: it must be %ld..%ld%s%s%s%s", v,
			         opt->min, opt->max, opt->unit ? " " : "",
			         opt->unit ? opt->unit : "", low ? "; " : "",
			         low ? opt->min_why : "");
			return false;
		}
		*FIELD(cfg, opt, int) = (int)v;
		return true;
	case CONFIG_T_ADDR: {
		struct efm_addr a;
		if (strchr(text, ':') == NULL) {
			snprintf(why, wl,
			         "\"%.80s\" has no port: write IP:PORT, e.g. 192.168.2.54:7800",
			         text);
			return false;
		}
		if (!address_parse(text, &a)) {
			snprintf(why, wl, "\"%.80s\" is not IP:PORT ([IPv6]:PORT), port 1..65535",
			         text);
			return false;
		}
		if (!is_ip(a.host)) {
			snprintf(why, wl, "\"%.80s\" is not an IP address; a host name will not do",
			         a.host);
			return false;
		}
		if (config_addr_unspecified(a.host)) {
			snprintf(why, wl,
			         "\"%.80s\" is the unspecified address (any interface); write this "
			         "node's own IP address: an agent's address is its identity in the "
			         "cluster",
			         a.host);
			return false;
		}
		*FIELD(cfg, opt, struct efm_addr) = a;
		return true;
	}
	case CONFIG_T_NETMASK:
		level = netmask_prefix(text);
		if (level < 0) {
			snprintf(why, wl,
			         "\"%.80s\" is not a netmask: write a dotted mask of contiguous "
			         "ones, e.g. 255.255.255.0",
			         text);
			return false;
		}
		*FIELD(cfg, opt, int) = level;
		return true;
	case CONFIG_T_PREFIX:
		if (!parse_long(text, &v) || v < 0 || v > 128) {
			snprintf(why, wl, "\"%.80s\" is not a prefix length 0..128", text);
			return false;
		}
		*FIELD(cfg, opt, int) = (int)v;
		return true;
	case CONFIG_T_LOGLEVEL: {
		enum efm_level l;
		if (!log_level_parse(text, &l)) {
			snprintf(why, wl,
			         "\"%.80s\" is not a log level: FINEST, FINER, FINE, CONFIG, INFO, "
			         "WARNING or SEVERE",
			         text);
			return false;
		}
		*FIELD(cfg, opt, enum efm_level) = l;
		return true;
	}
	case CONFIG_T_SEVERITY: {
		static const char *const sev[] = {"INFO", "WARNING", "SEVERE"};
		for (size_t i = 0; i < 3; i++) {
			if (strcasecmp(text, sev[i]) == 0) {
				*FIELD(cfg, opt, enum efm_severity) = (enum efm_severity)i;
				return true;
			}
		}
		snprintf(why, wl, "\"%.80s\" is not a severity: INFO, WARNING or SEVERE", text);
		return false;
	}
	default:
		snprintf(why, wl, "has an unknown type");
		return false;
	}
}

void config_option_format(const struct efm_config *cfg, const struct config_option *opt, char *buf,
                          size_t len)
{
	static const char *const sev[] = {"INFO", "WARNING", "SEVERE"};
	const struct efm_addr *a;
	int p;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (is_string_type(opt->type)) {
		snprintf(buf, len, "%s", *CFIELD(cfg, opt, char *));
		return;
	}
	switch (opt->type) {
	case CONFIG_T_BOOL:
		snprintf(buf, len, "%s", *CFIELD(cfg, opt, bool) ? "true" : "false");
		break;
	case CONFIG_T_INT:
		if (*CFIELD(cfg, opt, int) != 0 || opt->def != NULL || opt->min <= 0)
			snprintf(buf, len, "%d", *CFIELD(cfg, opt, int));
		break;
	case CONFIG_T_ADDR:
		a = CFIELD(cfg, opt, struct efm_addr);
		if (a->host[0] == '\0')
			break;
		if (strchr(a->host, ':') != NULL)
			snprintf(buf, len, "[%s]:%u", a->host, a->port);
		else
			snprintf(buf, len, "%s:%u", a->host, a->port);
		break;
	case CONFIG_T_NETMASK:
	case CONFIG_T_PREFIX:
		p = *CFIELD(cfg, opt, int);
		if (p < 0)
			break;
		if (opt->type == CONFIG_T_NETMASK && p <= 32) {
			uint32_t m = p == 0 ? 0 : ~(uint32_t)0 << (32 - p);
			snprintf(buf, len, "%u.%u.%u.%u", m >> 24, (m >> 16) & 255, (m >> 8) & 255,
			         m & 255);
		} else {
			snprintf(buf, len, "%d", p);
		}
		break;
	case CONFIG_T_LOGLEVEL:
		snprintf(buf, len, "%s", log_level_name(*CFIELD(cfg, opt, enum efm_level)));
		break;
	case CONFIG_T_SEVERITY: {
		unsigned s = (unsigned)*CFIELD(cfg, opt, enum efm_severity);
		snprintf(buf, len, "%s", s < 3 ? sev[s] : "UNKNOWN");
		break;
	}
	default:
		break;
	}
}

void config_option_bounds(const struct config_option *opt, char *buf, size_t len)
{
	switch (opt->type) {
	case CONFIG_T_INT:
		snprintf(buf, len, "whole number, %ld..%ld%s%s", opt->min, opt->max,
		         opt->unit ? " " : "", opt->unit ? opt->unit : "");
		break;
	case CONFIG_T_BOOL:
		snprintf(buf, len, "true or false");
		break;
	case CONFIG_T_LOGLEVEL:
		snprintf(buf, len, "FINEST, FINER, FINE, CONFIG, INFO, WARNING or SEVERE");
		break;
	case CONFIG_T_SEVERITY:
		snprintf(buf, len, "INFO, WARNING or SEVERE");
		break;
	case CONFIG_T_PREFIX:
		snprintf(buf, len, "prefix length, 0..32 (IPv4) or 0..128 (IPv6)");
		break;
	default:
		snprintf(buf, len, "%s", config_type_name(opt->type));
		break;
	}
}

bool config_init_strings(struct efm_config *cfg)
{
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		if (opt->alias_of != NULL || !is_string_type(opt->type))
			continue;
		char **f = FIELD(cfg, opt, char *);
		if (*f == NULL && (*f = strdup("")) == NULL)
			return false;
	}
	return true;
}

void config_free_strings(struct efm_config *cfg)
{
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		if (opt->alias_of != NULL || !is_string_type(opt->type))
			continue;
		char **f = FIELD(cfg, opt, char *);
		free(*f);
		*f = NULL;
	}
}
