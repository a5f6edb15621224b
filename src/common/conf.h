/* Configuration files: "key = value" lines, parsed into a list of entries.
 *
 * The format (documented in the man pages and README):
 * - one setting per line: KEY = VALUE, spaces around either side ignored;
 * - KEY is a long option's name without its dashes ("port", "notify-port"):
 *   lowercase letters, digits and '-';
 * - a line whose first non-blank character is '#' is a comment, as is a
 *   blank line; '#' inside a value is part of the value (tokens and serial
 *   numbers may contain one), so there are no trailing comments;
 * - a key may repeat; every occurrence is kept, in order (repeatable
 *   options such as "allow" become repeated keys);
 * - lines end in "\n" (a "\r" before it is dropped); at most CONF_MAX_LINE
 *   bytes each; no NUL bytes, no sections, no quoting, no continuation.
 *
 * This layer knows no keys: it only splits lines. Whether a key exists and
 * whether its value is good is for the caller (common/opts.h), which has
 * each entry's line number to say where a mistake is.
 *
 * Why no library: Debian has libinih (checked with apt-cache search), but
 * its Debian build gives the handler no line number, joins indented lines
 * onto the previous value and silently cuts lines at a compile-time length;
 * and on macOS it would be one more dependency for fewer than 150 lines
 * that we can test here. */
#ifndef USBIP_NOTIFY_COMMON_CONF_H
#define USBIP_NOTIFY_COMMON_CONF_H

#include <stddef.h>

#define CONF_MAX_LINE 1024  /* bytes per line, without the line end */
#define CONF_MAX_KEY 64
#define CONF_MAX_ENTRIES 1024
#define CONF_MAX_FILE (256u * 1024u)
#define CONF_ERR_SIZE 512   /* room for conf_*() error messages */

struct conf_entry {
	char *key;     /* NUL-terminated, points into conf.buf */
	char *value;   /* NUL-terminated, never empty, points into conf.buf */
	unsigned line; /* 1-based */
};

struct conf {
	char *path;                 /* as given, for messages (malloc'ed) */
	struct conf_entry *entries; /* malloc'ed, n of them, in file order */
	size_t n;
	char *buf;                  /* the text, cut in place */
};

/* Parses text (len bytes, need not be NUL-terminated) named path in
 * messages. On success fills *out (free it with conf_free) and returns 0.
 * On a syntax error returns -EINVAL and writes "PATH:LINE: what" into err
 * (errsz bytes); -ENOMEM or -EFBIG (too many entries, too big) likewise. */
int conf_parse(const char *path, const char *text, size_t len, struct conf *out,
	       char *err, size_t errsz);

/* Reads the file at path (at most CONF_MAX_FILE bytes) and parses it.
 * -ENOENT etc. from open, with "PATH: reason" in err. */
int conf_load(const char *path, struct conf *out, char *err, size_t errsz);

void conf_free(struct conf *c);

#endif
