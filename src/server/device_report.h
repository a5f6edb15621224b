/* The device list report behind `usbip-notify-server list`: every device
 * this machine has, whether it is exported and why (the filter's verdict
 * and deciding rule), and, when the report comes from a running server,
 * whether and by whom it is held.
 *
 * Pure: builds text or JSON into a strbuf from plain data, so unit tests
 * feed it fabricated devices. The JSON shape (one object):
 *   { "source": "local" | "server",
 *     "devices": [ { "busid", "vid", "pid" (4 hex digits), "manufacturer",
 *       "product", "serial", "speed" (usbip_speed_name: "low".."super-plus", "unknown"),
 *       "exported" (bool), "reason" (export_verdict_name), "rule" (the
 *       deciding rule's text or null), "held" (bool, null when local),
 *       "held_by" ("ADDR:PORT", null when free, unknown or local) } ] } */
#ifndef USBIP_NOTIFY_SERVER_DEVICE_REPORT_H
#define USBIP_NOTIFY_SERVER_DEVICE_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "common/strbuf.h"
#include "server/export_filter.h"
#include "server/export_table.h"

/* devs: what the backend enumerates (n of them), in the order to print.
 * views: the export table's snapshot (held/held_by), or NULL for a report
 * made without a running server. f: the filter that decides. */
void device_report(struct strbuf *out, bool json, const struct bk_device_info *devs, size_t n,
		   const struct export_filter *f, const struct export_view *views,
		   size_t nviews);

#endif
