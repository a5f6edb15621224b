/* Control URBs in order, and the requests that change device state.
 *
 * SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE(ENDPOINT_HALT) and port
 * reset go through the backend's own (blocking) calls, as the kernel's
 * server does, so libusb's view of the device stays true. The engine never
 * blocks: it hands such a request to the session's worker thread and
 * carries on with every other endpoint; the worker completes it through
 * the normal completion path with status 0 or the error.
 *
 * Control transfers complete in order, as on a real host controller: once
 * a state change is queued, later URBs wait behind it (control ones for
 * order, the others to be routed by the settings it leaves), and it waits
 * for the control URBs before it. The queue lives on the engine thread;
 * only the request itself crosses to the worker. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/ctrl_request.h"
#include "server/session_internal.h"

/* ---- the engine's side ------------------------------------------------ */

void session_ctrl_enqueue(struct session *s, struct urb *u)
{
	u->state = URB_QUEUED;
	u->qnext = NULL;
	if (s->ctrl_tail)
		s->ctrl_tail->qnext = u;
	else
		s->ctrl_head = u;
	s->ctrl_tail = u;
	session_ctrl_progress(s);
}

static struct urb *pop(struct session *s)
{
	struct urb *u = s->ctrl_head;
	s->ctrl_head = u->qnext;
	if (!s->ctrl_head)
		s->ctrl_tail = NULL;
	u->qnext = NULL;
	return u;
}

static void hand_to_worker(struct session *s, struct urb *u)
{
	u->state = URB_WORKER;
	s->worker_busy = true;
	pthread_mutex_lock(&s->work_lock);
	s->work_urb = u;
	pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->work_lock);
}

void session_ctrl_progress(struct session *s)
{
	while (s->ctrl_head && !s->worker_busy) {
		struct urb *u = s->ctrl_head;
		if (s->closing) {
			pop(s);
			session_urb_fail(u, -LNX_ESHUTDOWN);
		} else if (u->n_unlinks > 0) {
			pop(s);
			session_urb_fail(u, -LNX_ECONNRESET); /* never started: the unlink wins */
		} else if (!u->special) {
			pop(s);
			session_urb_go(s, u);
		} else if (s->ep0_in_backend == 0) {
			pop(s);
			hand_to_worker(s, u);
		} else {
			return; /* the state change waits for the control URBs before it */
		}
	}
}

/* ---- the worker's side ------------------------------------------------ */

/* Which endpoint belongs to which interface, and its type, under the
 * current settings. Caller holds state_lock. */
static void rebuild_routes(struct session *s)
{
	for (unsigned i = 0; i < SESSION_ROUTES; i++) {
		uint8_t address = (uint8_t)((i & 0x0fu) | ((i & 0x10u) ? 0x80u : 0u));
		struct usb_endpoint_info ep;
		uint8_t ifnum;
		s->route[i].ifidx = -1;
		if (!s->have_cfg || (address & 0x0f) == 0 ||
		    usb_desc_find_endpoint(&s->cfg, s->cur_alt, address, &ep, &ifnum) < 0)
			continue;
		int idx = usb_desc_find_interface(&s->cfg, ifnum);
		if (idx < 0)
			continue;
		s->route[i].ifidx = (int8_t)idx;
		s->route[i].type = ep.type;
	}
}

/* Reads and parses the active configuration into cfg (not under a lock:
 * it is the worker's scratch until published). Returns true if valid. */
static bool load_config(struct session *s, struct usb_config_info *cfg)
{
	uint8_t *raw = malloc(BK_MAX_CONFIG_DESC);
	bool ok = false;
	if (!raw)
		return false;
	int n = s->handle->backend->ops->get_active_config(s->handle, raw, BK_MAX_CONFIG_DESC);
	if (n > 0) {
		int rc = usb_desc_parse_config(raw, (size_t)n, cfg);
		if (rc == USB_DESC_OK)
			ok = true;
		else
			log_warn("session %s: configuration descriptor: %s", s->peer,
				 usb_desc_strerror(rc));
	}
	free(raw);
	return ok;
}

void session_claim_all(struct session *s)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	struct usb_config_info *cfg = malloc(sizeof(*cfg));
	bool have = cfg && load_config(s, cfg);
	bool claimed[USB_DESC_MAX_INTERFACES] = { false };
	for (int i = 0; have && i < cfg->num_interfaces; i++) {
		uint8_t ifnum = cfg->iface[i].number;
		int rc = ops->claim_interface(s->handle, ifnum);
		claimed[i] = rc == 0;
		if (rc < 0)
			log_warn("%s: interface %u cannot be claimed (%s): its URBs will fail "
				 "with -EPERM", s->info.busid, ifnum, linux_errno_name(rc));
	}
	pthread_mutex_lock(&s->state_lock);
	s->have_cfg = have;
	if (have)
		s->cfg = *cfg;
	memset(s->cur_alt, 0, sizeof(s->cur_alt));
	memcpy(s->claimed, claimed, sizeof(claimed));
	rebuild_routes(s);
	pthread_mutex_unlock(&s->state_lock);
	free(cfg);
}

void session_release_all(struct session *s)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	uint8_t ifnums[USB_DESC_MAX_INTERFACES];
	int n = 0;
	pthread_mutex_lock(&s->state_lock);
	for (int i = 0; s->have_cfg && i < s->cfg.num_interfaces; i++) {
		if (s->claimed[i])
			ifnums[n++] = s->cfg.iface[i].number;
		s->claimed[i] = false;
	}
	rebuild_routes(s);
	pthread_mutex_unlock(&s->state_lock);
	for (int i = 0; i < n; i++)
		ops->release_interface(s->handle, ifnums[i]);
}

static int do_set_interface(struct session *s, uint16_t ifnum, uint16_t alt)
{
	pthread_mutex_lock(&s->state_lock);
	int idx = s->have_cfg && ifnum <= 0xff ? usb_desc_find_interface(&s->cfg, (uint8_t)ifnum)
					       : -1;
	bool claimed = idx >= 0 && s->claimed[idx];
	pthread_mutex_unlock(&s->state_lock);
	if (idx < 0 || alt > 0xff)
		return -LNX_EINVAL;
	if (!claimed)
		return -LNX_EPERM;

	int rc = s->handle->backend->ops->set_interface(s->handle, (uint8_t)ifnum, (uint8_t)alt);
	if (rc == 0) {
		pthread_mutex_lock(&s->state_lock);
		s->cur_alt[idx] = (uint8_t)alt;
		rebuild_routes(s);
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
	if (!same) {
		memset(s->claimed, 0, sizeof(s->claimed)); /* the backend drops them */
		rebuild_routes(s);
	}
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

int session_ctrl_run(struct session *s, struct urb *u)
{
	const struct backend_ops *ops = s->handle->backend->ops;
	struct ctrl_decision d = ctrl_classify(u->cmd.u.cmd_submit.setup);
	int rc = -LNX_EINVAL;

	switch (d.action) {
	case CTRL_SET_CONFIGURATION:
		rc = do_set_configuration(s, d.value);
		break;
	case CTRL_SET_INTERFACE:
		rc = do_set_interface(s, d.index, d.value);
		break;
	case CTRL_CLEAR_HALT:
		rc = ops->clear_halt(s->handle, (uint8_t)d.index);
		break;
	case CTRL_RESET_DEVICE:
		rc = ops->reset(s->handle);
		if (rc == 0) {
			/* A reset puts every interface back to alt setting 0. */
			pthread_mutex_lock(&s->state_lock);
			memset(s->cur_alt, 0, sizeof(s->cur_alt));
			rebuild_routes(s);
			pthread_mutex_unlock(&s->state_lock);
		}
		break;
	case CTRL_FORWARD:
		break;
	}
	log_debug("%s: %s(value %u, index %u) -> %d", s->info.busid, ctrl_action_name(d.action),
		  d.value, d.index, rc);
	return rc;
}
