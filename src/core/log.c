/*
 * log.c - leveled logging to stderr (journald) or a file.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const struct {
	const char *name;
	int syslog_prio; /* the "<N>" journald reads */
} levels[] = {
    [EFM_FINEST] = {"FINEST", 7}, [EFM_FINER] = {"FINER", 7}, [EFM_FINE] = {"FINE", 7},
    [EFM_CONFIG] = {"CONFIG", 6}, [EFM_INFO] = {"INFO", 6},   [EFM_WARNING] = {"WARNING", 4},
    [EFM_SEVERE] = {"SEVERE", 3},
};

/* The log is process-wide by nature, like stderr itself. */
static struct {
	enum efm_level level;
	FILE *file;    /* NULL: stderr */
	char *path;    /* for log_reopen */
	bool prefixes; /* syslog "<N>" prefixes on stderr */
} logstate = {EFM_INFO, NULL, NULL, true};

bool log_level_parse(const char *name, enum efm_level *out)
{
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcasecmp(name, levels[i].name) == 0) {
			*out = (enum efm_level)i;
			return true;
		}
	}
	return false;
}

const char *log_level_name(enum efm_level level)
{
	if ((unsigned)level >= sizeof(levels) / sizeof(levels[0]))
		return "UNKNOWN";
	return levels[level].name;
}

int log_open(const char *path)
{
	log_close();
	if (path == NULL)
		return 0;
	FILE *f = fopen(path, "a");
	if (f == NULL)
		return -errno;
	setvbuf(f, NULL, _IOLBF, 0);
	logstate.file = f;
	logstate.path = strdup(path);
	return 0;
}

int log_reopen(void)
{
	if (logstate.path == NULL)
		return 0;
	char *path = logstate.path;
	logstate.path = NULL;
	int rc = log_open(path);
	free(path);
	return rc;
}

void log_close(void)
{
	if (logstate.file != NULL)
		fclose(logstate.file);
	logstate.file = NULL;
	free(logstate.path);
	logstate.path = NULL;
}

void log_set_level(enum efm_level level)
{
	logstate.level = level;
}

enum efm_level log_get_level(void)
{
	return logstate.level;
}

void log_set_prefixes(bool on)
{
	logstate.prefixes = on;
}

static void log_write(enum efm_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void log_write(enum efm_level level, const char *fmt, va_list ap)
{
	char line[4096];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One record per line: keep multi-line messages in one journal entry. */
	for (char *p = line; *p; p++)
		if (*p == '\n' && p[1] != '\0')
			*p = ' ';
	size_t len = strlen(line);
	if (len > 0 && line[len - 1] == '\n')
		line[len - 1] = '\0';

	if (logstate.file != NULL) {
		char stamp[32];
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(logstate.file, "%s.%03ld %s %s\n", stamp, ts.tv_nsec / 1000000,
		        levels[level].name, line);
	} else if (logstate.prefixes) {
		fprintf(stderr, "<%d>%s: %s\n", levels[level].syslog_prio, levels[level].name,
		        line);
	} else {
		fprintf(stderr, "%s: %s\n", levels[level].name, line);
	}
}

void log_vmsg(enum efm_level level, const char *fmt, va_list ap)
{
	if (level < logstate.level)
		return;
	log_write(level, fmt, ap);
}

void log_msg(enum efm_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_always(enum efm_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(level, fmt, ap);
	va_end(ap);
}
