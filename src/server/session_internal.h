/* Session internals shared by session*.c files. Not for other modules.
 *
 * Who owns what (see docs/engine.md for one URB's path):
 * - The engine thread owns everything below that is not marked otherwise:
 *   the socket's reads and writes, the rx buffer, the URB table and pool,
 *   the reply queue, the control queue and the budget. No lock guards
 *   them; only the engine thread touches them.
 * - post_lock guards the hand-overs from other threads: completions that
 *   a backend delivered on its own thread (posted), the worker's finished
 *   request and the device-gone flag. It is never held across a call into
 *   the backend, a syscall or another lock.
 * - work_lock (with work_cond) guards the worker's mailbox: the one
 *   state-changing request handed to the session's worker thread (the
 *   connection thread inside session_run), and the engine's "finished".
 * - state_lock guards the endpoint state (configuration, alt settings,
 *   claims): the worker writes it after its backend calls return, the
 *   engine reads it to route an URB. Held for copies only, never across a
 *   backend call.
 * - urb.fate is atomic: a backend's completion (any thread) and a closing
 *   session giving up on the URB race on it; the winner owns the URB.
 * Lock order: none is taken while holding another. */
#ifndef USBIP_NOTIFY_SERVER_SESSION_INTERNAL_H
#define USBIP_NOTIFY_SERVER_SESSION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto/usb_desc.h"
#include "proto/usbip_codec.h"
#include "server/engine.h"
#include "server/session.h"

struct session;

/* One message waiting to be written: header, data, iso descriptors. */
struct tx_msg {
	struct tx_msg *next;
	uint8_t hdr[USBIP_HEADER_SIZE];
	struct iovec part[2];      /* data, iso descriptors; unused ones empty */
	size_t cost;               /* charged to the reply budget while queued */
	void (*release)(struct session *s, struct tx_msg *m); /* after sending */
};

/* Linux's vhci sends one CMD_UNLINK per URB; repeats are kept and all
 * answered at its completion (the session bounds how many wait). */
#define URB_INLINE_UNLINKS 2

#define URB_FATE_LIVE 0        /* at the backend, or not yet submitted */
#define URB_FATE_COMPLETED 1   /* the backend's completion has come */
#define URB_FATE_LOST 2        /* the session gave up; the completion frees it */

enum urb_state {
	URB_FREE,        /* in the pool */
	URB_RX,          /* its body is still being read */
	URB_QUEUED,      /* waits in the ordered queue, behind a state change */
	URB_WORKER,      /* the worker runs it (a state change) */
	URB_BACKEND,     /* submitted, completion pending */
	URB_HELD,        /* its endpoint's pipe is being aborted: waits to be
			  * (re)submitted in order (session_abort.c) */
	URB_DONE,        /* reply queued or being written */
};

struct urb {
	struct urb *prev, *next;   /* session->pending while not yet completed */
	struct urb *hnext;         /* hash chain by seqnum while pending */
	struct urb *qnext;         /* control queue, post list or pool */
	struct session *s;
	enum urb_state state;
	struct usbip_header cmd;   /* the CMD_SUBMIT as decoded */
	struct bk_transfer xfer;
	uint8_t *buf;              /* control: setup first; then data, iso descs */
	size_t buf_cap;            /* kept across reuse from the pool */
	struct bk_handle *buf_dev; /* buf is this handle's device memory, or NULL: heap */
	size_t cost;               /* bytes charged to the session budget */
	int32_t fail;              /* a status decided before submitting, or 0 */
	bool special;              /* a request the worker runs (ctrl_request.h) */
	bool periodic;             /* routed to an interrupt or iso endpoint */
	uint32_t iso_count;
	size_t iso_raw_off;        /* where the received iso descriptors sit in buf */
	struct usbip_iso_desc *iso_wire; /* offsets/lengths as the client sent them */
	struct bk_iso_packet *iso_bk;
	uint8_t *iso_out;          /* encoded descriptors for the reply */
	uint8_t *iso_packed;       /* OUT packets gathered back to back, or NULL */
	/* CMD_UNLINKs waiting for this URB's completion: the first few
	 * inline, more on the heap (unlink_seqnum points at one or the other). */
	unsigned n_unlinks, unlink_cap;
	uint32_t *unlink_seqnum;
	uint32_t unlink_inline[URB_INLINE_UNLINKS];
	/* A pipe abort (BK_QUIRK_CANCEL_ABORTS_ENDPOINT) in progress took it
	 * along; moved: bytes done before an abort, its buffer resumes there. */
	bool in_abort;
	uint32_t moved;
	uint64_t order;            /* when it first went to the backend */
	/* URB_FATE_*: its completion and a closing session giving up on it
	 * race for it (the only field another thread writes after submit). */
	atomic_int fate;
	struct tx_msg reply;       /* RET_SUBMIT */
};

#define SESSION_RX_SIZE (128u * 1024u) /* read buffer: many commands per recv */
#define SESSION_HASH_SIZE 1024u        /* URB table buckets (seqnums are sequential) */
#define SESSION_POOL_MAX 64u           /* URBs kept for reuse */
#define SESSION_EARLY_UNLINKS 16u      /* unlinks waiting for their submit */
#define SESSION_POOL_BYTES (4u * 1024u * 1024u) /* buffer bytes kept for reuse */
/* Device memory (backend buf_alloc) a session holds at most, pooled or in
 * use: it counts against usbfs's system-wide limit (16 MiB by default).
 * Buffers past it are ordinary memory, pooled like any other, so a deep
 * queue does not map and unmap a buffer per URB. */
#define SESSION_DEV_BYTES (2u * 1024u * 1024u)
/* Smaller buffers stay on the heap: copying them costs less than the page
 * of device memory each would take. */
#define SESSION_DEV_MEM_MIN 4096u
#define SESSION_POOL_LOOK 8u /* pooled URBs looked at for a big enough buffer */

/* An endpoint as the current settings have it, found in O(1) per URB. */
#define SESSION_ROUTES 32 /* endpoint number | 0x10 for IN */
struct ep_route {
	int8_t ifidx;   /* cfg.iface index; -1: no such endpoint now */
	uint8_t type;   /* enum usb_ep_type */
};

static inline unsigned session_route_index(uint8_t address)
{
	return (address & 0x0fu) | ((address & 0x80u) ? 0x10u : 0u);
}

/* One endpoint's pipe abort (session_abort.c): URBs it took along whose
 * completions are still to come, and the URBs waiting for it to end, in
 * the order they first went to the backend. */
struct ep_abort {
	unsigned left;
	struct urb *wait;          /* linked by qnext */
};

struct session {
	struct backend *backend;
	struct bk_handle *handle;
	struct engine *engine;
	int fd;
	struct bk_device_info info;
	uint32_t devid;
	struct session_limits limits;
	struct export_holder holder;
	char peer[64];
	bool need_reset;            /* before the session: the last one ended uncleanly */
	struct metrics_device *metrics; /* NULL: not counted */
	const struct trace *trace;  /* NULL or disabled: no trace lines */
	char who[USBIP_BUSID_SIZE + 72]; /* "BUSID PEER" for trace lines */

	/* Endpoint state, state_lock. */
	pthread_mutex_t state_lock;
	struct usb_config_info cfg;
	bool have_cfg;
	uint8_t cur_alt[USB_DESC_MAX_INTERFACES];     /* by cfg.iface index */
	bool claimed[USB_DESC_MAX_INTERFACES];        /* by cfg.iface index */
	struct ep_route route[SESSION_ROUTES];        /* rebuilt on each change */

	/* ---- engine thread only ---- */
	uint8_t *rx;                /* SESSION_RX_SIZE bytes */
	size_t rx_off, rx_len;      /* unparsed bytes are rx[rx_off, rx_len) */
	struct urb *rx_urb;         /* body being read into rx_dst */
	uint8_t *rx_dst;
	size_t rx_need;
	size_t rx_skip;             /* OUT data of a refused URB, dropped first */
	bool rx_eof;

	/* vhci's transmit thread can send a CMD_UNLINK before the CMD_SUBMIT
	 * it names (the submit was queued just as the thread went on to the
	 * unlink list): such an unlink waits here for its submit. */
	struct { uint32_t victim, seqnum; } early[SESSION_EARLY_UNLINKS];
	unsigned n_early;
	uint32_t last_submit;       /* highest CMD_SUBMIT seqnum seen */
	bool any_submit;

	struct urb pending;         /* list head: URBs not yet completed */
	unsigned n_pending;
	unsigned n_periodic;        /* of those, routed to interrupt or iso endpoints */
	bool answered;              /* a reply was queued since the last wait began */
	struct urb *hash[SESSION_HASH_SIZE];
	struct urb *pool;
	unsigned pool_n;
	size_t dev_bytes;           /* device memory held, pooled or in use */
	size_t pool_bytes;

	unsigned n_urbs;            /* URBs charged to the budget */
	size_t bytes;
	unsigned tx_n;              /* of the charge: replies queued, not yet written */
	size_t tx_bytes;

	struct tx_msg *tx_head, *tx_tail;
	size_t tx_sent;             /* bytes of tx_head already written */
	int64_t tx_stalled_ms;      /* since when nothing could be written, or 0 */
	bool tx_failed;

	struct urb *ctrl_head, *ctrl_tail; /* URBs behind a state change, in order */
	struct ep_abort abort[SESSION_ROUTES]; /* ep 0 both ways at index 0 */
	uint64_t submit_order;
	unsigned unlinks_waiting;   /* CMD_UNLINKs kept on URBs: bounded (rx_blocked) */
	unsigned ep0_in_backend;
	bool worker_busy;

	bool closing;
	int64_t closing_ms;         /* when closing began */
	bool drain_warned;
	unsigned lost;              /* transfers given up at close */
	const char *end_reason;

	/* ---- post_lock: hand-overs from other threads ---- */
	pthread_mutex_t post_lock;
	struct urb *posted;         /* completions delivered off the engine thread (LIFO) */
	atomic_bool has_posts;
	atomic_bool device_gone;

	/* ---- work_lock: the worker's mailbox ---- */
	pthread_mutex_t work_lock;
	pthread_cond_t work_cond;
	struct urb *work_urb;       /* the request to run, or NULL */
	bool finished;              /* the engine let go of the session */
};

/* session_rx.c: socket input. Reads what the socket has and starts every
 * complete command in it, until back-pressure stops it. */
void session_rx_read(struct session *s);
void session_rx_parse(struct session *s);
/* The reply budget is full: new commands wait in the socket. */
bool session_rx_blocked(const struct session *s);
/* The read buffer holds something the parser could act on. */
bool session_rx_has_command(const struct session *s);

/* session_urb.c */
struct urb *session_urb_get(struct session *s, size_t buf_len);
void session_urb_put(struct session *s, struct urb *u);
/* Starts a CMD_SUBMIT whose body has been read: routes it and submits it,
 * queues it for in-order control, or fails it. */
void session_urb_start(struct session *s, struct urb *u);
/* Routes (by the current settings) and submits to the backend; a failure
 * goes through the completion path. */
void session_urb_go(struct session *s, struct urb *u);
/* Hands a routed URB to the backend (it already counts in ep0_in_backend);
 * a failure goes through the completion path. */
void session_urb_submit(struct session *s, struct urb *u);
/* Keeps a CMD_UNLINK on u until its completion. Returns 0 or -LNX_ENOMEM. */
int session_urb_add_unlink(struct session *s, struct urb *u, uint32_t seqnum);
/* Fails an URB that never reached the backend, through the same path. */
void session_urb_fail(struct urb *u, int32_t status);
/* The one completion path, on the engine thread. */
void session_urb_finish(struct session *s, struct urb *u);
/* Called from any thread by the backend (bk_transfer.complete). */
void session_urb_complete(struct bk_transfer *t);
struct urb *session_urb_find(struct session *s, uint32_t seqnum);
void session_urb_pool_free(struct session *s);
/* Closing, the drain time over: gives up on every URB still at the backend
 * (its completion, if it ever comes, frees it). Returns how many. */
unsigned session_urb_give_up(struct session *s);

/* session_abort.c: the kernel's per-URB unlink rules on a backend whose
 * cancel aborts the whole endpoint (BK_QUIRK_CANCEL_ABORTS_ENDPOINT). */
/* Cancels u for its first CMD_UNLINK, whatever the backend's cancel does. */
void session_abort_cancel(struct session *s, struct urb *u);
/* True when u, about to go to the backend, must wait for its endpoint's
 * abort to end (it is then URB_HELD). */
bool session_abort_holds(struct session *s, struct urb *u);
/* A completion of an URB the abort took along. True when the abort took it
 * for a bystander, to be resubmitted: no reply yet. */
bool session_abort_done(struct session *s, struct urb *u);
/* Closing: every URB waiting for an abort fails with -ESHUTDOWN. */
void session_abort_fail_waiting(struct session *s);

/* session_tx.c */
void session_tx_enqueue(struct session *s, struct tx_msg *m);
/* Answers a CMD_UNLINK; the reply counts against the budget while queued.
 * Returns 0 or -LNX_ENOMEM. */
int session_tx_ret_unlink(struct session *s, uint32_t seqnum, int32_t status);
/* Writes as much of the queue as the socket takes, in one sendmsg. */
void session_tx_flush(struct session *s);
void session_tx_drop_all(struct session *s);

/* session_ctrl.c */
/* Queues an URB behind a state change (or a state change behind the
 * control URBs before it) and moves the queue on. */
void session_ctrl_enqueue(struct session *s, struct urb *u);
/* Moves the ordered queue on: submits URBs up to the next state change,
 * hands that to the worker once the control URBs before it are done. */
void session_ctrl_progress(struct session *s);
/* The worker's side: runs one state-changing request (blocking backend
 * calls) and returns its status. */
int session_ctrl_run(struct session *s, struct urb *u);
/* Claims every interface of the active configuration (re-reads it). */
void session_claim_all(struct session *s);
void session_release_all(struct session *s);

/* session.c */
void session_begin_close(struct session *s, const char *reason);

#endif
