/* Unit tests of the libusb backend: what can be checked without USB
 * hardware (lifecycle, empty enumeration, open failures) and its pure
 * helpers (fake sysfs trees, busids, list diffs, control lengths).
 * Real devices are exercised by the end-to-end tests in a QEMU guest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/libusb_backend.h"
#include "backend/libusb_internal.h"
#include "proto/linux_errno.h"

/* ---- helpers: a throw-away sysfs tree --------------------------------- */

struct fake_sysfs {
	char root[64];
};

static void mkdirs(const char *path)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(buf, 0755);
			*p = '/';
		}
	}
	assert_true(mkdir(buf, 0755) == 0 || errno == EEXIST);
}

static void put_file(const struct fake_sysfs *fs, const char *rel, const char *content,
		     size_t len)
{
	char path[512];
	char dir[512];

	snprintf(path, sizeof(path), "%s/%s", fs->root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdirs(dir);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void put_text(const struct fake_sysfs *fs, const char *rel, const char *text)
{
	put_file(fs, rel, text, strlen(text));
}

static void put_link(const struct fake_sysfs *fs, const char *rel, const char *target)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fs->root, rel);
	assert_int_equal(symlink(target, path), 0);
}

/* A tree like a Linux host with an EHCI bus 1, a vhci bus 2 recognised by
 * its product string, a vhci bus 3 recognised by its link only, and a
 * dummy_hcd bus 4 reached through a link. */
static int fake_sysfs_setup(void **state)
{
	struct fake_sysfs *fs = calloc(1, sizeof(*fs));

	assert_non_null(fs);
	snprintf(fs->root, sizeof(fs->root), "/tmp/test_libusb_sysfs.XXXXXX");
	assert_non_null(mkdtemp(fs->root));

	put_text(fs, "bus/usb/devices/usb1/product", "EHCI Host Controller\n");
	put_text(fs, "bus/usb/devices/usb2/product", "USB/IP Virtual Host Controller\n");
	put_text(fs, "devices/platform/vhci_hcd.1/usb3/product", "something else\n");
	put_link(fs, "bus/usb/devices/usb3", "../../../devices/platform/vhci_hcd.1/usb3");
	put_text(fs, "devices/platform/dummy_hcd.0/usb4/product", "Dummy host controller\n");
	put_link(fs, "bus/usb/devices/usb4", "../../../devices/platform/dummy_hcd.0/usb4");

	put_text(fs, "bus/usb/devices/1-1/serial", "ABC123\n");
	put_text(fs, "bus/usb/devices/1-1/product", "Line\x01With\x7f" "Ctl\n");
	put_text(fs, "bus/usb/devices/1-1/manufacturer", "NoNewline");
	put_file(fs, "bus/usb/devices/1-1/empty", "", 0);
	*state = fs;
	return 0;
}

static int fake_sysfs_teardown(void **state)
{
	struct fake_sysfs *fs = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fs->root);
	assert_int_equal(system(cmd), 0);
	free(fs);
	return 0;
}

/* ---- pure helpers ----------------------------------------------------- */

static void test_vhci_detection(void **state)
{
	const struct fake_sysfs *fs = *state;
	static const struct {
		unsigned bus;
		int want;
	} cases[] = {
		{ 1, 0 }, /* EHCI */
		{ 2, 1 }, /* product string */
		{ 3, 1 }, /* link into vhci_hcd.1 */
		{ 4, 0 }, /* link into dummy_hcd.0 */
		{ 5, 0 }, /* no such bus */
		{ 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = lu_sysfs_bus_is_vhci(fs->root, cases[i].bus);

		if (got != cases[i].want)
			fail_msg("bus %u: got %d, want %d", cases[i].bus, got, cases[i].want);
	}
	/* A root without any USB (this machine's /sys, or a missing tree). */
	assert_int_equal(lu_sysfs_bus_is_vhci("/nonexistent-sysfs-root", 2), 0);
}

static void test_sysfs_read_attr(void **state)
{
	const struct fake_sysfs *fs = *state;
	static const struct {
		const char *attr;
		int ret;
		const char *text;
	} cases[] = {
		{ "serial", 6, "ABC123" },              /* newline dropped */
		{ "product", 12, "Line?With?Ctl" },     /* control bytes masked */
		{ "manufacturer", 9, "NoNewline" },
		{ "empty", 0, "" },
		{ "missing", -LNX_ENOENT, "" },
	};
	char buf[BK_STRING_SIZE];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		int r = lu_sysfs_read_attr(fs->root, "1-1", cases[i].attr, buf, sizeof(buf));

		if (cases[i].ret >= 0)
			assert_int_equal(r, (int)strlen(cases[i].text));
		else
			assert_int_equal(r, cases[i].ret);
		assert_string_equal(buf, cases[i].text);
	}

	/* A small buffer truncates and still terminates. */
	char small[4];

	assert_int_equal(lu_sysfs_read_attr(fs->root, "1-1", "serial", small, sizeof(small)), 3);
	assert_string_equal(small, "ABC");
}

static void test_busid_from_ports(void **state)
{
	(void)state;
	static const struct {
		uint8_t bus;
		uint8_t ports[BK_MAX_PORT_DEPTH];
		int n;
		int ret;
		const char *busid;
	} cases[] = {
		{ 1, { 1 }, 1, 0, "1-1" },
		{ 3, { 2, 4 }, 2, 0, "3-2.4" },
		{ 255, { 1, 2, 3, 4, 5, 6, 7 }, 7, 0, "255-1.2.3.4.5.6.7" },
		{ 12, { 15, 200 }, 2, 0, "12-15.200" },
		{ 1, { 0 }, 0, -LNX_ENOENT, NULL },                 /* root hub */
		{ 1, { 0 }, LIBUSB_ERROR_OVERFLOW, -LNX_ENOENT, NULL }, /* libusb error */
		{ 1, { 1, 0 }, 2, -LNX_ENOENT, NULL },              /* port 0 */
		{ 0, { 1 }, 1, -LNX_ENOENT, NULL },                 /* bus 0 */
		{ 1, { 1 }, 8, -LNX_ENOENT, NULL },                 /* too deep */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char busid[USBIP_BUSID_SIZE] = "";
		int r = lu_busid_from_ports(cases[i].bus, cases[i].ports, cases[i].n, busid);

		if (r != cases[i].ret)
			fail_msg("case %zu: got %d, want %d", i, r, cases[i].ret);
		if (cases[i].busid != NULL)
			assert_string_equal(busid, cases[i].busid);
	}
}

static struct bk_device_info dev_info(const char *busid, uint8_t bus, uint8_t dev)
{
	struct bk_device_info d;

	memset(&d, 0, sizeof(d));
	snprintf(d.busid, sizeof(d.busid), "%s", busid);
	d.busnum = bus;
	d.devnum = dev;
	return d;
}

static void test_diff(void **state)
{
	(void)state;
	const struct bk_device_info before[] = {
		dev_info("1-1", 1, 2),
		dev_info("1-2", 1, 3),
		dev_info("2-1", 2, 2),
	};
	/* 1-1 re-plugged (new device number), 1-2 unplugged, 2-1 unchanged,
	 * 1-3 plugged. */
	const struct bk_device_info after[] = {
		dev_info("2-1", 2, 2),
		dev_info("1-1", 1, 4),
		dev_info("1-3", 1, 5),
	};
	size_t idx[3];

	/* Left: entries of before that after lacks. */
	assert_int_equal(lu_diff(after, 3, before, 3, idx), 2);
	assert_int_equal(idx[0], 0); /* 1-1 dev 2 */
	assert_int_equal(idx[1], 1); /* 1-2 */

	/* Arrived: entries of after that before lacks. */
	assert_int_equal(lu_diff(before, 3, after, 3, idx), 2);
	assert_int_equal(idx[0], 1); /* 1-1 dev 4 */
	assert_int_equal(idx[1], 2); /* 1-3 */

	/* Same list twice: nothing to report, which is what keeps a device
	 * seen by both hotplug and rescan from being reported twice. */
	assert_int_equal(lu_diff(before, 3, before, 3, idx), 0);
	/* From nothing: everything arrived; to nothing: everything left. */
	assert_int_equal(lu_diff(NULL, 0, before, 3, idx), 3);
	assert_int_equal(lu_diff(before, 3, NULL, 0, idx), 0);

	assert_true(lu_same_device(&before[2], &after[0]));
	assert_false(lu_same_device(&before[0], &after[1]));
}

static void test_control_length(void **state)
{
	(void)state;
	static const struct {
		uint8_t wlen_lo, wlen_hi;
		uint32_t length;
		int want;
	} cases[] = {
		{ 0, 0, 8, 8 },
		{ 0x12, 0, 8 + 0x12, 8 + 0x12 },
		{ 0x12, 0, 100, 8 + 0x12 },       /* larger buffer: libusb uses wLength */
		{ 0x00, 0x01, 8 + 256, 8 + 256 }, /* little-endian wLength */
		{ 0x00, 0x01, 8 + 255, -LNX_EINVAL }, /* buffer shorter than wLength */
		{ 0xff, 0xff, 8 + 65535, 8 + 65535 },
		{ 0, 0, 7, -LNX_EINVAL },         /* no room for the setup packet */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t setup[8] = { 0x80, 6, 0, 1, 0, 0, cases[i].wlen_lo, cases[i].wlen_hi };
		int got = lu_control_length(setup, cases[i].length);

		if (got != cases[i].want)
			fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
	}
	assert_int_equal(lu_control_length(NULL, 8), -LNX_EINVAL);
}

/* ---- transfer results and submit checks ----------------------------- */

static void test_fill_result(void **state)
{
	(void)state;
	static const struct {
		uint8_t type;
		uint8_t endpoint;
		uint8_t bm_request_type; /* control only */
		uint32_t flags;
		int length;              /* libusb's, setup included for control */
		int actual;              /* libusb's, data only */
		enum libusb_transfer_status st;
		int32_t want_status;
		uint32_t want_actual;
	} cases[] = {
		/* bulk IN, full and short, with and without SHORT_NOT_OK */
		{ BK_XFER_BULK, 0x81, 0, 0, 512, 512, LIBUSB_TRANSFER_COMPLETED, 0, 512 },
		{ BK_XFER_BULK, 0x81, 0, 0, 512, 13, LIBUSB_TRANSFER_COMPLETED, 0, 13 },
		{ BK_XFER_BULK, 0x81, 0, BK_F_SHORT_NOT_OK, 512, 13, LIBUSB_TRANSFER_COMPLETED,
		  -LNX_EREMOTEIO, 13 },
		{ BK_XFER_BULK, 0x81, 0, BK_F_SHORT_NOT_OK, 512, 512, LIBUSB_TRANSFER_COMPLETED, 0,
		  512 },
		/* OUT: SHORT_NOT_OK does not apply */
		{ BK_XFER_BULK, 0x01, 0, BK_F_SHORT_NOT_OK, 512, 100, LIBUSB_TRANSFER_COMPLETED, 0,
		  100 },
		{ BK_XFER_INTERRUPT, 0x83, 0, BK_F_SHORT_NOT_OK, 64, 8, LIBUSB_TRANSFER_COMPLETED,
		  -LNX_EREMOTEIO, 8 },
		/* control: data bytes only; direction from bmRequestType */
		{ BK_XFER_CONTROL, 0x00, 0x80, 0, 8 + 18, 18, LIBUSB_TRANSFER_COMPLETED, 0, 18 },
		{ BK_XFER_CONTROL, 0x00, 0x80, BK_F_SHORT_NOT_OK, 8 + 255, 18,
		  LIBUSB_TRANSFER_COMPLETED, -LNX_EREMOTEIO, 18 },
		{ BK_XFER_CONTROL, 0x00, 0x00, BK_F_SHORT_NOT_OK, 8 + 4, 0,
		  LIBUSB_TRANSFER_COMPLETED, 0, 0 },
		/* failures */
		{ BK_XFER_BULK, 0x81, 0, 0, 64, 0, LIBUSB_TRANSFER_STALL, -LNX_EPIPE, 0 },
		{ BK_XFER_BULK, 0x81, 0, 0, 64, 0, LIBUSB_TRANSFER_CANCELLED, -LNX_ECONNRESET, 0 },
		{ BK_XFER_BULK, 0x81, 0, 0, 64, 64, LIBUSB_TRANSFER_OVERFLOW, -LNX_EOVERFLOW, 64 },
		/* libusb claiming more than asked is clamped */
		{ BK_XFER_BULK, 0x81, 0, 0, 64, 100, LIBUSB_TRANSFER_COMPLETED, 0, 64 },
		{ BK_XFER_CONTROL, 0x00, 0x80, 0, 8 + 2, 9, LIBUSB_TRANSFER_COMPLETED, 0, 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[8 + 512] = { cases[i].bm_request_type };
		struct libusb_transfer *x = libusb_alloc_transfer(0);
		struct bk_transfer t;

		assert_non_null(x);
		memset(&t, 0, sizeof(t));
		t.type = cases[i].type;
		t.endpoint = cases[i].endpoint;
		t.flags = cases[i].flags;
		x->endpoint = cases[i].type == BK_XFER_CONTROL ? 0 : cases[i].endpoint;
		x->buffer = buf;
		x->length = cases[i].length;
		x->actual_length = cases[i].actual;
		x->status = cases[i].st;
		lu_fill_result(&t, x);
		if (t.status != cases[i].want_status || t.actual_length != cases[i].want_actual)
			fail_msg("case %zu: status %d actual %u, want %d %u", i, t.status,
				 t.actual_length, cases[i].want_status, cases[i].want_actual);
		libusb_free_transfer(x);
	}
}

static void test_fill_result_iso(void **state)
{
	(void)state;
	struct libusb_transfer *x = libusb_alloc_transfer(3);
	struct bk_iso_packet iso[3] = { { 100, 0, 0 }, { 100, 0, 0 }, { 100, 0, 0 } };
	struct bk_transfer t;
	uint8_t buf[300];

	assert_non_null(x);
	memset(&t, 0, sizeof(t));
	t.type = BK_XFER_ISO;
	t.endpoint = 0x84;
	t.flags = BK_F_SHORT_NOT_OK; /* never applies to iso */
	t.num_iso_packets = 3;
	t.iso = iso;
	x->endpoint = 0x84;
	x->buffer = buf;
	x->length = 300;
	x->num_iso_packets = 3;
	x->actual_length = 0; /* libusb leaves it unset for iso */
	x->status = LIBUSB_TRANSFER_COMPLETED;
	const struct {
		unsigned actual;
		enum libusb_transfer_status st;
	} pk[3] = {
		{ 100, LIBUSB_TRANSFER_COMPLETED },
		{ 40, LIBUSB_TRANSFER_COMPLETED },
		{ 0, LIBUSB_TRANSFER_ERROR },
	};

	for (int i = 0; i < 3; i++) {
		x->iso_packet_desc[i].length = 100;
		x->iso_packet_desc[i].actual_length = pk[i].actual;
		x->iso_packet_desc[i].status = pk[i].st;
	}
	lu_fill_result(&t, x);
	assert_int_equal(t.status, 0);
	assert_int_equal(t.actual_length, 140);
	assert_int_equal(iso[0].actual_length, 100);
	assert_int_equal(iso[0].status, 0);
	assert_int_equal(iso[1].actual_length, 40);
	assert_int_equal(iso[1].status, 0); /* a short packet is no error */
	assert_int_equal(iso[2].actual_length, 0);
	assert_true(iso[2].status < 0);
	libusb_free_transfer(x);
}

static int complete_calls;

static void count_complete(struct bk_transfer *t)
{
	(void)t;
	complete_calls++;
}

/* Submits that fail their checks fail before libusb is asked (the handle
 * has no device at all here) and never call complete(). */
static void test_submit_rejects(void **state)
{
	(void)state;
	struct lu_handle h;
	uint8_t buf[64] = { 0x80, 6, 0, 1, 0, 0, 64, 0 }; /* wLength 64 > 56 */
	struct bk_iso_packet iso[2] = { { 40, 0, 0 }, { 40, 0, 0 } };
	static const struct {
		uint8_t type;
		uint32_t length;
		uint32_t npk;
		bool iso;
		bool buffer;
		bool complete;
	} cases[] = {
		{ BK_XFER_CONTROL, 64, 0, false, true, true },     /* wLength beyond buffer */
		{ BK_XFER_CONTROL, 4, 0, false, true, true },      /* no setup */
		{ BK_XFER_BULK, 64, 0, false, true, false },       /* no complete() */
		{ BK_XFER_BULK, 64, 0, false, false, true },       /* no buffer */
		{ BK_XFER_BULK, USBIP_MAX_TRANSFER_LENGTH + 1, 0, false, true, true },
		{ BK_XFER_ISO, 64, 2, true, true, true },          /* packets exceed buffer */
		{ BK_XFER_ISO, 64, 0, true, true, true },          /* no packets */
		{ BK_XFER_ISO, 64, 2, false, true, true },         /* no packet array */
		{ BK_XFER_ISO, 64, USBIP_MAX_ISO_PACKETS + 1, true, true, true },
		{ 7, 64, 0, false, true, true },                   /* unknown type */
	};

	memset(&h, 0, sizeof(h));
	h.sys_fd = -1;
	assert_int_equal(pthread_mutex_init(&h.xfer_lock, NULL), 0);
	complete_calls = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bk_transfer t;

		memset(&t, 0, sizeof(t));
		t.type = cases[i].type;
		t.endpoint = 0x81;
		t.length = cases[i].length;
		t.buffer = cases[i].buffer ? buf : NULL;
		t.num_iso_packets = cases[i].npk;
		t.iso = cases[i].iso ? iso : NULL;
		t.complete = cases[i].complete ? count_complete : NULL;
		int r = lu_submit(&h.base, &t);

		if (r != -LNX_EINVAL)
			fail_msg("case %zu: got %d, want -EINVAL", i, r);
		assert_null(t.priv);
	}
	assert_int_equal(complete_calls, 0);
	assert_int_equal(h.in_flight, 0);
	assert_null(h.pending);

	/* Never submitted, so nothing to cancel. */
	struct bk_transfer idle;

	memset(&idle, 0, sizeof(idle));
	assert_int_equal(lu_cancel(&h.base, &idle), -LNX_ENOENT);
	pthread_mutex_destroy(&h.xfer_lock);
}

/* ---- the backend on a host without USB ---------------------------------- */

static bool host_has_usb(void)
{
	return access("/sys/bus/usb/devices", F_OK) == 0;
}

struct hotplug_count { /* bumped on the rescan thread */
	atomic_int arrived;
	atomic_int left;
};

static void count_hotplug(void *ctx, enum bk_hotplug_event ev, const struct bk_device_info *info)
{
	struct hotplug_count *c = ctx;

	(void)info;
	if (ev == BK_DEVICE_ARRIVED)
		c->arrived++;
	else
		c->left++;
}

static void test_options_init_sets_every_field(void **state)
{
	(void)state;
	struct libusb_backend_options opt;
	memset(&opt, 0xa5, sizeof(opt)); /* what a stack variable may hold */
	libusb_backend_options_init(&opt);
	assert_int_equal(opt.rescan_interval_ms, LIBUSB_BACKEND_DEFAULT_RESCAN_MS);
	assert_false(opt.include_vhci);
	assert_true(opt.use_hotplug);
	assert_false(opt.no_dev_mem); /* zero copy on by default */
	assert_string_equal(opt.sysfs_root, LIBUSB_BACKEND_DEFAULT_SYSFS_ROOT);
}

static void test_new_and_enumerate(void **state)
{
	(void)state;
	struct backend *b = libusb_backend_new(NULL);

	assert_non_null(b);
	assert_string_equal(b->ops->name, "libusb");

	struct bk_device_info *devs = (struct bk_device_info *)&devs; /* must be overwritten */
	size_t count = 12345;

	assert_int_equal(b->ops->enumerate(b, &devs, &count), 0);
	if (!host_has_usb()) {
		assert_int_equal(count, 0);
		assert_null(devs);
	}
	free(devs);
	b->ops->destroy(b);
}

static void test_open_unknown(void **state)
{
	(void)state;
	struct backend *b = libusb_backend_new(NULL);
	struct bk_handle *h = (struct bk_handle *)&h;

	assert_non_null(b);
	if (!host_has_usb()) {
		assert_int_equal(b->ops->open(b, "9-9", &h), -LNX_ENODEV);
		assert_null(h);
		assert_int_equal(b->ops->open(b, "1-1.2.3", &h), -LNX_ENODEV);
	}
	/* Malformed busids never reach libusb, on any host. */
	static const char *const bad[] = { "", "1", "1-", "01-1", "1-1.", "x-1", "1-0" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = (struct bk_handle *)&h;
		assert_int_equal(b->ops->open(b, bad[i], &h), -LNX_EINVAL);
		assert_null(h);
	}
	b->ops->destroy(b);
}

static void test_start_stop(void **state)
{
	(void)state;
	struct libusb_backend_options opt;
	struct hotplug_count seen = { 0, 0 };

	libusb_backend_options_init(&opt);
	assert_int_equal(opt.rescan_interval_ms, 1000);
	assert_false(opt.include_vhci);
	assert_true(opt.use_hotplug);
	assert_string_equal(opt.sysfs_root, "/sys");
	opt.rescan_interval_ms = 10; /* many rescans in a short run */

	struct backend *b = libusb_backend_new(&opt);

	assert_non_null(b);
	backend_set_hotplug(b, count_hotplug, &seen);

	b->ops->stop(b); /* before start: harmless */
	assert_int_equal(b->ops->start(b), 0);
	assert_int_equal(b->ops->start(b), -LNX_EBUSY);

	struct timespec pause = { .tv_sec = 0, .tv_nsec = 150 * 1000 * 1000 };

	nanosleep(&pause, NULL);
	/* Enumerating while the event thread rescans. */
	struct bk_device_info *devs = NULL;
	size_t count = 0;

	assert_int_equal(b->ops->enumerate(b, &devs, &count), 0);
	free(devs);

	/* stop() must return promptly even though the thread waits in libusb. */
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	b->ops->stop(b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;

	assert_true(ms < 500);
	b->ops->stop(b); /* twice: harmless */

	/* Nothing was plugged: rescans must not invent events. */
	if (!host_has_usb()) {
		assert_int_equal(seen.arrived, 0);
		assert_int_equal(seen.left, 0);
	}

	/* Restartable, and destroy stops a running backend. */
	assert_int_equal(b->ops->start(b), 0);
	b->ops->destroy(b);
}

static void test_stop_wakes_long_wait(void **state)
{
	(void)state;
	struct libusb_backend_options opt;

	libusb_backend_options_init(&opt);
	opt.rescan_interval_ms = 0; /* the thread sleeps in libusb only */
	opt.use_hotplug = false;
	struct backend *b = libusb_backend_new(&opt);

	assert_non_null(b);
	assert_int_equal(b->ops->start(b), 0);

	struct timespec pause = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };

	nanosleep(&pause, NULL);
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	b->ops->stop(b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;

	/* Without the interrupt it would sit out its 1 s wait. */
	assert_true(ms < 500);
	b->ops->destroy(b);
}

static void test_two_backends(void **state)
{
	(void)state;
	/* No singletons: two instances side by side. */
	struct backend *a = libusb_backend_new(NULL);
	struct backend *c = libusb_backend_new(NULL);

	assert_non_null(a);
	assert_non_null(c);
	assert_int_equal(a->ops->start(a), 0);
	assert_int_equal(c->ops->start(c), 0);
	c->ops->destroy(c);
	a->ops->destroy(a);
}

/* ---- enumeration from sysfs ------------------------------------------- */

struct attr_file {
	const char *name;
	const char *text;
};

static void put_attrs(const struct fake_sysfs *fs, const char *dev, const struct attr_file *a)
{
	char rel[256];

	for (; a->name != NULL; a++) {
		snprintf(rel, sizeof(rel), "bus/usb/devices/%s/%s", dev, a->name);
		put_text(fs, rel, a->text);
	}
}

/* A host as Linux shows it: a root hub, a configured high-speed device with
 * two interfaces (and one of its other configuration, not active), an
 * unconfigured full-speed device behind a hub port, a device on a vhci bus,
 * and one whose files are half gone (unplugged mid-scan). */
static int fake_scan_setup(void **state)
{
	struct fake_sysfs *fs = calloc(1, sizeof(*fs));

	assert_non_null(fs);
	snprintf(fs->root, sizeof(fs->root), "/tmp/test_libusb_scan.XXXXXX");
	assert_non_null(mkdtemp(fs->root));

	put_text(fs, "bus/usb/devices/usb1/product", "EHCI Host Controller\n");
	put_text(fs, "bus/usb/devices/usb1/busnum", "1\n");
	put_text(fs, "bus/usb/devices/usb2/product", "USB/IP Virtual Host Controller\n");
	const struct attr_file gadget[] = {
		{ "busnum", "1\n" },        { "devnum", "7\n" },
		{ "speed", "480\n" },       { "idVendor", "0525\n" },
		{ "idProduct", "a4a0\n" },  { "bcdDevice", "0419\n" },
		{ "bDeviceClass", "ef\n" }, { "bDeviceSubClass", "02\n" },
		{ "bDeviceProtocol", "01\n" }, { "bNumConfigurations", "2\n" },
		{ "bConfigurationValue", "1\n" }, { "bNumInterfaces", " 2\n" },
		{ "serial", "0123456789\n" }, { "manufacturer", "Linux Foundation\n" },
		{ "product", "Gadget Zero\n" }, { NULL, NULL },
	};
	put_attrs(fs, "1-1", gadget);
	const struct attr_file if1[] = {
		{ "bInterfaceClass", "0a\n" }, { "bInterfaceSubClass", "00\n" },
		{ "bInterfaceProtocol", "00\n" }, { NULL, NULL },
	};
	const struct attr_file if0[] = {
		{ "bInterfaceClass", "ff\n" }, { "bInterfaceSubClass", "01\n" },
		{ "bInterfaceProtocol", "02\n" }, { NULL, NULL },
	};
	const struct attr_file other_cfg[] = {
		{ "bInterfaceClass", "08\n" }, { NULL, NULL },
	};
	put_attrs(fs, "1-1:1.1", if1);
	put_attrs(fs, "1-1:1.0", if0);
	put_attrs(fs, "1-1:2.0", other_cfg);
	const struct attr_file unconfigured[] = {
		{ "busnum", "1\n" },        { "devnum", "9\n" },
		{ "speed", "12\n" },        { "idVendor", "1d6b\n" },
		{ "idProduct", "0104\n" },  { "bcdDevice", "0100\n" },
		{ "bDeviceClass", "00\n" }, { "bDeviceSubClass", "00\n" },
		{ "bDeviceProtocol", "00\n" }, { "bNumConfigurations", "1\n" },
		{ "bConfigurationValue", "\n" }, { "bNumInterfaces", "\n" },
		{ NULL, NULL },
	};
	put_attrs(fs, "1-1.3", unconfigured);
	const struct attr_file copy[] = {
		{ "busnum", "2\n" },        { "devnum", "2\n" },
		{ "speed", "5000\n" },      { "idVendor", "0525\n" },
		{ "idProduct", "a4a0\n" },  { "bcdDevice", "0419\n" },
		{ "bDeviceClass", "00\n" }, { "bDeviceSubClass", "00\n" },
		{ "bDeviceProtocol", "00\n" }, { "bNumConfigurations", "1\n" },
		{ "bConfigurationValue", "1\n" }, { "bNumInterfaces", " 1\n" },
		{ NULL, NULL },
	};
	put_attrs(fs, "2-1", copy);
	const struct attr_file half[] = {
		{ "busnum", "1\n" }, { "devnum", "11\n" }, { "speed", "480\n" },
		{ "idVendor", "abcd\n" }, { NULL, NULL },
	};
	put_attrs(fs, "1-2", half);
	*state = fs;
	return 0;
}

static const struct bk_device_info *find_busid(const struct bk_device_info *d, size_t n,
					       const char *busid)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].busid, busid) == 0)
			return &d[i];
	return NULL;
}

static void test_sysfs_scan(void **state)
{
	const struct fake_sysfs *fs = *state;
	struct bk_device_info *devs = NULL;
	size_t n = 0;

	assert_int_equal(lu_sysfs_scan(fs->root, false, &devs, &n), 0);
	assert_int_equal(n, 2); /* no root hub, no vhci copy, no half device */
	const struct bk_device_info *g = find_busid(devs, n, "1-1");

	assert_non_null(g);
	assert_int_equal(g->busnum, 1);
	assert_int_equal(g->devnum, 7);
	assert_int_equal(g->port_depth, 1);
	assert_int_equal(g->port_path[0], 1);
	assert_int_equal(g->speed, USBIP_SPEED_HIGH);
	assert_int_equal(g->idVendor, 0x0525);
	assert_int_equal(g->idProduct, 0xa4a0);
	assert_int_equal(g->bcdDevice, 0x0419);
	assert_int_equal(g->bDeviceClass, 0xef);
	assert_int_equal(g->bDeviceSubClass, 0x02);
	assert_int_equal(g->bDeviceProtocol, 0x01);
	assert_int_equal(g->bNumConfigurations, 2);
	assert_int_equal(g->bConfigurationValue, 1);
	assert_int_equal(g->bNumInterfaces, 2);
	/* Interface-number order, active configuration only. */
	assert_int_equal(g->ifaces[0].bInterfaceClass, 0xff);
	assert_int_equal(g->ifaces[0].bInterfaceSubClass, 0x01);
	assert_int_equal(g->ifaces[0].bInterfaceProtocol, 0x02);
	assert_int_equal(g->ifaces[1].bInterfaceClass, 0x0a);
	assert_string_equal(g->serial, "0123456789");
	assert_string_equal(g->manufacturer, "Linux Foundation");
	assert_string_equal(g->product, "Gadget Zero");
	assert_false(g->on_vhci);
	char want_path[128];

	snprintf(want_path, sizeof(want_path), "%s/bus/usb/devices/1-1", fs->root);
	assert_string_equal(g->path, want_path);

	const struct bk_device_info *u = find_busid(devs, n, "1-1.3");

	assert_non_null(u);
	assert_int_equal(u->port_depth, 2);
	assert_int_equal(u->port_path[0], 1);
	assert_int_equal(u->port_path[1], 3);
	assert_int_equal(u->speed, USBIP_SPEED_FULL);
	assert_int_equal(u->bConfigurationValue, 0);
	assert_int_equal(u->bNumInterfaces, 0);
	assert_string_equal(u->serial, ""); /* no such file: no such string */
	free(devs);

	/* With vhci copies wanted, the SuperSpeed copy on bus 2 shows. */
	assert_int_equal(lu_sysfs_scan(fs->root, true, &devs, &n), 0);
	assert_int_equal(n, 3);
	const struct bk_device_info *c = find_busid(devs, n, "2-1");

	assert_non_null(c);
	assert_true(c->on_vhci);
	assert_int_equal(c->speed, USBIP_SPEED_SUPER);
	free(devs);

	/* A host without USB: no devices, no error. */
	devs = (struct bk_device_info *)&devs;
	assert_int_equal(lu_sysfs_scan("/nonexistent-sysfs-root", false, &devs, &n), 0);
	assert_int_equal(n, 0);
	assert_null(devs);
}

static void test_sysfs_locate(void **state)
{
	const struct fake_sysfs *fs = *state;
	uint8_t bus = 0, dev = 0;

	assert_int_equal(lu_sysfs_locate(fs->root, false, "1-1", &bus, &dev), 0);
	assert_int_equal(bus, 1);
	assert_int_equal(dev, 7);
	assert_int_equal(lu_sysfs_locate(fs->root, false, "1-1.3", &bus, &dev), 0);
	assert_int_equal(dev, 9);
	assert_int_equal(lu_sysfs_locate(fs->root, false, "2-1", &bus, &dev), -LNX_ENODEV);
	assert_int_equal(lu_sysfs_locate(fs->root, true, "2-1", &bus, &dev), 0);
	assert_int_equal(bus, 2);
	assert_int_equal(lu_sysfs_locate(fs->root, false, "3-1", &bus, &dev), -LNX_ENODEV);
	assert_int_equal(lu_sysfs_locate(fs->root, false, "usb1", &bus, &dev), -LNX_ENODEV);
	assert_int_equal(lu_sysfs_locate(fs->root, false, "../1-1", &bus, &dev), -LNX_ENODEV);
}

static void test_sysfs_device_info_rejects(void **state)
{
	const struct fake_sysfs *fs = *state;
	struct bk_device_info info;

	/* Half gone: its files vanish under the scan. */
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-2", NULL, 0, &info),
			 -LNX_ENODEV);
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "9-9", NULL, 0, &info),
			 -LNX_ENODEV);
	/* Not devices at all. */
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "usb1", NULL, 0, &info),
			 -LNX_ENOENT);
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1:1.0", NULL, 0, &info),
			 -LNX_ENOENT);
	/* Garbage in a number. */
	put_text(fs, "bus/usb/devices/1-1/devnum", "7x\n");
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info),
			 -LNX_EINVAL);
	put_text(fs, "bus/usb/devices/1-1/devnum", "-7\n");
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info),
			 -LNX_EINVAL);
	put_text(fs, "bus/usb/devices/1-1/devnum", "256\n");
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info),
			 -LNX_EINVAL);
	/* busnum must agree with the name. */
	put_text(fs, "bus/usb/devices/1-1/devnum", "7\n");
	put_text(fs, "bus/usb/devices/1-1/busnum", "3\n");
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info),
			 -LNX_EINVAL);
	put_text(fs, "bus/usb/devices/1-1/busnum", "1\n");
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info), 0);
	/* Without the directory listing there are no interface entries. */
	assert_int_equal(info.bNumInterfaces, 0);
}

static void test_sysfs_speed(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		uint32_t want;
	} cases[] = {
		{ "1.5", USBIP_SPEED_LOW },     { "12", USBIP_SPEED_FULL },
		{ "480", USBIP_SPEED_HIGH },    { "5000", USBIP_SPEED_SUPER },
		{ "10000", USBIP_SPEED_SUPER }, { "20000", USBIP_SPEED_SUPER },
		{ "unknown", USBIP_SPEED_UNKNOWN }, { "", USBIP_SPEED_UNKNOWN },
		{ "4800", USBIP_SPEED_UNKNOWN },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (lu_sysfs_speed(cases[i].text) != cases[i].want)
			fail_msg("speed '%s': got %u, want %u", cases[i].text,
				 lu_sysfs_speed(cases[i].text), cases[i].want);
}

/* The backend pointed at a fake tree: its seed scan and enumerate read
 * sysfs, with no libusb context of their own, and rescans of an unchanged
 * tree report nothing. A device added to the tree is reported once. */
static void test_backend_on_fake_sysfs(void **state)
{
	const struct fake_sysfs *fs = *state;
	struct libusb_backend_options opt;
	struct hotplug_count seen = { 0, 0 };

	libusb_backend_options_init(&opt);
	opt.sysfs_root = fs->root;
	opt.rescan_interval_ms = 10;
	opt.use_hotplug = false; /* the rescan is the only source */
	struct backend *b = libusb_backend_new(&opt);

	assert_non_null(b);
	backend_set_hotplug(b, count_hotplug, &seen);
	struct bk_device_info *devs = NULL;
	size_t n = 0;

	assert_int_equal(b->ops->enumerate(b, &devs, &n), 0);
	assert_int_equal(n, 2);
	free(devs);
	assert_int_equal(b->ops->start(b), 0);
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };

	nanosleep(&pause, NULL);
	assert_int_equal(seen.arrived, 0); /* the baseline is no event */
	assert_int_equal(seen.left, 0);

	char rel[128];

	snprintf(rel, sizeof(rel), "bus/usb/devices/1-2/idProduct");
	put_text(fs, rel, "0001\n");
	const struct attr_file rest[] = {
		{ "bcdDevice", "0100\n" }, { "bDeviceClass", "00\n" },
		{ "bDeviceSubClass", "00\n" }, { "bDeviceProtocol", "00\n" },
		{ "bNumConfigurations", "1\n" }, { NULL, NULL },
	};
	put_attrs(fs, "1-2", rest);
	for (int i = 0; i < 100 && seen.arrived == 0; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	nanosleep(&pause, NULL);
	assert_int_equal(seen.arrived, 1);
	assert_int_equal(seen.left, 0);

	/* A device whose attributes cannot be read for a moment, but which
	 * sysfs still lists with the same numbers, has not left. */
	put_text(fs, "bus/usb/devices/1-1/idProduct", "zz\n");
	nanosleep(&pause, NULL);
	assert_int_equal(seen.left, 0);
	put_text(fs, "bus/usb/devices/1-1/idProduct", "a4a0\n");
	nanosleep(&pause, NULL);
	assert_int_equal(seen.arrived, 1);

	/* Unplugged: its directory goes; reported once. */
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/bus/usb/devices/1-2'", fs->root);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < 100 && seen.left == 0; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	nanosleep(&pause, NULL);
	b->ops->stop(b);
	assert_int_equal(seen.arrived, 1);
	assert_int_equal(seen.left, 1);
	b->ops->destroy(b);
}

static void remove_tree(const struct fake_sysfs *fs, const char *rel)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", fs->root, rel);
	assert_int_equal(system(cmd), 0);
}

/* 1-1 of fake_scan_setup as a port reset and a configuration change show
 * it for a moment: the kernel clears its address until SET_ADDRESS
 * (devnum reads 0), no active configuration (empty bConfigurationValue and
 * bNumInterfaces), interface directories removed. */
static void put_mid_reset(const struct fake_sysfs *fs)
{
	put_text(fs, "bus/usb/devices/1-1/devnum", "0\n");
	put_text(fs, "bus/usb/devices/1-1/bConfigurationValue", "\n");
	put_text(fs, "bus/usb/devices/1-1/bNumInterfaces", "\n");
	remove_tree(fs, "bus/usb/devices/1-1:1.0");
	remove_tree(fs, "bus/usb/devices/1-1:1.1");
}

static void put_after_reset(const struct fake_sysfs *fs)
{
	const struct attr_file ifc[] = {
		{ "bInterfaceClass", "ff\n" }, { "bInterfaceSubClass", "01\n" },
		{ "bInterfaceProtocol", "02\n" }, { NULL, NULL },
	};

	put_attrs(fs, "1-1:1.0", ifc);
	put_attrs(fs, "1-1:1.1", ifc);
	put_text(fs, "bus/usb/devices/1-1/bNumInterfaces", " 2\n");
	put_text(fs, "bus/usb/devices/1-1/bConfigurationValue", "1\n");
	put_text(fs, "bus/usb/devices/1-1/devnum", "7\n");
}

/* The pure helpers: a device mid-reset is not listed by a scan, but one a
 * scan listed before is still there; a new devnum or a vanished directory
 * is a departure. */
static void test_sysfs_mid_reset(void **state)
{
	const struct fake_sysfs *fs = *state;
	struct bk_device_info info;
	struct bk_device_info *devs = NULL;
	size_t n = 0;

	assert_int_equal(lu_sysfs_scan(fs->root, false, &devs, &n), 0);
	assert_non_null(find_busid(devs, n, "1-1"));
	const struct bk_device_info known = *find_busid(devs, n, "1-1");

	free(devs);
	assert_int_equal(known.bNumInterfaces, 2);
	assert_true(lu_sysfs_still_there(fs->root, &known));
	put_mid_reset(fs);
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info),
			 -LNX_EBUSY);
	assert_int_equal(lu_sysfs_scan(fs->root, false, &devs, &n), 0);
	assert_null(find_busid(devs, n, "1-1"));
	assert_true(lu_sysfs_still_there(fs->root, &known));

	/* The scan misses it; the known entry is kept, once. */
	assert_int_equal(lu_sysfs_keep_present(fs->root, &known, 1, &devs, &n), 0);
	const struct bk_device_info *k = find_busid(devs, n, "1-1");

	assert_non_null(k);
	assert_int_equal(k->devnum, 7);
	assert_int_equal(k->bNumInterfaces, 2);
	size_t before = n;

	assert_int_equal(lu_sysfs_keep_present(fs->root, &known, 1, &devs, &n), 0);
	assert_int_equal(n, before); /* already listed */
	free(devs);

	/* Attributes unreadable for a moment: still there. */
	put_text(fs, "bus/usb/devices/1-1/devnum", "\n");
	assert_true(lu_sysfs_still_there(fs->root, &known));
	put_text(fs, "bus/usb/devices/1-1/devnum", "zz\n");
	assert_true(lu_sysfs_still_there(fs->root, &known));

	/* Back from the reset with its address: listed as the same device. */
	put_after_reset(fs);
	assert_int_equal(lu_sysfs_device_info(fs->root, false, "1-1", NULL, 0, &info), 0);
	assert_true(lu_same_device(&info, &known));

	/* Another device on the port (a new devnum): gone, and not kept next
	 * to the new one. */
	put_text(fs, "bus/usb/devices/1-1/devnum", "8\n");
	assert_false(lu_sysfs_still_there(fs->root, &known));
	assert_int_equal(lu_sysfs_scan(fs->root, false, &devs, &n), 0);
	before = n;
	assert_int_equal(lu_sysfs_keep_present(fs->root, &known, 1, &devs, &n), 0);
	assert_int_equal(n, before);
	assert_int_equal(find_busid(devs, n, "1-1")->devnum, 8);
	free(devs);

	/* Unplugged: its directory is gone. */
	remove_tree(fs, "bus/usb/devices/1-1");
	assert_false(lu_sysfs_still_there(fs->root, &known));
}

/* The backend rescanning (no udev daemon) while the server resets a device
 * for a session and the client sets its configuration: no departure, no
 * second arrival, and enumerate keeps listing it. Before, a scan in that
 * window listed "1-1" with devnum 0, which the diff took for another
 * device: a false LEFT that killed the session. Only a new devnum on the
 * port, or the directory gone, is reported. */
static void test_backend_reset_window(void **state)
{
	const struct fake_sysfs *fs = *state;
	struct libusb_backend_options opt;
	struct hotplug_count seen = { 0, 0 };
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };

	libusb_backend_options_init(&opt);
	opt.sysfs_root = fs->root;
	opt.rescan_interval_ms = 5;
	opt.use_hotplug = false; /* the rescan is the only source */
	struct backend *b = libusb_backend_new(&opt);

	assert_non_null(b);
	backend_set_hotplug(b, count_hotplug, &seen);
	assert_int_equal(b->ops->start(b), 0);
	nanosleep(&pause, NULL);
	assert_int_equal(seen.arrived, 0);
	assert_int_equal(seen.left, 0);

	for (int round = 0; round < 3; round++) {
		put_mid_reset(fs);
		nanosleep(&pause, NULL); /* dozens of rescans */
		assert_int_equal(seen.left, 0);
		assert_int_equal(seen.arrived, 0);

		struct bk_device_info *devs = NULL;
		size_t n = 0;

		assert_int_equal(b->ops->enumerate(b, &devs, &n), 0);
		const struct bk_device_info *g = find_busid(devs, n, "1-1");

		assert_non_null(g);
		assert_int_equal(g->devnum, 7);
		free(devs);

		put_after_reset(fs);
		nanosleep(&pause, NULL);
		assert_int_equal(seen.left, 0);
		assert_int_equal(seen.arrived, 0);
	}

	/* A re-plug on the same port: one departure, one arrival. */
	put_text(fs, "bus/usb/devices/1-1/devnum", "8\n");
	for (int i = 0; i < 100 && (seen.left == 0 || seen.arrived == 0); i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	nanosleep(&pause, NULL);
	assert_int_equal(seen.left, 1);
	assert_int_equal(seen.arrived, 1);

	/* Unplugged: its directory goes. */
	remove_tree(fs, "bus/usb/devices/1-1");
	for (int i = 0; i < 100 && seen.left < 2; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	nanosleep(&pause, NULL);
	b->ops->stop(b);
	assert_int_equal(seen.left, 2);
	assert_int_equal(seen.arrived, 1);
	b->ops->destroy(b);
}

/* The interleaving seen in a guest: a scan reads devnum while the reset
 * has it at 0, then waits in bConfigurationValue (the reset holds the
 * device lock; here a FIFO the test holds shut) until the device has its
 * address back. Before, that scan listed "1-1" with devnum 0 next to the
 * kept 1-1 (ARRIVED), and the next scan reported LEFT for 1-1. */
static void test_backend_reset_race(void **state)
{
	const struct fake_sysfs *fs = *state;
	struct libusb_backend_options opt;
	struct hotplug_count seen = { 0, 0 };
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };
	char cfg[256], tmp[256];

	snprintf(cfg, sizeof(cfg), "%s/bus/usb/devices/1-1/bConfigurationValue", fs->root);
	snprintf(tmp, sizeof(tmp), "%s/bus/usb/devices/1-1/.cfg", fs->root);
	libusb_backend_options_init(&opt);
	opt.sysfs_root = fs->root;
	opt.rescan_interval_ms = 5;
	opt.use_hotplug = false;
	struct backend *b = libusb_backend_new(&opt);

	assert_non_null(b);
	backend_set_hotplug(b, count_hotplug, &seen);
	assert_int_equal(b->ops->start(b), 0);
	nanosleep(&pause, NULL);

	for (int round = 0; round < 3; round++) {
		/* The reset: address 0, and the configuration read blocks. */
		put_text(fs, "bus/usb/devices/1-1/devnum", "0\n");
		assert_int_equal(unlink(cfg), 0);
		assert_int_equal(mkfifo(cfg, 0644), 0);
		int fd = -1;

		/* Opens once a scan has the FIFO open for reading, i.e. has read
		 * devnum 0 and waits for the configuration. */
		for (int i = 0; i < 400 && fd < 0; i++) {
			fd = open(cfg, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
		}
		assert_true(fd >= 0);
		/* The reset ends: its address back, the lock released. */
		put_text(fs, "bus/usb/devices/1-1/devnum", "7\n");
		FILE *f = fopen(tmp, "w");

		assert_non_null(f);
		fputs("1\n", f);
		assert_int_equal(fclose(f), 0);
		assert_int_equal(rename(tmp, cfg), 0);
		assert_int_equal(write(fd, "1\n", 2), 2);
		close(fd);
		nanosleep(&pause, NULL); /* that scan, and many after it */
		if (seen.arrived != 0 || seen.left != 0)
			break;
	}
	b->ops->stop(b);
	b->ops->destroy(b);
	assert_int_equal(seen.arrived, 0); /* before: ARRIVED, then LEFT */
	assert_int_equal(seen.left, 0);
}

static void test_uevent_wants_rescan(void **state)
{
	(void)state;
#define UEV(s) { s, sizeof(s) - 1 }
	static const struct {
		const char *msg;
		size_t n;
	} cases[] = {
		UEV("bind@/devices/pci0000:00/usb1/1-1\0ACTION=bind\0DEVPATH=/devices/pci0000:00/"
		    "usb1/1-1\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0DRIVER=usb\0SEQNUM=1\0"),
		UEV("remove@/devices/usb1/1-1\0ACTION=remove\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0"),
		/* "add" comes before the configuration is chosen: bind follows. */
		UEV("add@/devices/usb1/1-1\0ACTION=add\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0"),
		/* Interfaces, other subsystems, libudev's relays, junk. */
		UEV("bind@/devices/usb1/1-1/1-1:1.0\0ACTION=bind\0SUBSYSTEM=usb\0"
		    "DEVTYPE=usb_interface\0"),
		UEV("remove@/devices/virtual/net/x\0ACTION=remove\0SUBSYSTEM=net\0"),
		UEV("libudev\0\xfe\xed\xca\xfe"),
		UEV("bind@/x\0ACTION=bind\0SUBSYSTEM=usb\0"), /* no DEVTYPE */
		UEV("bind@/x\0ACTION=bind\0SUBSYSTEM=usb\0DEVTYPE=usb_device"), /* unterminated */
		UEV(""),
	};
	static const bool want[] = { true, true, false, false, false, false, false, false, false };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (lu_uevent_wants_rescan(cases[i].msg, cases[i].n) != want[i])
			fail_msg("case %zu: got %d", i, !want[i]);
#undef UEV
}

/* ---- event-loop integration (loop_*) ---------------------------------- */

struct wake_count {
	atomic_int n;
};

static void count_wake(void *ctx)
{
	struct wake_count *w = ctx;

	atomic_fetch_add(&w->n, 1);
}

static bool event_thread_on(struct backend *b)
{
	struct lu_backend *lb = (struct lu_backend *)b;

	pthread_mutex_lock(&lb->lock);
	bool on = lb->event_thread_on;

	pthread_mutex_unlock(&lb->lock);
	return on;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* loop_fds answers libusb's own descriptors, the ones libusb_get_pollfds
 * lists for the backend's context. */
static void test_loop_fds_are_libusbs(void **state)
{
	(void)state;
	struct wake_count wc = { 0 };
	struct backend *b = libusb_backend_new(NULL);
	struct lu_backend *lb = (struct lu_backend *)b;

	assert_non_null(b);
	assert_non_null(b->ops->loop_attach);
	assert_int_equal(b->ops->loop_attach(b, NULL, &wc), -LNX_EINVAL);
	assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), 0);
	assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), -LNX_EBUSY);

	struct pollfd fds[16];
	int timeout = 12345;
	int n = b->ops->loop_fds(b, fds, 16, &timeout);

	assert_true(n >= 1);
	const struct libusb_pollfd **want = libusb_get_pollfds(lb->ctx);

	assert_non_null(want);
	int nwant = 0;

	while (want[nwant] != NULL)
		nwant++;
	assert_int_equal(n, nwant);
	for (int i = 0; i < n; i++) {
		assert_int_equal(fds[i].fd, want[i]->fd);
		assert_int_equal(fds[i].events, want[i]->events);
		assert_int_equal(fds[i].revents, 0);
		assert_true(fcntl(fds[i].fd, F_GETFD) >= 0);
	}
	libusb_free_pollfds(want);
	/* Nothing pending: no deadline where libusb's fds carry its timeouts
	 * (Linux: a timerfd), else whatever libusb says is next. */
	if (libusb_pollfds_handle_timeouts(lb->ctx))
		assert_int_equal(timeout, -1);
	else
		assert_true(timeout >= -1);

	/* The cached array serves until libusb says the set changed. */
	const struct libusb_pollfd **cached = lb->loop_pollfds;
	struct pollfd again[16];

	assert_int_equal(b->ops->loop_fds(b, again, 16, &timeout), n);
	assert_ptr_equal(lb->loop_pollfds, cached);
	atomic_store(&lb->loop_dirty, true);
	assert_int_equal(b->ops->loop_fds(b, again, 16, &timeout), n);
	assert_false(atomic_load(&lb->loop_dirty));
	for (int i = 0; i < n; i++)
		assert_int_equal(again[i].fd, fds[i].fd);

	/* Too little room: an error, not a silently short set. */
	if (n > 1)
		assert_int_equal(b->ops->loop_fds(b, again, n - 1, &timeout), -LNX_EOVERFLOW);
	assert_int_equal(b->ops->loop_fds(b, again, 0, &timeout), -LNX_EOVERFLOW);

	/* Opening and closing no device changed no fd: no wake-ups. */
	assert_int_equal(atomic_load(&wc.n), 0);
	b->ops->loop_detach(b);
	b->ops->loop_detach(b); /* twice: harmless */
	assert_null(lb->loop_pollfds);
	b->ops->destroy(b);
}

/* An event made ready outside the loop shows on the fds, and dispatch
 * consumes it without blocking. */
static void test_loop_dispatch_consumes(void **state)
{
	(void)state;
	struct wake_count wc = { 0 };
	struct libusb_backend_options opt;

	libusb_backend_options_init(&opt);
	opt.rescan_interval_ms = 0;
	struct backend *b = libusb_backend_new(&opt);
	struct lu_backend *lb = (struct lu_backend *)b;

	assert_non_null(b);
	assert_int_equal(b->ops->start(b), 0);
	assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), 0);

	struct pollfd fds[16];
	int timeout;
	int n = b->ops->loop_fds(b, fds, 16, &timeout);

	assert_true(n >= 1);
	/* Whatever the stopped event thread left pending goes first. */
	for (int i = 0; i < 4; i++)
		b->ops->loop_dispatch(b);
	assert_int_equal(poll(fds, (nfds_t)n, 0), 0);

	/* libusb signals its own event fd: our poll sees it. */
	libusb_interrupt_event_handler(lb->ctx);
	assert_true(poll(fds, (nfds_t)n, 1000) >= 1);

	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	b->ops->loop_dispatch(b);
	assert_true(elapsed_ms(&t0) < 100);
	n = b->ops->loop_fds(b, fds, 16, &timeout);
	assert_int_equal(poll(fds, (nfds_t)n, 0), 0); /* consumed */

	/* With nothing ready, many dispatches take no time at all. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 200; i++)
		b->ops->loop_dispatch(b);
	assert_true(elapsed_ms(&t0) < 200);

	b->ops->loop_detach(b);
	b->ops->destroy(b);
}

/* attach stops the event thread, detach restarts it only when the backend
 * runs; stop, start and destroy work in every order. */
static void test_loop_attach_detach_thread(void **state)
{
	(void)state;
	struct wake_count wc = { 0 };
	struct libusb_backend_options opt;

	libusb_backend_options_init(&opt);
	opt.rescan_interval_ms = 0; /* the event thread waits in libusb */
	struct backend *b = libusb_backend_new(&opt);

	assert_non_null(b);
	assert_false(event_thread_on(b));
	assert_int_equal(b->ops->start(b), 0);
	assert_true(event_thread_on(b));

	for (int round = 0; round < 3; round++) {
		struct timespec t0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), 0);
		/* The thread was woken from its 1 s wait, not waited out. */
		assert_true(elapsed_ms(&t0) < 500);
		assert_false(event_thread_on(b));
		b->ops->loop_dispatch(b);
		b->ops->loop_detach(b);
		assert_true(event_thread_on(b));
	}

	/* Stopped while attached: detach must not start a thread. */
	assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), 0);
	b->ops->stop(b);
	assert_false(event_thread_on(b));
	b->ops->loop_detach(b);
	assert_false(event_thread_on(b));

	/* Attached before start: start leaves the events to the loop. */
	assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), 0);
	assert_int_equal(b->ops->start(b), 0);
	assert_false(event_thread_on(b));
	b->ops->loop_detach(b);
	assert_true(event_thread_on(b));

	/* Destroyed while attached and running: nothing leaks or hangs. */
	assert_int_equal(b->ops->loop_attach(b, count_wake, &wc), 0);
	b->ops->destroy(b);
}

/* Two backends, one attached: each context's fds are its own. */
static void test_loop_two_backends(void **state)
{
	(void)state;
	struct wake_count wa = { 0 }, wc = { 0 };
	struct backend *a = libusb_backend_new(NULL);
	struct backend *c = libusb_backend_new(NULL);
	struct pollfd fa[16], fc[16];
	int ta, tc;

	assert_non_null(a);
	assert_non_null(c);
	assert_int_equal(a->ops->loop_attach(a, count_wake, &wa), 0);
	assert_int_equal(c->ops->loop_attach(c, count_wake, &wc), 0);
	int na = a->ops->loop_fds(a, fa, 16, &ta);
	int nc = c->ops->loop_fds(c, fc, 16, &tc);

	assert_true(na >= 1 && nc >= 1);
	for (int i = 0; i < na; i++)
		for (int k = 0; k < nc; k++)
			assert_int_not_equal(fa[i].fd, fc[k].fd);
	a->ops->loop_detach(a);
	c->ops->destroy(c);
	a->ops->destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vhci_detection, fake_sysfs_setup,
						fake_sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_sysfs_read_attr, fake_sysfs_setup,
						fake_sysfs_teardown),
		cmocka_unit_test(test_busid_from_ports),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_control_length),
		cmocka_unit_test(test_fill_result),
		cmocka_unit_test(test_fill_result_iso),
		cmocka_unit_test(test_submit_rejects),
		cmocka_unit_test(test_options_init_sets_every_field),
		cmocka_unit_test(test_new_and_enumerate),
		cmocka_unit_test(test_open_unknown),
		cmocka_unit_test(test_start_stop),
		cmocka_unit_test(test_stop_wakes_long_wait),
		cmocka_unit_test(test_two_backends),
		cmocka_unit_test_setup_teardown(test_sysfs_scan, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_sysfs_locate, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_sysfs_device_info_rejects, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test(test_sysfs_speed),
		cmocka_unit_test(test_uevent_wants_rescan),
		cmocka_unit_test_setup_teardown(test_backend_on_fake_sysfs, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_sysfs_mid_reset, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_backend_reset_window, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_backend_reset_race, fake_scan_setup,
						fake_sysfs_teardown),
		cmocka_unit_test(test_loop_fds_are_libusbs),
		cmocka_unit_test(test_loop_dispatch_consumes),
		cmocka_unit_test(test_loop_attach_detach_thread),
		cmocka_unit_test(test_loop_two_backends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
