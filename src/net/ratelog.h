/*
 * ratelog.h - warnings about refused or broken peer links, rate-limited.
 *
 * A flood of hostile connections must not flood the log as well: at most
 * RATELOG_BURST lines are written per RATELOG_WINDOW_MS; the next line
 * after the window says how many were left out.
 */
#ifndef EFM_RATELOG_H
#define EFM_RATELOG_H

#include <stdarg.h>
#include <stdint.h>

#define RATELOG_WINDOW_MS 10000
#define RATELOG_BURST     10

struct ratelog {
	const char *who;    /* prefix of the "more not logged" line, e.g. "peer transport" */
	uint64_t window_ms; /* loop time (ms) when the current window began */
	unsigned count;     /* lines written in this window */
	unsigned dropped;   /* lines left out in this window */
};

/* ratelog_init starts the first window at now_ms (loop time). */
void ratelog_init(struct ratelog *rl, const char *who, uint64_t now_ms);

/* ratelog_warn writes a WARNING unless this window's burst is spent. */
void ratelog_warn(struct ratelog *rl, uint64_t now_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ratelog_vwarn(struct ratelog *rl, uint64_t now_ms, const char *fmt, va_list ap);

#endif
