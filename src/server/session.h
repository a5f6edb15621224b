/* A session: one imported device served over one TCP connection.
 *
 * After a successful OP_REQ_IMPORT the connection carries CMD_SUBMIT and
 * CMD_UNLINK. The session turns each submit into an asynchronous backend
 * transfer and every completion into exactly one reply (see the unlink rules
 * in shared/docs/PROTOCOL.md). Threads: the caller's thread reads commands,
 * a writer thread sends whole replies in completion order, a worker thread
 * runs the few requests that need blocking backend calls (configuration,
 * alt setting, clear halt, reset); completions arrive on the backend's event
 * thread and only enqueue. */
#ifndef USBIP_NOTIFY_SERVER_SESSION_H
#define USBIP_NOTIFY_SERVER_SESSION_H

#include <stddef.h>

#include "backend/backend.h"
#include "server/export_table.h"

/* Each limit applies twice: to URBs at the device (more fail at once with
 * -ENOMEM) and to replies not yet written (more stop the reader until the
 * client reads: back-pressure on the socket). */
struct session_limits {
	unsigned max_urbs;
	size_t max_bytes;    /* buffers, in bytes */
};

#define SESSION_DEFAULT_MAX_URBS 1024u
#define SESSION_DEFAULT_MAX_BYTES (64u * 1024u * 1024u)

struct session;

/* A session on fd, not yet bound to a device. Does not take ownership of fd
 * (the caller closes it after session_free). */
struct session *session_new(struct backend *b, int fd, const struct session_limits *limits);

/* The hook the export table calls when the device leaves. */
struct export_holder *session_holder(struct session *s);

/* Binds the session to a device already claimed in the export table for
 * session_holder(s): opens it, reads its configuration and claims every interface it
 * can (an interface that cannot be claimed fails its URBs with -EPERM later).
 * Returns 0 or a negative Linux errno when the device cannot be opened. */
int session_open_device(struct session *s, const struct bk_device_info *info);

/* Serves commands until the peer goes, the device goes, or the peer sends
 * something malformed; then cancels and waits for in-flight transfers, sends
 * what is left to send, and releases the device. */
void session_run(struct session *s);

void session_free(struct session *s);

#endif
