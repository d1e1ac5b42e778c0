/*
 * yamlconf.c - flattening a YAML mapping into key/value entries.
 *
 * Event-driven (no document tree), so the memory used is bounded by the
 * nesting depth; aliases are refused, which also rules out "billion laughs".
 */
#include "yamlconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct walker {
	yaml_parser_t parser;
	const char *path;
	struct props *out;
	struct problems *pr;
	const char *key; /* the flattened key being read, for messages */
	int depth;       /* collections open (the root mapping is 1) */
	bool broken;     /* a syntax error or too deep: stop reading */
	bool nomem;
};

/* ev_line: the 1-based line an event starts on. */
static int ev_line(const yaml_event_t *ev)
{
	return (int)(ev->start_mark.line + 1);
}

/*
 * next_event fetches the next event; false (and a problem) on a syntax
 * error or when collections nest deeper than YAMLCONF_MAX_DEPTH.  The depth
 * is judged here, on every event, because libyaml's cost per token grows
 * with the depth: the file must be abandoned where the nesting starts, not
 * skipped over.
 */
static bool next_event(struct walker *w, yaml_event_t *ev)
{
	if (w->broken)
		return false;
	if (!yaml_parser_parse(&w->parser, ev)) {
		if (w->parser.error == YAML_MEMORY_ERROR) {
			w->nomem = true;
		} else {
			problems_add(w->pr, "%s:%zu: YAML syntax error: %s%s%s", w->path,
			             w->parser.problem_mark.line + 1,
			             w->parser.problem ? w->parser.problem : "unknown",
			             w->parser.context ? " " : "",
			             w->parser.context ? w->parser.context : "");
		}
		w->broken = true;
		return false;
	}
	if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT) {
		if (++w->depth > YAMLCONF_MAX_DEPTH) {
			problems_add(w->pr,
			             "%s:%d: %s%snested more than %d levels deep; no setting needs "
			             "that many, so the rest of the file was not read",
			             w->path, ev_line(ev), w->key, w->key[0] ? ": " : "",
			             YAMLCONF_MAX_DEPTH);
			yaml_event_delete(ev);
			w->broken = true;
			return false;
		}
	} else if (ev->type == YAML_MAPPING_END_EVENT || ev->type == YAML_SEQUENCE_END_EVENT) {
		w->depth--;
	}
	return true;
}

/* skip_node consumes the rest of a collection whose start event was ev. */
static void skip_node(struct walker *w, const yaml_event_t *ev)
{
	int depth;
	yaml_event_t e;

	if (ev->type != YAML_MAPPING_START_EVENT && ev->type != YAML_SEQUENCE_START_EVENT)
		return;
	depth = 1;
	while (depth > 0 && next_event(w, &e)) {
		if (e.type == YAML_MAPPING_START_EVENT || e.type == YAML_SEQUENCE_START_EVENT)
			depth++;
		else if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT)
			depth--;
		yaml_event_delete(&e);
	}
}

/* scalar_text: the value of a scalar event, "" for YAML's null. */
static const char *scalar_text(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	     strcmp(v, "NULL") == 0))
		return "";
	return v;
}

/* add_scalar stores key=value unless the value has characters a setting cannot hold. */
static void add_scalar(struct walker *w, const char *key, const yaml_event_t *ev)
{
	const char *v = scalar_text(ev);
	if (ev->data.scalar.length != strlen((const char *)ev->data.scalar.value)) {
		problems_add(w->pr, "%s:%d: %s: value contains a NUL character", w->path,
		             ev_line(ev), key);
		return;
	}
	if (strpbrk(v, "\r\n") != NULL) {
		problems_add(w->pr, "%s:%d: %s: value spans several lines; write it on one",
		             w->path, ev_line(ev), key);
		return;
	}
	if (!props_add(w->out, key, v, ev_line(ev)))
		w->nomem = true;
}

/* walk_sequence joins a sequence of scalars into one comma-separated value. */
static void walk_sequence(struct walker *w, const char *key, int line)
{
	char buf[PROPS_MAX_LINE];
	size_t used = 0;
	bool ok = true;
	yaml_event_t e;

	buf[0] = '\0';
	while (next_event(w, &e)) {
		if (e.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&e);
			break;
		}
		if (e.type != YAML_SCALAR_EVENT) {
			if (ok)
				problems_add(w->pr, "%s:%d: %s: a list may hold only plain values",
				             w->path, ev_line(&e), key);
			ok = false;
			skip_node(w, &e);
		} else if (ok) {
			int n = snprintf(buf + used, sizeof(buf) - used, "%s%s",
			                 used > 0 ? ", " : "", scalar_text(&e));
			if (n < 0 || (size_t)n >= sizeof(buf) - used) {
				problems_add(w->pr, "%s:%d: %s: list is too long", w->path, line,
				             key);
				ok = false;
			} else {
				used += (size_t)n;
			}
		}
		yaml_event_delete(&e);
	}
	if (ok && !w->broken && !props_add(w->out, key, buf, line))
		w->nomem = true;
}

/* walk_mapping flattens the mapping whose start event was just read. */
static void walk_mapping(struct walker *w, const char *prefix)
{
	yaml_event_t k, v;

	while (!w->nomem && (w->key = prefix, next_event(w, &k))) {
		if (k.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&k);
			return;
		}
		if (k.type != YAML_SCALAR_EVENT) {
			problems_add(w->pr, "%s:%d: keys must be plain names", w->path,
			             ev_line(&k));
			skip_node(w, &k);
			yaml_event_delete(&k);
			/* and its value */
			if (next_event(w, &v)) {
				skip_node(w, &v);
				yaml_event_delete(&v);
			}
			continue;
		}
		char key[YAMLCONF_KEY_MAX];
		int n = snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
		                 (const char *)k.data.scalar.value);
		int line = ev_line(&k);
		bool key_ok = n > 0 && (size_t)n < sizeof(key) && k.data.scalar.length > 0;
		if (!key_ok)
			problems_add(w->pr, "%s:%d: key is empty or too long", w->path, line);
		yaml_event_delete(&k);
		if (key_ok)
			w->key = key;
		if (!next_event(w, &v))
			return;
		if (!key_ok) {
			skip_node(w, &v);
		} else if (v.type == YAML_SCALAR_EVENT) {
			add_scalar(w, key, &v);
		} else if (v.type == YAML_MAPPING_START_EVENT) {
			walk_mapping(w, key);
		} else if (v.type == YAML_SEQUENCE_START_EVENT) {
			walk_sequence(w, key, line);
		} else if (v.type == YAML_ALIAS_EVENT) {
			problems_add(w->pr, "%s:%d: %s: aliases (*name) are not supported", w->path,
			             line, key);
		}
		yaml_event_delete(&v);
	}
}

/* walk_document reads one document's root node. */
static void walk_document(struct walker *w)
{
	yaml_event_t e;

	if (!next_event(w, &e))
		return;
	if (e.type == YAML_MAPPING_START_EVENT) {
		walk_mapping(w, "");
	} else if (!(e.type == YAML_SCALAR_EVENT && scalar_text(&e)[0] == '\0')) {
		problems_add(w->pr, "%s:%d: the document must be a mapping of keys to values",
		             w->path, ev_line(&e));
		skip_node(w, &e);
	}
	yaml_event_delete(&e);
}

bool yamlconf_parse(const char *path, const char *text, size_t len, struct props *out,
                    struct problems *pr)
{
	struct walker w = {.path = path, .out = out, .pr = pr, .key = ""};
	int documents = 0;
	yaml_event_t e;

	if (!yaml_parser_initialize(&w.parser))
		return false;
	yaml_parser_set_input_string(&w.parser, (const unsigned char *)text, len);
	while (!w.nomem && next_event(&w, &e)) {
		yaml_event_type_t t = e.type;
		if (t == YAML_DOCUMENT_START_EVENT) {
			if (++documents > 1) {
				problems_add(pr, "%s:%d: only one YAML document is allowed", path,
				             ev_line(&e));
				yaml_event_delete(&e);
				break;
			}
			walk_document(&w);
		}
		yaml_event_delete(&e);
		if (t == YAML_STREAM_END_EVENT)
			break;
	}
	yaml_parser_delete(&w.parser);
	return !w.nomem;
}

int yamlconf_read(const char *path, struct props *out, struct problems *pr)
{
	char *text;
	size_t len;
	int rc = props_read_text(path, &text, &len, pr);
	if (rc != 0)
		return rc;
	bool ok = yamlconf_parse(path, text, len, out, pr);
	free(text);
	return ok ? 0 : -ENOMEM;
}
