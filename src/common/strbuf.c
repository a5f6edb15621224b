/* Growable text buffer and JSON writer: see strbuf.h. */
#include "common/strbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb)
{
	memset(sb, 0, sizeof(*sb));
}

void sb_free(struct strbuf *sb)
{
	free(sb->data);
	sb_init(sb);
}

static bool reserve(struct strbuf *sb, size_t extra)
{
	if (sb->failed)
		return false;
	if (sb->len + extra + 1 <= sb->cap)
		return true;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + extra + 1) {
		if (cap > SIZE_MAX / 2) {
			sb->failed = true;
			return false;
		}
		cap *= 2;
	}
	char *d = realloc(sb->data, cap);
	if (!d) {
		sb->failed = true;
		return false;
	}
	sb->data = d;
	sb->cap = cap;
	return true;
}

void sb_append(struct strbuf *sb, const char *s, size_t n)
{
	if (!reserve(sb, n))
		return;
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->failed = true;
		return;
	}
	if (!reserve(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

const char *sb_str(const struct strbuf *sb)
{
	return sb->data && !sb->failed ? sb->data : "";
}

void json_init(struct json_writer *w, struct strbuf *sb)
{
	memset(w, 0, sizeof(*w));
	w->sb = sb;
}

/* Before any value: a comma unless first in its container or after a key. */
static void value_prefix(struct json_writer *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->need_comma[w->depth])
		sb_append(w->sb, ",", 1);
	w->need_comma[w->depth] = true;
}

static void open_container(struct json_writer *w, char c)
{
	value_prefix(w);
	sb_append(w->sb, &c, 1);
	if (w->depth < JSON_MAX_DEPTH)
		w->depth++;
	else
		w->sb->failed = true;
	w->need_comma[w->depth] = false;
}

static void close_container(struct json_writer *w, char c)
{
	sb_append(w->sb, &c, 1);
	if (w->depth > 0)
		w->depth--;
}

void json_obj_begin(struct json_writer *w)
{
	open_container(w, '{');
}

void json_obj_end(struct json_writer *w)
{
	close_container(w, '}');
}

void json_arr_begin(struct json_writer *w)
{
	open_container(w, '[');
}

void json_arr_end(struct json_writer *w)
{
	close_container(w, ']');
}

static void put_string(struct strbuf *sb, const char *s)
{
	sb_append(sb, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char esc[2] = { '\\', (char)*p };
			sb_append(sb, esc, 2);
		} else if (*p < 0x20) {
			sb_printf(sb, "\\u%04x", *p);
		} else {
			sb_append(sb, (const char *)p, 1);
		}
	}
	sb_append(sb, "\"", 1);
}

void json_key(struct json_writer *w, const char *key)
{
	value_prefix(w);
	put_string(w->sb, key);
	sb_append(w->sb, ":", 1);
	w->after_key = true;
}

void json_str(struct json_writer *w, const char *s)
{
	if (!s) {
		json_null(w);
		return;
	}
	value_prefix(w);
	put_string(w->sb, s);
}

void json_int(struct json_writer *w, int64_t v)
{
	value_prefix(w);
	sb_printf(w->sb, "%" PRId64, v);
}

void json_bool(struct json_writer *w, bool v)
{
	value_prefix(w);
	sb_append(w->sb, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json_writer *w)
{
	value_prefix(w);
	sb_append(w->sb, "null", 4);
}
