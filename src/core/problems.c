/*
 * problems.c - the list configuration readers report problems into.
 */
#include "problems.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void problems_add(struct problems *pr, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (problems_full(pr)) {
		pr->dropped++;
		return;
	}
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	char *copy = n >= 0 ? strdup(buf) : NULL;
	char **msgs = copy ? realloc(pr->msgs, (pr->n + 1) * sizeof(*msgs)) : NULL;
	if (msgs == NULL) {
		/* Without its text a problem still counts: the input must not pass. */
		free(copy);
		pr->dropped++;
		return;
	}
	pr->msgs = msgs;
	pr->msgs[pr->n++] = copy;
}

size_t problems_total(const struct problems *pr)
{
	return pr->n + pr->dropped;
}

bool problems_full(const struct problems *pr)
{
	return pr->n >= PROBLEMS_MAX_KEPT;
}

bool problems_more(const struct problems *pr, char *buf, size_t len)
{
	if (pr->dropped == 0)
		return false;
	snprintf(buf, len, "... and %zu more problem%s", pr->dropped, pr->dropped == 1 ? "" : "s");
	return true;
}

void problems_free(struct problems *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		free(pr->msgs[i]);
	free(pr->msgs);
	pr->msgs = NULL;
	pr->n = 0;
	pr->dropped = 0;
}
