/*
 * props.c - the .properties reader and the checks every configuration file
 * goes through before any parser sees it.
 */
#include "props.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* utf8_seq_len returns the length of the valid UTF-8 sequence at s, 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not text. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* check_text records the first reason text is not a text file; false then. */
static bool check_text(const char *path, const char *text, size_t len, struct problems *pr)
{
	const unsigned char *s = (const unsigned char *)text;
	int line = 1;

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c == '\0') {
			problems_add(pr, "%s:%d: contains a NUL byte; is this a text file?", path,
			             line);
			return false;
		}
		size_t eol = props_eol(text + i, len - i);
		if (eol > 0) {
			line++;
			i += eol;
			continue;
		}
		if (c < 0x20 && c != '\t' && c != '\f') {
			problems_add(pr,
			             "%s:%d: contains control character 0x%02x; is this a "
			             "text file?",
			             path, line, c);
			return false;
		}
		size_t n = utf8_seq_len(s + i, len - i);
		if (n == 0) {
			problems_add(pr, "%s:%d: is not valid UTF-8 text", path, line);
			return false;
		}
		i += n;
	}
	return true;
}

int props_read_text(const char *path, char **out, size_t *len, struct problems *pr)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, err;

	*out = NULL;
	*len = 0;
	/* O_NONBLOCK so that a FIFO put in place of the file cannot hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT)
			return -ENOENT;
		problems_add(pr, "%s: cannot open: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) != 0) {
		err = errno;
		problems_add(pr, "%s: cannot stat: %s", path, strerror(err));
		close(fd);
		return -err;
	}
	if (S_ISDIR(st.st_mode)) {
		problems_add(pr, "%s: is a directory, not a file", path);
		close(fd);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode)) {
		problems_add(pr, "%s: is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size > PROPS_MAX_FILE) {
		problems_add(pr, "%s: is %lld bytes; a configuration file is at most %d", path,
		             (long long)st.st_size, PROPS_MAX_FILE);
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	/* Read to EOF rather than trusting st_size: the file may be changing. */
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			problems_add(pr, "%s: cannot read: %s", path, strerror(err));
			free(buf);
			close(fd);
			return -err;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	if (!check_text(path, buf, got, pr)) {
		free(buf);
		return -EINVAL;
	}
	if (got >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
		memmove(buf, buf + 3, got - 3 + 1);
		got -= 3;
	}
	*out = buf;
	*len = got;
	return 0;
}

bool props_add(struct props *p, const char *key, const char *value, int line)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		struct props_entry *v = realloc(p->v, cap * sizeof(*v));
		if (v == NULL)
			return false;
		p->v = v;
		p->cap = cap;
	}
	char *k = strdup(key);
	char *val = strdup(value);
	if (k == NULL || val == NULL) {
		free(k);
		free(val);
		return false;
	}
	p->v[p->n++] = (struct props_entry){k, val, line};
	return true;
}

void props_free(struct props *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].key);
		free(p->v[i].value);
	}
	free(p->v);
	*p = (struct props){0};
}

/* is_space: the whitespace .properties files allow around keys and values. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\r';
}

/* key_ok: keys are made of the characters the option names use. */
static bool key_ok(const char *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

/* parse_line handles one line (without its line end); false only when memory runs out. */
static bool parse_line(const char *path, int lineno, char *s, size_t n, struct props *out,
                       struct problems *pr)
{
	while (n > 0 && is_space(s[n - 1]))
		n--;
	s[n] = '\0';
	while (*s != '\0' && is_space(*s)) {
		s++;
		n--;
	}
	if (n == 0 || s[0] == '#' || s[0] == '!')
		return true;

	char *eq = strchr(s, '=');
	if (eq == NULL) {
		size_t w = strcspn(s, " \t\f:");
		problems_add(pr, "%s:%d: %.*s: missing '=' (write KEY=VALUE)", path, lineno,
		             (int)(w > 60 ? 60 : w), s);
		return true;
	}
	char *key = s, *kend = eq, *val = eq + 1;
	while (kend > key && is_space(kend[-1]))
		kend--;
	while (*val != '\0' && is_space(*val))
		val++;
	size_t klen = (size_t)(kend - key), vlen = strlen(val);
	if (klen == 0) {
		problems_add(pr, "%s:%d: missing key before '='", path, lineno);
		return true;
	}
	if (!key_ok(key, klen)) {
		problems_add(pr,
		             "%s:%d: %.*s: not a valid key (keys are letters, digits, '.', "
		             "'_' and '-')",
		             path, lineno, (int)(klen > 60 ? 60 : klen), key);
		return true;
	}
	*kend = '\0';
	if (vlen > 0 && val[vlen - 1] == '\\') {
		problems_add(pr,
		             "%s:%d: %s: ends in '\\'; continuation lines are not "
		             "supported, put the value on one line",
		             path, lineno, key);
		return true;
	}
	if (vlen >= 2 && (val[0] == '"' || val[0] == '\'') && val[vlen - 1] == val[0]) {
		/* Keep the unquoted value so that one mistake is reported once. */
		problems_add(pr,
		             "%s:%d: %s: values must not be quoted; write %s=%.*s without "
		             "the quotes",
		             path, lineno, key, key, (int)(vlen - 2 > 80 ? 80 : vlen - 2), val + 1);
		val[vlen - 1] = '\0';
		val++;
	}
	return props_add(out, key, val, lineno);
}

bool props_parse(const char *path, const char *text, size_t len, struct props *out,
                 struct problems *pr)
{
	char line[PROPS_MAX_LINE + 1];
	int lineno = 0;
	size_t i = 0;

	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len) {
		size_t n = 0;
		while (i + n < len && props_eol(text + i + n, len - i - n) == 0)
			n++;
		lineno++;
		if (n > PROPS_MAX_LINE) {
			problems_add(pr, "%s:%d: line is %zu bytes long; the limit is %d", path,
			             lineno, n, PROPS_MAX_LINE);
		} else {
			memcpy(line, text + i, n);
			line[n] = '\0';
			if (memchr(line, '\0', n) != NULL) {
				problems_add(pr, "%s:%d: contains a NUL byte", path, lineno);
			} else if (!parse_line(path, lineno, line, n, out, pr)) {
				return false;
			}
		}
		i += n + props_eol(text + i + n, len - i - n);
	}
	return true;
}

int props_read(const char *path, struct props *out, struct problems *pr)
{
	char *text;
	size_t len;
	int rc = props_read_text(path, &text, &len, pr);
	if (rc != 0)
		return rc;
	bool ok = props_parse(path, text, len, out, pr);
	free(text);
	return ok ? 0 : -ENOMEM;
}
