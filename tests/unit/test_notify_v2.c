/* Notify v2 codec: byte-exact lines for every message, round trips, and
 * one table row per decoder error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/notify_v2.h"

static struct notify_v2_device zero_dev(bool held)
{
	struct notify_v2_device d = { .vid = 0x0525, .pid = 0xa4a0,
				      .speed = USBIP_SPEED_HIGH, .held = held };
	strcpy(d.busid, "1-1");
	strcpy(d.serial, "SIM0001");
	strcpy(d.manufacturer, "usbip-notify");
	strcpy(d.product, "Simulated Gadget Zero");
	return d;
}

static struct notify_v2_msg msg_of(enum notify_v2_type type)
{
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = type;
	return m;
}

#define ZERO_FIELDS "busid=1-1 vid=0525 pid=a4a0 speed=high held=%d serial=SIM0001 " \
		    "manufacturer=usbip-notify product=Simulated%%20Gadget%%20Zero\n"

struct encode_case {
	const char *name;
	struct notify_v2_msg msg;
	const char *line;
};

static void check_encode_decode(const struct notify_v2_msg *m, const char *want)
{
	char out[NOTIFY_V2_MAX_LINE];
	int n = notify_v2_encode(m, out, sizeof(out));
	if (n < 0)
		fail_msg("encode: %s (want %s)", notify_v2_strerror(n), want);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, (size_t)n);

	/* A buffer one byte short is refused, never overrun. */
	char small[NOTIFY_V2_MAX_LINE];
	memset(small, 'Z', sizeof(small));
	assert_int_equal(notify_v2_encode(m, small, (size_t)n - 1), NOTIFY_V2_E_NOSPACE);
	assert_int_equal(small[n - 1], 'Z');

	struct notify_v2_msg back;
	int rc = notify_v2_decode(out, (size_t)n - 1, &back);
	if (rc != NOTIFY_V2_OK)
		fail_msg("decode %s: %s", want, notify_v2_strerror(rc));
	assert_memory_equal(&back, m, sizeof(back));
}

static void test_encode_every_type(void **state)
{
	(void)state;
	struct notify_v2_msg m;
	char want[NOTIFY_V2_MAX_LINE];

	m = msg_of(NOTIFY_V2_HELLO);
	m.version = 2;
	check_encode_decode(&m, "hello version=2\n");
	strcpy(m.token, "s3cret pass=word");
	check_encode_decode(&m, "hello version=2 token=s3cret%20pass%3Dword\n");

	m = msg_of(NOTIFY_V2_WELCOME);
	m.version = 2;
	m.heartbeat_s = 5;
	strcpy(m.name, "lab-pi.local");
	check_encode_decode(&m, "welcome version=2 heartbeat=5 server=lab-pi.local\n");
	memset(m.name, 0, sizeof(m.name)); /* a required string may be empty */
	check_encode_decode(&m, "welcome version=2 heartbeat=5 server=\n");

	m = msg_of(NOTIFY_V2_DEVICE);
	m.dev = zero_dev(false);
	snprintf(want, sizeof(want), "device " ZERO_FIELDS, 0);
	check_encode_decode(&m, want);

	m = msg_of(NOTIFY_V2_PLUGGED);
	m.dev = zero_dev(false);
	snprintf(want, sizeof(want), "plugged " ZERO_FIELDS, 0);
	check_encode_decode(&m, want);

	m = msg_of(NOTIFY_V2_HELD);
	m.dev = zero_dev(true);
	snprintf(want, sizeof(want), "held " ZERO_FIELDS, 1);
	check_encode_decode(&m, want);

	/* Empty optional strings are left out. */
	m = msg_of(NOTIFY_V2_PLUGGED);
	strcpy(m.dev.busid, "3-1.4.2");
	m.dev.vid = 0xFFFF;
	m.dev.pid = 0x0001;
	m.dev.speed = USBIP_SPEED_SUPER_PLUS;
	check_encode_decode(&m, "plugged busid=3-1.4.2 vid=ffff pid=0001 speed=super-plus held=0\n");

	m = msg_of(NOTIFY_V2_UNPLUGGED);
	strcpy(m.dev.busid, "1-1");
	check_encode_decode(&m, "unplugged busid=1-1\n");

	m = msg_of(NOTIFY_V2_SNAPSHOT_END);
	m.count = 4294967295u;
	check_encode_decode(&m, "snapshot-end count=4294967295\n");
	m.count = 0;
	check_encode_decode(&m, "snapshot-end count=0\n");

	m = msg_of(NOTIFY_V2_PING);
	check_encode_decode(&m, "ping\n");

	m = msg_of(NOTIFY_V2_ERROR);
	strcpy(m.name, "auth");
	check_encode_decode(&m, "error reason=auth\n");
}

static void test_speed_names(void **state)
{
	(void)state;
	static const char *const names[] = { "unknown", "low", "full", "high",
					     "wireless", "super", "super-plus" };
	for (uint32_t s = 0; s < 7; s++) {
		assert_string_equal(notify_v2_speed_name(s), names[s]);
		struct notify_v2_msg m = msg_of(NOTIFY_V2_PLUGGED);
		strcpy(m.dev.busid, "2-3");
		m.dev.speed = s;
		char want[128];
		snprintf(want, sizeof(want),
			 "plugged busid=2-3 vid=0000 pid=0000 speed=%s held=0\n", names[s]);
		check_encode_decode(&m, want);
	}
	assert_null(notify_v2_speed_name(7));
}

/* Every byte value that may appear in a string survives a round trip, and
 * only [A-Za-z0-9._~:/-] travel unescaped. */
static void test_percent_encoding_all_bytes(void **state)
{
	(void)state;
	struct notify_v2_msg m = msg_of(NOTIFY_V2_PLUGGED);
	strcpy(m.dev.busid, "1-1");
	char out[NOTIFY_V2_MAX_LINE];

	for (unsigned c = 0x20; c < 0x100; c++) {
		if (c == 0x7f)
			continue;
		m.dev.product[0] = (char)c;
		m.dev.product[1] = 'x';
		m.dev.product[2] = '\0';
		int n = notify_v2_encode(&m, out, sizeof(out));
		assert_true(n > 0);
		const char *p = strstr(out, "product=");
		assert_non_null(p);
		p += strlen("product=");
		bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9') || strchr("._~:/-", (int)c);
		if (plain) {
			assert_int_equal((unsigned char)p[0], c);
			assert_memory_equal(p + 1, "x\n", 2);
		} else {
			char esc[4];
			snprintf(esc, sizeof(esc), "%%%02X", c);
			assert_memory_equal(p, esc, 3);
			assert_memory_equal(p + 3, "x\n", 2);
		}
		struct notify_v2_msg back;
		assert_int_equal(notify_v2_decode(out, (size_t)n - 1, &back), NOTIFY_V2_OK);
		assert_memory_equal(&back, &m, sizeof(m));
	}
}

static void test_decode_lenient_where_allowed(void **state)
{
	(void)state;
	struct notify_v2_msg m;
	/* Fields in any order, unknown keys ignored, lower-case escapes and
	 * upper-case hex ids accepted. */
	const char *l = "plugged future=yes%20ok speed=full held=1 pid=ABCD vid=00aF busid=1-2 "
			"product=a%2fb";
	assert_int_equal(notify_v2_decode(l, strlen(l), &m), NOTIFY_V2_OK);
	assert_int_equal(m.type, NOTIFY_V2_PLUGGED);
	assert_string_equal(m.dev.busid, "1-2");
	assert_int_equal(m.dev.vid, 0x00af);
	assert_int_equal(m.dev.pid, 0xabcd);
	assert_int_equal(m.dev.speed, USBIP_SPEED_FULL);
	assert_true(m.dev.held);
	assert_string_equal(m.dev.product, "a/b");
	assert_string_equal(m.dev.serial, "");

	/* A key that belongs to another word is unknown here: ignored. */
	l = "ping busid=x%20y";
	assert_int_equal(notify_v2_decode(l, strlen(l), &m), NOTIFY_V2_OK);
	assert_int_equal(m.type, NOTIFY_V2_PING);
	assert_string_equal(m.dev.busid, "");

	/* UTF-8 in strings is data, not control characters. */
	l = "error reason=%C3%A9t%C3%A9";
	assert_int_equal(notify_v2_decode(l, strlen(l), &m), NOTIFY_V2_OK);
	assert_string_equal(m.name, "\xc3\xa9t\xc3\xa9");
}

static void test_longest_strings(void **state)
{
	(void)state;
	struct notify_v2_msg m = msg_of(NOTIFY_V2_HELLO);
	m.version = 2;
	memset(m.token, 'a', sizeof(m.token) - 1);
	char out[NOTIFY_V2_MAX_LINE];
	int n = notify_v2_encode(&m, out, sizeof(out));
	assert_true(n > 0);
	struct notify_v2_msg back;
	assert_int_equal(notify_v2_decode(out, (size_t)n - 1, &back), NOTIFY_V2_OK);
	assert_memory_equal(&back, &m, sizeof(m));

	/* One more byte does not fit the field. */
	char line[400];
	snprintf(line, sizeof(line), "hello version=2 token=%.*sab", (int)sizeof(m.token) - 2,
		 out + strlen("hello version=2 token="));
	assert_int_equal(notify_v2_decode(line, strlen(line), &back), NOTIFY_V2_E_LONG);

	/* Three escaped 127-byte strings overflow the line limit. */
	m = msg_of(NOTIFY_V2_DEVICE);
	strcpy(m.dev.busid, "1-1");
	memset(m.dev.serial, ' ', sizeof(m.dev.serial) - 1);
	memset(m.dev.manufacturer, ' ', sizeof(m.dev.manufacturer) - 1);
	memset(m.dev.product, ' ', sizeof(m.dev.product) - 1);
	assert_int_equal(notify_v2_encode(&m, out, sizeof(out)), NOTIFY_V2_E_LONG);
	/* Two fit. */
	memset(m.dev.product, 0, sizeof(m.dev.product));
	n = notify_v2_encode(&m, out, sizeof(out));
	assert_true(n > 0 && n <= NOTIFY_V2_MAX_LINE);
	assert_int_equal(notify_v2_decode(out, (size_t)n - 1, &back), NOTIFY_V2_OK);
	assert_memory_equal(&back, &m, sizeof(m));
}

struct encode_err_case {
	const char *name;
	void (*prep)(struct notify_v2_msg *m);
	int err;
};

static void prep_bad_type(struct notify_v2_msg *m) { m->type = (enum notify_v2_type)99; }
static void prep_hello_v3(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_HELLO;
	m->version = 3;
}
static void prep_welcome_v1(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_WELCOME;
	m->version = 1;
	m->heartbeat_s = 5;
}
static void prep_heartbeat_0(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_WELCOME;
	m->version = 2;
}
static void prep_heartbeat_big(struct notify_v2_msg *m)
{
	prep_heartbeat_0(m);
	m->heartbeat_s = 3601;
}
static void prep_bad_busid(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_UNPLUGGED;
	strcpy(m->dev.busid, "1-01");
}
static void prep_unterminated_busid(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_PLUGGED;
	memset(m->dev.busid, '1', sizeof(m->dev.busid));
}
static void prep_bad_speed(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_PLUGGED;
	strcpy(m->dev.busid, "1-1");
	m->dev.speed = 7;
}
static void prep_control_char(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_HELD;
	strcpy(m->dev.busid, "1-1");
	strcpy(m->dev.serial, "a\nb");
}
static void prep_unterminated_name(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_ERROR;
	memset(m->name, 'x', sizeof(m->name));
}
static void prep_del_in_token(struct notify_v2_msg *m)
{
	m->type = NOTIFY_V2_HELLO;
	m->version = 2;
	strcpy(m->token, "a\x7f");
}

static void test_encode_errors(void **state)
{
	(void)state;
	static const struct encode_err_case cases[] = {
		{ "unknown type", prep_bad_type, NOTIFY_V2_E_WORD },
		{ "hello version 3", prep_hello_v3, NOTIFY_V2_E_VERSION },
		{ "welcome version 1", prep_welcome_v1, NOTIFY_V2_E_VERSION },
		{ "heartbeat 0", prep_heartbeat_0, NOTIFY_V2_E_VALUE },
		{ "heartbeat 3601", prep_heartbeat_big, NOTIFY_V2_E_VALUE },
		{ "bad busid", prep_bad_busid, NOTIFY_V2_E_BUSID },
		{ "unterminated busid", prep_unterminated_busid, NOTIFY_V2_E_BUSID },
		{ "bad speed", prep_bad_speed, NOTIFY_V2_E_VALUE },
		{ "control char", prep_control_char, NOTIFY_V2_E_VALUE },
		{ "unterminated name", prep_unterminated_name, NOTIFY_V2_E_LONG },
		{ "DEL in token", prep_del_in_token, NOTIFY_V2_E_VALUE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct notify_v2_msg m;
		memset(&m, 0, sizeof(m));
		cases[i].prep(&m);
		char out[NOTIFY_V2_MAX_LINE];
		int rc = notify_v2_encode(&m, out, sizeof(out));
		if (rc != cases[i].err)
			fail_msg("%s: got %d (%s), want %d", cases[i].name, rc,
				 notify_v2_strerror(rc), cases[i].err);
	}
}

struct decode_err_case {
	const char *line;
	int err;
};

static void test_decode_errors(void **state)
{
	(void)state;
	static const struct decode_err_case cases[] = {
		/* words */
		{ "", NOTIFY_V2_E_WORD },
		{ "Ping", NOTIFY_V2_E_WORD },
		{ "pong", NOTIFY_V2_E_WORD },
		{ " ping", NOTIFY_V2_E_WORD },
		{ "1-1;PLUGGED;", NOTIFY_V2_E_WORD },
		{ "snapshot-ends count=1", NOTIFY_V2_E_WORD },
		/* field syntax */
		{ "ping ", NOTIFY_V2_E_FIELD },
		{ "unplugged  busid=1-1", NOTIFY_V2_E_FIELD },
		{ "unplugged busid=1-1 ", NOTIFY_V2_E_FIELD },
		{ "unplugged busid", NOTIFY_V2_E_FIELD },
		{ "unplugged =1-1", NOTIFY_V2_E_FIELD },
		{ "unplugged BUSID=1-1", NOTIFY_V2_E_FIELD },
		{ "unplugged busid=1-1\t", NOTIFY_V2_E_FIELD },
		{ "unplugged busid=1-1 busid=1-2", NOTIFY_V2_E_FIELD },
		{ "error reason=a%2", NOTIFY_V2_E_FIELD },
		{ "error reason=a%", NOTIFY_V2_E_FIELD },
		{ "error reason=%G0", NOTIFY_V2_E_FIELD },
		{ "error reason=a=b", NOTIFY_V2_E_FIELD },
		{ "error reason=\xc3\xa9", NOTIFY_V2_E_FIELD },
		{ "error reason=ok other=bad\"", NOTIFY_V2_E_FIELD },
		/* missing */
		{ "hello", NOTIFY_V2_E_MISSING },
		{ "hello token=x", NOTIFY_V2_E_MISSING },
		{ "welcome version=2 heartbeat=5", NOTIFY_V2_E_MISSING },
		{ "welcome version=2 server=x", NOTIFY_V2_E_MISSING },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=high", NOTIFY_V2_E_MISSING },
		{ "held busid=1-1 pid=a4a0 speed=high held=1", NOTIFY_V2_E_MISSING },
		{ "device vid=0525 pid=a4a0 speed=high held=1", NOTIFY_V2_E_MISSING },
		{ "unplugged", NOTIFY_V2_E_MISSING },
		{ "snapshot-end", NOTIFY_V2_E_MISSING },
		{ "error", NOTIFY_V2_E_MISSING },
		/* values */
		{ "plugged busid=1-1 vid=525 pid=a4a0 speed=high held=0", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=05250 pid=a4a0 speed=high held=0", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4ag speed=high held=0", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=fast held=0", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=High held=0", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=high held=2", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=high held=", NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=high held=0 serial=a%0Ab",
		  NOTIFY_V2_E_VALUE },
		{ "plugged busid=1-1 vid=0525 pid=a4a0 speed=high held=0 product=%7F",
		  NOTIFY_V2_E_VALUE },
		{ "error reason=%00", NOTIFY_V2_E_VALUE },
		{ "snapshot-end count=", NOTIFY_V2_E_VALUE },
		{ "snapshot-end count=01", NOTIFY_V2_E_VALUE },
		{ "snapshot-end count=-1", NOTIFY_V2_E_VALUE },
		{ "snapshot-end count=4294967296", NOTIFY_V2_E_VALUE },
		{ "snapshot-end count=99999999999", NOTIFY_V2_E_VALUE },
		{ "welcome version=2 heartbeat=0 server=x", NOTIFY_V2_E_VALUE },
		{ "welcome version=2 heartbeat=3601 server=x", NOTIFY_V2_E_VALUE },
		{ "hello version=two", NOTIFY_V2_E_VALUE },
		/* busids */
		{ "unplugged busid=", NOTIFY_V2_E_BUSID },
		{ "unplugged busid=1-0", NOTIFY_V2_E_BUSID },
		{ "unplugged busid=..%2F..%2Fetc", NOTIFY_V2_E_BUSID },
		{ "unplugged busid=1-1.1.1.1.1.1.1.1", NOTIFY_V2_E_BUSID },
		{ "unplugged busid=11111111111111111111111111111111", NOTIFY_V2_E_BUSID },
		/* lengths */
		{ "error reason=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  NOTIFY_V2_E_LONG },
		/* versions */
		{ "hello version=1", NOTIFY_V2_E_VERSION },
		{ "hello version=3 token=x", NOTIFY_V2_E_VERSION },
		{ "welcome version=20 heartbeat=5 server=x", NOTIFY_V2_E_VERSION },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct notify_v2_msg m;
		int rc = notify_v2_decode(cases[i].line, strlen(cases[i].line), &m);
		if (rc != cases[i].err)
			fail_msg("\"%s\": got %d (%s), want %d (%s)", cases[i].line, rc,
				 notify_v2_strerror(rc), cases[i].err,
				 notify_v2_strerror(cases[i].err));
	}
}

static void test_decode_overlong_line(void **state)
{
	(void)state;
	char line[NOTIFY_V2_MAX_LINE + 8];
	struct notify_v2_msg m;

	/* NOTIFY_V2_MAX_LINE - 1 bytes (the '\n' is not passed) is the limit. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "ping x=", 7);
	assert_int_equal(notify_v2_decode(line, NOTIFY_V2_MAX_LINE - 1, &m), NOTIFY_V2_OK);
	assert_int_equal(notify_v2_decode(line, NOTIFY_V2_MAX_LINE, &m), NOTIFY_V2_E_LONG);

	/* The length is what counts, not a NUL inside it. */
	memcpy(line, "ping", 5);
	assert_int_equal(notify_v2_decode(line, 5, &m), NOTIFY_V2_E_WORD);
	assert_int_equal(notify_v2_decode(line, 4, &m), NOTIFY_V2_OK);
}

static void test_strerror_distinct(void **state)
{
	(void)state;
	for (int a = NOTIFY_V2_E_VERSION; a <= NOTIFY_V2_OK; a++) {
		assert_string_not_equal(notify_v2_strerror(a), "unknown error");
		for (int b = a + 1; b <= NOTIFY_V2_OK; b++)
			assert_string_not_equal(notify_v2_strerror(a), notify_v2_strerror(b));
	}
	assert_string_equal(notify_v2_strerror(-99), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_every_type),
		cmocka_unit_test(test_speed_names),
		cmocka_unit_test(test_percent_encoding_all_bytes),
		cmocka_unit_test(test_decode_lenient_where_allowed),
		cmocka_unit_test(test_longest_strings),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_overlong_line),
		cmocka_unit_test(test_strerror_distinct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
