/* The local control socket: a Unix stream socket on which a daemon answers
 * one-line requests ("status", "list --json", "attach 1-1", ...).
 *
 * Protocol, one request per connection: the client writes one line (at
 * most CONTROL_MAX_REQUEST bytes, ending in "\n"); the daemon answers
 * "ok\n" followed by the reply text, or "error MESSAGE\n", then closes.
 * Whoever can connect may steer the daemon, so the socket is created mode
 * 0660 (root and the socket's group): access is the file system's.
 *
 * The listener runs one thread that serves connections one at a time:
 * most requests are a snapshot or a flag; the client's attach waits for its
 * import (seconds at most), and others queue behind it meanwhile. */
#ifndef USBIP_NOTIFY_COMMON_CONTROL_H
#define USBIP_NOTIFY_COMMON_CONTROL_H

#include <stddef.h>

#include "common/strbuf.h"

#define CONTROL_MAX_REQUEST 512
#define CONTROL_MAX_REPLY (4u * 1024u * 1024u)
#define CONTROL_TIMEOUT_MS 5000        /* for the daemon to read a request */
#define CONTROL_REPLY_TIMEOUT_MS 30000 /* for a client to get the answer (attach imports) */

/* Answers one request (the line without its "\n", split into argv by
 * spaces, at most CONTROL_MAX_ARGS words). Writes the reply text into
 * reply and returns 0, or writes a one-line message into reply and returns
 * a negative errno (sent as "error MESSAGE"). Runs on the listener's
 * thread. */
#define CONTROL_MAX_ARGS 8
typedef int (*control_handler_fn)(void *ctx, int argc, char **argv, struct strbuf *reply);

struct control_server;

/* Binds path (creating its parent directory, mode 0755, if missing; taking
 * over a stale socket nobody answers on; -EADDRINUSE if a live daemon
 * does), chmods it 0660 and starts the thread. Returns 0 or -errno. */
int control_server_start(const char *path, control_handler_fn fn, void *ctx,
			 struct control_server **out);

/* Stops the thread, closes and unlinks the socket. NULL is fine. */
void control_server_stop(struct control_server *cs);

/* One request from a client: sends line, reads the whole answer. Returns
 * 0 with the reply text in reply, -EREMOTEIO with the daemon's message in
 * reply, or another negative errno (-ENOENT/-ECONNREFUSED: no daemon). */
int control_request(const char *path, const char *line, struct strbuf *reply);

#endif
