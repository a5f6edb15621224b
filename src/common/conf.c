/* Configuration file lines into entries: see conf.h for the format. */
#include "common/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Trims blanks on both sides of [*s, *e). */
static void trim(char **s, char **e)
{
	while (*s < *e && is_blank(**s))
		(*s)++;
	while (*e > *s && is_blank((*e)[-1]))
		(*e)--;
}

/* Checks one line [s, e) and, if it is a setting, cuts it in place into a
 * key and a value. Returns 0 (entry filled, or *is_setting false for a
 * blank/comment line) or -EINVAL with a message. */
static int parse_line(char *s, char *e, struct conf_entry *ent, bool *is_setting,
		      char *why, size_t whysz)
{
	*is_setting = false;
	trim(&s, &e);
	if (s == e || *s == '#')
		return 0;
	char *eq = memchr(s, '=', (size_t)(e - s));
	if (!eq) {
		snprintf(why, whysz, "expected KEY = VALUE");
		return -EINVAL;
	}
	char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
	trim(&ks, &ke);
	trim(&vs, &ve);
	if (ks == ke) {
		snprintf(why, whysz, "no key before '='");
		return -EINVAL;
	}
	if (ke - ks >= CONF_MAX_KEY) {
		snprintf(why, whysz, "key longer than %d bytes", CONF_MAX_KEY - 1);
		return -EINVAL;
	}
	for (char *p = ks; p < ke; p++) {
		if (!is_key_char(*p)) {
			snprintf(why, whysz, "bad key \"%.*s\" (lowercase letters, digits, '-')",
				 (int)(ke - ks), ks);
			return -EINVAL;
		}
	}
	if (vs == ve) {
		snprintf(why, whysz, "%.*s: no value after '='", (int)(ke - ks), ks);
		return -EINVAL;
	}
	*ke = '\0';
	*ve = '\0';
	ent->key = ks;
	ent->value = vs;
	*is_setting = true;
	return 0;
}

int conf_parse(const char *path, const char *text, size_t len, struct conf *out,
	       char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	if (len > CONF_MAX_FILE) {
		snprintf(err, errsz, "%s: larger than %u bytes", path, CONF_MAX_FILE);
		return -EFBIG;
	}
	out->path = strdup(path);
	out->buf = malloc(len + 1);
	if (!out->path || !out->buf) {
		snprintf(err, errsz, "%s: out of memory", path);
		conf_free(out);
		return -ENOMEM;
	}
	memcpy(out->buf, text, len);
	out->buf[len] = '\0';

	size_t cap = 0;
	unsigned line = 0;
	char *p = out->buf, *end = out->buf + len;
	while (p < end) {
		line++;
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		char why[CONF_ERR_SIZE / 2];
		int rc = 0;
		if (memchr(p, '\0', (size_t)(le - p))) {
			snprintf(why, sizeof(why), "NUL byte in line");
			rc = -EINVAL;
		} else if (le > p && le[-1] == '\r') {
			le[-1] = '\0';
			le--;
		}
		if (rc == 0 && le - p > CONF_MAX_LINE) {
			snprintf(why, sizeof(why), "line longer than %d bytes", CONF_MAX_LINE);
			rc = -EINVAL;
		}
		struct conf_entry ent = { .line = line };
		bool is_setting = false;
		if (rc == 0)
			rc = parse_line(p, le, &ent, &is_setting, why, sizeof(why));
		if (rc == 0 && is_setting && out->n == CONF_MAX_ENTRIES) {
			snprintf(why, sizeof(why), "more than %d settings", CONF_MAX_ENTRIES);
			rc = -EFBIG;
		}
		if (rc == 0 && is_setting && out->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct conf_entry *ne = realloc(out->entries, ncap * sizeof(*ne));
			if (!ne) {
				snprintf(why, sizeof(why), "out of memory");
				rc = -ENOMEM;
			} else {
				out->entries = ne;
				cap = ncap;
			}
		}
		if (rc) {
			snprintf(err, errsz, "%s:%u: %s", path, line, why);
			conf_free(out);
			return rc;
		}
		if (is_setting)
			out->entries[out->n++] = ent;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int conf_load(const char *path, struct conf *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errsz, "%s: %s", path, strerror(e));
		return -e;
	}
	size_t cap = CONF_MAX_FILE + 1, len = 0;
	char *text = malloc(cap);
	if (!text) {
		close(fd);
		snprintf(err, errsz, "%s: out of memory", path);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			snprintf(err, errsz, "%s: %s", path, strerror(e));
			free(text);
			close(fd);
			return -e;
		}
		if (n == 0 || len + (size_t)n == cap) {
			len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	int rc = conf_parse(path, text, len, out, err, errsz);
	free(text);
	return rc;
}

void conf_free(struct conf *c)
{
	free(c->path);
	free(c->entries);
	free(c->buf);
	memset(c, 0, sizeof(*c));
}
