/* USB/IP codec: byte-exact vectors written out by hand from the protocol
 * description (shared/docs/PROTOCOL.md), and one table of malformed inputs
 * in which every case must fail with its own error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/bytes.h"
#include "proto/linux_errno.h"
#include "proto/usbip_codec.h"

/* ---- Vectors ----------------------------------------------------------- */

/* OP_REP_DEVLIST for one device, a CDC-ACM adapter on bus 1 port 2 with two
 * interfaces. Offsets in the comments count from the start of the message;
 * the device record starts at 12. */
static const uint8_t devlist_reply[] = {
	/* 0: version 0x0111, code OP_REP_DEVLIST 0x0005, status 0 */
	0x01, 0x11, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
	/* 8: ndevices = 1 */
	0x00, 0x00, 0x00, 0x01,
	/* 12: path[256] = "/sys/bus/usb/devices/1-2", zero padded */
	'/', 's', 'y', 's', '/', 'b', 'u', 's', '/', 'u', 's', 'b', '/',
	'd', 'e', 'v', 'i', 'c', 'e', 's', '/', '1', '-', '2',
	/* 268: busid[32] = "1-2", zero padded */
	[268] = '1', '-', '2',
	/* 300: busnum = 1 */
	[300] = 0x00, 0x00, 0x00, 0x01,
	/* 304: devnum = 3 */
	0x00, 0x00, 0x00, 0x03,
	/* 308: speed = 3 (high) */
	0x00, 0x00, 0x00, 0x03,
	/* 312: idVendor 0x0483, idProduct 0x5740, bcdDevice 0x0200 */
	0x04, 0x83, 0x57, 0x40, 0x02, 0x00,
	/* 318: class 0xef, subclass 0x02, protocol 0x01 (interface association) */
	0xef, 0x02, 0x01,
	/* 321: bConfigurationValue 1, bNumConfigurations 1, bNumInterfaces 2 */
	0x01, 0x01, 0x02,
	/* 324: interface 0: CDC communications 0x02/0x02/0x01, padding */
	0x02, 0x02, 0x01, 0x00,
	/* 328: interface 1: CDC data 0x0a/0x00/0x00, padding */
	0x0a, 0x00, 0x00, 0x00,
	/* 332: end */
};
#define DEVLIST_RECORD_AT 12
#define DEVLIST_IFACE0_AT 324

static const uint8_t devlist_request[] = {
	0x01, 0x11, 0x80, 0x05, 0x00, 0x00, 0x00, 0x00,
};

/* OP_REQ_IMPORT for "1-2". */
static const uint8_t import_request[] = {
	/* 0: version 0x0111, code OP_REQ_IMPORT 0x8003, status 0 */
	0x01, 0x11, 0x80, 0x03, 0x00, 0x00, 0x00, 0x00,
	/* 8: busid[32] = "1-2", zero padded to 40 */
	'1', '-', '2', [39] = 0x00,
};

/* OP_REP_IMPORT refused with status 1 (not available): the header alone. */
static const uint8_t import_reply_na[] = {
	0x01, 0x11, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
};

/* CMD_SUBMIT: control GET_DESCRIPTOR(DEVICE), 18 bytes IN on ep 0. */
static const uint8_t cmd_submit_get_desc[] = {
	0x00, 0x00, 0x00, 0x01, /*  0: command CMD_SUBMIT */
	0x00, 0x00, 0x00, 0x01, /*  4: seqnum 1 */
	0x00, 0x01, 0x00, 0x03, /*  8: devid bus 1 << 16 | dev 3 */
	0x00, 0x00, 0x00, 0x01, /* 12: direction IN */
	0x00, 0x00, 0x00, 0x00, /* 16: ep 0 */
	0x00, 0x00, 0x02, 0x00, /* 20: transfer_flags URB_DIR_IN */
	0x00, 0x00, 0x00, 0x12, /* 24: transfer_buffer_length 18 */
	0x00, 0x00, 0x00, 0x00, /* 28: start_frame 0 */
	0x00, 0x00, 0x00, 0x00, /* 32: number_of_packets 0 (not iso, as Linux sends) */
	0x00, 0x00, 0x00, 0x00, /* 36: interval 0 */
	/* 40: setup, USB little-endian: bmRequestType 0x80, bRequest 6,
	 * wValue 0x0100 (device descriptor), wIndex 0, wLength 18 */
	0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00,
};

/* RET_SUBMIT answering it with 18 bytes: the header alone (data follows). */
static const uint8_t ret_submit_get_desc[] = {
	0x00, 0x00, 0x00, 0x03, /*  0: command RET_SUBMIT */
	0x00, 0x00, 0x00, 0x01, /*  4: seqnum 1 */
	0x00, 0x00, 0x00, 0x00, /*  8: devid 0 in replies */
	0x00, 0x00, 0x00, 0x00, /* 12: direction 0 in replies */
	0x00, 0x00, 0x00, 0x00, /* 16: ep 0 in replies */
	0x00, 0x00, 0x00, 0x00, /* 20: status 0 */
	0x00, 0x00, 0x00, 0x12, /* 24: actual_length 18 */
	0x00, 0x00, 0x00, 0x00, /* 28: start_frame */
	0xff, 0xff, 0xff, 0xff, /* 32: number_of_packets "none" as the document has it */
	0x00, 0x00, 0x00, 0x00, /* 36: error_count */
	0, 0, 0, 0, 0, 0, 0, 0, /* 40: padding */
};

/* CMD_UNLINK of seqnum 1, itself seqnum 2. */
static const uint8_t cmd_unlink[] = {
	0x00, 0x00, 0x00, 0x02, /*  0: command CMD_UNLINK */
	0x00, 0x00, 0x00, 0x02, /*  4: seqnum 2 */
	0x00, 0x01, 0x00, 0x03, /*  8: devid */
	0x00, 0x00, 0x00, 0x00, /* 12: direction OUT */
	0x00, 0x00, 0x00, 0x00, /* 16: ep 0 */
	0x00, 0x00, 0x00, 0x01, /* 20: unlink_seqnum 1 */
	0, 0, 0, 0, 0, 0, 0, 0, /* 24: 24 bytes padding */
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
};

/* RET_UNLINK for it: the URB was cancelled, status -ECONNRESET (-104). */
static const uint8_t ret_unlink[] = {
	0x00, 0x00, 0x00, 0x04, /*  0: command RET_UNLINK */
	0x00, 0x00, 0x00, 0x02, /*  4: seqnum 2 */
	0x00, 0x00, 0x00, 0x00, /*  8: devid */
	0x00, 0x00, 0x00, 0x00, /* 12: direction */
	0x00, 0x00, 0x00, 0x00, /* 16: ep */
	0xff, 0xff, 0xff, 0x98, /* 20: status -104 */
	0, 0, 0, 0, 0, 0, 0, 0, /* 24: padding */
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
};

/* RET_SUBMIT of an isochronous IN URB on ep 1 whose CMD_SUBMIT asked for
 * 3 packets of 8 bytes at offsets 0, 8, 16 (transfer_buffer_length 24).
 * Packet 0 got 3 bytes, packet 1 failed with -EPROTO, packet 2 got 5 bytes:
 * the data is compacted to 8 bytes, the descriptors keep the offsets. */
static const uint8_t iso_ret_submit[] = {
	0x00, 0x00, 0x00, 0x03, /*  0: command RET_SUBMIT */
	0x00, 0x00, 0x00, 0x07, /*  4: seqnum 7 */
	0x00, 0x00, 0x00, 0x00, /*  8: devid */
	0x00, 0x00, 0x00, 0x00, /* 12: direction */
	0x00, 0x00, 0x00, 0x00, /* 16: ep */
	0x00, 0x00, 0x00, 0x00, /* 20: status 0 */
	0x00, 0x00, 0x00, 0x08, /* 24: actual_length 3 + 0 + 5 */
	0x00, 0x00, 0x01, 0x00, /* 28: start_frame 256 */
	0x00, 0x00, 0x00, 0x03, /* 32: number_of_packets 3 */
	0x00, 0x00, 0x00, 0x01, /* 36: error_count 1 */
	0, 0, 0, 0, 0, 0, 0, 0, /* 40: padding */
	/* 48: compacted data: packet 0's 3 bytes, then packet 2's 5 bytes */
	0xa0, 0xa1, 0xa2, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4,
	/* 56: descriptor 0: offset 0, length 8, actual 3, status 0 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,
	0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
	/* 72: descriptor 1: offset 8, length 8, actual 0, status -71 */
	0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08,
	0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xb9,
	/* 88: descriptor 2: offset 16, length 8, actual 5, status 0 */
	0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08,
	0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
	/* 104: end */
};
#define ISO_DATA_AT 48
#define ISO_DESCS_AT 56
#define ISO_BUFFER_LENGTH 24u /* the CMD_SUBMIT's transfer_buffer_length */

/* The device every vector above describes. */
static struct usbip_device_record sample_device(void)
{
	struct usbip_device_record d;

	memset(&d, 0, sizeof(d));
	strcpy(d.path, "/sys/bus/usb/devices/1-2");
	strcpy(d.busid, "1-2");
	d.busnum = 1;
	d.devnum = 3;
	d.speed = USBIP_SPEED_HIGH;
	d.idVendor = 0x0483;
	d.idProduct = 0x5740;
	d.bcdDevice = 0x0200;
	d.bDeviceClass = 0xef;
	d.bDeviceSubClass = 0x02;
	d.bDeviceProtocol = 0x01;
	d.bConfigurationValue = 1;
	d.bNumConfigurations = 1;
	d.bNumInterfaces = 2;
	return d;
}

static const struct usbip_interface_record sample_ifaces[2] = {
	{ .bInterfaceClass = 0x02, .bInterfaceSubClass = 0x02, .bInterfaceProtocol = 0x01 },
	{ .bInterfaceClass = 0x0a, .bInterfaceSubClass = 0x00, .bInterfaceProtocol = 0x00 },
};

static void assert_device_equal(const struct usbip_device_record *a,
				const struct usbip_device_record *b)
{
	assert_string_equal(a->path, b->path);
	assert_string_equal(a->busid, b->busid);
	assert_int_equal(a->busnum, b->busnum);
	assert_int_equal(a->devnum, b->devnum);
	assert_int_equal(a->speed, b->speed);
	assert_int_equal(a->idVendor, b->idVendor);
	assert_int_equal(a->idProduct, b->idProduct);
	assert_int_equal(a->bcdDevice, b->bcdDevice);
	assert_int_equal(a->bDeviceClass, b->bDeviceClass);
	assert_int_equal(a->bDeviceSubClass, b->bDeviceSubClass);
	assert_int_equal(a->bDeviceProtocol, b->bDeviceProtocol);
	assert_int_equal(a->bConfigurationValue, b->bConfigurationValue);
	assert_int_equal(a->bNumConfigurations, b->bNumConfigurations);
	assert_int_equal(a->bNumInterfaces, b->bNumInterfaces);
}

/* ---- Operation messages ------------------------------------------------ */

static void test_devlist_request(void **state)
{
	(void)state;
	uint8_t buf[16];
	struct usbip_op_common op;

	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_devlist_request_encode(buf, sizeof(buf)), 8);
	assert_memory_equal(buf, devlist_request, sizeof(devlist_request));

	assert_int_equal(usbip_op_common_decode(devlist_request, sizeof(devlist_request), &op),
			 USBIP_OK);
	assert_int_equal(op.version, 0x0111);
	assert_int_equal(op.code, USBIP_OP_REQ_DEVLIST);
	assert_int_equal(op.status, 0);

	/* The generic encoder writes what it is given. */
	op.status = 0x01020304;
	assert_int_equal(usbip_op_common_encode(&op, buf, 8), 8);
	assert_memory_equal(buf, "\x01\x11\x80\x05\x01\x02\x03\x04", 8);
}

static void test_op_codes_accepted(void **state)
{
	(void)state;
	static const uint16_t codes[] = {
		USBIP_OP_REQ_DEVLIST, USBIP_OP_REP_DEVLIST, USBIP_OP_REQ_IMPORT, USBIP_OP_REP_IMPORT,
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		uint8_t buf[8] = { 0x01, 0x11, 0, 0, 0, 0, 0, 5 };
		struct usbip_op_common op;

		put_be16(buf + 2, codes[i]);
		assert_int_equal(usbip_op_common_decode(buf, sizeof(buf), &op), USBIP_OK);
		assert_int_equal(op.code, codes[i]);
		assert_int_equal(op.status, 5);
	}
}

struct devlist_seen {
	int calls;
	struct usbip_device_record dev;
	struct usbip_interface_record ifaces[USBIP_MAX_INTERFACES];
	int stop_with;
};

static int devlist_collect(void *ctx, const struct usbip_device_record *dev,
			   const struct usbip_interface_record *ifaces)
{
	struct devlist_seen *seen = ctx;

	seen->calls++;
	seen->dev = *dev;
	memcpy(seen->ifaces, ifaces, dev->bNumInterfaces * sizeof(*ifaces));
	return seen->stop_with;
}

static void test_devlist_reply_encode(void **state)
{
	(void)state;
	uint8_t buf[sizeof(devlist_reply)];
	struct usbip_device_record dev = sample_device();
	size_t at = 0;
	int rc;

	memset(buf, 0x55, sizeof(buf));
	rc = usbip_devlist_reply_head_encode(USBIP_ST_OK, 1, buf, sizeof(buf));
	assert_int_equal(rc, 12);
	at += (size_t)rc;
	rc = usbip_device_record_encode(&dev, buf + at, sizeof(buf) - at);
	assert_int_equal(rc, USBIP_DEVICE_RECORD_SIZE);
	at += (size_t)rc;
	for (int i = 0; i < 2; i++) {
		rc = usbip_interface_record_encode(&sample_ifaces[i], buf + at, sizeof(buf) - at);
		assert_int_equal(rc, USBIP_INTERFACE_RECORD_SIZE);
		at += (size_t)rc;
	}
	assert_int_equal(at, sizeof(devlist_reply));
	assert_memory_equal(buf, devlist_reply, sizeof(devlist_reply));
}

static void test_devlist_reply_decode(void **state)
{
	(void)state;
	struct devlist_seen seen = { 0 };
	struct usbip_device_record want = sample_device();
	struct usbip_op_common op;
	uint32_t ndevices = 99;

	assert_int_equal(usbip_devlist_reply_head_decode(devlist_reply, sizeof(devlist_reply),
							 &op, &ndevices), USBIP_OK);
	assert_int_equal(op.code, USBIP_OP_REP_DEVLIST);
	assert_int_equal(ndevices, 1);

	assert_int_equal(usbip_devlist_reply_decode(devlist_reply, sizeof(devlist_reply),
						    devlist_collect, &seen), USBIP_OK);
	assert_int_equal(seen.calls, 1);
	assert_device_equal(&seen.dev, &want);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(seen.ifaces[i].bInterfaceClass, sample_ifaces[i].bInterfaceClass);
		assert_int_equal(seen.ifaces[i].bInterfaceSubClass,
				 sample_ifaces[i].bInterfaceSubClass);
		assert_int_equal(seen.ifaces[i].bInterfaceProtocol,
				 sample_ifaces[i].bInterfaceProtocol);
	}

	/* A NULL callback only validates. */
	assert_int_equal(usbip_devlist_reply_decode(devlist_reply, sizeof(devlist_reply),
						    NULL, NULL), USBIP_OK);
}

static void test_devlist_reply_callback_stops(void **state)
{
	(void)state;
	struct devlist_seen seen = { .stop_with = 42 };

	assert_int_equal(usbip_devlist_reply_decode(devlist_reply, sizeof(devlist_reply),
						    devlist_collect, &seen), 42);
	assert_int_equal(seen.calls, 1);
}

static void test_devlist_reply_empty(void **state)
{
	(void)state;
	static const uint8_t empty[] = {
		0x01, 0x11, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	uint8_t buf[12];
	struct devlist_seen seen = { 0 };

	assert_int_equal(usbip_devlist_reply_head_encode(USBIP_ST_OK, 0, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, empty, sizeof(empty));
	assert_int_equal(usbip_devlist_reply_decode(empty, sizeof(empty), devlist_collect, &seen),
			 USBIP_OK);
	assert_int_equal(seen.calls, 0);
}

/* A malformed second device must not let the callback see the first. */
static void test_devlist_reply_validates_before_callback(void **state)
{
	(void)state;
	uint8_t buf[sizeof(devlist_reply) + USBIP_DEVICE_RECORD_SIZE];
	struct devlist_seen seen = { 0 };

	memcpy(buf, devlist_reply, sizeof(devlist_reply));
	put_be32(buf + 8, 2);
	/* Second record: path and busid fields full of non-NUL bytes. */
	memset(buf + sizeof(devlist_reply), 'x', USBIP_DEVICE_RECORD_SIZE);
	assert_int_equal(usbip_devlist_reply_decode(buf, sizeof(buf), devlist_collect, &seen),
			 USBIP_E_PATH);
	assert_int_equal(seen.calls, 0);
}

static void test_device_record_decode_ignores_bytes_after_nul(void **state)
{
	(void)state;
	uint8_t rec[USBIP_DEVICE_RECORD_SIZE];
	struct usbip_device_record dev;
	struct usbip_device_record want = sample_device();

	memcpy(rec, devlist_reply + DEVLIST_RECORD_AT, sizeof(rec));
	memset(rec + 100, 'z', 20);          /* inside path, after its NUL */
	rec[USBIP_PATH_SIZE + 10] = 'z';     /* inside busid, after its NUL */
	memset(&dev, 0x77, sizeof(dev));
	assert_int_equal(usbip_device_record_decode(rec, sizeof(rec), &dev), USBIP_OK);
	assert_device_equal(&dev, &want);
	/* The tails come back zeroed, not as the peer's bytes or ours. */
	for (size_t i = strlen(want.path); i < USBIP_PATH_SIZE; i++)
		assert_int_equal(dev.path[i], 0);
	for (size_t i = strlen(want.busid); i < USBIP_BUSID_SIZE; i++)
		assert_int_equal(dev.busid[i], 0);
}

static void test_import_request(void **state)
{
	(void)state;
	uint8_t buf[64];
	char busid[USBIP_BUSID_SIZE];

	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_import_request_encode("1-2", buf, sizeof(buf)),
			 USBIP_IMPORT_REQUEST_SIZE);
	assert_memory_equal(buf, import_request, sizeof(import_request));

	memset(busid, 0x55, sizeof(busid));
	assert_int_equal(usbip_import_request_decode(import_request, sizeof(import_request), busid),
			 USBIP_OK);
	assert_string_equal(busid, "1-2");

	/* Longest busid that fits: 31 characters and the NUL. */
	char longest[USBIP_BUSID_SIZE];
	memset(longest, '9', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_int_equal(usbip_import_request_encode(longest, buf, sizeof(buf)), 40);
	assert_int_equal(usbip_import_request_decode(buf, 40, busid), USBIP_OK);
	assert_string_equal(busid, longest);
}

static void test_import_reply(void **state)
{
	(void)state;
	uint8_t buf[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE + 8];
	struct usbip_device_record dev = sample_device();
	struct usbip_op_common op;

	/* Success: header, then the record (no interface list). */
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_OK, &dev, buf, sizeof(buf)), 320);
	assert_memory_equal(buf, "\x01\x11\x00\x03\x00\x00\x00\x00", 8);
	assert_memory_equal(buf + 8, devlist_reply + DEVLIST_RECORD_AT, USBIP_DEVICE_RECORD_SIZE);
	assert_int_equal(buf[320], 0x55);
	assert_int_equal(usbip_op_common_decode(buf, 320, &op), USBIP_OK);
	assert_int_equal(op.code, USBIP_OP_REP_IMPORT);

	/* Failure: header alone, even when a record is at hand. */
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_NA, NULL, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, import_reply_na, sizeof(import_reply_na));
	assert_int_equal(buf[8], 0x55);
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_NA, &dev, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, import_reply_na, sizeof(import_reply_na));
	assert_int_equal(buf[8], 0x55);
}

/* ---- URB headers ------------------------------------------------------- */

static void test_cmd_submit_get_descriptor(void **state)
{
	(void)state;
	struct usbip_header h;
	uint8_t buf[USBIP_HEADER_SIZE];

	assert_int_equal(usbip_header_decode(cmd_submit_get_desc, sizeof(cmd_submit_get_desc), &h),
			 USBIP_OK);
	assert_int_equal(h.command, USBIP_CMD_SUBMIT);
	assert_int_equal(h.seqnum, 1);
	assert_int_equal(h.devid, usbip_devid(1, 3));
	assert_int_equal(h.direction, USBIP_DIR_IN);
	assert_int_equal(h.ep, 0);
	assert_int_equal(h.u.cmd_submit.transfer_flags, USBIP_URB_DIR_IN);
	assert_int_equal(h.u.cmd_submit.transfer_buffer_length, 18);
	assert_int_equal(h.u.cmd_submit.start_frame, 0);
	assert_int_equal(h.u.cmd_submit.number_of_packets, 0);
	assert_int_equal(h.u.cmd_submit.interval, 0);
	/* setup stays in USB byte order. */
	assert_int_equal(h.u.cmd_submit.setup[0], 0x80);
	assert_int_equal(h.u.cmd_submit.setup[1], 0x06);
	assert_int_equal(get_le16(h.u.cmd_submit.setup + 2), 0x0100);
	assert_int_equal(get_le16(h.u.cmd_submit.setup + 4), 0);
	assert_int_equal(get_le16(h.u.cmd_submit.setup + 6), 18);
	/* IN: nothing follows the header. */
	assert_int_equal(usbip_cmd_submit_payload_size(&h), 0);

	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_HEADER_SIZE);
	assert_memory_equal(buf, cmd_submit_get_desc, sizeof(cmd_submit_get_desc));
}

static void test_ret_submit_get_descriptor(void **state)
{
	(void)state;
	struct usbip_header h;
	uint8_t buf[USBIP_HEADER_SIZE];

	memset(&h, 0, sizeof(h));
	h.command = USBIP_RET_SUBMIT;
	h.seqnum = 1;
	h.u.ret_submit.actual_length = 18;
	h.u.ret_submit.number_of_packets = USBIP_NO_ISO_PACKETS;
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_HEADER_SIZE);
	assert_memory_equal(buf, ret_submit_get_desc, sizeof(ret_submit_get_desc));

	memset(&h, 0x77, sizeof(h));
	assert_int_equal(usbip_header_decode(ret_submit_get_desc, sizeof(ret_submit_get_desc), &h),
			 USBIP_OK);
	assert_int_equal(h.command, USBIP_RET_SUBMIT);
	assert_int_equal(h.u.ret_submit.status, 0);
	assert_int_equal(h.u.ret_submit.actual_length, 18);
	assert_int_equal(h.u.ret_submit.number_of_packets, USBIP_NO_ISO_PACKETS);
	assert_int_equal(usbip_ret_submit_payload_size(&h, 1), 18);
	assert_int_equal(usbip_ret_submit_payload_size(&h, 0), 0);
}

static void test_cmd_submit_bulk_out_payload(void **state)
{
	(void)state;
	uint8_t raw[USBIP_HEADER_SIZE];
	struct usbip_header h;

	memcpy(raw, cmd_submit_get_desc, sizeof(raw));
	put_be32(raw + 12, USBIP_DIR_OUT);
	put_be32(raw + 16, 2);
	put_be32(raw + 24, 512);
	assert_int_equal(usbip_header_decode(raw, sizeof(raw), &h), USBIP_OK);
	assert_int_equal(usbip_cmd_submit_payload_size(&h), 512);
	/* The documented "none" marker counts no descriptors. */
	put_be32(raw + 32, USBIP_NO_ISO_PACKETS);
	assert_int_equal(usbip_header_decode(raw, sizeof(raw), &h), USBIP_OK);
	assert_int_equal(usbip_cmd_submit_payload_size(&h), 512);
	/* Iso OUT: the whole buffer, then 16 bytes per packet. */
	put_be32(raw + 32, 4);
	assert_int_equal(usbip_header_decode(raw, sizeof(raw), &h), USBIP_OK);
	assert_int_equal(usbip_cmd_submit_payload_size(&h), 512 + 4 * 16);
	/* Iso IN: descriptors only. */
	put_be32(raw + 12, USBIP_DIR_IN);
	assert_int_equal(usbip_header_decode(raw, sizeof(raw), &h), USBIP_OK);
	assert_int_equal(usbip_cmd_submit_payload_size(&h), 4 * 16);
	/* Largest accepted lengths. */
	put_be32(raw + 12, USBIP_DIR_OUT);
	put_be32(raw + 24, USBIP_MAX_TRANSFER_LENGTH);
	put_be32(raw + 32, USBIP_MAX_ISO_PACKETS);
	assert_int_equal(usbip_header_decode(raw, sizeof(raw), &h), USBIP_OK);
	assert_int_equal(usbip_cmd_submit_payload_size(&h),
			 (size_t)USBIP_MAX_TRANSFER_LENGTH + USBIP_MAX_ISO_PACKETS * 16);
}

static void test_unlink(void **state)
{
	(void)state;
	struct usbip_header h;
	uint8_t buf[USBIP_HEADER_SIZE];

	assert_int_equal(usbip_header_decode(cmd_unlink, sizeof(cmd_unlink), &h), USBIP_OK);
	assert_int_equal(h.command, USBIP_CMD_UNLINK);
	assert_int_equal(h.seqnum, 2);
	assert_int_equal(h.devid, 0x00010003);
	assert_int_equal(h.u.cmd_unlink.seqnum, 1);
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_HEADER_SIZE);
	assert_memory_equal(buf, cmd_unlink, sizeof(cmd_unlink));

	/* Padding is ignored on input and zeroed on output. */
	uint8_t dirty[USBIP_HEADER_SIZE];
	memcpy(dirty, cmd_unlink, sizeof(dirty));
	memset(dirty + 24, 0xee, 24);
	memset(&h, 0, sizeof(h));
	assert_int_equal(usbip_header_decode(dirty, sizeof(dirty), &h), USBIP_OK);
	assert_int_equal(h.u.cmd_unlink.seqnum, 1);
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_HEADER_SIZE);
	assert_memory_equal(buf, cmd_unlink, sizeof(cmd_unlink));

	memset(&h, 0, sizeof(h));
	h.command = USBIP_RET_UNLINK;
	h.seqnum = 2;
	h.u.ret_unlink.status = -LNX_ECONNRESET;
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_HEADER_SIZE);
	assert_memory_equal(buf, ret_unlink, sizeof(ret_unlink));
	memset(&h, 0, sizeof(h));
	assert_int_equal(usbip_header_decode(ret_unlink, sizeof(ret_unlink), &h), USBIP_OK);
	assert_int_equal(h.command, USBIP_RET_UNLINK);
	assert_int_equal(h.u.ret_unlink.status, -104);
}

static void test_iso_ret_submit_vector(void **state)
{
	(void)state;
	/* The IN buffer as the device filled it, uncompacted: 0xee where no
	 * data arrived. */
	uint8_t urb_buf[ISO_BUFFER_LENGTH];
	memset(urb_buf, 0xee, sizeof(urb_buf));
	memcpy(urb_buf + 0, "\xa0\xa1\xa2", 3);
	memcpy(urb_buf + 16, "\xc0\xc1\xc2\xc3\xc4", 5);
	const struct usbip_iso_desc descs[3] = {
		{ .offset = 0, .length = 8, .actual_length = 3, .status = 0 },
		{ .offset = 8, .length = 8, .actual_length = 0, .status = -LNX_EPROTO },
		{ .offset = 16, .length = 8, .actual_length = 5, .status = 0 },
	};
	struct usbip_header h;
	uint8_t msg[sizeof(iso_ret_submit)];
	size_t at = 0;

	/* Server side: header, compacted data, descriptors. */
	memset(&h, 0, sizeof(h));
	h.command = USBIP_RET_SUBMIT;
	h.seqnum = 7;
	h.u.ret_submit.actual_length = 8;
	h.u.ret_submit.start_frame = 256;
	h.u.ret_submit.number_of_packets = 3;
	h.u.ret_submit.error_count = 1;
	assert_int_equal(usbip_iso_validate_ret(descs, 3, ISO_BUFFER_LENGTH, 8), USBIP_OK);
	memset(msg, 0x55, sizeof(msg));
	assert_int_equal(usbip_header_encode(&h, msg, sizeof(msg)), USBIP_HEADER_SIZE);
	at += USBIP_HEADER_SIZE;
	at += usbip_iso_compact(urb_buf, descs, 3, msg + at);
	assert_int_equal(at, ISO_DESCS_AT);
	assert_int_equal(usbip_iso_descs_encode(descs, 3, msg + at, sizeof(msg) - at), 48);
	at += 48;
	assert_int_equal(at, sizeof(iso_ret_submit));
	assert_memory_equal(msg, iso_ret_submit, sizeof(iso_ret_submit));

	/* Client side: decode, size the payload, validate, expand. */
	struct usbip_iso_desc got[3];
	uint8_t client_buf[ISO_BUFFER_LENGTH];
	memset(&h, 0, sizeof(h));
	assert_int_equal(usbip_header_decode(iso_ret_submit, sizeof(iso_ret_submit), &h), USBIP_OK);
	assert_int_equal(h.seqnum, 7);
	assert_int_equal(h.u.ret_submit.status, 0);
	assert_int_equal(h.u.ret_submit.actual_length, 8);
	assert_int_equal(h.u.ret_submit.start_frame, 256);
	assert_int_equal(h.u.ret_submit.number_of_packets, 3);
	assert_int_equal(h.u.ret_submit.error_count, 1);
	assert_int_equal(usbip_ret_submit_payload_size(&h, 1),
			 sizeof(iso_ret_submit) - USBIP_HEADER_SIZE);
	assert_int_equal(usbip_iso_descs_decode(iso_ret_submit + ISO_DESCS_AT,
						sizeof(iso_ret_submit) - ISO_DESCS_AT, 3, got),
			 USBIP_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(got[i].offset, descs[i].offset);
		assert_int_equal(got[i].length, descs[i].length);
		assert_int_equal(got[i].actual_length, descs[i].actual_length);
		assert_int_equal(got[i].status, descs[i].status);
	}
	assert_int_equal(usbip_iso_validate_ret(got, 3, ISO_BUFFER_LENGTH,
						h.u.ret_submit.actual_length), USBIP_OK);
	memset(client_buf, 0, sizeof(client_buf));
	usbip_iso_expand(iso_ret_submit + ISO_DATA_AT, got, 3, client_buf);
	assert_memory_equal(client_buf + 0, "\xa0\xa1\xa2\0\0\0\0\0", 8);
	assert_memory_equal(client_buf + 8, "\0\0\0\0\0\0\0\0", 8);
	assert_memory_equal(client_buf + 16, "\xc0\xc1\xc2\xc3\xc4\0\0\0", 8);
}

/* ---- Malformed input: each case its own error ------------------------- */

typedef int (*decode_fn)(const uint8_t *p, size_t n);

static int dec_op(const uint8_t *p, size_t n)
{
	struct usbip_op_common op;
	return usbip_op_common_decode(p, n, &op);
}

static int dec_header(const uint8_t *p, size_t n)
{
	struct usbip_header h;
	return usbip_header_decode(p, n, &h);
}

static int dec_devrec(const uint8_t *p, size_t n)
{
	struct usbip_device_record d;
	return usbip_device_record_decode(p + DEVLIST_RECORD_AT, n - DEVLIST_RECORD_AT, &d);
}

static int dec_devlist_head(const uint8_t *p, size_t n)
{
	struct usbip_op_common op;
	uint32_t count;
	return usbip_devlist_reply_head_decode(p, n, &op, &count);
}

static int dec_devlist(const uint8_t *p, size_t n)
{
	return usbip_devlist_reply_decode(p, n, NULL, NULL);
}

static int dec_import(const uint8_t *p, size_t n)
{
	char busid[USBIP_BUSID_SIZE];
	return usbip_import_request_decode(p, n, busid);
}

/* The client's path for an iso IN reply to a 24-byte CMD_SUBMIT. */
static int dec_iso_ret(const uint8_t *p, size_t n)
{
	struct usbip_header h;
	struct usbip_iso_desc d[USBIP_MAX_ISO_PACKETS];
	int rc = usbip_header_decode(p, n, &h);

	if (rc != USBIP_OK)
		return rc;
	size_t payload = usbip_ret_submit_payload_size(&h, 1);
	if (n - USBIP_HEADER_SIZE < payload)
		return USBIP_E_SHORT;
	uint32_t count = usbip_iso_count(h.u.ret_submit.number_of_packets);
	size_t descs_at = USBIP_HEADER_SIZE + payload - (size_t)count * USBIP_ISO_DESC_SIZE;
	rc = usbip_iso_descs_decode(p + descs_at, n - descs_at, count, d);
	if (rc != USBIP_OK)
		return rc;
	return usbip_iso_validate_ret(d, count, ISO_BUFFER_LENGTH, h.u.ret_submit.actual_length);
}

enum patch_kind { PATCH_END = 0, PATCH_BE8, PATCH_BE16, PATCH_BE32, PATCH_FILL };

struct patch {
	enum patch_kind kind;
	size_t at;
	uint32_t value;
	size_t len; /* PATCH_FILL only */
};

struct malformed_case {
	const char *name;
	decode_fn decode;
	const uint8_t *base;
	size_t base_len;
	long len_delta;        /* bytes cut (negative) or zero bytes appended */
	struct patch patches[3];
	int expect;
};

#define VEC(v) (v), sizeof(v)
#define BE8(a, v) { PATCH_BE8, (a), (v), 0 }
#define BE16(a, v) { PATCH_BE16, (a), (v), 0 }
#define BE32(a, v) { PATCH_BE32, (a), (v), 0 }
#define FILL(a, n, v) { PATCH_FILL, (a), (v), (n) }

/* Offsets: header fields 0 command, 12 direction, 16 ep, 24 length,
 * 32 number_of_packets; device record at 12 in the devlist reply with its
 * busid at 268 and bNumInterfaces at 323. */
static const struct malformed_case malformed[] = {
	{ "op: 7 bytes", dec_op, VEC(devlist_request), -1, { { 0 } }, USBIP_E_SHORT },
	{ "op: version 0x0110", dec_op, VEC(devlist_request), 0, { BE16(0, 0x0110) },
	  USBIP_E_VERSION },
	{ "op: version 0x1101 (byte-swapped)", dec_op, VEC(devlist_request), 0,
	  { BE16(0, 0x1101) }, USBIP_E_VERSION },
	{ "op: code 0x8004", dec_op, VEC(devlist_request), 0, { BE16(2, 0x8004) },
	  USBIP_E_OP_CODE },
	{ "op: code 0", dec_op, VEC(devlist_request), 0, { BE16(2, 0) }, USBIP_E_OP_CODE },

	{ "header: 47 bytes", dec_header, VEC(cmd_submit_get_desc), -1, { { 0 } },
	  USBIP_E_SHORT },
	{ "header: empty", dec_header, VEC(cmd_submit_get_desc), -48, { { 0 } }, USBIP_E_SHORT },
	{ "header: command 0", dec_header, VEC(cmd_submit_get_desc), 0, { BE32(0, 0) },
	  USBIP_E_COMMAND },
	{ "header: command 5", dec_header, VEC(cmd_submit_get_desc), 0, { BE32(0, 5) },
	  USBIP_E_COMMAND },
	{ "header: command 0x01000000", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(0, 0x01000000) }, USBIP_E_COMMAND },
	{ "header: direction 2", dec_header, VEC(cmd_submit_get_desc), 0, { BE32(12, 2) },
	  USBIP_E_DIRECTION },
	{ "header: direction 0x80000001", dec_header, VEC(cmd_unlink), 0,
	  { BE32(12, 0x80000001) }, USBIP_E_DIRECTION },
	{ "header: ep 16", dec_header, VEC(cmd_submit_get_desc), 0, { BE32(16, 16) },
	  USBIP_E_ENDPOINT },
	{ "header: ep 0x80 (direction bit)", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(16, 0x80) }, USBIP_E_ENDPOINT },
	{ "cmd_submit: length -1", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(24, 0xffffffff) }, USBIP_E_LENGTH },
	{ "cmd_submit: length INT32_MIN", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(24, 0x80000000) }, USBIP_E_LENGTH },
	{ "cmd_submit: length max + 1", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(24, USBIP_MAX_TRANSFER_LENGTH + 1) }, USBIP_E_LENGTH },
	{ "cmd_submit: 1025 packets", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(32, USBIP_MAX_ISO_PACKETS + 1) }, USBIP_E_NPACKETS },
	{ "cmd_submit: 0xfffffffe packets", dec_header, VEC(cmd_submit_get_desc), 0,
	  { BE32(32, 0xfffffffe) }, USBIP_E_NPACKETS },
	{ "ret_submit: actual_length -1", dec_header, VEC(ret_submit_get_desc), 0,
	  { BE32(24, 0xffffffff) }, USBIP_E_LENGTH },
	{ "ret_submit: actual_length max + 1", dec_header, VEC(ret_submit_get_desc), 0,
	  { BE32(24, USBIP_MAX_TRANSFER_LENGTH + 1) }, USBIP_E_LENGTH },
	{ "ret_submit: 1025 packets", dec_header, VEC(ret_submit_get_desc), 0,
	  { BE32(32, USBIP_MAX_ISO_PACKETS + 1) }, USBIP_E_NPACKETS },
	{ "ret_submit: direction 2", dec_header, VEC(ret_submit_get_desc), 0, { BE32(12, 2) },
	  USBIP_E_DIRECTION },
	{ "ret_unlink: ep 16", dec_header, VEC(ret_unlink), 0, { BE32(16, 16) },
	  USBIP_E_ENDPOINT },

	{ "device: 311 bytes", dec_devrec, VEC(devlist_reply), -9, { { 0 } }, USBIP_E_SHORT },
	{ "device: path without NUL", dec_devrec, VEC(devlist_reply), 0,
	  { FILL(12, USBIP_PATH_SIZE, 'p') }, USBIP_E_PATH },
	{ "device: busid without NUL", dec_devrec, VEC(devlist_reply), 0,
	  { FILL(268, USBIP_BUSID_SIZE, 'b') }, USBIP_E_BUSID },
	{ "device: busid empty", dec_devrec, VEC(devlist_reply), 0, { BE8(268, 0) },
	  USBIP_E_BUSID },
	{ "device: 33 interfaces", dec_devrec, VEC(devlist_reply), 0,
	  { BE8(323, USBIP_MAX_INTERFACES + 1) }, USBIP_E_NINTERFACES },
	{ "device: 255 interfaces", dec_devrec, VEC(devlist_reply), 0, { BE8(323, 255) },
	  USBIP_E_NINTERFACES },

	{ "devlist head: 11 bytes", dec_devlist_head, VEC(devlist_reply), -321, { { 0 } },
	  USBIP_E_SHORT },
	{ "devlist head: import reply code", dec_devlist_head, VEC(devlist_reply), 0,
	  { BE16(2, USBIP_OP_REP_IMPORT) }, USBIP_E_OP_CODE },
	{ "devlist head: request code", dec_devlist_head, VEC(devlist_reply), 0,
	  { BE16(2, USBIP_OP_REQ_DEVLIST) }, USBIP_E_OP_CODE },
	{ "devlist head: 257 devices", dec_devlist_head, VEC(devlist_reply), 0,
	  { BE32(8, USBIP_MAX_DEVICES + 1) }, USBIP_E_NDEVICES },
	{ "devlist: 0xffffffff devices", dec_devlist, VEC(devlist_reply), 0,
	  { BE32(8, 0xffffffff) }, USBIP_E_NDEVICES },
	{ "devlist: version 0x0100", dec_devlist, VEC(devlist_reply), 0, { BE16(0, 0x0100) },
	  USBIP_E_VERSION },
	{ "devlist: last interface cut short", dec_devlist, VEC(devlist_reply), -1, { { 0 } },
	  USBIP_E_SHORT },
	{ "devlist: record cut short", dec_devlist, VEC(devlist_reply), -100, { { 0 } },
	  USBIP_E_SHORT },
	{ "devlist: 2 devices announced, 1 sent", dec_devlist, VEC(devlist_reply), 0,
	  { BE32(8, 2) }, USBIP_E_SHORT },
	{ "devlist: 3 interfaces announced, 2 sent", dec_devlist, VEC(devlist_reply), 0,
	  { BE8(323, 3) }, USBIP_E_SHORT },
	{ "devlist: 1 interface announced, 2 sent", dec_devlist, VEC(devlist_reply), 0,
	  { BE8(323, 1) }, USBIP_E_TRAILING },
	{ "devlist: one byte too many", dec_devlist, VEC(devlist_reply), 1, { { 0 } },
	  USBIP_E_TRAILING },
	{ "devlist: 0 devices, then a record", dec_devlist, VEC(devlist_reply), 0,
	  { BE32(8, 0) }, USBIP_E_TRAILING },
	{ "devlist: busid without NUL", dec_devlist, VEC(devlist_reply), 0,
	  { FILL(268, USBIP_BUSID_SIZE, 'b') }, USBIP_E_BUSID },
	{ "devlist: path without NUL", dec_devlist, VEC(devlist_reply), 0,
	  { FILL(12, USBIP_PATH_SIZE, 'p') }, USBIP_E_PATH },
	{ "devlist: 33 interfaces", dec_devlist, VEC(devlist_reply), 0, { BE8(323, 33) },
	  USBIP_E_NINTERFACES },

	{ "import: 39 bytes", dec_import, VEC(import_request), -1, { { 0 } }, USBIP_E_SHORT },
	{ "import: 8 bytes", dec_import, VEC(import_request), -32, { { 0 } }, USBIP_E_SHORT },
	{ "import: version 0x0112", dec_import, VEC(import_request), 0, { BE16(0, 0x0112) },
	  USBIP_E_VERSION },
	{ "import: devlist request code", dec_import, VEC(import_request), 0,
	  { BE16(2, USBIP_OP_REQ_DEVLIST) }, USBIP_E_OP_CODE },
	{ "import: reply code", dec_import, VEC(import_request), 0,
	  { BE16(2, USBIP_OP_REP_IMPORT) }, USBIP_E_OP_CODE },
	{ "import: busid empty", dec_import, VEC(import_request), 0, { BE8(8, 0) },
	  USBIP_E_BUSID },
	{ "import: busid without NUL", dec_import, VEC(import_request), 0,
	  { FILL(8, USBIP_BUSID_SIZE, '1') }, USBIP_E_BUSID },

	/* Descriptor 0 at 56, 1 at 72, 2 at 88: offset +0, length +4,
	 * actual_length +8. The URB buffer is 24 bytes. */
	{ "iso: descriptors cut short", dec_iso_ret, VEC(iso_ret_submit), -1, { { 0 } },
	  USBIP_E_SHORT },
	{ "iso: packet offset past the buffer", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(88, 25) }, USBIP_E_ISO_RANGE },
	{ "iso: packet end past the buffer", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(88, 17) }, USBIP_E_ISO_RANGE },
	{ "iso: offset + length wraps in 32 bits", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(72, 8), BE32(76, 0xfffffffc) }, USBIP_E_ISO_RANGE },
	{ "iso: packet actual_length > length", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(60, 2) }, USBIP_E_ACTUAL_LENGTH },
	{ "iso: actual_length > buffer", dec_iso_ret, VEC(iso_ret_submit), 17,
	  { BE32(24, 25) }, USBIP_E_ACTUAL_LENGTH },
	{ "iso: actual lengths sum short", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(96, 4) }, USBIP_E_ISO_SUM },
	{ "iso: actual lengths sum over", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(80, 1) }, USBIP_E_ISO_SUM },
	{ "iso: 1025 packets", dec_iso_ret, VEC(iso_ret_submit), 0,
	  { BE32(32, USBIP_MAX_ISO_PACKETS + 1) }, USBIP_E_NPACKETS },
};

static size_t apply_case(const struct malformed_case *c, uint8_t *buf, size_t cap)
{
	size_t len = (size_t)((long)c->base_len + c->len_delta);

	assert_true(len <= cap);
	memset(buf, 0, cap);
	memcpy(buf, c->base, c->len_delta < 0 ? len : c->base_len);
	for (size_t i = 0; i < sizeof(c->patches) / sizeof(c->patches[0]); i++) {
		const struct patch *pt = &c->patches[i];

		switch (pt->kind) {
		case PATCH_END: break;
		case PATCH_BE8: buf[pt->at] = (uint8_t)pt->value; break;
		case PATCH_BE16: put_be16(buf + pt->at, (uint16_t)pt->value); break;
		case PATCH_BE32: put_be32(buf + pt->at, pt->value); break;
		case PATCH_FILL: memset(buf + pt->at, (int)pt->value, pt->len); break;
		}
	}
	return len;
}

static void test_malformed_table(void **state)
{
	(void)state;
	static uint8_t buf[1024];

	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		const struct malformed_case *c = &malformed[i];

		/* The unmodified vector must pass, or the case proves nothing. */
		if (c->decode(c->base, c->base_len) != USBIP_OK)
			fail_msg("case \"%s\": base vector does not decode", c->name);
		size_t len = apply_case(c, buf, sizeof(buf));
		int rc = c->decode(buf, len);
		if (rc != c->expect)
			fail_msg("case \"%s\": got %d (%s), want %d (%s)", c->name, rc,
				 usbip_codec_strerror(rc), c->expect,
				 usbip_codec_strerror(c->expect));
	}
}

/* ---- Encoders refuse what decoders would refuse ------------------------ */

static void test_encoder_errors(void **state)
{
	(void)state;
	uint8_t buf[400];
	struct usbip_device_record dev = sample_device();
	struct usbip_interface_record iface = sample_ifaces[0];
	struct usbip_op_common op = { USBIP_VERSION, USBIP_OP_REQ_DEVLIST, 0 };
	struct usbip_header h;

	assert_int_equal(usbip_op_common_encode(&op, buf, 7), USBIP_E_NOSPACE);
	assert_int_equal(usbip_devlist_request_encode(buf, 7), USBIP_E_NOSPACE);
	assert_int_equal(usbip_devlist_reply_head_encode(0, 1, buf, 11), USBIP_E_NOSPACE);
	assert_int_equal(usbip_devlist_reply_head_encode(0, USBIP_MAX_DEVICES + 1, buf,
							 sizeof(buf)), USBIP_E_NDEVICES);
	assert_int_equal(usbip_devlist_reply_head_encode(0, USBIP_MAX_DEVICES, buf, sizeof(buf)),
			 12);
	assert_int_equal(usbip_device_record_encode(&dev, buf, 311), USBIP_E_NOSPACE);
	assert_int_equal(usbip_interface_record_encode(&iface, buf, 3), USBIP_E_NOSPACE);
	assert_int_equal(usbip_import_request_encode("1-2", buf, 39), USBIP_E_NOSPACE);
	assert_int_equal(usbip_import_request_encode("", buf, sizeof(buf)), USBIP_E_BUSID);
	assert_int_equal(usbip_import_request_encode("0123456789012345678901234567890123", buf,
						     sizeof(buf)), USBIP_E_BUSID);
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_OK, &dev, buf, 319), USBIP_E_NOSPACE);
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_OK, NULL, buf, sizeof(buf)),
			 USBIP_E_BUSID);
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_NODEV, NULL, buf, 7), USBIP_E_NOSPACE);

	/* Strings filling their whole field leave no room for the NUL. */
	memset(dev.path, 'p', sizeof(dev.path));
	assert_int_equal(usbip_device_record_encode(&dev, buf, sizeof(buf)), USBIP_E_PATH);
	dev = sample_device();
	memset(dev.busid, 'b', sizeof(dev.busid));
	assert_int_equal(usbip_device_record_encode(&dev, buf, sizeof(buf)), USBIP_E_BUSID);
	dev.busid[0] = '\0';
	assert_int_equal(usbip_device_record_encode(&dev, buf, sizeof(buf)), USBIP_E_BUSID);
	dev = sample_device();
	dev.bNumInterfaces = USBIP_MAX_INTERFACES + 1;
	assert_int_equal(usbip_device_record_encode(&dev, buf, sizeof(buf)), USBIP_E_NINTERFACES);
	assert_int_equal(usbip_import_reply_encode(USBIP_ST_OK, &dev, buf, sizeof(buf)),
			 USBIP_E_NINTERFACES);

	assert_int_equal(usbip_header_decode(cmd_submit_get_desc, 48, &h), USBIP_OK);
	assert_int_equal(usbip_header_encode(&h, buf, 47), USBIP_E_NOSPACE);
	h.command = 0;
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_E_COMMAND);
	h.command = USBIP_CMD_SUBMIT;
	h.direction = 2;
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_E_DIRECTION);
	h.direction = USBIP_DIR_IN;
	h.ep = 16;
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_E_ENDPOINT);
	h.ep = 0;
	h.u.cmd_submit.transfer_buffer_length = USBIP_MAX_TRANSFER_LENGTH + 1;
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_E_LENGTH);
	h.u.cmd_submit.transfer_buffer_length = 0;
	h.u.cmd_submit.number_of_packets = USBIP_MAX_ISO_PACKETS + 1;
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_E_NPACKETS);
}

/* Every error code is produced by at least one case above, or below for
 * NOSPACE which only encoders return. */
static void test_every_error_has_a_case(void **state)
{
	(void)state;
	int seen[18] = { 0 };

	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		assert_true(malformed[i].expect < 0 && malformed[i].expect >= -17);
		seen[-malformed[i].expect] = 1;
	}
	seen[-USBIP_E_NOSPACE] = 1; /* test_encoder_errors */
	for (int e = 1; e <= 17; e++) {
		if (!seen[e])
			fail_msg("error %d (%s) has no malformed case", -e, usbip_codec_strerror(-e));
	}
}

static void test_strerror_distinct(void **state)
{
	(void)state;
	const char *unknown = usbip_codec_strerror(-1000);

	assert_non_null(unknown);
	assert_string_equal(usbip_codec_strerror(1), unknown);
	for (int a = 0; a >= -17; a--) {
		const char *sa = usbip_codec_strerror(a);

		assert_non_null(sa);
		assert_true(sa[0] != '\0');
		assert_string_not_equal(sa, unknown);
		for (int b = a - 1; b >= -17; b--)
			assert_string_not_equal(sa, usbip_codec_strerror(b));
	}
	assert_string_equal(usbip_codec_strerror(USBIP_E_ISO_RANGE),
			    "iso packet outside the transfer buffer");
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(usbip_speed_name(USBIP_SPEED_HIGH), "high");
	assert_string_equal(usbip_speed_name(USBIP_SPEED_SUPER), "super");
	assert_string_equal(usbip_speed_name(USBIP_SPEED_SUPER_PLUS), "super-plus");
	assert_string_equal(usbip_speed_name(7), "invalid");
	assert_string_equal(usbip_op_status_name(USBIP_ST_OK), "ok");
	assert_string_equal(usbip_op_status_name(USBIP_ST_DEV_BUSY), "device busy");
	assert_string_equal(usbip_op_status_name(USBIP_ST_NODEV), "no such device");
	assert_string_equal(usbip_op_status_name(6), "unknown status");
	/* Distinct names for every known value. */
	for (uint32_t a = 0; a <= 6; a++)
		for (uint32_t b = a + 1; b <= 6; b++)
			assert_string_not_equal(usbip_speed_name(a), usbip_speed_name(b));
	for (uint32_t a = 0; a <= 5; a++)
		for (uint32_t b = a + 1; b <= 5; b++)
			assert_string_not_equal(usbip_op_status_name(a), usbip_op_status_name(b));
}

static void test_linux_errno_name(void **state)
{
	(void)state;
	assert_string_equal(linux_errno_name(-32), "EPIPE");
	assert_string_equal(linux_errno_name(32), "EPIPE");
	assert_string_equal(linux_errno_name(-LNX_ECONNRESET), "ECONNRESET");
	assert_string_equal(linux_errno_name(-104), "ECONNRESET");
	assert_string_equal(linux_errno_name(-108), "ESHUTDOWN");
	assert_string_equal(linux_errno_name(-18), "EXDEV");
	assert_string_equal(linux_errno_name(-121), "EREMOTEIO");
	assert_string_equal(linux_errno_name(54), "E?"); /* macOS's ECONNRESET */
	assert_string_equal(linux_errno_name(0), "E?");
	assert_string_equal(linux_errno_name(-2147483647 - 1), "E?");
}

static void test_devid(void **state)
{
	(void)state;
	assert_int_equal(usbip_devid(1, 3), 0x00010003);
	assert_int_equal(usbip_devid(0x12, 0x1ff), 0x001201ff);
	assert_int_equal(usbip_iso_count(USBIP_NO_ISO_PACKETS), 0);
	assert_int_equal(usbip_iso_count(0), 0);
	assert_int_equal(usbip_iso_count(3), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devlist_request),
		cmocka_unit_test(test_op_codes_accepted),
		cmocka_unit_test(test_devlist_reply_encode),
		cmocka_unit_test(test_devlist_reply_decode),
		cmocka_unit_test(test_devlist_reply_callback_stops),
		cmocka_unit_test(test_devlist_reply_empty),
		cmocka_unit_test(test_devlist_reply_validates_before_callback),
		cmocka_unit_test(test_device_record_decode_ignores_bytes_after_nul),
		cmocka_unit_test(test_import_request),
		cmocka_unit_test(test_import_reply),
		cmocka_unit_test(test_cmd_submit_get_descriptor),
		cmocka_unit_test(test_ret_submit_get_descriptor),
		cmocka_unit_test(test_cmd_submit_bulk_out_payload),
		cmocka_unit_test(test_unlink),
		cmocka_unit_test(test_iso_ret_submit_vector),
		cmocka_unit_test(test_malformed_table),
		cmocka_unit_test(test_encoder_errors),
		cmocka_unit_test(test_every_error_has_a_case),
		cmocka_unit_test(test_strerror_distinct),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_linux_errno_name),
		cmocka_unit_test(test_devid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
