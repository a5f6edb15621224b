/* Session lifecycle: open, serve (the worker's side), close, free; and the
 * session's part of each engine turn. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/net.h"
#include "server/session_internal.h"

/* A reply that cannot be written for limits.stall_close_ms ends the
 * session (the client stopped reading). */
/* Replies still queued when the session ends get this long to go out. */
#define CLOSE_FLUSH_MS 5000

static void on_device_gone(struct export_holder *holder)
{
	struct session *s = (struct session *)((char *)holder - offsetof(struct session, holder));
	/* Called with the export table locked: only flag and wake the loop.
	 * Replies already owed still go out; then the session ends. */
	atomic_store(&s->device_gone, true);
	atomic_store(&s->has_posts, true);
	engine_wake(s->engine);
}

struct session *session_new(struct backend *b, struct engine *engine, int fd,
			    const struct session_limits *limits)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->rx = malloc(SESSION_RX_SIZE);
	if (!s->rx) {
		free(s);
		return NULL;
	}
	s->backend = b;
	s->engine = engine;
	s->fd = fd;
	s->limits = *limits;
	if (!s->limits.drain_ms)
		s->limits.drain_ms = SESSION_DEFAULT_DRAIN_MS;
	if (!s->limits.stall_close_ms)
		s->limits.stall_close_ms = SESSION_DEFAULT_STALL_CLOSE_MS;
	s->need_reset = true;
	s->holder.gone = on_device_gone;
	s->pending.next = s->pending.prev = &s->pending;
	pthread_mutex_init(&s->state_lock, NULL);
	pthread_mutex_init(&s->post_lock, NULL);
	pthread_mutex_init(&s->work_lock, NULL);
	pthread_cond_init(&s->work_cond, NULL);
	net_peer_name(fd, s->peer, sizeof(s->peer));
	return s;
}

struct export_holder *session_holder(struct session *s)
{
	return &s->holder;
}

void session_set_observers(struct session *s, struct metrics_device *m, const struct trace *t)
{
	s->metrics = m;
	s->trace = t && t->enabled ? t : NULL;
	snprintf(s->who, sizeof(s->who), "%s %s", s->info.busid, s->peer);
	metrics_count_session(m);
}

void session_set_need_reset(struct session *s, bool need)
{
	s->need_reset = need;
}

bool session_ended_clean(const struct session *s)
{
	return !s->need_reset;
}

static int reset_device(struct session *s, const char *when)
{
	int rc = s->handle->backend->ops->reset(s->handle);
	if (rc < 0)
		log_warn("%s: reset %s failed: %s", s->info.busid, when, linux_errno_name(rc));
	return rc;
}

int session_open_device(struct session *s, const struct bk_device_info *info)
{
	s->info = *info;
	s->devid = usbip_devid(info->busnum, info->devnum);
	int rc = s->backend->ops->open(s->backend, s->info.busid, &s->handle);
	if (rc < 0)
		return rc;
	session_claim_all(s);
	/* A session that ended without its closing reset (a server killed
	 * mid-command, ours included) left the device mid-command: start from
	 * a clean state. After a clean end it was reset already, and a second
	 * reset only costs the client time. A device that re-enumerates on
	 * reset comes back through hotplug instead. */
	if (s->need_reset && reset_device(s, "before the session") == -LNX_ENODEV)
		return -LNX_ENODEV;
	s->need_reset = true; /* until the closing reset succeeds */
	return 0;
}

/* ---- closing ---------------------------------------------------------- */

void session_begin_close(struct session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	s->closing_ms = net_now_ms();
	s->end_reason = reason;
	/* Transfers at the device are cancelled; their completions still come
	 * and are answered (a client that is still there gets every reply it
	 * is owed). Control URBs that never started fail in the queue, and
	 * URBs waiting for a pipe abort to end fail there. */
	session_abort_fail_waiting(s);
	for (struct urb *u = s->pending.next; u != &s->pending; u = u->next)
		if (u->state == URB_BACKEND)
			bk_cancel(s->handle, &u->xfer);
	session_ctrl_progress(s);
}

/* ---- the engine's side ------------------------------------------------ */

void session_set_fd(struct session *s, int fd)
{
	s->fd = fd;
}

int session_fd(const struct session *s)
{
	return s->fd;
}

enum spin_wait session_wait_kind(struct session *s)
{
	bool answered = s->answered;
	s->answered = false;
	if (s->n_pending > s->n_periodic)
		return SPIN_WAIT_DEVICE;
	return answered ? SPIN_WAIT_CLIENT : SPIN_WAIT_IDLE;
}

/* The clock is read only when a timer is armed: on a guest without a vDSO
 * clock each read is a system call, and the hot path has no timers. */
static int64_t lazy_now(int64_t *now_ms)
{
	if (*now_ms < 0)
		*now_ms = net_now_ms();
	return *now_ms;
}

short session_poll_events(struct session *s, int64_t *now_ms, int *timeout_ms)
{
	short ev = 0;
	*timeout_ms = -1;
	if (!s->closing && !s->rx_eof && !session_rx_blocked(s)) {
		ev |= POLLIN;
		if (session_rx_has_command(s))
			*timeout_ms = 0; /* buffered commands wait for no event */
	}
	if (s->tx_head && !s->tx_failed) {
		ev |= POLLOUT;
		if (s->tx_stalled_ms && *timeout_ms != 0) {
			int64_t left = s->tx_stalled_ms + s->limits.stall_close_ms - lazy_now(now_ms);
			*timeout_ms = left > 0 ? (int)left : 0;
		}
	}
	if (s->closing) {
		int64_t left = s->closing_ms + s->limits.drain_ms - lazy_now(now_ms);
		int t = left > 0 ? (int)left : 0;
		if (!s->drain_warned && (*timeout_ms < 0 || t < *timeout_ms))
			*timeout_ms = t;
	}
	return ev;
}

void session_on_io(struct session *s, short revents)
{
	if (revents & POLLOUT)
		session_tx_flush(s);
	if (revents & (POLLIN | POLLHUP | POLLERR))
		session_rx_read(s);
}

/* Completions other threads delivered, oldest first. */
static void take_posts(struct session *s)
{
	if (!atomic_exchange(&s->has_posts, false))
		return;
	pthread_mutex_lock(&s->post_lock);
	struct urb *list = s->posted;
	s->posted = NULL;
	pthread_mutex_unlock(&s->post_lock);

	struct urb *fifo = NULL;
	while (list) {
		struct urb *next = list->qnext;
		list->qnext = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct urb *next = fifo->qnext;
		session_urb_finish(s, fifo);
		fifo = next;
	}
	if (atomic_load(&s->device_gone))
		session_begin_close(s, "device left");
}

bool session_turn(struct session *s)
{
	take_posts(s);
	session_ctrl_progress(s);
	/* Writing frees budget, which lets commands already in the read
	 * buffer start, whose replies may be written at once (sim). */
	for (int i = 0; i < 4; i++) {
		if (s->tx_head && !s->tx_failed)
			session_tx_flush(s);
		if (s->closing || session_rx_blocked(s) || !session_rx_has_command(s))
			break;
		session_rx_parse(s);
	}

	/* The clock only matters to a stalled writer or a closing session. */
	bool stalled = s->tx_head && !s->tx_failed && s->tx_stalled_ms;
	if (!stalled && !s->closing)
		return false;
	int64_t now = net_now_ms();
	if (stalled && now - s->tx_stalled_ms >= s->limits.stall_close_ms) {
		log_warn("session %s: client has read nothing for %u ms, closing", s->peer,
			 s->limits.stall_close_ms);
		s->tx_failed = true;
		session_begin_close(s, "client stopped reading");
	}
	if (!s->closing)
		return false;

	if (s->n_pending > 0 && !s->drain_warned && now - s->closing_ms >= s->limits.drain_ms) {
		/* Cancelled, and still not back: one wedged endpoint must not
		 * hold the device or the session forever. The worker's reset
		 * and the close end them at the device; their memory stays
		 * with the backend until then. */
		s->drain_warned = true;
		s->lost = session_urb_give_up(s);
		if (s->lost)
			log_warn("session %s: %u transfers still pending %u ms after their cancel; "
				 "counted as lost, resetting the device",
				 s->peer, s->lost, s->limits.drain_ms);
	}
	if (s->n_pending > 0 || s->worker_busy)
		return false;
	if (s->tx_head && !s->tx_failed && now - s->closing_ms < CLOSE_FLUSH_MS)
		return false;
	session_tx_drop_all(s);
	return true;
}

void session_engine_done(struct session *s)
{
	pthread_mutex_lock(&s->work_lock);
	s->finished = true;
	pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->work_lock);
}

/* ---- the worker's side ------------------------------------------------ */

void session_run(struct session *s)
{
	int fl = fcntl(s->fd, F_GETFL);
	log_info("session %s: serving %s (devid 0x%08x)", s->peer, s->info.busid, s->devid);
	if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    engine_add(s->engine, s) < 0) {
		log_warn("session %s: cannot be served: %s", s->peer, strerror(errno));
		return;
	}

	/* Run what the loop hands over until it lets the session go. */
	pthread_mutex_lock(&s->work_lock);
	for (;;) {
		while (!s->work_urb && !s->finished)
			pthread_cond_wait(&s->work_cond, &s->work_lock);
		if (s->finished)
			break;
		struct urb *u = s->work_urb;
		s->work_urb = NULL;
		pthread_mutex_unlock(&s->work_lock);
		u->xfer.status = session_ctrl_run(s, u);
		u->xfer.actual_length = 0;
		session_urb_complete(&u->xfer);
		pthread_mutex_lock(&s->work_lock);
	}
	pthread_mutex_unlock(&s->work_lock);

	log_info("session %s: %s", s->peer, s->end_reason ? s->end_reason : "ended");
	bool gone = atomic_load(&s->device_gone);
	/* As the kernel's server does when a connection goes down: a client
	 * that went mid-command left the device mid-command too (a mass
	 * storage device waiting for the rest of a command block), and only
	 * a reset readies it for the next user or its own kernel driver. */
	if (!gone && reset_device(s, "after the session") == 0 && !s->lost)
		s->need_reset = false; /* after lost transfers the next session resets again */
	/* Both directions closed now, so a client that is still there sees the
	 * end at once rather than at its next command. */
	shutdown(s->fd, SHUT_RDWR);
	log_info("session %s: %s released", s->peer, s->info.busid);
}

void session_free(struct session *s)
{
	if (!s)
		return;
	/* A command whose body was still coming when the input ended: its
	 * URB was never started, so nothing else gives it back. The pool goes
	 * before the handle: its device memory is given back through it. */
	if (s->rx_urb)
		session_urb_put(s, s->rx_urb);
	s->rx_urb = NULL;
	session_urb_pool_free(s);
	if (s->handle) {
		session_release_all(s);
		s->backend->ops->close(s->handle);
	}
	pthread_cond_destroy(&s->work_cond);
	pthread_mutex_destroy(&s->work_lock);
	pthread_mutex_destroy(&s->post_lock);
	pthread_mutex_destroy(&s->state_lock);
	free(s->rx);
	free(s);
}
