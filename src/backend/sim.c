/* The simulated backend's engine: devices, the transfer queue, the event
 * thread and the backend vtable. What the device looks like lives in
 * sim_descriptors.c; the contract is in sim.h and backend.h.
 *
 * Locking: one mutex (sim_backend.lock) guards everything below it, device
 * state, handles and both queues. complete() and the hotplug callback are
 * always called with it released, so callbacks may call submit/cancel and
 * the sim_* controls.
 *
 * A transfer lives on one of two lists:
 *   pending  submitted; waits for its due time (the device's delay) and, for
 *            loopback, for data or room. Only here can cancel() still win.
 *   work     its result is decided; the event thread pops it and calls
 *            complete(). Hotplug events queue here too, so a device's failed
 *            transfers are delivered before its BK_DEVICE_LEFT.
 * A transfer is removed from work (and the pending count dropped) before
 * complete() runs, so it is completed exactly once. */
#include "backend/sim.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/sim_descriptors.h"
#include "common/log.h"
#include "proto/bytes.h"

/* pthread_condattr_setclock is missing on macOS; fall back to wall time there. */
#if defined(__APPLE__)
#define SIM_CLOCK CLOCK_REALTIME
#else
#define SIM_CLOCK CLOCK_MONOTONIC
#endif

#define SIM_BUSNUM 1
#define SIM_FIRST_DEVNUM 2 /* 1 is the root hub on Linux */
#define SIM_LAST_DEVNUM 127
#define SIM_ISO_MAX_PACKET 1024u
#define SIM_FRAME_MASK 0x3fffu

/* Control requests (USB 2.0 chapter 9) and gadget zero's vendor pair. */
#define REQ_GET_STATUS 0x00
#define REQ_GET_DESCRIPTOR 0x06
#define REQ_GET_CONFIGURATION 0x08
#define REQ_GET_INTERFACE 0x0a
#define REQ_ZERO_WRITE 0x5b
#define REQ_ZERO_READ 0x5c
#define DESC_DEVICE 1
#define DESC_CONFIG 2
#define DESC_STRING 3

enum sim_node_kind {
	SIM_NODE_XFER,
	SIM_NODE_EVENT,
};

/* Links of both queues; the first member of what it links. */
struct sim_node {
	struct sim_node *prev;
	struct sim_node *next;
	enum sim_node_kind kind;
};

struct sim_device;
struct sim_handle;

struct sim_xfer {
	struct sim_node node;
	struct bk_transfer *t;
	struct sim_handle *h;   /* NULL once its handle was closed */
	struct sim_device *dev;
	uint8_t ep_index;       /* see ep_index() */
	uint8_t ifnum;          /* interface of the endpoint; 0xff for ep 0 */
	bool wedged;            /* sim_wedge_next: ignores time, cancel and reset */
	bool cancelled;         /* cancel asked while wedged */
	struct timespec due;
};

struct sim_event {
	struct sim_node node;
	enum bk_hotplug_event ev;
	struct bk_device_info info;
};

struct sim_device {
	unsigned port;              /* N of busid "1-N" */
	char busid[USBIP_BUSID_SIZE];
	char serial[SIM_SERIAL_SIZE];
	bool present;
	uint32_t generation;        /* bumped on unplug: old handles go stale */
	uint8_t devnum;
	uint8_t config;             /* 0 or SIM_CONFIG_VALUE */
	uint8_t alt[SIM_NUM_INTERFACES];
	uint32_t stalled;           /* bit per ep_index() */
	uint8_t locked;             /* bit per interface (test control) */
	unsigned drivers_taken;     /* detach_drivers calls (test counter) */
	unsigned resets;            /* reset calls (test counter) */
	uint32_t delay_ms;          /* test control */
	uint32_t wedge_next;        /* bit per ep_index(): its next transfer wedges */
	bool used;                  /* darwin mode: a transfer since the last reset */
	bool stuck;                 /* darwin mode: closed unreset; fails until reset */
	uint32_t frame;             /* iso start_frame counter */
	uint8_t vendor_buf[SIM_VENDOR_BUF_SIZE];
	size_t vendor_len;
	uint8_t *fifo;              /* loopback ring, SIM_LOOPBACK_MAX bytes */
	size_t fifo_head;
	size_t fifo_len;
};

struct sim_handle {
	struct bk_handle base;      /* first: bk_handle * converts back */
	struct sim_backend *sb;
	struct sim_device *dev;
	uint32_t generation;        /* dev->generation when opened */
	uint8_t claimed;            /* bit per interface */
	struct sim_handle *next;    /* sim_backend.handles */
	uint64_t serial;            /* names it in its device memory's headers */
	unsigned dev_mem_live;      /* buffers of its device memory not given back */
};

struct sim_backend {
	struct backend base;        /* first: backend * converts back */
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* event thread: new work, new time, stop */
	pthread_t thread;
	bool running;
	bool stopping;
	/* A caller's loop delivers instead of the event thread (backend.h). */
	bool looped;
	bool restart_on_detach;     /* the event thread ran before the loop took over */
	void (*loop_wake)(void *ctx);
	void *loop_ctx;
	struct sim_node pending;    /* list heads (sentinels) */
	struct sim_node work;
	int npending;               /* submitted, complete() not yet called */
	bool darwin;                /* sim_set_darwin: macOS's cancel and close */
	int bystanders;             /* transfers a pipe abort ended besides its target */
	struct sim_handle *handles;
	uint64_t next_serial;
	void (*delivered)(void *ctx);   /* sim_set_delivered_hook */
	void *delivered_ctx;
	/* Device memory (buf_alloc): as usbfs's, limited; counted for tests. */
	size_t dev_mem_limit, dev_mem_bytes;
	unsigned long dev_mem_allocs;
	int dev_mem_left_at_close;
	unsigned ndevs;
	uint8_t next_devnum;
	struct sim_device devs[SIM_MAX_DEVICES];
};

static const struct backend_ops sim_ops;

/* ---- small helpers --------------------------------------------------- */

static void list_init(struct sim_node *head)
{
	head->prev = head;
	head->next = head;
}

static bool list_empty(const struct sim_node *head)
{
	return head->next == head;
}

static void list_remove(struct sim_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n;
	n->next = n;
}

static void list_append(struct sim_node *head, struct sim_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static struct sim_node *list_pop(struct sim_node *head)
{
	if (list_empty(head))
		return NULL;
	struct sim_node *n = head->next;
	list_remove(n);
	return n;
}

static struct sim_backend *sim_of(struct backend *b)
{
	return (struct sim_backend *)b;
}

static struct sim_handle *handle_of(struct bk_handle *h)
{
	return (struct sim_handle *)h;
}

static void now_plus_ms(struct timespec *ts, uint32_t ms)
{
	clock_gettime(SIM_CLOCK, ts);
	ts->tv_sec += (time_t)(ms / 1000u);
	ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* One queue per endpoint and direction; ep 0 both ways is one queue. */
static uint8_t ep_index(uint8_t address)
{
	if ((address & 0x0f) == 0)
		return 0;
	return (uint8_t)((address & 0x0f) | ((address & 0x80) ? 16 : 0));
}

static unsigned dev_slot(const struct sim_backend *sb, const struct sim_device *dev)
{
	return (unsigned)(dev - sb->devs);
}

static struct sim_device *find_device(struct sim_backend *sb, const char *busid)
{
	if (busid == NULL)
		return NULL;
	for (unsigned i = 0; i < sb->ndevs; i++)
		if (strcmp(sb->devs[i].busid, busid) == 0)
			return &sb->devs[i];
	return NULL;
}

/* The device behind a handle, or NULL when it was unplugged since open.
 * Caller holds sb->lock. */
static struct sim_device *live_device(const struct sim_handle *h)
{
	if (!h->dev->present || h->dev->generation != h->generation)
		return NULL;
	return h->dev;
}

static uint8_t alloc_devnum(struct sim_backend *sb)
{
	uint8_t d = sb->next_devnum;

	sb->next_devnum = d >= SIM_LAST_DEVNUM ? SIM_FIRST_DEVNUM : (uint8_t)(d + 1);
	return d;
}

/* Device state as it is after (re)enumeration; test controls survive. */
static void device_fresh_state(struct sim_device *dev)
{
	dev->config = SIM_CONFIG_VALUE;
	memset(dev->alt, 0, sizeof(dev->alt));
	dev->stalled = 0;
	dev->vendor_len = 0;
	dev->fifo_head = 0;
	dev->fifo_len = 0;
}

static void fill_info(const struct sim_device *dev, struct bk_device_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->busid, sizeof(info->busid), "%s", dev->busid);
	snprintf(info->path, sizeof(info->path), "/sys/devices/sim/usb%u/%s", SIM_BUSNUM,
		 dev->busid);
	info->busnum = SIM_BUSNUM;
	info->devnum = dev->devnum;
	info->port_path[0] = (uint8_t)dev->port;
	info->port_depth = 1;
	info->speed = USBIP_SPEED_HIGH;
	info->idVendor = get_le16(sim_device_desc + 8);
	info->idProduct = get_le16(sim_device_desc + 10);
	info->bcdDevice = get_le16(sim_device_desc + 12);
	info->bDeviceClass = sim_device_desc[4];
	info->bDeviceSubClass = sim_device_desc[5];
	info->bDeviceProtocol = sim_device_desc[6];
	info->bNumConfigurations = sim_device_desc[17];
	info->bConfigurationValue = dev->config;
	if (dev->config != 0) {
		info->bNumInterfaces = sim_config_desc[4];
		for (uint8_t i = 0; i < info->bNumInterfaces && i < USBIP_MAX_INTERFACES; i++)
			if (sim_desc_iface_class(i, &info->ifaces[i]) != 0)
				memset(&info->ifaces[i], 0, sizeof(info->ifaces[i]));
	}
	snprintf(info->serial, sizeof(info->serial), "%s", dev->serial);
	snprintf(info->manufacturer, sizeof(info->manufacturer), "%s", SIM_MANUFACTURER);
	snprintf(info->product, sizeof(info->product), "%s", SIM_PRODUCT);
	info->on_vhci = false;
}

/* New work or a new due time: tells whoever delivers. Caller holds lock. */
static void kick(struct sim_backend *sb)
{
	pthread_cond_signal(&sb->wake);
	if (sb->loop_wake != NULL)
		sb->loop_wake(sb->loop_ctx);
}

/* ---- queues ----------------------------------------------------------- */

/* Decides a transfer's result as status with no data and queues it for
 * delivery. Caller holds sb->lock; x is on the pending list. */
static void finish_now(struct sim_backend *sb, struct sim_xfer *x, int32_t status)
{
	struct bk_transfer *t = x->t;

	t->status = status;
	t->actual_length = 0;
	if (t->type == BK_XFER_ISO) {
		for (uint32_t i = 0; i < t->num_iso_packets; i++) {
			t->iso[i].actual_length = 0;
			t->iso[i].status = status;
		}
	}
	list_remove(&x->node);
	list_append(&sb->work, &x->node);
	kick(sb);
}

/* Fails every pending transfer of dev that matches: all of them
 * (ifnum == -1), those not on ep 0 (ifnum == -2), or one interface's. */
#define FLUSH_ALL (-1)
#define FLUSH_NON_CONTROL (-2)

static void flush_device(struct sim_backend *sb, struct sim_device *dev, int ifnum,
			 int32_t status, bool wedged_too)
{
	struct sim_node *n = sb->pending.next;

	while (n != &sb->pending) {
		struct sim_node *next = n->next;
		struct sim_xfer *x = (struct sim_xfer *)n;
		bool match = x->dev == dev && (wedged_too || !x->wedged) &&
			     (ifnum == FLUSH_ALL ||
			      (ifnum == FLUSH_NON_CONTROL && x->ep_index != 0) ||
			      (ifnum >= 0 && x->ifnum == ifnum));
		if (match)
			finish_now(sb, x, status);
		n = next;
	}
}

static void queue_event(struct sim_backend *sb, const struct sim_device *dev,
			enum bk_hotplug_event ev)
{
	struct sim_event *e = calloc(1, sizeof(*e));

	if (e == NULL) {
		log_error("sim: out of memory, hotplug event for %s dropped", dev->busid);
		return;
	}
	e->node.kind = SIM_NODE_EVENT;
	e->ev = ev;
	fill_info(dev, &e->info);
	list_append(&sb->work, &e->node);
	kick(sb);
}

/* ---- the device's behaviour ----------------------------------------- */

static size_t fifo_push(struct sim_device *dev, const uint8_t *p, size_t n)
{
	size_t tail = (dev->fifo_head + dev->fifo_len) % SIM_LOOPBACK_MAX;
	size_t first = SIM_LOOPBACK_MAX - tail;
	if (first > n)
		first = n;
	memcpy(dev->fifo + tail, p, first);
	memcpy(dev->fifo, p + first, n - first);
	dev->fifo_len += n;
	return n;
}

static size_t fifo_pop(struct sim_device *dev, uint8_t *p, size_t n)
{
	if (n > dev->fifo_len)
		n = dev->fifo_len;
	size_t first = SIM_LOOPBACK_MAX - dev->fifo_head;
	if (first > n)
		first = n;
	memcpy(p, dev->fifo + dev->fifo_head, first);
	memcpy(p + first, dev->fifo, n - first);
	dev->fifo_head = (dev->fifo_head + n) % SIM_LOOPBACK_MAX;
	dev->fifo_len -= n;
	return n;
}

/* Gadget zero's pattern, i % 63: one period written, then doubled with
 * memcpy (every copy starts at a multiple of 63), so a simulated 64 KiB
 * read costs a device's memcpy, not a byte loop. */
static void fill_source(uint8_t *p, uint32_t n)
{
	uint32_t len = n < 63u ? n : 63u;
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)i;
	while (len < n) {
		uint32_t c = len <= n - len ? len : n - len;
		memcpy(p + len, p, c);
		len += c;
	}
}

static bool endpoint_exists(const struct sim_device *dev, uint8_t address)
{
	uint8_t type, ifnum;

	if ((address & 0x0f) == 0)
		return true;
	return dev->config != 0 && sim_desc_find_endpoint(dev->alt, address, &type, &ifnum) == 0;
}

/* Answers a control transfer; returns its status (-EPIPE: protocol stall)
 * and sets t->actual_length. The setup was validated at submit. */
static int32_t run_control(struct sim_device *dev, struct bk_transfer *t)
{
	const uint8_t *s = t->buffer;
	uint8_t *data = t->buffer + USBIP_SETUP_SIZE;
	uint8_t req_type = s[0], request = s[1];
	uint16_t value = get_le16(s + 2), index = get_le16(s + 4), wlength = get_le16(s + 6);
	bool in = (req_type & 0x80) != 0;
	unsigned kind = (req_type >> 5) & 3u, recipient = req_type & 0x1fu;
	uint8_t reply[SIM_VENDOR_BUF_SIZE];
	const uint8_t *src = reply;
	size_t src_len = 0;
	int len;

	if (kind == 0 && in) { /* standard, device to host */
		switch (request) {
		case REQ_GET_STATUS:
			reply[0] = 0;
			reply[1] = 0;
			src_len = 2;
			if (recipient == 1 && (dev->config == 0 || index >= SIM_NUM_INTERFACES))
				return -LNX_EPIPE;
			if (recipient == 2) {
				if (index > 0xff || !endpoint_exists(dev, (uint8_t)index))
					return -LNX_EPIPE;
				reply[0] = (dev->stalled >> ep_index((uint8_t)index)) & 1u;
			}
			if (recipient > 2)
				return -LNX_EPIPE;
			break;
		case REQ_GET_DESCRIPTOR:
			if (recipient != 0)
				return -LNX_EPIPE;
			if (value >> 8 == DESC_DEVICE && (value & 0xff) == 0) {
				src = sim_device_desc;
				src_len = sizeof(sim_device_desc);
			} else if (value >> 8 == DESC_CONFIG && (value & 0xff) == 0) {
				src = sim_config_desc;
				src_len = sizeof(sim_config_desc);
			} else if (value >> 8 == DESC_STRING) {
				len = sim_string_desc((uint8_t)value, dev->serial, reply, sizeof(reply));
				if (len < 0)
					return -LNX_EPIPE;
				src_len = (size_t)len;
			} else {
				return -LNX_EPIPE;
			}
			break;
		case REQ_GET_CONFIGURATION:
			if (recipient != 0)
				return -LNX_EPIPE;
			reply[0] = dev->config;
			src_len = 1;
			break;
		case REQ_GET_INTERFACE:
			if (recipient != 1 || dev->config == 0 || index >= SIM_NUM_INTERFACES)
				return -LNX_EPIPE;
			reply[0] = dev->alt[index];
			src_len = 1;
			break;
		default:
			return -LNX_EPIPE;
		}
	} else if (kind == 2 && !in && request == REQ_ZERO_WRITE) {
		if (wlength > SIM_VENDOR_BUF_SIZE)
			return -LNX_EPIPE;
		memcpy(dev->vendor_buf, data, wlength);
		dev->vendor_len = wlength;
		t->actual_length = wlength;
		return 0;
	} else if (kind == 2 && in && request == REQ_ZERO_READ) {
		src = dev->vendor_buf;
		src_len = dev->vendor_len;
	} else {
		return -LNX_EPIPE;
	}

	size_t n = src_len < wlength ? src_len : wlength;
	memcpy(data, src, n);
	t->actual_length = (uint32_t)n;
	return 0;
}

static void run_iso(struct sim_device *dev, struct bk_transfer *t)
{
	bool in = (t->endpoint & 0x80) != 0;
	uint32_t off = 0, sum = 0;

	for (uint32_t i = 0; i < t->num_iso_packets; i++) {
		struct bk_iso_packet *pk = &t->iso[i];
		uint32_t n = pk->length;
		if (in) {
			uint32_t limit = SIM_ISO_MAX_PACKET - 8u * (i % 4u);
			if (n > limit)
				n = limit;
			memset(t->buffer + off, (int)(i & 0xffu), n);
		}
		pk->actual_length = n;
		pk->status = 0;
		sum += n;
		off += pk->length;
	}
	t->actual_length = sum;
	t->status = 0;
	t->start_frame = (int32_t)dev->frame;
	dev->frame = (dev->frame + t->num_iso_packets) & SIM_FRAME_MASK;
}

/* Runs a due transfer. Returns false when it must keep waiting (loopback
 * without data or room); otherwise its result is set. Caller holds lock. */
static bool run_xfer(struct sim_xfer *x)
{
	struct sim_device *dev = x->dev;
	struct bk_transfer *t = x->t;
	bool in = (t->endpoint & 0x80) != 0;
	uint32_t want = t->length;

	t->actual_length = 0;
	t->start_frame = 0;
	bool stuck = dev->stuck && t->type != BK_XFER_CONTROL;
	if (stuck || (dev->stalled & (1u << x->ep_index))) {
		t->status = stuck ? -LNX_EPROTO : -LNX_EPIPE;
		if (t->type == BK_XFER_ISO)
			for (uint32_t i = 0; i < t->num_iso_packets; i++) {
				t->iso[i].actual_length = 0;
				t->iso[i].status = t->status;
			}
		return true;
	}

	switch (t->type) {
	case BK_XFER_CONTROL:
		t->status = run_control(dev, t);
		want = get_le16(t->buffer + 6);
		in = (t->buffer[0] & 0x80) != 0;
		break;
	case BK_XFER_ISO:
		run_iso(dev, t);
		return true;
	default:
		t->status = 0;
		switch (t->endpoint) {
		case 0x02: /* loopback OUT: waits for room for all of it */
			if (SIM_LOOPBACK_MAX - dev->fifo_len < t->length)
				return false;
			t->actual_length = (uint32_t)fifo_push(dev, t->buffer, t->length);
			break;
		case 0x82: /* loopback IN: waits for data (a zero-length read does not) */
			if (dev->fifo_len == 0 && t->length > 0)
				return false;
			t->actual_length = (uint32_t)fifo_pop(dev, t->buffer, t->length);
			break;
		default:
			if (in)
				fill_source(t->buffer, t->length);
			t->actual_length = t->length; /* sources fill, sinks accept all */
			break;
		}
		break;
	}

	if (in && t->status == 0 && t->actual_length < want && (t->flags & BK_F_SHORT_NOT_OK))
		t->status = -LNX_EREMOTEIO;
	return true;
}

/* Moves every pending transfer that can finish now to the work list, in
 * submission order per endpoint (a waiting transfer holds back the later
 * ones on its endpoint). Stores the earliest due time still ahead in
 * *next. Caller holds lock. */
static bool advance(struct sim_backend *sb, struct timespec *next)
{
	bool have_next, progress;
	struct timespec now;

	do {
		uint32_t held[SIM_MAX_DEVICES] = { 0 };

		have_next = false;
		progress = false;
		clock_gettime(SIM_CLOCK, &now);
		struct sim_node *n = sb->pending.next;
		while (n != &sb->pending) {
			struct sim_node *nn = n->next;
			struct sim_xfer *x = (struct sim_xfer *)n;
			unsigned slot = dev_slot(sb, x->dev);
			uint32_t bit = 1u << x->ep_index;

			if (held[slot] & bit) {
				n = nn;
				continue;
			}
			if (x->wedged) {
				held[slot] |= bit; /* and no due time: it never runs */
			} else if (ts_before(&now, &x->due)) {
				held[slot] |= bit;
				if (!have_next || ts_before(&x->due, next))
					*next = x->due;
				have_next = true;
			} else if (run_xfer(x)) {
				list_remove(n);
				list_append(&sb->work, n);
				progress = true;
			} else {
				held[slot] |= bit;
			}
			n = nn;
		}
	} while (progress);
	return have_next;
}

/* Pops one work item and delivers it with the lock released. Returns false
 * when there was none. Caller holds lock; holds it again on return. */
static bool deliver_one(struct sim_backend *sb, bool send_events)
{
	struct sim_node *n = list_pop(&sb->work);

	if (n == NULL)
		return false;
	if (n->kind == SIM_NODE_XFER) {
		struct sim_xfer *x = (struct sim_xfer *)n;
		struct bk_transfer *t = x->t;
		t->priv = NULL;
		sb->npending--;
		free(x);
		void (*delivered)(void *) = sb->delivered;
		void *delivered_ctx = sb->delivered_ctx;
		pthread_mutex_unlock(&sb->lock);
		t->complete(t);
		if (delivered != NULL)
			delivered(delivered_ctx);
	} else {
		struct sim_event *e = (struct sim_event *)n;
		bk_hotplug_fn fn = sb->base.hotplug;
		void *ctx = sb->base.hotplug_ctx;
		pthread_mutex_unlock(&sb->lock);
		if (send_events && fn != NULL)
			fn(ctx, e->ev, &e->info);
		free(e);
	}
	pthread_mutex_lock(&sb->lock);
	return true;
}

static void *event_thread(void *arg)
{
	struct sim_backend *sb = arg;

	pthread_mutex_lock(&sb->lock);
	while (!sb->stopping) {
		struct timespec next;
		bool timed = advance(sb, &next);
		if (deliver_one(sb, true))
			continue;
		if (timed)
			pthread_cond_timedwait(&sb->wake, &sb->lock, &next);
		else
			pthread_cond_wait(&sb->wake, &sb->lock);
	}
	pthread_mutex_unlock(&sb->lock);
	return NULL;
}

/* ---- backend_ops ------------------------------------------------------ */

static int sim_start(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	if (sb->looped) {
		sb->restart_on_detach = true; /* the loop delivers until it leaves */
	} else if (!sb->running) {
		sb->stopping = false;
		if (pthread_create(&sb->thread, NULL, event_thread, sb) != 0)
			ret = -LNX_ENOMEM;
		else
			sb->running = true;
	}
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

/* Stops the event thread, if it runs. Caller holds lock; holds it again on
 * return. */
static void join_event_thread(struct sim_backend *sb)
{
	if (!sb->running)
		return;
	sb->stopping = true;
	pthread_cond_broadcast(&sb->wake);
	pthread_mutex_unlock(&sb->lock);
	pthread_join(sb->thread, NULL);
	pthread_mutex_lock(&sb->lock);
	sb->running = false;
	sb->stopping = false;
}

static void sim_stop(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	sb->restart_on_detach = false; /* stopped: a loop leaving starts nothing */
	if (!sb->running) {
		pthread_mutex_unlock(&sb->lock);
		return;
	}
	if (pthread_equal(pthread_self(), sb->thread)) {
		pthread_mutex_unlock(&sb->lock);
		log_error("sim: stop() called from a callback; ignored");
		return;
	}
	join_event_thread(sb);
	pthread_mutex_unlock(&sb->lock);
}

static void sim_destroy(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	if (sb == NULL)
		return;
	sim_stop(b);

	/* Whatever is still queued completes here, on the caller's thread, so
	 * even a careless owner gets its one completion per transfer. */
	pthread_mutex_lock(&sb->lock);
	while (!list_empty(&sb->pending) || !list_empty(&sb->work)) {
		while (!list_empty(&sb->pending))
			finish_now(sb, (struct sim_xfer *)sb->pending.next, -LNX_ESHUTDOWN);
		deliver_one(sb, false);
	}
	while (sb->handles != NULL) {
		struct sim_handle *h = sb->handles;
		log_warn("sim: handle on %s was never closed", h->dev->busid);
		sb->handles = h->next;
		free(h);
	}
	pthread_mutex_unlock(&sb->lock);

	for (unsigned i = 0; i < sb->ndevs; i++)
		free(sb->devs[i].fifo);
	pthread_cond_destroy(&sb->wake);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

/* ---- event-loop integration (backend.h) ------------------------------- */

static int sim_loop_attach(struct backend *b, void (*wake)(void *ctx), void *ctx)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	if (sb->looped) {
		pthread_mutex_unlock(&sb->lock);
		return -LNX_EBUSY;
	}
	sb->restart_on_detach = sb->running;
	join_event_thread(sb);
	sb->looped = true;
	sb->loop_wake = wake;
	sb->loop_ctx = ctx;
	pthread_mutex_unlock(&sb->lock);
	return 0;
}

static int sim_loop_fds(struct backend *b, struct pollfd *fds, int max, int *timeout_ms)
{
	struct sim_backend *sb = sim_of(b);
	struct timespec next, now;

	(void)fds;
	(void)max;
	pthread_mutex_lock(&sb->lock);
	bool timed = advance(sb, &next);
	if (!list_empty(&sb->work)) {
		*timeout_ms = 0;
	} else if (timed) {
		clock_gettime(SIM_CLOCK, &now);
		int64_t ns = (int64_t)(next.tv_sec - now.tv_sec) * 1000000000 +
			     (next.tv_nsec - now.tv_nsec);
		*timeout_ms = ns <= 0 ? 0 : (int)((ns + 999999) / 1000000);
	} else {
		*timeout_ms = -1;
	}
	pthread_mutex_unlock(&sb->lock);
	return 0; /* no descriptors: everything is time or wake() */
}

#define SIM_DISPATCH_MAX 4096 /* deliveries per call, so a loop stays fair */

static void sim_loop_dispatch(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);
	struct timespec next;

	pthread_mutex_lock(&sb->lock);
	advance(sb, &next);
	for (int i = 0; i < SIM_DISPATCH_MAX; i++) {
		if (deliver_one(sb, true))
			continue;
		advance(sb, &next); /* a delivery may have made room or data */
		if (list_empty(&sb->work))
			break;
	}
	pthread_mutex_unlock(&sb->lock);
}

static void sim_loop_detach(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	sb->looped = false;
	sb->loop_wake = NULL;
	sb->loop_ctx = NULL;
	if (sb->restart_on_detach && !sb->running) {
		sb->stopping = false;
		if (pthread_create(&sb->thread, NULL, event_thread, sb) == 0)
			sb->running = true;
		else
			log_error("sim: cannot restart the event thread");
	}
	sb->restart_on_detach = false;
	pthread_mutex_unlock(&sb->lock);
}

static int sim_enumerate(struct backend *b, struct bk_device_info **out, size_t *count)
{
	struct sim_backend *sb = sim_of(b);
	struct bk_device_info *list = calloc(SIM_MAX_DEVICES, sizeof(*list));
	size_t n = 0;

	if (list == NULL)
		return -LNX_ENOMEM;
	pthread_mutex_lock(&sb->lock);
	for (unsigned i = 0; i < sb->ndevs; i++)
		if (sb->devs[i].present)
			fill_info(&sb->devs[i], &list[n++]);
	pthread_mutex_unlock(&sb->lock);
	*out = list;
	*count = n;
	return 0;
}

static int sim_open(struct backend *b, const char *busid, struct bk_handle **out)
{
	struct sim_backend *sb = sim_of(b);
	struct sim_handle *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return -LNX_ENOMEM;
	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = find_device(sb, busid);
	if (dev == NULL || !dev->present) {
		pthread_mutex_unlock(&sb->lock);
		free(h);
		return -LNX_ENODEV;
	}
	h->base.backend = b;
	h->base.quirks = sb->darwin ? BK_QUIRK_CANCEL_ABORTS_ENDPOINT : 0;
	h->sb = sb;
	h->dev = dev;
	h->generation = dev->generation;
	h->next = sb->handles;
	sb->handles = h;
	h->serial = ++sb->next_serial;
	pthread_mutex_unlock(&sb->lock);
	*out = &h->base;
	return 0;
}

static void sim_close(struct bk_handle *bh)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int leftover = 0;

	pthread_mutex_lock(&sb->lock);
	struct sim_node *n = sb->pending.next;
	while (n != &sb->pending) {
		struct sim_node *next = n->next;
		struct sim_xfer *x = (struct sim_xfer *)n;
		if (x->h == h) {
			leftover++;
			finish_now(sb, x, -LNX_ESHUTDOWN);
		}
		n = next;
	}
	for (n = sb->work.next; n != &sb->work; n = n->next)
		if (n->kind == SIM_NODE_XFER && ((struct sim_xfer *)n)->h == h)
			((struct sim_xfer *)n)->h = NULL;
	/* macOS has left devices wedged when a handle was closed without a
	 * reset after use: so does darwin mode, until the next reset. */
	struct sim_device *dev = live_device(h);
	if (sb->darwin && dev != NULL && dev->used)
		dev->stuck = true;
	for (struct sim_handle **pp = &sb->handles; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	sb->dev_mem_left_at_close += (int)h->dev_mem_live;
	unsigned mem_left = h->dev_mem_live;
	pthread_mutex_unlock(&sb->lock);
	if (leftover > 0)
		log_warn("sim: close with %d transfers pending; they fail with ESHUTDOWN",
			 leftover);
	if (mem_left > 0)
		log_warn("sim: close with %u device memory buffers not given back", mem_left);
	free(h);
}

/* Device memory: a header before the buffer names its backend and handle,
 * so a buffer given back late (its handle closed) is still counted. */
struct sim_mem {
	struct sim_backend *sb;
	uint64_t serial;
	size_t len;
	max_align_t align[]; /* the buffer */
};

static void *sim_buf_alloc(struct bk_handle *bh, size_t len)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	struct sim_mem *m = NULL;

	pthread_mutex_lock(&sb->lock);
	bool room = len > 0 && len <= sb->dev_mem_limit - sb->dev_mem_bytes &&
		    sb->dev_mem_bytes <= sb->dev_mem_limit;
	if (room)
		m = malloc(sizeof(*m) + len);
	if (m != NULL) {
		m->sb = sb;
		m->serial = h->serial;
		m->len = len;
		sb->dev_mem_bytes += len;
		sb->dev_mem_allocs++;
		h->dev_mem_live++;
	}
	pthread_mutex_unlock(&sb->lock);
	return m != NULL ? (void *)m->align : NULL;
}

static void sim_buf_free(struct bk_handle *bh, void *p, size_t len)
{
	(void)bh; /* may be closed already: the header says whose it is */
	if (p == NULL)
		return;
	struct sim_mem *m = (struct sim_mem *)((char *)p - offsetof(struct sim_mem, align));
	struct sim_backend *sb = m->sb;

	pthread_mutex_lock(&sb->lock);
	if (m->len != len)
		log_error("sim: device memory given back with length %zu, taken with %zu", len,
			  m->len);
	sb->dev_mem_bytes -= m->len;
	for (struct sim_handle *h = sb->handles; h != NULL; h = h->next)
		if (h->serial == m->serial)
			h->dev_mem_live--;
	pthread_mutex_unlock(&sb->lock);
	free(m);
}

void sim_set_dev_mem_limit(struct backend *b, size_t bytes)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	sb->dev_mem_limit = bytes;
	pthread_mutex_unlock(&sb->lock);
}

size_t sim_dev_mem_bytes(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	size_t n = sb->dev_mem_bytes;
	pthread_mutex_unlock(&sb->lock);
	return n;
}

unsigned long sim_dev_mem_allocs(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	unsigned long n = sb->dev_mem_allocs;
	pthread_mutex_unlock(&sb->lock);
	return n;
}

int sim_dev_mem_left_at_close(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	int n = sb->dev_mem_left_at_close;
	pthread_mutex_unlock(&sb->lock);
	return n;
}

static int sim_get_active_config(struct bk_handle *bh, uint8_t *buf, size_t n)
{
	struct sim_handle *h = handle_of(bh);
	int ret = (int)sizeof(sim_config_desc);

	pthread_mutex_lock(&h->sb->lock);
	struct sim_device *dev = live_device(h);
	if (dev == NULL)
		ret = -LNX_ENODEV;
	else if (dev->config == 0)
		ret = -LNX_ENOENT;
	else if (n < sizeof(sim_config_desc))
		ret = -LNX_EOVERFLOW;
	else
		memcpy(buf, sim_config_desc, sizeof(sim_config_desc));
	pthread_mutex_unlock(&h->sb->lock);
	return ret;
}

static bool any_claim(const struct sim_backend *sb, const struct sim_device *dev,
		      const struct sim_handle *except, uint8_t mask)
{
	for (const struct sim_handle *o = sb->handles; o != NULL; o = o->next)
		if (o != except && o->dev == dev && o->generation == dev->generation &&
		    (o->claimed & mask))
			return true;
	return false;
}

static int sim_set_configuration(struct bk_handle *bh, int value)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = live_device(h);
	if (dev == NULL) {
		ret = -LNX_ENODEV;
	} else if (value != 0 && value != SIM_CONFIG_VALUE) {
		ret = -LNX_EINVAL;
	} else if (value == dev->config) {
		ret = 0; /* nothing to change */
	} else if (any_claim(sb, dev, h, 0xff)) {
		ret = -LNX_EBUSY; /* as usbfs: not while others hold interfaces */
	} else {
		/* The backend contract: this handle's claims end with the
		 * configuration they belonged to. */
		h->claimed = 0;
		flush_device(sb, dev, FLUSH_NON_CONTROL, -LNX_ESHUTDOWN, false);
		dev->config = (uint8_t)value;
		memset(dev->alt, 0, sizeof(dev->alt));
		dev->stalled = 0;
	}
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static int sim_claim_interface(struct bk_handle *bh, uint8_t ifnum)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = live_device(h);
	uint8_t bit = ifnum < SIM_NUM_INTERFACES ? (uint8_t)(1u << ifnum) : 0;
	if (dev == NULL)
		ret = -LNX_ENODEV;
	else if (dev->config == 0 || bit == 0)
		ret = -LNX_ENOENT;
	else if (h->claimed & bit)
		ret = 0;
	else if ((dev->locked & bit) || any_claim(sb, dev, h, bit))
		ret = -LNX_EBUSY;
	else
		h->claimed |= bit;
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static int sim_release_interface(struct bk_handle *bh, uint8_t ifnum)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	uint8_t bit = ifnum < SIM_NUM_INTERFACES ? (uint8_t)(1u << ifnum) : 0;
	if (live_device(h) == NULL)
		ret = -LNX_ENODEV;
	else if (bit == 0 || !(h->claimed & bit))
		ret = -LNX_ENOENT;
	else
		h->claimed &= (uint8_t)~bit;
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static int sim_set_interface(struct bk_handle *bh, uint8_t ifnum, uint8_t alt)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = live_device(h);
	if (dev == NULL) {
		ret = -LNX_ENODEV;
	} else if (dev->config == 0 || !sim_desc_has_alt(ifnum, alt)) {
		ret = -LNX_EINVAL;
	} else if (!(h->claimed & (1u << ifnum))) {
		ret = -LNX_ENOENT; /* libusb: only on a claimed interface */
	} else {
		/* As Linux does: the interface's endpoints are flushed and reset
		 * even when the altsetting stays the same. */
		flush_device(sb, dev, ifnum, -LNX_ESHUTDOWN, false);
		dev->alt[ifnum] = alt;
		for (unsigned i = 1; i < 32; i++) {
			uint8_t addr = (uint8_t)((i & 0x0f) | (i & 16 ? 0x80 : 0));
			uint8_t type, ep_if;
			if ((i & 0x0f) != 0 &&
			    sim_desc_find_endpoint(dev->alt, addr, &type, &ep_if) == 0 &&
			    ep_if == ifnum)
				dev->stalled &= ~(1u << i);
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static int sim_clear_halt(struct bk_handle *bh, uint8_t endpoint)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = live_device(h);
	if (dev == NULL)
		ret = -LNX_ENODEV;
	else if (!endpoint_exists(dev, endpoint))
		ret = -LNX_ENOENT;
	else
		dev->stalled &= ~(1u << ep_index(endpoint));
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static int sim_reset(struct bk_handle *bh)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = live_device(h);
	if (dev == NULL) {
		ret = -LNX_ENODEV;
	} else {
		/* Same devnum and claims (libusb re-claims after a reset); the
		 * device itself starts over. */
		flush_device(sb, dev, FLUSH_ALL, -LNX_ESHUTDOWN, false);
		dev->resets++;
		dev->used = false;
		dev->stuck = false;
		memset(dev->alt, 0, sizeof(dev->alt));
		dev->stalled = 0;
		dev->fifo_head = 0;
		dev->fifo_len = 0;
		dev->vendor_len = 0;
	}
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static bool is_queued(const struct sim_backend *sb, const struct bk_transfer *t)
{
	const struct sim_node *heads[2] = { &sb->pending, &sb->work };

	for (int i = 0; i < 2; i++)
		for (const struct sim_node *n = heads[i]->next; n != heads[i]; n = n->next)
			if (n->kind == SIM_NODE_XFER && ((const struct sim_xfer *)n)->t == t)
				return true;
	return false;
}

/* Checks a transfer against the device's current state; fills x's
 * endpoint fields. Caller holds lock. */
static int validate(const struct sim_handle *h, const struct sim_device *dev,
		    const struct bk_transfer *t, struct sim_xfer *x)
{
	uint8_t type, ifnum;

	if (t->length > 0 && t->buffer == NULL)
		return -LNX_EINVAL;
	if (t->type == BK_XFER_CONTROL) {
		if ((t->endpoint & 0x7f) != 0 || t->length < USBIP_SETUP_SIZE ||
		    t->length - USBIP_SETUP_SIZE < get_le16(t->buffer + 6))
			return -LNX_EINVAL;
		x->ep_index = 0;
		x->ifnum = 0xff;
		return 0;
	}
	if (t->type > BK_XFER_INTERRUPT || (t->endpoint & 0x70) != 0)
		return -LNX_EINVAL;
	if (dev->config == 0 || sim_desc_find_endpoint(dev->alt, t->endpoint, &type, &ifnum) != 0)
		return -LNX_ENOENT; /* as usbfs for an endpoint it does not know */
	if (type != t->type)
		return -LNX_EINVAL;
	if ((dev->locked & (1u << ifnum)) && !(h->claimed & (1u << ifnum)))
		return -LNX_EBUSY; /* usbfs cannot claim it implicitly either */
	if (t->type == BK_XFER_ISO) {
		uint64_t sum = 0;
		if (t->num_iso_packets == 0 || t->num_iso_packets > USBIP_MAX_ISO_PACKETS ||
		    t->iso == NULL)
			return -LNX_EINVAL;
		for (uint32_t i = 0; i < t->num_iso_packets; i++)
			sum += t->iso[i].length;
		if (sum > t->length)
			return -LNX_EINVAL;
	}
	if (t->endpoint == 0x02 && t->length > SIM_LOOPBACK_MAX)
		return -LNX_EINVAL; /* could never fit in the FIFO */
	x->ep_index = ep_index(t->endpoint);
	x->ifnum = ifnum;
	return 0;
}

static int sim_submit(struct bk_handle *bh, struct bk_transfer *t)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	struct sim_xfer *x;
	int ret;

	if (t == NULL || t->complete == NULL)
		return -LNX_EINVAL;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -LNX_ENOMEM;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = live_device(h);
	if (dev == NULL) {
		ret = -LNX_ENODEV;
		goto err_unlock;
	}
	if (is_queued(sb, t)) {
		ret = -LNX_EBUSY;
		goto err_unlock;
	}
	ret = validate(h, dev, t, x);
	if (ret != 0)
		goto err_unlock;

	x->node.kind = SIM_NODE_XFER;
	x->t = t;
	x->h = h;
	x->dev = dev;
	if (dev->wedge_next & (1u << x->ep_index)) {
		dev->wedge_next &= ~(1u << x->ep_index);
		x->wedged = true;
	}
	if (t->type != BK_XFER_CONTROL)
		dev->used = true;
	now_plus_ms(&x->due, dev->delay_ms);
	t->status = 0;
	t->actual_length = 0;
	t->priv = x;
	list_append(&sb->pending, &x->node);
	sb->npending++;
	kick(sb);
	pthread_mutex_unlock(&sb->lock);
	return 0;

err_unlock:
	pthread_mutex_unlock(&sb->lock);
	free(x);
	return ret;
}

/* Darwin mode: what an aborted transfer at the head of its endpoint had
 * moved already. Sources and sinks waiting for their due time are half
 * done (in whole packets); a loopback OUT waiting for room has put in the
 * whole packets that fit; a loopback IN waiting for data has nothing. */
static uint32_t moved_before_abort(struct sim_device *dev, struct sim_xfer *x,
				   const struct timespec *now)
{
	struct bk_transfer *t = x->t;
	uint32_t mps = t->type == BK_XFER_BULK ? 512u : 64u;
	uint32_t n = 0;

	if ((t->type != BK_XFER_BULK && t->type != BK_XFER_INTERRUPT) || dev->stuck ||
	    (dev->stalled & (1u << x->ep_index)))
		return 0;
	if (t->endpoint == 0x02) {
		n = (uint32_t)(SIM_LOOPBACK_MAX - dev->fifo_len) / mps * mps;
		if (n >= t->length)
			return 0; /* it would not have been waiting */
		return (uint32_t)fifo_push(dev, t->buffer, n);
	}
	if (t->endpoint == 0x82 || !ts_before(now, &x->due))
		return 0;
	n = t->length / 2 / mps * mps;
	if (n > 0 && (t->endpoint & 0x80) != 0)
		fill_source(t->buffer, n);
	return n;
}

/* Darwin mode: cancelling one transfer aborts its whole pipe, as libusb's
 * darwin backend does (AbortPipe): every transfer of that handle pending on
 * the endpoint ends with -ECONNRESET, the one at the head maybe with data
 * moved. Wedged ones ignore it. Caller holds lock. */
static void abort_pipe(struct sim_backend *sb, struct sim_xfer *target)
{
	struct timespec now;
	bool head = true;

	clock_gettime(SIM_CLOCK, &now);
	struct sim_node *n = sb->pending.next;
	while (n != &sb->pending) {
		struct sim_node *next = n->next;
		struct sim_xfer *x = (struct sim_xfer *)n;
		if (x->h == target->h && x->dev == target->dev && x->ep_index == target->ep_index) {
			uint32_t moved = head && !x->wedged ? moved_before_abort(x->dev, x, &now) : 0;
			head = false;
			if (!x->wedged) {
				finish_now(sb, x, -LNX_ECONNRESET);
				x->t->actual_length = moved;
				sb->bystanders += x != target;
			}
		}
		n = next;
	}
}

static int sim_cancel(struct bk_handle *bh, struct bk_transfer *t)
{
	struct sim_handle *h = handle_of(bh);
	struct sim_backend *sb = h->sb;
	int ret = -LNX_ENOENT;

	/* Found by searching, not through t->priv: t may have completed and
	 * been reused or never submitted at all. */
	pthread_mutex_lock(&sb->lock);
	for (struct sim_node *n = sb->pending.next; n != &sb->pending; n = n->next) {
		struct sim_xfer *x = (struct sim_xfer *)n;
		if (x->t == t && x->h == h) {
			if (x->wedged)
				x->cancelled = true; /* accepted, and nothing happens */
			else if (sb->darwin)
				abort_pipe(sb, x);
			else
				finish_now(sb, x, -LNX_ECONNRESET);
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

/* The sim has no OS drivers to take: it counts the calls (a test seam). */
static int sim_detach_drivers(struct backend *b, const char *busid)
{
	struct sim_backend *sb = sim_of(b);
	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = find_device(sb, busid);
	int ret = dev != NULL && dev->present ? 0 : -LNX_ENODEV;
	if (ret == 0)
		dev->drivers_taken++;
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static const struct backend_ops sim_ops = {
	.name = "sim",
	.destroy = sim_destroy,
	.start = sim_start,
	.stop = sim_stop,
	.enumerate = sim_enumerate,
	.open = sim_open,
	.close = sim_close,
	.buf_alloc = sim_buf_alloc,
	.buf_free = sim_buf_free,
	.get_active_config = sim_get_active_config,
	.set_configuration = sim_set_configuration,
	.claim_interface = sim_claim_interface,
	.release_interface = sim_release_interface,
	.set_interface = sim_set_interface,
	.clear_halt = sim_clear_halt,
	.reset = sim_reset,
	.submit = sim_submit,
	.cancel = sim_cancel,
	.loop_attach = sim_loop_attach,
	.loop_fds = sim_loop_fds,
	.loop_dispatch = sim_loop_dispatch,
	.loop_detach = sim_loop_detach,
	.detach_drivers = sim_detach_drivers,
};

/* ---- construction and test controls ----------------------------------- */

/* Counts the devices a spec asks for; -1 if it is malformed. */
static int parse_spec(const char *spec)
{
	int count = 0;

	if (spec == NULL || *spec == '\0')
		return -1;
	for (const char *p = spec;;) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len != 4 || strncmp(p, "zero", 4) != 0)
			return -1;
		if (++count > SIM_MAX_DEVICES)
			return -1;
		if (end == NULL)
			return count;
		p = end + 1;
	}
}

struct backend *sim_backend_new(const char *spec)
{
	int count = parse_spec(spec);
	struct sim_backend *sb;
	pthread_condattr_t attr;

	if (count < 0) {
		log_error("sim: bad device spec \"%s\" (want e.g. \"zero,zero\")",
			  spec != NULL ? spec : "(null)");
		return NULL;
	}
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return NULL;
	sb->base.ops = &sim_ops;
	list_init(&sb->pending);
	list_init(&sb->work);
	sb->next_devnum = SIM_FIRST_DEVNUM;
	sb->dev_mem_limit = SIZE_MAX;

	for (int i = 0; i < count; i++) {
		struct sim_device *dev = &sb->devs[i];
		dev->fifo = malloc(SIM_LOOPBACK_MAX);
		if (dev->fifo == NULL)
			goto err_free_devices;
		sb->ndevs++;
		dev->port = (unsigned)i + 1;
		snprintf(dev->busid, sizeof(dev->busid), "%u-%u", SIM_BUSNUM, dev->port);
		sim_serial_for_port(dev->port, dev->serial);
		dev->present = true;
		dev->devnum = alloc_devnum(sb);
		device_fresh_state(dev);
	}

	if (pthread_mutex_init(&sb->lock, NULL) != 0)
		goto err_free_devices;
	if (pthread_condattr_init(&attr) != 0)
		goto err_destroy_mutex;
#if !defined(__APPLE__)
	pthread_condattr_setclock(&attr, SIM_CLOCK);
#endif
	int rc = pthread_cond_init(&sb->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (rc != 0)
		goto err_destroy_mutex;
	return &sb->base;

err_destroy_mutex:
	pthread_mutex_destroy(&sb->lock);
err_free_devices:
	for (unsigned i = 0; i < sb->ndevs; i++)
		free(sb->devs[i].fifo);
	free(sb);
	return NULL;
}

/* Runs fn on the named device with the lock held; -ENODEV if unknown. */
static int with_device(struct backend *b, const char *busid,
		       int (*fn)(struct sim_backend *sb, struct sim_device *dev, void *arg),
		       void *arg)
{
	struct sim_backend *sb = sim_of(b);
	int ret;

	pthread_mutex_lock(&sb->lock);
	struct sim_device *dev = find_device(sb, busid);
	ret = dev != NULL ? fn(sb, dev, arg) : -LNX_ENODEV;
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

struct stall_arg {
	uint8_t endpoint;
	bool stalled;
};

static int do_stall(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	const struct stall_arg *a = arg;
	uint32_t bit = 1u << ep_index(a->endpoint);

	if (a->stalled)
		dev->stalled |= bit;
	else
		dev->stalled &= ~bit;
	kick(sb); /* a waiting loopback transfer now fails */
	return 0;
}

int sim_set_stall(struct backend *b, const char *busid, uint8_t endpoint, bool stalled)
{
	struct stall_arg a = { endpoint, stalled };

	return with_device(b, busid, do_stall, &a);
}

static int do_delay(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)sb;
	dev->delay_ms = *(const uint32_t *)arg;
	return 0;
}

void sim_set_delivered_hook(struct backend *b, void (*fn)(void *ctx), void *ctx)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	sb->delivered = fn;
	sb->delivered_ctx = ctx;
	pthread_mutex_unlock(&sb->lock);
}

int sim_set_delay(struct backend *b, const char *busid, uint32_t ms)
{
	return with_device(b, busid, do_delay, &ms);
}

static int do_unplug(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)arg;
	if (!dev->present)
		return -LNX_ENODEV;
	flush_device(sb, dev, FLUSH_ALL, -LNX_ESHUTDOWN, true);
	queue_event(sb, dev, BK_DEVICE_LEFT); /* after the failed transfers */
	for (struct sim_handle *h = sb->handles; h != NULL; h = h->next)
		if (h->dev == dev)
			h->claimed = 0; /* the interfaces are gone with the device */
	dev->present = false;
	dev->generation++;
	return 0;
}

int sim_unplug(struct backend *b, const char *busid)
{
	return with_device(b, busid, do_unplug, NULL);
}

static int do_plug(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)arg;
	if (dev->present)
		return -LNX_EBUSY;
	dev->present = true;
	dev->devnum = alloc_devnum(sb);
	device_fresh_state(dev);
	queue_event(sb, dev, BK_DEVICE_ARRIVED);
	return 0;
}

int sim_plug(struct backend *b, const char *busid)
{
	return with_device(b, busid, do_plug, NULL);
}

struct lock_arg {
	uint8_t ifnum;
	bool locked;
};

static int do_lock(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	const struct lock_arg *a = arg;

	(void)sb;
	if (a->ifnum >= SIM_NUM_INTERFACES)
		return -LNX_EINVAL;
	if (a->locked)
		dev->locked |= (uint8_t)(1u << a->ifnum);
	else
		dev->locked &= (uint8_t)~(1u << a->ifnum);
	return 0;
}

int sim_lock_interface(struct backend *b, const char *busid, uint8_t ifnum, bool locked)
{
	struct lock_arg a = { ifnum, locked };

	return with_device(b, busid, do_lock, &a);
}

static int do_count_taken(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)sb;
	(void)arg;
	return (int)dev->drivers_taken;
}

int sim_drivers_taken(struct backend *b, const char *busid)
{
	return with_device(b, busid, do_count_taken, NULL);
}

static int do_count_resets(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)sb;
	(void)arg;
	return (int)dev->resets;
}

int sim_resets(struct backend *b, const char *busid)
{
	return with_device(b, busid, do_count_resets, NULL);
}

int sim_pending_transfers(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	int n = sb->npending;
	pthread_mutex_unlock(&sb->lock);
	return n;
}

int sim_claimed_interfaces(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);
	int n = 0;

	pthread_mutex_lock(&sb->lock);
	for (const struct sim_handle *h = sb->handles; h != NULL; h = h->next)
		for (unsigned i = 0; i < SIM_NUM_INTERFACES; i++)
			n += (h->claimed >> i) & 1u;
	pthread_mutex_unlock(&sb->lock);
	return n;
}

int sim_set_darwin(struct backend *b, bool on)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	sb->darwin = on;
	pthread_mutex_unlock(&sb->lock);
	return 0;
}

int sim_pipe_bystanders(struct backend *b)
{
	struct sim_backend *sb = sim_of(b);

	pthread_mutex_lock(&sb->lock);
	int n = sb->bystanders;
	pthread_mutex_unlock(&sb->lock);
	return n;
}

static int do_wedge(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)sb;
	dev->wedge_next |= 1u << ep_index(*(const uint8_t *)arg);
	return 0;
}

int sim_wedge_next(struct backend *b, const char *busid, uint8_t endpoint)
{
	return with_device(b, busid, do_wedge, &endpoint);
}

static int do_unwedge(struct sim_backend *sb, struct sim_device *dev, void *arg)
{
	(void)arg;
	for (struct sim_node *n = sb->pending.next; n != &sb->pending;) {
		struct sim_node *next = n->next;
		struct sim_xfer *x = (struct sim_xfer *)n;
		if (x->dev == dev && x->wedged) {
			x->wedged = false;
			if (x->cancelled)
				finish_now(sb, x, -LNX_ECONNRESET);
		}
		n = next;
	}
	dev->wedge_next = 0;
	kick(sb);
	return 0;
}

int sim_unwedge(struct backend *b, const char *busid)
{
	return with_device(b, busid, do_unwedge, NULL);
}
