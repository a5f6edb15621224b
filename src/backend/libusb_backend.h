/* The real-device backend, on libusb-1.0.
 *
 * Implements backend.h for the USB devices of this machine. libusb's hotplug
 * callbacks drive arrivals and departures: the callback only queues the
 * device, and the backend's rescan thread turns it into BK_DEVICE_* from
 * what libusb already holds (no scan, no device I/O on Linux: descriptors
 * are libusb's cached copy, strings come from sysfs). A full rescan
 * (sysfs on Linux, the backend's own libusb context elsewhere; never a
 * fresh context) runs every rescan_interval_ms where hotplug events cannot
 * be expected (no hotplug in libusb, use_hotplug off, or on Linux no udev
 * daemon, which libusb's hotplug listens to), and only as a safety net at
 * max(rescan_interval_ms, 10 s) where they can (libusb drops events when
 * its udev monitor's socket overflows). A device noticed by both is
 * reported once: each plug yields exactly one BK_DEVICE_ARRIVED and each
 * unplug one BK_DEVICE_LEFT.
 *
 * Devices on a vhci_hcd bus are copies imported from a USB/IP server (maybe
 * ourselves); they are hidden unless include_vhci is set.
 *
 * Threads: enumerate/open and the handle's configuration calls may be made
 * from any thread (they may block on the device); submit/cancel from any
 * thread, including completion callbacks; completions arrive on the event
 * thread that start() creates, BK_DEVICE_* events on its rescan thread.
 *
 * Event-loop integration (backend.h, loop_*): loop_attach stops that event
 * thread (joined; libusb_interrupt_event_handler wakes it from its wait)
 * and registers libusb's pollfd notifiers, which flag the cached fd set
 * dirty and call wake(ctx) from whichever thread opened or closed a
 * device. loop_fds returns libusb's own descriptors (libusb_get_pollfds,
 * refetched only after a change) and, only where those do not carry
 * libusb's timeouts (not Linux), libusb_get_next_timeout as *timeout_ms;
 * it fails with -EOVERFLOW, writing nothing, when they do not fit in max.
 * loop_dispatch is libusb_handle_events_timeout_completed with a zero
 * timeout. loop_detach restarts the event thread when the backend runs.
 * While attached, a synchronous libusb call on another thread (a
 * configuration call, close's drain) handles events itself and so may
 * deliver completions there, and close() with transfers still pending
 * handles events on its own thread rather than wait for the loop. */
#ifndef USBIP_NOTIFY_BACKEND_LIBUSB_BACKEND_H
#define USBIP_NOTIFY_BACKEND_LIBUSB_BACKEND_H

#include <stdbool.h>

#include "backend/backend.h"

#define LIBUSB_BACKEND_DEFAULT_RESCAN_MS 1000u
#define LIBUSB_BACKEND_DEFAULT_SYSFS_ROOT "/sys"

struct libusb_backend_options {
	/* Period of the device-list rescan where hotplug events cannot be
	 * expected (with them, the safety-net period is at least 10 s); 0 turns
	 * it off and leaves only libusb's hotplug (silent without udev). */
	unsigned rescan_interval_ms;
	/* Also list and open devices on vhci_hcd buses. */
	bool include_vhci;
	/* Register libusb's hotplug callback where libusb supports it. */
	bool use_hotplug;
	/* Where sysfs is mounted (vhci detection, strings); tests point it at
	 * a directory of fixture files. The string is copied. */
	const char *sysfs_root;
	/* Transfer buffers in ordinary memory only, never in device memory
	 * (libusb_dev_mem_alloc; see backend.h buf_alloc). */
	bool no_dev_mem;
};

/* Fills in the defaults: rescan every 1000 ms, vhci hidden, hotplug on,
 * sysfs at "/sys". */
void libusb_backend_options_init(struct libusb_backend_options *opt);

/* Creates the backend (its own libusb context). opt may be NULL for the
 * defaults. Returns NULL when libusb cannot be initialised or memory runs
 * out. Destroy with b->ops->destroy(b), after closing every handle. */
struct backend *libusb_backend_new(const struct libusb_backend_options *opt);

#endif
