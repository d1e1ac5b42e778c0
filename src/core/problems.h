/*
 * problems.h - a list of problems found in an input, each one line of the
 * form "FILE:LINE: key: what".  The configuration readers report into it;
 * prop-check and the agent's start-up print it.
 */
#ifndef EFM_PROBLEMS_H
#define EFM_PROBLEMS_H

#include <stddef.h>

struct problems {
	char **msgs;
	size_t n;
};

/* problems_add appends one formatted problem; out of memory drops it. */
void problems_add(struct problems *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void problems_free(struct problems *pr);

#endif
