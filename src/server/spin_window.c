/* The busy-poll window's rule: a wait that ended after the window but
 * within SPIN_LONG_FACTOR times the largest doubles it (from an eighth of
 * the largest, up to the largest); a longer wait halves it, and below the
 * eighth it closes. The factor is there because a wait measured asleep is
 * longer than the same wait met awake (the wake-up is in it), and because
 * a disk's 120 KiB transfer (1.5 ms in a QEMU guest) is often met by a 1 ms
 * window and always soon after it: with the largest window as the limit,
 * a guest's disk never opened the window, or halved it on every transfer,
 * and lost a tenth of its throughput. A serial adapter's 16 ms read is
 * far past it.
 *
 * A run of SPIN_LONG_RUN waits in a row, each over half the largest
 * window, halves it too, met awake or not: an FTDI adapter at a 1 ms
 * latency timer answers every millisecond, and spinning through each of
 * those waits kept a core busy to save one wake-up per millisecond. A
 * disk's short status waits break such runs. */
#include "server/spin_window.h"

#include <string.h>

#define SPIN_LONG_FACTOR 4
#define SPIN_LONG_RUN 8

void spin_window_init(struct spin_window *w, unsigned max_us, bool adaptive)
{
	memset(w, 0, sizeof(*w));
	w->max_us = max_us;
	w->adaptive = adaptive;
}

unsigned spin_window_us(const struct spin_window *w, enum spin_wait kind)
{
	if (kind == SPIN_WAIT_IDLE)
		return 0;
	return w->adaptive ? w->win_us[kind] : w->max_us;
}

void spin_window_learn(struct spin_window *w, enum spin_wait kind, int64_t waited_us)
{
	unsigned *win = &w->win_us[kind], *run = &w->long_run[kind];
	unsigned floor = w->max_us >= 8 ? w->max_us / 8 : 1;
	if (!w->adaptive || kind == SPIN_WAIT_IDLE)
		return;
	if (waited_us * 2 <= (int64_t)w->max_us)
		*run = 0;
	else if (*run < SPIN_LONG_RUN)
		(*run)++;
	bool long_run = *run >= SPIN_LONG_RUN;
	if (waited_us <= (int64_t)*win && !long_run)
		return;
	if (waited_us <= (int64_t)w->max_us * SPIN_LONG_FACTOR && !long_run) {
		unsigned grown = *win * 2;
		if (grown < floor)
			grown = floor;
		*win = grown < w->max_us ? grown : w->max_us;
		return;
	}
	*win /= 2;
	if (*win < floor)
		*win = 0;
}
