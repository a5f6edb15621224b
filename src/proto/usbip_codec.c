/* USB/IP operation messages, device records and URB headers.
 *
 * Layout offsets below are byte offsets into the message as documented in
 * shared/docs/PROTOCOL.md. Decoders and encoders share one validation
 * function per message, so we never send what we would refuse to read. */
#include "proto/usbip_codec.h"

#include <string.h>

#include "proto/bytes.h"

/* Op header. */
#define OP_VERSION_AT 0
#define OP_CODE_AT 2
#define OP_STATUS_AT 4

/* Device record. */
#define DEV_PATH_AT 0
#define DEV_BUSID_AT (DEV_PATH_AT + USBIP_PATH_SIZE)
#define DEV_BUSNUM_AT (DEV_BUSID_AT + USBIP_BUSID_SIZE)
#define DEV_DEVNUM_AT (DEV_BUSNUM_AT + 4)
#define DEV_SPEED_AT (DEV_DEVNUM_AT + 4)
#define DEV_VENDOR_AT (DEV_SPEED_AT + 4)
#define DEV_PRODUCT_AT (DEV_VENDOR_AT + 2)
#define DEV_BCD_AT (DEV_PRODUCT_AT + 2)
#define DEV_CLASS_AT (DEV_BCD_AT + 2)
#define DEV_SUBCLASS_AT (DEV_CLASS_AT + 1)
#define DEV_PROTOCOL_AT (DEV_SUBCLASS_AT + 1)
#define DEV_CONFIG_AT (DEV_PROTOCOL_AT + 1)
#define DEV_NCONFIGS_AT (DEV_CONFIG_AT + 1)
#define DEV_NIFACES_AT (DEV_NCONFIGS_AT + 1)

_Static_assert(DEV_NIFACES_AT + 1 == USBIP_DEVICE_RECORD_SIZE, "device record layout");

/* URB header: the basic part, then one of four command-specific parts. */
#define HDR_COMMAND_AT 0
#define HDR_SEQNUM_AT 4
#define HDR_DEVID_AT 8
#define HDR_DIRECTION_AT 12
#define HDR_EP_AT 16
#define HDR_U_AT 20
#define HDR_SETUP_AT 40 /* CMD_SUBMIT's setup, RET_SUBMIT's 8 padding bytes */

#define USBIP_MAX_EP 15u

_Static_assert(HDR_SETUP_AT + USBIP_SETUP_SIZE == USBIP_HEADER_SIZE, "URB header layout");

const char *usbip_codec_strerror(int err)
{
	switch (err) {
	case USBIP_OK: return "success";
	case USBIP_E_SHORT: return "buffer ends before the message does";
	case USBIP_E_NOSPACE: return "output buffer too small";
	case USBIP_E_VERSION: return "unsupported protocol version";
	case USBIP_E_OP_CODE: return "unknown or unexpected op code";
	case USBIP_E_COMMAND: return "unknown URB command";
	case USBIP_E_DIRECTION: return "direction is neither out nor in";
	case USBIP_E_ENDPOINT: return "endpoint number above 15";
	case USBIP_E_LENGTH: return "transfer length negative or too large";
	case USBIP_E_NPACKETS: return "too many iso packets";
	case USBIP_E_ISO_RANGE: return "iso packet outside the transfer buffer";
	case USBIP_E_ISO_SUM: return "iso actual lengths do not add up";
	case USBIP_E_BUSID: return "busid empty or not NUL-terminated";
	case USBIP_E_PATH: return "path not NUL-terminated";
	case USBIP_E_NDEVICES: return "too many devices";
	case USBIP_E_NINTERFACES: return "too many interfaces";
	case USBIP_E_ACTUAL_LENGTH: return "actual length beyond the buffer";
	case USBIP_E_TRAILING: return "bytes left after a complete message";
	default: return "unknown codec error";
	}
}

const char *usbip_speed_name(uint32_t speed)
{
	switch (speed) {
	case USBIP_SPEED_UNKNOWN: return "unknown";
	case USBIP_SPEED_LOW: return "low";
	case USBIP_SPEED_FULL: return "full";
	case USBIP_SPEED_HIGH: return "high";
	case USBIP_SPEED_WIRELESS: return "wireless";
	case USBIP_SPEED_SUPER: return "super";
	case USBIP_SPEED_SUPER_PLUS: return "super-plus";
	default: return "invalid";
	}
}

const char *usbip_op_status_name(uint32_t status)
{
	switch (status) {
	case USBIP_ST_OK: return "ok";
	case USBIP_ST_NA: return "not available";
	case USBIP_ST_DEV_BUSY: return "device busy";
	case USBIP_ST_DEV_ERR: return "device error";
	case USBIP_ST_NODEV: return "no such device";
	case USBIP_ST_ERROR: return "error";
	default: return "unknown status";
	}
}

/* ---- Operation messages ------------------------------------------------ */

static int op_code_known(uint16_t code)
{
	return code == USBIP_OP_REQ_DEVLIST || code == USBIP_OP_REP_DEVLIST ||
	       code == USBIP_OP_REQ_IMPORT || code == USBIP_OP_REP_IMPORT;
}

int usbip_op_common_decode(const uint8_t *p, size_t n, struct usbip_op_common *out)
{
	if (n < USBIP_OP_COMMON_SIZE)
		return USBIP_E_SHORT;
	uint16_t version = get_be16(p + OP_VERSION_AT);
	uint16_t code = get_be16(p + OP_CODE_AT);
	if (version != USBIP_VERSION)
		return USBIP_E_VERSION;
	if (!op_code_known(code))
		return USBIP_E_OP_CODE;
	out->version = version;
	out->code = code;
	out->status = get_be32(p + OP_STATUS_AT);
	return USBIP_OK;
}

int usbip_op_common_encode(const struct usbip_op_common *in, uint8_t *p, size_t n)
{
	if (n < USBIP_OP_COMMON_SIZE)
		return USBIP_E_NOSPACE;
	put_be16(p + OP_VERSION_AT, in->version);
	put_be16(p + OP_CODE_AT, in->code);
	put_be32(p + OP_STATUS_AT, in->status);
	return USBIP_OP_COMMON_SIZE;
}

static int op_encode(uint16_t code, uint32_t status, uint8_t *p, size_t n)
{
	struct usbip_op_common op = { .version = USBIP_VERSION, .code = code, .status = status };

	return usbip_op_common_encode(&op, p, n);
}

/* A fixed-size string field is valid when it holds a NUL; a busid must also
 * be non-empty. Returns the string length, or -1. */
static int field_strlen(const uint8_t *p, size_t size)
{
	const uint8_t *nul = memchr(p, 0, size);

	return nul ? (int)(nul - p) : -1;
}

static int busid_field_check(const uint8_t *p)
{
	return field_strlen(p, USBIP_BUSID_SIZE) > 0 ? USBIP_OK : USBIP_E_BUSID;
}

/* Copies a checked string field and zeroes the rest, so the decoded struct
 * does not depend on the bytes after the NUL. */
static void field_copy(char *dst, const uint8_t *src, size_t size)
{
	size_t len = (size_t)field_strlen(src, size);

	memcpy(dst, src, len);
	memset(dst + len, 0, size - len);
}

/* Writes a string into a fixed field, zero padded; it must fit with its NUL. */
static int field_put(uint8_t *dst, const char *s, size_t size)
{
	size_t len = strnlen(s, size);

	if (len == size)
		return -1;
	memcpy(dst, s, len);
	memset(dst + len, 0, size - len);
	return (int)len;
}

int usbip_device_record_decode(const uint8_t *p, size_t n, struct usbip_device_record *out)
{
	if (n < USBIP_DEVICE_RECORD_SIZE)
		return USBIP_E_SHORT;
	if (field_strlen(p + DEV_PATH_AT, USBIP_PATH_SIZE) < 0)
		return USBIP_E_PATH;
	if (busid_field_check(p + DEV_BUSID_AT) != USBIP_OK)
		return USBIP_E_BUSID;
	if (p[DEV_NIFACES_AT] > USBIP_MAX_INTERFACES)
		return USBIP_E_NINTERFACES;

	field_copy(out->path, p + DEV_PATH_AT, USBIP_PATH_SIZE);
	field_copy(out->busid, p + DEV_BUSID_AT, USBIP_BUSID_SIZE);
	out->busnum = get_be32(p + DEV_BUSNUM_AT);
	out->devnum = get_be32(p + DEV_DEVNUM_AT);
	out->speed = get_be32(p + DEV_SPEED_AT);
	out->idVendor = get_be16(p + DEV_VENDOR_AT);
	out->idProduct = get_be16(p + DEV_PRODUCT_AT);
	out->bcdDevice = get_be16(p + DEV_BCD_AT);
	out->bDeviceClass = p[DEV_CLASS_AT];
	out->bDeviceSubClass = p[DEV_SUBCLASS_AT];
	out->bDeviceProtocol = p[DEV_PROTOCOL_AT];
	out->bConfigurationValue = p[DEV_CONFIG_AT];
	out->bNumConfigurations = p[DEV_NCONFIGS_AT];
	out->bNumInterfaces = p[DEV_NIFACES_AT];
	return USBIP_OK;
}

int usbip_device_record_encode(const struct usbip_device_record *in, uint8_t *p, size_t n)
{
	if (n < USBIP_DEVICE_RECORD_SIZE)
		return USBIP_E_NOSPACE;
	/* Check everything before writing, so a refused record leaves p alone. */
	if (strnlen(in->path, USBIP_PATH_SIZE) == USBIP_PATH_SIZE)
		return USBIP_E_PATH;
	size_t busid_len = strnlen(in->busid, USBIP_BUSID_SIZE);
	if (busid_len == 0 || busid_len == USBIP_BUSID_SIZE)
		return USBIP_E_BUSID;
	if (in->bNumInterfaces > USBIP_MAX_INTERFACES)
		return USBIP_E_NINTERFACES;

	field_put(p + DEV_PATH_AT, in->path, USBIP_PATH_SIZE);
	field_put(p + DEV_BUSID_AT, in->busid, USBIP_BUSID_SIZE);
	put_be32(p + DEV_BUSNUM_AT, in->busnum);
	put_be32(p + DEV_DEVNUM_AT, in->devnum);
	put_be32(p + DEV_SPEED_AT, in->speed);
	put_be16(p + DEV_VENDOR_AT, in->idVendor);
	put_be16(p + DEV_PRODUCT_AT, in->idProduct);
	put_be16(p + DEV_BCD_AT, in->bcdDevice);
	p[DEV_CLASS_AT] = in->bDeviceClass;
	p[DEV_SUBCLASS_AT] = in->bDeviceSubClass;
	p[DEV_PROTOCOL_AT] = in->bDeviceProtocol;
	p[DEV_CONFIG_AT] = in->bConfigurationValue;
	p[DEV_NCONFIGS_AT] = in->bNumConfigurations;
	p[DEV_NIFACES_AT] = in->bNumInterfaces;
	return USBIP_DEVICE_RECORD_SIZE;
}

int usbip_interface_record_decode(const uint8_t *p, size_t n, struct usbip_interface_record *out)
{
	if (n < USBIP_INTERFACE_RECORD_SIZE)
		return USBIP_E_SHORT;
	out->bInterfaceClass = p[0];
	out->bInterfaceSubClass = p[1];
	out->bInterfaceProtocol = p[2];
	/* p[3] is padding. */
	return USBIP_OK;
}

int usbip_interface_record_encode(const struct usbip_interface_record *in, uint8_t *p, size_t n)
{
	if (n < USBIP_INTERFACE_RECORD_SIZE)
		return USBIP_E_NOSPACE;
	p[0] = in->bInterfaceClass;
	p[1] = in->bInterfaceSubClass;
	p[2] = in->bInterfaceProtocol;
	p[3] = 0;
	return USBIP_INTERFACE_RECORD_SIZE;
}

int usbip_devlist_request_encode(uint8_t *p, size_t n)
{
	return op_encode(USBIP_OP_REQ_DEVLIST, 0, p, n);
}

int usbip_devlist_reply_head_encode(uint32_t status, uint32_t ndevices, uint8_t *p, size_t n)
{
	if (ndevices > USBIP_MAX_DEVICES)
		return USBIP_E_NDEVICES;
	if (n < USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE)
		return USBIP_E_NOSPACE;
	op_encode(USBIP_OP_REP_DEVLIST, status, p, n);
	put_be32(p + USBIP_OP_COMMON_SIZE, ndevices);
	return USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE;
}

int usbip_devlist_reply_head_decode(const uint8_t *p, size_t n, struct usbip_op_common *op,
				    uint32_t *ndevices)
{
	struct usbip_op_common hdr;
	int rc = usbip_op_common_decode(p, n, &hdr);

	if (rc != USBIP_OK)
		return rc;
	if (hdr.code != USBIP_OP_REP_DEVLIST)
		return USBIP_E_OP_CODE;
	if (n < USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE)
		return USBIP_E_SHORT;
	uint32_t count = get_be32(p + USBIP_OP_COMMON_SIZE);
	if (count > USBIP_MAX_DEVICES)
		return USBIP_E_NDEVICES;
	*op = hdr;
	*ndevices = count;
	return USBIP_OK;
}

/* One walk over the devices; cb may be NULL (validation only). */
static int devlist_walk(const uint8_t *p, size_t n, usbip_devlist_cb cb, void *ctx)
{
	struct usbip_op_common op;
	uint32_t ndevices;
	int rc = usbip_devlist_reply_head_decode(p, n, &op, &ndevices);

	if (rc != USBIP_OK)
		return rc;
	size_t at = USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE;
	for (uint32_t i = 0; i < ndevices; i++) {
		struct usbip_device_record dev;
		struct usbip_interface_record ifaces[USBIP_MAX_INTERFACES];

		rc = usbip_device_record_decode(p + at, n - at, &dev);
		if (rc != USBIP_OK)
			return rc;
		at += USBIP_DEVICE_RECORD_SIZE;
		for (unsigned j = 0; j < dev.bNumInterfaces; j++) {
			rc = usbip_interface_record_decode(p + at, n - at, &ifaces[j]);
			if (rc != USBIP_OK)
				return rc;
			at += USBIP_INTERFACE_RECORD_SIZE;
		}
		if (cb) {
			rc = cb(ctx, &dev, ifaces);
			if (rc != 0)
				return rc;
		}
	}
	return at == n ? USBIP_OK : USBIP_E_TRAILING;
}

int usbip_devlist_reply_decode(const uint8_t *p, size_t n, usbip_devlist_cb cb, void *ctx)
{
	/* Validate the whole message first, so the callback never sees the
	 * devices of a reply that turns out to be malformed further on. */
	int rc = devlist_walk(p, n, NULL, NULL);

	if (rc != USBIP_OK || !cb)
		return rc;
	return devlist_walk(p, n, cb, ctx);
}

int usbip_import_request_encode(const char *busid, uint8_t *p, size_t n)
{
	size_t len = strnlen(busid, USBIP_BUSID_SIZE);

	if (len == 0 || len == USBIP_BUSID_SIZE)
		return USBIP_E_BUSID;
	if (n < USBIP_IMPORT_REQUEST_SIZE)
		return USBIP_E_NOSPACE;
	op_encode(USBIP_OP_REQ_IMPORT, 0, p, n);
	field_put(p + USBIP_OP_COMMON_SIZE, busid, USBIP_BUSID_SIZE);
	return USBIP_IMPORT_REQUEST_SIZE;
}

int usbip_import_request_decode(const uint8_t *p, size_t n, char busid_out[USBIP_BUSID_SIZE])
{
	struct usbip_op_common op;
	int rc = usbip_op_common_decode(p, n, &op);

	if (rc != USBIP_OK)
		return rc;
	if (op.code != USBIP_OP_REQ_IMPORT)
		return USBIP_E_OP_CODE;
	if (n < USBIP_IMPORT_REQUEST_SIZE)
		return USBIP_E_SHORT;
	if (busid_field_check(p + USBIP_OP_COMMON_SIZE) != USBIP_OK)
		return USBIP_E_BUSID;
	field_copy(busid_out, p + USBIP_OP_COMMON_SIZE, USBIP_BUSID_SIZE);
	return USBIP_OK;
}

int usbip_import_reply_encode(uint32_t status, const struct usbip_device_record *dev,
			      uint8_t *p, size_t n)
{
	if (status != USBIP_ST_OK)
		return op_encode(USBIP_OP_REP_IMPORT, status, p, n);
	/* A successful reply without a record has no busid for the client to
	 * check, so it is refused as such. */
	if (!dev)
		return USBIP_E_BUSID;
	if (n < USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE)
		return USBIP_E_NOSPACE;
	int rc = usbip_device_record_encode(dev, p + USBIP_OP_COMMON_SIZE,
					    n - USBIP_OP_COMMON_SIZE);
	if (rc < 0)
		return rc;
	op_encode(USBIP_OP_REP_IMPORT, status, p, n);
	return USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE;
}

/* ---- URB messages ------------------------------------------------------ */

uint32_t usbip_iso_count(uint32_t number_of_packets)
{
	return number_of_packets == USBIP_NO_ISO_PACKETS ? 0 : number_of_packets;
}

static int npackets_ok(uint32_t number_of_packets)
{
	return number_of_packets == USBIP_NO_ISO_PACKETS ||
	       number_of_packets <= USBIP_MAX_ISO_PACKETS;
}

/* Lengths are s32 in the kernel: a negative one reads as > the maximum here. */
static int header_check(const struct usbip_header *h)
{
	if (h->command < USBIP_CMD_SUBMIT || h->command > USBIP_RET_UNLINK)
		return USBIP_E_COMMAND;
	if (h->direction != USBIP_DIR_OUT && h->direction != USBIP_DIR_IN)
		return USBIP_E_DIRECTION;
	if (h->ep > USBIP_MAX_EP)
		return USBIP_E_ENDPOINT;
	switch (h->command) {
	case USBIP_CMD_SUBMIT:
		if (h->u.cmd_submit.transfer_buffer_length > USBIP_MAX_TRANSFER_LENGTH)
			return USBIP_E_LENGTH;
		if (!npackets_ok(h->u.cmd_submit.number_of_packets))
			return USBIP_E_NPACKETS;
		break;
	case USBIP_RET_SUBMIT:
		if (h->u.ret_submit.actual_length > USBIP_MAX_TRANSFER_LENGTH)
			return USBIP_E_LENGTH;
		if (!npackets_ok(h->u.ret_submit.number_of_packets))
			return USBIP_E_NPACKETS;
		break;
	default:
		break;
	}
	return USBIP_OK;
}

int usbip_header_decode(const uint8_t *p, size_t n, struct usbip_header *out)
{
	struct usbip_header h;

	if (n < USBIP_HEADER_SIZE)
		return USBIP_E_SHORT;
	memset(&h, 0, sizeof(h));
	h.command = get_be32(p + HDR_COMMAND_AT);
	h.seqnum = get_be32(p + HDR_SEQNUM_AT);
	h.devid = get_be32(p + HDR_DEVID_AT);
	h.direction = get_be32(p + HDR_DIRECTION_AT);
	h.ep = get_be32(p + HDR_EP_AT);

	const uint8_t *u = p + HDR_U_AT;
	switch (h.command) {
	case USBIP_CMD_SUBMIT:
		h.u.cmd_submit.transfer_flags = get_be32(u);
		h.u.cmd_submit.transfer_buffer_length = get_be32(u + 4);
		h.u.cmd_submit.start_frame = (int32_t)get_be32(u + 8);
		h.u.cmd_submit.number_of_packets = get_be32(u + 12);
		h.u.cmd_submit.interval = (int32_t)get_be32(u + 16);
		/* The setup packet stays in USB (little-endian) order. */
		memcpy(h.u.cmd_submit.setup, p + HDR_SETUP_AT, USBIP_SETUP_SIZE);
		break;
	case USBIP_RET_SUBMIT:
		h.u.ret_submit.status = (int32_t)get_be32(u);
		h.u.ret_submit.actual_length = get_be32(u + 4);
		h.u.ret_submit.start_frame = (int32_t)get_be32(u + 8);
		h.u.ret_submit.number_of_packets = get_be32(u + 12);
		h.u.ret_submit.error_count = (int32_t)get_be32(u + 16);
		break;
	case USBIP_CMD_UNLINK:
		h.u.cmd_unlink.seqnum = get_be32(u);
		break;
	case USBIP_RET_UNLINK:
		h.u.ret_unlink.status = (int32_t)get_be32(u);
		break;
	default:
		break; /* header_check refuses it */
	}

	int rc = header_check(&h);
	if (rc != USBIP_OK)
		return rc;
	*out = h;
	return USBIP_OK;
}

int usbip_header_encode(const struct usbip_header *in, uint8_t *p, size_t n)
{
	int rc = header_check(in);

	if (rc != USBIP_OK)
		return rc;
	if (n < USBIP_HEADER_SIZE)
		return USBIP_E_NOSPACE;
	/* Padding goes out as zeros. */
	memset(p, 0, USBIP_HEADER_SIZE);
	put_be32(p + HDR_COMMAND_AT, in->command);
	put_be32(p + HDR_SEQNUM_AT, in->seqnum);
	put_be32(p + HDR_DEVID_AT, in->devid);
	put_be32(p + HDR_DIRECTION_AT, in->direction);
	put_be32(p + HDR_EP_AT, in->ep);

	uint8_t *u = p + HDR_U_AT;
	switch (in->command) {
	case USBIP_CMD_SUBMIT:
		put_be32(u, in->u.cmd_submit.transfer_flags);
		put_be32(u + 4, in->u.cmd_submit.transfer_buffer_length);
		put_be32(u + 8, (uint32_t)in->u.cmd_submit.start_frame);
		put_be32(u + 12, in->u.cmd_submit.number_of_packets);
		put_be32(u + 16, (uint32_t)in->u.cmd_submit.interval);
		memcpy(p + HDR_SETUP_AT, in->u.cmd_submit.setup, USBIP_SETUP_SIZE);
		break;
	case USBIP_RET_SUBMIT:
		put_be32(u, (uint32_t)in->u.ret_submit.status);
		put_be32(u + 4, in->u.ret_submit.actual_length);
		put_be32(u + 8, (uint32_t)in->u.ret_submit.start_frame);
		put_be32(u + 12, in->u.ret_submit.number_of_packets);
		put_be32(u + 16, (uint32_t)in->u.ret_submit.error_count);
		break;
	case USBIP_CMD_UNLINK:
		put_be32(u, in->u.cmd_unlink.seqnum);
		break;
	default: /* USBIP_RET_UNLINK, header_check allows nothing else */
		put_be32(u, (uint32_t)in->u.ret_unlink.status);
		break;
	}
	return USBIP_HEADER_SIZE;
}

/* Both sizes assume a header that passed usbip_header_decode: the transfer
 * length is then <= 16 MiB and the packet count <= 1024, so no overflow. */
size_t usbip_cmd_submit_payload_size(const struct usbip_header *h)
{
	const struct usbip_cmd_submit *c = &h->u.cmd_submit;
	size_t data = h->direction == USBIP_DIR_OUT ? c->transfer_buffer_length : 0;

	return data + (size_t)usbip_iso_count(c->number_of_packets) * USBIP_ISO_DESC_SIZE;
}

size_t usbip_ret_submit_payload_size(const struct usbip_header *h, int dir_in)
{
	const struct usbip_ret_submit *r = &h->u.ret_submit;
	size_t data = dir_in ? r->actual_length : 0;

	return data + (size_t)usbip_iso_count(r->number_of_packets) * USBIP_ISO_DESC_SIZE;
}
