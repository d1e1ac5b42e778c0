/*
 * address.h - node addresses: "host:port", "[v6]:port", or a bare host.
 *
 * An agent's address is its identity in the cluster (the Raft id is derived
 * from it, the allowed list holds its host), so every layer parses and
 * prints addresses here, one way.  Hosts are names, IPv4 or IPv6 addresses
 * (an IPv6 address may carry a %zone); an IPv6 host is written in brackets
 * when a port follows.
 */
#ifndef EFM_ADDRESS_H
#define EFM_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Host text including its NUL. */
#define EFM_HOST_MAX 256
/* "[host]:port" including its NUL. */
#define EFM_ADDR_MAX (EFM_HOST_MAX + 8)

struct efm_addr {
	char host[EFM_HOST_MAX];
	uint16_t port;
};

/*
 * address_parse reads "host:port" or "[v6]:port" (a port is required);
 * false when malformed.  The host keeps its case.
 */
bool address_parse(const char *text, struct efm_addr *out) __attribute__((warn_unused_result));

/*
 * address_split extracts the host of "host", "host:port", "[v6]:port" or a
 * bare IPv6 address, lowercased, and the port (0 when none was written;
 * port may be NULL).  False when malformed or longer than len.
 */
bool address_split(const char *text, char *host, size_t len, uint16_t *port)
    __attribute__((warn_unused_result));

/* address_format writes "host:port", or "[v6]:port" for an IPv6 host. */
void address_format(const struct efm_addr *a, char *buf, size_t len);

/* address_is_ip: host is a literal IPv4 or IPv6 address (no name, no zone). */
bool address_is_ip(const char *host);

#endif
