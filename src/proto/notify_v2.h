/* Notify protocol v2: our versioned, richer hotplug channel.
 *
 * Text lines, one message per line, framed by '\n' (line_framer.h), at most
 * NOTIFY_V2_MAX_LINE bytes. A message is a word, then space-separated
 * key=value fields; values are percent-encoded (every byte outside
 * [A-Za-z0-9._~:/-] becomes %XX), so a value never holds a space, '=' or a
 * control character. Unknown keys are ignored (forward compatible); unknown
 * words are an error for the decoder, and readers skip such lines.
 *
 *   client: hello version=2 [token=SECRET]
 *   server: welcome version=2 heartbeat=5 server=NAME
 *   server: device busid=1-1 vid=0525 pid=a4a0 speed=high held=0
 *           serial=SIM0001 manufacturer=usbip-notify product=Simulated%20Gadget%20Zero
 *           (one per exported device: the snapshot)
 *   server: snapshot-end count=1
 *   server: plugged <same fields as device>
 *   server: unplugged busid=1-1
 *   server: held <same fields as device>      (held=1 or 0 changed)
 *   either: ping                               (every heartbeat seconds; any
 *                                               line counts as a sign of life)
 *   server: error reason=...                   (then the server closes)
 *
 * A v1 client opens with "Client hello" (no newline); a v2 client's first
 * byte is 'h', so the server tells them apart from the first byte. Full
 * description with examples: docs/notify-protocol.md. */
#ifndef USBIP_NOTIFY_PROTO_NOTIFY_V2_H
#define USBIP_NOTIFY_PROTO_NOTIFY_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

#define NOTIFY_V2_VERSION 2
#define NOTIFY_V2_MAX_LINE 1024   /* '\n' included */
#define NOTIFY_V2_STRING_SIZE 128 /* decoded strings, NUL included */
#define NOTIFY_V2_TOKEN_SIZE 128
#define NOTIFY_V2_NAME_SIZE 64

enum notify_v2_type {
	NOTIFY_V2_HELLO,
	NOTIFY_V2_WELCOME,
	NOTIFY_V2_DEVICE,       /* snapshot entry */
	NOTIFY_V2_SNAPSHOT_END,
	NOTIFY_V2_PLUGGED,
	NOTIFY_V2_UNPLUGGED,
	NOTIFY_V2_HELD,
	NOTIFY_V2_PING,
	NOTIFY_V2_ERROR,
};

struct notify_v2_device {
	char busid[USBIP_BUSID_SIZE];   /* always valid per busid_valid() */
	uint16_t vid;
	uint16_t pid;
	uint32_t speed;                 /* enum usbip_speed */
	bool held;                      /* imported by some client right now */
	char serial[NOTIFY_V2_STRING_SIZE];
	char manufacturer[NOTIFY_V2_STRING_SIZE];
	char product[NOTIFY_V2_STRING_SIZE];
};

struct notify_v2_msg {
	enum notify_v2_type type;
	uint32_t version;               /* hello, welcome */
	uint32_t heartbeat_s;           /* welcome: 1..3600 */
	uint32_t count;                 /* snapshot-end */
	char token[NOTIFY_V2_TOKEN_SIZE];  /* hello (optional, "" if none) */
	char name[NOTIFY_V2_NAME_SIZE];    /* welcome: server; error: reason */
	struct notify_v2_device dev;    /* device, plugged, held; unplugged: busid only */
};

enum notify_v2_err {
	NOTIFY_V2_OK = 0,
	NOTIFY_V2_E_NOSPACE = -1,   /* output buffer too small */
	NOTIFY_V2_E_WORD = -2,      /* unknown message word */
	NOTIFY_V2_E_FIELD = -3,     /* malformed key=value or bad percent-encoding */
	NOTIFY_V2_E_MISSING = -4,   /* a required field is absent */
	NOTIFY_V2_E_VALUE = -5,     /* a value out of range (vid not hex, speed unknown...) */
	NOTIFY_V2_E_BUSID = -6,     /* busid not in the kernel's form */
	NOTIFY_V2_E_LONG = -7,      /* a string too long for its field */
	NOTIFY_V2_E_VERSION = -8,   /* hello/welcome with a version we do not speak */
};

const char *notify_v2_strerror(int err);

/* Writes one line, '\n' included; returns its length or an error. */
int notify_v2_encode(const struct notify_v2_msg *msg, char *out, size_t n);

/* Parses one framed line (without '\n'). Strings come out decoded and
 * NUL-terminated; decoded strings with control characters are rejected
 * (they would reach logs and sysfs). */
int notify_v2_decode(const char *line, size_t len, struct notify_v2_msg *out);

/* "low", "full", "high", "wireless", "super", "super-plus", "unknown". */
const char *notify_v2_speed_name(uint32_t speed);

#endif
