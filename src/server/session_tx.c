/* The session's replies: queued in completion order, written by the
 * engine's loop with one sendmsg per turn on a non-blocking socket.
 *
 * A partial write leaves the rest of the message at the head of the queue
 * for the next POLLOUT, so a message is always written whole or the
 * connection is closed: the client never sees half a reply followed by
 * another one. Every queued reply, RET_UNLINK included, is charged to the
 * session's budget until written, so a client that stops reading stops
 * being read (session_rx_blocked). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/net.h"
#include "server/session_internal.h"

#define TX_IOV 192 /* iovecs per sendmsg: at least 64 replies of three parts */

void session_tx_enqueue(struct session *s, struct tx_msg *m)
{
	m->next = NULL;
	if (s->tx_tail)
		s->tx_tail->next = m;
	else
		s->tx_head = m;
	s->tx_tail = m;
	s->tx_n++;
	s->tx_bytes += m->cost;
	s->answered = true;
}

static void release_unlink_msg(struct session *s, struct tx_msg *m)
{
	s->n_urbs--;
	s->bytes -= m->cost;
	free(m);
}

int session_tx_ret_unlink(struct session *s, uint32_t seqnum, int32_t status)
{
	struct tx_msg *m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("session %s: out of memory for a RET_UNLINK, closing", s->peer);
		session_begin_close(s, "out of memory");
		s->tx_failed = true; /* the stream would lack an answer */
		return -LNX_ENOMEM;
	}
	struct usbip_header h = {
		.command = USBIP_RET_UNLINK,
		.seqnum = seqnum,
		.u.ret_unlink.status = status,
	};
	usbip_header_encode(&h, m->hdr, sizeof(m->hdr));
	if (s->trace)
		trace_ret(s->trace, s->who, &h, 0, false);
	m->cost = sizeof(*m);
	m->release = release_unlink_msg;
	s->n_urbs++;
	s->bytes += m->cost;
	session_tx_enqueue(s, m);
	return 0;
}

static void release_head(struct session *s)
{
	struct tx_msg *m = s->tx_head;
	s->tx_head = m->next;
	if (!s->tx_head)
		s->tx_tail = NULL;
	s->tx_sent = 0;
	s->tx_n--;
	s->tx_bytes -= m->cost;
	m->release(s, m);
}

/* Adds base[skip..len) to iov when anything is left of it. */
static void add(struct iovec *iov, int *n, void *base, size_t len, size_t *skip)
{
	if (*skip >= len) {
		*skip -= len;
		return;
	}
	iov[(*n)++] = (struct iovec){ (uint8_t *)base + *skip, len - *skip };
	*skip = 0;
}

static size_t msg_len(const struct tx_msg *m)
{
	return sizeof(m->hdr) + m->part[0].iov_len + m->part[1].iov_len;
}

void session_tx_flush(struct session *s)
{
	while (s->tx_head && !s->tx_failed) {
		struct iovec iov[TX_IOV];
		int n = 0;
		size_t skip = s->tx_sent, total = 0;
		for (struct tx_msg *m = s->tx_head; m && n + 3 <= TX_IOV; m = m->next) {
			add(iov, &n, m->hdr, sizeof(m->hdr), &skip);
			add(iov, &n, m->part[0].iov_base, m->part[0].iov_len, &skip);
			add(iov, &n, m->part[1].iov_base, m->part[1].iov_len, &skip);
			total += msg_len(m);
		}
		total -= s->tx_sent;

		ssize_t w = net_send_iov(s->fd, iov, n);
		if (w < 0) {
			if (w == -EINTR)
				continue;
			if (w == -EAGAIN || w == -EWOULDBLOCK) {
				if (!s->tx_stalled_ms)
					s->tx_stalled_ms = net_now_ms();
				return;
			}
			log_info("session %s: write failed (%s), closing", s->peer, strerror((int)-w));
			s->tx_failed = true;
			session_begin_close(s, "connection lost");
			return;
		}
		s->tx_stalled_ms = 0;
		size_t left = (size_t)w;
		while (s->tx_head && left >= msg_len(s->tx_head) - s->tx_sent) {
			left -= msg_len(s->tx_head) - s->tx_sent;
			release_head(s);
		}
		s->tx_sent += left;
		if ((size_t)w < total)
			return; /* the socket is full: POLLOUT brings us back */
	}
}

void session_tx_drop_all(struct session *s)
{
	while (s->tx_head)
		release_head(s);
}
