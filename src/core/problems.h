/*
 * problems.h - a list of problems found in an input, each one line of the
 * form "FILE:LINE: key: what".  The configuration readers report into it;
 * prop-check and the agent's start-up print it.
 *
 * Only the first PROBLEMS_MAX_KEPT problems are kept as text; the rest are
 * only counted, so that a hostile or mistaken file (a binary, a file of
 * 60,000 unknown keys) costs a counter per line, not a message, and still
 * reports how many problems it has.
 */
#ifndef EFM_PROBLEMS_H
#define EFM_PROBLEMS_H

#include <stdbool.h>
#include <stddef.h>

/* Enough for anyone fixing a file by hand; more would only scroll the first ones away. */
#define PROBLEMS_MAX_KEPT 50

struct problems {
	char **msgs;    /* the first problems, at most PROBLEMS_MAX_KEPT */
	size_t n;       /* entries in msgs */
	size_t dropped; /* problems counted but not kept (past the cap, or out of memory) */
};

/* problems_add records one formatted problem: kept while there is room, else counted. */
void problems_add(struct problems *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* problems_total: every problem recorded, kept or not; the input is usable only at 0. */
size_t problems_total(const struct problems *pr);

/*
 * problems_full: further problems will only be counted.  Lets a caller skip
 * costly work on a message nobody will read (a spelling suggestion).
 */
bool problems_full(const struct problems *pr);

/*
 * problems_more writes "... and N more problems" into buf when some were
 * not kept, to print after the kept ones; false (buf untouched) otherwise.
 */
bool problems_more(const struct problems *pr, char *buf, size_t len);

void problems_free(struct problems *pr);

#endif
