/*
 * ratelog.c - rate-limited warnings (ratelog.h).
 */
#include "ratelog.h"

#include "log.h"

void ratelog_init(struct ratelog *rl, const char *who, uint64_t now_ms)
{
	rl->who = who;
	rl->window_ms = now_ms;
	rl->count = 0;
	rl->dropped = 0;
}

void ratelog_vwarn(struct ratelog *rl, uint64_t now_ms, const char *fmt, va_list ap)
{
	if (now_ms - rl->window_ms >= RATELOG_WINDOW_MS) {
		if (rl->dropped > 0)
			log_warning("%s: %u more warnings about peer links not logged", rl->who,
			            rl->dropped);
		rl->window_ms = now_ms;
		rl->count = 0;
		rl->dropped = 0;
	}
	if (rl->count >= RATELOG_BURST) {
		rl->dropped++;
		return;
	}
	rl->count++;
	log_vmsg(EFM_WARNING, fmt, ap);
}

void ratelog_warn(struct ratelog *rl, uint64_t now_ms, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ratelog_vwarn(rl, now_ms, fmt, ap);
	va_end(ap);
}
