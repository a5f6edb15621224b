/* A session: one imported device served over one TCP connection.
 *
 * After a successful OP_REQ_IMPORT the connection carries CMD_SUBMIT and
 * CMD_UNLINK. The session turns each submit into an asynchronous backend
 * transfer and every completion into exactly one reply (see the unlink rules
 * in shared/docs/PROTOCOL.md). Threads: the engine's loop (engine.h) reads
 * the commands, submits them, takes their completions and writes the
 * replies; the caller of session_run() is the session's worker, which runs
 * the few requests that need blocking backend calls (configuration, alt
 * setting, clear halt, reset) and, at the end, releases the device. */
#ifndef USBIP_NOTIFY_SERVER_SESSION_H
#define USBIP_NOTIFY_SERVER_SESSION_H

#include <stddef.h>

#include "backend/backend.h"
#include "server/engine.h"
#include "server/export_table.h"
#include "server/metrics.h"
#include "server/spin_window.h"
#include "server/trace.h"

/* Each limit applies twice: to URBs at the device (more fail at once with
 * -ENOMEM) and to replies not yet written (more stop the reader until the
 * client reads: back-pressure on the socket). */
struct session_limits {
	unsigned max_urbs;
	size_t max_bytes;    /* buffers, in bytes */
	/* A closing session waits this long for its cancelled transfers; one
	 * still pending then is counted lost (and the device reset). 0: the
	 * default. */
	unsigned drain_ms;
	/* A client that has read nothing of its owed replies for this long is
	 * disconnected. 0 = SESSION_DEFAULT_STALL_CLOSE_MS; tests set less. */
	unsigned stall_close_ms;
};

#define SESSION_DEFAULT_MAX_URBS 1024u
#define SESSION_DEFAULT_MAX_BYTES (64u * 1024u * 1024u)
#define SESSION_DEFAULT_DRAIN_MS 5000u
#define SESSION_DEFAULT_STALL_CLOSE_MS 60000u

struct session;

/* A session on fd, not yet bound to a device, to be served by engine. Does
 * not take ownership of fd (the caller closes it after session_free). */
struct session *session_new(struct backend *b, struct engine *engine, int fd,
			    const struct session_limits *limits);

/* The hook the export table calls when the device leaves. */
struct export_holder *session_holder(struct session *s);

/* Binds the session to a device already claimed in the export table for
 * session_holder(s): opens it, reads its configuration and claims every interface it
 * can (an interface that cannot be claimed fails its URBs with -EPERM later).
 * Returns 0 or a negative Linux errno when the device cannot be opened. */
int session_open_device(struct session *s, const struct bk_device_info *info);

/* What the session reports to: a device's counters (may be NULL) and the
 * trace (may be NULL). Before session_run. */
void session_set_observers(struct session *s, struct metrics_device *m, const struct trace *t);

/* Reset the device before serving: the last session on it ended without its
 * closing reset (or none is known, e.g. the server just started). */
void session_set_need_reset(struct session *s, bool need);

/* After session_run: whether the device was reset cleanly at the end (the
 * next session need not reset it again). */
bool session_ended_clean(const struct session *s);

/* Serves commands until the peer goes, the device goes, or the peer sends
 * something malformed; then cancels and waits for in-flight transfers (at
 * most limits.drain_ms: later ones are counted lost), sends what is left to
 * send, and resets the device. The calling thread is the
 * session's worker meanwhile. */
void session_run(struct session *s);

/* Before session_run: serve the session on fd instead of the one given to
 * session_new (a TLS relay's plaintext end); the peer's name stays. */
void session_set_fd(struct session *s, int fd);

void session_free(struct session *s);

/* ---- Called by the engine's loop only ---- */
int session_fd(const struct session *s);
/* What the engine's next wait is for as far as this session goes
 * (spin_window.h): DEVICE with a bulk or control URB at the device, CLIENT
 * when it answered something since the last call (its client's next
 * command comes soon), else IDLE. Forgets the answers: called at the start
 * of each wait. */
enum spin_wait session_wait_kind(struct session *s);
/* The poll events the session wants now (0: none) and, in *timeout_ms, how
 * soon it needs a turn even with no event (-1: no deadline). *now_ms is the
 * loop's clock, -1 until someone reads it: the session reads it (once per
 * turn, for every session) only when it has a timer armed. */
short session_poll_events(struct session *s, int64_t *now_ms, int *timeout_ms);
void session_on_io(struct session *s, short revents);
/* The end of a loop turn: takes hand-overs, moves queues on, writes
 * replies. Returns true once the session is over and idle: the loop drops
 * it and calls session_engine_done(). */
bool session_turn(struct session *s);
void session_engine_done(struct session *s);

#endif
