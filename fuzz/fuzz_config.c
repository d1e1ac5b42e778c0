/*
 * fuzz_config.c - a whole configuration load on arbitrary files: the text
 * checks, either reader, the option table, the rules between keys, the
 * .nodes file, and the formatting a reload and a peer comparison use.
 *
 * Input: one selector byte ('Y': the rest is CLUSTER.yaml, anything else:
 * CLUSTER.properties), then the properties text, optionally followed by
 * NODES_MARK and the .nodes file.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_table.h"

#define NODES_MARK "\n%%nodes%%\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

/* put writes dir/name, or removes it when data is NULL. */
static void put(const char *name, const uint8_t *data, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	if (data == NULL)
		return;
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		abort();
	if (len > 0 && fwrite(data, 1, len, f) != len)
		abort();
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/efm-fuzz-config-XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
	}
	if (size == 0)
		return 0;
	bool yaml = data[0] == 'Y';
	data++;
	size--;
	const uint8_t *nodes = memmem(data, size, NODES_MARK, strlen(NODES_MARK));
	size_t props_len = nodes != NULL ? (size_t)(nodes - data) : size;
	put(yaml ? "f.yaml" : "f.properties", data, props_len);
	put(yaml ? "f.properties" : "f.yaml", NULL, 0);
	if (nodes != NULL) {
		nodes += strlen(NODES_MARK);
		put("f.nodes", nodes, size - (size_t)(nodes - data));
	} else {
		put("f.nodes", NULL, 0);
	}

	struct problems pr = {0};
	struct efm_config *cfg = config_load(dir, "f", &pr);
	if (cfg == NULL)
		return 0; /* out of memory */
	if (problems_total(&pr) == 0) {
		/* A valid configuration formats, compares and shares without trouble. */
		char text[16384];
		struct problems changes = {0};
		if (config_restart_changes(cfg, cfg, &changes) != 0)
			abort();
		int n = config_shared_text(cfg, text, sizeof(text));
		if (n < 0 && n != -ENOSPC)
			abort();
		problems_free(&changes);
	}
	config_free(cfg);
	problems_free(&pr);
	return 0;
}
