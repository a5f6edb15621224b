/* Unit tests for server/device_report: the list command's text and JSON
 * over fabricated devices, with and without a running server's view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/device_report.h"

static struct bk_device_info dev(const char *busid, uint16_t vid, uint16_t pid,
				 const char *product, bool vhci)
{
	struct bk_device_info d;
	memset(&d, 0, sizeof(d));
	strcpy(d.busid, busid);
	d.idVendor = vid;
	d.idProduct = pid;
	d.speed = USBIP_SPEED_FULL;
	strcpy(d.manufacturer, "ACME");
	strcpy(d.product, product);
	strcpy(d.serial, "S\"1");
	d.on_vhci = vhci;
	return d;
}

static void test_json_local_and_live(void **state)
{
	(void)state;
	struct bk_device_info devs[3] = {
		dev("1-1", 0x1d50, 0x6018, "Black Magic Probe", false),
		dev("1-2", 0x0403, 0x6010, "FT2232H", false),
		dev("3-1", 0x1234, 0x0001, "Imported", true),
	};
	struct export_filter f;
	export_filter_init(&f, false);
	assert_int_equal(export_filter_add(&f, false, "0403"), EXPORT_RULE_OK);

	struct strbuf sb;
	sb_init(&sb);
	device_report(&sb, true, devs, 3, &f, NULL, 0);
	const char *t = sb_str(&sb);
	assert_non_null(strstr(t, "{\"source\":\"local\",\"devices\":[{\"busid\":\"1-1\","
				  "\"vid\":\"1d50\",\"pid\":\"6018\",\"manufacturer\":\"ACME\","
				  "\"product\":\"Black Magic Probe\",\"serial\":\"S\\\"1\","
				  "\"speed\":\"full\",\"exported\":true,\"reason\":\"offered\","
				  "\"rule\":null,\"held\":null,\"held_by\":null}"));
	assert_non_null(strstr(t, "\"exported\":false,\"reason\":\"deny\",\"rule\":\"0403\""));
	assert_non_null(strstr(t, "\"exported\":false,\"reason\":\"vhci\",\"rule\":null"));
	assert_int_equal(t[strlen(t) - 1], '\n');
	sb_free(&sb);

	struct export_view views[1];
	memset(views, 0, sizeof(views));
	views[0].info = devs[0];
	views[0].held = true;
	strcpy(views[0].held_by, "10.0.0.2:40112");
	sb_init(&sb);
	device_report(&sb, true, devs, 3, &f, views, 1);
	t = sb_str(&sb);
	assert_non_null(strstr(t, "{\"source\":\"server\""));
	assert_non_null(strstr(t, "\"held\":true,\"held_by\":\"10.0.0.2:40112\"}"));
	assert_non_null(strstr(t, "\"rule\":\"0403\",\"held\":false,\"held_by\":null}"));
	sb_free(&sb);

	sb_init(&sb);
	device_report(&sb, false, devs, 3, &f, views, 1);
	t = sb_str(&sb);
	assert_non_null(strstr(t, "1-1        1d50:6018  full       ACME Black Magic Probe"));
	assert_non_null(strstr(t, "held by 10.0.0.2:40112\n"));
	assert_non_null(strstr(t, "hidden: deny 0403\n"));
	assert_non_null(strstr(t, "hidden: on vhci_hcd"));
	sb_free(&sb);
}

static void test_empty(void **state)
{
	(void)state;
	struct export_filter f;
	export_filter_init(&f, false);
	struct strbuf sb;
	sb_init(&sb);
	device_report(&sb, true, NULL, 0, &f, NULL, 0);
	assert_string_equal(sb_str(&sb), "{\"source\":\"local\",\"devices\":[]}\n");
	sb_free(&sb);
	sb_init(&sb);
	device_report(&sb, false, NULL, 0, &f, NULL, 0);
	assert_non_null(strstr(sb_str(&sb), "no USB devices found"));
	sb_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_local_and_live),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
