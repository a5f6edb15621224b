/* busid_valid / busid_format: the strict kernel form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/busid.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const valid_ids[] = {
	"1-1",
	"1-1.2",
	"3-10.4.1",
	"65535-255",
	"2-1.2.3.4.5.6.7",             /* seven ports: the tier limit */
	"9-255.255.255.255.255.255.1", /* 27 characters */
	"65535-255.255.255.255.255.2", /* 27 characters, largest bus */
	"10-9",
};

static const char *const invalid_ids[] = {
	"",
	"1",
	"1-",
	"-1",
	"1-0",            /* port 0 */
	"0-1",            /* bus 0 */
	"01-1",           /* leading zero in bus */
	"1-01",           /* leading zero in port */
	"1-1.01",
	"1-256",          /* port above 255 */
	"65536-1",        /* bus above 65535 */
	"99999999999999999999-1",
	"1-1.",           /* trailing dot */
	"1-.1",
	"1-1..2",
	"1-1.2.3.4.5.6.7.8", /* eight ports */
	"1-1-1",
	"1--1",
	" 1-1",
	"1-1 ",
	"1-1\n",
	"1-1;",
	"1-1/../../x",
	"+1-1",
	"1-+1",
	"usb1",
	"1-1:1.0",        /* an interface, not a device */
	"a-1",
	"1-a",
	"\xef\xbc\x91-1", /* fullwidth digit one */
};

static void test_valid_ids(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(valid_ids); i++) {
		if (!busid_valid(valid_ids[i]))
			fail_msg("rejected valid busid \"%s\"", valid_ids[i]);
	}
}

static void test_invalid_ids(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(invalid_ids); i++) {
		if (busid_valid(invalid_ids[i]))
			fail_msg("accepted invalid busid \"%s\"", invalid_ids[i]);
	}
	assert_false(busid_valid(NULL));
}

/* The length limit is the wire field: 31 characters pass, 32 do not. */
static void test_length_bound(void **state)
{
	/* "1-255.255.255.255.255.255.255" is 29; make 31 with bus 100. */
	const char *len31 = "100-255.255.255.255.255.255.255";
	const char *len32 = "1000-255.255.255.255.255.255.255";
	const char *len33 = "65535-255.255.255.255.255.255.255";

	(void)state;
	assert_int_equal(strlen(len31), 31);
	assert_true(busid_valid(len31));
	assert_int_equal(strlen(len32), 32);
	assert_false(busid_valid(len32));
	assert_int_equal(strlen(len33), 33);
	assert_false(busid_valid(len33));
}

/* A fixed array with no terminator must be refused without reading past
 * it (ASan catches an overrun: the array is exactly the field size). */
static void test_unterminated_field(void **state)
{
	char field[USBIP_BUSID_SIZE];

	(void)state;
	memset(field, '1', sizeof(field));
	field[1] = '-';
	assert_false(busid_valid(field));
}

struct format_case {
	uint16_t bus;
	uint8_t ports[8];
	size_t depth;
	const char *want; /* NULL: must fail */
};

static const struct format_case format_cases[] = {
	{ 1, { 1 }, 1, "1-1" },
	{ 3, { 10, 4, 1 }, 3, "3-10.4.1" },
	{ 65535, { 255 }, 1, "65535-255" },
	{ 2, { 1, 2, 3, 4, 5, 6, 7 }, 7, "2-1.2.3.4.5.6.7" },
	{ 100, { 255, 255, 255, 255, 255, 255, 255 }, 7, "100-255.255.255.255.255.255.255" },
	{ 1000, { 255, 255, 255, 255, 255, 255, 255 }, 7, NULL }, /* 32 chars */
	{ 65535, { 255, 255, 255, 255, 255, 255, 255 }, 7, NULL },
	{ 1, { 1, 2, 3, 4, 5, 6, 7, 8 }, 8, NULL },
	{ 1, { 1 }, 0, NULL },
	{ 1, { 0 }, 1, NULL },
	{ 1, { 1, 0, 2 }, 3, NULL },
	{ 0, { 1 }, 1, NULL },
};

static void test_format(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
		const struct format_case *c = &format_cases[i];
		char out[USBIP_BUSID_SIZE];
		int rc;

		memset(out, 'x', sizeof(out));
		rc = busid_format(c->bus, c->ports, c->depth, out);
		if (!c->want) {
			if (rc != -1)
				fail_msg("case %zu: expected failure, got %d \"%s\"", i, rc, out);
			assert_string_equal(out, "");
			continue;
		}
		if (rc != (int)strlen(c->want))
			fail_msg("case %zu: rc %d, want %zu", i, rc, strlen(c->want));
		assert_string_equal(out, c->want);
		assert_true(busid_valid(out));
	}
	{
		char out[USBIP_BUSID_SIZE];

		assert_int_equal(busid_format(1, NULL, 1, out), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),
		cmocka_unit_test(test_invalid_ids),
		cmocka_unit_test(test_length_bound),
		cmocka_unit_test(test_unterminated_field),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
