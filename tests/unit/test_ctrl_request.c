/* Which control requests the server runs itself: table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/ctrl_request.h"

struct ctrl_case {
	const char *name;
	uint8_t setup[8];
	enum ctrl_action action;
	uint16_t value, index;
};

static const struct ctrl_case cases[] = {
	{ "SET_CONFIGURATION 2", { 0x00, 9, 2, 0, 0, 0, 0, 0 }, CTRL_SET_CONFIGURATION, 2, 0 },
	{ "SET_INTERFACE 1/3", { 0x01, 11, 3, 0, 1, 0, 0, 0 }, CTRL_SET_INTERFACE, 3, 1 },
	{ "CLEAR_FEATURE halt 0x81", { 0x02, 1, 0, 0, 0x81, 0, 0, 0 }, CTRL_CLEAR_HALT, 0, 0x81 },
	{ "SET_FEATURE port reset", { 0x23, 3, 4, 0, 1, 0, 0, 0 }, CTRL_RESET_DEVICE, 4, 1 },
	/* Look-alikes that must be forwarded untouched. */
	{ "CLEAR_FEATURE halt ep0", { 0x02, 1, 0, 0, 0, 0, 0, 0 }, CTRL_FORWARD, 0, 0 },
	{ "CLEAR_FEATURE halt ep0 IN", { 0x02, 1, 0, 0, 0x80, 0, 0, 0 }, CTRL_FORWARD, 0, 0x80 },
	{ "GET_DESCRIPTOR", { 0x80, 6, 0, 1, 0, 0, 18, 0 }, CTRL_FORWARD, 0x100, 0 },
	{ "CLEAR_FEATURE remote wakeup", { 0x00, 1, 1, 0, 0, 0, 0, 0 }, CTRL_FORWARD, 1, 0 },
	{ "CLEAR_FEATURE endpoint, other feature", { 0x02, 1, 5, 0, 0x81, 0, 0, 0 },
	  CTRL_FORWARD, 5, 0x81 },
	{ "SET_FEATURE port power", { 0x23, 3, 8, 0, 1, 0, 0, 0 }, CTRL_FORWARD, 8, 1 },
	{ "vendor request 9", { 0x40, 9, 1, 0, 0, 0, 0, 0 }, CTRL_FORWARD, 1, 0 },
	{ "GET_CONFIGURATION", { 0x80, 8, 0, 0, 0, 0, 1, 0 }, CTRL_FORWARD, 0, 0 },
	{ "SET_INTERFACE to device", { 0x00, 11, 1, 0, 0, 0, 0, 0 }, CTRL_FORWARD, 1, 0 },
};

static void test_classify_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctrl_decision d = ctrl_classify(cases[i].setup);
		if (d.action != cases[i].action || d.value != cases[i].value ||
		    d.index != cases[i].index)
			fail_msg("%s: got %s value %u index %u", cases[i].name,
				 ctrl_action_name(d.action), d.value, d.index);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_table),
	};
	return cmocka_run_group_tests_name("ctrl_request", tests, NULL, NULL);
}
