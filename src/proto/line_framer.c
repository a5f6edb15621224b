/* Newline framing with a fixed buffer. */
#include "proto/line_framer.h"

void line_framer_init(struct line_framer *f)
{
	f->len = 0;
	f->skipping = false;
	f->buf[0] = '\0';
}

/* Hands out the buffered line, dropping one trailing '\r'. */
static int deliver(struct line_framer *f, line_framer_cb cb, void *ctx)
{
	size_t len = f->len;

	if (len > 0 && f->buf[len - 1] == '\r')
		len--;
	f->buf[len] = '\0';
	f->len = 0;
	return cb(ctx, f->buf, len, false);
}

int line_framer_feed(struct line_framer *f, const uint8_t *p, size_t n,
		     line_framer_cb cb, void *ctx)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		char c = (char)p[i];

		if (f->skipping) {
			if (c == '\n')
				f->skipping = false;
			continue;
		}
		if (c == '\n') {
			rc = deliver(f, cb, ctx);
			if (rc)
				return rc;
			continue;
		}
		/* A line of exactly LINE_FRAMER_MAX bytes may still end in
		 * "\r\n": the spare byte holds the '\r' until the '\n' shows
		 * whether it belongs to the terminator. */
		if (f->len < LINE_FRAMER_MAX ||
		    (f->len == LINE_FRAMER_MAX && c == '\r')) {
			f->buf[f->len++] = c;
			continue;
		}
		/* Report as soon as the bound is crossed, not at the newline,
		 * so a peer that never sends one is noticed at once. */
		f->len = 0;
		f->skipping = true;
		rc = cb(ctx, "", 0, true);
		if (rc)
			return rc;
	}
	return 0;
}

size_t line_framer_pending(const struct line_framer *f)
{
	return f->len;
}
