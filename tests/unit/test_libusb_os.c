/* What libusb does differently per OS (libusb_os_<os>.c), as this OS
 * builds it. On Linux: cancel is per transfer (no quirk) and close needs
 * no reset; the darwin file is built only on macOS, where this test
 * expects BK_QUIRK_CANCEL_ABORTS_ENDPOINT instead (its policy is tested
 * everywhere through the sim's darwin mode: tests/integration/test_unlink.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/libusb_internal.h"

static void test_handle_quirks(void **state)
{
	(void)state;
#if defined(__APPLE__)
	assert_int_equal(lu_os_handle_quirks(), BK_QUIRK_CANCEL_ABORTS_ENDPOINT);
#else
	assert_int_equal(lu_os_handle_quirks(), 0);
	lu_os_before_close(NULL); /* nothing to do here: must not touch the handle */
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handle_quirks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
