/* libusb_map: every libusb value maps to the documented Linux value.
 *
 * Expected values are written as Linux's own numbers (asm-generic/errno*.h),
 * not as LNX_* names or the host's E* macros: the table would catch a wrong
 * constant in linux_errno.h, and holds on hosts whose errno numbering
 * differs (on macOS ECONNRESET is 54, ETIMEDOUT 60, EOPNOTSUPP 102,
 * ESHUTDOWN 58, EOVERFLOW 84, EPROTO 100). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/libusb_map.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct status_case {
	enum libusb_transfer_status st;
	int32_t want;
};

static const struct status_case status_cases[] = {
	{ LIBUSB_TRANSFER_COMPLETED, 0 },
	{ LIBUSB_TRANSFER_ERROR, -71 },     /* EPROTO */
	{ LIBUSB_TRANSFER_TIMED_OUT, -110 }, /* ETIMEDOUT */
	{ LIBUSB_TRANSFER_CANCELLED, -104 }, /* ECONNRESET */
	{ LIBUSB_TRANSFER_STALL, -32 },     /* EPIPE */
	{ LIBUSB_TRANSFER_NO_DEVICE, -108 }, /* ESHUTDOWN */
	{ LIBUSB_TRANSFER_OVERFLOW, -75 },  /* EOVERFLOW */
};

static void test_transfer_status(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(status_cases); i++) {
		const struct status_case *c = &status_cases[i];
		int32_t got = lnx_status_from_libusb_transfer(c->st, false, 64, 64);

		if (got != c->want)
			fail_msg("transfer status %d: got %d want %d", (int)c->st, got, c->want);
		/* short_not_ok with a full transfer changes nothing. */
		assert_int_equal(lnx_status_from_libusb_transfer(c->st, true, 64, 64), c->want);
		/* Nor does a short transfer without the flag. */
		assert_int_equal(lnx_status_from_libusb_transfer(c->st, false, 64, 10), c->want);
	}
	/* A status newer than the table is an unknown USB error. */
	assert_int_equal(lnx_status_from_libusb_transfer((enum libusb_transfer_status)42,
							 false, 0, 0), -71);
}

/* URB_SHORT_NOT_OK: a short completed read is -EREMOTEIO, as the kernel's
 * host controllers report it; an exact or empty one is fine. */
struct short_case {
	bool short_not_ok;
	int requested, actual;
	int32_t want;
};

static const struct short_case short_cases[] = {
	{ true, 512, 511, -121 }, /* EREMOTEIO */
	{ true, 512, 0, -121 },
	{ true, 512, 512, 0 },
	{ true, 0, 0, 0 },
	{ false, 512, 13, 0 },
};

static void test_short_not_ok(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(short_cases); i++) {
		const struct short_case *c = &short_cases[i];

		assert_int_equal(lnx_status_from_libusb_transfer(LIBUSB_TRANSFER_COMPLETED,
								 c->short_not_ok, c->requested,
								 c->actual),
				 c->want);
	}
	/* Only a completed transfer can be "short": others keep their own
	 * status. */
	assert_int_equal(lnx_status_from_libusb_transfer(LIBUSB_TRANSFER_STALL, true, 64, 0),
			 -32);
	assert_int_equal(lnx_status_from_libusb_transfer(LIBUSB_TRANSFER_CANCELLED, true, 64, 0),
			 -104);
}

struct error_case {
	int libusb_error;
	int want;
};

static const struct error_case error_cases[] = {
	{ LIBUSB_SUCCESS, 0 },
	{ 1, 0 },                           /* a positive count is success */
	{ 4096, 0 },
	{ LIBUSB_ERROR_IO, -5 },            /* EIO */
	{ LIBUSB_ERROR_INVALID_PARAM, -22 }, /* EINVAL */
	{ LIBUSB_ERROR_ACCESS, -1 },        /* EPERM */
	{ LIBUSB_ERROR_NO_DEVICE, -19 },    /* ENODEV */
	{ LIBUSB_ERROR_NOT_FOUND, -2 },     /* ENOENT */
	{ LIBUSB_ERROR_BUSY, -16 },         /* EBUSY */
	{ LIBUSB_ERROR_TIMEOUT, -110 },     /* ETIMEDOUT */
	{ LIBUSB_ERROR_OVERFLOW, -75 },     /* EOVERFLOW */
	{ LIBUSB_ERROR_PIPE, -32 },         /* EPIPE */
	{ LIBUSB_ERROR_INTERRUPTED, -5 },   /* EIO */
	{ LIBUSB_ERROR_NO_MEM, -12 },       /* ENOMEM */
	{ LIBUSB_ERROR_NOT_SUPPORTED, -95 }, /* EOPNOTSUPP */
	{ LIBUSB_ERROR_OTHER, -5 },         /* EIO */
	{ -13, -5 },                        /* unknown: EIO */
	{ -1000, -5 },
};

static void test_libusb_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		int got = lnx_errno_from_libusb_error(c->libusb_error);

		if (got != c->want)
			fail_msg("libusb error %d: got %d want %d", c->libusb_error, got, c->want);
	}
}

struct speed_case {
	int libusb_speed;
	uint32_t want;
};

static const struct speed_case speed_cases[] = {
	{ LIBUSB_SPEED_UNKNOWN, 0 },
	{ LIBUSB_SPEED_LOW, 1 },
	{ LIBUSB_SPEED_FULL, 2 },
	{ LIBUSB_SPEED_HIGH, 3 },
	{ LIBUSB_SPEED_SUPER, 5 },      /* libusb's 4 is Linux's WIRELESS */
	{ LIBUSB_SPEED_SUPER_PLUS, 5 }, /* not 6: vhci before 6.12 refuses it */
	{ -1, 0 },
	{ 99, 0 },
};

static void test_speed(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(speed_cases); i++) {
		const struct speed_case *c = &speed_cases[i];
		uint32_t got = usbip_speed_from_libusb(c->libusb_speed);

		if (got != c->want)
			fail_msg("libusb speed %d: got %u want %u", c->libusb_speed, got, c->want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transfer_status),
		cmocka_unit_test(test_short_not_ok),
		cmocka_unit_test(test_libusb_errors),
		cmocka_unit_test(test_speed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
