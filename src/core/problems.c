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

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	char *copy = strdup(buf);
	char **msgs = copy ? realloc(pr->msgs, (pr->n + 1) * sizeof(*msgs)) : NULL;
	if (msgs == NULL) {
		/* Out of memory: the caller learns of it from config_load's NULL. */
		free(copy);
		return;
	}
	pr->msgs = msgs;
	pr->msgs[pr->n++] = copy;
}

void problems_free(struct problems *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		free(pr->msgs[i]);
	free(pr->msgs);
	pr->msgs = NULL;
	pr->n = 0;
}
