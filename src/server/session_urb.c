/* CMD_SUBMIT in, RET_SUBMIT out: one URB's way through the session.
 *
 * Everything here runs on the engine thread except session_urb_complete(),
 * which a backend may call on any thread: off the engine thread it only
 * posts the URB to the session and wakes the loop. Every outcome, also a
 * submit the session refuses itself, leaves through session_urb_finish(),
 * so the unlink rules, the budget and the cleanup live in one place.
 * URBs come from a per-session pool and keep their buffers across reuse;
 * pending URBs are found by seqnum through a hash table. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/bytes.h"
#include "server/ctrl_request.h"
#include "server/session_internal.h"

/* ---- pool and table --------------------------------------------------- */

static void free_iso(struct urb *u)
{
	free(u->iso_wire);
	free(u->iso_bk);
	free(u->iso_out);
	free(u->iso_packed);
	u->iso_packed = NULL;
	u->iso_wire = NULL;
	u->iso_bk = NULL;
	u->iso_out = NULL;
}

/* A data buffer: the device's own memory where the backend has some and
 * the buffer is big enough to be worth it (backend.h, buf_alloc), else
 * the heap. Device memory comes in powers of two: a new one is a mapping
 * (two syscalls and zeroed pages), so URBs of varying lengths should find
 * a pooled one that fits. */
static bool buf_new(struct session *s, struct urb *u, size_t len)
{
	const struct backend_ops *ops = s->backend ? s->backend->ops : NULL;
	u->buf_dev = NULL;
	u->buf_cap = len ? len : 1;
	if (len >= SESSION_DEV_MEM_MIN && s->handle && ops && ops->buf_alloc) {
		size_t cap = SESSION_DEV_MEM_MIN;
		while (cap < len)
			cap *= 2;
		u->buf = s->dev_bytes + cap <= SESSION_DEV_BYTES ? ops->buf_alloc(s->handle, cap)
								  : NULL;
		if (u->buf) {
			u->buf_cap = cap;
			u->buf_dev = s->handle;
			s->dev_bytes += cap;
			return true;
		}
	}
	u->buf = malloc(u->buf_cap);
	return u->buf != NULL;
}

/* s: the URB's session, or NULL once it is gone (an orphan). */
static void buf_release(struct session *s, struct urb *u)
{
	if (u->buf_dev) {
		if (s)
			s->dev_bytes -= u->buf_cap;
		u->buf_dev->backend->ops->buf_free(u->buf_dev, u->buf, u->buf_cap);
	} else {
		free(u->buf);
	}
	u->buf = NULL;
	u->buf_dev = NULL;
	u->buf_cap = 0;
}

/* The pooled URB to reuse for buf_len: among the first few, one whose
 * buffer is big enough (replacing a buffer costs more than a short look),
 * else the first. */
static struct urb **pool_pick(struct session *s, size_t buf_len)
{
	struct urb **pp = &s->pool;
	for (unsigned i = 0; i < SESSION_POOL_LOOK && *pp; i++, pp = &(*pp)->qnext)
		if ((*pp)->buf_cap >= buf_len)
			return pp;
	return &s->pool;
}

struct urb *session_urb_get(struct session *s, size_t buf_len)
{
	struct urb **pp = pool_pick(s, buf_len);
	struct urb *u = *pp;
	if (u) {
		*pp = u->qnext;
		s->pool_n--;
		s->pool_bytes -= u->buf_cap;
	} else {
		u = calloc(1, sizeof(*u));
		if (!u)
			return NULL;
	}
	if (u->buf_cap < buf_len || !u->buf) {
		buf_release(s, u);
		if (!buf_new(s, u, buf_len)) {
			free(u);
			return NULL;
		}
	}
	uint8_t *buf = u->buf;
	size_t cap = u->buf_cap;
	struct bk_handle *dev = u->buf_dev;
	memset(u, 0, sizeof(*u));
	u->buf = buf;
	u->buf_cap = cap;
	u->buf_dev = dev;
	u->s = s;
	u->state = URB_RX;
	u->unlink_seqnum = u->unlink_inline;
	u->unlink_cap = URB_INLINE_UNLINKS;
	atomic_init(&u->fate, URB_FATE_LIVE);
	return u;
}

int session_urb_add_unlink(struct session *s, struct urb *u, uint32_t seqnum)
{
	if (u->n_unlinks == u->unlink_cap) {
		unsigned cap = u->unlink_cap * 2;
		uint32_t *p = malloc(cap * sizeof(*p));
		if (!p)
			return -LNX_ENOMEM;
		memcpy(p, u->unlink_seqnum, u->n_unlinks * sizeof(*p));
		if (u->unlink_seqnum != u->unlink_inline)
			free(u->unlink_seqnum);
		u->unlink_seqnum = p;
		u->unlink_cap = cap;
	}
	u->unlink_seqnum[u->n_unlinks++] = seqnum;
	s->unlinks_waiting++;
	return 0;
}

static void free_unlinks(struct urb *u)
{
	if (u->unlink_seqnum && u->unlink_seqnum != u->unlink_inline)
		free(u->unlink_seqnum);
	u->unlink_seqnum = NULL;
}

void session_urb_put(struct session *s, struct urb *u)
{
	free_iso(u);
	free_unlinks(u);
	u->state = URB_FREE;
	if (s->pool_n < SESSION_POOL_MAX && s->pool_bytes + u->buf_cap <= SESSION_POOL_BYTES) {
		u->qnext = s->pool;
		s->pool = u;
		s->pool_n++;
		s->pool_bytes += u->buf_cap;
		return;
	}
	buf_release(s, u);
	free(u);
}

/* Before the device's handle closes: device memory is given back through it. */
void session_urb_pool_free(struct session *s)
{
	while (s->pool) {
		struct urb *u = s->pool;
		s->pool = u->qnext;
		buf_release(s, u);
		free(u);
	}
	s->pool_n = 0;
	s->pool_bytes = 0;
}

static struct urb **bucket(struct session *s, uint32_t seqnum)
{
	return &s->hash[seqnum & (SESSION_HASH_SIZE - 1)];
}

/* The URB with this seqnum not yet completed, or NULL (a second submit
 * with a seqnum still pending ends the session: session_rx.c). */
struct urb *session_urb_find(struct session *s, uint32_t seqnum)
{
	for (struct urb *u = *bucket(s, seqnum); u; u = u->hnext)
		if (u->cmd.seqnum == seqnum)
			return u;
	return NULL;
}

static void track(struct session *s, struct urb *u)
{
	struct urb **b = bucket(s, u->cmd.seqnum);
	u->hnext = *b;
	*b = u;
	u->next = s->pending.next;
	u->prev = &s->pending;
	s->pending.next->prev = u;
	s->pending.next = u;
	s->n_pending++;
	u->periodic = false; /* known once routed (session_urb_go, once per URB) */
}

static void untrack(struct session *s, struct urb *u)
{
	struct urb **pp = bucket(s, u->cmd.seqnum);
	while (*pp && *pp != u)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = u->hnext;
	u->prev->next = u->next;
	u->next->prev = u->prev;
	s->n_pending--;
	s->n_periodic -= u->periodic;
}

/* ---- submit ----------------------------------------------------------- */

/* Chooses the transfer type for a non-control endpoint. Returns 0 or a
 * positive Linux errno to fail the URB with. */
static int route_endpoint(struct session *s, struct urb *u, uint8_t address)
{
	pthread_mutex_lock(&s->state_lock);
	struct ep_route r = s->route[session_route_index(address)];
	bool claimed = r.ifidx >= 0 && s->claimed[r.ifidx];
	pthread_mutex_unlock(&s->state_lock);
	if (r.ifidx < 0)
		return LNX_EPIPE; /* no such endpoint in the current settings */
	if (!claimed)
		return LNX_EPERM;
	/* Only endpoint 0 carries a setup packet in our buffer layout; other
	 * control endpoints (almost never seen) are refused, not garbled. */
	if (r.type == USB_EP_CONTROL)
		return LNX_EINVAL;
	u->xfer.type = r.type;
	if ((r.type == USB_EP_ISO) != (u->iso_count > 0))
		return LNX_EINVAL; /* iso descriptors on a non-iso endpoint or none on iso */
	return 0;
}

static uint32_t backend_flags(const struct usbip_header *h, uint8_t type)
{
	uint32_t wire = h->u.cmd_submit.transfer_flags, flags = 0;
	/* As the kernel's server does: short-not-ok only for non-iso IN, zero
	 * packet only for bulk OUT. */
	if ((wire & USBIP_URB_SHORT_NOT_OK) && h->direction == USBIP_DIR_IN &&
	    type != BK_XFER_ISO)
		flags |= BK_F_SHORT_NOT_OK;
	if ((wire & USBIP_URB_ZERO_PACKET) && h->direction == USBIP_DIR_OUT &&
	    type == BK_XFER_BULK)
		flags |= BK_F_ZERO_PACKET;
	return flags;
}

/* URBs at the device (not yet answered) past the limits fail at once with
 * -ENOMEM. Waiting instead would stop the reader behind URBs that may never
 * complete (an idle interrupt IN), and with it the CMD_UNLINKs that would
 * end them. */
static bool over_device_limit(const struct session *s, const struct urb *u)
{
	unsigned at_device = s->n_urbs - s->tx_n - 1;
	size_t bytes = s->bytes - s->tx_bytes - u->cost;
	return at_device >= s->limits.max_urbs || bytes + u->cost > s->limits.max_bytes;
}

void session_urb_start(struct session *s, struct urb *u)
{
	const struct usbip_cmd_submit *c = &u->cmd.u.cmd_submit;
	uint32_t len = c->transfer_buffer_length;
	bool control = u->cmd.ep == 0;

	track(s, u); /* from here on CMD_UNLINK can find it */
	int fail = u->n_unlinks > 0 ? LNX_ECONNRESET : u->fail; /* unlinked before it came */
	if (!fail && over_device_limit(s, u)) {
		log_debug("session %s: seqnum %u refused: %u URBs in flight", s->peer,
			  u->cmd.seqnum, s->limits.max_urbs);
		fail = LNX_ENOMEM;
	}
	if (!fail && control) {
		/* As the kernel's USB core insists: wLength equals the buffer and
		 * the data stage goes the way bmRequestType says. */
		uint16_t wlength = get_le16(c->setup + 6);
		bool setup_in = (c->setup[0] & 0x80) != 0;
		if (u->iso_count > 0 || wlength != len ||
		    (len > 0 && setup_in != (u->cmd.direction == USBIP_DIR_IN)))
			fail = LNX_EINVAL;
		else
			u->special = ctrl_classify(c->setup).action != CTRL_FORWARD;
	}
	if (fail) {
		session_urb_fail(u, -fail);
		return;
	}
	/* Behind a state change that is queued or running, URBs wait in the
	 * ordered queue: control URBs complete in order (as on a real host
	 * controller; usbtest's queued control test checks it), and the others
	 * are routed by the settings the state change leaves. */
	if (u->special || s->ctrl_head || s->worker_busy) {
		session_ctrl_enqueue(s, u);
		return;
	}
	session_urb_go(s, u);
}

void session_urb_go(struct session *s, struct urb *u)
{
	if (u->cmd.ep == 0) {
		u->xfer.type = BK_XFER_CONTROL;
		u->xfer.endpoint = 0;
	} else {
		int fail = route_endpoint(s, u, u->xfer.endpoint);
		if (fail) {
			session_urb_fail(u, -fail);
			return;
		}
	}
	u->xfer.flags = backend_flags(&u->cmd, u->xfer.type);
	u->periodic = u->xfer.type == BK_XFER_INTERRUPT || u->xfer.type == BK_XFER_ISO;
	s->n_periodic += u->periodic;
	u->order = ++s->submit_order;
	s->ep0_in_backend += u->cmd.ep == 0; /* until it completes, held or not */
	if (session_abort_holds(s, u))
		return;
	session_urb_submit(s, u);
}

void session_urb_submit(struct session *s, struct urb *u)
{
	u->state = URB_BACKEND;
	/* Not at the backend now, so no completion races this (a bystander of
	 * a pipe abort goes back after one came). */
	atomic_store(&u->fate, URB_FATE_LIVE);
	int rc = bk_submit(s->handle, &u->xfer);
	log_debug("session %s: seqnum %u ep 0x%02x type %u len %u submitted (%d)", s->peer,
		  u->cmd.seqnum, u->xfer.endpoint, u->xfer.type,
		  u->cmd.u.cmd_submit.transfer_buffer_length, rc);
	if (rc < 0) {
		u->state = URB_RX;
		s->ep0_in_backend -= u->cmd.ep == 0;
		session_urb_fail(u, rc);
	}
}

void session_urb_fail(struct urb *u, int32_t status)
{
	u->xfer.status = status;
	u->xfer.actual_length = 0;
	for (uint32_t i = 0; u->iso_bk && i < u->iso_count; i++) {
		u->iso_bk[i].actual_length = 0;
		u->iso_bk[i].status = status;
	}
	session_urb_finish(u->s, u);
}

/* ---- completion ------------------------------------------------------- */

/* An URB its session gave up on; the session may be gone. */
static void free_orphan(struct urb *u)
{
	free_iso(u);
	free_unlinks(u);
	buf_release(NULL, u); /* the handle outlives a pending transfer (backend.h) */
	free(u);
}

void session_urb_complete(struct bk_transfer *t)
{
	struct urb *u = t->user;
	if (atomic_exchange(&u->fate, URB_FATE_COMPLETED) == URB_FATE_LOST) {
		free_orphan(u);
		return;
	}
	struct session *s = u->s;
	if (engine_on_thread(s->engine)) {
		session_urb_finish(s, u);
		/* The last URB out: no other completion can share its sendmsg,
		 * so it goes now, not after the backend's dispatch returns
		 * (libusb reaps once more first, then the loop reaches this
		 * session): the device's answer reaches the client sooner. */
		if (s->n_pending == 0 && !s->closing && engine_in_dispatch(s->engine))
			session_tx_flush(s);
		return;
	}
	pthread_mutex_lock(&s->post_lock);
	u->qnext = s->posted;
	s->posted = u;
	pthread_mutex_unlock(&s->post_lock);
	atomic_store(&s->has_posts, true);
	engine_wake(s->engine);
}

static void release_ret_submit(struct session *s, struct tx_msg *m)
{
	struct urb *u = (struct urb *)((char *)m - offsetof(struct urb, reply));
	s->n_urbs--;
	s->bytes -= u->cost;
	session_urb_put(s, u);
}

/* ISO IN: packets sit back to back by requested length; the reply carries
 * only their actual bytes, back to back, plus descriptors with the client's
 * original offsets. Returns the reply's data length. */
static uint32_t iso_finish(struct urb *u, int32_t *error_count)
{
	uint32_t src = 0, dst = 0;
	int32_t errors = 0;
	bool in = u->cmd.direction == USBIP_DIR_IN;
	for (uint32_t i = 0; i < u->iso_count; i++) {
		struct bk_iso_packet *p = &u->iso_bk[i];
		uint32_t actual = p->actual_length <= p->length ? p->actual_length : p->length;
		if (in && actual && dst != src)
			memmove(u->xfer.buffer + dst, u->xfer.buffer + src, actual);
		src += p->length;
		dst += actual;
		u->iso_wire[i].actual_length = actual;
		u->iso_wire[i].status = p->status;
		errors += p->status != 0;
	}
	usbip_iso_descs_encode(u->iso_wire, u->iso_count, u->iso_out,
			       (size_t)u->iso_count * USBIP_ISO_DESC_SIZE);
	*error_count = errors;
	return dst;
}

void session_urb_finish(struct session *s, struct urb *u)
{
	struct bk_transfer *t = &u->xfer;
	log_debug("session %s: seqnum %u completed: status %d, %u bytes, %u unlinks%s", s->peer,
		  u->cmd.seqnum, t->status, t->actual_length, u->n_unlinks,
		  engine_on_thread(s->engine) ? "" : " (posted)");
	if (u->in_abort && session_abort_done(s, u))
		return; /* a bystander of a pipe abort: it goes to the backend again */
	if (u->moved) {
		/* It resumed after a pipe abort: count what it moved before. */
		t->actual_length += u->moved;
		t->buffer -= u->moved;
		t->length += u->moved;
		u->moved = 0;
	}
	untrack(s, u);
	s->unlinks_waiting -= u->n_unlinks;
	if (u->state == URB_BACKEND || u->state == URB_HELD)
		s->ep0_in_backend -= u->cmd.ep == 0;
	if (u->state == URB_WORKER)
		s->worker_busy = false;
	u->state = URB_DONE;

	if (u->n_unlinks > 0 && t->status == -LNX_ECONNRESET) {
		/* The unlink won: its RET_UNLINK is the only answer. */
		metrics_count_unlink(s->metrics, true);
		for (unsigned i = 0; i < u->n_unlinks; i++)
			session_tx_ret_unlink(s, u->unlink_seqnum[i], -LNX_ECONNRESET);
		s->n_urbs--;
		s->bytes -= u->cost;
		session_urb_put(s, u);
		return;
	}

	struct usbip_header r = {
		.command = USBIP_RET_SUBMIT,
		.seqnum = u->cmd.seqnum,
	};
	struct usbip_ret_submit *ret = &r.u.ret_submit;
	ret->status = t->status;
	ret->number_of_packets = u->cmd.u.cmd_submit.number_of_packets;
	bool in = u->cmd.direction == USBIP_DIR_IN;
	uint32_t data_len = 0;
	uint8_t *data = u->buf + (u->cmd.ep == 0 ? USBIP_SETUP_SIZE : 0);

	u->reply.part[1] = (struct iovec){ NULL, 0 };
	if (u->iso_count > 0 && u->iso_bk) {
		uint32_t sum = iso_finish(u, &ret->error_count);
		ret->actual_length = sum;
		ret->start_frame = t->start_frame;
		data_len = in ? sum : 0;
		data = t->buffer;
		u->reply.part[1] = (struct iovec){ u->iso_out,
						   (size_t)u->iso_count * USBIP_ISO_DESC_SIZE };
	} else {
		uint32_t max = u->cmd.u.cmd_submit.transfer_buffer_length;
		ret->actual_length = t->actual_length <= max ? t->actual_length : max;
		data_len = in ? ret->actual_length : 0;
	}
	usbip_header_encode(&r, u->reply.hdr, sizeof(u->reply.hdr));
	metrics_count_urb(s->metrics, in, ret->actual_length, ret->status);
	if (s->trace)
		trace_ret(s->trace, s->who, &r, u->cmd.ep, in);
	u->reply.part[0] = (struct iovec){ data, data_len };
	u->reply.release = release_ret_submit;
	u->reply.cost = u->cost;
	session_tx_enqueue(s, &u->reply);

	/* It completed before the unlink could win: the RET_SUBMIT stands and
	 * the unlink is answered after it with status 0. */
	if (u->n_unlinks > 0)
		metrics_count_unlink(s->metrics, false);
	for (unsigned i = 0; i < u->n_unlinks; i++)
		session_tx_ret_unlink(s, u->unlink_seqnum[i], 0);
}

unsigned session_urb_give_up(struct session *s)
{
	unsigned n = 0;
	struct urb *u = s->pending.next;
	while (u != &s->pending) {
		struct urb *next = u->next;
		int live = URB_FATE_LIVE;
		/* A completion already under way (posted, or being posted) wins:
		 * the next turn takes it as usual. */
		if (u->state == URB_BACKEND &&
		    atomic_compare_exchange_strong(&u->fate, &live, URB_FATE_LOST)) {
			untrack(s, u);
			s->unlinks_waiting -= u->n_unlinks;
			s->ep0_in_backend -= u->cmd.ep == 0;
			s->n_urbs--;
			s->bytes -= u->cost;
			/* Unlinked: it never completes now, so each unlink won. */
			for (unsigned i = 0; i < u->n_unlinks; i++)
				session_tx_ret_unlink(s, u->unlink_seqnum[i], -LNX_ECONNRESET);
			n++;
		}
		u = next;
	}
	return n;
}
