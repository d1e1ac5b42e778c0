/*
 * test_props.c - the .properties and YAML readers: syntax, line numbers,
 * and graceful refusal of files that are not configuration at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "elapsed.h"
#include "props.h"
#include "yamlconf.h"

/* has_problem: some problem contains every one of the given fragments. */
static bool has_problem(const struct problems *pr, const char *a, const char *b)
{
	for (size_t i = 0; i < pr->n; i++) {
		if (strstr(pr->msgs[i], a) != NULL && (b == NULL || strstr(pr->msgs[i], b) != NULL))
			return true;
	}
	return false;
}

/* dump prints the problems, so a failing test says why. */
static void dump(const struct problems *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		print_message("problem: %s\n", pr->msgs[i]);
}

/* value_of: the value of key in p, NULL when absent. */
static const char *value_of(const struct props *p, const char *key, int *line)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->v[i].key, key) == 0) {
			if (line)
				*line = p->v[i].line;
			return p->v[i].value;
		}
	}
	return NULL;
}

/* assert_entry: key is in p with the value want, read from line. */
static void assert_entry(const struct props *p, const char *key, const char *want, int line)
{
	int got_line = 0;
	const char *got = value_of(p, key, &got_line);
	if (got == NULL)
		fail_msg("%s: missing", key);
	assert_string_equal(got, want);
	assert_int_equal(got_line, line);
}

/* parse_text runs the .properties parser over a string. */
static void parse_text(const char *text, size_t len, struct props *p, struct problems *pr)
{
	assert_true(props_parse("t.properties", text, len, p, pr));
}

/* parse_clean parses text that must give exactly n entries and no problem. */
static void parse_clean(const char *text, size_t len, struct props *p, size_t n)
{
	struct problems pr = {0};
	parse_text(text, len, p, &pr);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_int_equal(p->n, n);
	problems_free(&pr);
}

/* Keys, values, comments, blanks and whitespace around '='. */
static void test_props_basic(void **state)
{
	const char text[] = "# comment\n"
	                    "! also a comment\n"
	                    "\n"
	                    "   \t\n"
	                    "db.user=efm\n"
	                    "  db.port \t=  5432  \n"
	                    "empty=\n"
	                    "pingServerCommand=/bin/ping -q -c3 -w5\n"
	                    "url=smtp://x:25/a=b\n";
	struct props p = {0};

	parse_clean(text, sizeof(text) - 1, &p, 5);
	assert_entry(&p, "db.user", "efm", 5);
	assert_entry(&p, "db.port", "5432", 6);
	assert_string_equal(value_of(&p, "empty", NULL), "");
	assert_string_equal(value_of(&p, "pingServerCommand", NULL), "/bin/ping -q -c3 -w5");
	/* Only the first '=' separates. */
	assert_string_equal(value_of(&p, "url", NULL), "smtp://x:25/a=b");
	props_free(&p);
}

/*
 * Every line end is one: LF, CRLF and a CR alone (old Mac files), mixed; a
 * UTF-8 byte order mark is skipped.
 */
static void test_props_line_ends(void **state)
{
	const char crlf[] = "\xef\xbb\xbf"
	                    "db.user=efm\r\n"
	                    "# c\r\n"
	                    "db.database = postgres \r\n";
	const char cr[] = "db.user=efm\r"
	                  "# c\r"
	                  "db.database = postgres \r\r"
	                  "db.port=5432\r\n"
	                  "local.period=5";
	struct props p = {0};

	parse_clean(crlf, sizeof(crlf) - 1, &p, 2);
	assert_entry(&p, "db.user", "efm", 1);
	assert_entry(&p, "db.database", "postgres", 3);
	props_free(&p);

	parse_clean(cr, sizeof(cr) - 1, &p, 4);
	assert_entry(&p, "db.user", "efm", 1);
	assert_entry(&p, "db.database", "postgres", 3);
	assert_entry(&p, "db.port", "5432", 5);
	assert_entry(&p, "local.period", "5", 6);
	props_free(&p);
}

/* A line without '=' is reported with file, line and key, and skipped. */
static void test_props_missing_equals(void **state)
{
	const char text[] = "db.user=efm\ndb.port 5432\ndb.database=x\n";
	struct props p = {0};
	struct problems pr = {0};

	parse_text(text, sizeof(text) - 1, &p, &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "t.properties:2: db.port: missing '='", NULL));
	assert_int_equal(p.n, 2);
	assert_null(value_of(&p, "db.port", NULL));
	props_free(&p);
	problems_free(&pr);
}

/* Quoted values are refused with the guide's reason, and stored unquoted. */
static void test_props_quoted(void **state)
{
	const char text[] = "bind.address=\"192.168.2.54:7800\"\ndb.user='efm'\nx=\"half\n";
	struct props p = {0};
	struct problems pr = {0};

	parse_text(text, sizeof(text) - 1, &p, &pr);
	assert_int_equal(pr.n, 2);
	assert_true(has_problem(&pr, "t.properties:1: bind.address: values must not be quoted",
	                        "without the quotes"));
	assert_true(has_problem(&pr, "t.properties:2: db.user: values must not be quoted", NULL));
	assert_string_equal(value_of(&p, "bind.address", NULL), "192.168.2.54:7800");
	assert_string_equal(value_of(&p, "x", NULL), "\"half");
	props_free(&p);
	problems_free(&pr);
}

/* Bad keys, a missing key and continuation lines are reported. */
static void test_props_bad_keys(void **state)
{
	const char text[] = "db user=x\n=value\nscript.fence=/a/b\\\nok=1\n";
	struct props p = {0};
	struct problems pr = {0};

	parse_text(text, sizeof(text) - 1, &p, &pr);
	assert_int_equal(pr.n, 3);
	assert_true(has_problem(&pr, ":1: db user: not a valid key", NULL));
	assert_true(has_problem(&pr, ":2: missing key", NULL));
	assert_true(has_problem(&pr, ":3: script.fence: ends in '\\'", NULL));
	assert_int_equal(p.n, 1);
	props_free(&p);
	problems_free(&pr);
}

/* A very long line is reported and the lines after it still count. */
static void test_props_long_line(void **state)
{
	size_t n = PROPS_MAX_LINE + 100;
	char *text = malloc(n + 64);
	struct props p = {0};
	struct problems pr = {0};

	assert_non_null(text);
	memcpy(text, "a=", 2);
	memset(text + 2, 'x', n);
	int tail = snprintf(text + 2 + n, 62, "\nb=2\n");
	parse_text(text, 2 + n + (size_t)tail, &p, &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "t.properties:1: line is", "the limit is 4096"));
	assert_string_equal(value_of(&p, "b", NULL), "2");
	free(text);
	props_free(&p);
	problems_free(&pr);
}

/* A file of nonsense: every bad line counts, only the first problems are kept. */
static void test_props_too_many(void **state)
{
	char text[4096];
	size_t used = 0;
	struct props p = {0};
	struct problems pr = {0};
	char more[64];

	for (int i = 0; i < 200; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "junk%d\n", i % 10);
	used += (size_t)snprintf(text + used, sizeof(text) - used, "last=1\n");
	parse_text(text, used, &p, &pr);
	assert_int_equal(pr.n, PROBLEMS_MAX_KEPT);
	assert_int_equal(problems_total(&pr), 200);
	assert_true(has_problem(&pr, "t.properties:1: junk0: missing '='", NULL));
	assert_true(problems_more(&pr, more, sizeof(more)));
	assert_string_equal(more, "... and 150 more problems");
	/* The reader went on to the end of the file. */
	assert_string_equal(value_of(&p, "last", NULL), "1");
	props_free(&p);
	problems_free(&pr);
}

/* write_tmp writes len bytes to a fresh temporary file; returns its path in buf. */
static void write_tmp(char *buf, size_t buflen, const char *data, size_t len)
{
	snprintf(buf, buflen, "/tmp/efm-test-props-XXXXXX");
	int fd = mkstemp(buf);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Files with NUL bytes, invalid UTF-8 or control characters are refused. */
static void test_read_binary(void **state)
{
	static const struct {
		const char *data;
		size_t len;
		const char *want;
	} cases[] = {
	    {"a=1\nb=\0x\n", 9, ":2: contains a NUL byte"},
	    {"a=1\rb=2\r\nc=\0x\n", 14, ":3: contains a NUL byte"},
	    {"a=1\n\xff\xfe\x80garbage", 13, ":2: is not valid UTF-8"},
	    {"a=\x01\x02\n", 5, ":1: contains control character 0x01"},
	    {"a=\xc0\xaf\n", 5, "not valid UTF-8"}, /* overlong encoding of '/' */
	};
	char path[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct props p = {0};
		struct problems pr = {0};
		write_tmp(path, sizeof(path), cases[i].data, cases[i].len);
		assert_int_equal(props_read(path, &p, &pr), -EINVAL);
		if (pr.n != 1)
			dump(&pr);
		assert_int_equal(pr.n, 1);
		assert_true(has_problem(&pr, path, cases[i].want));
		assert_int_equal(p.n, 0);
		unlink(path);
		problems_free(&pr);
	}
}

/* A directory, a FIFO and a missing file are handled without hanging or crashing. */
static void test_read_not_a_file(void **state)
{
	char dir[] = "/tmp/efm-test-dir-XXXXXX", fifo[128];
	struct props p = {0};
	struct problems pr = {0};

	assert_non_null(mkdtemp(dir));
	assert_int_equal(props_read(dir, &p, &pr), -EISDIR);
	assert_true(has_problem(&pr, dir, "is a directory"));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_true(props_read(fifo, &p, &pr) < 0);
	assert_true(has_problem(&pr, fifo, "not a regular file"));
	snprintf(fifo, sizeof(fifo), "%s/none", dir);
	size_t before = pr.n;
	assert_int_equal(props_read(fifo, &p, &pr), -ENOENT);
	assert_int_equal(pr.n, before);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	unlink(fifo);
	rmdir(dir);
	problems_free(&pr);
}

/* A file over the size limit is refused before it is read. */
static void test_read_too_big(void **state)
{
	char path[64];
	struct props p = {0};
	struct problems pr = {0};

	write_tmp(path, sizeof(path), "a=1\n", 4);
	assert_int_equal(truncate(path, PROPS_MAX_FILE + 1), 0);
	assert_int_equal(props_read(path, &p, &pr), -EFBIG);
	assert_true(has_problem(&pr, path, "at most"));
	unlink(path);
	problems_free(&pr);
}

/* yaml_text runs the YAML reader over a string. */
static void yaml_text(const char *text, struct props *p, struct problems *pr)
{
	assert_true(yamlconf_parse("t.yaml", text, strlen(text), p, pr));
}

/* Nested mappings become dotted keys; lists join; nulls are empty. */
static void test_yaml_flatten(void **state)
{
	const char *text = "# comment\n"
	                   "db:\n"
	                   "  user: efm\n"
	                   "  password.encrypted: \"\"\n"
	                   "  port: 5432\n"
	                   "bind.address: '10.0.0.1:7800'\n"
	                   "user.email:\n"
	                   "  - a@example.com\n"
	                   "  - b@example.com\n"
	                   "virtualIp: ~\n"
	                   "local: {period: 5, timeout: 30}\n";
	struct props p = {0};
	struct problems pr = {0};
	int line;

	yaml_text(text, &p, &pr);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_string_equal(value_of(&p, "db.user", &line), "efm");
	assert_int_equal(line, 3);
	assert_string_equal(value_of(&p, "db.password.encrypted", NULL), "");
	assert_string_equal(value_of(&p, "db.port", NULL), "5432");
	assert_string_equal(value_of(&p, "bind.address", &line), "10.0.0.1:7800");
	assert_int_equal(line, 6);
	assert_string_equal(value_of(&p, "user.email", NULL), "a@example.com, b@example.com");
	assert_string_equal(value_of(&p, "virtualIp", NULL), "");
	assert_string_equal(value_of(&p, "local.period", NULL), "5");
	assert_string_equal(value_of(&p, "local.timeout", NULL), "30");
	props_free(&p);
	problems_free(&pr);
}

/* An empty YAML file or document is an empty configuration. */
static void test_yaml_empty(void **state)
{
	struct props p = {0};
	struct problems pr = {0};

	yaml_text("", &p, &pr);
	yaml_text("---\n", &p, &pr);
	yaml_text("# nothing\n", &p, &pr);
	assert_int_equal(pr.n, 0);
	assert_int_equal(p.n, 0);
	problems_free(&pr);
}

/* Syntax errors, aliases, extra documents and odd shapes are reported with lines. */
static void test_yaml_refusals(void **state)
{
	static const struct {
		const char *text;
		const char *want1, *want2;
	} cases[] = {
	    {"a: 1\nb: [unclosed\n", "YAML syntax error", NULL},
	    {"a: &x 1\nb: *x\n", "t.yaml:2: b: aliases", NULL},
	    {"a: 1\n---\nb: 2\n", "t.yaml:2: only one YAML document", NULL},
	    {"- a\n- b\n", "t.yaml:1: the document must be a mapping", NULL},
	    {"just text\n", "must be a mapping", NULL},
	    {"? [a, b]\n: 1\n", "keys must be plain names", NULL},
	    {"a:\n  - x\n  - {y: 1}\n", "t.yaml:3: a: a list may hold only plain values", NULL},
	    {"a: |\n  one\n  two\n", "t.yaml:1: a: value spans several lines", NULL},
	    {"a: {b: {c: {d: {e: {f: {g: {h: {i: 1}}}}}}}}\n",
	     "t.yaml:1: a.b.c.d.e.f.g.h: nested more", NULL},
	    {"a:\n  - [1, [2, [3, [4, [5, [6, [7]]]]]]]\n", "t.yaml:2: a: nested more than 8",
	     NULL},
	    {"\tbad: tab\n", "YAML syntax error", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct props p = {0};
		struct problems pr = {0};
		yaml_text(cases[i].text, &p, &pr);
		if (!has_problem(&pr, cases[i].want1, cases[i].want2)) {
			print_message("case %zu: %s\n", i, cases[i].text);
			dump(&pr);
		}
		assert_true(has_problem(&pr, cases[i].want1, cases[i].want2));
		props_free(&p);
		problems_free(&pr);
	}
}

/*
 * Deep nesting is refused where it starts, without reading the rest: libyaml
 * spends time proportional to the depth on every token, so 80,000 nested
 * lists took 31 s when the reader skipped over them.
 */
static void test_yaml_deep(void **state)
{
	enum { DEPTH = 80000 };
	char *text = malloc(2 * DEPTH + 32);
	assert_non_null(text);
	size_t n = (size_t)snprintf(text, 16, "a: 1\nx: ");
	memset(text + n, '[', DEPTH);
	memset(text + n + DEPTH, ']', DEPTH);
	n += 2 * DEPTH;
	n += (size_t)snprintf(text + n, 16, "\ny: 2\n");

	struct props p = {0};
	struct problems pr = {0};
	struct timespec t0 = elapsed_start();
	assert_true(yamlconf_parse("t.yaml", text, n, &p, &pr));
	double took = elapsed_seconds(t0);
	dump(&pr);
	assert_true(has_problem(&pr, "t.yaml:2: x: nested more than 8 levels deep", NULL));
	/* Reading stopped there. */
	assert_string_equal(value_of(&p, "a", NULL), "1");
	assert_null(value_of(&p, "y", NULL));
	if (took > 1.0)
		fail_msg("80,000 nested lists took %.1f s", took);
	props_free(&p);
	problems_free(&pr);

	/* The same for mappings, in block style: the line is where the limit is passed. */
	size_t used = 0;
	for (int i = 0; i < 20; i++)
		used += (size_t)snprintf(text + used, 2 * DEPTH - used, "%*sk%d:\n", i, "", i);
	yaml_text(text, &p, &pr);
	dump(&pr);
	assert_int_equal(problems_total(&pr), 1);
	assert_true(
	    has_problem(&pr, "t.yaml:9: k0.k1.k2.k3.k4.k5.k6.k7: nested more than 8", NULL));
	props_free(&p);
	problems_free(&pr);
	free(text);
}

/* A YAML file goes through the same binary checks as a .properties file. */
static void test_yaml_binary(void **state)
{
	char path[64];
	struct props p = {0};
	struct problems pr = {0};

	write_tmp(path, sizeof(path), "a: 1\n\0\0\0", 8);
	assert_int_equal(yamlconf_read(path, &p, &pr), -EINVAL);
	assert_true(has_problem(&pr, path, "NUL byte"));
	unlink(path);
	problems_free(&pr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_props_basic),          cmocka_unit_test(test_props_line_ends),
	    cmocka_unit_test(test_props_missing_equals), cmocka_unit_test(test_props_quoted),
	    cmocka_unit_test(test_props_bad_keys),       cmocka_unit_test(test_props_long_line),
	    cmocka_unit_test(test_props_too_many),       cmocka_unit_test(test_read_binary),
	    cmocka_unit_test(test_read_not_a_file),      cmocka_unit_test(test_read_too_big),
	    cmocka_unit_test(test_yaml_flatten),         cmocka_unit_test(test_yaml_empty),
	    cmocka_unit_test(test_yaml_refusals),        cmocka_unit_test(test_yaml_deep),
	    cmocka_unit_test(test_yaml_binary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
