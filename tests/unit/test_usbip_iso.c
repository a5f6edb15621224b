/* USB/IP isochronous descriptors: wire form, validation of both directions
 * (with the 32-bit overflow traps) and IN data compaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/bytes.h"
#include "proto/linux_errno.h"
#include "proto/usbip_codec.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* CMD_SUBMIT of an isochronous OUT URB on ep 3: two packets of 3 bytes in a
 * 6-byte buffer. The whole buffer follows the header, then the descriptors. */
static const uint8_t iso_out_submit[] = {
	0x00, 0x00, 0x00, 0x01, /*  0: command CMD_SUBMIT */
	0x00, 0x00, 0x00, 0x2a, /*  4: seqnum 42 */
	0x00, 0x02, 0x00, 0x05, /*  8: devid bus 2 dev 5 */
	0x00, 0x00, 0x00, 0x00, /* 12: direction OUT */
	0x00, 0x00, 0x00, 0x03, /* 16: ep 3 */
	0x00, 0x00, 0x00, 0x02, /* 20: transfer_flags URB_ISO_ASAP */
	0x00, 0x00, 0x00, 0x06, /* 24: transfer_buffer_length 6 */
	0xff, 0xff, 0xff, 0xff, /* 28: start_frame -1 */
	0x00, 0x00, 0x00, 0x02, /* 32: number_of_packets 2 */
	0x00, 0x00, 0x00, 0x01, /* 36: interval 1 */
	0, 0, 0, 0, 0, 0, 0, 0, /* 40: setup, unused */
	/* 48: the OUT data, uncompacted */
	0x11, 0x12, 0x13, 0x21, 0x22, 0x23,
	/* 54: descriptor 0: offset 0, length 3, actual 0, status 0 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 70: descriptor 1: offset 3, length 3, actual 0, status 0 */
	0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x03,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 86: end */
};

static void test_iso_out_submit_vector(void **state)
{
	(void)state;
	struct usbip_header h;
	struct usbip_iso_desc d[2];
	uint8_t buf[sizeof(iso_out_submit)];

	assert_int_equal(usbip_header_decode(iso_out_submit, sizeof(iso_out_submit), &h), USBIP_OK);
	assert_int_equal(h.command, USBIP_CMD_SUBMIT);
	assert_int_equal(h.seqnum, 42);
	assert_int_equal(h.devid, usbip_devid(2, 5));
	assert_int_equal(h.direction, USBIP_DIR_OUT);
	assert_int_equal(h.ep, 3);
	assert_int_equal(h.u.cmd_submit.transfer_flags, USBIP_URB_ISO_ASAP);
	assert_int_equal(h.u.cmd_submit.start_frame, -1);
	assert_int_equal(h.u.cmd_submit.interval, 1);
	assert_int_equal(usbip_cmd_submit_payload_size(&h), 6 + 2 * 16);
	assert_int_equal(USBIP_HEADER_SIZE + usbip_cmd_submit_payload_size(&h),
			 sizeof(iso_out_submit));

	assert_int_equal(usbip_iso_descs_decode(iso_out_submit + 54, 32, 2, d), USBIP_OK);
	assert_int_equal(d[0].offset, 0);
	assert_int_equal(d[0].length, 3);
	assert_int_equal(d[1].offset, 3);
	assert_int_equal(d[1].length, 3);
	assert_int_equal(d[1].actual_length, 0);
	assert_int_equal(d[1].status, 0);
	assert_int_equal(usbip_iso_validate_submit(d, 2, h.u.cmd_submit.transfer_buffer_length),
			 USBIP_OK);

	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(usbip_header_encode(&h, buf, sizeof(buf)), USBIP_HEADER_SIZE);
	memcpy(buf + 48, iso_out_submit + 48, 6);
	assert_int_equal(usbip_iso_descs_encode(d, 2, buf + 54, sizeof(buf) - 54), 32);
	assert_memory_equal(buf, iso_out_submit, sizeof(iso_out_submit));
}

static void test_descs_signed_status(void **state)
{
	(void)state;
	const struct usbip_iso_desc in = {
		.offset = 0x01020304, .length = 0x05060708, .actual_length = 0x090a0b0c,
		.status = -LNX_EXDEV,
	};
	static const uint8_t want[16] = {
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x09, 0x0a, 0x0b, 0x0c, 0xff, 0xff, 0xff, 0xee, /* -18 */
	};
	uint8_t buf[16];
	struct usbip_iso_desc out;

	assert_int_equal(usbip_iso_descs_encode(&in, 1, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(usbip_iso_descs_decode(want, sizeof(want), 1, &out), USBIP_OK);
	assert_int_equal(out.offset, in.offset);
	assert_int_equal(out.length, in.length);
	assert_int_equal(out.actual_length, in.actual_length);
	assert_int_equal(out.status, -18);
}

static void test_descs_bounds(void **state)
{
	(void)state;
	static struct usbip_iso_desc d[USBIP_MAX_ISO_PACKETS + 1];
	static uint8_t buf[(USBIP_MAX_ISO_PACKETS + 1) * USBIP_ISO_DESC_SIZE];

	assert_int_equal(usbip_iso_descs_decode(buf, 31, 2, d), USBIP_E_SHORT);
	assert_int_equal(usbip_iso_descs_encode(d, 2, buf, 31), USBIP_E_NOSPACE);
	assert_int_equal(usbip_iso_descs_decode(buf, 0, 0, d), USBIP_OK);
	assert_int_equal(usbip_iso_descs_encode(d, 0, buf, 0), 0);
	assert_int_equal(usbip_iso_descs_decode(buf, sizeof(buf), USBIP_MAX_ISO_PACKETS, d),
			 USBIP_OK);
	assert_int_equal(usbip_iso_descs_decode(buf, sizeof(buf), USBIP_MAX_ISO_PACKETS + 1, d),
			 USBIP_E_NPACKETS);
	assert_int_equal(usbip_iso_descs_encode(d, USBIP_MAX_ISO_PACKETS + 1, buf, sizeof(buf)),
			 USBIP_E_NPACKETS);
	/* The count is checked before count * 16 is formed. */
	assert_int_equal(usbip_iso_descs_decode(buf, sizeof(buf), 0x10000001u, d),
			 USBIP_E_NPACKETS);
	assert_int_equal(usbip_iso_validate_submit(d, USBIP_MAX_ISO_PACKETS + 1, 0),
			 USBIP_E_NPACKETS);
	assert_int_equal(usbip_iso_validate_ret(d, USBIP_MAX_ISO_PACKETS + 1, 0, 0),
			 USBIP_E_NPACKETS);
}

/* ---- Validation tables ------------------------------------------------- */

struct iso_case {
	const char *name;
	struct usbip_iso_desc d[3];
	uint32_t count;
	uint32_t buffer_length;
	uint32_t actual_length; /* RET side only */
	int expect;
};

#define PKT(o, l, a) { .offset = (o), .length = (l), .actual_length = (a), .status = 0 }

static const struct iso_case submit_cases[] = {
	{ "no packets", { PKT(0, 0, 0) }, 0, 0, 0, USBIP_OK },
	{ "packets filling the buffer", { PKT(0, 8, 0), PKT(8, 8, 0), PKT(16, 8, 0) }, 3, 24, 0,
	  USBIP_OK },
	{ "empty packet at the very end", { PKT(24, 0, 0) }, 1, 24, 0, USBIP_OK },
	{ "packets may overlap and leave gaps", { PKT(0, 8, 0), PKT(4, 8, 0), PKT(20, 4, 0) }, 3,
	  24, 0, USBIP_OK },
	{ "offset past the end", { PKT(0, 8, 0), PKT(25, 0, 0) }, 2, 24, 0, USBIP_E_ISO_RANGE },
	{ "end past the end by one", { PKT(16, 9, 0) }, 1, 24, 0, USBIP_E_ISO_RANGE },
	{ "length alone too big", { PKT(0, 25, 0) }, 1, 24, 0, USBIP_E_ISO_RANGE },
	/* 8 + 0xfffffffc wraps to 4 in 32 bits, which a naive check accepts. */
	{ "offset + length wraps", { PKT(8, 0xfffffffcu, 0) }, 1, 24, 0, USBIP_E_ISO_RANGE },
	{ "offset near 2^32", { PKT(0xfffffff0u, 0x20, 0) }, 1, 24, 0, USBIP_E_ISO_RANGE },
	{ "max offset and length", { PKT(0xffffffffu, 0xffffffffu, 0) }, 1, 0xffffffffu, 0,
	  USBIP_E_ISO_RANGE },
	{ "any packet in an empty buffer", { PKT(0, 1, 0) }, 1, 0, 0, USBIP_E_ISO_RANGE },
	{ "only the last packet bad", { PKT(0, 8, 0), PKT(8, 8, 0), PKT(16, 9, 0) }, 3, 24, 0,
	  USBIP_E_ISO_RANGE },
};

static const struct iso_case ret_cases[] = {
	{ "no packets, nothing received", { PKT(0, 0, 0) }, 0, 24, 0, USBIP_OK },
	{ "partial packets", { PKT(0, 8, 3), PKT(8, 8, 0), PKT(16, 8, 5) }, 3, 24, 8, USBIP_OK },
	{ "full packets", { PKT(0, 8, 8), PKT(8, 8, 8), PKT(16, 8, 8) }, 3, 24, 24, USBIP_OK },
	{ "no packets but data claimed", { PKT(0, 0, 0) }, 0, 24, 1, USBIP_E_ISO_SUM },
	{ "sum one short", { PKT(0, 8, 3), PKT(8, 8, 0), PKT(16, 8, 5) }, 3, 24, 9,
	  USBIP_E_ISO_SUM },
	{ "sum one over", { PKT(0, 8, 3), PKT(8, 8, 1), PKT(16, 8, 5) }, 3, 24, 8,
	  USBIP_E_ISO_SUM },
	/* 2 * 0x80000000 is 0 in 32 bits: the sum must be kept wider. */
	{ "sum wraps to 0 in 32 bits",
	  { PKT(0, 0x80000000u, 0x80000000u), PKT(0, 0x80000000u, 0x80000000u) }, 2,
	  0xffffffffu, 0, USBIP_E_ISO_SUM },
	{ "packet actual > length", { PKT(0, 8, 9) }, 1, 24, 9, USBIP_E_ACTUAL_LENGTH },
	{ "total actual > buffer", { PKT(0, 24, 24) }, 1, 24, 25, USBIP_E_ACTUAL_LENGTH },
	{ "packet outside the buffer", { PKT(0, 8, 8), PKT(20, 8, 0) }, 2, 24, 8,
	  USBIP_E_ISO_RANGE },
	{ "offset + length wraps", { PKT(8, 0xfffffffcu, 0) }, 1, 24, 0, USBIP_E_ISO_RANGE },
	{ "range is checked before actual", { PKT(20, 8, 9) }, 1, 24, 9, USBIP_E_ISO_RANGE },
};

static void test_validate_submit_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(submit_cases); i++) {
		const struct iso_case *c = &submit_cases[i];
		int rc = usbip_iso_validate_submit(c->d, c->count, c->buffer_length);

		if (rc != c->expect)
			fail_msg("submit case \"%s\": got %d (%s), want %d", c->name, rc,
				 usbip_codec_strerror(rc), c->expect);
	}
}

static void test_validate_ret_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(ret_cases); i++) {
		const struct iso_case *c = &ret_cases[i];
		int rc = usbip_iso_validate_ret(c->d, c->count, c->buffer_length, c->actual_length);

		if (rc != c->expect)
			fail_msg("ret case \"%s\": got %d (%s), want %d", c->name, rc,
				 usbip_codec_strerror(rc), c->expect);
	}
}

/* The descriptors travel through the wire form unchanged, so the tables
 * also hold for decoded descriptors. */
static void test_validate_after_wire_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(ret_cases); i++) {
		const struct iso_case *c = &ret_cases[i];
		uint8_t wire[3 * USBIP_ISO_DESC_SIZE];
		struct usbip_iso_desc back[3];

		assert_int_equal(usbip_iso_descs_encode(c->d, c->count, wire, sizeof(wire)),
				 (int)(c->count * USBIP_ISO_DESC_SIZE));
		assert_int_equal(usbip_iso_descs_decode(wire, c->count * USBIP_ISO_DESC_SIZE,
							c->count, back), USBIP_OK);
		assert_int_equal(usbip_iso_validate_ret(back, c->count, c->buffer_length,
							c->actual_length), c->expect);
	}
}

/* ---- Compaction -------------------------------------------------------- */

static void test_compact_expand(void **state)
{
	(void)state;
	/* Packets in any order of offsets, with an empty one and gaps. */
	const struct usbip_iso_desc d[3] = {
		PKT(16, 8, 4),
		PKT(0, 8, 0),
		PKT(8, 8, 8),
	};
	uint8_t buf[24];
	uint8_t out[12 + 1];
	uint8_t back[24];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(0x40 + i);
	assert_int_equal(usbip_iso_validate_ret(d, 3, sizeof(buf), 12), USBIP_OK);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(usbip_iso_compact(buf, d, 3, out), 12);
	/* Packet order, not offset order: packet 0 (offset 16) first. */
	static const uint8_t want[12] = {
		0x50, 0x51, 0x52, 0x53,
		0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
	};
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(out[12], 0xee); /* nothing written past the sum */

	memset(back, 0, sizeof(back));
	usbip_iso_expand(out, d, 3, back);
	for (size_t i = 0; i < sizeof(back); i++) {
		int received = (i >= 8 && i < 16) || (i >= 16 && i < 20);

		assert_int_equal(back[i], received ? buf[i] : 0);
	}
}

static void test_compact_nothing_received(void **state)
{
	(void)state;
	const struct usbip_iso_desc d[2] = { PKT(0, 8, 0), PKT(8, 8, 0) };
	uint8_t buf[16] = { 0 };

	/* With no bytes to move neither buffer is touched, so NULL is fine. */
	assert_int_equal(usbip_iso_compact(buf, d, 2, NULL), 0);
	usbip_iso_expand(NULL, d, 2, buf);
	assert_int_equal(usbip_iso_compact(NULL, d, 0, NULL), 0);
}

static void test_compact_max_packets(void **state)
{
	(void)state;
	static struct usbip_iso_desc d[USBIP_MAX_ISO_PACKETS];
	static uint8_t buf[USBIP_MAX_ISO_PACKETS * 4];
	static uint8_t out[USBIP_MAX_ISO_PACKETS * 4];
	static uint8_t back[USBIP_MAX_ISO_PACKETS * 4];
	uint32_t total = 0;

	for (uint32_t i = 0; i < USBIP_MAX_ISO_PACKETS; i++) {
		d[i] = (struct usbip_iso_desc)PKT(i * 4, 4, i % 5 == 0 ? 0 : i % 4 + 1);
		total += d[i].actual_length;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(usbip_iso_validate_ret(d, USBIP_MAX_ISO_PACKETS, sizeof(buf), total),
			 USBIP_OK);
	assert_int_equal(usbip_iso_compact(buf, d, USBIP_MAX_ISO_PACKETS, out), total);
	memset(back, 0, sizeof(back));
	usbip_iso_expand(out, d, USBIP_MAX_ISO_PACKETS, back);
	for (uint32_t i = 0; i < USBIP_MAX_ISO_PACKETS; i++) {
		assert_memory_equal(back + d[i].offset, buf + d[i].offset, d[i].actual_length);
		for (uint32_t j = d[i].actual_length; j < 4; j++)
			assert_int_equal(back[d[i].offset + j], 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso_out_submit_vector),
		cmocka_unit_test(test_descs_signed_status),
		cmocka_unit_test(test_descs_bounds),
		cmocka_unit_test(test_validate_submit_table),
		cmocka_unit_test(test_validate_ret_table),
		cmocka_unit_test(test_validate_after_wire_round_trip),
		cmocka_unit_test(test_compact_expand),
		cmocka_unit_test(test_compact_nothing_received),
		cmocka_unit_test(test_compact_max_packets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
