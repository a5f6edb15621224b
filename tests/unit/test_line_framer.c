/* line_framer: newline framing over arbitrary read boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/line_framer.h"

#define MAX_EVENTS 16

/* What the callback saw, in order. */
struct seen {
	size_t count;
	char line[MAX_EVENTS][LINE_FRAMER_MAX + 2];
	size_t len[MAX_EVENTS];
	bool overlong[MAX_EVENTS];
	size_t stop_after; /* return nonzero after this many events; 0 never */
};

#define STOP_CODE 7

static int collect(void *ctx, const char *line, size_t len, bool overlong)
{
	struct seen *s = ctx;

	assert_true(s->count < MAX_EVENTS);
	assert_int_equal(line[len], '\0'); /* the promised terminator */
	if (overlong)
		assert_int_equal(len, 0);
	memcpy(s->line[s->count], line, len + 1);
	s->len[s->count] = len;
	s->overlong[s->count] = overlong;
	s->count++;
	return s->stop_after && s->count >= s->stop_after ? STOP_CODE : 0;
}

static int feed_str(struct line_framer *f, const char *str, struct seen *s)
{
	return line_framer_feed(f, (const uint8_t *)str, strlen(str), collect, s);
}

static void assert_line(const struct seen *s, size_t i, const char *want)
{
	assert_true(i < s->count);
	assert_false(s->overlong[i]);
	assert_int_equal(s->len[i], strlen(want));
	assert_memory_equal(s->line[i], want, strlen(want));
}

static void test_many_lines_one_feed(void **state)
{
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	assert_int_equal(feed_str(&f, "1-1;PLUGGED;\n2-1;UNPLUGGED;\n\nlast", &s), 0);
	assert_int_equal(s.count, 3);
	assert_line(&s, 0, "1-1;PLUGGED;");
	assert_line(&s, 1, "2-1;UNPLUGGED;");
	assert_line(&s, 2, "");
	assert_int_equal(line_framer_pending(&f), 4);
	assert_int_equal(feed_str(&f, "\n", &s), 0);
	assert_int_equal(s.count, 4);
	assert_line(&s, 3, "last");
	assert_int_equal(line_framer_pending(&f), 0);
}

/* Every split point of a two-line stream, fed one byte at a time too,
 * gives the same lines. */
static void test_split_anywhere(void **state)
{
	const char *stream = "3-4.1;PLUGGED;\r\n3-4.1;UNPLUGGED;\n";
	size_t n = strlen(stream);

	(void)state;
	for (size_t cut = 0; cut <= n; cut++) {
		struct line_framer f;
		struct seen s = { 0 };

		line_framer_init(&f);
		assert_int_equal(line_framer_feed(&f, (const uint8_t *)stream, cut,
						  collect, &s), 0);
		assert_int_equal(line_framer_feed(&f, (const uint8_t *)stream + cut,
						  n - cut, collect, &s), 0);
		assert_int_equal(s.count, 2);
		assert_line(&s, 0, "3-4.1;PLUGGED;");
		assert_line(&s, 1, "3-4.1;UNPLUGGED;");
	}
	{
		struct line_framer f;
		struct seen s = { 0 };

		line_framer_init(&f);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(line_framer_feed(&f, (const uint8_t *)stream + i, 1,
							  collect, &s), 0);
			if (i < 15)
				assert_int_equal(s.count, 0);
		}
		assert_int_equal(s.count, 2);
		assert_line(&s, 0, "3-4.1;PLUGGED;");
		assert_line(&s, 1, "3-4.1;UNPLUGGED;");
	}
}

static void test_crlf(void **state)
{
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	/* Only one trailing '\r' goes; an inner or doubled one stays. */
	assert_int_equal(feed_str(&f, "a\r\n\r\nb\rc\r\nd\r\r\n", &s), 0);
	assert_int_equal(s.count, 4);
	assert_line(&s, 0, "a");
	assert_line(&s, 1, "");
	assert_line(&s, 2, "b\rc");
	assert_line(&s, 3, "d\r");
	/* '\r' split from its '\n' across feeds. */
	assert_int_equal(feed_str(&f, "e\r", &s), 0);
	assert_int_equal(feed_str(&f, "\n", &s), 0);
	assert_int_equal(s.count, 5);
	assert_line(&s, 4, "e");
}

static void fill(char *buf, size_t n, char c)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

/* A line of exactly the bound is accepted, with or without "\r". */
static void test_max_length_accepted(void **state)
{
	static char line[LINE_FRAMER_MAX + 3];
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	fill(line, LINE_FRAMER_MAX, 'x');
	assert_int_equal(feed_str(&f, line, &s), 0);
	assert_int_equal(line_framer_pending(&f), LINE_FRAMER_MAX);
	assert_int_equal(feed_str(&f, "\n", &s), 0);
	assert_int_equal(s.count, 1);
	assert_line(&s, 0, line);

	strcat(line, "\r\n");
	assert_int_equal(feed_str(&f, line, &s), 0);
	assert_int_equal(s.count, 2);
	line[LINE_FRAMER_MAX] = '\0';
	assert_line(&s, 1, line);
}

/* One byte over: reported once, skipped to its newline, and the next line
 * is intact. Memory stays at the bound however long the line grows. */
static void test_overlong_reported_once(void **state)
{
	static char line[LINE_FRAMER_MAX + 2];
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	fill(line, LINE_FRAMER_MAX + 1, 'y');
	assert_int_equal(feed_str(&f, line, &s), 0);
	/* Reported as soon as the bound is crossed. */
	assert_int_equal(s.count, 1);
	assert_true(s.overlong[0]);
	assert_int_equal(s.len[0], 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(feed_str(&f, line, &s), 0);
		assert_true(line_framer_pending(&f) <= LINE_FRAMER_MAX);
	}
	assert_int_equal(s.count, 1);
	assert_int_equal(feed_str(&f, "tail of the long one\nnext\n", &s), 0);
	assert_int_equal(s.count, 2);
	assert_line(&s, 1, "next");
}

/* LINE_FRAMER_MAX bytes and a '\r' that is not followed by '\n'. */
static void test_overlong_after_cr(void **state)
{
	static char line[LINE_FRAMER_MAX + 3];
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	fill(line, LINE_FRAMER_MAX, 'z');
	strcat(line, "\rz");
	assert_int_equal(feed_str(&f, line, &s), 0);
	assert_int_equal(s.count, 1);
	assert_true(s.overlong[0]);
	assert_int_equal(feed_str(&f, "\nok\n", &s), 0);
	assert_int_equal(s.count, 2);
	assert_line(&s, 1, "ok");
}

/* A nonzero callback return stops at once and is passed through. */
static void test_callback_stops(void **state)
{
	static char line[LINE_FRAMER_MAX + 2];
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	s.stop_after = 2;
	assert_int_equal(feed_str(&f, "a\nb\nc\nd\n", &s), STOP_CODE);
	assert_int_equal(s.count, 2);
	assert_line(&s, 1, "b");

	/* Stopping on the overlong report too. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	line_framer_init(&f);
	fill(line, LINE_FRAMER_MAX + 1, 'q');
	assert_int_equal(feed_str(&f, line, &s), STOP_CODE);
	assert_int_equal(s.count, 1);
	assert_true(s.overlong[0]);
}

static void test_embedded_nul_passes_through(void **state)
{
	const uint8_t bytes[] = { 'a', 0, 'b', '\n' };
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	assert_int_equal(line_framer_feed(&f, bytes, sizeof(bytes), collect, &s), 0);
	assert_int_equal(s.count, 1);
	assert_int_equal(s.len[0], 3);
	assert_memory_equal(s.line[0], "a\0b", 3);
}

static void test_empty_feed(void **state)
{
	struct line_framer f;
	struct seen s = { 0 };

	(void)state;
	line_framer_init(&f);
	assert_int_equal(line_framer_feed(&f, NULL, 0, collect, &s), 0);
	assert_int_equal(s.count, 0);
	assert_int_equal(line_framer_pending(&f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_lines_one_feed),
		cmocka_unit_test(test_split_anywhere),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_max_length_accepted),
		cmocka_unit_test(test_overlong_reported_once),
		cmocka_unit_test(test_overlong_after_cr),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_embedded_nul_passes_through),
		cmocka_unit_test(test_empty_feed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
