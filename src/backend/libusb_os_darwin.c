/* How libusb behaves on macOS (IOKit), as the rest of the backend needs to
 * know. libusb_cancel_transfer aborts the whole pipe (AbortPipe, or
 * USBDeviceAbortPipeZero for control), so every transfer pending on the
 * endpoint ends, not just the one cancelled: the handle says so with
 * BK_QUIRK_CANCEL_ABORTS_ENDPOINT and the server keeps the per-URB unlink
 * rules on top (src/server/session_abort.c). Closing a device without a
 * reset has left it wedged for the next user: reset first, unless nothing
 * was submitted since the last reset (the server resets at a session's
 * end already). */
#include "backend/libusb_internal.h"

#include "common/log.h"

uint32_t lu_os_handle_quirks(void)
{
	return BK_QUIRK_CANCEL_ABORTS_ENDPOINT;
}

void lu_os_before_close(struct lu_handle *h)
{
	if (!atomic_load(&h->used))
		return; /* reset since its last transfer (the server does at a session's end) */
	int r = libusb_reset_device(h->dh);

	/* NOT_FOUND: it re-enumerated; NO_DEVICE: it is gone. Neither needs it. */
	if (r != LIBUSB_SUCCESS && r != LIBUSB_ERROR_NOT_FOUND && r != LIBUSB_ERROR_NO_DEVICE)
		log_warn("libusb: reset before close: %s", libusb_error_name(r));
}
