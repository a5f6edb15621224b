/* The simulated backend through the backend vtable, as the server uses it.
 *
 * Every wait for a completion or an event is a bounded wait on a condition
 * variable, so a broken sim fails a test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/sim.h"
#include "proto/bytes.h"

#define WAIT_MS 3000      /* "it should have happened by now" */
#define QUIET_MS 100      /* "it should not happen": a short bounded look */
#define MAX_EVENTS 16

/* ---- completion and hotplug recorders -------------------------------- */

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int completions;
};

struct txfer {
	struct bk_transfer t;
	struct waiter *w;
	int ncomplete;
	int order;                /* w->completions after this one completed */
	struct timespec done_at;
	struct bk_handle *resubmit_h; /* resubmit from the callback ... */
	int resubmit_left;            /* ... this many more times */
	int resubmit_err;
};

struct hotplug_log {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct waiter *w;
	int n;
	enum bk_hotplug_event ev[MAX_EVENTS];
	struct bk_device_info info[MAX_EVENTS];
	int completions_before[MAX_EVENTS];
};

struct fx {
	struct backend *b;
	struct bk_handle *h;
	struct waiter w;
	struct hotplug_log hp;
};

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long)(b->tv_sec - a->tv_sec) * 1000L + (b->tv_nsec - a->tv_nsec) / 1000000L;
}

static void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->completions = 0;
}

static void waiter_destroy(struct waiter *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

static void on_complete(struct bk_transfer *t)
{
	struct txfer *x = t->user;

	if (x->resubmit_left > 0) {
		x->resubmit_left--;
		x->resubmit_err = bk_submit(x->resubmit_h, t);
		if (x->resubmit_err == 0)
			return; /* counted when the last one completes */
	}
	pthread_mutex_lock(&x->w->mu);
	x->ncomplete++;
	x->order = ++x->w->completions;
	clock_gettime(CLOCK_MONOTONIC, &x->done_at);
	pthread_cond_broadcast(&x->w->cv);
	pthread_mutex_unlock(&x->w->mu);
}

/* Waits until x has completed at least n times; false on timeout. */
static bool wait_xfer(struct txfer *x, int n, int ms)
{
	struct timespec dl;
	bool ok;

	deadline_in(&dl, ms);
	pthread_mutex_lock(&x->w->mu);
	while (x->ncomplete < n)
		if (pthread_cond_timedwait(&x->w->cv, &x->w->mu, &dl) != 0)
			break;
	ok = x->ncomplete >= n;
	pthread_mutex_unlock(&x->w->mu);
	return ok;
}

static bool wait_total(struct waiter *w, int n, int ms)
{
	struct timespec dl;
	bool ok;

	deadline_in(&dl, ms);
	pthread_mutex_lock(&w->mu);
	while (w->completions < n)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != 0)
			break;
	ok = w->completions >= n;
	pthread_mutex_unlock(&w->mu);
	return ok;
}

static int ncomplete(struct txfer *x)
{
	pthread_mutex_lock(&x->w->mu);
	int n = x->ncomplete;
	pthread_mutex_unlock(&x->w->mu);
	return n;
}

static void on_hotplug(void *ctx, enum bk_hotplug_event ev, const struct bk_device_info *info)
{
	struct hotplug_log *hp = ctx;

	pthread_mutex_lock(&hp->mu);
	if (hp->n < MAX_EVENTS) {
		hp->ev[hp->n] = ev;
		hp->info[hp->n] = *info;
		pthread_mutex_lock(&hp->w->mu);
		hp->completions_before[hp->n] = hp->w->completions;
		pthread_mutex_unlock(&hp->w->mu);
		hp->n++;
	}
	pthread_cond_broadcast(&hp->cv);
	pthread_mutex_unlock(&hp->mu);
}

static bool wait_events(struct hotplug_log *hp, int n, int ms)
{
	struct timespec dl;
	bool ok;

	deadline_in(&dl, ms);
	pthread_mutex_lock(&hp->mu);
	while (hp->n < n)
		if (pthread_cond_timedwait(&hp->cv, &hp->mu, &dl) != 0)
			break;
	ok = hp->n >= n;
	pthread_mutex_unlock(&hp->mu);
	return ok;
}

/* ---- fixture and transfer helpers ------------------------------------ */

static int fx_setup_with(void **state, bool start)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	waiter_init(&f->w);
	pthread_mutex_init(&f->hp.mu, NULL);
	pthread_cond_init(&f->hp.cv, NULL);
	f->hp.w = &f->w;
	f->b = sim_backend_new("zero,zero");
	assert_non_null(f->b);
	backend_set_hotplug(f->b, on_hotplug, &f->hp);
	if (start)
		assert_int_equal(f->b->ops->start(f->b), 0);
	assert_int_equal(f->b->ops->open(f->b, "1-1", &f->h), 0);
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_with(state, true);
}

static int fx_setup_stopped(void **state)
{
	return fx_setup_with(state, false);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->h != NULL)
		f->b->ops->close(f->h);
	/* Nothing leaks: no transfer outstanding, no claim left behind. */
	assert_int_equal(sim_pending_transfers(f->b), 0);
	assert_int_equal(sim_claimed_interfaces(f->b), 0);
	f->b->ops->destroy(f->b);
	pthread_cond_destroy(&f->hp.cv);
	pthread_mutex_destroy(&f->hp.mu);
	waiter_destroy(&f->w);
	free(f);
	return 0;
}

static void prep(struct txfer *x, struct waiter *w, uint8_t type, uint8_t ep, uint8_t *buf,
		 uint32_t len)
{
	memset(x, 0, sizeof(*x));
	x->w = w;
	x->t.type = type;
	x->t.endpoint = ep;
	x->t.buffer = buf;
	x->t.length = len;
	x->t.complete = on_complete;
	x->t.user = x;
	x->t.status = 12345; /* must be overwritten */
}

static void setup_packet(uint8_t *buf, uint8_t req_type, uint8_t request, uint16_t value,
			 uint16_t index, uint16_t length)
{
	buf[0] = req_type;
	buf[1] = request;
	put_le16(buf + 2, value);
	put_le16(buf + 4, index);
	put_le16(buf + 6, length);
}

/* Submits and waits for the one completion; fails the test on timeout. */
static void run(struct bk_handle *h, struct txfer *x)
{
	assert_int_equal(bk_submit(h, &x->t), 0);
	assert_true(wait_xfer(x, 1, WAIT_MS));
	assert_int_equal(ncomplete(x), 1);
}

/* A control transfer on ep 0; buf must hold 8 + wlength bytes. */
static void control(struct fx *f, struct txfer *x, uint8_t *buf, uint8_t rt, uint8_t req,
		    uint16_t value, uint16_t index, uint16_t wlength, uint32_t flags)
{
	setup_packet(buf, rt, req, value, index, wlength);
	prep(x, &f->w, BK_XFER_CONTROL, (rt & 0x80) ? 0x80 : 0x00, buf, 8u + wlength);
	x->t.flags = flags;
	run(f->h, x);
}

static void bulk(struct fx *f, struct txfer *x, uint8_t ep, uint8_t *buf, uint32_t len,
		 uint32_t flags)
{
	prep(x, &f->w, BK_XFER_BULK, ep, buf, len);
	x->t.flags = flags;
	run(f->h, x);
}

/* ---- construction and enumeration ------------------------------------ */

static void test_spec_parsing(void **state)
{
	static const struct {
		const char *spec;
		bool ok;
	} cases[] = {
		{ "zero", true },
		{ "zero,zero,zero", true },
		{ "zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero",
		  true },
		{ "zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero",
		  false },
		{ NULL, false },
		{ "", false },
		{ "zero,", false },
		{ ",zero", false },
		{ "zero,,zero", false },
		{ "zeros", false },
		{ "zer", false },
		{ "mouse", false },
		{ "zero mouse", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct backend *b = sim_backend_new(cases[i].spec);
		if (!cases[i].ok) {
			assert_null(b);
			continue;
		}
		assert_non_null(b);
		assert_string_equal(b->ops->name, "sim");
		b->ops->destroy(b);
	}
}

static void test_enumerate_fields(void **state)
{
	struct fx *f = *state;
	struct bk_device_info *list = NULL;
	size_t n = 0;

	assert_int_equal(f->b->ops->enumerate(f->b, &list, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		const struct bk_device_info *d = &list[i];
		char want[64];

		snprintf(want, sizeof(want), "1-%zu", i + 1);
		assert_string_equal(d->busid, want);
		snprintf(want, sizeof(want), "/sys/devices/sim/usb1/1-%zu", i + 1);
		assert_string_equal(d->path, want);
		snprintf(want, sizeof(want), "SIM%04zu", i + 1);
		assert_string_equal(d->serial, want);
		assert_int_equal(d->busnum, 1);
		assert_in_range(d->devnum, 2, 127);
		assert_int_equal(d->port_depth, 1);
		assert_int_equal(d->port_path[0], i + 1);
		assert_int_equal(d->speed, USBIP_SPEED_HIGH);
		assert_int_equal(d->idVendor, 0x0525);
		assert_int_equal(d->idProduct, 0xa4a0);
		assert_int_equal(d->bDeviceClass, 0xff);
		assert_int_equal(d->bConfigurationValue, 1);
		assert_int_equal(d->bNumConfigurations, 1);
		assert_int_equal(d->bNumInterfaces, 4);
		for (int k = 0; k < 4; k++)
			assert_int_equal(d->ifaces[k].bInterfaceClass, 0xff);
		assert_string_equal(d->manufacturer, "usbip-notify");
		assert_string_equal(d->product, "Simulated Gadget Zero");
		assert_false(d->on_vhci);
	}
	assert_int_not_equal(list[0].devnum, list[1].devnum);
	free(list);
}

/* ---- descriptors ------------------------------------------------------ */

struct ep_row {
	uint8_t ifnum, alt, address, attributes;
	uint16_t max_packet;
	uint8_t interval;
};

static const struct ep_row expected_eps[] = {
	{ 0, 0, 0x81, 0x02, 512, 0 },
	{ 0, 0, 0x01, 0x02, 512, 0 },
	{ 0, 0, 0x83, 0x03, 64, 4 },
	{ 0, 0, 0x03, 0x03, 64, 4 },
	{ 1, 1, 0x84, 0x01, 1024, 4 },
	{ 1, 1, 0x04, 0x01, 1024, 4 },
	{ 2, 0, 0x02, 0x02, 512, 0 },
	{ 2, 0, 0x82, 0x02, 512, 0 },
	{ 3, 0, 0x85, 0x02, 512, 0 },
};

/* Walks a configuration descriptor, checking its structure, and checks
 * the endpoints against sim.h's table. */
static void check_config_bytes(const uint8_t *p, size_t len)
{
	struct ep_row seen[16];
	size_t nseen = 0, nalts = 0;
	int ifnum = -1, alt = -1, eps_left = 0;

	assert_true(len >= 9);
	assert_int_equal(p[0], 9);
	assert_int_equal(p[1], 2);
	assert_int_equal(get_le16(p + 2), len);
	assert_int_equal(p[4], 4); /* bNumInterfaces */
	assert_int_equal(p[5], 1); /* bConfigurationValue */
	for (size_t off = p[0]; off < len; off += p[off]) {
		const uint8_t *d = p + off;
		assert_true(d[0] >= 2 && off + d[0] <= len);
		if (d[1] == 4) {
			assert_int_equal(d[0], 9);
			assert_int_equal(eps_left, 0); /* previous bNumEndpoints honoured */
			ifnum = d[2];
			alt = d[3];
			eps_left = d[4];
			assert_int_equal(d[5], 0xff);
			nalts++;
		} else if (d[1] == 5) {
			assert_int_equal(d[0], 7);
			assert_true(ifnum >= 0 && eps_left > 0);
			eps_left--;
			assert_true(nseen < 16);
			seen[nseen++] = (struct ep_row){ (uint8_t)ifnum, (uint8_t)alt, d[2], d[3],
							 get_le16(d + 4), d[6] };
		}
	}
	assert_int_equal(eps_left, 0);
	assert_int_equal(nalts, 5); /* if0, if1 alt 0 and 1, if2, if3 */
	assert_int_equal(nseen, sizeof(expected_eps) / sizeof(expected_eps[0]));
	for (size_t i = 0; i < nseen; i++) {
		assert_int_equal(seen[i].ifnum, expected_eps[i].ifnum);
		assert_int_equal(seen[i].alt, expected_eps[i].alt);
		assert_int_equal(seen[i].address, expected_eps[i].address);
		assert_int_equal(seen[i].attributes, expected_eps[i].attributes);
		assert_int_equal(seen[i].max_packet, expected_eps[i].max_packet);
		assert_int_equal(seen[i].interval, expected_eps[i].interval);
	}
}

static void test_active_config(void **state)
{
	struct fx *f = *state;
	uint8_t buf[BK_MAX_CONFIG_DESC];

	int len = f->b->ops->get_active_config(f->h, buf, sizeof(buf));
	assert_true(len > 9);
	check_config_bytes(buf, (size_t)len);
	assert_true(f->b->ops->get_active_config(f->h, buf, 8) < 0); /* never truncated */
}

static void test_control_get_descriptor(void **state)
{
	struct fx *f = *state;
	uint8_t buf[8 + 1024], active[BK_MAX_CONFIG_DESC];
	struct txfer x;

	/* device descriptor */
	control(f, &x, buf, 0x80, 0x06, 0x0100, 0, 18, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 18);
	assert_int_equal(buf[8], 18);
	assert_int_equal(buf[9], 1);
	assert_int_equal(get_le16(buf + 8 + 2), 0x0200);
	assert_int_equal(buf[8 + 7], 64);
	assert_int_equal(get_le16(buf + 8 + 8), 0x0525);
	assert_int_equal(get_le16(buf + 8 + 10), 0xa4a0);
	assert_int_equal(buf[8 + 16], 3); /* iSerialNumber */
	assert_int_equal(buf[8 + 17], 1); /* bNumConfigurations */

	/* configuration: first the header, as hosts do, then all of it */
	control(f, &x, buf, 0x80, 0x06, 0x0200, 0, 9, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 9);
	uint16_t total = get_le16(buf + 8 + 2);
	control(f, &x, buf, 0x80, 0x06, 0x0200, 0, 1024, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, total);
	int len = f->b->ops->get_active_config(f->h, active, sizeof(active));
	assert_int_equal(len, total);
	assert_memory_equal(buf + 8, active, total);

	/* the same short answer fails when the caller asked for all of it */
	control(f, &x, buf, 0x80, 0x06, 0x0200, 0, 1024, BK_F_SHORT_NOT_OK);
	assert_int_equal(x.t.status, -LNX_EREMOTEIO);
	assert_int_equal(x.t.actual_length, total);

	/* strings */
	static const struct {
		uint8_t index;
		const char *text; /* NULL: the langid table */
	} strings[] = {
		{ 0, NULL },
		{ 1, "usbip-notify" },
		{ 2, "Simulated Gadget Zero" },
		{ 3, "SIM0001" },
	};
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		control(f, &x, buf, 0x80, 0x06, (uint16_t)(0x0300 | strings[i].index), 0x0409,
			255, 0);
		assert_int_equal(x.t.status, 0);
		assert_int_equal(buf[8], x.t.actual_length);
		assert_int_equal(buf[9], 3);
		if (strings[i].text == NULL) {
			assert_int_equal(x.t.actual_length, 4);
			assert_int_equal(get_le16(buf + 10), 0x0409);
			continue;
		}
		size_t n = strlen(strings[i].text);
		assert_int_equal(x.t.actual_length, 2 + 2 * n);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(get_le16(buf + 10 + 2 * k), (uint8_t)strings[i].text[k]);
	}
}

static void test_control_standard_and_stalls(void **state)
{
	struct fx *f = *state;
	uint8_t buf[8 + 64];
	struct txfer x;

	control(f, &x, buf, 0x80, 0x08, 0, 0, 1, 0); /* GET_CONFIGURATION */
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 1);
	assert_int_equal(buf[8], 1);

	control(f, &x, buf, 0x80, 0x00, 0, 0, 2, 0); /* GET_STATUS device */
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 2);

	control(f, &x, buf, 0x81, 0x0a, 0, 1, 1, 0); /* GET_INTERFACE if 1 */
	assert_int_equal(x.t.status, 0);
	assert_int_equal(buf[8], 0);
	assert_int_equal(f->b->ops->claim_interface(f->h, 1), 0);
	assert_int_equal(f->b->ops->set_interface(f->h, 1, 1), 0);
	control(f, &x, buf, 0x81, 0x0a, 0, 1, 1, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(buf[8], 1);
	assert_int_equal(f->b->ops->release_interface(f->h, 1), 0);

	/* Requests the device does not answer stall, and ep 0 stays usable. */
	static const struct {
		uint8_t rt, req;
		uint16_t value, index, length;
	} stalls[] = {
		{ 0x80, 0x06, 0x0300 | 4, 0x0409, 64 }, /* string index 4 */
		{ 0x80, 0x06, 0x0201, 0, 64 },          /* configuration index 1 */
		{ 0x80, 0x06, 0x0600, 0, 10 },          /* device qualifier */
		{ 0x81, 0x0a, 0, 7, 1 },                /* GET_INTERFACE unknown */
		{ 0x00, 0x09, 1, 0, 0 },                /* SET_CONFIGURATION raw */
		{ 0x01, 0x0b, 1, 1, 0 },                /* SET_INTERFACE raw */
		{ 0xc0, 0x77, 0, 0, 4 },                /* unknown vendor request */
		{ 0xc0, 0x5b, 0, 0, 4 },                /* 0x5b is OUT only */
		{ 0x40, 0x5c, 0, 0, 4 },                /* 0x5c is IN only */
	};
	for (size_t i = 0; i < sizeof(stalls) / sizeof(stalls[0]); i++) {
		control(f, &x, buf, stalls[i].rt, stalls[i].req, stalls[i].value,
			stalls[i].index, stalls[i].length, 0);
		assert_int_equal(x.t.status, -LNX_EPIPE);
		assert_int_equal(x.t.actual_length, 0);
	}
	control(f, &x, buf, 0x80, 0x08, 0, 0, 1, 0);
	assert_int_equal(x.t.status, 0);
}

static void test_control_vendor_roundtrip(void **state)
{
	struct fx *f = *state;
	uint8_t out[8 + 300], in[8 + 256];
	struct txfer x;

	for (int i = 0; i < 100; i++)
		out[8 + i] = (uint8_t)(0xa0 ^ i);
	control(f, &x, out, 0x40, 0x5b, 0, 0, 100, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 100);

	memset(in, 0, sizeof(in));
	control(f, &x, in, 0xc0, 0x5c, 0, 0, 256, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 100);
	assert_memory_equal(in + 8, out + 8, 100);

	/* more than the device's 256-byte buffer stalls and keeps the old data */
	control(f, &x, out, 0x40, 0x5b, 0, 0, 257, 0);
	assert_int_equal(x.t.status, -LNX_EPIPE);
	control(f, &x, in, 0xc0, 0x5c, 0, 0, 50, 0);
	assert_int_equal(x.t.actual_length, 50);
	assert_memory_equal(in + 8, out + 8, 50);

	/* the other device has its own buffer */
	struct bk_handle *h2;
	assert_int_equal(f->b->ops->open(f->b, "1-2", &h2), 0);
	setup_packet(in, 0xc0, 0x5c, 0, 0, 256);
	prep(&x, &f->w, BK_XFER_CONTROL, 0x80, in, sizeof(in));
	run(h2, &x);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(x.t.actual_length, 0);
	f->b->ops->close(h2);
}

/* ---- submit validation -------------------------------------------------- */

static void test_submit_validation(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];
	struct bk_iso_packet pk = { .length = 64 };
	static const struct {
		uint8_t type, ep;
		uint32_t length;
		bool null_buffer;
		int want;
	} cases[] = {
		{ BK_XFER_BULK, 0x84, 64, false, -LNX_ENOENT },     /* iso ep, alt 0 */
		{ BK_XFER_BULK, 0x07, 64, false, -LNX_ENOENT },     /* no such ep */
		{ BK_XFER_BULK, 0x86, 64, false, -LNX_ENOENT },
		{ BK_XFER_BULK, 0x00, 64, false, -LNX_ENOENT },     /* ep 0 is control */
		{ BK_XFER_INTERRUPT, 0x81, 64, false, -LNX_EINVAL }, /* bulk ep */
		{ BK_XFER_BULK, 0x83, 64, false, -LNX_EINVAL },      /* interrupt ep */
		{ BK_XFER_CONTROL, 0x81, 64, false, -LNX_EINVAL },
		{ BK_XFER_CONTROL, 0x00, 7, false, -LNX_EINVAL },    /* no room for setup */
		{ BK_XFER_BULK, 0x81, 64, true, -LNX_EINVAL },
		{ 9, 0x81, 64, false, -LNX_EINVAL },                 /* unknown type */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct txfer x;
		memset(buf, 0, sizeof(buf));
		prep(&x, &f->w, cases[i].type, cases[i].ep, cases[i].null_buffer ? NULL : buf,
		     cases[i].length);
		assert_int_equal(bk_submit(f->h, &x.t), cases[i].want);
	}

	/* control: wLength larger than the buffer behind the setup */
	struct txfer x;
	setup_packet(buf, 0x80, 0x06, 0x0100, 0, 57);
	prep(&x, &f->w, BK_XFER_CONTROL, 0x80, buf, 64);
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_EINVAL);

	/* iso: packets must fit the buffer, and there must be some */
	assert_int_equal(f->b->ops->claim_interface(f->h, 1), 0);
	assert_int_equal(f->b->ops->set_interface(f->h, 1, 1), 0);
	prep(&x, &f->w, BK_XFER_ISO, 0x84, buf, 32);
	x.t.num_iso_packets = 1;
	x.t.iso = &pk;
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_EINVAL);
	x.t.length = 64;
	x.t.num_iso_packets = 0;
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_EINVAL);
	x.t.num_iso_packets = 1;
	x.t.iso = NULL;
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_EINVAL);
	assert_int_equal(f->b->ops->release_interface(f->h, 1), 0);

	/* the same transfer twice while it is pending */
	prep(&x, &f->w, BK_XFER_BULK, 0x82, buf, 64);
	assert_int_equal(bk_submit(f->h, &x.t), 0);
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_EBUSY);
	assert_int_equal(bk_cancel(f->h, &x.t), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
	assert_int_equal(sim_pending_transfers(f->b), 0);
}

/* ---- bulk and interrupt ------------------------------------------------- */

static void test_sources_and_sinks(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint8_t type, ep;
		uint32_t length;
	} cases[] = {
		{ BK_XFER_BULK, 0x81, 1000 },
		{ BK_XFER_BULK, 0x81, 1 },
		{ BK_XFER_BULK, 0x81, 0 },
		{ BK_XFER_BULK, 0x85, 4096 },
		{ BK_XFER_INTERRUPT, 0x83, 64 },
		{ BK_XFER_BULK, 0x01, 4096 },
		{ BK_XFER_BULK, 0x01, 0 },
		{ BK_XFER_INTERRUPT, 0x03, 64 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *buf = malloc(cases[i].length + 1);
		struct txfer x;
		assert_non_null(buf);
		memset(buf, 0xee, cases[i].length + 1);
		prep(&x, &f->w, cases[i].type, cases[i].ep, buf, cases[i].length);
		x.t.flags = BK_F_SHORT_NOT_OK;
		run(f->h, &x);
		assert_int_equal(x.t.status, 0);
		assert_int_equal(x.t.actual_length, cases[i].length);
		if (cases[i].ep & 0x80)
			for (uint32_t k = 0; k < cases[i].length; k++)
				assert_int_equal(buf[k], k % 63);
		else
			for (uint32_t k = 0; k < cases[i].length; k++)
				assert_int_equal(buf[k], 0xee); /* an OUT buffer is not written */
		assert_int_equal(buf[cases[i].length], 0xee); /* nothing past the end */
		free(buf);
	}
}

static void test_short_read_and_short_not_ok(void **state)
{
	struct fx *f = *state;
	uint8_t out[10], in[100];
	struct txfer x;

	for (int pass = 0; pass < 2; pass++) {
		uint32_t flags = pass == 0 ? 0 : BK_F_SHORT_NOT_OK;
		for (int i = 0; i < 10; i++)
			out[i] = (uint8_t)(pass * 16 + i + 1);
		bulk(f, &x, 0x02, out, sizeof(out), 0);
		assert_int_equal(x.t.status, 0);
		assert_int_equal(x.t.actual_length, 10);

		memset(in, 0, sizeof(in));
		bulk(f, &x, 0x82, in, sizeof(in), flags);
		assert_int_equal(x.t.status, pass == 0 ? 0 : -LNX_EREMOTEIO);
		assert_int_equal(x.t.actual_length, 10); /* the short data still arrives */
		assert_memory_equal(in, out, 10);
	}
}

static void test_loopback_pending_then_satisfied(void **state)
{
	struct fx *f = *state;
	uint8_t out[64], in[64];
	struct txfer rx, tx;

	prep(&rx, &f->w, BK_XFER_BULK, 0x82, in, sizeof(in));
	assert_int_equal(bk_submit(f->h, &rx.t), 0);
	assert_false(wait_xfer(&rx, 1, QUIET_MS)); /* nothing to read yet */
	assert_int_equal(sim_pending_transfers(f->b), 1);

	for (int i = 0; i < 64; i++)
		out[i] = (uint8_t)(200 - i);
	bulk(f, &tx, 0x02, out, sizeof(out), 0);
	assert_int_equal(tx.t.status, 0);
	assert_true(wait_xfer(&rx, 1, WAIT_MS));
	assert_int_equal(rx.t.status, 0);
	assert_int_equal(rx.t.actual_length, 64);
	assert_memory_equal(in, out, 64);
	assert_int_equal(sim_pending_transfers(f->b), 0);

	/* the other device's loopback FIFO is separate */
	struct bk_handle *h2;
	assert_int_equal(f->b->ops->open(f->b, "1-2", &h2), 0);
	bulk(f, &tx, 0x02, out, sizeof(out), 0);
	prep(&rx, &f->w, BK_XFER_BULK, 0x82, in, sizeof(in));
	assert_int_equal(bk_submit(h2, &rx.t), 0);
	assert_false(wait_xfer(&rx, 1, QUIET_MS));
	assert_int_equal(bk_cancel(h2, &rx.t), 0);
	assert_true(wait_xfer(&rx, 1, WAIT_MS));
	f->b->ops->close(h2);
	bulk(f, &rx, 0x82, in, sizeof(in), 0); /* drain 1-1 */
	assert_int_equal(rx.t.actual_length, 64);
}

static void test_loopback_waits_for_room(void **state)
{
	struct fx *f = *state;
	uint8_t *big = calloc(1, SIM_LOOPBACK_MAX + 1);
	uint8_t small[16] = { 1, 2, 3 };
	struct txfer a, b, c;

	assert_non_null(big);
	/* more than the FIFO can ever hold is refused up front */
	prep(&a, &f->w, BK_XFER_BULK, 0x02, big, SIM_LOOPBACK_MAX + 1);
	assert_int_equal(bk_submit(f->h, &a.t), -LNX_EINVAL);

	bulk(f, &a, 0x02, big, SIM_LOOPBACK_MAX - 8, 0); /* leaves 8 bytes of room */
	assert_int_equal(a.t.status, 0);
	prep(&b, &f->w, BK_XFER_BULK, 0x02, small, sizeof(small));
	assert_int_equal(bk_submit(f->h, &b.t), 0);
	assert_false(wait_xfer(&b, 1, QUIET_MS)); /* waits, like a NAKing device */

	prep(&c, &f->w, BK_XFER_BULK, 0x82, big, SIM_LOOPBACK_MAX);
	run(f->h, &c);
	assert_true(wait_xfer(&b, 1, WAIT_MS));
	assert_int_equal(b.t.status, 0);
	bulk(f, &c, 0x82, big, SIM_LOOPBACK_MAX, 0);
	assert_int_equal(c.t.actual_length, sizeof(small));
	assert_memory_equal(big, small, sizeof(small));
	free(big);
}

/* ---- cancel ------------------------------------------------------------- */

static void test_cancel_pending(void **state)
{
	struct fx *f = *state;
	uint8_t in[32], out[4] = { 9, 8, 7, 6 };
	struct txfer rx, tx;

	prep(&rx, &f->w, BK_XFER_BULK, 0x82, in, sizeof(in));
	assert_int_equal(bk_submit(f->h, &rx.t), 0);
	assert_false(wait_xfer(&rx, 1, QUIET_MS));
	assert_int_equal(bk_cancel(f->h, &rx.t), 0);
	assert_true(wait_xfer(&rx, 1, WAIT_MS));
	assert_int_equal(rx.t.status, -LNX_ECONNRESET);
	assert_int_equal(rx.t.actual_length, 0);
	assert_int_equal(bk_cancel(f->h, &rx.t), -LNX_ENOENT);
	assert_false(wait_xfer(&rx, 2, QUIET_MS)); /* exactly one completion */
	assert_int_equal(ncomplete(&rx), 1);
	assert_int_equal(sim_pending_transfers(f->b), 0);

	/* the cancelled read took nothing: the next one gets all the data */
	bulk(f, &tx, 0x02, out, sizeof(out), 0);
	bulk(f, &rx, 0x82, in, sizeof(in), 0);
	assert_int_equal(rx.t.actual_length, 4);
	assert_memory_equal(in, out, 4);
}

static void test_cancel_completed(void **state)
{
	struct fx *f = *state;
	uint8_t in[32];
	struct txfer x, never;

	bulk(f, &x, 0x81, in, sizeof(in), 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(bk_cancel(f->h, &x.t), -LNX_ENOENT);
	assert_false(wait_xfer(&x, 2, QUIET_MS));
	assert_int_equal(x.t.status, 0);

	prep(&never, &f->w, BK_XFER_BULK, 0x81, in, sizeof(in));
	assert_int_equal(bk_cancel(f->h, &never.t), -LNX_ENOENT);
}

/* ---- stalls and delays -------------------------------------------------- */

static void test_stall_and_clear_halt(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64], ctl[8 + 2];
	struct txfer x;

	assert_int_equal(sim_set_stall(f->b, "1-1", 0x81, true), 0);
	for (int i = 0; i < 2; i++) { /* it stays stalled */
		bulk(f, &x, 0x81, buf, sizeof(buf), 0);
		assert_int_equal(x.t.status, -LNX_EPIPE);
		assert_int_equal(x.t.actual_length, 0);
	}
	control(f, &x, ctl, 0x82, 0x00, 0, 0x81, 2, 0); /* GET_STATUS(endpoint) */
	assert_int_equal(x.t.status, 0);
	assert_int_equal(ctl[8] & 1, 1);
	bulk(f, &x, 0x01, buf, sizeof(buf), 0); /* other endpoints unaffected */
	assert_int_equal(x.t.status, 0);

	assert_int_equal(f->b->ops->clear_halt(f->h, 0x81), 0);
	bulk(f, &x, 0x81, buf, sizeof(buf), 0);
	assert_int_equal(x.t.status, 0);
	control(f, &x, ctl, 0x82, 0x00, 0, 0x81, 2, 0);
	assert_int_equal(ctl[8] & 1, 0);

	/* the test control can clear it too */
	assert_int_equal(sim_set_stall(f->b, "1-1", 0x01, true), 0);
	bulk(f, &x, 0x01, buf, sizeof(buf), 0);
	assert_int_equal(x.t.status, -LNX_EPIPE);
	assert_int_equal(sim_set_stall(f->b, "1-1", 0x01, false), 0);
	bulk(f, &x, 0x01, buf, sizeof(buf), 0);
	assert_int_equal(x.t.status, 0);

	/* a stall ends a transfer that was waiting for data */
	prep(&x, &f->w, BK_XFER_BULK, 0x82, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), 0);
	assert_false(wait_xfer(&x, 1, QUIET_MS));
	assert_int_equal(sim_set_stall(f->b, "1-1", 0x82, true), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
	assert_int_equal(x.t.status, -LNX_EPIPE);
	assert_int_equal(f->b->ops->clear_halt(f->h, 0x82), 0);

	assert_int_equal(f->b->ops->clear_halt(f->h, 0x87), -LNX_ENOENT);
	assert_int_equal(sim_set_stall(f->b, "9-9", 0x81, true), -LNX_ENODEV);
}

static void test_delay(void **state)
{
	struct fx *f = *state;
	uint8_t buf[16], buf2[16];
	struct timespec t0;
	struct txfer a, b;

	assert_int_equal(sim_set_delay(f->b, "1-1", 150), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bulk(f, &a, 0x81, buf, sizeof(buf), 0);
	assert_int_equal(a.t.status, 0);
	assert_true(ms_between(&t0, &a.done_at) >= 150);

	/* a later, undelayed transfer on the same endpoint does not overtake */
	prep(&a, &f->w, BK_XFER_BULK, 0x81, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &a.t), 0);
	assert_int_equal(sim_set_delay(f->b, "1-1", 0), 0);
	prep(&b, &f->w, BK_XFER_BULK, 0x81, buf2, sizeof(buf2));
	assert_int_equal(bk_submit(f->h, &b.t), 0);
	assert_true(wait_xfer(&a, 1, WAIT_MS));
	assert_true(wait_xfer(&b, 1, WAIT_MS));
	assert_true(a.order < b.order);
	assert_int_equal(sim_set_delay(f->b, "9-9", 1), -LNX_ENODEV);
}

/* ---- isochronous ---------------------------------------------------------- */

static void test_iso(void **state)
{
	struct fx *f = *state;
	enum { NPK = 8, PKLEN = 1024 };
	uint8_t *buf = malloc(NPK * PKLEN);
	struct bk_iso_packet pk[NPK];
	struct txfer x;

	assert_non_null(buf);
	prep(&x, &f->w, BK_XFER_ISO, 0x84, buf, NPK * PKLEN);
	x.t.num_iso_packets = NPK;
	x.t.iso = pk;
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_ENOENT); /* alt 0 has no iso */
	assert_int_equal(f->b->ops->claim_interface(f->h, 1), 0);
	assert_int_equal(f->b->ops->set_interface(f->h, 1, 1), 0);

	/* IN: packet i gets min(length, 1024 - 8 * (i % 4)) bytes of value i */
	static const uint32_t lengths[2] = { PKLEN, 500 };
	for (int pass = 0; pass < 2; pass++) {
		uint32_t sum = 0;
		memset(buf, 0xee, NPK * PKLEN);
		for (int i = 0; i < NPK; i++)
			pk[i] = (struct bk_iso_packet){ .length = lengths[pass], .status = 99 };
		prep(&x, &f->w, BK_XFER_ISO, 0x84, buf, NPK * lengths[pass]);
		x.t.num_iso_packets = NPK;
		x.t.iso = pk;
		run(f->h, &x);
		assert_int_equal(x.t.status, 0);
		for (uint32_t i = 0; i < NPK; i++) {
			uint32_t want = PKLEN - 8 * (i % 4);
			if (want > lengths[pass])
				want = lengths[pass];
			assert_int_equal(pk[i].status, 0);
			assert_int_equal(pk[i].actual_length, want);
			const uint8_t *p = buf + i * lengths[pass]; /* back to back */
			for (uint32_t k = 0; k < want; k++)
				assert_int_equal(p[k], i);
			if (want < lengths[pass])
				assert_int_equal(p[want], 0xee);
			sum += want;
		}
		assert_int_equal(x.t.actual_length, sum);
	}
	assert_int_equal(x.t.actual_length, NPK * 500);

	/* OUT: every packet completes in full */
	static const uint32_t out_len[4] = { 700, 1024, 0, 3 };
	for (int i = 0; i < 4; i++)
		pk[i] = (struct bk_iso_packet){ .length = out_len[i], .actual_length = 77,
						.status = 99 };
	prep(&x, &f->w, BK_XFER_ISO, 0x04, buf, 700 + 1024 + 0 + 3);
	x.t.num_iso_packets = 4;
	x.t.iso = pk;
	run(f->h, &x);
	assert_int_equal(x.t.status, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pk[i].status, 0);
		assert_int_equal(pk[i].actual_length, out_len[i]);
	}
	assert_int_equal(x.t.actual_length, 1727);

	/* back to alt 0: the iso endpoints are gone again */
	assert_int_equal(f->b->ops->set_interface(f->h, 1, 0), 0);
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_ENOENT);
	assert_int_equal(f->b->ops->release_interface(f->h, 1), 0);
	free(buf);
}

/* ---- configuration calls -------------------------------------------------- */

static void test_set_interface_rules(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint8_t ifnum, alt;
		int want;
	} cases[] = {
		{ 0, 0, 0 }, { 0, 1, -LNX_EINVAL }, { 1, 0, 0 }, { 1, 1, 0 },
		{ 1, 2, -LNX_EINVAL }, { 2, 0, 0 }, { 2, 1, -LNX_EINVAL }, { 3, 0, 0 },
		{ 3, 1, -LNX_EINVAL }, { 4, 0, -LNX_EINVAL }, { 200, 0, -LNX_EINVAL },
	};

	for (uint8_t i = 0; i < 4; i++)
		assert_int_equal(f->b->ops->claim_interface(f->h, i), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(f->b->ops->set_interface(f->h, cases[i].ifnum, cases[i].alt),
				 cases[i].want);
	for (uint8_t i = 0; i < 4; i++)
		assert_int_equal(f->b->ops->release_interface(f->h, i), 0);
	/* as libusb: only on a claimed interface */
	assert_int_equal(f->b->ops->set_interface(f->h, 1, 1), -LNX_ENOENT);
}

static void test_set_interface_flushes(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];
	struct txfer x;

	assert_int_equal(f->b->ops->claim_interface(f->h, 2), 0);
	prep(&x, &f->w, BK_XFER_BULK, 0x82, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), 0);
	assert_false(wait_xfer(&x, 1, QUIET_MS));
	assert_int_equal(f->b->ops->set_interface(f->h, 2, 0), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
	assert_int_equal(x.t.status, -LNX_ESHUTDOWN);
	assert_int_equal(f->b->ops->release_interface(f->h, 2), 0);
}

static void test_set_configuration(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64], cfg[BK_MAX_CONFIG_DESC];
	struct bk_device_info *list;
	size_t n;
	struct txfer x;

	assert_int_equal(f->b->ops->set_configuration(f->h, 2), -LNX_EINVAL);
	assert_int_equal(f->b->ops->set_configuration(f->h, -1), -LNX_EINVAL);
	assert_int_equal(f->b->ops->set_configuration(f->h, 1), 0); /* already */
	/* Another handle's claim blocks a change, as in usbfs... */
	struct bk_handle *other;
	assert_int_equal(f->b->ops->open(f->b, "1-1", &other), 0);
	assert_int_equal(f->b->ops->claim_interface(other, 1), 0);
	assert_int_equal(f->b->ops->set_configuration(f->h, 0), -LNX_EBUSY);
	assert_int_equal(f->b->ops->release_interface(other, 1), 0);
	f->b->ops->close(other);
	/* ...while this handle's own claims end with their configuration. */
	assert_int_equal(f->b->ops->claim_interface(f->h, 0), 0);
	assert_int_equal(f->b->ops->set_configuration(f->h, 0), 0);
	assert_int_equal(sim_claimed_interfaces(f->b), 0);
	assert_int_equal(f->b->ops->release_interface(f->h, 0), -LNX_ENOENT);

	assert_int_equal(f->b->ops->enumerate(f->b, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].bConfigurationValue, 0);
	assert_int_equal(list[0].bNumInterfaces, 0);
	assert_int_equal(list[1].bConfigurationValue, 1); /* per device */
	free(list);
	assert_int_equal(f->b->ops->get_active_config(f->h, cfg, sizeof(cfg)), -LNX_ENOENT);
	assert_int_equal(f->b->ops->claim_interface(f->h, 0), -LNX_ENOENT);
	prep(&x, &f->w, BK_XFER_BULK, 0x81, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_ENOENT);
	control(f, &x, buf, 0x80, 0x08, 0, 0, 1, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(buf[8], 0);

	assert_int_equal(f->b->ops->set_configuration(f->h, 1), 0);
	bulk(f, &x, 0x81, buf, sizeof(buf), 0);
	assert_int_equal(x.t.status, 0);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];
	struct txfer x;

	assert_int_equal(f->b->ops->claim_interface(f->h, 1), 0);
	assert_int_equal(f->b->ops->set_interface(f->h, 1, 1), 0);
	assert_int_equal(sim_set_stall(f->b, "1-1", 0x81, true), 0);
	prep(&x, &f->w, BK_XFER_BULK, 0x82, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), 0);

	assert_int_equal(f->b->ops->reset(f->h), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
	assert_int_equal(x.t.status, -LNX_ESHUTDOWN);
	bulk(f, &x, 0x81, buf, sizeof(buf), 0); /* stall gone */
	assert_int_equal(x.t.status, 0);
	control(f, &x, buf, 0x81, 0x0a, 0, 1, 1, 0); /* back at alt 0 */
	assert_int_equal(buf[8], 0);
	assert_int_equal(sim_claimed_interfaces(f->b), 1); /* claims survive */
	assert_int_equal(f->b->ops->release_interface(f->h, 1), 0);
}

static void test_claims_and_locked_interface(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];
	struct bk_handle *h2;
	struct txfer x;

	assert_int_equal(sim_lock_interface(f->b, "1-1", 3, true), 0);
	assert_int_equal(f->b->ops->claim_interface(f->h, 3), -LNX_EBUSY);
	assert_int_equal(sim_claimed_interfaces(f->b), 0);
	prep(&x, &f->w, BK_XFER_BULK, 0x85, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_EBUSY);
	bulk(f, &x, 0x81, buf, sizeof(buf), 0); /* the rest of the device works */
	assert_int_equal(x.t.status, 0);

	assert_int_equal(sim_lock_interface(f->b, "1-1", 3, false), 0);
	assert_int_equal(f->b->ops->claim_interface(f->h, 3), 0);
	assert_int_equal(f->b->ops->claim_interface(f->h, 3), 0); /* twice is fine */
	assert_int_equal(sim_claimed_interfaces(f->b), 1);
	assert_int_equal(f->b->ops->claim_interface(f->h, 0), 0);
	assert_int_equal(sim_claimed_interfaces(f->b), 2);
	assert_int_equal(f->b->ops->claim_interface(f->h, 4), -LNX_ENOENT);
	assert_int_equal(f->b->ops->release_interface(f->h, 4), -LNX_ENOENT);

	/* another handle on the same device cannot take them */
	assert_int_equal(f->b->ops->open(f->b, "1-1", &h2), 0);
	assert_int_equal(f->b->ops->claim_interface(h2, 0), -LNX_EBUSY);
	assert_int_equal(f->b->ops->claim_interface(h2, 2), 0);
	assert_int_equal(sim_claimed_interfaces(f->b), 3);
	f->b->ops->close(h2); /* close releases */
	assert_int_equal(sim_claimed_interfaces(f->b), 2);

	assert_int_equal(f->b->ops->release_interface(f->h, 3), 0);
	assert_int_equal(f->b->ops->release_interface(f->h, 3), -LNX_ENOENT);
	assert_int_equal(sim_claimed_interfaces(f->b), 1);
	/* teardown closes f->h with interface 0 still claimed: must reach 0 */

	assert_int_equal(sim_lock_interface(f->b, "1-1", 9, true), -LNX_EINVAL);
	assert_int_equal(sim_lock_interface(f->b, "2-1", 0, true), -LNX_ENODEV);
}

/* ---- hotplug ------------------------------------------------------------- */

static void test_unplug_and_plug(void **state)
{
	struct fx *f = *state;
	uint8_t in[64], in2[64], cfg[BK_MAX_CONFIG_DESC];
	struct bk_device_info *list;
	size_t n;
	struct txfer rx, slow, x;

	assert_int_equal(f->b->ops->claim_interface(f->h, 0), 0);
	assert_int_equal(f->b->ops->enumerate(f->b, &list, &n), 0);
	uint8_t old_devnum = list[0].devnum;
	free(list);

	prep(&rx, &f->w, BK_XFER_BULK, 0x82, in, sizeof(in));
	assert_int_equal(bk_submit(f->h, &rx.t), 0);
	assert_int_equal(sim_set_delay(f->b, "1-1", 60000), 0);
	prep(&slow, &f->w, BK_XFER_BULK, 0x81, in2, sizeof(in2));
	assert_int_equal(bk_submit(f->h, &slow.t), 0);
	assert_int_equal(sim_pending_transfers(f->b), 2);

	assert_int_equal(sim_unplug(f->b, "1-1"), 0);
	assert_true(wait_xfer(&rx, 1, WAIT_MS));
	assert_true(wait_xfer(&slow, 1, WAIT_MS)); /* not after its minute */
	assert_int_equal(rx.t.status, -LNX_ESHUTDOWN);
	assert_int_equal(slow.t.status, -LNX_ESHUTDOWN);
	assert_int_equal(sim_pending_transfers(f->b), 0);
	assert_int_equal(sim_claimed_interfaces(f->b), 0);

	assert_true(wait_events(&f->hp, 1, WAIT_MS));
	assert_int_equal(f->hp.ev[0], BK_DEVICE_LEFT);
	assert_string_equal(f->hp.info[0].busid, "1-1");
	assert_int_equal(f->hp.info[0].devnum, old_devnum);
	assert_int_equal(f->hp.completions_before[0], 2); /* transfers failed first */

	/* the handle is dead; the device is not listed */
	prep(&x, &f->w, BK_XFER_BULK, 0x81, in, sizeof(in));
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_ENODEV);
	assert_int_equal(bk_cancel(f->h, &rx.t), -LNX_ENOENT);
	assert_int_equal(f->b->ops->claim_interface(f->h, 0), -LNX_ENODEV);
	assert_int_equal(f->b->ops->release_interface(f->h, 0), -LNX_ENODEV);
	assert_int_equal(f->b->ops->set_interface(f->h, 0, 0), -LNX_ENODEV);
	assert_int_equal(f->b->ops->set_configuration(f->h, 1), -LNX_ENODEV);
	assert_int_equal(f->b->ops->clear_halt(f->h, 0x81), -LNX_ENODEV);
	assert_int_equal(f->b->ops->reset(f->h), -LNX_ENODEV);
	assert_int_equal(f->b->ops->get_active_config(f->h, cfg, sizeof(cfg)), -LNX_ENODEV);
	assert_int_equal(f->b->ops->enumerate(f->b, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].busid, "1-2");
	free(list);
	struct bk_handle *h2 = NULL;
	assert_int_equal(f->b->ops->open(f->b, "1-1", &h2), -LNX_ENODEV);
	assert_int_equal(sim_unplug(f->b, "1-1"), -LNX_ENODEV);

	/* back again, with a new devnum; the old handle stays dead */
	assert_int_equal(sim_set_delay(f->b, "1-1", 0), 0);
	assert_int_equal(sim_plug(f->b, "1-1"), 0);
	assert_int_equal(sim_plug(f->b, "1-1"), -LNX_EBUSY);
	assert_true(wait_events(&f->hp, 2, WAIT_MS));
	assert_int_equal(f->hp.ev[1], BK_DEVICE_ARRIVED);
	assert_string_equal(f->hp.info[1].busid, "1-1");
	assert_int_not_equal(f->hp.info[1].devnum, old_devnum);
	assert_int_equal(f->hp.info[1].idProduct, 0xa4a0);
	assert_int_equal(bk_submit(f->h, &x.t), -LNX_ENODEV);
	assert_int_equal(f->b->ops->enumerate(f->b, &list, &n), 0);
	assert_int_equal(n, 2);
	free(list);

	f->b->ops->close(f->h);
	assert_int_equal(f->b->ops->open(f->b, "1-1", &f->h), 0);
	bulk(f, &x, 0x81, in, sizeof(in), 0);
	assert_int_equal(x.t.status, 0);
	assert_false(wait_events(&f->hp, 3, QUIET_MS)); /* no stray events */
	assert_int_equal(sim_plug(f->b, "7-7"), -LNX_ENODEV);
}

/* ---- threads and ordering ------------------------------------------------- */

static void test_no_completion_before_start(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];
	struct txfer x;

	prep(&x, &f->w, BK_XFER_BULK, 0x81, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), 0);
	assert_int_equal(ncomplete(&x), 0); /* not inline */
	assert_false(wait_xfer(&x, 1, QUIET_MS));
	assert_int_equal(sim_pending_transfers(f->b), 1);
	assert_int_equal(f->b->ops->start(f->b), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
	assert_int_equal(x.t.status, 0);

	/* stop and start again: still working */
	f->b->ops->stop(f->b);
	prep(&x, &f->w, BK_XFER_BULK, 0x81, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &x.t), 0);
	assert_false(wait_xfer(&x, 1, QUIET_MS));
	assert_int_equal(f->b->ops->start(f->b), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
}

enum { MANY = 512, SUBMITTERS = 2 };

struct many_ctx {
	struct fx *f;
	struct txfer x[MANY];
	uint8_t buf[MANY][64];
	int submit_rc[MANY];
	int cancel_rc[MANY];
};

struct many_slice {
	struct many_ctx *c;
	int first;
};

static void *many_submitter(void *arg)
{
	struct many_slice *s = arg;

	for (int i = s->first; i < MANY; i += SUBMITTERS)
		s->c->submit_rc[i] = bk_submit(s->c->f->h, &s->c->x[i].t);
	return NULL;
}

static void *many_canceller(void *arg)
{
	struct many_ctx *c = arg;

	for (int i = 0; i < MANY; i += 4)
		c->cancel_rc[i] = bk_cancel(c->f->h, &c->x[i].t);
	return NULL;
}

static void test_many_in_flight(void **state)
{
	struct fx *f = *state;
	struct many_ctx *c = calloc(1, sizeof(*c));
	struct many_slice slices[SUBMITTERS];
	pthread_t th[SUBMITTERS], canceller;

	assert_non_null(c);
	c->f = f;
	for (int i = 0; i < MANY; i++) {
		/* every 8th on the loopback IN, which only a cancel can end */
		uint8_t ep = (i % 8 == 0) ? 0x82 : 0x81;
		prep(&c->x[i], &f->w, BK_XFER_BULK, ep, c->buf[i], 64);
		c->cancel_rc[i] = 1;
	}
	assert_int_equal(sim_set_delay(f->b, "1-1", 20), 0);
	for (int k = 0; k < SUBMITTERS; k++) {
		slices[k] = (struct many_slice){ c, k };
		assert_int_equal(pthread_create(&th[k], NULL, many_submitter, &slices[k]), 0);
	}
	for (int k = 0; k < SUBMITTERS; k++)
		pthread_join(th[k], NULL);
	assert_int_equal(pthread_create(&canceller, NULL, many_canceller, c), 0);
	pthread_join(canceller, NULL);

	for (int i = 0; i < MANY; i++)
		assert_int_equal(c->submit_rc[i], 0);
	assert_true(wait_total(&f->w, MANY, WAIT_MS * 2));
	assert_false(wait_total(&f->w, MANY + 1, QUIET_MS)); /* nothing twice */
	for (int i = 0; i < MANY; i++) {
		const struct txfer *x = &c->x[i];
		assert_int_equal(x->ncomplete, 1);
		if (i % 8 == 0)
			assert_int_equal(c->cancel_rc[i], 0); /* could only be pending */
		if (i % 4 != 0) {
			assert_int_equal(x->t.status, 0);
			assert_int_equal(x->t.actual_length, 64);
			assert_int_equal(x->t.buffer[62], 62);
		} else if (c->cancel_rc[i] == 0) {
			assert_int_equal(x->t.status, -LNX_ECONNRESET);
		} else {
			assert_int_equal(c->cancel_rc[i], -LNX_ENOENT);
			assert_int_equal(x->t.status, 0);
		}
	}
	assert_int_equal(sim_pending_transfers(f->b), 0);
	free(c);
}

static void test_resubmit_from_callback(void **state)
{
	struct fx *f = *state;
	uint8_t buf[32];
	struct txfer x;

	prep(&x, &f->w, BK_XFER_BULK, 0x81, buf, sizeof(buf));
	x.resubmit_h = f->h;
	x.resubmit_left = 50;
	assert_int_equal(bk_submit(f->h, &x.t), 0);
	assert_true(wait_xfer(&x, 1, WAIT_MS));
	assert_int_equal(x.resubmit_left, 0);
	assert_int_equal(x.resubmit_err, 0);
	assert_int_equal(x.t.status, 0);
	assert_int_equal(sim_pending_transfers(f->b), 0);
}

static void test_close_and_destroy_with_pending(void **state)
{
	struct fx *f = *state;
	uint8_t buf[32], buf2[32];
	struct txfer a, b;

	/* close with a transfer outstanding: it still completes, once */
	prep(&a, &f->w, BK_XFER_BULK, 0x82, buf, sizeof(buf));
	assert_int_equal(bk_submit(f->h, &a.t), 0);
	f->b->ops->close(f->h);
	f->h = NULL;
	assert_true(wait_xfer(&a, 1, WAIT_MS));
	assert_int_equal(a.t.status, -LNX_ESHUTDOWN);

	/* destroy with one outstanding: completed during destroy */
	struct backend *b2 = sim_backend_new("zero");
	struct bk_handle *h2;
	assert_non_null(b2);
	assert_int_equal(b2->ops->start(b2), 0);
	assert_int_equal(b2->ops->open(b2, "1-1", &h2), 0);
	prep(&b, &f->w, BK_XFER_BULK, 0x82, buf2, sizeof(buf2));
	assert_int_equal(bk_submit(h2, &b.t), 0);
	b2->ops->close(h2);
	b2->ops->destroy(b2);
	assert_int_equal(ncomplete(&b), 1);
	assert_int_equal(b.t.status, -LNX_ESHUTDOWN);
}

/* ---- darwin mode and wedged transfers ---------------------------------- */

/* Darwin mode: a cancel ends every transfer of that handle on the endpoint;
 * other endpoints and handles opened before the mode are untouched. */
static void test_darwin_cancel_aborts_pipe(void **state)
{
	struct fx *f = *state;
	struct bk_handle *h2;
	struct txfer x[3], other;
	uint8_t buf[4][64];

	assert_int_equal(f->h->quirks, 0);
	assert_int_equal(sim_set_darwin(f->b, true), 0);
	assert_int_equal(f->b->ops->open(f->b, "1-2", &h2), 0);
	assert_int_equal(h2->quirks, BK_QUIRK_CANCEL_ABORTS_ENDPOINT);
	for (int i = 0; i < 3; i++) {
		prep(&x[i], &f->w, BK_XFER_BULK, 0x82, buf[i], sizeof(buf[i]));
		assert_int_equal(bk_submit(h2, &x[i].t), 0);
	}
	prep(&other, &f->w, BK_XFER_BULK, 0x82, buf[3], sizeof(buf[3]));
	assert_int_equal(bk_submit(f->h, &other.t), 0); /* 1-1: pends on */
	assert_int_equal(bk_cancel(h2, &x[1].t), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(wait_xfer(&x[i], 1, WAIT_MS));
		assert_int_equal(x[i].t.status, -LNX_ECONNRESET);
		assert_int_equal(x[i].t.actual_length, 0); /* a loopback read had nothing */
	}
	assert_int_equal(sim_pipe_bystanders(f->b), 2);
	assert_false(wait_xfer(&other, 1, QUIET_MS));
	assert_int_equal(bk_cancel(f->h, &other.t), 0);
	assert_true(wait_xfer(&other, 1, WAIT_MS));
	assert_int_equal(sim_pipe_bystanders(f->b), 2);
	f->b->ops->close(h2);
}

/* Darwin mode: the head of an aborted pipe may have moved data: a source
 * waiting for its delay, half of it in whole packets. */
static void test_darwin_abort_moves_head(void **state)
{
	struct fx *f = *state;
	struct bk_handle *h2;
	struct txfer a, b;
	static uint8_t abuf[4096], bbuf[4096];

	assert_int_equal(sim_set_darwin(f->b, true), 0);
	assert_int_equal(f->b->ops->open(f->b, "1-2", &h2), 0);
	assert_int_equal(sim_set_delay(f->b, "1-2", 2000), 0);
	prep(&a, &f->w, BK_XFER_BULK, 0x81, abuf, sizeof(abuf));
	prep(&b, &f->w, BK_XFER_BULK, 0x81, bbuf, sizeof(bbuf));
	assert_int_equal(bk_submit(h2, &a.t), 0);
	assert_int_equal(bk_submit(h2, &b.t), 0);
	assert_int_equal(bk_cancel(h2, &b.t), 0);
	assert_true(wait_xfer(&a, 1, WAIT_MS));
	assert_true(wait_xfer(&b, 1, WAIT_MS));
	assert_int_equal(a.t.status, -LNX_ECONNRESET);
	assert_int_equal(a.t.actual_length, 2048);
	assert_int_equal(abuf[100], 100 % 63);
	assert_int_equal(b.t.status, -LNX_ECONNRESET);
	assert_int_equal(b.t.actual_length, 0);
	f->b->ops->close(h2);
}

/* Darwin mode: a handle closed after use without a reset leaves the device
 * stuck (non-control transfers fail) until a reset. */
static void test_darwin_close_needs_reset(void **state)
{
	struct fx *f = *state;
	struct bk_handle *h2;
	struct txfer x;
	uint8_t buf[64];

	f->b->ops->close(f->h);
	f->h = NULL;
	assert_int_equal(sim_set_darwin(f->b, true), 0);
	assert_int_equal(f->b->ops->open(f->b, "1-1", &f->h), 0);
	bulk(f, &x, 0x81, buf, 64, 0);
	assert_int_equal(x.t.status, 0);
	f->b->ops->close(f->h);
	assert_int_equal(f->b->ops->open(f->b, "1-1", &f->h), 0);
	bulk(f, &x, 0x81, buf, 64, 0);
	assert_int_equal(x.t.status, -LNX_EPROTO);
	control(f, &x, buf, 0x80, 6, 0x0100, 0, 18, 0); /* ep 0 still answers */
	assert_int_equal(x.t.status, 0);
	assert_int_equal(f->b->ops->reset(f->h), 0);
	bulk(f, &x, 0x81, buf, 64, 0);
	assert_int_equal(x.t.status, 0);
	/* Reset, then closed: the next user finds it working. */
	assert_int_equal(f->b->ops->reset(f->h), 0);
	f->b->ops->close(f->h);
	assert_int_equal(f->b->ops->open(f->b, "1-1", &h2), 0);
	f->h = h2;
	bulk(f, &x, 0x81, buf, 64, 0);
	assert_int_equal(x.t.status, 0);
}

/* A wedged transfer ignores time, cancel and reset; unwedging lets a
 * cancelled one end -ECONNRESET, and close ends one -ESHUTDOWN. Transfers
 * behind it on its endpoint wait, other endpoints do not. */
static void test_wedge(void **state)
{
	struct fx *f = *state;
	struct txfer w, behind, other;
	uint8_t wbuf[64], bbuf[64], obuf[64];

	assert_int_equal(sim_wedge_next(f->b, "1-1", 0x81), 0);
	prep(&w, &f->w, BK_XFER_BULK, 0x81, wbuf, sizeof(wbuf));
	prep(&behind, &f->w, BK_XFER_BULK, 0x81, bbuf, sizeof(bbuf));
	assert_int_equal(bk_submit(f->h, &w.t), 0);
	assert_int_equal(bk_submit(f->h, &behind.t), 0);
	bulk(f, &other, 0x01, obuf, sizeof(obuf), 0);
	assert_int_equal(other.t.status, 0);
	assert_int_equal(bk_cancel(f->h, &w.t), 0);
	assert_int_equal(f->b->ops->reset(f->h), 0); /* fails behind, not w */
	assert_true(wait_xfer(&behind, 1, WAIT_MS));
	assert_int_equal(behind.t.status, -LNX_ESHUTDOWN);
	assert_false(wait_xfer(&w, 1, QUIET_MS));
	assert_int_equal(sim_unwedge(f->b, "1-1"), 0);
	assert_true(wait_xfer(&w, 1, WAIT_MS));
	assert_int_equal(w.t.status, -LNX_ECONNRESET);

	assert_int_equal(sim_wedge_next(f->b, "1-1", 0x81), 0);
	prep(&w, &f->w, BK_XFER_BULK, 0x81, wbuf, sizeof(wbuf));
	assert_int_equal(bk_submit(f->h, &w.t), 0);
	assert_false(wait_xfer(&w, 1, QUIET_MS));
	f->b->ops->close(f->h);
	f->h = NULL;
	assert_true(wait_xfer(&w, 1, WAIT_MS));
	assert_int_equal(w.t.status, -LNX_ESHUTDOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_parsing),
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_enumerate_fields),
		T(test_active_config),
		T(test_control_get_descriptor),
		T(test_control_standard_and_stalls),
		T(test_control_vendor_roundtrip),
		T(test_submit_validation),
		T(test_sources_and_sinks),
		T(test_short_read_and_short_not_ok),
		T(test_loopback_pending_then_satisfied),
		T(test_loopback_waits_for_room),
		T(test_cancel_pending),
		T(test_cancel_completed),
		T(test_stall_and_clear_halt),
		T(test_delay),
		T(test_iso),
		T(test_set_interface_rules),
		T(test_set_interface_flushes),
		T(test_set_configuration),
		T(test_reset),
		T(test_claims_and_locked_interface),
		T(test_unplug_and_plug),
		T(test_many_in_flight),
		T(test_resubmit_from_callback),
		T(test_close_and_destroy_with_pending),
		T(test_darwin_cancel_aborts_pipe),
		T(test_darwin_abort_moves_head),
		T(test_darwin_close_needs_reset),
		T(test_wedge),
		cmocka_unit_test_setup_teardown(test_no_completion_before_start, fx_setup_stopped,
						fx_teardown),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
