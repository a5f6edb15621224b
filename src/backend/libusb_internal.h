/* Internals of the libusb backend, shared by its files and its unit tests.
 *
 * Files: libusb_backend.c (lifecycle, event thread, hotplug, handle calls),
 * libusb_enum.c (device lists and bk_device_info), libusb_transfer.c
 * (asynchronous transfers), libusb_sysfs.c (pure sysfs helpers: reads,
 * the Linux scan, the uevent filter), libusb_os_linux.c / libusb_os_darwin.c
 * (what libusb does differently per OS; the build picks one).
 *
 * Threads (all started by start() and joined by stop()): the event thread
 * (libusb_handle_events: completions and libusb's hotplug callback, which
 * only queues; absent while a caller's loop is attached), the rescan
 * thread (handles the queue, rescans, delivers every BK_DEVICE_* event),
 * and on Linux without a udev daemon the uevent thread (kernel uevents:
 * only asks the rescan thread for a scan).
 *
 * Locking (never held while calling a completion or hotplug callback):
 * - lu_backend.lock guards known/nknown, the hotplug queue, rescan_now, running,
 *   event_thread_on and loop_attached; rescan_cond (with it) wakes the
 *   rescan thread.
 * - life_lock serialises start/stop/loop_attach/loop_detach/destroy; it is
 *   taken before lock and held while joining the threads (none takes it).
 *   Hence none of those may be called from a completion or hotplug
 *   callback.
 * - loop_pollfds/loop_npollfds belong to the thread that called loop_attach
 *   (the caller's loop). loop_dirty is atomic: libusb's pollfd notifiers set
 *   it from whichever thread opens or closes a device. wake_lock guards
 *   loop_wake/loop_ctx, so that once loop_detach returns no notifier is
 *   still calling the caller's wake(); nothing else is taken under it.
 * - lu_handle.ctl_lock serialises the handle's configuration calls and
 *   guards claimed[]/detached[]; it may be held across blocking libusb calls.
 * - lu_handle.xfer_lock guards the pending list, in_flight and the priv
 *   field of every pending bk_transfer. It is held across
 *   libusb_submit_transfer/libusb_cancel_transfer, which never run our
 *   callback synchronously, so the order is xfer_lock -> libusb internals.
 * A thread never takes ctl_lock while holding xfer_lock. */
#ifndef USBIP_NOTIFY_BACKEND_LIBUSB_INTERNAL_H
#define USBIP_NOTIFY_BACKEND_LIBUSB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libusb.h>

#include "backend/backend.h"

#define LU_MAX_IFACE_NUM 256 /* bInterfaceNumber is a byte */

/* A libusb hotplug notification, queued for the rescan thread. */
struct lu_hp_event {
	struct lu_hp_event *next;
	libusb_device *dev; /* a reference of ours */
	bool arrived;       /* else left */
};

/* Interface drivers taken from a device at export (libusb_drivers.c). */
#define LU_TAKEN_MAX_IFACES 32
struct lu_taken {
	char busid[USBIP_BUSID_SIZE];
	uint8_t busnum, devnum; /* which device: a port is reused */
	uint8_t ifaces[LU_TAKEN_MAX_IFACES];
	unsigned n;
};

struct lu_backend {
	struct backend base;
	libusb_context *ctx;
	char *sysfs_root;
	unsigned rescan_ms;
	bool include_vhci;
	bool no_dev_mem;
	bool use_hotplug;

	pthread_mutex_t lock;
	struct bk_device_info *known; /* what the last rescan saw */
	size_t nknown;
	struct lu_hp_event *hp_head;  /* hotplug events not yet handled */
	struct lu_hp_event **hp_tail;
	bool rescan_now;              /* a full rescan is wanted */
	unsigned scan_ms;             /* rescan period in use (0: none), set by start */
	bool running;

	atomic_bool stopping;         /* read by the event thread without the lock */
	atomic_bool event_stop;       /* the event thread alone is asked to end */
	pthread_t thread;             /* libusb events: completions only */
	bool event_thread_on;         /* thread is joinable; under lock (and life_lock) */
	pthread_t rescan_thread;      /* device list diffs and hotplug callbacks */
	pthread_cond_t rescan_cond;
	libusb_hotplug_callback_handle hp_handle;
	bool hp_registered;

	/* Linux without a udev daemon: kernel uevents wake the rescan thread
	 * (the uevent thread's own; started and stopped under life_lock). */
	int uevent_fd;
	int uevent_stop[2];
	pthread_t uevent_thread;
	bool uevent_on;

	/* Serialises start/stop/loop_attach/loop_detach/destroy. Never taken
	 * by the event thread, so it may be held while joining it. */
	pthread_mutex_t life_lock;

	/* Event-loop integration (backend.h, loop_*). */
	bool loop_attached;           /* under lock (written under life_lock too) */
	pthread_mutex_t wake_lock;    /* guards loop_wake/loop_ctx against detach */
	void (*loop_wake)(void *ctx);
	void *loop_ctx;
	atomic_bool loop_dirty;       /* libusb's fd set changed since loop_fds */
	const struct libusb_pollfd **loop_pollfds; /* cached libusb_get_pollfds */
	int loop_npollfds;

	struct lu_taken *taken;       /* drivers to give back at stop; under lock */
	size_t ntaken;
};

struct lu_xfer;

struct lu_handle {
	struct bk_handle base;
	struct lu_backend *b;
	libusb_device_handle *dh;
	int sys_fd; /* fd we opened for libusb_wrap_sys_device, else -1 */

	pthread_mutex_t ctl_lock;
	bool claimed[LU_MAX_IFACE_NUM];
	bool detached[LU_MAX_IFACE_NUM]; /* we took it from a kernel driver */

	pthread_mutex_t xfer_lock;
	pthread_cond_t idle;        /* signalled when in_flight drops to 0 */
	struct lu_xfer *pending;    /* submitted, completion not yet delivered */
	unsigned in_flight;

	atomic_bool used;           /* a transfer was submitted since the last reset */
	/* Device memory (lu_buf_alloc): off by option, or refused since the
	 * last buffer given back (usbfs's memory limit): plain memory then. */
	bool no_dev_mem;
	atomic_bool dev_mem_refused;
};

/* ---- libusb_sysfs.c: pure helpers over a sysfs tree ------------------- */

/* Reads <root>/bus/usb/devices/<dev>/<attr> into out (NUL-terminated, one
 * trailing newline removed, control characters replaced by '?'). Returns
 * its length, -LNX_ENOENT when the file does not exist, -LNX_EIO on other
 * failures, -LNX_EINVAL when the path does not fit. */
int lu_sysfs_read_attr(const char *root, const char *dev, const char *attr,
		       char *out, size_t n);

/* 1 when bus busnum belongs to a vhci_hcd controller: the usbN link points
 * under a "vhci_hcd" device, or the root hub's product names the USB/IP
 * virtual host controller. 0 otherwise, also when there is no such bus. */
int lu_sysfs_bus_is_vhci(const char *root, unsigned busnum);

/* Replaces bytes below 0x20 and 0x7f with '?': device strings travel in
 * line-based notify messages and logs. */
void lu_sanitize_string(char *s);

/* USB/IP speed for the text of a device's sysfs "speed" ("480", ...);
 * 0 (unknown) for anything else. */
uint32_t lu_sysfs_speed(const char *text);

/* Fills info for device busid from <root>/bus/usb/devices/<busid>: what
 * the kernel cached at enumeration, so no USB traffic and no access to the
 * device node. names are that directory's entries (interface entries
 * "BUSID:CFG.IF" give the interface classes). Returns 0, -LNX_ENOENT for
 * what we do not list (not a device, vhci copies unless include_vhci),
 * -LNX_ENODEV for a device whose files vanish under us, -LNX_EBUSY for one
 * being reset (its devnum reads 0 until it has its address back),
 * -LNX_EINVAL for unparsable ones. */
int lu_sysfs_device_info(const char *root, bool include_vhci, const char *busid,
			 char *const *names, size_t nnames, struct bk_device_info *info);

/* Every device under <root>/bus/usb/devices (no root hubs, no vhci copies
 * unless include_vhci), read from sysfs alone: the Linux rescan, current
 * whether or not a udev daemon runs and with no libusb context. A missing
 * tree is 0 devices. *out is malloc'ed (NULL when count is 0). */
int lu_sysfs_scan(const char *root, bool include_vhci, struct bk_device_info **out,
		  size_t *count);

/* Whether known (a device an earlier scan listed) may still be there:
 * false only when its sysfs entry is gone or its port now holds another
 * device (a different non-zero devnum). Attributes that cannot be read or
 * parsed for a moment, and the devnum 0 of a device being reset, keep it:
 * resets, configuration changes and driver (un)binding do all that to a
 * device that never left. */
bool lu_sysfs_still_there(const char *root, const struct bk_device_info *known);

/* Appends to *cur (a fresh scan, *ncur entries, malloc'ed) every entry of
 * known whose busid the scan did not list but that lu_sysfs_still_there
 * keeps, so that a scan racing with a reset or a configuration change
 * reports no departure (and later no second arrival). A busid the scan
 * lists under another devnum is a re-plug: the old entry is not kept.
 * Returns 0 or -LNX_ENOMEM (then *cur holds what was appended so far). */
int lu_sysfs_keep_present(const char *root, const struct bk_device_info *known, size_t nknown,
			  struct bk_device_info **cur, size_t *ncur);

/* Bus and device number of busid from sysfs; -LNX_ENODEV when absent (or
 * on a vhci bus unless include_vhci). */
int lu_sysfs_locate(const char *root, bool include_vhci, const char *busid, uint8_t *busnum,
		    uint8_t *devnum);

/* True for a kernel uevent (NETLINK_KOBJECT_UEVENT, "ACTION@DEVPATH" then
 * NUL-separated KEY=VALUE) that a USB device was bound to its driver
 * (configured: its interfaces are in sysfs) or removed. */
bool lu_uevent_wants_rescan(const char *msg, size_t n);

/* ---- libusb_enum.c ---------------------------------------------------- */

/* busid for a port path as libusb_get_port_numbers returns it (n is its
 * result, maybe negative); -LNX_ENOENT for a root hub (n == 0), an error,
 * or a path that busid_format refuses. */
int lu_busid_from_ports(uint8_t busnum, const uint8_t *ports, int n,
			char busid[USBIP_BUSID_SIZE]);

/* busid and port path of dev; -LNX_ENOENT for a root hub or a device whose
 * port path does not make a valid busid. */
int lu_device_busid(libusb_device *dev, char busid[USBIP_BUSID_SIZE],
		    uint8_t ports[BK_MAX_PORT_DEPTH], uint8_t *depth);

/* Fills info for dev. Strings come from prev when it describes the same
 * device (saves reopening it every rescan), else from sysfs, else from the
 * device itself. Returns 0, -LNX_ENOENT for devices we do not list (root
 * hubs, vhci copies unless wanted) or another negative errno. */
int lu_device_info(const struct lu_backend *b, libusb_device *dev,
		   const struct bk_device_info *prev, size_t nprev,
		   struct bk_device_info *info);

/* A snapshot of the present devices: on Linux from sysfs (current even
 * when libusb's hotplug never fires, and no libusb context needed), with
 * prev's entries that the scan could not read but that are still there
 * (lu_sysfs_keep_present); else from the backend's own context, with
 * prev's strings for devices it describes. *out is malloc'ed (NULL when
 * count is 0). */
int lu_scan(const struct lu_backend *b, const struct bk_device_info *prev, size_t nprev,
	    struct bk_device_info **out, size_t *count);

/* Finds busid in ctx's device list (vhci buses skipped unless wanted).
 * Returns 0 with its bus and device numbers, and, when found is not NULL,
 * a reference to it (caller unrefs); -LNX_ENODEV when absent. */
int lu_locate(const struct lu_backend *b, libusb_context *ctx, const char *busid,
	      uint8_t *busnum, uint8_t *devnum, libusb_device **found);

/* The same physical attachment: busid, bus and device number all equal
 * (a re-plug gets a new device number). */
bool lu_same_device(const struct bk_device_info *x, const struct bk_device_info *y);

/* Writes to idx the indexes of the entries of cur that are not in old, and
 * returns their number (idx has room for ncur). */
size_t lu_diff(const struct bk_device_info *old, size_t nold,
	       const struct bk_device_info *cur, size_t ncur, size_t *idx);

/* ---- libusb_transfer.c ------------------------------------------------ */

/* Length of a control transfer as libusb needs it (8 + wLength from the
 * little-endian setup packet), or -LNX_EINVAL when the buffer is shorter
 * than that. */
int lu_control_length(const uint8_t *buf, uint32_t length);

/* Copies a finished libusb transfer's results into t: status (negative
 * Linux errno; a short IN read with BK_F_SHORT_NOT_OK gives -EREMOTEIO),
 * actual_length (data bytes, setup excluded, clamped to what was asked),
 * and per-packet results for isochronous transfers. */
void lu_fill_result(struct bk_transfer *t, const struct libusb_transfer *xfer);

int lu_submit(struct bk_handle *bh, struct bk_transfer *t);
int lu_cancel(struct bk_handle *bh, struct bk_transfer *t);
void *lu_buf_alloc(struct bk_handle *bh, size_t len);
void lu_buf_free(struct bk_handle *bh, void *p, size_t len);

/* Asks libusb to cancel every pending transfer of h (used by close when
 * the caller broke the contract). Caller holds h->xfer_lock. */
void lu_cancel_all_locked(struct lu_handle *h);

/* Opens the device at busid (wherever it is now); *fd_out is a descriptor
 * the caller closes after libusb_close, or -1. */
int lu_open_device(struct lu_backend *b, const char *busid, libusb_device_handle **dh,
		   int *fd_out);

/* libusb_drivers.c: backend_ops.detach_drivers, and the give-back at stop. */
int lu_detach_drivers(struct backend *base, const char *busid);
void lu_give_back_drivers(struct lu_backend *b);

/* ---- libusb_os_<os>.c: what libusb does differently per OS ------------ */

/* BK_QUIRK_* for every handle this OS's libusb opens. */
uint32_t lu_os_handle_quirks(void);

/* Called by close with the claims released and nothing pending, just
 * before libusb_close (macOS: a reset when the handle was used since its
 * last one, which closing alone lacks). */
void lu_os_before_close(struct lu_handle *h);

#endif
