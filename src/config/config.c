/*
 * config.c - loading a cluster's configuration: find the properties file
 * (.properties or .yaml), apply it through the option table, check what
 * needs several keys, read the .nodes file.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_table.h"
#include "props.h"
#include "yamlconf.h"

/* Plenty for any real cluster; a bigger .nodes file is a mistake. */
#define NODES_MAX 1024

bool config_vip_enabled(const struct efm_config *cfg)
{
	return cfg->virtual_ip[0] != '\0' && cfg->virtual_ip_interface[0] != '\0' &&
	       cfg->virtual_ip_prefix >= 0;
}

/* dup_path joins dir and name; NULL when memory runs out. */
static char *dup_path(const char *dir, const char *cluster, const char *ext)
{
	size_t n = strlen(dir) + strlen(cluster) + strlen(ext) + 3;
	char *p = malloc(n);
	if (p != NULL)
		snprintf(p, n, "%s/%s%s", dir, cluster, ext);
	return p;
}

/* exists: lstat-free existence test; a dangling symlink counts as missing. */
static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* cluster_name_ok: the name becomes file names, so no '/' or leading '.'. */
static bool cluster_name_ok(const char *c)
{
	size_t n = strlen(c);
	if (n == 0 || n > 64 || c[0] == '.' || c[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = c[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

/*
 * apply_entries runs every entry through the option table.  given[i] is set
 * to the entry that set canonical row i (for duplicates and required keys).
 */
static void apply_entries(struct efm_config *cfg, const struct props *pp,
                          const struct props_entry **given, struct problems *pr)
{
	const char *path = cfg->props_path;
	char why[512];

	for (size_t i = 0; i < pp->n; i++) {
		const struct props_entry *e = &pp->v[i];
		const struct config_option *opt = config_option_find(e->key);
		if (opt == NULL) {
			/* A suggestion costs an edit distance per row: only for a kept message. */
			const char *s = problems_full(pr) ? NULL : config_suggest(e->key);
			problems_add(pr, "%s:%d: %.80s: unknown key%s%s%s", path, e->line, e->key,
			             s ? " (did you mean " : "", s ? s : "", s ? "?)" : "");
			continue;
		}
		const struct config_option *canon = config_option_canonical(opt);
		size_t idx = (size_t)(canon - config_table_get(0));
		if (given[idx] != NULL) {
			if (strcmp(given[idx]->key, e->key) == 0)
				problems_add(pr,
				             "%s:%d: %s: duplicate key (first given on line %d)",
				             path, e->line, e->key, given[idx]->line);
			else
				problems_add(pr,
				             "%s:%d: %s: duplicate key: %s on line %d is the "
				             "same setting; keep one",
				             path, e->line, e->key, given[idx]->key,
				             given[idx]->line);
			continue;
		}
		given[idx] = e;
		/* An empty value means "not set": the default stays. */
		if (e->value[0] == '\0')
			continue;
		if (!config_option_set(cfg, opt, e->value, why, sizeof(why)))
			problems_add(pr, "%s:%d: %s: %s", path, e->line, e->key, why);
	}
}

/* check_required reports required keys that were not given a value. */
static void check_required(const struct efm_config *cfg, const struct props_entry **given,
                           struct problems *pr)
{
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		bool needed = (opt->flags & CONFIG_F_WITNESS_REQ) ||
		              ((opt->flags & CONFIG_F_REQUIRED) && !cfg->is_witness);
		if (!needed || opt->alias_of != NULL)
			continue;
		if (given[i] == NULL)
			problems_add(
			    pr, "%s: %s: required%s but not set", cfg->props_path, opt->name,
			    (opt->flags & CONFIG_F_WITNESS_REQ) ? "" : " on a database node");
		else if (given[i]->value[0] == '\0' && !(opt->flags & CONFIG_F_EMPTY_OK))
			problems_add(pr, "%s:%d: %s: required%s but empty", cfg->props_path,
			             given[i]->line, given[i]->key,
			             (opt->flags & CONFIG_F_WITNESS_REQ) ? ""
			                                                 : " on a database node");
	}
}

/* set_defaults applies the table's defaults; false only when memory runs out. */
static bool set_defaults(struct efm_config *cfg)
{
	char why[256];

	cfg->virtual_ip_prefix = -1;
	if (!config_init_strings(cfg))
		return false;
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		/* Defaults are checked by the unit tests; a failure here is memory. */
		if (opt->def != NULL && opt->alias_of == NULL &&
		    !config_option_set(cfg, opt, opt->def, why, sizeof(why)))
			return false;
	}
	return true;
}

/* set_derived fills the defaults that depend on other keys or on the host. */
static bool set_derived(struct efm_config *cfg, const struct props_entry **given)
{
	char host[256], buf[300];

	if (cfg->db_host[0] == '\0' && cfg->bind.host[0] != '\0') {
		char *h = strdup(cfg->bind.host);
		if (h == NULL)
			return false;
		free(cfg->db_host);
		cfg->db_host = h;
	}
	if (cfg->from_email[0] == '\0') {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(buf, sizeof(buf), "efm@%s", host);
		char *f = strdup(buf);
		if (f == NULL)
			return false;
		free(cfg->from_email);
		cfg->from_email = f;
	}
	const struct config_option *nt = config_option_find("node.timeout");
	size_t nt_idx = (size_t)(nt - config_table_get(0));
	if (given[nt_idx] == NULL || given[nt_idx]->value[0] == '\0' || cfg->node_timeout_s <= 0) {
		long ms = (long)cfg->jgroups_timeout_ms * cfg->jgroups_max_tries;
		cfg->node_timeout_s = (int)((ms + 999) / 1000);
	}
	return true;
}

/* read_nodes reads the .nodes file; a missing file is an empty list. */
static bool read_nodes(struct efm_config *cfg, struct problems *pr)
{
	char *text;
	size_t len;
	int rc = props_read_text(cfg->nodes_path, &text, &len, pr);
	if (rc == -ENOMEM)
		return false;
	if (rc != 0)
		return true;

	int line = 1;
	bool ok = true;
	for (char *p = text; *p != '\0' && ok;) {
		size_t eol = props_eol(p, 2);
		if (eol > 0) {
			line++;
			p += eol;
			continue;
		}
		if (*p == ' ' || *p == '\t' || *p == '\f' || *p == ',') {
			p++;
			continue;
		}
		if (*p == '#') {
			p += strcspn(p, "\r\n");
			continue;
		}
		size_t n = strcspn(p, " \t\r\f\n#,");
		char tok[EFM_HOST_MAX + 16];
		struct efm_addr a;
		unsigned char ipbuf[16];
		bool good = n < sizeof(tok);
		if (good) {
			memcpy(tok, p, n);
			tok[n] = '\0';
			good = address_parse(tok, &a) && (inet_pton(AF_INET, a.host, ipbuf) == 1 ||
			                                  inet_pton(AF_INET6, a.host, ipbuf) == 1);
		}
		if (!good) {
			problems_add(pr, "%s:%d: \"%.*s\": not a node address (write IP:PORT)",
			             cfg->nodes_path, line, (int)(n > 80 ? 80 : n), p);
		} else if (config_addr_unspecified(a.host)) {
			problems_add(pr,
			             "%s:%d: \"%s\": the unspecified address names no node; list "
			             "each node's bind.address",
			             cfg->nodes_path, line, tok);
		} else if (cfg->n_nodes >= NODES_MAX) {
			problems_add(pr, "%s:%d: more than %d nodes listed", cfg->nodes_path, line,
			             NODES_MAX);
			break;
		} else {
			bool dup = false;
			for (size_t i = 0; i < cfg->n_nodes && !dup; i++)
				dup = cfg->nodes[i].port == a.port &&
				      strcmp(cfg->nodes[i].host, a.host) == 0;
			if (!dup) {
				struct efm_addr *v =
				    realloc(cfg->nodes, (cfg->n_nodes + 1) * sizeof(*v));
				if (v == NULL)
					ok = false;
				else {
					cfg->nodes = v;
					cfg->nodes[cfg->n_nodes++] = a;
				}
			}
		}
		p += n;
	}
	free(text);
	return ok;
}

/* read_props finds and reads the .properties or .yaml file; 0 or a negative code. */
static int read_props(struct efm_config *cfg, struct props *pp, struct problems *pr)
{
	char *yaml = dup_path(cfg->config_dir, cfg->cluster, ".yaml");
	if (yaml == NULL)
		return -ENOMEM;
	bool have_props = exists(cfg->props_path), have_yaml = exists(yaml);
	int rc;

	if (have_props && have_yaml)
		problems_add(pr, "%s: %s exists too; keep only one of the two files",
		             cfg->props_path, yaml);
	if (!have_props && have_yaml) {
		free(cfg->props_path);
		cfg->props_path = yaml;
		yaml = NULL;
		rc = yamlconf_read(cfg->props_path, pp, pr);
	} else {
		rc = props_read(cfg->props_path, pp, pr);
	}
	if (rc == -ENOENT)
		problems_add(pr, "%s: no such file (nor %s)", cfg->props_path,
		             yaml ? yaml : "a .yaml file");
	free(yaml);
	return rc;
}

struct efm_config *config_load(const char *dir, const char *cluster, struct problems *pr)
{
	struct efm_config *cfg = calloc(1, sizeof(*cfg));
	struct props pp = {0};
	const struct props_entry **given = NULL;

	if (cfg == NULL)
		return NULL;
	cfg->cluster = strdup(cluster ? cluster : "");
	cfg->config_dir = strdup(dir ? dir : ".");
	if (cfg->cluster == NULL || cfg->config_dir == NULL || !set_defaults(cfg))
		goto nomem;
	cfg->props_path = dup_path(cfg->config_dir, cfg->cluster, ".properties");
	cfg->nodes_path = dup_path(cfg->config_dir, cfg->cluster, ".nodes");
	given = calloc(config_table_size(), sizeof(*given));
	if (cfg->props_path == NULL || cfg->nodes_path == NULL || given == NULL)
		goto nomem;
	if (!cluster_name_ok(cfg->cluster)) {
		problems_add(pr,
		             "%s: \"%.80s\" is not a usable cluster name (letters, digits, "
		             "'.', '_' and '-', not starting with '.' or '-')",
		             cfg->config_dir, cfg->cluster);
		if (!set_derived(cfg, given))
			goto nomem;
		goto out;
	}
	int rc = read_props(cfg, &pp, pr);
	if (rc == -ENOMEM)
		goto nomem;
	size_t before = problems_total(pr);
	/* Without a readable file, "required key missing" would only be noise. */
	if (rc == 0) {
		apply_entries(cfg, &pp, given, pr);
		check_required(cfg, given, pr);
	}
	if (!set_derived(cfg, given))
		goto nomem;
	/*
	 * Rules between keys are judged only once every key is valid: a bad
	 * value leaves its default, which would be reported a second time.
	 */
	if (rc == 0 && problems_total(pr) == before)
		config_check_rules(cfg, pr);
	if (!read_nodes(cfg, pr))
		goto nomem;
out:
	free(given);
	props_free(&pp);
	return cfg;
nomem:
	free(given);
	props_free(&pp);
	config_free(cfg);
	return NULL;
}

void config_free(struct efm_config *cfg)
{
	if (cfg == NULL)
		return;
	config_free_strings(cfg);
	free(cfg->cluster);
	free(cfg->config_dir);
	free(cfg->props_path);
	free(cfg->nodes_path);
	free(cfg->nodes);
	free(cfg);
}
