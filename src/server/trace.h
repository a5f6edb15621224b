/* --trace: one readable line per USB/IP command and reply.
 *
 *   1-1 10.0.0.2:40112 > SUBMIT seq=17 ep=0 in len=64 setup=80.06.0100.0000.0040
 *   1-1 10.0.0.2:40112 < SUBMIT seq=17 ep=0 in len=18 status=0
 *   1-1 10.0.0.2:40112 > UNLINK seq=18 victim=17
 *   1-1 10.0.0.2:40112 < UNLINK seq=18 status=-ECONNRESET
 *
 * ">" is from the client, "<" to it. A reply carries no endpoint or
 * direction on the wire, so the caller passes the ones of the URB it
 * answers. Lines go to emit(ctx, line) or, with emit NULL, to the log at
 * info level. No globals: the session holds a pointer to the server's
 * struct trace (NULL or enabled == false: nothing is formatted). */
#ifndef USBIP_NOTIFY_SERVER_TRACE_H
#define USBIP_NOTIFY_SERVER_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

#define TRACE_LINE_SIZE 256

struct trace {
	bool enabled;
	void (*emit)(void *ctx, const char *line);
	void *ctx;
};

/* Formats into buf (n bytes, TRACE_LINE_SIZE is enough); who names the
 * device and peer ("1-1 10.0.0.2:40112"), may be NULL. Returns the length
 * (truncated lines are still NUL-terminated). */
int trace_format_cmd(char *buf, size_t n, const char *who, const struct usbip_header *h);
int trace_format_ret(char *buf, size_t n, const char *who, const struct usbip_header *h,
		     uint32_t ep, bool dir_in);

/* A decoded CMD_SUBMIT or CMD_UNLINK. */
void trace_cmd(const struct trace *t, const char *who, const struct usbip_header *h);
/* A RET_SUBMIT or RET_UNLINK about to be sent; ep, dir_in: the URB's. */
void trace_ret(const struct trace *t, const char *who, const struct usbip_header *h, uint32_t ep,
	       bool dir_in);

#endif
