/* Linux errno values as they travel in USB/IP status fields.
 *
 * The wire carries negative Linux errno numbers on every host OS; macOS and
 * others number their errno differently (ECONNRESET is 54 there), so the
 * protocol code uses these constants and never the host's <errno.h>. */
#ifndef USBIP_NOTIFY_PROTO_LINUX_ERRNO_H
#define USBIP_NOTIFY_PROTO_LINUX_ERRNO_H

enum linux_errno {
	LNX_EPERM = 1,
	LNX_ENOENT = 2,
	LNX_EIO = 5,
	LNX_ENOMEM = 12,
	LNX_EBUSY = 16,
	LNX_EXDEV = 18,
	LNX_ENODEV = 19,
	LNX_EINVAL = 22,
	LNX_EPIPE = 32,
	LNX_ETIME = 62,
	LNX_ENOSR = 63,
	LNX_ECOMM = 70,
	LNX_EPROTO = 71,
	LNX_EOVERFLOW = 75,
	LNX_EILSEQ = 84,
	LNX_EOPNOTSUPP = 95,
	LNX_ECONNRESET = 104,
	LNX_ESHUTDOWN = 108,
	LNX_ETIMEDOUT = 110,
	LNX_EINPROGRESS = 115,
	LNX_EREMOTEIO = 121,
};

/* Name of a Linux errno ("EPIPE"), sign ignored; "E?" when unknown. */
const char *linux_errno_name(int err);

#endif
