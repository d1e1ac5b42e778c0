/*
 * config_sample.c - writing efm.properties.in and efm.nodes.in from the
 * option table, so the sample can never disagree with the parser.
 */
#include "config_table.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WRAP_COLUMNS 76

/* put_wrapped writes text as '#' comment lines no wider than WRAP_COLUMNS. */
static void put_wrapped(FILE *out, const char *text)
{
	const size_t width = WRAP_COLUMNS - 2;

	while (*text != '\0') {
		size_t n = strlen(text);
		if (n > width) {
			n = width;
			while (n > 0 && text[n] != ' ')
				n--;
			if (n == 0) /* one word longer than a line */
				n = strcspn(text, " ");
		}
		size_t shown = n;
		while (shown > 0 && text[shown - 1] == ' ')
			shown--;
		fprintf(out, "# %.*s\n", (int)shown, text);
		text += n;
		while (*text == ' ')
			text++;
	}
}

/* alias_names lists the later-version names that stand for opt. */
static void alias_names(const struct config_option *opt, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *a = config_table_get(i);
		if (a->alias_of == NULL || strcmp(a->alias_of, opt->name) != 0)
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", a->name);
		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

/* put_option writes one key: its explanation, its facts, and the line itself. */
static void put_option(FILE *out, const struct config_option *opt)
{
	char facts[1024], bounds[256], aliases[256];

	fputc('\n', out);
	put_wrapped(out, opt->comment);
	fprintf(out, "#\n");
	config_option_bounds(opt, bounds, sizeof(bounds));
	alias_names(opt, aliases, sizeof(aliases));
	snprintf(facts, sizeof(facts), "Value: %s.  Default: %s.%s%s%s%s%s%s%s%s", bounds,
	         opt->def ? opt->def : (opt->def_note ? opt->def_note : "none"),
	         (opt->flags & CONFIG_F_WITNESS_REQ) ? "  Required on every node."
	         : (opt->flags & CONFIG_F_REQUIRED)  ? "  Required on a database node."
	                                             : "",
	         (opt->flags & CONFIG_F_EMPTY_OK) ? "  May be left empty." : "",
	         (opt->flags & CONFIG_F_DB_ONLY) ? "  Not used on a witness." : "",
	         (opt->flags & CONFIG_F_SAME_ALL) ? "  Must be the same on all nodes." : "",
	         (opt->flags & CONFIG_F_RELOAD) ? "  Changes apply on reload (SIGHUP)."
	                                        : "  Changes need a restart.",
	         aliases[0] ? "  Also accepted under the later name " : "", aliases,
	         aliases[0] ? " (give only one of the names)." : "");
	put_wrapped(out, facts);
	fprintf(out, "# Example: %s=%s\n", opt->name, opt->example);
	fprintf(out, "%s=%s\n", opt->name, opt->def ? opt->def : "");
}

int config_sample_properties(FILE *out)
{
	fprintf(out, "# efm.properties.in - sample properties of one efm cluster.\n"
	             "#\n");
	put_wrapped(out, "Copy this file to /etc/efm/CLUSTER.properties, where CLUSTER is the "
	                 "cluster's name, and fill it in.  Each setting is a KEY=VALUE line; "
	                 "blanks around '=' do not matter, values are never quoted, and lines "
	                 "starting with '#' or '!' are comments.  A key left empty takes its "
	                 "default.  The same keys may instead be written as YAML in "
	                 "/etc/efm/CLUSTER.yaml, where 'db: {user: efm}' means db.user=efm.");
	fprintf(out, "#\n");
	put_wrapped(out, "This file is generated from efm's option table ('efm sample-config "
	                 "DIR'); check a finished file with 'efm prop-check CLUSTER'.");
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		if (opt->alias_of != NULL)
			continue;
		if (opt->group != NULL) {
			fprintf(out, "\n#\n# ---- %s ----\n#\n", opt->group);
		}
		put_option(out, opt);
	}
	return ferror(out) ? -EIO : 0;
}

int config_sample_nodes(FILE *out)
{
	fprintf(out, "# efm.nodes.in - sample member list of one efm cluster.\n"
	             "#\n");
	put_wrapped(out, "Copy this file to /etc/efm/CLUSTER.nodes.  List the addresses of the "
	                 "cluster's other members as IP:PORT (each one's bind.address), separated "
	                 "by blanks or line breaks; '#' starts a comment.  The first node of a new "
	                 "cluster may leave the list empty.  Running agents keep this file up to "
	                 "date as members join and leave.");
	fprintf(out, "#\n"
	             "# Example:\n"
	             "# 192.168.2.54:7800 192.168.2.55:7800\n");
	return ferror(out) ? -EIO : 0;
}

/* write_one writes dir/name through a temporary file and a rename. */
static int write_one(const char *dir, const char *name, int (*fill)(FILE *))
{
	char path[4096], tmp[4096];
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	rc = fill(f);
	if (fflush(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && fsync(fileno(f)) != 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int config_write_samples(const char *dir)
{
	int rc = write_one(dir, "efm.properties.in", config_sample_properties);
	if (rc == 0)
		rc = write_one(dir, "efm.nodes.in", config_sample_nodes);
	return rc;
}
