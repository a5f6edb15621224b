/* Fuzz target: arbitrary bytes as a notify v1 stream.
 *
 * The bytes go through the line framer twice, in one feed and in pieces
 * sized by the input, and both must give the same lines. Every line is
 * decoded; every decoded event must re-encode to exactly that line. The
 * whole input is also tried as one line and as a hello. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/line_framer.h"
#include "proto/notify_v1.h"

struct run {
	size_t lines;
	size_t overlong;
	size_t decoded;
	uint64_t hash; /* FNV-1a over each event's kind, length and bytes */
};

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		*h ^= b[i];
		*h *= 1099511628211ull;
	}
}

/* A decoded event must be exactly the line it came from. */
static void check_round_trip(const char *line, size_t len, const struct notify_v1_event *ev)
{
	char out[NOTIFY_V1_MAX_LINE];
	int n = notify_v1_encode(ev, out, sizeof(out));

	if (n < 0 || (size_t)n != len + 1 || memcmp(out, line, len) != 0 || out[len] != '\n')
		abort();
}

static int on_line(void *ctx, const char *line, size_t len, bool overlong)
{
	struct run *r = ctx;
	struct notify_v1_event ev;
	uint8_t tag = overlong;

	if (overlong) {
		if (len != 0)
			abort();
		r->overlong++;
	} else {
		if (len > LINE_FRAMER_MAX || line[len] != '\0' || memchr(line, '\n', len))
			abort();
		r->lines++;
	}
	hash_bytes(&r->hash, &tag, 1);
	hash_bytes(&r->hash, &len, sizeof(len));
	hash_bytes(&r->hash, line, len);

	if (!overlong && notify_v1_decode(line, len, &ev) == NOTIFY_V1_OK) {
		r->decoded++;
		check_round_trip(line, len, &ev);
	}
	return 0;
}

static void check_hello(const uint8_t *data, size_t size)
{
	enum notify_v1_hello_result got = notify_v1_match_hello(data, size);
	size_t m = size < NOTIFY_V1_HELLO_LEN ? size : NOTIFY_V1_HELLO_LEN;
	bool prefix = m == 0 || memcmp(data, NOTIFY_V1_HELLO, m) == 0;
	enum notify_v1_hello_result want;

	if (!prefix)
		want = NOTIFY_V1_HELLO_NO;
	else
		want = size >= NOTIFY_V1_HELLO_LEN ? NOTIFY_V1_HELLO_MATCH : NOTIFY_V1_HELLO_PARTIAL;
	if (got != want)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line_framer f;
	struct run whole = { 0, 0, 0, 14695981039346656037ull };
	struct run pieces = whole;
	struct notify_v1_event ev;
	size_t step;

	check_hello(data, size);

	/* The input as one already-framed line. */
	if (notify_v1_decode((const char *)data, size, &ev) == NOTIFY_V1_OK)
		check_round_trip((const char *)data, size, &ev);

	line_framer_init(&f);
	if (line_framer_feed(&f, data, size, on_line, &whole) != 0)
		abort();
	if (line_framer_pending(&f) > LINE_FRAMER_MAX + 1)
		abort();

	/* Piece sizes from the first byte, 1..16, so byte-by-byte feeding is
	 * among the splits tried. */
	step = size ? (size_t)(data[0] % 16) + 1 : 1;
	line_framer_init(&f);
	for (size_t off = 0; off < size; off += step) {
		size_t k = size - off < step ? size - off : step;

		if (line_framer_feed(&f, data + off, k, on_line, &pieces) != 0)
			abort();
	}
	if (whole.lines != pieces.lines || whole.overlong != pieces.overlong ||
	    whole.decoded != pieces.decoded || whole.hash != pieces.hash)
		abort();
	return 0;
}
