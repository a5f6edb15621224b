/* Session internals shared by session*.c files. Not for other modules.
 *
 * Locks, in order (never take an earlier one while holding a later one):
 *   state_lock  endpoint state (configuration, alt settings, claims); taken
 *               by the reader and the worker, never on the event thread;
 *               held across the blocking configuration calls of a state
 *               change (so an URB is routed by the state before or after
 *               it, never in between), never across submit/cancel
 *   lock        URB list, budget, TX queue, worker queue; taken everywhere,
 *               held across bk_cancel only (which never completes inline) */
#ifndef USBIP_NOTIFY_SERVER_SESSION_INTERNAL_H
#define USBIP_NOTIFY_SERVER_SESSION_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto/usb_desc.h"
#include "proto/usbip_codec.h"
#include "server/session.h"

struct session;

/* One message waiting for the writer. */
struct tx_msg {
	struct tx_msg *next;
	uint8_t hdr[USBIP_HEADER_SIZE];
	struct iovec part[2];      /* data, iso descriptors; unused ones empty */
	void (*release)(struct session *s, struct tx_msg *m); /* after sending */
};

/* Linux's vhci sends one CMD_UNLINK per URB; a few repeats are answered
 * together at completion, more are answered at once with status 0. */
#define URB_MAX_UNLINKS 4

struct urb {
	struct urb *prev, *next;   /* in session->pending while in flight */
	struct session *s;
	struct usbip_header cmd;   /* the CMD_SUBMIT as decoded */
	struct bk_transfer xfer;
	uint8_t *buf;              /* backend buffer (control: setup first) */
	size_t cost;               /* bytes charged to the session budget */
	uint32_t iso_count;
	struct usbip_iso_desc *iso_wire; /* offsets/lengths as the client sent them */
	struct bk_iso_packet *iso_bk;
	uint8_t *iso_out;          /* encoded descriptors for the reply */
	bool in_backend;           /* submitted, completion pending */
	bool special;              /* a request the worker runs (ctrl_request.h) */
	/* CMD_UNLINKs waiting for this URB's completion, each with its reply
	 * allocated up front so the answer can never be lost. */
	unsigned n_unlinks;
	uint32_t unlink_seqnum[URB_MAX_UNLINKS];
	struct tx_msg *unlink_reply[URB_MAX_UNLINKS];
	struct tx_msg reply;       /* RET_SUBMIT */
	bool queued;               /* reply waiting for the writer (tx_urbs) */
	struct urb *work_next;     /* in the worker queue */
};

struct session {
	struct backend *backend;
	struct bk_handle *handle;
	int fd;
	struct bk_device_info info;
	uint32_t devid;
	struct session_limits limits;
	struct export_holder holder;

	pthread_mutex_t state_lock;
	struct usb_config_info cfg;
	bool have_cfg;
	uint8_t cur_alt[USB_DESC_MAX_INTERFACES];     /* by cfg.iface index */
	bool claimed[USB_DESC_MAX_INTERFACES];        /* by cfg.iface index */

	pthread_mutex_t lock;
	pthread_cond_t cond;        /* budget freed, pending drained, queues */
	struct urb pending;         /* list head: URBs not yet completed */
	unsigned n_pending;
	unsigned ep0_in_backend;    /* control URBs submitted to the backend */
	unsigned n_urbs;            /* charged to the budget (until sent) */
	unsigned tx_urbs;           /* of which completed, reply not yet written */
	size_t tx_bytes;
	size_t bytes;
	bool closing;
	bool device_gone;
	struct tx_msg *tx_head, *tx_tail;
	bool tx_stop;
	bool tx_failed;
	struct urb *work_head, *work_tail;
	bool work_busy;             /* the worker is running a state change */
	bool work_stop;
	pthread_t writer, worker;
	char peer[64];
};

/* session_tx.c */
int session_tx_start(struct session *s);
/* Caller holds s->lock. */
void session_tx_enqueue(struct session *s, struct tx_msg *m);
/* Lets the writer send what is queued, then joins it. */
void session_tx_stop(struct session *s);
/* A RET_UNLINK message, allocated ahead of need (NULL when out of memory),
 * and its queuing with its seqnum and status; caller holds s->lock. */
struct tx_msg *session_tx_new_ret_unlink(void);
void session_tx_ret_unlink(struct session *s, struct tx_msg *m, uint32_t seqnum, int32_t status);

/* session_urb.c */
/* Reads the payload of a decoded CMD_SUBMIT and starts it. Returns 0, or a
 * negative value when the stream is broken and the session must end. */
int session_submit(struct session *s, const struct usbip_header *h);
/* The one completion path, for backend completions and local failures. */
void session_urb_complete(struct bk_transfer *t);
/* Submits to the backend; caller holds s->lock. On failure (returned) the
 * caller fails the URB once the lock is dropped. */
int session_urb_start(struct session *s, struct urb *u);
/* Fails an URB that never reached the backend, through the same path. */
void session_urb_fail(struct urb *u, int32_t status);
void session_urb_free(struct session *s, struct urb *u);

/* session_ctrl.c */
int session_worker_start(struct session *s);
void session_worker_stop(struct session *s);
/* Queues a control URB for the worker, which keeps control URBs in order
 * around state-changing requests. Caller holds s->lock. */
void session_worker_enqueue(struct session *s, struct urb *u);
/* Claims every interface of the active configuration (re-reads it). */
void session_claim_all(struct session *s);
void session_release_all(struct session *s);

#endif
