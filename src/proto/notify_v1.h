/* Notify protocol v1: the original, seed-compatible text protocol.
 *
 * The client sends the 12 bytes "Client hello" (no newline). The server
 * answers "BUSID;PLUGGED;\n" for each exported device, then one line per
 * event, "BUSID;PLUGGED;\n" or "BUSID;UNPLUGGED;\n". Readers frame by newline
 * (see line_framer.h). */
#ifndef USBIP_NOTIFY_PROTO_NOTIFY_V1_H
#define USBIP_NOTIFY_PROTO_NOTIFY_V1_H

#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

#define NOTIFY_V1_HELLO "Client hello"
#define NOTIFY_V1_HELLO_LEN 12
#define NOTIFY_V1_MAX_LINE 64 /* longest valid event line, '\n' included */

enum notify_v1_kind {
	NOTIFY_V1_PLUGGED,
	NOTIFY_V1_UNPLUGGED,
};

struct notify_v1_event {
	char busid[USBIP_BUSID_SIZE];
	enum notify_v1_kind kind;
};

enum notify_v1_err {
	NOTIFY_V1_OK = 0,
	NOTIFY_V1_E_NOSPACE = -1,  /* output buffer too small */
	NOTIFY_V1_E_FORMAT = -2,   /* not "BUSID;WORD;" */
	NOTIFY_V1_E_BUSID = -3,    /* busid not in the kernel's form */
	NOTIFY_V1_E_KIND = -4,     /* neither PLUGGED nor UNPLUGGED */
};

const char *notify_v1_strerror(int err);

/* Hello matching on the server: NOTIFY_V1_HELLO_MATCH when p starts with the
 * whole hello, NOTIFY_V1_HELLO_PARTIAL when p is a proper prefix of it (read
 * more), NOTIFY_V1_HELLO_NO otherwise. */
enum notify_v1_hello_result {
	NOTIFY_V1_HELLO_NO = 0,
	NOTIFY_V1_HELLO_PARTIAL = 1,
	NOTIFY_V1_HELLO_MATCH = 2,
};
enum notify_v1_hello_result notify_v1_match_hello(const uint8_t *p, size_t n);

/* Writes "BUSID;PLUGGED;\n" (or UNPLUGGED); returns bytes written or an error.
 * The busid must be valid (busid_valid). No NUL is written. */
int notify_v1_encode(const struct notify_v1_event *ev, char *out, size_t n);

/* Parses one framed line (without '\n'), e.g. "1-1.2;UNPLUGGED;". */
int notify_v1_decode(const char *line, size_t len, struct notify_v1_event *out);

#endif
