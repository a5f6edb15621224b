/* Unit tests for server/auth_hosts: live subscriptions, the grace period,
 * address identity and the size bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "server/auth_hosts.h"

static struct cidr_addr addr(const char *text)
{
	struct cidr c;
	assert_int_equal(cidr_parse(text, &c), CIDR_OK);
	return c.net;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void test_live_and_grace(void **state)
{
	(void)state;
	struct auth_hosts *t = auth_hosts_new(300);
	assert_non_null(t);
	struct cidr_addr a = addr("10.0.0.9"), b = addr("10.0.0.10");

	assert_false(auth_hosts_allowed(t, &a));
	assert_int_equal(auth_hosts_login(t, &a), 0);
	assert_true(auth_hosts_allowed(t, &a));
	assert_false(auth_hosts_allowed(t, &b));

	/* Two subscriptions: the host stays live until both are gone. */
	assert_int_equal(auth_hosts_login(t, &a), 0);
	auth_hosts_logout(t, &a);
	sleep_ms(400);
	assert_true(auth_hosts_allowed(t, &a));

	/* Last one gone: allowed during the grace, not after. */
	auth_hosts_logout(t, &a);
	assert_true(auth_hosts_allowed(t, &a));
	assert_int_equal(auth_hosts_count(t), 1);
	sleep_ms(400);
	assert_false(auth_hosts_allowed(t, &a));
	assert_int_equal(auth_hosts_count(t), 0);

	/* A logout without a login changes nothing. */
	auth_hosts_logout(t, &b);
	assert_false(auth_hosts_allowed(t, &b));
	auth_hosts_free(t);
}

static void test_reconnect_within_grace(void **state)
{
	(void)state;
	struct auth_hosts *t = auth_hosts_new(300);
	struct cidr_addr a = addr("fd00::1");

	assert_int_equal(auth_hosts_login(t, &a), 0);
	auth_hosts_logout(t, &a);
	sleep_ms(200);
	assert_int_equal(auth_hosts_login(t, &a), 0); /* back before the grace ended */
	sleep_ms(200);
	assert_true(auth_hosts_allowed(t, &a));       /* live again, no expiry */
	assert_int_equal(auth_hosts_count(t), 1);     /* one host, not two */
	auth_hosts_free(t);
}

static void test_mapped_is_same_host(void **state)
{
	(void)state;
	struct auth_hosts *t = auth_hosts_new(1000);
	struct cidr_addr v4 = addr("192.0.2.7"), mapped = addr("::ffff:192.0.2.7");
	struct cidr_addr v6 = addr("::1"), v4lo = addr("127.0.0.1");

	assert_int_equal(auth_hosts_login(t, &mapped), 0);
	assert_true(auth_hosts_allowed(t, &v4));
	assert_int_equal(auth_hosts_login(t, &v6), 0);
	assert_false(auth_hosts_allowed(t, &v4lo)); /* ::1 and 127.0.0.1 differ */
	auth_hosts_free(t);
}

static void test_zero_grace(void **state)
{
	(void)state;
	struct auth_hosts *t = auth_hosts_new(0);
	struct cidr_addr a = addr("10.1.1.1");
	assert_int_equal(auth_hosts_login(t, &a), 0);
	assert_true(auth_hosts_allowed(t, &a));
	auth_hosts_logout(t, &a);
	assert_false(auth_hosts_allowed(t, &a));
	auth_hosts_free(t);
}

static struct cidr_addr nth(unsigned i)
{
	struct cidr_addr a;
	memset(&a, 0, sizeof(a));
	a.b[0] = 0xfd;
	a.b[14] = (uint8_t)(i >> 8);
	a.b[15] = (uint8_t)i;
	return a;
}

static void test_bound(void **state)
{
	(void)state;
	struct auth_hosts *t = auth_hosts_new(60000);
	for (unsigned i = 0; i < AUTH_HOSTS_MAX; i++) {
		struct cidr_addr a = nth(i);
		assert_int_equal(auth_hosts_login(t, &a), 0);
	}
	struct cidr_addr extra = nth(AUTH_HOSTS_MAX);
	/* Full of live hosts: refused, nothing forgotten. */
	assert_int_equal(auth_hosts_login(t, &extra), -ENOMEM);
	assert_false(auth_hosts_allowed(t, &extra));
	assert_int_equal(auth_hosts_count(t), AUTH_HOSTS_MAX);

	/* One goes idle: it is the one forgotten to make room. */
	struct cidr_addr idle = nth(7);
	auth_hosts_logout(t, &idle);
	assert_int_equal(auth_hosts_login(t, &extra), 0);
	assert_true(auth_hosts_allowed(t, &extra));
	assert_false(auth_hosts_allowed(t, &idle));
	struct cidr_addr live = nth(8);
	assert_true(auth_hosts_allowed(t, &live));
	auth_hosts_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_and_grace),
		cmocka_unit_test(test_reconnect_within_grace),
		cmocka_unit_test(test_mapped_is_same_host),
		cmocka_unit_test(test_zero_grace),
		cmocka_unit_test(test_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
