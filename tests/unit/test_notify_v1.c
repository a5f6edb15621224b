/* Notify protocol v1: the wire bytes the original client and server use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/line_framer.h"
#include "proto/notify_v1.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The hello is these 12 bytes exactly: no newline, no NUL. */
static void test_hello_constant(void **state)
{
	static const uint8_t wire[12] = { 'C', 'l', 'i', 'e', 'n', 't', ' ',
					  'h', 'e', 'l', 'l', 'o' };

	(void)state;
	assert_int_equal(NOTIFY_V1_HELLO_LEN, 12);
	assert_int_equal(strlen(NOTIFY_V1_HELLO), NOTIFY_V1_HELLO_LEN);
	assert_memory_equal(NOTIFY_V1_HELLO, wire, sizeof(wire));
}

struct hello_case {
	const char *bytes;
	size_t n;
	enum notify_v1_hello_result want;
};

static const struct hello_case hello_cases[] = {
	{ "", 0, NOTIFY_V1_HELLO_PARTIAL },
	{ "C", 1, NOTIFY_V1_HELLO_PARTIAL },
	{ "Client hell", 11, NOTIFY_V1_HELLO_PARTIAL },
	{ "Client hello", 12, NOTIFY_V1_HELLO_MATCH },
	{ "Client hello\n", 13, NOTIFY_V1_HELLO_MATCH }, /* rest is the caller's */
	{ "Client hellO", 12, NOTIFY_V1_HELLO_NO },
	{ "client hello", 12, NOTIFY_V1_HELLO_NO },
	{ "X", 1, NOTIFY_V1_HELLO_NO },
	{ "Client  hello", 13, NOTIFY_V1_HELLO_NO },
	{ "GET / HTTP/1.1\r\n", 16, NOTIFY_V1_HELLO_NO },
	{ "Client\0hello", 12, NOTIFY_V1_HELLO_NO },
};

static void test_match_hello(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(hello_cases); i++) {
		const struct hello_case *c = &hello_cases[i];
		enum notify_v1_hello_result r;

		r = notify_v1_match_hello((const uint8_t *)c->bytes, c->n);
		if (r != c->want)
			fail_msg("hello case %zu: got %d want %d", i, r, c->want);
	}
	assert_int_equal(notify_v1_match_hello(NULL, 0), NOTIFY_V1_HELLO_PARTIAL);
}

struct encode_case {
	const char *busid;
	enum notify_v1_kind kind;
	const char *wire;
};

static const struct encode_case encode_cases[] = {
	{ "1-1", NOTIFY_V1_PLUGGED, "1-1;PLUGGED;\n" },
	{ "1-1", NOTIFY_V1_UNPLUGGED, "1-1;UNPLUGGED;\n" },
	{ "3-10.4.1", NOTIFY_V1_PLUGGED, "3-10.4.1;PLUGGED;\n" },
	{ "100-255.255.255.255.255.255.255", NOTIFY_V1_UNPLUGGED,
	  "100-255.255.255.255.255.255.255;UNPLUGGED;\n" },
};

static void test_encode_bytes(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(encode_cases); i++) {
		const struct encode_case *c = &encode_cases[i];
		struct notify_v1_event ev = { .kind = c->kind };
		char out[NOTIFY_V1_MAX_LINE];
		size_t want = strlen(c->wire);
		int rc;

		strcpy(ev.busid, c->busid);
		memset(out, '#', sizeof(out));
		rc = notify_v1_encode(&ev, out, sizeof(out));
		assert_int_equal(rc, (int)want);
		assert_true(want <= NOTIFY_V1_MAX_LINE);
		assert_memory_equal(out, c->wire, want);
		if (want < sizeof(out))
			assert_int_equal(out[want], '#'); /* nothing beyond the line */

		/* Exactly enough room works; one byte less does not. */
		assert_int_equal(notify_v1_encode(&ev, out, want), (int)want);
		assert_int_equal(notify_v1_encode(&ev, out, want - 1), NOTIFY_V1_E_NOSPACE);
	}
}

static void test_encode_errors(void **state)
{
	struct notify_v1_event ev = { .kind = NOTIFY_V1_PLUGGED };
	char out[NOTIFY_V1_MAX_LINE];

	(void)state;
	strcpy(ev.busid, "1-01");
	assert_int_equal(notify_v1_encode(&ev, out, sizeof(out)), NOTIFY_V1_E_BUSID);
	strcpy(ev.busid, "1-1;x");
	assert_int_equal(notify_v1_encode(&ev, out, sizeof(out)), NOTIFY_V1_E_BUSID);
	memset(ev.busid, '1', sizeof(ev.busid)); /* no terminator */
	assert_int_equal(notify_v1_encode(&ev, out, sizeof(out)), NOTIFY_V1_E_BUSID);

	strcpy(ev.busid, "1-1");
	ev.kind = (enum notify_v1_kind)7;
	assert_int_equal(notify_v1_encode(&ev, out, sizeof(out)), NOTIFY_V1_E_KIND);
	ev.kind = NOTIFY_V1_PLUGGED;
	assert_int_equal(notify_v1_encode(&ev, NULL, 0), NOTIFY_V1_E_NOSPACE);
}

struct decode_case {
	const char *line;
	int want;
	const char *busid;        /* when OK */
	enum notify_v1_kind kind; /* when OK */
};

static const struct decode_case decode_cases[] = {
	{ "1-1;PLUGGED;", NOTIFY_V1_OK, "1-1", NOTIFY_V1_PLUGGED },
	{ "1-1.2;UNPLUGGED;", NOTIFY_V1_OK, "1-1.2", NOTIFY_V1_UNPLUGGED },
	{ "65535-255.1;PLUGGED;", NOTIFY_V1_OK, "65535-255.1", NOTIFY_V1_PLUGGED },
	/* structure */
	{ "", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1;PLUGGED", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1;PLUGGED;x", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1;PLUGGED;;", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1;PLUGGED; ", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1;PLUGGED;\n", NOTIFY_V1_E_FORMAT, NULL, 0 }, /* framer strips it */
	{ "1-1;PLUGGED;\r", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ ";", NOTIFY_V1_E_FORMAT, NULL, 0 },
	{ "1-1;x;y;", NOTIFY_V1_E_FORMAT, NULL, 0 },
	/* busid */
	{ ";PLUGGED;", NOTIFY_V1_E_BUSID, NULL, 0 },
	{ "1-0;PLUGGED;", NOTIFY_V1_E_BUSID, NULL, 0 },
	{ " 1-1;PLUGGED;", NOTIFY_V1_E_BUSID, NULL, 0 },
	{ "../../x;PLUGGED;", NOTIFY_V1_E_BUSID, NULL, 0 },
	{ "1000-255.255.255.255.255.255.255;PLUGGED;", NOTIFY_V1_E_BUSID, NULL, 0 },
	{ "1-111111111111111111111111111111111111111111;PLUGGED;", NOTIFY_V1_E_BUSID, NULL, 0 },
	/* kind */
	{ "1-1;;", NOTIFY_V1_E_KIND, NULL, 0 },
	{ "1-1;plugged;", NOTIFY_V1_E_KIND, NULL, 0 },
	{ "1-1;PLUG;", NOTIFY_V1_E_KIND, NULL, 0 },
	{ "1-1;PLUGGEDX;", NOTIFY_V1_E_KIND, NULL, 0 },
	{ "1-1; PLUGGED;", NOTIFY_V1_E_KIND, NULL, 0 },
	{ "1-1;UN PLUGGED;", NOTIFY_V1_E_KIND, NULL, 0 },
	{ "1-1;UNPLUGGE;", NOTIFY_V1_E_KIND, NULL, 0 },
};

static void test_decode_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(decode_cases); i++) {
		const struct decode_case *c = &decode_cases[i];
		struct notify_v1_event ev;
		int rc;

		memset(&ev, 0x5a, sizeof(ev));
		rc = notify_v1_decode(c->line, strlen(c->line), &ev);
		if (rc != c->want)
			fail_msg("\"%s\": got %d (%s), want %d", c->line, rc,
				 notify_v1_strerror(rc), c->want);
		if (rc != NOTIFY_V1_OK)
			continue;
		assert_string_equal(ev.busid, c->busid);
		assert_int_equal(ev.kind, c->kind);
	}
}

/* len, not the NUL, delimits the line: a NUL inside is malformed, and
 * bytes past len are not read as part of it. */
static void test_decode_uses_length(void **state)
{
	struct notify_v1_event ev;

	(void)state;
	assert_int_equal(notify_v1_decode("1-1;PLUGGED;\0x", 14, &ev), NOTIFY_V1_E_FORMAT);
	assert_int_equal(notify_v1_decode("1-1\0;PLUGGED;", 13, &ev), NOTIFY_V1_E_FORMAT);
	assert_int_equal(notify_v1_decode("1-1;PLUGGED;garbage", 12, &ev), NOTIFY_V1_OK);
	assert_string_equal(ev.busid, "1-1");
	assert_int_equal(notify_v1_decode(NULL, 0, &ev), NOTIFY_V1_E_FORMAT);
}

static void test_strerror_distinct(void **state)
{
	const int errs[] = { NOTIFY_V1_OK, NOTIFY_V1_E_NOSPACE, NOTIFY_V1_E_FORMAT,
			     NOTIFY_V1_E_BUSID, NOTIFY_V1_E_KIND };

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(errs); i++)
		for (size_t k = i + 1; k < ARRAY_LEN(errs); k++)
			assert_string_not_equal(notify_v1_strerror(errs[i]),
						notify_v1_strerror(errs[k]));
	assert_non_null(notify_v1_strerror(12345));
}

/* What the server writes, read back through the framer in odd pieces. */
struct decoded {
	size_t count;
	struct notify_v1_event ev[8];
};

static int decode_line(void *ctx, const char *line, size_t len, bool overlong)
{
	struct decoded *d = ctx;

	assert_false(overlong);
	assert_true(d->count < ARRAY_LEN(d->ev));
	assert_int_equal(notify_v1_decode(line, len, &d->ev[d->count]), NOTIFY_V1_OK);
	d->count++;
	return 0;
}

static void test_stream_round_trip(void **state)
{
	const struct notify_v1_event in[] = {
		{ "1-1", NOTIFY_V1_PLUGGED },
		{ "2-3.4", NOTIFY_V1_PLUGGED },
		{ "1-1", NOTIFY_V1_UNPLUGGED },
	};
	uint8_t wire[3 * NOTIFY_V1_MAX_LINE];
	size_t n = 0;
	struct line_framer f;
	struct decoded d = { 0 };

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(in); i++) {
		int rc = notify_v1_encode(&in[i], (char *)wire + n, sizeof(wire) - n);

		assert_true(rc > 0);
		n += (size_t)rc;
	}
	assert_int_equal(n, strlen("1-1;PLUGGED;\n2-3.4;PLUGGED;\n1-1;UNPLUGGED;\n"));
	assert_memory_equal(wire, "1-1;PLUGGED;\n2-3.4;PLUGGED;\n1-1;UNPLUGGED;\n", n);

	line_framer_init(&f);
	/* Pieces of 5 bytes: lines split and two events in one read. */
	for (size_t off = 0; off < n; off += 5) {
		size_t k = n - off < 5 ? n - off : 5;

		assert_int_equal(line_framer_feed(&f, wire + off, k, decode_line, &d), 0);
	}
	assert_int_equal(d.count, ARRAY_LEN(in));
	for (size_t i = 0; i < ARRAY_LEN(in); i++) {
		assert_string_equal(d.ev[i].busid, in[i].busid);
		assert_int_equal(d.ev[i].kind, in[i].kind);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_constant),
		cmocka_unit_test(test_match_hello),
		cmocka_unit_test(test_encode_bytes),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_table),
		cmocka_unit_test(test_decode_uses_length),
		cmocka_unit_test(test_strerror_distinct),
		cmocka_unit_test(test_stream_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
