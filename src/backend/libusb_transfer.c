/* Asynchronous transfers of the libusb backend: submit, cancel, completion.
 *
 * Each submitted bk_transfer gets a record (struct lu_xfer) holding its
 * libusb_transfer; t->priv points at it while the transfer is pending and is
 * cleared, under the handle's xfer_lock, before the completion is delivered,
 * so a cancel racing with the completion either reaches libusb while the
 * transfer is still alive or finds it gone (-ENOENT). Completions run on the
 * backend's event thread (inside libusb_handle_events*). Nothing here does
 * synchronous USB I/O. */
#include "backend/libusb_internal.h"

#include <stdlib.h>

#include "backend/libusb_map.h"
#include "common/log.h"
#include "proto/linux_errno.h"

struct lu_xfer {
	struct libusb_transfer *xfer;
	struct lu_handle *h;
	struct bk_transfer *t;
	struct lu_xfer *prev;
	struct lu_xfer *next;
};

int lu_control_length(const uint8_t *buf, uint32_t length)
{
	if (buf == NULL || length < LIBUSB_CONTROL_SETUP_SIZE)
		return -LNX_EINVAL;
	/* wLength: bytes 6-7 of the setup packet, little-endian (USB order). */
	uint32_t wlength = (uint32_t)buf[6] | (uint32_t)buf[7] << 8;
	uint32_t total = LIBUSB_CONTROL_SETUP_SIZE + wlength;

	/* libusb lets the device write 8 + wLength bytes: the buffer must
	 * hold them all, whatever length the caller claims. */
	if (total > length)
		return -LNX_EINVAL;
	return (int)total;
}

static void link_pending(struct lu_handle *h, struct lu_xfer *x)
{
	x->prev = NULL;
	x->next = h->pending;
	if (h->pending != NULL)
		h->pending->prev = x;
	h->pending = x;
}

static void unlink_pending(struct lu_handle *h, struct lu_xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		h->pending = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

/* Copies libusb's results into t. Short-read handling: the kernel fails a
 * short IN read of a URB_SHORT_NOT_OK URB with -EREMOTEIO. libusb's own
 * LIBUSB_TRANSFER_SHORT_NOT_OK would turn a short read into
 * LIBUSB_TRANSFER_ERROR (io.c), indistinguishable from a bus error (which
 * libusb folds into the same status), so we do not give libusb that flag
 * and let lnx_status_from_libusb_transfer apply the rule on a COMPLETED
 * transfer instead, where the lengths make it exact. */
void lu_fill_result(struct bk_transfer *t, const struct libusb_transfer *xfer)
{
	t->start_frame = 0; /* libusb does not report the frame number */
	if (t->type == BK_XFER_ISO) {
		uint32_t sum = 0;

		for (int i = 0; i < xfer->num_iso_packets; i++) {
			const struct libusb_iso_packet_descriptor *p = &xfer->iso_packet_desc[i];
			uint32_t actual = p->actual_length;

			if (actual > p->length)
				actual = p->length;
			t->iso[i].actual_length = actual;
			t->iso[i].status = lnx_status_from_libusb_transfer(p->status, false, 0, 0);
			sum += actual;
		}
		t->actual_length = sum;
		t->status = lnx_status_from_libusb_transfer(xfer->status, false, 0, 0);
		return;
	}

	int requested = xfer->length;
	bool in = (xfer->endpoint & LIBUSB_ENDPOINT_IN) != 0;

	if (t->type == BK_XFER_CONTROL) {
		requested -= LIBUSB_CONTROL_SETUP_SIZE;
		in = (xfer->buffer[0] & LIBUSB_ENDPOINT_IN) != 0; /* bmRequestType */
	}
	/* libusb counts data bytes only, setup excluded for control. */
	int actual = xfer->actual_length;

	if (actual < 0)
		actual = 0;
	if (actual > requested)
		actual = requested;
	t->actual_length = (uint32_t)actual;
	bool short_not_ok = in && (t->flags & BK_F_SHORT_NOT_OK) != 0;

	t->status = lnx_status_from_libusb_transfer(xfer->status, short_not_ok, requested, actual);
}

static void LIBUSB_CALL on_transfer_done(struct libusb_transfer *xfer)
{
	struct lu_xfer *x = xfer->user_data;
	struct lu_handle *h = x->h;
	struct bk_transfer *t = x->t;

	lu_fill_result(t, xfer);

	pthread_mutex_lock(&h->xfer_lock);
	unlink_pending(h, x);
	t->priv = NULL;
	pthread_mutex_unlock(&h->xfer_lock);

	/* libusb allows freeing a transfer from its own callback. */
	libusb_free_transfer(xfer);
	free(x);

	/* t may be freed by its owner from here on. */
	t->complete(t);

	/* Counted down only after complete(): close() waits for this, so the
	 * handle outlives every callback that still runs. */
	pthread_mutex_lock(&h->xfer_lock);
	if (--h->in_flight == 0)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->xfer_lock);
}

/* Checks t and works out libusb's length; returns it or a negative errno. */
static int check_transfer(const struct bk_transfer *t)
{
	if (t->complete == NULL || t->length > USBIP_MAX_TRANSFER_LENGTH ||
	    (t->length > 0 && t->buffer == NULL))
		return -LNX_EINVAL;

	switch (t->type) {
	case BK_XFER_CONTROL:
		return lu_control_length(t->buffer, t->length);
	case BK_XFER_BULK:
	case BK_XFER_INTERRUPT:
		return (int)t->length;
	case BK_XFER_ISO: {
		if (t->num_iso_packets == 0 || t->num_iso_packets > USBIP_MAX_ISO_PACKETS ||
		    t->iso == NULL)
			return -LNX_EINVAL;
		uint64_t sum = 0;

		for (uint32_t i = 0; i < t->num_iso_packets; i++)
			sum += t->iso[i].length;
		/* The packets lie back to back in buffer: they must fit. */
		if (sum > t->length)
			return -LNX_EINVAL;
		return (int)t->length;
	}
	default:
		return -LNX_EINVAL;
	}
}

int lu_submit(struct bk_handle *bh, struct bk_transfer *t)
{
	struct lu_handle *h = (struct lu_handle *)bh;
	int len = check_transfer(t);

	if (len < 0)
		return len;

	int niso = t->type == BK_XFER_ISO ? (int)t->num_iso_packets : 0;
	struct lu_xfer *x = calloc(1, sizeof(*x));
	int ret;

	if (x == NULL)
		return -LNX_ENOMEM;
	x->xfer = libusb_alloc_transfer(niso);
	if (x->xfer == NULL) {
		ret = -LNX_ENOMEM;
		goto err_free_record;
	}
	x->h = h;
	x->t = t;

	struct libusb_transfer *xfer = x->xfer;

	switch (t->type) {
	case BK_XFER_CONTROL:
		/* libusb's layout is ours: setup first, then data. */
		libusb_fill_control_transfer(xfer, h->dh, t->buffer, on_transfer_done, x, 0);
		xfer->length = len;
		xfer->endpoint = t->endpoint & 0x0f;
		break;
	case BK_XFER_BULK:
		libusb_fill_bulk_transfer(xfer, h->dh, t->endpoint, t->buffer, len,
					  on_transfer_done, x, 0);
		break;
	case BK_XFER_INTERRUPT:
		libusb_fill_interrupt_transfer(xfer, h->dh, t->endpoint, t->buffer, len,
					       on_transfer_done, x, 0);
		break;
	case BK_XFER_ISO:
		libusb_fill_iso_transfer(xfer, h->dh, t->endpoint, t->buffer, len, niso,
					 on_transfer_done, x, 0);
		for (int i = 0; i < niso; i++)
			xfer->iso_packet_desc[i].length = t->iso[i].length;
		break;
	}
	/* BK_F_SHORT_NOT_OK is applied in lu_fill_result, not by libusb. */
	xfer->flags = 0;
	if (t->flags & BK_F_ZERO_PACKET)
		xfer->flags |= LIBUSB_TRANSFER_ADD_ZERO_PACKET;

	/* Registered before libusb sees it: the completion may run on the
	 * event thread before libusb_submit_transfer returns, and it takes
	 * xfer_lock, so it waits for us. */
	pthread_mutex_lock(&h->xfer_lock);
	link_pending(h, x);
	t->priv = x;
	h->in_flight++;
	int r = libusb_submit_transfer(xfer);

	if (r != LIBUSB_SUCCESS) {
		unlink_pending(h, x);
		t->priv = NULL;
		if (--h->in_flight == 0)
			pthread_cond_broadcast(&h->idle);
	}
	pthread_mutex_unlock(&h->xfer_lock);
	if (r != LIBUSB_SUCCESS) {
		ret = lnx_errno_from_libusb_error(r);
		goto err_free_transfer;
	}
	atomic_store_explicit(&h->used, true, memory_order_relaxed);
	return 0;

err_free_transfer:
	libusb_free_transfer(x->xfer);
err_free_record:
	free(x);
	return ret;
}

int lu_cancel(struct bk_handle *bh, struct bk_transfer *t)
{
	struct lu_handle *h = (struct lu_handle *)bh;
	int ret;

	/* On macOS this aborts every transfer pending on the endpoint, not
	 * just this one: the handle carries BK_QUIRK_CANCEL_ABORTS_ENDPOINT
	 * (libusb_os_darwin.c) and the server keeps the per-URB unlink rules
	 * on top of it. */
	pthread_mutex_lock(&h->xfer_lock);
	struct lu_xfer *x = t->priv;

	if (x == NULL || x->t != t || x->h != h) {
		ret = -LNX_ENOENT;
	} else {
		int r = libusb_cancel_transfer(x->xfer);

		if (r == LIBUSB_SUCCESS)
			ret = 0;
		else if (r == LIBUSB_ERROR_NOT_FOUND)
			ret = -LNX_ENOENT; /* completed or already being cancelled */
		else
			ret = lnx_errno_from_libusb_error(r);
	}
	pthread_mutex_unlock(&h->xfer_lock);
	return ret;
}

void lu_cancel_all_locked(struct lu_handle *h)
{
	for (struct lu_xfer *x = h->pending; x != NULL; x = x->next) {
		int r = libusb_cancel_transfer(x->xfer);

		if (r != LIBUSB_SUCCESS && r != LIBUSB_ERROR_NOT_FOUND)
			log_warn("libusb: cancel failed: %s", libusb_error_name(r));
	}
}

/* Device memory (libusb_dev_mem_alloc: an mmap of the usbfs file on
 * Linux, nothing elsewhere). A transfer in it needs no kernel buffer and
 * no copy between process and kernel: the host controller (or dummy_hcd's
 * memcpy) uses the pages in place. A refusal is usually usbfs's memory
 * limit (usbfs_memory_mb, shared by every usbfs user): no further tries,
 * and no libusb error line per transfer, until a buffer comes back. */
void *lu_buf_alloc(struct bk_handle *bh, size_t len)
{
	struct lu_handle *h = (struct lu_handle *)bh;

	if (h->no_dev_mem || len == 0 || atomic_load(&h->dev_mem_refused))
		return NULL;
	void *p = libusb_dev_mem_alloc(h->dh, len);

	if (p == NULL)
		atomic_store(&h->dev_mem_refused, true);
	return p;
}

void lu_buf_free(struct bk_handle *bh, void *p, size_t len)
{
	struct lu_handle *h = (struct lu_handle *)bh;

	if (p == NULL)
		return;
	libusb_dev_mem_free(h->dh, p, len);
	atomic_store(&h->dev_mem_refused, false);
}
