/* --allow-client-device IDENTITY=RULE: parsing and the decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server/client_rules.h"

static struct bk_device_info dev(const char *busid, uint16_t vid, uint16_t pid)
{
	struct bk_device_info d;
	memset(&d, 0, sizeof(d));
	snprintf(d.busid, sizeof(d.busid), "%s", busid);
	d.idVendor = vid;
	d.idProduct = pid;
	return d;
}

static void test_parse(void **state)
{
	(void)state;
	struct client_rules r = { 0 };
	assert_int_equal(client_rules_add(&r, "bench1=1d6b:0104"), 0);
	assert_int_equal(client_rules_add(&r, "bench2.lab=1-2"), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.rules[1].identity, "bench2.lab");
	assert_int_equal(client_rules_add(&r, "=1d6b"), CLIENT_RULE_E_FORM);
	assert_int_equal(client_rules_add(&r, "bench1"), CLIENT_RULE_E_FORM);
	assert_int_equal(client_rules_add(&r, "bench1="), EXPORT_RULE_E_EMPTY);
	assert_int_equal(client_rules_add(&r, "bench1=xyzzy1:2"), EXPORT_RULE_E_VID);
	assert_int_equal(r.n, 2);
	assert_non_null(client_rule_strerror(CLIENT_RULE_E_FORM));
}

static void test_decision(void **state)
{
	(void)state;
	struct bk_device_info zero = dev("1-1", 0x1d6b, 0x0104), disk = dev("1-2", 0x0525, 0xa4a5);
	struct client_rules r = { 0 };
	/* No rules: everyone, identity or not. */
	assert_true(client_rules_allow(&r, "", &zero));
	assert_true(client_rules_allow(NULL, "x", &zero));
	assert_int_equal(client_rules_add(&r, "bench1=1d6b:0104"), 0);
	assert_int_equal(client_rules_add(&r, "bench2=1-2"), 0);
	assert_true(client_rules_allow(&r, "bench1", &zero));
	assert_false(client_rules_allow(&r, "bench1", &disk));
	assert_true(client_rules_allow(&r, "bench2", &disk));
	assert_false(client_rules_allow(&r, "bench2", &zero));
	assert_false(client_rules_allow(&r, "bench3", &zero)); /* not named: nothing */
	assert_false(client_rules_allow(&r, "", &zero));       /* no identity: nothing */
	assert_false(client_rules_allow(&r, "Bench1", &zero)); /* exact */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_decision),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
