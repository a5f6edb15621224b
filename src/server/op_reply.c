#include "server/op_reply.h"

#include <stdlib.h>
#include <string.h>

#include "proto/linux_errno.h"

void op_device_record(const struct bk_device_info *info, struct usbip_device_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	/* Both strings come from bounded arrays of the same sizes. */
	memcpy(rec->path, info->path, sizeof(rec->path) - 1);
	memcpy(rec->busid, info->busid, sizeof(rec->busid) - 1);
	rec->busnum = info->busnum;
	rec->devnum = info->devnum;
	rec->speed = info->speed;
	rec->idVendor = info->idVendor;
	rec->idProduct = info->idProduct;
	rec->bcdDevice = info->bcdDevice;
	rec->bDeviceClass = info->bDeviceClass;
	rec->bDeviceSubClass = info->bDeviceSubClass;
	rec->bDeviceProtocol = info->bDeviceProtocol;
	rec->bConfigurationValue = info->bConfigurationValue;
	rec->bNumConfigurations = info->bNumConfigurations;
	rec->bNumInterfaces = info->bNumInterfaces;
}

int op_devlist_reply(const struct export_view *devs, size_t count, uint8_t **out)
{
	if (count > USBIP_MAX_DEVICES)
		count = USBIP_MAX_DEVICES;
	size_t len = USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE;
	for (size_t i = 0; i < count; i++) {
		uint8_t nif = devs[i].info.bNumInterfaces;
		if (nif > USBIP_MAX_INTERFACES)
			return -LNX_EINVAL;
		len += USBIP_DEVICE_RECORD_SIZE + (size_t)nif * USBIP_INTERFACE_RECORD_SIZE;
	}
	uint8_t *buf = malloc(len);
	if (!buf)
		return -LNX_ENOMEM;

	size_t off = 0;
	int rc = usbip_devlist_reply_head_encode(USBIP_ST_OK, (uint32_t)count, buf, len);
	if (rc < 0)
		goto err_free;
	off += (size_t)rc;
	for (size_t i = 0; i < count; i++) {
		struct usbip_device_record rec;
		op_device_record(&devs[i].info, &rec);
		rc = usbip_device_record_encode(&rec, buf + off, len - off);
		if (rc < 0)
			goto err_free;
		off += (size_t)rc;
		for (uint8_t j = 0; j < rec.bNumInterfaces; j++) {
			rc = usbip_interface_record_encode(&devs[i].info.ifaces[j], buf + off,
							   len - off);
			if (rc < 0)
				goto err_free;
			off += (size_t)rc;
		}
	}
	*out = buf;
	return (int)off;

err_free:
	free(buf);
	return -LNX_EINVAL;
}
