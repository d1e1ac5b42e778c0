/*
 * elapsed.h - wall-clock timing for the unit tests that bound how long a
 * hostile input may take.
 */
#ifndef EFM_TEST_ELAPSED_H
#define EFM_TEST_ELAPSED_H

#include <time.h>

/* elapsed_start: now, to pass to elapsed_seconds later. */
static inline struct timespec elapsed_start(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

/* elapsed_seconds: wall time since t0, in seconds. */
static inline double elapsed_seconds(struct timespec t0)
{
	struct timespec t = elapsed_start();
	return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

#endif
