/*
 * props.h - reading configuration files into flat key/value lists.
 *
 * Both the Java-style .properties reader here and the YAML reader
 * (yamlconf.h) produce the same struct props: every entry keeps the line it
 * came from, so the configuration layer can name "FILE:LINE: key: ..." in its
 * problems.  These readers only know syntax; the option table (config.c)
 * decides which keys exist and what their values mean.
 */
#ifndef EFM_PROPS_H
#define EFM_PROPS_H

#include <stdbool.h>
#include <stddef.h>

#include "problems.h"

/* A file larger than this is not a configuration file. */
#define PROPS_MAX_FILE (1024 * 1024)
/* A line longer than this is reported and skipped. */
#define PROPS_MAX_LINE 4096

struct props_entry {
	char *key;
	char *value; /* never NULL; "" for an empty value */
	int line;    /* 1-based line in the file */
};

struct props {
	struct props_entry *v;
	size_t n;
	size_t cap;
};

/*
 * props_eol: the length of the line end at s, 0 when there is none.  LF,
 * CRLF and a CR alone (old Mac files) each end a line, in every reader.
 */
static inline size_t props_eol(const char *s, size_t left)
{
	if (left == 0 || (s[0] != '\n' && s[0] != '\r'))
		return 0;
	return s[0] == '\r' && left > 1 && s[1] == '\n' ? 2 : 1;
}

/*
 * props_read_text reads the whole of path into a NUL-terminated buffer
 * (*out, free() it), after making sure it is a regular, bounded, valid UTF-8
 * text file without NUL bytes or control characters; a UTF-8 BOM is removed.
 * Returns 0; -ENOENT when the file does not exist (no problem recorded: the
 * caller decides whether that matters); any other negative code after
 * recording a problem in pr.
 */
int props_read_text(const char *path, char **out, size_t *len, struct problems *pr)
    __attribute__((warn_unused_result));

/*
 * props_parse reads .properties text: KEY=VALUE lines, '#' and '!' comments,
 * blank lines, LF, CRLF or CR endings, whitespace around '='.  Values are taken
 * literally (no escapes, no quotes).  Every bad line is recorded in pr and
 * skipped.  Returns false only when memory runs out.
 */
bool props_parse(const char *path, const char *text, size_t len, struct props *out,
                 struct problems *pr) __attribute__((warn_unused_result));

/* props_read: props_read_text + props_parse; -ENOENT, -ENOMEM or other negative codes. */
int props_read(const char *path, struct props *out, struct problems *pr)
    __attribute__((warn_unused_result));

/* props_add appends a copy of key and value; false when memory runs out. */
bool props_add(struct props *p, const char *key, const char *value, int line)
    __attribute__((warn_unused_result));

void props_free(struct props *p);

#endif
