/* The backend interface: how the server reaches USB devices.
 *
 * Two backends implement it: libusb (real devices) and sim (simulated
 * devices, in-process). The server sees only this header, so every session
 * behaviour can be tested against sim without a kernel or hardware.
 *
 * Conventions
 * - Every int-returning call returns 0 (or a documented count) on success and
 *   a negative Linux errno (LNX_* from proto/linux_errno.h) on failure.
 * - Calls other than submit/cancel may block on the device (libusb's
 *   configuration calls are synchronous): the server makes them from a
 *   per-session worker, never from a socket reader or the event thread.
 * - Transfer completions and hotplug events are delivered on the backend's
 *   own threads, started by start(), never on a caller's thread. Callbacks
 *   must only record or enqueue work and must not call back into the
 *   backend with locks held that the backend may need (they may call
 *   submit/cancel). Completions never wait behind enumeration: a device
 *   being enumerated through us may hold its lock until one arrives.
 * - Nothing here knows about the network. */
#ifndef USBIP_NOTIFY_BACKEND_BACKEND_H
#define USBIP_NOTIFY_BACKEND_BACKEND_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/linux_errno.h"
#include "proto/usbip_codec.h"

#define BK_MAX_PORT_DEPTH 7
#define BK_STRING_SIZE 128
#define BK_MAX_CONFIG_DESC 4096 /* largest configuration descriptor we read */

/* One device as enumeration sees it. Plain data: copy it freely. */
struct bk_device_info {
	char busid[USBIP_BUSID_SIZE]; /* kernel form "BUS-PORT[.PORT...]" */
	char path[USBIP_PATH_SIZE];   /* informational, e.g. a sysfs path */
	uint8_t busnum;
	uint8_t devnum;
	uint8_t port_path[BK_MAX_PORT_DEPTH];
	uint8_t port_depth;
	uint32_t speed;               /* enum usbip_speed (wire values) */
	uint16_t idVendor;
	uint16_t idProduct;
	uint16_t bcdDevice;
	uint8_t bDeviceClass;
	uint8_t bDeviceSubClass;
	uint8_t bDeviceProtocol;
	uint8_t bConfigurationValue;  /* active configuration, 0 if none */
	uint8_t bNumConfigurations;
	uint8_t bNumInterfaces;       /* of the active configuration */
	struct usbip_interface_record ifaces[USBIP_MAX_INTERFACES];
	char serial[BK_STRING_SIZE];  /* "" when the device has none */
	char manufacturer[BK_STRING_SIZE];
	char product[BK_STRING_SIZE];
	bool on_vhci;                 /* sits on a vhci_hcd bus (an imported copy) */
};

enum bk_xfer_type {
	BK_XFER_CONTROL = 0,
	BK_XFER_ISO = 1,
	BK_XFER_BULK = 2,
	BK_XFER_INTERRUPT = 3,
};

/* bk_transfer.flags */
#define BK_F_SHORT_NOT_OK 0x1u /* a short IN transfer completes with -EREMOTEIO */
#define BK_F_ZERO_PACKET 0x2u  /* OUT: end with a zero-length packet if needed */

struct bk_iso_packet {
	uint32_t length;        /* in: requested */
	uint32_t actual_length; /* out */
	int32_t status;         /* out: 0 or negative Linux errno */
};

struct bk_transfer;
typedef void (*bk_complete_fn)(struct bk_transfer *t);

/* One asynchronous transfer. The caller owns the memory and keeps it (and
 * buffer, iso) valid from submit until complete() has been called, which
 * happens exactly once for every successful submit. */
struct bk_transfer {
	/* Set by the caller. */
	uint8_t type;        /* enum bk_xfer_type */
	uint8_t endpoint;    /* address: number | 0x80 for IN */
	uint32_t flags;      /* BK_F_* */
	uint8_t *buffer;     /* control: 8 setup bytes, then data */
	uint32_t length;     /* bytes in buffer, setup included for control */
	uint32_t num_iso_packets;
	struct bk_iso_packet *iso; /* packets lie back to back in buffer */
	bk_complete_fn complete;
	void *user;

	/* Set by the backend before complete(). */
	int32_t status;          /* 0 or negative Linux errno; -ECONNRESET if cancelled */
	uint32_t actual_length;  /* data bytes, setup excluded; iso: sum of packets */
	int32_t start_frame;

	void *priv;              /* backend's own */
};

enum bk_hotplug_event {
	BK_DEVICE_ARRIVED,
	BK_DEVICE_LEFT,
};

/* Called on the event thread; info is valid only during the call. */
typedef void (*bk_hotplug_fn)(void *ctx, enum bk_hotplug_event ev,
			      const struct bk_device_info *info);

struct backend;
struct bk_handle;

struct backend_ops {
	const char *name;
	void (*destroy)(struct backend *b);
	/* Starts/stops the event thread. Hotplug events flow after start. */
	int (*start)(struct backend *b);
	void (*stop)(struct backend *b);
	/* A snapshot of present devices; *out is malloc'ed, caller frees. */
	int (*enumerate)(struct backend *b, struct bk_device_info **out, size_t *count);
	int (*open)(struct backend *b, const char *busid, struct bk_handle **out);
	/* All transfers must have completed; releases what open/claim took. */
	void (*close)(struct bk_handle *h);
	/* Raw bytes of the active configuration descriptor; returns its length. */
	int (*get_active_config)(struct bk_handle *h, uint8_t *buf, size_t n);
	/* Releases this handle's claimed interfaces first (usbfs refuses to
	 * change configuration under claims) without giving kernel drivers
	 * back: the caller claims the new configuration's interfaces next. */
	int (*set_configuration)(struct bk_handle *h, int value);
	/* Detaches a kernel driver first where the OS has one; release gives it back. */
	int (*claim_interface)(struct bk_handle *h, uint8_t ifnum);
	int (*release_interface)(struct bk_handle *h, uint8_t ifnum);
	int (*set_interface)(struct bk_handle *h, uint8_t ifnum, uint8_t alt);
	int (*clear_halt)(struct bk_handle *h, uint8_t endpoint);
	int (*reset)(struct bk_handle *h);
	int (*submit)(struct bk_handle *h, struct bk_transfer *t);
	/* Asks for cancellation; the completion still comes (status -ECONNRESET
	 * if the cancel won). -ENOENT when the transfer is no longer pending. */
	int (*cancel)(struct bk_handle *h, struct bk_transfer *t);

	/* Event-loop integration (optional: all NULL in a backend without it).
	 * A caller with its own poll loop (the server's engine) takes over the
	 * delivery of completions and hotplug notifications so that they run
	 * on its thread, with no hand-off:
	 * - loop_attach(): from now on the backend's own event thread delivers
	 *   nothing; loop_dispatch() does. wake(ctx) is called (from any
	 *   thread, maybe with backend locks held: it must only flag and
	 *   write to a pipe) whenever loop_fds() would now answer differently:
	 *   work became ready outside the loop, the fd set changed.
	 * - loop_fds(): up to max descriptors to poll, and *timeout_ms until
	 *   the backend needs loop_dispatch() even with no fd ready (-1: no
	 *   deadline, 0: work is ready now). Returns the count.
	 * - loop_dispatch(): delivers what is ready without blocking (libusb:
	 *   libusb_handle_events_timeout with a zero timeout). Completions run
	 *   inside it, never inside submit/cancel. Other threads' blocking
	 *   calls may still deliver a completion elsewhere (libusb's
	 *   synchronous calls handle events themselves): completions must
	 *   stay safe on any thread.
	 * - loop_detach(): the backend's own thread (if started) takes over
	 *   again. Called from the thread that attached. */
	int (*loop_attach)(struct backend *b, void (*wake)(void *ctx), void *ctx);
	int (*loop_fds)(struct backend *b, struct pollfd *fds, int max, int *timeout_ms);
	void (*loop_dispatch)(struct backend *b);
	void (*loop_detach)(struct backend *b);

	/* Optional (NULL: plain memory only). A transfer buffer the device
	 * reads and writes in place: on Linux, usbfs memory mapped into the
	 * process, which spares usbfs a kernel buffer and a copy between it
	 * and the process per transfer. NULL when none can be had (the OS has
	 * none, the kernel's usbfs memory limit): use ordinary memory then.
	 * buf_free takes the same handle and len; a handle stays valid while
	 * any transfer is pending (close leaks a handle rather than free it
	 * under one), so a late completion may still free its buffer. Any
	 * thread; no lock of the caller's is needed. */
	void *(*buf_alloc)(struct bk_handle *h, size_t len);
	void (*buf_free)(struct bk_handle *h, void *p, size_t len);

	/* Optional (NULL: the OS has no drivers to take). Takes the server
	 * machine's own drivers from the device now, as `usbip bind` does,
	 * instead of at the first claim; stop() gives them back. Returns how
	 * many it took. Blocks (opens the device): not from a completion. */
	int (*detach_drivers)(struct backend *b, const char *busid);
};

/* Implementations embed this first. */
struct backend {
	const struct backend_ops *ops;
	bk_hotplug_fn hotplug;
	void *hotplug_ctx;
};

/* bk_handle.quirks: how this handle differs from Linux's usbfs. */
/* cancel ends every transfer pending on the transfer's endpoint (macOS:
 * libusb aborts the pipe), each with -ECONNRESET, the one being moved maybe
 * with part of its data moved (actual_length). */
#define BK_QUIRK_CANCEL_ABORTS_ENDPOINT 0x1u

struct bk_handle {
	struct backend *backend;
	uint32_t quirks;      /* BK_QUIRK_*, set by open */
};

/* Set before start(); may be NULL. */
static inline void backend_set_hotplug(struct backend *b, bk_hotplug_fn fn, void *ctx)
{
	b->hotplug = fn;
	b->hotplug_ctx = ctx;
}

static inline int bk_submit(struct bk_handle *h, struct bk_transfer *t)
{
	return h->backend->ops->submit(h, t);
}

static inline int bk_cancel(struct bk_handle *h, struct bk_transfer *t)
{
	return h->backend->ops->cancel(h, t);
}

#endif
