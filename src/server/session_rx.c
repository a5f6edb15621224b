/* The session's input: the command stream framed out of a read buffer.
 *
 * One recv fills the buffer with as many commands as the socket holds; the
 * parser then starts every complete one. A CMD_SUBMIT's body (OUT data,
 * iso descriptors) goes into its URB's own buffer: what is already in the
 * read buffer is copied, a large remainder is read straight into the URB.
 * Every length was bounded by the header decoder before anything is
 * allocated here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/net.h"
#include "server/session_internal.h"

/* A body remainder at least this big is read straight into the URB. */
#define RX_DIRECT_MIN (16u * 1024u)
/* A read into the buffer takes at most this much: the rest of a big OUT
 * payload behind a header then goes straight into its URB, copied once
 * less (the kernel's server reads it into the URB too). Still hundreds of
 * small commands per read. */
#define RX_BUFFERED_MAX RX_DIRECT_MIN
#define RX_READS_PER_TURN 4

bool session_rx_blocked(const struct session *s)
{
	return s->tx_n > 0 &&
	       (s->tx_n >= s->limits.max_urbs || s->tx_bytes >= s->limits.max_bytes);
}

bool session_rx_has_command(const struct session *s)
{
	size_t avail = s->rx_len - s->rx_off;
	return s->rx_urb ? avail > 0 : avail >= USBIP_HEADER_SIZE;
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

/* Decodes the iso descriptors behind the data and lays the packets out the
 * backend's way (back to back). Returns 0, a positive Linux errno to fail
 * the URB with, or a negative one for the session. */
static int parse_iso(struct session *s, struct urb *u, const uint8_t *raw)
{
	uint32_t count = u->iso_count;
	uint32_t buffer_length = u->cmd.u.cmd_submit.transfer_buffer_length;
	size_t wire_len = (size_t)count * USBIP_ISO_DESC_SIZE;
	u->iso_wire = calloc(count, sizeof(*u->iso_wire));
	u->iso_bk = calloc(count, sizeof(*u->iso_bk));
	u->iso_out = malloc(wire_len);
	if (!u->iso_wire || !u->iso_bk || !u->iso_out)
		return LNX_ENOMEM;
	int rc = usbip_iso_descs_decode(raw, wire_len, count, u->iso_wire);
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
	if (total > buffer_length) {
		log_warn("session %s: seqnum %u: iso packet lengths add up to %llu, past the "
			 "buffer's %u", s->peer, u->cmd.seqnum, (unsigned long long)total,
			 buffer_length);
		return LNX_EINVAL;
	}

	/* OUT packets the client placed elsewhere are gathered back to back. */
	if (!u->cmd.direction && !u->fail && !iso_is_back_to_back(u->iso_wire, count)) {
		u->iso_packed = malloc(total ? total : 1);
		if (!u->iso_packed)
			return LNX_ENOMEM;
		size_t pos = 0;
		for (uint32_t i = 0; i < count; i++) {
			memcpy(u->iso_packed + pos, u->buf + u->iso_wire[i].offset,
			       u->iso_wire[i].length);
			pos += u->iso_wire[i].length;
		}
		u->xfer.buffer = u->iso_packed;
	}
	u->xfer.length = (uint32_t)total;
	u->xfer.num_iso_packets = count;
	u->xfer.iso = u->iso_bk;
	return 0;
}

static void adopt_early_unlink(struct session *s, struct urb *u);

/* The whole message is in: decide and start. */
static void body_done(struct session *s)
{
	struct urb *u = s->rx_urb;
	s->rx_urb = NULL;
	if (s->n_early > 0)
		adopt_early_unlink(s, u);
	if (u->iso_count > 0) {
		/* Descriptors sit behind the data area, whichever the direction. */
		int rc = parse_iso(s, u, u->buf + u->iso_raw_off);
		if (rc > 0 && !u->fail)
			u->fail = rc;
	}
	session_urb_start(s, u);
}

/* A CMD_SUBMIT header: takes an URB with room for setup, data and iso
 * descriptors, and starts reading its body. Returns false if the session
 * must end. */
static bool begin_submit(struct session *s, const struct usbip_header *h)
{
	const struct usbip_cmd_submit *c = &h->u.cmd_submit;
	uint32_t len = c->transfer_buffer_length;
	size_t setup = h->ep == 0 ? USBIP_SETUP_SIZE : 0;
	uint32_t iso_count = usbip_iso_count(c->number_of_packets);
	size_t iso_raw = (size_t)iso_count * USBIP_ISO_DESC_SIZE;
	size_t cost = sizeof(struct urb) + setup + len +
		      (size_t)iso_count * (USBIP_ISO_DESC_SIZE * 2 + sizeof(struct usbip_iso_desc) +
					   sizeof(struct bk_iso_packet));

	/* Past the budget at the device the URB fails with -ENOMEM, before
	 * anything is allocated for its data: it needs no data buffer (OUT
	 * data is read and dropped), and neither does an URB whose buffer
	 * cannot be had, which fails the same way instead of the session. */
	bool over = s->n_urbs - s->tx_n >= s->limits.max_urbs ||
		    s->bytes - s->tx_bytes + cost > s->limits.max_bytes;
	size_t data = over ? 0 : len;
	struct urb *u = session_urb_get(s, setup + data + iso_raw);
	if (!u && data > 0) {
		over = true;
		data = 0;
		u = session_urb_get(s, setup + iso_raw);
	}
	if (!u) {
		log_error("session %s: out of memory for seqnum %u, closing", s->peer, h->seqnum);
		return false;
	}
	if (over) {
		log_debug("session %s: seqnum %u refused: over the session's budget", s->peer,
			  h->seqnum);
		u->fail = LNX_ENOMEM;
		cost -= len;
	}
	u->cmd = *h;
	u->cost = cost;
	s->n_urbs++;
	s->bytes += cost;
	u->iso_count = iso_count;
	u->iso_raw_off = setup + data;
	u->xfer.buffer = u->buf;
	u->xfer.length = (uint32_t)(setup + data);
	u->xfer.complete = session_urb_complete;
	u->xfer.user = u;
	u->xfer.endpoint = (uint8_t)(h->ep | (h->direction == USBIP_DIR_IN ? 0x80 : 0));
	if (setup)
		memcpy(u->buf, c->setup, USBIP_SETUP_SIZE);

	/* Body: OUT data (or as many bytes dropped), then iso descriptors. */
	bool out = h->direction == USBIP_DIR_OUT;
	s->rx_urb = u;
	s->rx_skip = out && over ? len : 0;
	s->rx_dst = u->buf + (out ? setup : setup + data);
	s->rx_need = (out ? data : 0) + iso_raw;
	return true;
}

/* A submit seqnum the client has not sent yet (seqnums only grow, modulo
 * 2^32)? */
static bool not_yet_submitted(const struct session *s, uint32_t seqnum)
{
	return !s->any_submit || (int32_t)(seqnum - s->last_submit) > 0;
}

/* An unlink that can have overtaken its submit: the victim's seqnum was
 * handed out before the unlink's own, and no submit with it came yet. A
 * victim numbered after the unlink never existed. */
static bool overtook_its_submit(const struct session *s, const struct usbip_header *h)
{
	uint32_t victim = h->u.cmd_unlink.seqnum;
	return not_yet_submitted(s, victim) && (int32_t)(h->seqnum - victim) > 0;
}

/* An unlink that overtook its submit: kept until the submit comes, or
 * answered at once with status 0 when too many wait. */
static void defer_unlink(struct session *s, const struct usbip_header *h)
{
	if (s->n_early == SESSION_EARLY_UNLINKS) {
		log_warn("session %s: too many unlinks ahead of their submits; answering seqnum %u",
			 s->peer, s->early[0].seqnum);
		session_tx_ret_unlink(s, s->early[0].seqnum, 0);
		memmove(&s->early[0], &s->early[1], (s->n_early - 1) * sizeof(s->early[0]));
		s->n_early--;
	}
	s->early[s->n_early].victim = h->u.cmd_unlink.seqnum;
	s->early[s->n_early].seqnum = h->seqnum;
	s->n_early++;
}

/* A submit that arrives already unlinked takes its unlink along: it fails
 * unstarted with -ECONNRESET, and the RET_UNLINK is its only answer. */
static void adopt_early_unlink(struct session *s, struct urb *u)
{
	for (unsigned i = 0; i < s->n_early;) {
		if (s->early[i].victim != u->cmd.seqnum) {
			i++;
			continue;
		}
		if (session_urb_add_unlink(s, u, s->early[i].seqnum) < 0) {
			/* No answer would be right before the URB's end. */
			log_error("session %s: out of memory for an unlink, closing", s->peer);
			session_begin_close(s, "out of memory");
		}
		memmove(&s->early[i], &s->early[i + 1], (s->n_early - i - 1) * sizeof(s->early[0]));
		s->n_early--;
	}
}

/* Answers a CMD_UNLINK per the rules in PROTOCOL.md. Returns false if the
 * session must end. */
static bool handle_unlink(struct session *s, const struct usbip_header *h)
{
	struct urb *u = session_urb_find(s, h->u.cmd_unlink.seqnum);
	log_debug("session %s: seqnum %u unlinks %u: %s", s->peer, h->seqnum,
		  h->u.cmd_unlink.seqnum, !u ? "not pending" : u->state == URB_BACKEND ? "at the device"
							     : "queued");
	if (!u && overtook_its_submit(s, h)) {
		defer_unlink(s, h);
		return true;
	}
	if (!u) {
		/* Already answered (its RET_SUBMIT is queued or sent) or unknown:
		 * status 0, and any RET_SUBMIT stands. */
		session_tx_ret_unlink(s, h->seqnum, 0);
		return true;
	}
	/* The completion answers it, whichever way it goes, and every later
	 * unlink of the same URB with the same verdict: none may be answered
	 * before the URB's own end (status 0 then would tell the client its
	 * RET_SUBMIT had gone out). vhci sends one per URB; a client that
	 * piles up more than it could have URBs is not vhci. */
	if (s->unlinks_waiting >= 2 * s->limits.max_urbs) {
		log_warn("session %s: %u unlinks waiting for their URBs, closing", s->peer,
			 s->unlinks_waiting);
		return false;
	}
	if (session_urb_add_unlink(s, u, h->seqnum) < 0) {
		log_error("session %s: out of memory for an unlink, closing", s->peer);
		return false;
	}
	/* A cancel that comes too late just lets the RET_SUBMIT stand. */
	if (u->n_unlinks == 1)
		session_abort_cancel(s, u);
	return true;
}

/* One 48-byte header. Returns false if the session must end. */
static bool handle_header(struct session *s, const uint8_t *raw)
{
	struct usbip_header h;
	int rc = usbip_header_decode(raw, USBIP_HEADER_SIZE, &h);
	if (rc != USBIP_OK) {
		log_warn("session %s: malformed command (%s), closing", s->peer,
			 usbip_codec_strerror(rc));
		return false;
	}
	if (s->trace)
		trace_cmd(s->trace, s->who, &h);
	if (h.devid != s->devid) {
		log_warn("session %s: devid 0x%08x is not the imported 0x%08x, closing", s->peer,
			 h.devid, s->devid);
		return false;
	}
	if (h.command == USBIP_CMD_SUBMIT) {
		/* Two pending URBs with one seqnum: every later reply and unlink
		 * would be ambiguous (vhci never reuses one while pending). */
		if (session_urb_find(s, h.seqnum)) {
			log_warn("session %s: seqnum %u submitted again while pending, closing",
				 s->peer, h.seqnum);
			return false;
		}
		if (not_yet_submitted(s, h.seqnum)) {
			s->last_submit = h.seqnum;
			s->any_submit = true;
		}
		return begin_submit(s, &h);
	}
	if (h.command == USBIP_CMD_UNLINK)
		return handle_unlink(s, &h);
	log_warn("session %s: unexpected command %u from client, closing", s->peer, h.command);
	return false;
}

void session_rx_parse(struct session *s)
{
	while (!s->closing) {
		if (s->rx_urb && s->rx_skip > 0) {
			size_t avail = s->rx_len - s->rx_off;
			size_t n = avail < s->rx_skip ? avail : s->rx_skip;
			s->rx_off += n;
			s->rx_skip -= n;
			if (s->rx_skip > 0)
				return;
		}
		if (s->rx_urb) {
			size_t avail = s->rx_len - s->rx_off;
			size_t n = avail < s->rx_need ? avail : s->rx_need;
			memcpy(s->rx_dst, s->rx + s->rx_off, n);
			s->rx_off += n;
			s->rx_dst += n;
			s->rx_need -= n;
			if (s->rx_need > 0)
				return;
			body_done(s);
			continue;
		}
		if (session_rx_blocked(s) || s->rx_len - s->rx_off < USBIP_HEADER_SIZE)
			return;
		const uint8_t *raw = s->rx + s->rx_off;
		s->rx_off += USBIP_HEADER_SIZE;
		if (!handle_header(s, raw)) {
			session_begin_close(s, "protocol error");
			return;
		}
	}
}

static void input_ended(struct session *s, ssize_t r)
{
	s->rx_eof = true;
	if (r == 0) {
		bool mid = s->rx_urb || s->rx_len > s->rx_off;
		session_begin_close(s, atomic_load(&s->device_gone) ? "device left"
				       : mid ? "client closed the connection mid-message"
					     : "client closed the connection");
	} else {
		log_info("session %s: connection lost (%s)", s->peer, strerror((int)-r));
		session_begin_close(s, "connection lost");
	}
}

void session_rx_read(struct session *s)
{
	for (int i = 0; i < RX_READS_PER_TURN && !s->closing && !session_rx_blocked(s); i++) {
		uint8_t *dst;
		size_t room;
		bool direct = s->rx_urb && s->rx_skip == 0 && s->rx_off == s->rx_len &&
			      s->rx_need >= RX_DIRECT_MIN;
		if (direct) {
			dst = s->rx_dst;
			room = s->rx_need;
		} else {
			if (s->rx_off > 0) {
				memmove(s->rx, s->rx + s->rx_off, s->rx_len - s->rx_off);
				s->rx_len -= s->rx_off;
				s->rx_off = 0;
			}
			dst = s->rx + s->rx_len;
			room = SESSION_RX_SIZE - s->rx_len;
			if (room == 0)
				return; /* parse first (only while blocked) */
			if (room > RX_BUFFERED_MAX)
				room = RX_BUFFERED_MAX;
		}
		ssize_t r = recv(s->fd, dst, room, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			input_ended(s, r < 0 ? -errno : 0);
			return;
		}
		if (direct) {
			s->rx_dst += r;
			s->rx_need -= (size_t)r;
			if (s->rx_need == 0)
				body_done(s);
		} else {
			s->rx_len += (size_t)r;
		}
		session_rx_parse(s);
		if ((size_t)r < room)
			return; /* the socket is empty for now */
	}
}
