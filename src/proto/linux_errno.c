/* Names for the Linux errno values that travel in USB/IP status fields. */
#include "proto/linux_errno.h"

const char *linux_errno_name(int err)
{
	/* Widen before negating: -INT_MIN does not fit an int. */
	long e = err < 0 ? -(long)err : (long)err;

	switch (e) {
	case LNX_EPERM: return "EPERM";
	case LNX_ENOENT: return "ENOENT";
	case LNX_EIO: return "EIO";
	case LNX_ENOMEM: return "ENOMEM";
	case LNX_EBUSY: return "EBUSY";
	case LNX_EXDEV: return "EXDEV";
	case LNX_ENODEV: return "ENODEV";
	case LNX_EINVAL: return "EINVAL";
	case LNX_EPIPE: return "EPIPE";
	case LNX_ETIME: return "ETIME";
	case LNX_ENOSR: return "ENOSR";
	case LNX_ECOMM: return "ECOMM";
	case LNX_EPROTO: return "EPROTO";
	case LNX_EOVERFLOW: return "EOVERFLOW";
	case LNX_EILSEQ: return "EILSEQ";
	case LNX_EOPNOTSUPP: return "EOPNOTSUPP";
	case LNX_ECONNRESET: return "ECONNRESET";
	case LNX_ESHUTDOWN: return "ESHUTDOWN";
	case LNX_ETIMEDOUT: return "ETIMEDOUT";
	case LNX_EINPROGRESS: return "EINPROGRESS";
	case LNX_EREMOTEIO: return "EREMOTEIO";
	default: return "E?";
	}
}
