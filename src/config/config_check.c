/*
 * config_check.c - rules that involve several keys, the prop-check report,
 * and the comparisons a reload or a peer needs.
 */
#include "config_table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

/* check_timing: the local monitor's timeouts must fit together. */
static void check_timing(const struct efm_config *cfg, struct problems *pr)
{
	if (cfg->is_witness)
		return;
	if (cfg->local_timeout_s < cfg->local_period_s)
		problems_add(pr,
		             "%s: local.timeout: %d s is shorter than local.period (%d s); "
		             "local.timeout must be at least local.period, or the final "
		             "check starts before a regular check could succeed",
		             cfg->props_path, cfg->local_timeout_s, cfg->local_period_s);
}

/*
 * check_node_timeout: the floor again, for a node timeout derived from the
 * jgroups pair (node.timeout itself is bounded by the option table).
 */
static void check_node_timeout(const struct efm_config *cfg, struct problems *pr)
{
	if (cfg->node_timeout_s >= CONFIG_NODE_TIMEOUT_MIN_S)
		return;
	problems_add(pr,
	             "%s: jgroups.timeout x jgroups.max.tries: %d ms x %d gives a node timeout of "
	             "%d s; it must be at least %d s: %s",
	             cfg->props_path, cfg->jgroups_timeout_ms, cfg->jgroups_max_tries,
	             cfg->node_timeout_s, CONFIG_NODE_TIMEOUT_MIN_S, CONFIG_NODE_TIMEOUT_WHY);
}

/* check_vip: the virtual IP is all or nothing, and must fit its address family. */
static void check_vip(const struct efm_config *cfg, struct problems *pr)
{
	bool ip = cfg->virtual_ip[0] != '\0', ifc = cfg->virtual_ip_interface[0] != '\0',
	     mask = cfg->virtual_ip_prefix >= 0;
	unsigned char buf[16];

	if ((ip || ifc || mask) && !(ip && ifc && mask)) {
		problems_add(pr,
		             "%s: virtualIp: a virtual IP needs virtualIp, "
		             "virtualIp.interface and virtualIp.netmask (or "
		             "virtual.ip.prefix) together; missing:%s%s%s",
		             cfg->props_path, ip ? "" : " virtualIp",
		             ifc ? "" : " virtualIp.interface", mask ? "" : " virtualIp.netmask");
		return;
	}
	if (!ip)
		return;
	if (inet_pton(AF_INET, cfg->virtual_ip, buf) == 1 && cfg->virtual_ip_prefix > 32)
		problems_add(pr,
		             "%s: virtual.ip.prefix: %d is too long for the IPv4 address %s "
		             "(0..32)",
		             cfg->props_path, cfg->virtual_ip_prefix, cfg->virtual_ip);
	if (strcmp(cfg->virtual_ip, cfg->bind.host) == 0)
		problems_add(pr,
		             "%s: virtualIp: %s is this node's bind.address; the virtual IP "
		             "must be an address of its own",
		             cfg->props_path, cfg->virtual_ip);
}

/* check_ping_server: the ping server must be outside the cluster. */
static void check_ping_server(const struct efm_config *cfg, struct problems *pr)
{
	if (cfg->ping_server_ip[0] == '\0')
		return;
	if (strcmp(cfg->ping_server_ip, cfg->bind.host) == 0 ||
	    strcmp(cfg->ping_server_ip, cfg->virtual_ip) == 0)
		problems_add(pr,
		             "%s: pingServerIp: %s belongs to the cluster; use a server "
		             "outside it",
		             cfg->props_path, cfg->ping_server_ip);
}

/* check_notify: SMTP settings that contradict each other. */
static void check_notify(const struct efm_config *cfg, struct problems *pr)
{
	if (cfg->notification_smtp_starttls &&
	    strncmp(cfg->notification_smtp_url, "smtps://", 8) == 0)
		problems_add(pr,
		             "%s: notification.smtp.starttls: true, but %s already uses TLS "
		             "from the start; use smtp:// with STARTTLS or smtps:// without",
		             cfg->props_path, cfg->notification_smtp_url);
	if (cfg->notification_smtp_password[0] != '\0' && cfg->notification_smtp_user[0] == '\0')
		problems_add(pr,
		             "%s: notification.smtp.password: given without "
		             "notification.smtp.user",
		             cfg->props_path);
}

void config_check_rules(const struct efm_config *cfg, struct problems *pr)
{
	check_timing(cfg, pr);
	check_node_timeout(cfg, pr);
	check_vip(cfg, pr);
	check_ping_server(cfg, pr);
	check_notify(cfg, pr);
}

/* print_adapters lists each interface once, followed by its addresses. */
static void print_adapters(FILE *out)
{
	struct ifaddrs *ifs, *a, *b;
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];

	fprintf(out, "Network adapters:\n");
	if (getifaddrs(&ifs) != 0) {
		fprintf(out, "  (cannot list them: %s)\n", strerror(errno));
		return;
	}
	for (a = ifs; a != NULL; a = a->ifa_next) {
		/* Print a name only at its first appearance. */
		for (b = ifs; b != a && strcmp(b->ifa_name, a->ifa_name) != 0; b = b->ifa_next)
			;
		if (b != a)
			continue;
		fprintf(out, "  %s\n", a->ifa_name);
		for (b = a; b != NULL; b = b->ifa_next) {
			if (strcmp(b->ifa_name, a->ifa_name) != 0 || b->ifa_addr == NULL)
				continue;
			int fam = b->ifa_addr->sa_family;
			const void *src;
			if (fam == AF_INET)
				src = &((const struct sockaddr_in *)(const void *)b->ifa_addr)
				           ->sin_addr;
			else if (fam == AF_INET6)
				src = &((const struct sockaddr_in6 *)(const void *)b->ifa_addr)
				           ->sin6_addr;
			else
				continue;
			if (inet_ntop(fam, src, host, sizeof(host)) != NULL)
				fprintf(out, "    %s\n", host);
		}
	}
	freeifaddrs(ifs);
}

size_t config_prop_check(FILE *out, const struct efm_config *cfg, const struct problems *pr)
{
	fprintf(out, "Agents:");
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const struct efm_addr *a = &cfg->nodes[i];
		fprintf(out, strchr(a->host, ':') ? " [%s]:%u" : " %s:%u", a->host, a->port);
	}
	fprintf(out, "%s\n", cfg->n_nodes == 0 ? " (none listed)" : "");
	fprintf(out, "Binding address: %s\n", cfg->bind.host);
	fprintf(out, "I am witness node: %s\n", cfg->is_witness ? "true" : "false");
	fprintf(out, "Cluster name: %s\n", cfg->cluster);
	fprintf(out, "User email: %s\n", cfg->user_email);
	if (config_vip_enabled(cfg))
		fprintf(out, "VIP: %s/%d on %s\n", cfg->virtual_ip, cfg->virtual_ip_prefix,
		        cfg->virtual_ip_interface);
	else
		fprintf(out, "VIP: %s\n", cfg->virtual_ip[0] ? cfg->virtual_ip : "(none)");
	fprintf(out, "Automatic failover set to: %s\n", cfg->auto_failover ? "true" : "false");
	print_adapters(out);
	if (pr == NULL || problems_total(pr) == 0) {
		fprintf(out, "No problems found.\n");
		return 0;
	}
	char more[128];
	fprintf(out, "Problems found: %zu\n", problems_total(pr));
	for (size_t i = 0; i < pr->n; i++)
		fprintf(out, "  %s\n", pr->msgs[i]);
	if (problems_more(pr, more, sizeof(more)))
		fprintf(out, "  %s\n", more);
	return problems_total(pr);
}

/* printable: whether a key's value may appear in messages and shared text. */
static bool printable(const struct config_option *opt)
{
	return opt->type != CONFIG_T_SECRET && opt->type != CONFIG_T_HEX;
}

size_t config_restart_changes(const struct efm_config *old, const struct efm_config *new_cfg,
                              struct problems *pr)
{
	char a[1024], b[1024];
	size_t n = 0;

	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		if (opt->alias_of != NULL || (opt->flags & CONFIG_F_RELOAD) ||
		    opt->type == CONFIG_T_IGNORED)
			continue;
		config_option_format(old, opt, a, sizeof(a));
		config_option_format(new_cfg, opt, b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		n++;
		if (printable(opt))
			problems_add(pr,
			             "%s: %s: changed from \"%.80s\" to \"%.80s\"; takes effect "
			             "only after a restart",
			             new_cfg->props_path, opt->name, a, b);
		else
			problems_add(pr, "%s: %s: changed; takes effect only after a restart",
			             new_cfg->props_path, opt->name);
	}
	return n;
}

int config_shared_text(const struct efm_config *cfg, char *buf, size_t len)
{
	char v[1024];
	size_t used = 0;

	if (len == 0)
		return -ENOSPC;
	buf[0] = '\0';
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		if (opt->alias_of != NULL || !(opt->flags & CONFIG_F_SAME_ALL) || !printable(opt))
			continue;
		config_option_format(cfg, opt, v, sizeof(v));
		int n = snprintf(buf + used, len - used, "%s=%s\n", opt->name, v);
		if (n < 0 || (size_t)n >= len - used)
			return -ENOSPC;
		used += (size_t)n;
	}
	return (int)used;
}
