/* A growable text buffer and a small JSON writer on top of it.
 *
 * Used for the list/status output (text or --json) and the control
 * socket's replies, which are built whole and then written at once.
 * Allocation failure is sticky: once a write fails, sb->failed is set,
 * later writes do nothing, and the caller checks it at the end. */
#ifndef USBIP_NOTIFY_COMMON_STRBUF_H
#define USBIP_NOTIFY_COMMON_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf {
	char *data; /* NUL-terminated when len > 0; malloc'ed */
	size_t len;
	size_t cap;
	bool failed;
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* data, or "" when nothing was written. */
const char *sb_str(const struct strbuf *sb);

/* JSON: the writer puts commas and colons itself. Nesting up to
 * JSON_MAX_DEPTH; keys only inside objects (json_key before each value). */
#define JSON_MAX_DEPTH 16

struct json_writer {
	struct strbuf *sb;
	int depth;
	bool need_comma[JSON_MAX_DEPTH + 1];
	bool after_key;
};

void json_init(struct json_writer *w, struct strbuf *sb);
void json_obj_begin(struct json_writer *w);
void json_obj_end(struct json_writer *w);
void json_arr_begin(struct json_writer *w);
void json_arr_end(struct json_writer *w);
void json_key(struct json_writer *w, const char *key);
/* Escapes quotes, backslashes and control characters; bytes >= 0x80 pass
 * through (the strings we print are UTF-8 or ASCII from USB descriptors).
 * NULL writes null. */
void json_str(struct json_writer *w, const char *s);
void json_int(struct json_writer *w, int64_t v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);

#endif
