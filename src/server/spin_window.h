/* How long the engine's loop polls without sleeping before it blocks.
 *
 * The loop waits for the device (a bulk or control URB is at it), for the
 * client (a session just answered), or for nothing that comes soon. A
 * window for each of the first two kinds, learnt from how long the last
 * waits of that kind lasted, in the manner of Linux's guest halt polling:
 * a wait that a longer window would have met awake, or nearly, grows it; a
 * wait far longer than the largest window shrinks it, since spinning
 * through it only burns the CPU. So a disk's quick turn-arounds are met
 * awake while an idle serial adapter, whose read completes every 16 ms, is
 * waited for asleep. Pure and single-threaded: the engine's loop owns one. */
#ifndef USBIP_NOTIFY_SPIN_WINDOW_H
#define USBIP_NOTIFY_SPIN_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

enum spin_wait {
	SPIN_WAIT_CLIENT, /* a session just answered: its next command */
	SPIN_WAIT_DEVICE, /* a bulk or control completion */
	/* Nothing that comes soon on its own: only interrupt or isochronous
	 * URBs at the device (they complete on the device's schedule, a key
	 * press or the next frame, which no spin hastens), or an idle client.
	 * Never spun, in any mode, and never learnt from. */
	SPIN_WAIT_IDLE,
	SPIN_WAITS
};

struct spin_window {
	unsigned max_us;             /* 0: never spin */
	bool adaptive;               /* false: always max_us */
	unsigned win_us[SPIN_WAITS]; /* learnt, 0..max_us */
	unsigned long_run[SPIN_WAITS]; /* waits in a row over half of max_us */
};

/* A window of at most max_us microseconds, learnt when adaptive, else
 * always max_us. Learnt windows start at 0. */
void spin_window_init(struct spin_window *w, unsigned max_us, bool adaptive);

/* Microseconds to poll awake before blocking, for a wait of this kind. */
unsigned spin_window_us(const struct spin_window *w, enum spin_wait kind);

/* A wait of this kind ended after waited_us (awake or asleep). */
void spin_window_learn(struct spin_window *w, enum spin_wait kind, int64_t waited_us);

#endif
