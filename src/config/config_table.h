/*
 * config_table.h - the declarative option table behind config.h.
 *
 * One row per key: its type, where it lives in struct efm_config, default,
 * bounds, unit, flags and the sample file's comment.  Parsing, validation,
 * prop-check, reload checks and the generated sample file all walk this one
 * table, so a key is added in exactly one place.
 */
#ifndef EFM_CONFIG_TABLE_H
#define EFM_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum config_type {
	CONFIG_T_IGNORED,  /* accepted for compatibility, not stored */
	CONFIG_T_BOOL,     /* true or false */
	CONFIG_T_INT,      /* whole number within [min, max] */
	CONFIG_T_STRING,   /* any single-line text */
	CONFIG_T_SECRET,   /* like STRING, never printed */
	CONFIG_T_HEX,      /* hex digits (the output of efm encrypt) */
	CONFIG_T_PATH,     /* absolute path */
	CONFIG_T_COMMAND,  /* program and arguments, split on spaces */
	CONFIG_T_ADDR,     /* IP:port, stored as struct efm_addr */
	CONFIG_T_IP,       /* IP address literal */
	CONFIG_T_HOST,     /* IP address or host name */
	CONFIG_T_IFACE,    /* network interface, optionally with a ":N" label */
	CONFIG_T_NETMASK,  /* dotted IPv4 netmask, stored as a prefix length */
	CONFIG_T_PREFIX,   /* prefix length 0..128, stored as int */
	CONFIG_T_LOGLEVEL, /* FINEST..SEVERE, stored as enum efm_level */
	CONFIG_T_SEVERITY, /* INFO, WARNING or SEVERE, stored as enum efm_severity */
	CONFIG_T_EMAIL,    /* one mail address */
	CONFIG_T_EMAILS,   /* mail addresses separated by commas or spaces */
	CONFIG_T_SMTP_URL, /* smtp:// or smtps:// */
	CONFIG_T_HTTP_URL, /* http:// or https:// */
};

enum config_flag {
	CONFIG_F_REQUIRED = 1u << 0,    /* must be set on a database node */
	CONFIG_F_WITNESS_REQ = 1u << 1, /* must be set on a witness as well */
	CONFIG_F_DB_ONLY = 1u << 2,     /* a witness does not use it */
	CONFIG_F_SAME_ALL = 1u << 3,    /* all nodes of a cluster must agree */
	CONFIG_F_RELOAD = 1u << 4,      /* takes effect on SIGHUP */
	CONFIG_F_EMPTY_OK = 1u << 5,    /* required key that may be given empty */
};

struct config_option {
	const char *name;
	enum config_type type;
	size_t offset;        /* into struct efm_config; unused for IGNORED */
	const char *def;      /* default as text, parsed like a value; NULL: none */
	const char *def_note; /* a default computed at load time, in words */
	long min, max;        /* bounds of an INT */
	const char *min_why;  /* of an INT: why smaller values are refused; NULL: obvious */
	const char *unit;     /* of an INT: "s", "ms", ... ; NULL: none */
	unsigned flags;       /* enum config_flag */
	const char *alias_of; /* the 2.0 name this later-version name stands for */
	const char *group;    /* starts a section of the sample file */
	const char *example;  /* a valid value (sample file, unit tests) */
	const char *comment;  /* the sample file's explanation */
};

/* config_table_size and config_table_get walk the table in sample-file order. */
size_t config_table_size(void);
const struct config_option *config_table_get(size_t i);
/* config_option_find: the row of a key (exact, case-sensitive), or NULL. */
const struct config_option *config_option_find(const char *name);
/* config_option_canonical: the row an alias stands for, or opt itself. */
const struct config_option *config_option_canonical(const struct config_option *opt);
const char *config_type_name(enum config_type type);

/*
 * config_option_set parses text as opt's type and stores it in cfg.  On
 * failure cfg is unchanged and why holds the reason, e.g. "must be true or
 * false".  Returns false on a bad value (or when memory runs out).
 */
bool config_option_set(struct efm_config *cfg, const struct config_option *opt, const char *text,
                       char *why, size_t whylen) __attribute__((warn_unused_result));

/* config_option_format writes opt's current value in cfg as it would be written in the file. */
void config_option_format(const struct efm_config *cfg, const struct config_option *opt, char *buf,
                          size_t len);

/* config_option_bounds describes a key's type and bounds, e.g. "whole number, 1..3600 s". */
void config_option_bounds(const struct config_option *opt, char *buf, size_t len);

/*
 * config_suggest: the key closest to an unknown name by edit distance (case
 * differences count little), or NULL when nothing is close.
 */
const char *config_suggest(const char *name);

/*
 * config_addr_unspecified: host is the unspecified address (0.0.0.0, ::,
 * ::ffff:0.0.0.0), which means "any interface" and names no node.
 */
bool config_addr_unspecified(const char *host);

/* Why the node timeout has a floor, for messages and the sample file. */
#define CONFIG_STR_(x) #x
#define CONFIG_STR(x)  CONFIG_STR_(x)
#define CONFIG_NODE_TIMEOUT_WHY                                                                    \
	"an isolated master must notice that it is isolated before the majority may act, and "     \
	"noticing takes up to twice the Raft election timeout (a quarter of the node timeout, "    \
	"but at least " CONFIG_STR(CONFIG_ELECTION_MIN_MS) " ms), which must fit in half the "     \
	                                                   "node timeout"

/* config_init_strings sets every string field of a fresh cfg to "" (false: no memory). */
bool config_init_strings(struct efm_config *cfg) __attribute__((warn_unused_result));
/* config_free_strings frees the strings config_init_strings and config_option_set made. */
void config_free_strings(struct efm_config *cfg);

/*
 * config_check_rules records the rules that involve several keys (timing
 * relations, VIP all-or-nothing...) in pr, naming props_path.
 */
void config_check_rules(const struct efm_config *cfg, struct problems *pr);

/*
 * config_restart_changes records, for a reload from old to new, every key
 * that changed but takes effect only after a restart.  Returns their number.
 */
size_t config_restart_changes(const struct efm_config *old, const struct efm_config *new_cfg,
                              struct problems *pr);

/*
 * config_shared_text writes "key=value\n" for every key all nodes must agree
 * on (passwords excluded), in table order, so that agents can compare their
 * settings.  Returns the length, or -ENOSPC when buf is too small.
 */
int config_shared_text(const struct efm_config *cfg, char *buf, size_t len);

/* The texts config_write_samples writes, for tests and for efm sample-config. */
int config_sample_properties(FILE *out);
int config_sample_nodes(FILE *out);

#endif
