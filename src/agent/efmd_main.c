/*
 * efmd - the efm agent: one per cluster per node, in the foreground
 * (systemd supervises it).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "decide.h"
#include "version.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: efmd [OPTIONS] CLUSTER\n"
	    "\n"
	    "Run the efm agent for CLUSTER on this node, in the foreground.\n"
	    "\n"
	    "Options:\n"
	    "  --config-dir DIR  where CLUSTER.properties (or .yaml) and CLUSTER.nodes are\n"
	    "                    (default /etc/efm, or $EFM_CONFIG_DIR)\n"
	    "  --state-dir DIR   consensus state (default /var/lib/efm, or $EFM_STATE_DIR)\n"
	    "  --run-dir DIR     admin socket and lock file (default /run/efm, or $EFM_RUN_DIR)\n"
	    "  --log-file FILE   log to FILE instead of stderr\n"
	    "  --dump-decisions  print the failover coordinator's decision table and exit\n"
	    "  -h, --help        show this help\n"
	    "  -V, --version     show the version\n"
	    "\n"
	    "Signals: TERM/INT stop, HUP reloads what can be reloaded, USR1 reopens the log "
	    "file.\n");
}

/* env_or returns the environment variable name if set and non-empty, else def. */
static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? v : def;
}

/* valid_cluster_name: the name becomes part of file names, so keep it plain. */
static int valid_cluster_name(const char *name)
{
	if (name[0] == '\0' || name[0] == '.' || strlen(name) > 64)
		return 0;
	for (const char *p = name; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		      ('0' <= *p && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config-dir", required_argument, NULL, 'c'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"run-dir", required_argument, NULL, 'r'},
	    {"log-file", required_argument, NULL, 'l'},
	    {"dump-decisions", no_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct agent_paths paths = {
	    .config_dir = env_or("EFM_CONFIG_DIR", "/etc/efm"),
	    .state_dir = env_or("EFM_STATE_DIR", "/var/lib/efm"),
	    .run_dir = env_or("EFM_RUN_DIR", "/run/efm"),
	    .log_file = NULL,
	};
	int c;
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			paths.config_dir = optarg;
			break;
		case 's':
			paths.state_dir = optarg;
			break;
		case 'r':
			paths.run_dir = optarg;
			break;
		case 'l':
			paths.log_file = optarg;
			break;
		case 'D':
			fo_dump_decisions(stdout);
			return AGENT_EXIT_OK;
		case 'h':
			usage(stdout);
			return AGENT_EXIT_OK;
		case 'V':
			printf("efmd %s\n", EFM_VERSION);
			return AGENT_EXIT_OK;
		default:
			usage(stderr);
			return AGENT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "efmd: expected exactly one cluster name\n");
		usage(stderr);
		return AGENT_EXIT_USAGE;
	}
	const char *cluster = argv[optind];
	if (!valid_cluster_name(cluster)) {
		fprintf(stderr,
		        "efmd: invalid cluster name '%s': use letters, digits, '-', '_' "
		        "and '.', at most 64 characters\n",
		        cluster);
		return AGENT_EXIT_USAGE;
	}
	/* Interactive runs read better without journald's priority prefixes. */
	log_set_prefixes(!isatty(STDERR_FILENO) || getenv("JOURNAL_STREAM") != NULL);
	return agent_run(cluster, &paths);
}
