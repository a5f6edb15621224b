#include "client/import.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "client/client_net.h"
#include "common/net.h"
#include "proto/busid.h"

const char *import_status_str(uint32_t status)
{
	switch (status) {
	case USBIP_ST_OK:
		return "ok";
	case USBIP_ST_NA:
		return "not available";
	case USBIP_ST_DEV_BUSY:
		return "busy (imported by another client)";
	case USBIP_ST_DEV_ERR:
		return "device error on the server";
	case USBIP_ST_NODEV:
		return "no such device";
	case USBIP_ST_ERROR:
		return "server error";
	default:
		return "unknown status";
	}
}

/* Maps an op status to the errno import_device returns for it. */
static int import_status_errno(uint32_t status)
{
	switch (status) {
	case USBIP_ST_OK:
		return 0;
	case USBIP_ST_DEV_BUSY:
		return -EBUSY;
	case USBIP_ST_NA:
	case USBIP_ST_NODEV:
		return -ENODEV;
	case USBIP_ST_DEV_ERR:
	case USBIP_ST_ERROR:
		return -EIO;
	default:
		return -EPROTO;
	}
}

int import_device(const char *host, const char *port, const char *busid, int timeout_ms,
		  int cancel_fd, struct import_result *out, int *op_status)
{
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	uint8_t rep[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
	struct usbip_op_common op;
	int fd = -1;

	if (op_status)
		*op_status = -1;
	if (!busid_valid(busid))
		return -EINVAL;
	if (usbip_import_request_encode(busid, req, sizeof(req)) != (int)sizeof(req))
		return -EINVAL;
	int err = net_connect(host, port, timeout_ms, cancel_fd, &fd);
	if (err)
		return err;
	int64_t deadline = net_now_ms() + timeout_ms;

	struct iovec iov = { .iov_base = req, .iov_len = sizeof(req) };
	err = net_writev_full(fd, &iov, 1);
	if (err)
		goto err_close;
	err = cnet_read_exact(fd, rep, USBIP_OP_COMMON_SIZE, deadline);
	if (err)
		goto err_close;
	if (usbip_op_common_decode(rep, USBIP_OP_COMMON_SIZE, &op) != USBIP_OK ||
	    op.code != USBIP_OP_REP_IMPORT) {
		err = -EPROTO;
		goto err_close;
	}
	if (op_status)
		*op_status = (int)(op.status > 0xff ? 0xff : op.status);
	if (op.status != USBIP_ST_OK) {
		err = import_status_errno(op.status);
		goto err_close;
	}
	err = cnet_read_exact(fd, rep + USBIP_OP_COMMON_SIZE, USBIP_DEVICE_RECORD_SIZE, deadline);
	if (err)
		goto err_close;
	if (usbip_device_record_decode(rep + USBIP_OP_COMMON_SIZE, USBIP_DEVICE_RECORD_SIZE,
				       &out->dev) != USBIP_OK ||
	    strcmp(out->dev.busid, busid) != 0 || out->dev.speed == USBIP_SPEED_UNKNOWN ||
	    out->dev.speed > USBIP_SPEED_SUPER_PLUS || out->dev.busnum > 0xffff ||
	    out->dev.devnum > 0xffff) {
		err = -EPROTO;
		goto err_close;
	}
	out->devid = out->dev.busnum << 16 | out->dev.devnum;
	out->fd = fd;
	return 0;

err_close:
	close(fd);
	return err;
}
