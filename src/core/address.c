/*
 * address.c - parsing and printing node addresses (see address.h).
 */
#include "address.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* host_char_ok: characters of host names, IPv4, IPv6 and zone ids. */
static bool host_char_ok(char ch)
{
	return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_' || ch == ':' ||
	       ch == '%';
}

/* parse_port reads 1..65535 written as 1 to 5 decimal digits. */
static bool parse_port(const char *p, uint16_t *port)
{
	unsigned v = 0;
	size_t n = 0;
	for (; p[n] != '\0'; n++) {
		if (n >= 5 || p[n] < '0' || p[n] > '9')
			return false;
		v = v * 10 + (unsigned)(p[n] - '0');
	}
	if (n == 0 || v == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* ipv6_ok: text with a colon must be an IPv6 address, with an optional %zone. */
static bool ipv6_ok(const char *h, size_t hlen)
{
	char text[EFM_HOST_MAX];
	struct in6_addr a;
	const char *zone = memchr(h, '%', hlen);
	size_t n = zone != NULL ? (size_t)(zone - h) : hlen;

	if (n >= sizeof(text) || (zone != NULL && (size_t)(zone - h) + 1 == hlen))
		return false;
	memcpy(text, h, n);
	text[n] = '\0';
	return inet_pton(AF_INET6, text, &a) == 1;
}

/*
 * split finds the host and the port text of an address; *p is NULL when no
 * port was written.  Brackets are for IPv6 hosts only.
 */
static bool split(const char *text, const char **h, size_t *hlen, const char **p)
{
	*p = NULL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL)
			return false;
		*h = text + 1;
		*hlen = (size_t)(close - *h);
		if (close[1] == ':')
			*p = close + 2;
		else if (close[1] != '\0')
			return false;
		return memchr(*h, ':', *hlen) != NULL;
	}
	*h = text;
	const char *colon = strchr(text, ':');
	if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		*hlen = (size_t)(colon - text);
		*p = colon + 1;
	} else {
		*hlen = strlen(text); /* a name, IPv4, or bare IPv6 */
	}
	return true;
}

/* host_ok checks a host's characters, and an IPv6 host's syntax. */
static bool host_ok(const char *h, size_t hlen)
{
	if (hlen == 0 || hlen >= EFM_HOST_MAX)
		return false;
	for (size_t i = 0; i < hlen; i++) {
		if (!host_char_ok(h[i]))
			return false;
	}
	return memchr(h, ':', hlen) == NULL || ipv6_ok(h, hlen);
}

bool address_parse(const char *text, struct efm_addr *out)
{
	const char *h, *p;
	size_t hlen;
	uint16_t port;

	if (text == NULL || !split(text, &h, &hlen, &p) || p == NULL)
		return false;
	/* An unbracketed IPv6 address with a port is ambiguous. */
	if (text[0] != '[' && memchr(h, ':', hlen) != NULL)
		return false;
	if (!host_ok(h, hlen) || !parse_port(p, &port))
		return false;
	memcpy(out->host, h, hlen);
	out->host[hlen] = '\0';
	out->port = port;
	return true;
}

bool address_split(const char *text, char *host, size_t len, uint16_t *port)
{
	const char *h, *p;
	size_t hlen;
	uint16_t pv = 0;

	if (text == NULL || !split(text, &h, &hlen, &p))
		return false;
	if (hlen >= len || !host_ok(h, hlen))
		return false;
	if (p != NULL && !parse_port(p, &pv))
		return false;
	for (size_t i = 0; i < hlen; i++)
		host[i] = (char)tolower((unsigned char)h[i]);
	host[hlen] = '\0';
	if (port != NULL)
		*port = pv;
	return true;
}

void address_format(const struct efm_addr *a, char *buf, size_t len)
{
	/* An IPv6 host needs brackets, or its colons run into the port's. */
	snprintf(buf, len, strchr(a->host, ':') != NULL ? "[%s]:%u" : "%s:%u", a->host, a->port);
}

bool address_is_ip(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}
