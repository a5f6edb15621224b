/* Per-device counters and their Prometheus text: see metrics.h. */
#include "server/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct metrics_device *metrics_device(struct metrics *m, const char *busid)
{
	if (!m)
		return NULL;
	struct metrics_device *d = NULL;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->devs[i].busid, busid) == 0) {
			d = &m->devs[i];
			break;
		}
	}
	if (!d && m->n < METRICS_MAX_DEVICES) {
		d = &m->devs[m->n];
		snprintf(d->busid, sizeof(d->busid), "%s", busid);
		m->n++;
	}
	pthread_mutex_unlock(&m->lock);
	return d;
}

static void gauge(struct strbuf *out, const char *name, const char *help, unsigned v)
{
	sb_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %u\n", name, help, name, name, v);
}

struct counter_def {
	const char *name;
	const char *help;
	size_t offset;
};

static const struct counter_def counters[] = {
	{ "usbip_notify_device_sessions_total", "Imports of the device.",
	  offsetof(struct metrics_device, sessions) },
	{ "usbip_notify_device_urbs_total", "URBs completed (RET_SUBMIT sent).",
	  offsetof(struct metrics_device, urbs) },
	{ "usbip_notify_device_urb_errors_total", "URBs completed with a non-zero status.",
	  offsetof(struct metrics_device, urb_errors) },
	{ "usbip_notify_device_bytes_in_total", "Bytes from the device to the client.",
	  offsetof(struct metrics_device, bytes_in) },
	{ "usbip_notify_device_bytes_out_total", "Bytes from the client to the device.",
	  offsetof(struct metrics_device, bytes_out) },
	{ "usbip_notify_device_unlinks_total", "CMD_UNLINKs received.",
	  offsetof(struct metrics_device, unlinks) },
	{ "usbip_notify_device_unlinks_won_total",
	  "CMD_UNLINKs that cancelled their URB (-ECONNRESET).",
	  offsetof(struct metrics_device, unlinks_won) },
};

void metrics_render(struct strbuf *out, const struct metrics_gauges *g, struct metrics *m)
{
	gauge(out, "usbip_notify_exported_devices", "Devices offered for import now.",
	      g->exported);
	gauge(out, "usbip_notify_sessions", "Devices held by a USB/IP session now.", g->sessions);
	if (g->notify_enabled)
		gauge(out, "usbip_notify_notify_subscribers", "Notify channel subscribers now.",
		      g->subscribers);
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	size_t n = m->n;
	pthread_mutex_unlock(&m->lock);
	/* Slots below n are complete and never move: read them unlocked. */
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		sb_printf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name,
			  counters[c].help, counters[c].name);
		for (size_t i = 0; i < n; i++) {
			const atomic_uint_fast64_t *v =
				(const atomic_uint_fast64_t *)((const char *)&m->devs[i] +
							       counters[c].offset);
			/* busids are digits, '-' and '.': nothing to escape. */
			sb_printf(out, "%s{busid=\"%s\"} %" PRIuFAST64 "\n", counters[c].name,
				  m->devs[i].busid,
				  (uint_fast64_t)atomic_load_explicit(v, memory_order_relaxed));
		}
	}
}
