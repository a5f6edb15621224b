/* USB/IP wire codec: pure functions over byte buffers.
 *
 * Nothing here does I/O or allocates. Every decoder takes (pointer, length),
 * validates every field it reads and returns USBIP_OK or one negative
 * enum usbip_codec_err value, which usbip_codec_strerror() turns into words.
 * Every encoder takes an output buffer and its size and returns the number of
 * bytes written, or USBIP_E_NOSPACE.
 *
 * Message layouts follow the kernel's Documentation/usb/usbip_protocol.rst;
 * see shared/docs/PROTOCOL.md for the facts and pitfalls. */
#ifndef USBIP_NOTIFY_PROTO_USBIP_CODEC_H
#define USBIP_NOTIFY_PROTO_USBIP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define USBIP_VERSION 0x0111u

/* Operation codes (before import). */
#define USBIP_OP_REQ_DEVLIST 0x8005u
#define USBIP_OP_REP_DEVLIST 0x0005u
#define USBIP_OP_REQ_IMPORT 0x8003u
#define USBIP_OP_REP_IMPORT 0x0003u

/* Operation status values. */
enum usbip_op_status {
	USBIP_ST_OK = 0,
	USBIP_ST_NA = 1,
	USBIP_ST_DEV_BUSY = 2,
	USBIP_ST_DEV_ERR = 3,
	USBIP_ST_NODEV = 4,
	USBIP_ST_ERROR = 5,
};

/* URB commands (after import). */
#define USBIP_CMD_SUBMIT 1u
#define USBIP_CMD_UNLINK 2u
#define USBIP_RET_SUBMIT 3u
#define USBIP_RET_UNLINK 4u

#define USBIP_DIR_OUT 0u
#define USBIP_DIR_IN 1u

/* transfer_flags, wire values (the kernel's URB_* flags). */
#define USBIP_URB_SHORT_NOT_OK 0x0001u
#define USBIP_URB_ISO_ASAP 0x0002u
#define USBIP_URB_NO_TRANSFER_DMA_MAP 0x0004u
#define USBIP_URB_ZERO_PACKET 0x0040u
#define USBIP_URB_NO_INTERRUPT 0x0080u
#define USBIP_URB_FREE_BUFFER 0x0100u
#define USBIP_URB_DIR_IN 0x0200u

/* Speeds, wire values (the kernel's enum usb_device_speed). */
enum usbip_speed {
	USBIP_SPEED_UNKNOWN = 0,
	USBIP_SPEED_LOW = 1,
	USBIP_SPEED_FULL = 2,
	USBIP_SPEED_HIGH = 3,
	USBIP_SPEED_WIRELESS = 4,
	USBIP_SPEED_SUPER = 5,
	USBIP_SPEED_SUPER_PLUS = 6,
};

/* Sizes on the wire. */
#define USBIP_OP_COMMON_SIZE 8
#define USBIP_DEVLIST_COUNT_SIZE 4   /* u32 ndevices after the op header */
#define USBIP_DEVICE_RECORD_SIZE 312
#define USBIP_INTERFACE_RECORD_SIZE 4
#define USBIP_IMPORT_REQUEST_SIZE (USBIP_OP_COMMON_SIZE + USBIP_BUSID_SIZE)
#define USBIP_HEADER_SIZE 48
#define USBIP_ISO_DESC_SIZE 16
#define USBIP_PATH_SIZE 256
#define USBIP_BUSID_SIZE 32
#define USBIP_SETUP_SIZE 8

/* Bounds on what a peer may ask for. A message beyond them is rejected
 * before anything is allocated for it. */
#define USBIP_MAX_TRANSFER_LENGTH (16u * 1024u * 1024u)
#define USBIP_MAX_ISO_PACKETS 1024u
#define USBIP_MAX_DEVICES 256u
#define USBIP_MAX_INTERFACES 32u

/* Non-isochronous URBs carry 0 (Linux) or 0xffffffff (the document) here. */
#define USBIP_NO_ISO_PACKETS 0xffffffffu

enum usbip_codec_err {
	USBIP_OK = 0,
	USBIP_E_SHORT = -1,          /* buffer ends before the message does */
	USBIP_E_NOSPACE = -2,        /* output buffer too small (encoders) */
	USBIP_E_VERSION = -3,        /* op header version is not 0x0111 */
	USBIP_E_OP_CODE = -4,        /* unknown or unexpected op code */
	USBIP_E_COMMAND = -5,        /* unknown URB command */
	USBIP_E_DIRECTION = -6,      /* direction is neither 0 nor 1 */
	USBIP_E_ENDPOINT = -7,       /* endpoint number above 15 */
	USBIP_E_LENGTH = -8,         /* negative or above USBIP_MAX_TRANSFER_LENGTH */
	USBIP_E_NPACKETS = -9,       /* number_of_packets above the maximum */
	USBIP_E_ISO_RANGE = -10,     /* iso packet outside the transfer buffer */
	USBIP_E_ISO_SUM = -11,       /* iso actual lengths do not add up */
	USBIP_E_BUSID = -12,         /* busid not NUL-terminated or empty */
	USBIP_E_PATH = -13,          /* path not NUL-terminated */
	USBIP_E_NDEVICES = -14,      /* device count above USBIP_MAX_DEVICES */
	USBIP_E_NINTERFACES = -15,   /* bNumInterfaces above USBIP_MAX_INTERFACES */
	USBIP_E_ACTUAL_LENGTH = -16, /* actual_length beyond the buffer */
	USBIP_E_TRAILING = -17,      /* bytes left after a complete message */
};

/* Words for a codec error, e.g. "iso packet outside the transfer buffer". */
const char *usbip_codec_strerror(int err);

/* ---- Operation messages ------------------------------------------------ */

struct usbip_op_common {
	uint16_t version;
	uint16_t code;
	uint32_t status;
};

/* Accepts version 0x0111 and the four op codes above only. */
int usbip_op_common_decode(const uint8_t *p, size_t n, struct usbip_op_common *out);
int usbip_op_common_encode(const struct usbip_op_common *in, uint8_t *p, size_t n);

struct usbip_device_record {
	char path[USBIP_PATH_SIZE];   /* NUL-terminated */
	char busid[USBIP_BUSID_SIZE]; /* NUL-terminated, non-empty */
	uint32_t busnum;
	uint32_t devnum;
	uint32_t speed;               /* enum usbip_speed */
	uint16_t idVendor;
	uint16_t idProduct;
	uint16_t bcdDevice;
	uint8_t bDeviceClass;
	uint8_t bDeviceSubClass;
	uint8_t bDeviceProtocol;
	uint8_t bConfigurationValue;
	uint8_t bNumConfigurations;
	uint8_t bNumInterfaces;
};

struct usbip_interface_record {
	uint8_t bInterfaceClass;
	uint8_t bInterfaceSubClass;
	uint8_t bInterfaceProtocol;
};

/* Encoding rejects a path/busid that does not fit with its NUL. */
int usbip_device_record_encode(const struct usbip_device_record *in, uint8_t *p, size_t n);
int usbip_device_record_decode(const uint8_t *p, size_t n, struct usbip_device_record *out);
int usbip_interface_record_encode(const struct usbip_interface_record *in, uint8_t *p, size_t n);
int usbip_interface_record_decode(const uint8_t *p, size_t n, struct usbip_interface_record *out);

/* OP_REQ_DEVLIST: the op header alone. */
int usbip_devlist_request_encode(uint8_t *p, size_t n);

/* OP_REP_DEVLIST head: op header + u32 ndevices (bounded by USBIP_MAX_DEVICES). */
int usbip_devlist_reply_head_encode(uint32_t status, uint32_t ndevices, uint8_t *p, size_t n);
int usbip_devlist_reply_head_decode(const uint8_t *p, size_t n, struct usbip_op_common *op,
				    uint32_t *ndevices);

/* A whole OP_REP_DEVLIST held in one buffer: head, then per device its record
 * and bNumInterfaces interface records. Calls back once per device; the
 * interface array is valid only during the callback. Rejects trailing bytes.
 * A nonzero return from the callback stops decoding and is returned. */
typedef int (*usbip_devlist_cb)(void *ctx, const struct usbip_device_record *dev,
				const struct usbip_interface_record *ifaces);
int usbip_devlist_reply_decode(const uint8_t *p, size_t n, usbip_devlist_cb cb, void *ctx);

/* OP_REQ_IMPORT: op header + busid[32]. busid_out gets the NUL-terminated id. */
int usbip_import_request_encode(const char *busid, uint8_t *p, size_t n);
int usbip_import_request_decode(const uint8_t *p, size_t n, char busid_out[USBIP_BUSID_SIZE]);

/* OP_REP_IMPORT: the op header, then the device record only when status is OK.
 * The encoder writes the record only for USBIP_ST_OK (dev may be NULL otherwise). */
int usbip_import_reply_encode(uint32_t status, const struct usbip_device_record *dev,
			      uint8_t *p, size_t n);

/* ---- URB messages ------------------------------------------------------ */

struct usbip_cmd_submit {
	uint32_t transfer_flags;
	uint32_t transfer_buffer_length; /* <= USBIP_MAX_TRANSFER_LENGTH */
	int32_t start_frame;
	uint32_t number_of_packets;      /* 0, USBIP_NO_ISO_PACKETS or 1..USBIP_MAX_ISO_PACKETS */
	int32_t interval;
	uint8_t setup[USBIP_SETUP_SIZE];
};

struct usbip_ret_submit {
	int32_t status;                  /* 0 or negative Linux errno */
	uint32_t actual_length;          /* <= USBIP_MAX_TRANSFER_LENGTH */
	int32_t start_frame;
	uint32_t number_of_packets;
	int32_t error_count;
};

struct usbip_cmd_unlink {
	uint32_t seqnum;                 /* the URB to unlink */
};

struct usbip_ret_unlink {
	int32_t status;
};

/* The 48-byte header of every URB message. In replies devid, direction and
 * ep are sent as 0. */
struct usbip_header {
	uint32_t command;
	uint32_t seqnum;
	uint32_t devid;
	uint32_t direction;
	uint32_t ep;
	union {
		struct usbip_cmd_submit cmd_submit;
		struct usbip_ret_submit ret_submit;
		struct usbip_cmd_unlink cmd_unlink;
		struct usbip_ret_unlink ret_unlink;
	} u;
};

/* Decodes and validates a 48-byte header: known command, direction 0/1,
 * ep <= 15, lengths and packet counts within the named maxima. */
int usbip_header_decode(const uint8_t *p, size_t n, struct usbip_header *out);
int usbip_header_encode(const struct usbip_header *in, uint8_t *p, size_t n);

/* Number of iso packet descriptors a submit/ret header announces (0 for
 * USBIP_NO_ISO_PACKETS). */
uint32_t usbip_iso_count(uint32_t number_of_packets);

/* Bytes that follow a decoded header on the wire. For RET_SUBMIT the caller
 * says whether the URB it answers was IN (the reply header carries no
 * direction). */
size_t usbip_cmd_submit_payload_size(const struct usbip_header *h);
size_t usbip_ret_submit_payload_size(const struct usbip_header *h, int dir_in);

struct usbip_iso_desc {
	uint32_t offset;
	uint32_t length;
	uint32_t actual_length;
	int32_t status;
};

/* count descriptors of 16 bytes each; count <= USBIP_MAX_ISO_PACKETS. */
int usbip_iso_descs_decode(const uint8_t *p, size_t n, uint32_t count, struct usbip_iso_desc *out);
int usbip_iso_descs_encode(const struct usbip_iso_desc *in, uint32_t count, uint8_t *p, size_t n);

/* CMD_SUBMIT side: every packet's [offset, offset+length) lies inside a
 * buffer of buffer_length bytes. */
int usbip_iso_validate_submit(const struct usbip_iso_desc *d, uint32_t count,
			      uint32_t buffer_length);

/* RET_SUBMIT side: packets inside buffer_length, each actual_length <= length,
 * and the actual lengths sum to actual_length (what vhci insists on). */
int usbip_iso_validate_ret(const struct usbip_iso_desc *d, uint32_t count,
			   uint32_t buffer_length, uint32_t actual_length);

/* ISO IN compaction (server side): copies each packet's actual bytes from
 * buf (at the packet's offset) to out, back to back in packet order. out must
 * hold the sum of actual lengths. Descriptors must have passed
 * usbip_iso_validate_ret. Returns bytes written. */
size_t usbip_iso_compact(const uint8_t *buf, const struct usbip_iso_desc *d, uint32_t count,
			 uint8_t *out);

/* The inverse (client side): spreads compacted bytes back to each packet's
 * offset in buf. Same preconditions. */
void usbip_iso_expand(const uint8_t *compact, const struct usbip_iso_desc *d, uint32_t count,
		      uint8_t *buf);

/* devid as the client uses it: busnum << 16 | devnum. */
static inline uint32_t usbip_devid(uint32_t busnum, uint32_t devnum)
{
	return busnum << 16 | (devnum & 0xffffu);
}

const char *usbip_speed_name(uint32_t speed);
const char *usbip_op_status_name(uint32_t status);

#endif
