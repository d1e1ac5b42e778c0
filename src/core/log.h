/*
 * log.h - the agent's and the client's log, at the guide's levels.
 *
 * Lines go to stderr with a syslog priority prefix ("<6>") so that journald
 * files them at the right level, or to a file with a timestamp.  Every line
 * names the object it concerns first ("db 127.0.0.2:5432: ...").
 */
#ifndef EFM_LOG_H
#define EFM_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/* From most output to least, as in the guide's section 6. */
enum efm_level {
	EFM_FINEST,
	EFM_FINER,
	EFM_FINE,
	EFM_CONFIG,
	EFM_INFO,
	EFM_WARNING,
	EFM_SEVERE,
};

/* log_level_parse reads a level name (case-insensitive); false if unknown. */
bool log_level_parse(const char *name, enum efm_level *out);
const char *log_level_name(enum efm_level level);

/*
 * log_open sends the log to path (appending) or, when path is NULL, to
 * stderr.  Returns 0 or -errno.  Until it is called the log goes to stderr.
 */
int log_open(const char *path);
/* log_reopen reopens the file after rotation (SIGUSR1); no-op on stderr. */
int log_reopen(void);
void log_close(void);
void log_set_level(enum efm_level level);
enum efm_level log_get_level(void);
/* log_set_prefixes(false) drops the "<N>" syslog prefixes (interactive use). */
void log_set_prefixes(bool on);

void log_msg(enum efm_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum efm_level level, const char *fmt, va_list ap);
/* log_always writes whatever the level (notifications are always logged). */
void log_always(enum efm_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_finest(...)  log_msg(EFM_FINEST, __VA_ARGS__)
#define log_finer(...)   log_msg(EFM_FINER, __VA_ARGS__)
#define log_fine(...)    log_msg(EFM_FINE, __VA_ARGS__)
#define log_config(...)  log_msg(EFM_CONFIG, __VA_ARGS__)
#define log_info(...)    log_msg(EFM_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(EFM_WARNING, __VA_ARGS__)
#define log_severe(...)  log_msg(EFM_SEVERE, __VA_ARGS__)

#endif
