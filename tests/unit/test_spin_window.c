/* Unit tests for server/spin_window: the busy-poll window's growth,
 * shrinking and floor, each kind of wait on its own, and the fixed mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/spin_window.h"

static void test_fixed_is_always_max(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 1000, false);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_CLIENT), 1000);
	spin_window_learn(&w, SPIN_WAIT_CLIENT, 50000);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_CLIENT), 1000);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 1000);
}

static void test_off_never_spins(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 0, true);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 10);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 0);
}

/* Short waits grow the window from an eighth of the largest, doubling, up
 * to the largest; a wait already within the window leaves it; so do waits
 * of up to four times the largest (a wait measured asleep has the wake-up
 * in it). */
static void test_grows_to_cover_short_waits(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 1000, true);
	static const struct {
		int64_t waited;
		unsigned after;
	} steps[] = {
		{ 30, 125 },    /* floor */
		{ 100, 125 },   /* within: kept */
		{ 126, 250 },
		{ 3000, 500 },  /* met asleep, nearly in reach */
		{ 400, 500 },
		{ 4000, 1000 },
		{ 4000, 1000 }, /* the largest is never passed */
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		spin_window_learn(&w, SPIN_WAIT_DEVICE, steps[i].waited);
		assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), steps[i].after);
	}
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_CLIENT), 0);
}

/* Waits longer than the largest window halve it, and below the floor it
 * closes: an idle device's 16 ms reads are slept through. */
static void test_long_waits_close_it(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 1000, true);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 900);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 900);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 900);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 900);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 1000);
	static const unsigned after[] = { 500, 250, 125, 0, 0 };
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 16000);
		assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), after[i]);
	}
}

/* A disk's command: short waits and a transfer a little longer than the
 * largest window open it fully and keep it open; only a far longer wait
 * halves it. */
static void test_disk_keeps_it_open(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 1000, true);
	for (int cmd = 0; cmd < 20; cmd++) {
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 1300); /* the command block, asleep */
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 1600); /* 120 KiB */
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 200);  /* the status */
	}
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 1000);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 4001);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 500);
}

/* Waits of about the largest window, one after another (an FTDI adapter's
 * status every 1 ms), open it and then, after eight in a row over half of
 * it, close it even when met awake; one short wait lets it grow again. */
static void test_a_run_of_long_waits_closes_it(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 1000, true);
	static const unsigned after[] = { 125, 250, 500, 1000, 1000, 1000, 1000,
					  500, 250, 125, 0, 0 };
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 990);
		assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), after[i]);
	}
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 200);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 125);
	spin_window_learn(&w, SPIN_WAIT_DEVICE, 990);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 250);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_CLIENT), 0);
}

/* A wait for nothing that comes soon (only interrupt or iso URBs at the
 * device, or an idle client) is never spun, fixed window or learnt, and
 * teaches nothing: a device window learnt from a disk survives it. */
static void test_idle_waits_never_spin(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 1000, false);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_IDLE), 0);

	spin_window_init(&w, 1000, true);
	for (int i = 0; i < 8; i++) {
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 900);
		spin_window_learn(&w, SPIN_WAIT_IDLE, 900);
		spin_window_learn(&w, SPIN_WAIT_DEVICE, 200);
	}
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_IDLE), 0);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 1000);
	spin_window_learn(&w, SPIN_WAIT_IDLE, 1000000);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_DEVICE), 1000);
	assert_int_equal(spin_window_us(&w, SPIN_WAIT_CLIENT), 0);
}

/* A tiny largest window still grows (its floor is 1 us, not 0). */
static void test_tiny_max(void **state)
{
	(void)state;
	struct spin_window w;
	spin_window_init(&w, 4, true);
	static const unsigned after[] = { 1, 2, 4, 4 };
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		spin_window_learn(&w, SPIN_WAIT_CLIENT, 3);
		assert_int_equal(spin_window_us(&w, SPIN_WAIT_CLIENT), after[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_is_always_max),
		cmocka_unit_test(test_off_never_spins),
		cmocka_unit_test(test_grows_to_cover_short_waits),
		cmocka_unit_test(test_long_waits_close_it),
		cmocka_unit_test(test_disk_keeps_it_open),
		cmocka_unit_test(test_tiny_max),
		cmocka_unit_test(test_idle_waits_never_spin),
		cmocka_unit_test(test_a_run_of_long_waits_closes_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
