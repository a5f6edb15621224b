/* libFuzzer target: USB/IP operation messages (the op header, OP_REQ_IMPORT
 * and a whole OP_REP_DEVLIST) as a server or client reads them off the wire.
 *
 * Every input goes through each decoder. Whatever decodes must encode back
 * to the input, apart from the bytes the format leaves free: string fields
 * after their NUL, interface padding, and the status of a request (which the
 * import decoder does not report). Those are zeroed in a copy of the input
 * before comparing. A mismatch traps, so libFuzzer records the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/usbip_codec.h"

#define DEV_PATH_AT 0
#define DEV_BUSID_AT USBIP_PATH_SIZE
#define DEV_NIFACES_AT (USBIP_DEVICE_RECORD_SIZE - 1)
#define DEVLIST_HEAD_SIZE (USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE)

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

/* Zeroes a fixed string field after its NUL (the field holds one: the
 * decoder checked). */
static void canon_field(uint8_t *p, size_t size)
{
	uint8_t *nul = memchr(p, 0, size);

	check(nul != NULL);
	memset(nul, 0, size - (size_t)(nul - p));
}

static void canon_device_record(uint8_t *rec)
{
	canon_field(rec + DEV_PATH_AT, USBIP_PATH_SIZE);
	canon_field(rec + DEV_BUSID_AT, USBIP_BUSID_SIZE);
}

static void fuzz_op_common(const uint8_t *data, size_t size)
{
	struct usbip_op_common op;
	uint8_t out[USBIP_OP_COMMON_SIZE];

	if (usbip_op_common_decode(data, size, &op) != USBIP_OK)
		return;
	check(op.version == USBIP_VERSION);
	check(usbip_op_common_encode(&op, out, sizeof(out)) == USBIP_OP_COMMON_SIZE);
	check(memcmp(out, data, sizeof(out)) == 0);
}

static void fuzz_device_record(const uint8_t *data, size_t size)
{
	struct usbip_device_record dev;
	uint8_t canon[USBIP_DEVICE_RECORD_SIZE];
	uint8_t out[USBIP_DEVICE_RECORD_SIZE];

	if (usbip_device_record_decode(data, size, &dev) != USBIP_OK)
		return;
	check(dev.busid[0] != '\0');
	check(dev.bNumInterfaces <= USBIP_MAX_INTERFACES);
	check(usbip_device_record_encode(&dev, out, sizeof(out)) == USBIP_DEVICE_RECORD_SIZE);
	memcpy(canon, data, sizeof(canon));
	canon_device_record(canon);
	check(memcmp(out, canon, sizeof(out)) == 0);
}

static void fuzz_import_request(const uint8_t *data, size_t size)
{
	char busid[USBIP_BUSID_SIZE];
	uint8_t canon[USBIP_IMPORT_REQUEST_SIZE];
	uint8_t out[USBIP_IMPORT_REQUEST_SIZE];

	if (usbip_import_request_decode(data, size, busid) != USBIP_OK)
		return;
	check(usbip_import_request_encode(busid, out, sizeof(out)) == USBIP_IMPORT_REQUEST_SIZE);
	memcpy(canon, data, sizeof(canon));
	memset(canon + 4, 0, 4); /* status: not reported, sent as 0 */
	canon_field(canon + USBIP_OP_COMMON_SIZE, USBIP_BUSID_SIZE);
	check(memcmp(out, canon, sizeof(out)) == 0);
}

struct reencode {
	uint8_t *out;
	size_t len;
	size_t cap;
	uint32_t devices;
};

static int reencode_device(void *ctx, const struct usbip_device_record *dev,
			   const struct usbip_interface_record *ifaces)
{
	struct reencode *r = ctx;
	int rc = usbip_device_record_encode(dev, r->out + r->len, r->cap - r->len);

	check(rc == USBIP_DEVICE_RECORD_SIZE);
	r->len += (size_t)rc;
	for (unsigned i = 0; i < dev->bNumInterfaces; i++) {
		rc = usbip_interface_record_encode(&ifaces[i], r->out + r->len, r->cap - r->len);
		check(rc == USBIP_INTERFACE_RECORD_SIZE);
		r->len += (size_t)rc;
	}
	r->devices++;
	return 0;
}

static void fuzz_devlist_reply(const uint8_t *data, size_t size)
{
	struct usbip_op_common op;
	uint32_t ndevices;

	if (usbip_devlist_reply_head_decode(data, size, &op, &ndevices) != USBIP_OK)
		return;
	check(ndevices <= USBIP_MAX_DEVICES);
	check(op.code == USBIP_OP_REP_DEVLIST);

	int rc = usbip_devlist_reply_decode(data, size, NULL, NULL);
	if (rc != USBIP_OK)
		return;

	/* Canonical copy of the input: walk the layout the decoder accepted. */
	uint8_t *canon = malloc(size);
	uint8_t *out = malloc(size);
	check(canon && out);
	memcpy(canon, data, size);
	size_t at = DEVLIST_HEAD_SIZE;
	for (uint32_t i = 0; i < ndevices; i++) {
		check(size - at >= USBIP_DEVICE_RECORD_SIZE);
		canon_device_record(canon + at);
		unsigned nifaces = canon[at + DEV_NIFACES_AT];
		at += USBIP_DEVICE_RECORD_SIZE;
		for (unsigned j = 0; j < nifaces; j++, at += USBIP_INTERFACE_RECORD_SIZE) {
			check(size - at >= USBIP_INTERFACE_RECORD_SIZE);
			canon[at + 3] = 0; /* padding */
		}
	}
	check(at == size);

	struct reencode r = { .out = out, .cap = size };
	rc = usbip_devlist_reply_head_encode(op.status, ndevices, out, size);
	check(rc == DEVLIST_HEAD_SIZE);
	r.len = (size_t)rc;
	check(usbip_devlist_reply_decode(data, size, reencode_device, &r) == USBIP_OK);
	check(r.devices == ndevices);
	check(r.len == size);
	check(memcmp(out, canon, size) == 0);
	free(out);
	free(canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_op_common(data, size);
	fuzz_import_request(data, size);
	fuzz_devlist_reply(data, size);
	/* The record alone, as it follows an OP_REP_IMPORT header. */
	if (size >= USBIP_OP_COMMON_SIZE)
		fuzz_device_record(data + USBIP_OP_COMMON_SIZE, size - USBIP_OP_COMMON_SIZE);
	return 0;
}
