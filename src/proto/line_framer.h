/* Newline framing for text protocols.
 *
 * Bytes arrive in whatever pieces TCP delivers: several lines in one read, or
 * one line split across reads. The framer collects bytes and hands out each
 * complete line (without its '\n', and without a trailing '\r'). A line longer
 * than the framer's bound is reported once as overlong and skipped up to its
 * newline, so a hostile peer cannot grow memory. No allocation. */
#ifndef USBIP_NOTIFY_PROTO_LINE_FRAMER_H
#define USBIP_NOTIFY_PROTO_LINE_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest line accepted, '\n' excluded: the notify v2 bound
 * (NOTIFY_V2_MAX_LINE, 1024 bytes with its '\n'). */
#define LINE_FRAMER_MAX 1023

struct line_framer {
	char buf[LINE_FRAMER_MAX + 1]; /* +1 for the NUL handed to callbacks */
	size_t len;
	bool skipping; /* inside an overlong line, dropping bytes up to '\n' */
};

/* line is NUL-terminated and valid only during the call. overlong is true
 * (with len 0) for a line that was dropped for its length; it is reported
 * when the bound is crossed, before its '\n' arrives. A nonzero return
 * stops feeding and is returned by line_framer_feed; the rest of that feed
 * is dropped (the caller is expected to close). The callback must not feed
 * the same framer. A line of LINE_FRAMER_MAX bytes may end in "\r\n". */
typedef int (*line_framer_cb)(void *ctx, const char *line, size_t len, bool overlong);

void line_framer_init(struct line_framer *f);
int line_framer_feed(struct line_framer *f, const uint8_t *p, size_t n,
		     line_framer_cb cb, void *ctx);
/* Bytes of an unfinished line currently held. */
size_t line_framer_pending(const struct line_framer *f);

#endif
