/* Fuzz target: arbitrary bytes as notify v2 lines.
 *
 * The whole input is tried as one line, and the input framed by newline
 * gives more lines. Whatever decodes must encode again (the decoder only
 * lets through what the encoder can write), and that line must decode to
 * the same message and re-encode to the same bytes. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/line_framer.h"
#include "proto/notify_v2.h"

static void check_line(const char *line, size_t len)
{
	struct notify_v2_msg m, back;
	char out[NOTIFY_V2_MAX_LINE], again[NOTIFY_V2_MAX_LINE];

	if (notify_v2_decode(line, len, &m) != NOTIFY_V2_OK)
		return;
	int n = notify_v2_encode(&m, out, sizeof(out));
	if (n <= 0 || n > NOTIFY_V2_MAX_LINE || out[n - 1] != '\n' ||
	    memchr(out, '\n', (size_t)n - 1))
		abort();
	if (notify_v2_decode(out, (size_t)n - 1, &back) != NOTIFY_V2_OK)
		abort();
	if (memcmp(&m, &back, sizeof(m)) != 0)
		abort();
	int n2 = notify_v2_encode(&back, again, sizeof(again));
	if (n2 != n || memcmp(out, again, (size_t)n) != 0)
		abort();
	/* A strictly shorter buffer is refused, never overrun. */
	if (notify_v2_encode(&m, again, (size_t)n - 1) != NOTIFY_V2_E_NOSPACE)
		abort();
}

static int on_line(void *ctx, const char *line, size_t len, bool overlong)
{
	(void)ctx;
	if (!overlong)
		check_line(line, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line_framer f;

	check_line((const char *)data, size);
	line_framer_init(&f);
	if (line_framer_feed(&f, data, size, on_line, NULL) != 0)
		abort();
	return 0;
}
