/* The one place where libusb's numbers become USB/IP's.
 *
 * libusb reports transfer results and call failures in its own enums, and
 * its speed numbers differ from Linux's; USB/IP carries negative Linux errno
 * and Linux speed values on every host OS. Everything here returns the
 * LNX_* values of proto/linux_errno.h, never the host's <errno.h>. Pure
 * functions: safe from any thread. */
#ifndef USBIP_NOTIFY_BACKEND_LIBUSB_MAP_H
#define USBIP_NOTIFY_BACKEND_LIBUSB_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include <libusb.h>

/* RET_SUBMIT.status (and an iso packet's status) for a finished transfer:
 * 0 or a negative Linux errno, as the kernel's own server would report it.
 *
 * short_not_ok: the URB asked for URB_SHORT_NOT_OK and it applies (a
 * non-isochronous IN transfer). The backend must NOT pass
 * LIBUSB_TRANSFER_SHORT_NOT_OK to libusb: libusb would then report a short
 * read as a generic error, and the client would get -EPROTO instead of the
 * -EREMOTEIO the kernel gives. requested and actual are the data lengths
 * (for control transfers without the 8-byte setup); pass false, 0, 0 for
 * iso packets. */
int32_t lnx_status_from_libusb_transfer(enum libusb_transfer_status st, bool short_not_ok,
					int requested, int actual);

/* Negative Linux errno for a failed libusb call or submit (a libusb_error
 * value); 0 for LIBUSB_SUCCESS and for the positive counts some libusb
 * calls return on success. Unknown negative values become -EIO. */
int lnx_errno_from_libusb_error(int libusb_error);

/* USB/IP wire speed (Linux enum usb_device_speed) for a libusb_speed.
 * SuperSpeedPlus is reported as SuperSpeed (5): vhci_hcd before Linux 6.12
 * refuses speed 6, and both attach to the same SuperSpeed hub ports.
 * Unknown speeds give 0, which the caller must treat as not attachable. */
uint32_t usbip_speed_from_libusb(int libusb_speed);

#endif
