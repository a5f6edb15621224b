/* Unit tests for common/strbuf: the buffer grows, and the JSON writer
 * places commas, colons and escapes right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/strbuf.h"

static void test_grow(void **state)
{
	(void)state;
	struct strbuf sb;
	sb_init(&sb);
	assert_string_equal(sb_str(&sb), "");
	for (int i = 0; i < 1000; i++)
		sb_printf(&sb, "%d,", i % 10);
	assert_int_equal(sb.len, 2000);
	assert_false(sb.failed);
	assert_memory_equal(sb_str(&sb), "0,1,2,", 6);
	sb_free(&sb);
}

static void test_json(void **state)
{
	(void)state;
	struct strbuf sb;
	struct json_writer w;
	sb_init(&sb);
	json_init(&w, &sb);
	json_obj_begin(&w);
	json_key(&w, "a");
	json_int(&w, -3);
	json_key(&w, "list");
	json_arr_begin(&w);
	json_str(&w, "x\"y\\z\n\x01");
	json_bool(&w, true);
	json_null(&w);
	json_obj_begin(&w);
	json_obj_end(&w);
	json_arr_begin(&w);
	json_arr_end(&w);
	json_arr_end(&w);
	json_key(&w, "s");
	json_str(&w, NULL);
	json_key(&w, "b");
	json_bool(&w, false);
	json_obj_end(&w);
	assert_false(sb.failed);
	assert_string_equal(sb_str(&sb), "{\"a\":-3,\"list\":[\"x\\\"y\\\\z\\u000a\\u0001\",true,"
					 "null,{},[]],\"s\":null,\"b\":false}");
	sb_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
