/* CMD_SUBMIT in, RET_SUBMIT out: one URB's way through the session.
 *
 * The reader turns a submit into a backend transfer (endpoint type from the
 * active configuration, never guessed); every outcome, including a submit
 * the session refuses itself, leaves through session_urb_complete(), so the
 * unlink rules and the cleanup live in one place. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/bytes.h"
#include "common/net.h"
#include "server/ctrl_request.h"
#include "server/session_internal.h"

static void release_ret_submit(struct session *s, struct tx_msg *m);

void session_urb_free(struct session *s, struct urb *u)
{
	s->n_urbs--;
	s->bytes -= u->cost;
	if (u->queued) {
		s->tx_urbs--;
		s->tx_bytes -= u->cost;
	}
	pthread_cond_broadcast(&s->cond);
	free(u->buf);
	free(u->iso_wire);
	free(u->iso_bk);
	free(u->iso_out);
	free(u);
}

static void release_ret_submit(struct session *s, struct tx_msg *m)
{
	struct urb *u = (struct urb *)((char *)m - offsetof(struct urb, reply));
	session_urb_free(s, u);
}

/* Charges an URB to the session's budget. Two limits, each max_urbs URBs
 * and max_bytes bytes:
 * - replies waiting to be written: past it the reader waits, so a client
 *   that stops reading stops being read (back-pressure on the socket);
 * - URBs at the device: past it the URB fails at once (*over). Waiting
 *   there instead would stop the reader behind URBs that may never
 *   complete (an idle interrupt IN), and with it the CMD_UNLINKs that
 *   would end them.
 * Returns false if the session is closing. */
static bool budget_take(struct session *s, size_t cost, bool *over)
{
	const struct session_limits *lim = &s->limits;
	pthread_mutex_lock(&s->lock);
	while (!s->closing && s->tx_urbs > 0 &&
	       (s->tx_urbs >= lim->max_urbs || s->tx_bytes + cost > lim->max_bytes))
		pthread_cond_wait(&s->cond, &s->lock);
	bool ok = !s->closing;
	if (ok) {
		*over = s->n_urbs - s->tx_urbs >= lim->max_urbs ||
			s->bytes - s->tx_bytes + cost > lim->max_bytes;
		s->n_urbs++;
		s->bytes += cost;
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static bool iso_is_back_to_back(const struct usbip_iso_desc *d, uint32_t count)
{
	uint32_t pos = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (d[i].offset != pos)
			return false;
		pos += d[i].length;
	}
	return true;
}

/* Reads the iso descriptors and lays the packets out the backend's way
 * (back to back). Returns 0, a positive Linux errno to fail the URB with,
 * or a negative value for a broken stream. */
static int read_iso(struct session *s, struct urb *u, uint32_t buffer_length)
{
	uint32_t count = u->iso_count;
	size_t wire_len = (size_t)count * USBIP_ISO_DESC_SIZE;
	uint8_t *raw = malloc(wire_len);
	u->iso_wire = calloc(count, sizeof(*u->iso_wire));
	u->iso_bk = calloc(count, sizeof(*u->iso_bk));
	u->iso_out = malloc(wire_len);
	if (!raw || !u->iso_wire || !u->iso_bk || !u->iso_out) {
		free(raw);
		return -LNX_ENOMEM;
	}
	ssize_t r = net_read_full(s->fd, raw, wire_len);
	if (r != (ssize_t)wire_len) {
		free(raw);
		return -LNX_EPROTO;
	}
	int rc = usbip_iso_descs_decode(raw, wire_len, count, u->iso_wire);
	free(raw);
	if (rc == USBIP_OK)
		rc = usbip_iso_validate_submit(u->iso_wire, count, buffer_length);
	if (rc != USBIP_OK) {
		log_warn("session %s: seqnum %u: %s", s->peer, u->cmd.seqnum,
			 usbip_codec_strerror(rc));
		return LNX_EINVAL;
	}

	uint64_t total = 0;
	for (uint32_t i = 0; i < count; i++) {
		u->iso_bk[i].length = u->iso_wire[i].length;
		total += u->iso_wire[i].length;
	}
	if (total > buffer_length)
		return LNX_EINVAL;

	/* OUT packets the client placed elsewhere are gathered back to back. */
	if (!u->cmd.direction && !iso_is_back_to_back(u->iso_wire, count)) {
		uint8_t *packed = malloc(total ? total : 1);
		if (!packed)
			return -LNX_ENOMEM;
		size_t pos = 0;
		for (uint32_t i = 0; i < count; i++) {
			memcpy(packed + pos, u->buf + u->iso_wire[i].offset, u->iso_wire[i].length);
			pos += u->iso_wire[i].length;
		}
		free(u->buf);
		u->buf = packed;
		u->xfer.buffer = packed;
	}
	u->xfer.length = (uint32_t)total;
	u->xfer.num_iso_packets = count;
	u->xfer.iso = u->iso_bk;
	return 0;
}

/* Chooses the transfer type for a non-control endpoint. Returns 0 or a
 * positive Linux errno to fail the URB with. */
static int route_endpoint(struct session *s, struct urb *u, uint8_t address)
{
	struct usb_endpoint_info ep;
	uint8_t ifnum;
	int rc = 0;

	pthread_mutex_lock(&s->state_lock);
	if (!s->have_cfg ||
	    usb_desc_find_endpoint(&s->cfg, s->cur_alt, address, &ep, &ifnum) < 0) {
		rc = LNX_EPIPE; /* no such endpoint in the current settings */
	} else {
		int idx = usb_desc_find_interface(&s->cfg, ifnum);
		if (idx < 0 || !s->claimed[idx])
			rc = LNX_EPERM;
	}
	pthread_mutex_unlock(&s->state_lock);
	if (rc)
		return rc;

	/* Only endpoint 0 carries a setup packet in our buffer layout; other
	 * control endpoints (almost never seen) are refused, not garbled. */
	if (ep.type == USB_EP_CONTROL)
		return LNX_EINVAL;
	u->xfer.type = ep.type;
	if ((ep.type == USB_EP_ISO) != (u->iso_count > 0))
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

int session_submit(struct session *s, const struct usbip_header *h)
{
	const struct usbip_cmd_submit *c = &h->u.cmd_submit;
	uint32_t len = c->transfer_buffer_length;
	bool control = h->ep == 0;
	size_t setup = control ? USBIP_SETUP_SIZE : 0;
	uint32_t iso_count = usbip_iso_count(c->number_of_packets);
	size_t cost = sizeof(struct urb) + setup + len +
		      (size_t)iso_count * (USBIP_ISO_DESC_SIZE * 2 + sizeof(struct usbip_iso_desc));

	bool over;
	if (!budget_take(s, cost, &over))
		return -LNX_ESHUTDOWN;

	struct urb *u = calloc(1, sizeof(*u));
	uint8_t *buf = malloc(setup + len + 1);
	if (!u || !buf) {
		free(u);
		free(buf);
		pthread_mutex_lock(&s->lock);
		s->n_urbs--;
		s->bytes -= cost;
		pthread_mutex_unlock(&s->lock);
		return -LNX_ENOMEM;
	}
	u->s = s;
	u->cmd = *h;
	u->cost = cost;
	u->buf = buf;
	u->iso_count = iso_count;
	u->xfer.buffer = buf;
	u->xfer.length = (uint32_t)(setup + len);
	u->xfer.complete = session_urb_complete;
	u->xfer.user = u;
	u->xfer.endpoint = (uint8_t)(h->ep | (h->direction == USBIP_DIR_IN ? 0x80 : 0));
	if (control)
		memcpy(buf, c->setup, USBIP_SETUP_SIZE);

	/* Read the rest of the message before deciding anything, so the stream
	 * stays in step even for URBs we refuse. */
	int fail = 0;
	if (h->direction == USBIP_DIR_OUT && len > 0 &&
	    net_read_full(s->fd, buf + setup, len) != (ssize_t)len)
		fail = -LNX_EPROTO;
	if (!fail && iso_count > 0)
		fail = read_iso(s, u, len);
	if (fail < 0) {
		pthread_mutex_lock(&s->lock);
		session_urb_free(s, u);
		pthread_mutex_unlock(&s->lock);
		return fail;
	}

	if (!fail && over) {
		log_debug("session %s: seqnum %u refused: %u URBs in flight", s->peer, h->seqnum,
			  s->limits.max_urbs);
		fail = LNX_ENOMEM;
	}

	struct ctrl_decision ctrl = { CTRL_FORWARD, 0, 0 };
	if (!fail && control) {
		u->xfer.type = BK_XFER_CONTROL;
		u->xfer.endpoint = 0;
		/* As the kernel's USB core insists: wLength equals the buffer and
		 * the data stage goes the way bmRequestType says. */
		uint16_t wlength = get_le16(c->setup + 6);
		bool setup_in = (c->setup[0] & 0x80) != 0;
		if (iso_count > 0 || wlength != len ||
		    (len > 0 && setup_in != (h->direction == USBIP_DIR_IN)))
			fail = LNX_EINVAL;
		else
			ctrl = ctrl_classify(c->setup);
	} else if (!fail) {
		fail = route_endpoint(s, u, u->xfer.endpoint);
	}
	u->xfer.flags = backend_flags(h, u->xfer.type);

	pthread_mutex_lock(&s->lock);
	/* In the pending list from here on, so CMD_UNLINK can find it. */
	u->next = s->pending.next;
	u->prev = &s->pending;
	s->pending.next->prev = u;
	s->pending.next = u;
	s->n_pending++;
	if (fail) {
		pthread_mutex_unlock(&s->lock);
		session_urb_fail(u, -fail);
		return 0;
	}
	/* Control transfers complete in order, as on a real host controller
	 * (usbtest's queued control test checks it). The worker sequences
	 * them whenever a state-changing request is queued or running: that
	 * request waits for the control URBs before it, later ones wait for
	 * it, and the reader never blocks. */
	if (control) {
		u->special = ctrl.action != CTRL_FORWARD;
		if (u->special || s->work_head || s->work_busy) {
			session_worker_enqueue(s, u);
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
	}
	int rc = session_urb_start(s, u);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0)
		session_urb_fail(u, rc);
	return 0;
}

int session_urb_start(struct session *s, struct urb *u)
{
	u->in_backend = true;
	s->ep0_in_backend += u->cmd.ep == 0;
	int rc = bk_submit(s->handle, &u->xfer);
	log_debug("session %s: seqnum %u ep 0x%02x type %u len %u submitted (%d)", s->peer,
		  u->cmd.seqnum, u->xfer.endpoint, u->xfer.type,
		  u->cmd.u.cmd_submit.transfer_buffer_length, rc);
	if (rc < 0) {
		u->in_backend = false;
		s->ep0_in_backend -= u->cmd.ep == 0;
	}
	return rc;
}

void session_urb_fail(struct urb *u, int32_t status)
{
	u->xfer.status = status;
	u->xfer.actual_length = 0;
	for (uint32_t i = 0; i < u->iso_count; i++) {
		u->iso_bk[i].actual_length = 0;
		u->iso_bk[i].status = status;
	}
	session_urb_complete(&u->xfer);
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
			memmove(u->buf + dst, u->buf + src, actual);
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

void session_urb_complete(struct bk_transfer *t)
{
	struct urb *u = t->user;
	struct session *s = u->s;

	log_debug("session %s: seqnum %u completed: status %d, %u bytes", s->peer, u->cmd.seqnum,
		  t->status, t->actual_length);
	pthread_mutex_lock(&s->lock);
	u->prev->next = u->next;
	u->next->prev = u->prev;
	if (u->in_backend)
		s->ep0_in_backend -= u->cmd.ep == 0;
	u->in_backend = false;
	s->n_pending--;

	if (u->n_unlinks > 0 && t->status == -LNX_ECONNRESET) {
		/* The unlink won: its RET_UNLINK is the only answer. */
		for (unsigned i = 0; i < u->n_unlinks; i++)
			session_tx_ret_unlink(s, u->unlink_reply[i], u->unlink_seqnum[i],
					      -LNX_ECONNRESET);
		session_urb_free(s, u);
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
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
	size_t data_off = u->cmd.ep == 0 ? USBIP_SETUP_SIZE : 0;

	if (u->iso_count > 0) {
		uint32_t sum = iso_finish(u, &ret->error_count);
		ret->actual_length = sum;
		ret->start_frame = t->start_frame;
		data_len = in ? sum : 0;
		u->reply.part[1] = (struct iovec){ u->iso_out,
						   (size_t)u->iso_count * USBIP_ISO_DESC_SIZE };
	} else {
		uint32_t max = u->cmd.u.cmd_submit.transfer_buffer_length;
		ret->actual_length = t->actual_length <= max ? t->actual_length : max;
		data_len = in ? ret->actual_length : 0;
	}
	usbip_header_encode(&r, u->reply.hdr, sizeof(u->reply.hdr));
	u->reply.part[0] = (struct iovec){ u->buf + data_off, data_len };
	u->reply.release = release_ret_submit;
	u->queued = true;
	s->tx_urbs++;
	s->tx_bytes += u->cost;
	session_tx_enqueue(s, &u->reply);

	/* It completed before the unlink could win: the RET_SUBMIT stands and
	 * the unlink is answered after it with status 0. */
	for (unsigned i = 0; i < u->n_unlinks; i++)
		session_tx_ret_unlink(s, u->unlink_reply[i], u->unlink_seqnum[i], 0);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}
