/* libusb results and speeds to USB/IP (Linux) values.
 *
 * The choices follow what Linux's usbip-host would put in urb->status for
 * the same condition (Documentation/driver-api/usb/error-codes.rst), since
 * the client's drivers are written against those codes. */
#include "backend/libusb_map.h"

#include "proto/linux_errno.h"

/* Linux enum usb_device_speed, as carried in the device record. */
enum {
	USBIP_SPEED_UNKNOWN = 0,
	USBIP_SPEED_LOW = 1,
	USBIP_SPEED_FULL = 2,
	USBIP_SPEED_HIGH = 3,
	USBIP_SPEED_SUPER = 5,
};

int32_t lnx_status_from_libusb_transfer(enum libusb_transfer_status st, bool short_not_ok,
					int requested, int actual)
{
	switch (st) {
	case LIBUSB_TRANSFER_COMPLETED:
		/* The kernel fails a short IN read with URB_SHORT_NOT_OK
		 * with -EREMOTEIO; libusb is not told the flag (see header),
		 * so the rule is applied here. */
		if (short_not_ok && actual < requested)
			return -LNX_EREMOTEIO;
		return 0;
	case LIBUSB_TRANSFER_ERROR:
		/* libusb folds the host controller's -EPROTO, -EILSEQ, -ETIME,
		 * -ECOMM and -ENOSR into this one value; -EPROTO is the
		 * kernel's "unknown USB error" and what drivers retry on. */
		return -LNX_EPROTO;
	case LIBUSB_TRANSFER_TIMED_OUT:
		/* Our own timeout expired before the device answered: the
		 * kernel reports exactly that as -ETIMEDOUT from its
		 * synchronous calls. (-ETIME is a bus turnaround error.) */
		return -LNX_ETIMEDOUT;
	case LIBUSB_TRANSFER_CANCELLED:
		/* Cancelled because the client unlinked it: an asynchronous
		 * unlink completes the URB with -ECONNRESET. */
		return -LNX_ECONNRESET;
	case LIBUSB_TRANSFER_STALL:
		/* The endpoint answered STALL: -EPIPE, which tells the
		 * driver to clear the halt. */
		return -LNX_EPIPE;
	case LIBUSB_TRANSFER_NO_DEVICE:
		/* URBs pending when a device goes away complete with
		 * -ESHUTDOWN (endpoint disabled by the disconnect). */
		return -LNX_ESHUTDOWN;
	case LIBUSB_TRANSFER_OVERFLOW:
		/* The device sent more than asked (babble). */
		return -LNX_EOVERFLOW;
	}
	/* A status newer than this code: an unknown USB error. */
	return -LNX_EPROTO;
}

int lnx_errno_from_libusb_error(int libusb_error)
{
	if (libusb_error >= 0)
		return 0;
	switch (libusb_error) {
	case LIBUSB_ERROR_IO:
		return -LNX_EIO;
	case LIBUSB_ERROR_INVALID_PARAM:
		return -LNX_EINVAL;
	case LIBUSB_ERROR_ACCESS:
		/* An interface we may not claim: the session fails its URBs
		 * with -EPERM, as DESIGN.md asks. */
		return -LNX_EPERM;
	case LIBUSB_ERROR_NO_DEVICE:
		return -LNX_ENODEV;
	case LIBUSB_ERROR_NOT_FOUND:
		return -LNX_ENOENT;
	case LIBUSB_ERROR_BUSY:
		return -LNX_EBUSY;
	case LIBUSB_ERROR_TIMEOUT:
		return -LNX_ETIMEDOUT;
	case LIBUSB_ERROR_OVERFLOW:
		return -LNX_EOVERFLOW;
	case LIBUSB_ERROR_PIPE:
		return -LNX_EPIPE;
	case LIBUSB_ERROR_NO_MEM:
		return -LNX_ENOMEM;
	case LIBUSB_ERROR_NOT_SUPPORTED:
		return -LNX_EOPNOTSUPP;
	case LIBUSB_ERROR_INTERRUPTED:
		/* An interrupted wait is local business; the peer can only
		 * be told the call failed. */
	case LIBUSB_ERROR_OTHER:
	default:
		return -LNX_EIO;
	}
}

uint32_t usbip_speed_from_libusb(int libusb_speed)
{
	switch (libusb_speed) {
	case LIBUSB_SPEED_LOW:
		return USBIP_SPEED_LOW;
	case LIBUSB_SPEED_FULL:
		return USBIP_SPEED_FULL;
	case LIBUSB_SPEED_HIGH:
		return USBIP_SPEED_HIGH;
	case LIBUSB_SPEED_SUPER:
	case LIBUSB_SPEED_SUPER_PLUS:
#if defined(LIBUSB_API_VERSION) && LIBUSB_API_VERSION >= 0x0100010A
	case LIBUSB_SPEED_SUPER_PLUS_X2:
#endif
		return USBIP_SPEED_SUPER;
	case LIBUSB_SPEED_UNKNOWN:
	default:
		return USBIP_SPEED_UNKNOWN;
	}
}
