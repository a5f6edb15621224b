/* Per-URB unlink rules on a backend whose cancel aborts the whole pipe.
 *
 * libusb on macOS cancels by aborting the endpoint (BK_QUIRK_CANCEL_
 * ABORTS_ENDPOINT, set by libusb_os_darwin.c; the sim's darwin mode does
 * the same here): every transfer pending on it ends with -ECONNRESET, not
 * just the one a CMD_UNLINK named. The client must still see the kernel's
 * rules: only the unlinked URBs end (RET_UNLINK -ECONNRESET), the others
 * complete as if nothing had happened, in their order.
 *
 * So the first unlink of an URB at the backend marks every URB then at the
 * backend on that endpoint as taken along and cancels once. Until each of
 * their completions is in, URBs for that endpoint wait here (URB_HELD):
 * a submit on the half-aborted pipe would overtake the bystanders. A
 * bystander (never unlinked) that comes back -ECONNRESET waits too; when
 * the last completion is in, the waiting URBs go to the backend again in
 * the order they first went there.
 *
 * Data a bystander moved before the abort (only the one at the head of the
 * pipe can have: the others had not started) is not moved twice and not
 * lost: a bulk or interrupt URB resumes after it, with the rest of its
 * buffer, and its reply counts both parts (a short packet would have ended
 * it, so what it moved were whole packets and the stream continues as
 * though uninterrupted). A control or isochronous URB cannot resume (the
 * request would run twice; its frames have passed): it completes with
 * -EPROTO and what it moved, as an URB hit by a bus error would.
 *
 * Everything here runs on the engine thread. */
#include "common/log.h"
#include "server/session_internal.h"

static bool aborts_endpoint(const struct session *s)
{
	return (s->handle->quirks & BK_QUIRK_CANCEL_ABORTS_ENDPOINT) != 0;
}

static unsigned pipe_index(const struct urb *u)
{
	return u->cmd.ep == 0 ? 0 : session_route_index(u->xfer.endpoint);
}

/* Inserts u into its endpoint's waiting list by order. */
static void wait_in_order(struct session *s, struct urb *u)
{
	struct urb **pp = &s->abort[pipe_index(u)].wait;
	while (*pp && (*pp)->order < u->order)
		pp = &(*pp)->qnext;
	u->qnext = *pp;
	*pp = u;
	u->state = URB_HELD;
}

void session_abort_cancel(struct session *s, struct urb *u)
{
	if (u->state == URB_HELD) {
		/* Not at the backend: it ends here, the unlink wins. */
		struct urb **pp = &s->abort[pipe_index(u)].wait;
		while (*pp && *pp != u)
			pp = &(*pp)->qnext;
		if (*pp)
			*pp = u->qnext;
		u->qnext = NULL;
		session_urb_fail(u, -LNX_ECONNRESET);
		return;
	}
	if (u->state != URB_BACKEND)
		return;
	if (!aborts_endpoint(s)) {
		bk_cancel(s->handle, &u->xfer);
		return;
	}
	if (u->in_abort)
		return; /* its pipe is being aborted already */
	unsigned idx = pipe_index(u);
	unsigned n = 0;
	for (struct urb *o = s->pending.next; o != &s->pending; o = o->next) {
		if (o->state == URB_BACKEND && !o->in_abort && pipe_index(o) == idx) {
			o->in_abort = true;
			n++;
		}
	}
	if (bk_cancel(s->handle, &u->xfer) < 0) {
		/* Its result was decided already: nothing was aborted. */
		for (struct urb *o = s->pending.next; o != &s->pending; o = o->next)
			if (o->state == URB_BACKEND && pipe_index(o) == idx)
				o->in_abort = false;
		return;
	}
	s->abort[idx].left += n;
	log_debug("session %s: seqnum %u: aborting ep 0x%02x takes %u URBs along", s->peer,
		  u->cmd.seqnum, u->xfer.endpoint, n);
}

bool session_abort_holds(struct session *s, struct urb *u)
{
	if (!aborts_endpoint(s) || s->abort[pipe_index(u)].left == 0)
		return false;
	wait_in_order(s, u);
	return true;
}

/* The abort is over: the waiting URBs go back to the backend in order. */
static void resume(struct session *s, unsigned idx)
{
	struct ep_abort *a = &s->abort[idx];
	while (a->left == 0 && a->wait) {
		struct urb *u = a->wait;
		a->wait = u->qnext;
		u->qnext = NULL;
		session_urb_submit(s, u);
	}
}

bool session_abort_done(struct session *s, struct urb *u)
{
	struct bk_transfer *t = &u->xfer;
	unsigned idx = pipe_index(u);
	bool bystander = u->n_unlinks == 0 && t->status == -LNX_ECONNRESET && !s->closing;
	bool taken = false;

	u->in_abort = false;
	s->abort[idx].left--;
	if (bystander && t->actual_length > 0 &&
	    (t->type == BK_XFER_CONTROL || t->type == BK_XFER_ISO)) {
		t->status = -LNX_EPROTO; /* cannot be repeated: ends with what it moved */
	} else if (bystander && t->actual_length >= t->length) {
		t->status = 0; /* it was done when the abort came */
	} else if (bystander) {
		u->moved += t->actual_length;
		t->buffer += t->actual_length;
		t->length -= t->actual_length;
		t->actual_length = 0;
		wait_in_order(s, u);
		taken = true;
	}
	resume(s, idx);
	return taken;
}

void session_abort_fail_waiting(struct session *s)
{
	for (unsigned i = 0; i < SESSION_ROUTES; i++) {
		while (s->abort[i].wait) {
			struct urb *u = s->abort[i].wait;
			s->abort[i].wait = u->qnext;
			u->qnext = NULL;
			session_urb_fail(u, -LNX_ESHUTDOWN);
		}
	}
}
