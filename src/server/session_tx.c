/* The session's writer: one thread, whole messages, completion order.
 *
 * Replies are queued by completions (on the backend's event thread) and
 * written here with as few syscalls as possible: several queued messages go
 * out in one sendmsg. A message is either written whole or the connection is
 * shut down, so the client never sees half a reply. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/net.h"
#include "server/session_internal.h"

#define TX_BATCH 32 /* messages per sendmsg */

void session_tx_enqueue(struct session *s, struct tx_msg *m)
{
	m->next = NULL;
	if (s->tx_tail)
		s->tx_tail->next = m;
	else
		s->tx_head = m;
	s->tx_tail = m;
	pthread_cond_broadcast(&s->cond);
}

static void release_unlink_msg(struct session *s, struct tx_msg *m)
{
	(void)s;
	free(m);
}

struct tx_msg *session_tx_new_ret_unlink(void)
{
	struct tx_msg *m = calloc(1, sizeof(*m));
	if (m)
		m->release = release_unlink_msg;
	return m;
}

void session_tx_ret_unlink(struct session *s, struct tx_msg *m, uint32_t seqnum, int32_t status)
{
	struct usbip_header h = {
		.command = USBIP_RET_UNLINK,
		.seqnum = seqnum,
		.u.ret_unlink.status = status,
	};
	usbip_header_encode(&h, m->hdr, sizeof(m->hdr));
	session_tx_enqueue(s, m);
}

static int write_batch(struct session *s, struct tx_msg *first, int count)
{
	struct iovec iov[TX_BATCH * 3];
	int n = 0;
	struct tx_msg *m = first;
	for (int i = 0; i < count; i++, m = m->next) {
		iov[n++] = (struct iovec){ m->hdr, sizeof(m->hdr) };
		for (int p = 0; p < 2; p++)
			if (m->part[p].iov_len)
				iov[n++] = m->part[p];
	}
	return net_writev_full(s->fd, iov, n);
}

static void *writer_main(void *arg)
{
	struct session *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->tx_head && !s->tx_stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->tx_head)
			break;

		/* Detach a batch, write it without the lock, then release it. */
		struct tx_msg *first = s->tx_head;
		int count = 1;
		struct tx_msg *last = first;
		while (count < TX_BATCH && last->next) {
			last = last->next;
			count++;
		}
		s->tx_head = last->next;
		if (!s->tx_head)
			s->tx_tail = NULL;
		bool failed = s->tx_failed;
		pthread_mutex_unlock(&s->lock);

		if (!failed) {
			int rc = write_batch(s, first, count);
			if (rc < 0) {
				log_info("session %s: write failed (%s), closing", s->peer,
					 strerror(-rc));
				/* Wake the reader: the session is over. */
				shutdown(s->fd, SHUT_RDWR);
				failed = true;
			}
		}

		pthread_mutex_lock(&s->lock);
		if (failed)
			s->tx_failed = true;
		struct tx_msg *m = first;
		for (int i = 0; i < count; i++) {
			struct tx_msg *next = m->next;
			m->release(s, m);
			m = next;
		}
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int session_tx_start(struct session *s)
{
	int rc = pthread_create(&s->writer, NULL, writer_main, s);
	return rc ? -LNX_ENOMEM : 0;
}

void session_tx_stop(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->tx_stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer, NULL);
}
