/* Requests that change device state, run on the session's worker thread.
 *
 * SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE(ENDPOINT_HALT) and port
 * reset go through the backend's own (blocking) calls, as the kernel's
 * server does, so libusb's view of the device stays true. They run here, not
 * on the reader, so a slow device never stalls the command stream, and they
 * complete through the normal completion path with status 0 or the error. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/ctrl_request.h"
#include "server/session_internal.h"

/* Reads and parses the active configuration. Caller holds state_lock. */
static void load_config(struct session *s)
{
	uint8_t *raw = malloc(BK_MAX_CONFIG_DESC);
	s->have_cfg = false;
	memset(s->cur_alt, 0, sizeof(s->cur_alt));
	memset(s->claimed, 0, sizeof(s->claimed));
	if (!raw)
		return;
	int n = s->handle->backend->ops->get_active_config(s->handle, raw, BK_MAX_CONFIG_DESC);
	if (n > 0) {
		int rc = usb_desc_parse_config(raw, (size_t)n, &s->cfg);
		if (rc == USB_DESC_OK)
			s->have_cfg = true;
		else
			log_warn("session %s: configuration descriptor: %s", s->peer,
				 usb_desc_strerror(rc));
	}
	free(raw);
}

void session_claim_all(struct session *s)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	pthread_mutex_lock(&s->state_lock);
	load_config(s);
	for (int i = 0; s->have_cfg && i < s->cfg.num_interfaces; i++) {
		uint8_t ifnum = s->cfg.iface[i].number;
		int rc = ops->claim_interface(s->handle, ifnum);
		s->claimed[i] = rc == 0;
		if (rc < 0)
			log_warn("%s: interface %u cannot be claimed (%s): its URBs will fail "
				 "with -EPERM", s->info.busid, ifnum, linux_errno_name(rc));
	}
	pthread_mutex_unlock(&s->state_lock);
}

void session_release_all(struct session *s)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	pthread_mutex_lock(&s->state_lock);
	for (int i = 0; s->have_cfg && i < s->cfg.num_interfaces; i++) {
		if (s->claimed[i])
			ops->release_interface(s->handle, s->cfg.iface[i].number);
		s->claimed[i] = false;
	}
	pthread_mutex_unlock(&s->state_lock);
}

static int do_set_interface(struct session *s, uint16_t ifnum, uint16_t alt)
{
	pthread_mutex_lock(&s->state_lock);
	int idx = s->have_cfg ? usb_desc_find_interface(&s->cfg, (uint8_t)ifnum) : -1;
	bool claimed = idx >= 0 && s->claimed[idx];
	pthread_mutex_unlock(&s->state_lock);
	if (idx < 0 || ifnum > 0xff || alt > 0xff)
		return -LNX_EINVAL;
	if (!claimed)
		return -LNX_EPERM;

	int rc = s->handle->backend->ops->set_interface(s->handle, (uint8_t)ifnum, (uint8_t)alt);
	if (rc == 0) {
		pthread_mutex_lock(&s->state_lock);
		s->cur_alt[idx] = (uint8_t)alt;
		pthread_mutex_unlock(&s->state_lock);
	}
	return rc;
}

/* SET_CONFIGURATION. The client's USB core sends one for the configuration
 * the device already has, right after attach: setting it again would make
 * the host OS reset the configuration (and, on Linux, trip over kernel
 * drivers that rebind meanwhile), so that case only puts every interface
 * back to alternate setting 0, which is what a repeated SET_CONFIGURATION
 * means to the device. */
static int do_set_configuration(struct session *s, uint16_t value)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	uint8_t reset_alt[USB_DESC_MAX_INTERFACES];
	int n_reset = 0;

	pthread_mutex_lock(&s->state_lock);
	bool same = s->have_cfg && s->cfg.config_value == value;
	for (int i = 0; same && i < s->cfg.num_interfaces; i++)
		if (s->cur_alt[i] != 0 && s->claimed[i])
			reset_alt[n_reset++] = s->cfg.iface[i].number;
	if (!same)
		memset(s->claimed, 0, sizeof(s->claimed)); /* the backend drops them */
	pthread_mutex_unlock(&s->state_lock);

	if (same) {
		int rc = 0;
		for (int i = 0; i < n_reset; i++) {
			int r = do_set_interface(s, reset_alt[i], 0);
			if (r < 0)
				rc = r;
		}
		return rc;
	}
	int rc = ops->set_configuration(s->handle, value);
	session_claim_all(s); /* whatever is active now, even on failure */
	return rc;
}

static int run_request(struct session *s, const struct ctrl_decision *d)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	int rc;

	switch (d->action) {
	case CTRL_SET_CONFIGURATION:
		return do_set_configuration(s, d->value);
	case CTRL_SET_INTERFACE:
		return do_set_interface(s, d->index, d->value);
	case CTRL_CLEAR_HALT:
		return ops->clear_halt(s->handle, (uint8_t)d->index);
	case CTRL_RESET_DEVICE:
		rc = ops->reset(s->handle);
		if (rc == 0) {
			/* A reset puts every interface back to alt setting 0. */
			pthread_mutex_lock(&s->state_lock);
			memset(s->cur_alt, 0, sizeof(s->cur_alt));
			pthread_mutex_unlock(&s->state_lock);
		}
		return rc;
	case CTRL_FORWARD:
		break;
	}
	return -LNX_EINVAL;
}

/* Takes control URBs in arrival order: a forwarded one is submitted, a
 * state-changing one runs once every control URB before it has completed. */
static void *worker_main(void *arg)
{
	struct session *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->work_head && !s->work_stop)
			pthread_cond_wait(&s->cond, &s->lock);
		struct urb *u = s->work_head;
		if (!u)
			break;
		while (u->special && s->ep0_in_backend > 0 && !s->closing)
			pthread_cond_wait(&s->cond, &s->lock);
		s->work_head = u->work_next;
		if (!s->work_head)
			s->work_tail = NULL;

		int rc;
		if (s->closing) {
			rc = -LNX_ESHUTDOWN;
		} else if (u->n_unlinks > 0) {
			rc = -LNX_ECONNRESET; /* never started: the unlink wins */
		} else if (!u->special) {
			rc = session_urb_start(s, u);
			if (rc == 0)
				continue; /* the backend completes it */
		} else {
			/* Until it has completed, later control URBs queue here. */
			s->work_busy = true;
			pthread_mutex_unlock(&s->lock);
			struct ctrl_decision d = ctrl_classify(u->cmd.u.cmd_submit.setup);
			rc = run_request(s, &d);
			log_debug("%s: %s(value %u, index %u) -> %d", s->info.busid,
				  ctrl_action_name(d.action), d.value, d.index, rc);
			pthread_mutex_lock(&s->lock);
		}
		pthread_mutex_unlock(&s->lock);
		session_urb_fail(u, rc);
		pthread_mutex_lock(&s->lock);
		s->work_busy = false;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void session_worker_enqueue(struct session *s, struct urb *u)
{
	u->work_next = NULL;
	if (s->work_tail)
		s->work_tail->work_next = u;
	else
		s->work_head = u;
	s->work_tail = u;
	pthread_cond_broadcast(&s->cond);
}

int session_worker_start(struct session *s)
{
	return pthread_create(&s->worker, NULL, worker_main, s) ? -LNX_ENOMEM : 0;
}

void session_worker_stop(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->work_stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->worker, NULL);
}
