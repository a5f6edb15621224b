/* Unit tests for server/metrics: slots by busid, counting, and the
 * Prometheus text it renders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/linux_errno.h"
#include "server/metrics.h"

static void test_slots(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	assert_non_null(m);
	struct metrics_device *a = metrics_device(m, "1-1");
	struct metrics_device *b = metrics_device(m, "1-2");
	assert_non_null(a);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(metrics_device(m, "1-1"), a);
	for (int i = 2; i < METRICS_MAX_DEVICES; i++) {
		char busid[16];
		snprintf(busid, sizeof(busid), "2-%d", i);
		assert_non_null(metrics_device(m, busid));
	}
	assert_null(metrics_device(m, "9-9"));
	/* Counting into a missing slot is a no-op, not a crash. */
	metrics_count_urb(NULL, true, 1, 0);
	metrics_count_unlink(NULL, true);
	metrics_count_session(NULL);
	assert_null(metrics_device(NULL, "1-1"));
	metrics_free(m);
}

static void test_render(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	struct metrics_device *d = metrics_device(m, "1-1");
	metrics_device(m, "1-2");
	metrics_count_session(d);
	metrics_count_urb(d, true, 512, 0);
	metrics_count_urb(d, true, 100, 0);
	metrics_count_urb(d, false, 64, -LNX_EPIPE);
	metrics_count_unlink(d, true);
	metrics_count_unlink(d, false);
	struct metrics_gauges g = { .exported = 2, .sessions = 1, .subscribers = 3,
				    .notify_enabled = true };
	struct strbuf sb;
	sb_init(&sb);
	metrics_render(&sb, &g, m);
	const char *t = sb_str(&sb);
	static const char *want[] = {
		"# TYPE usbip_notify_exported_devices gauge\nusbip_notify_exported_devices 2\n",
		"\nusbip_notify_sessions 1\n",
		"\nusbip_notify_notify_subscribers 3\n",
		"# TYPE usbip_notify_device_urbs_total counter\n",
		"\nusbip_notify_device_sessions_total{busid=\"1-1\"} 1\n",
		"\nusbip_notify_device_urbs_total{busid=\"1-1\"} 3\n",
		"\nusbip_notify_device_urbs_total{busid=\"1-2\"} 0\n",
		"\nusbip_notify_device_urb_errors_total{busid=\"1-1\"} 1\n",
		"\nusbip_notify_device_bytes_in_total{busid=\"1-1\"} 612\n",
		"\nusbip_notify_device_bytes_out_total{busid=\"1-1\"} 64\n",
		"\nusbip_notify_device_unlinks_total{busid=\"1-1\"} 2\n",
		"\nusbip_notify_device_unlinks_won_total{busid=\"1-1\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(t, want[i]))
			fail_msg("missing %s in\n%s", want[i], t);
	}
	/* Every line is a comment or "name{labels} value". */
	for (const char *p = t; *p;) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		if (*p != '#') {
			const char *sp = memchr(p, ' ', (size_t)(nl - p));
			assert_non_null(sp);
			assert_true(strspn(sp + 1, "0123456789") == (size_t)(nl - sp - 1));
		}
		p = nl + 1;
	}
	sb_free(&sb);

	/* Without the notify channel its gauge is left out; no table: gauges only. */
	g.notify_enabled = false;
	sb_init(&sb);
	metrics_render(&sb, &g, NULL);
	assert_null(strstr(sb_str(&sb), "subscribers"));
	assert_null(strstr(sb_str(&sb), "device_"));
	assert_non_null(strstr(sb_str(&sb), "usbip_notify_exported_devices 2\n"));
	sb_free(&sb);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
