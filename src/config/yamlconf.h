/*
 * yamlconf.h - reading a cluster's properties from YAML (libyaml).
 *
 * The same keys as the .properties file; nested mappings are flattened with
 * dots, so "db: {user: x}" gives the entry db.user=x.  A sequence of scalars
 * becomes one comma-separated value (for user.email).  Quoting is YAML
 * syntax here, so quoted values are fine.  Anchors and aliases, several
 * documents and deep nesting are refused.
 */
#ifndef EFM_YAMLCONF_H
#define EFM_YAMLCONF_H

#include "props.h"

/*
 * Lists and mappings nested deeper than this (the root mapping counts) are
 * not a configuration file: the longest key, db.reuse.connection.count,
 * written fully nested needs 4.
 */
#define YAMLCONF_MAX_DEPTH 8
/* Room for a flattened key. */
#define YAMLCONF_KEY_MAX 256

/*
 * yamlconf_parse flattens YAML text into out, recording every problem in pr
 * as "PATH:LINE: ...".  Returns false only when memory runs out.
 */
bool yamlconf_parse(const char *path, const char *text, size_t len, struct props *out,
                    struct problems *pr) __attribute__((warn_unused_result));

/* yamlconf_read: props_read_text + yamlconf_parse; 0, -ENOENT, -ENOMEM or other negative codes. */
int yamlconf_read(const char *path, struct props *out, struct problems *pr)
    __attribute__((warn_unused_result));

#endif
