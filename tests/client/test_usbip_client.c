/* Tests of the USB/IP test client against a scripted fake server.
 *
 * The fake server runs in a thread on 127.0.0.1 (port 0). Its script is a
 * list of steps: read N bytes from the client (recorded for the test to
 * check), send canned bytes, or shut its sending side. After the script it
 * records whatever else arrives until the client closes. Replies are built
 * byte by byte here (not with the codec's encoders, except device records),
 * so the client is checked against the wire layout itself. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "proto/bytes.h"
#include "proto/linux_errno.h"
#include "usbip_client.h"

#define IO_TIMEOUT_MS 3000
#define SERVER_TIMEOUT_S 5

/* ---- Fake server ------------------------------------------------------- */

enum step_kind { STEP_READ, STEP_SEND, STEP_SHUT_WR };

struct step {
	enum step_kind kind;
	uint8_t *bytes; /* STEP_SEND, owned */
	size_t len;
};

#define MAX_STEPS 16

struct fake_server {
	int listen_fd;
	char port[16];
	pthread_t thread;
	bool started;
	struct step steps[MAX_STEPS];
	size_t nsteps;
	uint8_t received[64 * 1024];
	size_t nreceived;
	const char *error; /* set by the server thread; NULL when all went well */
};

static struct fake_server *fake_new(void)
{
	struct fake_server *fs = calloc(1, sizeof(*fs));
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	assert_non_null(fs);
	fs->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fs->listen_fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fs->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fs->listen_fd, 1), 0);
	assert_int_equal(getsockname(fs->listen_fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(fs->port, sizeof(fs->port), "%u", ntohs(sa.sin_port));
	return fs;
}

static void fake_step(struct fake_server *fs, enum step_kind kind, const void *bytes, size_t len)
{
	struct step *s = &fs->steps[fs->nsteps++];

	assert_true(fs->nsteps <= MAX_STEPS);
	s->kind = kind;
	s->len = len;
	if (kind == STEP_SEND) {
		s->bytes = malloc(len);
		assert_non_null(s->bytes);
		memcpy(s->bytes, bytes, len);
	}
}

static void fake_read(struct fake_server *fs, size_t len)
{
	fake_step(fs, STEP_READ, NULL, len);
}

static void fake_send(struct fake_server *fs, const void *bytes, size_t len)
{
	fake_step(fs, STEP_SEND, bytes, len);
}

static void fake_shut(struct fake_server *fs)
{
	fake_step(fs, STEP_SHUT_WR, NULL, 0);
}

static int server_read(struct fake_server *fs, int fd, size_t len)
{
	if (len > sizeof(fs->received) - fs->nreceived)
		return -1;
	while (len > 0) {
		ssize_t r = recv(fd, fs->received + fs->nreceived, len, 0);
		if (r <= 0)
			return -1;
		fs->nreceived += (size_t)r;
		len -= (size_t)r;
	}
	return 0;
}

static int server_send(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void *fake_main(void *arg)
{
	struct fake_server *fs = arg;
	struct pollfd pfd = { .fd = fs->listen_fd, .events = POLLIN };
	struct timeval tv = { .tv_sec = SERVER_TIMEOUT_S };
	uint8_t scratch[4096];
	int fd;

	if (poll(&pfd, 1, SERVER_TIMEOUT_S * 1000) != 1) {
		fs->error = "no client connected";
		return NULL;
	}
	fd = accept(fs->listen_fd, NULL, NULL);
	if (fd < 0) {
		fs->error = "accept failed";
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (size_t i = 0; i < fs->nsteps && !fs->error; i++) {
		struct step *s = &fs->steps[i];

		if (s->kind == STEP_READ && server_read(fs, fd, s->len) < 0)
			fs->error = "client sent less than the script reads";
		else if (s->kind == STEP_SEND && server_send(fd, s->bytes, s->len) < 0)
			fs->error = "send failed";
		else if (s->kind == STEP_SHUT_WR)
			shutdown(fd, SHUT_WR);
	}
	/* Record the rest until the client closes. */
	for (;;) {
		ssize_t r = recv(fd, scratch, sizeof(scratch), 0);
		if (r <= 0)
			break;
		size_t room = sizeof(fs->received) - fs->nreceived;
		size_t n = (size_t)r < room ? (size_t)r : room;
		memcpy(fs->received + fs->nreceived, scratch, n);
		fs->nreceived += n;
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake_server *fs)
{
	assert_int_equal(pthread_create(&fs->thread, NULL, fake_main, fs), 0);
	fs->started = true;
}

/* Joins the server (the client must have closed by now) and checks it
 * followed its script. Frees fs. */
static void fake_finish(struct fake_server *fs)
{
	const char *error;

	if (fs->started)
		pthread_join(fs->thread, NULL);
	close(fs->listen_fd);
	for (size_t i = 0; i < fs->nsteps; i++)
		free(fs->steps[i].bytes);
	error = fs->error;
	free(fs);
	if (error)
		fail_msg("fake server: %s", error);
}

static struct uc_conn *connect_fake(struct fake_server *fs, int timeout_ms)
{
	struct uc_conn *conn = NULL;

	fake_start(fs);
	assert_int_equal(uc_connect("127.0.0.1", fs->port, timeout_ms, &conn), 0);
	assert_non_null(conn);
	return conn;
}

/* ---- Building replies byte by byte ------------------------------------- */

struct bb {
	uint8_t b[16 * 1024];
	size_t n;
};

static void bb_be32(struct bb *bb, uint32_t v)
{
	assert_true(bb->n + 4 <= sizeof(bb->b));
	put_be32(bb->b + bb->n, v);
	bb->n += 4;
}

static void bb_bytes(struct bb *bb, const void *p, size_t n)
{
	assert_true(bb->n + n <= sizeof(bb->b));
	memcpy(bb->b + bb->n, p, n);
	bb->n += n;
}

static void bb_op(struct bb *bb, uint16_t version, uint16_t code, uint32_t status)
{
	bb_be32(bb, (uint32_t)version << 16 | code);
	bb_be32(bb, status);
}

static struct usbip_device_record make_dev(const char *busid, uint32_t busnum,
					   uint32_t devnum, uint16_t vid, uint16_t pid,
					   uint8_t nifaces)
{
	struct usbip_device_record d;

	memset(&d, 0, sizeof(d));
	snprintf(d.path, sizeof(d.path), "/sys/devices/pci0000:00/usb%u/%s", busnum, busid);
	snprintf(d.busid, sizeof(d.busid), "%s", busid);
	d.busnum = busnum;
	d.devnum = devnum;
	d.speed = USBIP_SPEED_HIGH;
	d.idVendor = vid;
	d.idProduct = pid;
	d.bcdDevice = 0x0100;
	d.bConfigurationValue = 1;
	d.bNumConfigurations = 1;
	d.bNumInterfaces = nifaces;
	return d;
}

static void bb_dev(struct bb *bb, const struct usbip_device_record *d)
{
	assert_true(bb->n + USBIP_DEVICE_RECORD_SIZE <= sizeof(bb->b));
	assert_int_equal(usbip_device_record_encode(d, bb->b + bb->n, USBIP_DEVICE_RECORD_SIZE),
			 USBIP_DEVICE_RECORD_SIZE);
	bb->n += USBIP_DEVICE_RECORD_SIZE;
}

static void bb_iface(struct bb *bb, uint8_t cls, uint8_t sub, uint8_t proto)
{
	uint8_t r[4] = { cls, sub, proto, 0 };

	bb_bytes(bb, r, sizeof(r));
}

static void bb_ret_submit(struct bb *bb, uint32_t seqnum, int32_t status, uint32_t actual,
			  uint32_t npackets)
{
	bb_be32(bb, USBIP_RET_SUBMIT);
	bb_be32(bb, seqnum);
	bb_be32(bb, 0); /* devid */
	bb_be32(bb, 0); /* direction */
	bb_be32(bb, 0); /* ep */
	bb_be32(bb, (uint32_t)status);
	bb_be32(bb, actual);
	bb_be32(bb, 0); /* start_frame */
	bb_be32(bb, npackets);
	bb_be32(bb, 0); /* error_count */
	bb_be32(bb, 0);
	bb_be32(bb, 0);
}

static void bb_ret_unlink(struct bb *bb, uint32_t seqnum, int32_t status)
{
	bb_be32(bb, USBIP_RET_UNLINK);
	bb_be32(bb, seqnum);
	bb_be32(bb, 0);
	bb_be32(bb, 0);
	bb_be32(bb, 0);
	bb_be32(bb, (uint32_t)status);
	for (int i = 0; i < 6; i++)
		bb_be32(bb, 0);
}

static void bb_iso(struct bb *bb, uint32_t offset, uint32_t length, uint32_t actual,
		   int32_t status)
{
	bb_be32(bb, offset);
	bb_be32(bb, length);
	bb_be32(bb, actual);
	bb_be32(bb, (uint32_t)status);
}

/* ---- Devlist ----------------------------------------------------------- */

struct seen {
	unsigned ndev;
	struct usbip_device_record dev[4];
	struct usbip_interface_record ifaces[4][4];
	int stop_after;    /* return 99 after this many devices; 0: never */
};

static int collect(void *ctx, const struct usbip_device_record *dev,
		   const struct usbip_interface_record *ifaces)
{
	struct seen *s = ctx;

	assert_true(s->ndev < 4 && dev->bNumInterfaces <= 4);
	s->dev[s->ndev] = *dev;
	memcpy(s->ifaces[s->ndev], ifaces, dev->bNumInterfaces * sizeof(*ifaces));
	s->ndev++;
	return s->stop_after && (int)s->ndev == s->stop_after ? 99 : 0;
}

static void build_two_device_reply(struct bb *bb)
{
	struct usbip_device_record a = make_dev("1-1", 1, 2, 0x046d, 0xc52b, 1);
	struct usbip_device_record b = make_dev("2-3.1", 2, 7, 0x0403, 0x6010, 2);

	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	bb_be32(bb, 2);
	bb_dev(bb, &a);
	bb_iface(bb, 0x03, 0x01, 0x02);
	bb_dev(bb, &b);
	bb_iface(bb, 0xff, 0xff, 0xff);
	bb_iface(bb, 0xfe, 0x01, 0x00);
}

static void test_devlist_two_devices(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct seen seen = { .ndev = 0 };

	build_two_device_reply(&bb);
	fake_read(fs, USBIP_OP_COMMON_SIZE);
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	assert_int_equal(uc_devlist(conn, collect, &seen), 0);
	assert_int_equal(seen.ndev, 2);
	assert_string_equal(seen.dev[0].busid, "1-1");
	assert_int_equal(seen.dev[0].idVendor, 0x046d);
	assert_int_equal(seen.dev[0].idProduct, 0xc52b);
	assert_int_equal(seen.dev[0].bNumInterfaces, 1);
	assert_int_equal(seen.ifaces[0][0].bInterfaceClass, 0x03);
	assert_int_equal(seen.ifaces[0][0].bInterfaceProtocol, 0x02);
	assert_string_equal(seen.dev[1].busid, "2-3.1");
	assert_string_equal(seen.dev[1].path, "/sys/devices/pci0000:00/usb2/2-3.1");
	assert_int_equal(seen.dev[1].busnum, 2);
	assert_int_equal(seen.dev[1].devnum, 7);
	assert_int_equal(seen.dev[1].speed, USBIP_SPEED_HIGH);
	assert_int_equal(seen.dev[1].bNumInterfaces, 2);
	assert_int_equal(seen.ifaces[1][0].bInterfaceClass, 0xff);
	assert_int_equal(seen.ifaces[1][1].bInterfaceClass, 0xfe);
	assert_int_equal(seen.ifaces[1][1].bInterfaceSubClass, 0x01);
	uc_close(conn);

	/* The request is the op header alone: 0111 8005 00000000. */
	static const uint8_t want[] = { 0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0 };
	assert_int_equal(fs->nreceived, sizeof(want));
	assert_memory_equal(fs->received, want, sizeof(want));
	fake_finish(fs);
}

static void test_devlist_callback_stops(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct seen seen = { .ndev = 0, .stop_after = 1 };

	build_two_device_reply(&bb);
	fake_read(fs, USBIP_OP_COMMON_SIZE);
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	assert_int_equal(uc_devlist(conn, collect, &seen), 99);
	assert_int_equal(seen.ndev, 1);
	uc_close(conn);
	fake_finish(fs);
}

/* Malformed or refused devlist replies: the callback must never run. */
struct devlist_bad_case {
	const char *name;
	void (*build)(struct bb *bb);
	bool close_after;
	int want;
};

static void devlist_refused(struct bb *bb)
{
	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_ERROR);
	bb_be32(bb, 0);
}

static void devlist_bad_version(struct bb *bb)
{
	bb_op(bb, 0x0106, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	bb_be32(bb, 0);
}

static void devlist_wrong_code(struct bb *bb)
{
	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_IMPORT, USBIP_ST_OK);
	bb_be32(bb, 0);
}

static void devlist_too_many(struct bb *bb)
{
	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	bb_be32(bb, USBIP_MAX_DEVICES + 1);
}

static void devlist_truncated(struct bb *bb)
{
	struct usbip_device_record a = make_dev("1-1", 1, 2, 1, 2, 0);

	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	bb_be32(bb, 2);
	bb_dev(bb, &a); /* the second device never comes */
}

static void devlist_bad_busid(struct bb *bb)
{
	struct usbip_device_record a = make_dev("1-1", 1, 2, 1, 2, 0);

	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	bb_be32(bb, 1);
	bb_dev(bb, &a);
	/* busid field without its NUL */
	memset(bb->b + bb->n - USBIP_DEVICE_RECORD_SIZE + USBIP_PATH_SIZE, 'x', USBIP_BUSID_SIZE);
}

static void devlist_too_many_interfaces(struct bb *bb)
{
	struct usbip_device_record a = make_dev("1-1", 1, 2, 1, 2, 0);

	bb_op(bb, USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
	bb_be32(bb, 1);
	bb_dev(bb, &a);
	bb->b[bb->n - 1] = USBIP_MAX_INTERFACES + 1; /* bNumInterfaces is last */
}

static const struct devlist_bad_case devlist_bad_cases[] = {
	{ "refused", devlist_refused, false, UC_E_STATUS },
	{ "bad version", devlist_bad_version, false, UC_E_PROTO },
	{ "wrong reply code", devlist_wrong_code, false, UC_E_PROTO },
	{ "too many devices", devlist_too_many, false, UC_E_PROTO },
	{ "truncated then closed", devlist_truncated, true, UC_E_CLOSED },
	{ "busid without NUL", devlist_bad_busid, false, UC_E_PROTO },
	{ "too many interfaces", devlist_too_many_interfaces, false, UC_E_PROTO },
};

static void test_devlist_bad_replies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(devlist_bad_cases) / sizeof(devlist_bad_cases[0]); i++) {
		const struct devlist_bad_case *c = &devlist_bad_cases[i];
		struct fake_server *fs = fake_new();
		struct bb bb = { .n = 0 };
		struct seen seen = { .ndev = 0 };

		c->build(&bb);
		fake_read(fs, USBIP_OP_COMMON_SIZE);
		fake_send(fs, bb.b, bb.n);
		if (c->close_after)
			fake_shut(fs);
		struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);
		int rc = uc_devlist(conn, collect, &seen);
		if (rc != c->want)
			fail_msg("%s: got %d (%s), want %d", c->name, rc, uc_last_error(conn), c->want);
		assert_int_equal(seen.ndev, 0);
		assert_string_not_equal(uc_last_error(conn), "");
		uc_close(conn);
		fake_finish(fs);
	}
}

/* ---- Import ------------------------------------------------------------ */

struct import_case {
	const char *name;
	uint16_t version;
	uint16_t code;
	uint32_t status;
	const char *reply_busid;  /* NULL: header alone */
	bool close_after;
	int want;
	uint32_t want_op_status;
	bool broken_after;        /* later calls return UC_E_BROKEN */
};

static const struct import_case import_cases[] = {
	{ "ok", USBIP_VERSION, USBIP_OP_REP_IMPORT, USBIP_ST_OK, "3-4.2", false, 0, 0, false },
	{ "busid mismatch", USBIP_VERSION, USBIP_OP_REP_IMPORT, USBIP_ST_OK, "3-4.3", false,
	  UC_E_PROTO, 0, true },
	{ "no such device", USBIP_VERSION, USBIP_OP_REP_IMPORT, USBIP_ST_NODEV, NULL, false,
	  UC_E_STATUS, USBIP_ST_NODEV, false },
	{ "busy", USBIP_VERSION, USBIP_OP_REP_IMPORT, USBIP_ST_DEV_BUSY, NULL, false,
	  UC_E_STATUS, USBIP_ST_DEV_BUSY, false },
	{ "devlist reply", USBIP_VERSION, USBIP_OP_REP_DEVLIST, USBIP_ST_OK, NULL, false,
	  UC_E_PROTO, 0, true },
	{ "old version", 0x0100, USBIP_OP_REP_IMPORT, USBIP_ST_OK, "3-4.2", false, UC_E_PROTO, 0,
	  true },
	{ "record missing", USBIP_VERSION, USBIP_OP_REP_IMPORT, USBIP_ST_OK, NULL, true,
	  UC_E_CLOSED, 0, false },
};

static void test_import_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(import_cases) / sizeof(import_cases[0]); i++) {
		const struct import_case *c = &import_cases[i];
		struct fake_server *fs = fake_new();
		struct bb bb = { .n = 0 };
		struct usbip_device_record dev;
		uint32_t op_status = 0xdead;

		bb_op(&bb, c->version, c->code, c->status);
		if (c->reply_busid) {
			struct usbip_device_record d = make_dev(c->reply_busid, 3, 9, 0x1d50,
								0x6018, 2);
			bb_dev(&bb, &d);
		}
		fake_read(fs, USBIP_IMPORT_REQUEST_SIZE);
		fake_send(fs, bb.b, bb.n);
		if (c->close_after)
			fake_shut(fs);
		struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);
		memset(&dev, 0, sizeof(dev));
		int rc = uc_import(conn, "3-4.2", &op_status, &dev);
		if (rc != c->want)
			fail_msg("%s: got %d (%s), want %d", c->name, rc, uc_last_error(conn), c->want);
		if (c->want == 0 || c->want == UC_E_STATUS)
			assert_int_equal(op_status, c->want_op_status);
		if (c->want == 0) {
			assert_string_equal(dev.busid, "3-4.2");
			assert_int_equal(dev.idVendor, 0x1d50);
			assert_int_equal(dev.idProduct, 0x6018);
			assert_int_equal(uc_devid(conn), 3u << 16 | 9u);
		} else {
			assert_int_equal(uc_devid(conn), 0);
		}
		struct uc_reply r;
		int later = uc_recv(conn, &r, 0);
		if (c->broken_after)
			assert_int_equal(later, UC_E_BROKEN);
		else
			assert_int_not_equal(later, UC_E_BROKEN);
		uc_close(conn);

		/* The request: 0111 8003 00000000, busid NUL padded to 32 bytes. */
		uint8_t want[USBIP_IMPORT_REQUEST_SIZE] = { 0x01, 0x11, 0x80, 0x03 };
		memcpy(want + USBIP_OP_COMMON_SIZE, "3-4.2", 5);
		assert_int_equal(fs->nreceived, sizeof(want));
		assert_memory_equal(fs->received, want, sizeof(want));
		fake_finish(fs);
	}
}

static void test_import_bad_busid_not_sent(void **state)
{
	(void)state;
	int sv[2];
	struct uc_conn *conn;
	char longid[USBIP_BUSID_SIZE + 1];
	uint8_t byte;

	memset(longid, '1', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(uc_adopt_fd(sv[0], IO_TIMEOUT_MS, &conn), 0);
	assert_int_equal(uc_import(conn, "", NULL, NULL), UC_E_INVAL);
	assert_int_equal(uc_import(conn, longid, NULL, NULL), UC_E_INVAL);
	assert_int_equal(recv(sv[1], &byte, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	uc_close(conn);
	close(sv[1]);
}

/* ---- URBs -------------------------------------------------------------- */

static void submit_simple(struct uc_conn *conn, uint32_t seqnum, uint32_t dir, uint32_t ep,
			  uint32_t len, const uint8_t *out)
{
	struct uc_urb u;

	memset(&u, 0, sizeof(u));
	u.seqnum = seqnum;
	u.devid = 0x00010002;
	u.direction = dir;
	u.ep = ep;
	u.transfer_flags = dir == USBIP_DIR_IN ? USBIP_URB_DIR_IN : 0;
	u.buffer_length = len;
	u.out_data = out;
	int rc = uc_submit(conn, &u);
	if (rc != 0)
		fail_msg("submit %u: %d (%s)", seqnum, rc, uc_last_error(conn));
}

/* Checks one CMD_SUBMIT at fs->received + *at and moves past it. */
static void expect_submit(const struct fake_server *fs, size_t *at, uint32_t seqnum,
			  uint32_t dir, uint32_t ep, uint32_t len, const uint8_t *out)
{
	struct usbip_header h;

	assert_true(*at + USBIP_HEADER_SIZE <= fs->nreceived);
	assert_int_equal(usbip_header_decode(fs->received + *at, USBIP_HEADER_SIZE, &h), USBIP_OK);
	assert_int_equal(h.command, USBIP_CMD_SUBMIT);
	assert_int_equal(h.seqnum, seqnum);
	assert_int_equal(h.devid, 0x00010002);
	assert_int_equal(h.direction, dir);
	assert_int_equal(h.ep, ep);
	assert_int_equal(h.u.cmd_submit.transfer_buffer_length, len);
	assert_int_equal(h.u.cmd_submit.transfer_flags, dir == USBIP_DIR_IN ? USBIP_URB_DIR_IN : 0);
	*at += USBIP_HEADER_SIZE;
	if (dir == USBIP_DIR_OUT) {
		assert_true(*at + len <= fs->nreceived);
		assert_memory_equal(fs->received + *at, out, len);
		*at += len;
	}
}

static void test_submit_out_of_order(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	static const uint8_t out[4] = { 0xde, 0xad, 0xbe, 0xef };
	static const uint8_t in1[5] = { 1, 2, 3, 4, 5 };
	static const uint8_t in3[18] = { 0x12, 0x01, 0x00, 0x02 };
	struct uc_reply r;

	/* Replies in the order 3, 1, 2. */
	bb_ret_submit(&bb, 3, 0, sizeof(in3), 0);
	bb_bytes(&bb, in3, sizeof(in3));
	bb_ret_submit(&bb, 1, 0, sizeof(in1), 0);
	bb_bytes(&bb, in1, sizeof(in1));
	bb_ret_submit(&bb, 2, -LNX_EPIPE, 0, 0);
	fake_read(fs, 3 * USBIP_HEADER_SIZE + sizeof(out));
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	submit_simple(conn, 1, USBIP_DIR_IN, 1, 64, NULL);
	submit_simple(conn, 2, USBIP_DIR_OUT, 2, sizeof(out), out);
	struct uc_urb ctrl = {
		.seqnum = 3, .devid = 0x00010002, .direction = USBIP_DIR_IN, .ep = 0,
		.transfer_flags = USBIP_URB_DIR_IN, .buffer_length = 18,
		.setup = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00 },
	};
	assert_int_equal(uc_submit(conn, &ctrl), 0);
	assert_int_equal(uc_outstanding(conn), 3);

	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_SUBMIT);
	assert_int_equal(r.seqnum, 3);
	assert_true(r.dir_in);
	assert_int_equal(r.data_len, sizeof(in3));
	assert_memory_equal(r.data, in3, sizeof(in3));
	uc_reply_free(&r);

	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, sizeof(in1));
	assert_int_equal(r.data_len, sizeof(in1));
	assert_memory_equal(r.data, in1, sizeof(in1));
	uc_reply_free(&r);

	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, 2);
	assert_false(r.dir_in);
	assert_int_equal(r.status, -LNX_EPIPE);
	assert_null(r.data);
	assert_int_equal(r.data_len, 0);
	uc_reply_free(&r);
	assert_int_equal(uc_outstanding(conn), 0);
	uc_close(conn);

	size_t at = 0;
	expect_submit(fs, &at, 1, USBIP_DIR_IN, 1, 64, NULL);
	expect_submit(fs, &at, 2, USBIP_DIR_OUT, 2, sizeof(out), out);
	struct usbip_header h;
	assert_int_equal(usbip_header_decode(fs->received + at, USBIP_HEADER_SIZE, &h), USBIP_OK);
	assert_int_equal(h.seqnum, 3);
	assert_memory_equal(h.u.cmd_submit.setup, ctrl.setup, USBIP_SETUP_SIZE);
	assert_int_equal(at + USBIP_HEADER_SIZE, fs->nreceived);
	fake_finish(fs);
}

static void test_iso_in_expanded(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct usbip_iso_desc iso[3] = {
		{ .offset = 0, .length = 8 },
		{ .offset = 8, .length = 8 },
		{ .offset = 16, .length = 8 },
	};
	struct uc_reply r;

	/* Packets got 4, 0 and 3 bytes: 7 compacted bytes on the wire. */
	bb_ret_submit(&bb, 10, 0, 7, 3);
	bb_bytes(&bb, "ABCDxyz", 7);
	bb_iso(&bb, 0, 8, 4, 0);
	bb_iso(&bb, 8, 8, 0, -LNX_EXDEV);
	bb_iso(&bb, 16, 8, 3, 0);
	fake_read(fs, USBIP_HEADER_SIZE + 3 * USBIP_ISO_DESC_SIZE);
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	struct uc_urb u = {
		.seqnum = 10, .devid = 0x00010002, .direction = USBIP_DIR_IN, .ep = 3,
		.transfer_flags = USBIP_URB_ISO_ASAP | USBIP_URB_DIR_IN, .buffer_length = 24,
		.number_of_packets = 3, .interval = 1, .iso = iso,
	};
	assert_int_equal(uc_submit(conn, &u), 0);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, 10);
	assert_int_equal(r.actual_length, 7);
	assert_int_equal(r.iso_count, 3);
	assert_int_equal(r.iso[1].status, -LNX_EXDEV);
	assert_int_equal(r.iso[2].offset, 16);
	assert_int_equal(r.iso[2].actual_length, 3);
	assert_int_equal(r.data_len, 24);
	uint8_t want[24] = { 0 };
	memcpy(want, "ABCD", 4);
	memcpy(want + 16, "xyz", 3);
	assert_memory_equal(r.data, want, sizeof(want));
	uc_reply_free(&r);
	uc_close(conn);

	/* The submit carried its three descriptors after the header. */
	struct usbip_header h;
	struct usbip_iso_desc sent[3];
	assert_int_equal(fs->nreceived, USBIP_HEADER_SIZE + 3 * USBIP_ISO_DESC_SIZE);
	assert_int_equal(usbip_header_decode(fs->received, USBIP_HEADER_SIZE, &h), USBIP_OK);
	assert_int_equal(h.u.cmd_submit.number_of_packets, 3);
	assert_int_equal(h.u.cmd_submit.interval, 1);
	assert_int_equal(usbip_iso_descs_decode(fs->received + USBIP_HEADER_SIZE,
						3 * USBIP_ISO_DESC_SIZE, 3, sent), USBIP_OK);
	assert_int_equal(sent[1].offset, 8);
	assert_int_equal(sent[2].length, 8);
	fake_finish(fs);
}

static void test_unlink_wins(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct uc_reply r;

	/* The unlink wins; a RET_SUBMIT for the victim afterwards is a bug. */
	bb_ret_unlink(&bb, 6, -LNX_ECONNRESET);
	bb_ret_submit(&bb, 5, 0, 0, 0);
	fake_read(fs, 2 * USBIP_HEADER_SIZE);
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	submit_simple(conn, 5, USBIP_DIR_IN, 1, 512, NULL);
	assert_int_equal(uc_unlink(conn, 6, 5), 0);
	assert_int_equal(uc_outstanding(conn), 2);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.seqnum, 6);
	assert_int_equal(r.status, -LNX_ECONNRESET);
	assert_int_equal(r.victim_seqnum, 5);
	assert_true(r.victim_was_pending);
	uc_reply_free(&r);
	assert_int_equal(uc_outstanding(conn), 0);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), UC_E_PROTO);
	assert_non_null(strstr(uc_last_error(conn), "unknown seqnum 5"));
	uc_close(conn);

	struct usbip_header h;
	assert_int_equal(fs->nreceived, 2 * USBIP_HEADER_SIZE);
	assert_int_equal(usbip_header_decode(fs->received + USBIP_HEADER_SIZE, USBIP_HEADER_SIZE,
					     &h), USBIP_OK);
	assert_int_equal(h.command, USBIP_CMD_UNLINK);
	assert_int_equal(h.seqnum, 6);
	assert_int_equal(h.u.cmd_unlink.seqnum, 5);
	fake_finish(fs);
}

static void test_unlink_after_completion(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct uc_reply r;

	bb_ret_submit(&bb, 5, 0, 2, 0);
	bb_bytes(&bb, "hi", 2);
	bb_ret_unlink(&bb, 6, 0);
	bb_ret_unlink(&bb, 8, -LNX_ENOENT); /* unlink of a seqnum never submitted */
	fake_read(fs, 3 * USBIP_HEADER_SIZE);
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	submit_simple(conn, 5, USBIP_DIR_IN, 1, 512, NULL);
	assert_int_equal(uc_unlink(conn, 6, 5), 0);
	assert_int_equal(uc_unlink(conn, 8, 77), 0);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_SUBMIT);
	assert_int_equal(r.seqnum, 5);
	assert_memory_equal(r.data, "hi", 2);
	uc_reply_free(&r);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.victim_seqnum, 5);
	assert_false(r.victim_was_pending);
	uc_reply_free(&r);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, 8);
	assert_int_equal(r.victim_seqnum, 77);
	assert_false(r.victim_was_pending);
	uc_reply_free(&r);
	assert_int_equal(uc_outstanding(conn), 0);
	uc_close(conn);
	fake_finish(fs);
}

/* A bad reply to URB 1 (bulk IN of 16 bytes) or URB 2 (iso IN of 2 x 8
 * bytes): each must be a protocol error that breaks the connection. */
struct bad_reply_case {
	const char *name;
	void (*build)(struct bb *bb);
	const char *error_has;
};

static void bad_unknown_seqnum(struct bb *bb)
{
	bb_ret_submit(bb, 99, 0, 0, 0);
}

static void bad_duplicate(struct bb *bb)
{
	bb_ret_submit(bb, 1, 0, 0, 0);
	bb_ret_submit(bb, 1, 0, 0, 0);
}

static void bad_too_long(struct bb *bb)
{
	uint8_t data[17] = { 0 };

	bb_ret_submit(bb, 1, 0, sizeof(data), 0);
	bb_bytes(bb, data, sizeof(data));
}

static void bad_command_from_server(struct bb *bb)
{
	bb_ret_submit(bb, 1, 0, 0, 0);
	put_be32(bb->b + bb->n - USBIP_HEADER_SIZE, USBIP_CMD_SUBMIT);
}

static void bad_unknown_command(struct bb *bb)
{
	bb_ret_submit(bb, 1, 0, 0, 0);
	put_be32(bb->b + bb->n - USBIP_HEADER_SIZE, 7);
}

static void bad_unlink_unknown(struct bb *bb)
{
	bb_ret_unlink(bb, 42, 0);
}

static void bad_unlink_for_submit(struct bb *bb)
{
	bb_ret_unlink(bb, 1, 0);
}

static void bad_iso_on_non_iso(struct bb *bb)
{
	bb_ret_submit(bb, 1, 0, 0, 1);
	bb_iso(bb, 0, 16, 0, 0);
}

static void bad_iso_count(struct bb *bb)
{
	bb_ret_submit(bb, 2, 0, 0, 1);
	bb_iso(bb, 0, 8, 0, 0);
}

static void bad_iso_sum(struct bb *bb)
{
	bb_ret_submit(bb, 2, 0, 4, 2);
	bb_bytes(bb, "abcd", 4);
	bb_iso(bb, 0, 8, 4, 0);
	bb_iso(bb, 8, 8, 1, 0); /* sums to 5, header says 4 */
}

static void bad_iso_range(struct bb *bb)
{
	bb_ret_submit(bb, 2, 0, 2, 2);
	bb_bytes(bb, "ab", 2);
	bb_iso(bb, 0, 8, 1, 0);
	bb_iso(bb, 12, 8, 1, 0); /* ends at 20 > 16 */
}

static void bad_direction(struct bb *bb)
{
	bb_ret_submit(bb, 1, 0, 0, 0);
	put_be32(bb->b + bb->n - USBIP_HEADER_SIZE + 12, 2);
}

static const struct bad_reply_case bad_reply_cases[] = {
	{ "unknown seqnum", bad_unknown_seqnum, "unknown seqnum 99" },
	{ "duplicate reply", bad_duplicate, "unknown seqnum 1" },
	{ "actual_length beyond buffer", bad_too_long, "actual_length 17" },
	{ "CMD_SUBMIT from server", bad_command_from_server, "not a reply" },
	{ "unknown command", bad_unknown_command, "reply header" },
	{ "RET_UNLINK unknown seqnum", bad_unlink_unknown, "unknown seqnum 42" },
	{ "RET_UNLINK for a submit", bad_unlink_for_submit, "RET_UNLINK for submit" },
	{ "iso packets on non-iso URB", bad_iso_on_non_iso, "iso packets" },
	{ "iso packet count differs", bad_iso_count, "iso packets" },
	{ "iso actual lengths do not add up", bad_iso_sum, "iso" },
	{ "iso packet outside buffer", bad_iso_range, "iso" },
	{ "direction 2", bad_direction, "reply header" },
};

static void test_bad_replies(void **state)
{
	(void)state;
	struct usbip_iso_desc iso[2] = { { .offset = 0, .length = 8 }, { .offset = 8, .length = 8 } };

	for (size_t i = 0; i < sizeof(bad_reply_cases) / sizeof(bad_reply_cases[0]); i++) {
		const struct bad_reply_case *c = &bad_reply_cases[i];
		struct fake_server *fs = fake_new();
		struct bb bb = { .n = 0 };
		struct uc_reply r;
		int rc = 0;

		c->build(&bb);
		fake_read(fs, 2 * USBIP_HEADER_SIZE + 2 * USBIP_ISO_DESC_SIZE);
		fake_send(fs, bb.b, bb.n);
		struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);
		submit_simple(conn, 1, USBIP_DIR_IN, 1, 16, NULL);
		struct uc_urb u = {
			.seqnum = 2, .devid = 1, .direction = USBIP_DIR_IN, .ep = 3,
			.buffer_length = 16, .number_of_packets = 2, .iso = iso,
		};
		assert_int_equal(uc_submit(conn, &u), 0);

		/* Up to one good reply may come first (the duplicate case). */
		for (int n = 0; n < 2; n++) {
			rc = uc_recv(conn, &r, IO_TIMEOUT_MS);
			if (rc != 0)
				break;
			uc_reply_free(&r);
		}
		if (rc != UC_E_PROTO)
			fail_msg("%s: got %d (%s), want UC_E_PROTO", c->name, rc,
				 uc_last_error(conn));
		if (!strstr(uc_last_error(conn), c->error_has))
			fail_msg("%s: error '%s' lacks '%s'", c->name, uc_last_error(conn),
				 c->error_has);
		/* Nothing leaks out of a failed recv, and the stream stays refused. */
		assert_null(r.data);
		assert_null(r.iso);
		assert_int_equal(uc_recv(conn, &r, 0), UC_E_BROKEN);
		assert_int_equal(uc_submit(conn, &u), UC_E_BROKEN);
		assert_int_equal(uc_send_raw(conn, "x", 1), UC_E_BROKEN);
		uc_close(conn);
		fake_finish(fs);
	}
}

/* ---- Close and timeouts ------------------------------------------------ */

static void test_server_close(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct uc_reply r;

	fake_read(fs, USBIP_HEADER_SIZE);
	fake_shut(fs);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);
	submit_simple(conn, 1, USBIP_DIR_IN, 1, 16, NULL);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), UC_E_CLOSED);
	/* Closed stays closed, not broken. */
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), UC_E_CLOSED);
	uc_close(conn);
	fake_finish(fs);
}

static void test_server_close_mid_message(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct uc_reply r;

	bb_ret_submit(&bb, 1, 0, 8, 0);
	bb_bytes(&bb, "abc", 3); /* 5 bytes short */
	fake_read(fs, USBIP_HEADER_SIZE);
	fake_send(fs, bb.b, bb.n);
	fake_shut(fs);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);
	submit_simple(conn, 1, USBIP_DIR_IN, 1, 16, NULL);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), UC_E_CLOSED);
	assert_null(r.data);
	uc_close(conn);
	fake_finish(fs);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_timeout_idle_keeps_connection(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct uc_reply r;

	bb_ret_submit(&bb, 1, 0, 0, 0);
	fake_read(fs, USBIP_HEADER_SIZE);
	fake_send(fs, bb.b, bb.n);
	struct uc_conn *conn = connect_fake(fs, IO_TIMEOUT_MS);

	int64_t t0 = mono_ms();
	assert_int_equal(uc_recv(conn, &r, 150), UC_E_TIMEOUT);
	int64_t waited = mono_ms() - t0;
	assert_true(waited >= 140 && waited < 2000);
	assert_int_equal(uc_recv(conn, &r, 0), UC_E_TIMEOUT);

	/* Nothing was consumed: the connection still works. */
	submit_simple(conn, 1, USBIP_DIR_IN, 1, 16, NULL);
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, 1);
	uc_reply_free(&r);
	uc_close(conn);
	fake_finish(fs);
}

static void test_timeout_mid_message_breaks(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct bb bb = { .n = 0 };
	struct uc_reply r;

	bb_ret_submit(&bb, 1, 0, 0, 0);
	fake_read(fs, USBIP_HEADER_SIZE);
	fake_send(fs, bb.b, 20); /* the header stops after 20 of 48 bytes */
	struct uc_conn *conn = connect_fake(fs, 200);

	submit_simple(conn, 1, USBIP_DIR_IN, 1, 16, NULL);
	int64_t t0 = mono_ms();
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), UC_E_TIMEOUT);
	assert_true(mono_ms() - t0 < 2000);
	assert_non_null(strstr(uc_last_error(conn), "20 of 48"));
	assert_int_equal(uc_recv(conn, &r, IO_TIMEOUT_MS), UC_E_BROKEN);
	uc_close(conn);
	fake_finish(fs);
}

static void test_connect_refused(void **state)
{
	(void)state;
	struct fake_server *fs = fake_new();
	struct uc_conn *conn = NULL;
	char port[16];

	/* A port that was just ours and has no listener any more. */
	snprintf(port, sizeof(port), "%s", fs->port);
	fake_finish(fs);
	assert_int_equal(uc_connect("127.0.0.1", port, 1000, &conn), -ECONNREFUSED);
	assert_null(conn);
	assert_int_equal(uc_connect("127.0.0.1", "not-a-port", 1000, &conn), UC_E_RESOLVE);
}

/* ---- Local argument checks (nothing may reach the wire) ---------------- */

struct submit_arg_case {
	const char *name;
	struct uc_urb urb;
	int want;
};

static const uint8_t some_data[16];
static const struct usbip_iso_desc iso_outside[1] = { { .offset = 8, .length = 16 } };
static const struct usbip_iso_desc iso_ok[1] = { { .offset = 0, .length = 16 } };

static const struct submit_arg_case submit_arg_cases[] = {
	{ "endpoint 16", { .seqnum = 2, .ep = 16, .direction = USBIP_DIR_IN }, UC_E_INVAL },
	{ "direction 2", { .seqnum = 2, .direction = 2 }, UC_E_INVAL },
	{ "OUT without data", { .seqnum = 2, .direction = USBIP_DIR_OUT, .buffer_length = 4 },
	  UC_E_INVAL },
	{ "too long", { .seqnum = 2, .direction = USBIP_DIR_IN,
			.buffer_length = USBIP_MAX_TRANSFER_LENGTH + 1 }, UC_E_INVAL },
	{ "too many packets", { .seqnum = 2, .direction = USBIP_DIR_IN, .buffer_length = 16,
				.number_of_packets = USBIP_MAX_ISO_PACKETS + 1, .iso = iso_ok },
	  UC_E_INVAL },
	{ "iso without descriptors", { .seqnum = 2, .direction = USBIP_DIR_IN,
				       .buffer_length = 16, .number_of_packets = 1 }, UC_E_INVAL },
	{ "iso outside buffer", { .seqnum = 2, .direction = USBIP_DIR_OUT, .buffer_length = 16,
				  .out_data = some_data, .number_of_packets = 1,
				  .iso = iso_outside }, UC_E_INVAL },
	{ "seqnum outstanding", { .seqnum = 1, .direction = USBIP_DIR_IN, .buffer_length = 8 },
	  UC_E_SEQNUM },
};

static void test_submit_argument_checks(void **state)
{
	(void)state;
	int sv[2];
	struct uc_conn *conn;
	uint8_t buf[USBIP_HEADER_SIZE + 1];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(uc_adopt_fd(sv[0], IO_TIMEOUT_MS, &conn), 0);
	submit_simple(conn, 1, USBIP_DIR_IN, 1, 8, NULL);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), USBIP_HEADER_SIZE);

	for (size_t i = 0; i < sizeof(submit_arg_cases) / sizeof(submit_arg_cases[0]); i++) {
		const struct submit_arg_case *c = &submit_arg_cases[i];
		int rc = uc_submit(conn, &c->urb);
		if (rc != c->want)
			fail_msg("%s: got %d, want %d", c->name, rc, c->want);
		assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	}
	/* An unlink may not reuse an outstanding seqnum either. */
	assert_int_equal(uc_unlink(conn, 1, 1), UC_E_SEQNUM);
	assert_int_equal(uc_outstanding(conn), 1);

	/* Raw bytes go out as they are. */
	assert_int_equal(uc_send_raw(conn, "\x00\x00\x00\x09junk", 8), 0);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), 8);
	assert_memory_equal(buf, "\x00\x00\x00\x09junk", 8);
	uc_close(conn);
	close(sv[1]);
}

static void test_send_to_closed_peer(void **state)
{
	(void)state;
	int sv[2];
	struct uc_conn *conn;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(uc_adopt_fd(sv[0], IO_TIMEOUT_MS, &conn), 0);
	close(sv[1]);
	/* No SIGPIPE kills the test; the peer's absence is UC_E_CLOSED. */
	assert_int_equal(uc_send_raw(conn, "abcd", 4), UC_E_CLOSED);
	assert_int_equal(uc_outstanding(conn), 0);
	uc_close(conn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devlist_two_devices),
		cmocka_unit_test(test_devlist_callback_stops),
		cmocka_unit_test(test_devlist_bad_replies),
		cmocka_unit_test(test_import_table),
		cmocka_unit_test(test_import_bad_busid_not_sent),
		cmocka_unit_test(test_submit_out_of_order),
		cmocka_unit_test(test_iso_in_expanded),
		cmocka_unit_test(test_unlink_wins),
		cmocka_unit_test(test_unlink_after_completion),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_server_close),
		cmocka_unit_test(test_server_close_mid_message),
		cmocka_unit_test(test_timeout_idle_keeps_connection),
		cmocka_unit_test(test_timeout_mid_message_breaks),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_submit_argument_checks),
		cmocka_unit_test(test_send_to_closed_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
