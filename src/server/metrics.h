/* Per-device USB/IP counters for the metrics endpoint, and their
 * Prometheus text rendering.
 *
 * The counters are plain atomics, so the session code that counts (see
 * metrics_count_* below) pays one relaxed atomic add per URB and takes no
 * lock. A device's slot is found or made once per session
 * (metrics_device(), under the table's lock) and its pointer stays valid
 * until metrics_free(): slots are never removed, so a device's totals
 * survive its sessions and re-plugs (keyed by busid), as Prometheus
 * counters must. No globals: the server's main owns one struct metrics. */
#ifndef USBIP_NOTIFY_SERVER_METRICS_H
#define USBIP_NOTIFY_SERVER_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "proto/usbip_codec.h"

#define METRICS_MAX_DEVICES 256

struct metrics_device {
	char busid[USBIP_BUSID_SIZE];
	atomic_uint_fast64_t urbs;       /* RET_SUBMITs sent (every CMD_SUBMIT gets one) */
	atomic_uint_fast64_t urb_errors; /* of those, with status != 0 */
	atomic_uint_fast64_t bytes_in;   /* device to host: actual_length of IN URBs */
	atomic_uint_fast64_t bytes_out;  /* host to device: actual_length of OUT URBs */
	atomic_uint_fast64_t unlinks;    /* CMD_UNLINKs received */
	atomic_uint_fast64_t unlinks_won; /* of those, answered -ECONNRESET */
	atomic_uint_fast64_t sessions;   /* imports of this device */
};

struct metrics {
	pthread_mutex_t lock; /* guards n and the busid of new slots */
	size_t n;
	struct metrics_device devs[METRICS_MAX_DEVICES];
};

/* The table is large: allocate it (NULL on no memory). */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* The slot for busid, made on first use; NULL when the table is full (then
 * counting is skipped: every metrics_count_* takes NULL). */
struct metrics_device *metrics_device(struct metrics *m, const char *busid);

/* Counting, from any thread; d may be NULL. */
static inline void metrics_count_session(struct metrics_device *d)
{
	if (d)
		atomic_fetch_add_explicit(&d->sessions, 1, memory_order_relaxed);
}

/* One RET_SUBMIT: in = direction IN, actual = its actual_length, status
 * its (negative errno) status. */
static inline void metrics_count_urb(struct metrics_device *d, bool in, uint32_t actual,
				     int32_t status)
{
	if (!d)
		return;
	atomic_fetch_add_explicit(&d->urbs, 1, memory_order_relaxed);
	if (status != 0)
		atomic_fetch_add_explicit(&d->urb_errors, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(in ? &d->bytes_in : &d->bytes_out, actual,
				  memory_order_relaxed);
}

/* One CMD_UNLINK; won = it was answered RET_UNLINK -ECONNRESET. */
static inline void metrics_count_unlink(struct metrics_device *d, bool won)
{
	if (!d)
		return;
	atomic_fetch_add_explicit(&d->unlinks, 1, memory_order_relaxed);
	if (won)
		atomic_fetch_add_explicit(&d->unlinks_won, 1, memory_order_relaxed);
}

/* Gauges the server knows at scrape time. */
struct metrics_gauges {
	unsigned exported;     /* devices offered now */
	unsigned sessions;     /* devices held by a session now */
	unsigned subscribers;  /* notify subscribers now */
	bool notify_enabled;
};

/* Renders Prometheus text format 0.0.4: the gauges, then every device's
 * counters labelled {busid="..."}. m may be NULL (gauges only). */
void metrics_render(struct strbuf *out, const struct metrics_gauges *g, struct metrics *m);

#endif
