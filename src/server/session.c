/* Session lifecycle and the command reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "common/net.h"
#include "server/session_internal.h"

static void on_device_gone(struct export_holder *holder)
{
	struct session *s = (struct session *)((char *)holder - offsetof(struct session, holder));
	/* Called with the export table locked: only flag and wake the reader.
	 * Replies already owed still go out; the reader ends the session. */
	pthread_mutex_lock(&s->lock);
	s->device_gone = true;
	pthread_mutex_unlock(&s->lock);
	shutdown(s->fd, SHUT_RD);
}

struct session *session_new(struct backend *b, int fd, const struct session_limits *limits)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->backend = b;
	s->fd = fd;
	s->limits = *limits;
	s->holder.gone = on_device_gone;
	s->pending.next = s->pending.prev = &s->pending;
	pthread_mutex_init(&s->state_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	net_peer_name(fd, s->peer, sizeof(s->peer));
	return s;
}

struct export_holder *session_holder(struct session *s)
{
	return &s->holder;
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
	/* A server killed mid-command (ours included) could not reset the
	 * device; start every session from a clean state. A device that
	 * re-enumerates on reset comes back through hotplug instead. */
	if (reset_device(s, "before the session") == -LNX_ENODEV)
		return -LNX_ENODEV;
	return 0;
}

/* Answers a CMD_UNLINK per the rules in PROTOCOL.md. */
static int handle_unlink(struct session *s, const struct usbip_header *h)
{
	uint32_t victim = h->u.cmd_unlink.seqnum;
	struct tx_msg *reply = session_tx_new_ret_unlink();
	if (!reply)
		return -LNX_ENOMEM;

	pthread_mutex_lock(&s->lock);
	struct urb *u = s->pending.next;
	while (u != &s->pending && u->cmd.seqnum != victim)
		u = u->next;
	if (u == &s->pending || u->n_unlinks == URB_MAX_UNLINKS) {
		/* Already answered (its RET_SUBMIT is queued or sent) or unknown:
		 * status 0, and any RET_SUBMIT stands. */
		session_tx_ret_unlink(s, reply, h->seqnum, 0);
	} else {
		/* The completion answers it, whichever way it goes; a cancel
		 * that comes too late just lets the RET_SUBMIT stand. */
		u->unlink_seqnum[u->n_unlinks] = h->seqnum;
		u->unlink_reply[u->n_unlinks] = reply;
		if (u->n_unlinks++ == 0 && u->in_backend)
			bk_cancel(s->handle, &u->xfer);
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static bool device_gone(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	bool gone = s->device_gone;
	pthread_mutex_unlock(&s->lock);
	return gone;
}

/* Reads and dispatches commands until the stream ends or breaks. */
static void read_commands(struct session *s)
{
	uint8_t raw[USBIP_HEADER_SIZE];
	struct usbip_header h;

	for (;;) {
		ssize_t r = net_read_full(s->fd, raw, sizeof(raw));
		if (r == 0) {
			log_info("session %s: %s", s->peer,
				 device_gone(s) ? "device left" : "client closed the connection");
			return;
		}
		if (r < 0) {
			log_info("session %s: connection lost (%s)", s->peer, strerror((int)-r));
			return;
		}
		int rc = usbip_header_decode(raw, sizeof(raw), &h);
		if (rc != USBIP_OK) {
			log_warn("session %s: malformed command (%s), closing", s->peer,
				 usbip_codec_strerror(rc));
			return;
		}
		if (h.devid != s->devid) {
			log_warn("session %s: devid 0x%08x is not the imported 0x%08x, closing",
				 s->peer, h.devid, s->devid);
			return;
		}
		if (h.command == USBIP_CMD_SUBMIT) {
			rc = session_submit(s, &h);
		} else if (h.command == USBIP_CMD_UNLINK) {
			rc = handle_unlink(s, &h);
		} else {
			log_warn("session %s: unexpected command %u from client, closing", s->peer,
				 h.command);
			return;
		}
		if (rc < 0) {
			log_warn("session %s: %s, closing", s->peer,
				 rc == -LNX_EPROTO ? "message cut short" : linux_errno_name(rc));
			return;
		}
	}
}

/* Cancels what is in flight and waits until every completion has come. */
static void drain_pending(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_cond_broadcast(&s->cond);
	for (struct urb *u = s->pending.next; u != &s->pending; u = u->next)
		if (u->in_backend)
			bk_cancel(s->handle, &u->xfer);
	while (s->n_pending > 0) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 5;
		if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != 0 && s->n_pending)
			log_warn("session %s: still waiting for %u transfers to complete",
				 s->peer, s->n_pending);
	}
	pthread_mutex_unlock(&s->lock);
}

void session_run(struct session *s)
{
	if (session_tx_start(s) < 0)
		return;
	if (session_worker_start(s) < 0) {
		session_tx_stop(s);
		return;
	}
	log_info("session %s: serving %s (devid 0x%08x)", s->peer, s->info.busid, s->devid);

	read_commands(s);

	drain_pending(s);
	session_worker_stop(s);
	session_tx_stop(s);
	/* As the kernel's server does when a connection goes down: a client
	 * that went mid-command left the device mid-command too (a mass
	 * storage device waiting for the rest of a command block), and only
	 * a reset readies it for the next user or its own kernel driver. */
	if (!device_gone(s))
		reset_device(s, "after the session");
	/* Both directions closed now, so a client that is still there sees the
	 * end at once rather than at its next command. */
	shutdown(s->fd, SHUT_RDWR);
	log_info("session %s: %s released", s->peer, s->info.busid);
}

void session_free(struct session *s)
{
	if (!s)
		return;
	if (s->handle) {
		session_release_all(s);
		s->backend->ops->close(s->handle);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->state_lock);
	free(s);
}
