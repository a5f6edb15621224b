/* Device lists and bk_device_info for the libusb backend.
 *
 * On Linux a scan reads sysfs (libusb_sysfs.c), not libusb: libusb built
 * with udev keeps a context's device list current only through udev
 * events, so without a udev daemon the main context never learns of a
 * device plugged after it was created, and a fresh context per scan costs
 * a libusb_init/libusb_exit each time. Elsewhere the backend's own context
 * lists the devices (libusb_get_device_list asks the OS anew there, or
 * follows its hotplug). Safe from any thread: nothing here touches shared
 * mutable state other than libusb's own. */
#include "backend/libusb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/libusb_map.h"
#include "common/log.h"
#include "proto/busid.h"
#include "proto/linux_errno.h"

int lu_busid_from_ports(uint8_t busnum, const uint8_t *ports, int n,
			char busid[USBIP_BUSID_SIZE])
{
	/* 0 ports: a root hub; negative: libusb's error (deeper than USB
	 * allows); port 0 or bus 0: not a real attachment. */
	if (n <= 0 || n > BK_MAX_PORT_DEPTH || busnum == 0)
		return -LNX_ENOENT;
	if (busid_format(busnum, ports, (size_t)n, busid) < 0)
		return -LNX_ENOENT;
	return 0;
}

int lu_device_busid(libusb_device *dev, char busid[USBIP_BUSID_SIZE],
		    uint8_t ports[BK_MAX_PORT_DEPTH], uint8_t *depth)
{
	int n = libusb_get_port_numbers(dev, ports, BK_MAX_PORT_DEPTH);
	int r = lu_busid_from_ports(libusb_get_bus_number(dev), ports, n, busid);

	if (r < 0)
		return r;
	*depth = (uint8_t)n;
	return 0;
}

bool lu_same_device(const struct bk_device_info *x, const struct bk_device_info *y)
{
	return x->busnum == y->busnum && x->devnum == y->devnum &&
	       strcmp(x->busid, y->busid) == 0;
}

size_t lu_diff(const struct bk_device_info *old, size_t nold,
	       const struct bk_device_info *cur, size_t ncur, size_t *idx)
{
	size_t found = 0;

	for (size_t i = 0; i < ncur; i++) {
		bool seen = false;

		for (size_t j = 0; j < nold && !seen; j++)
			seen = lu_same_device(&cur[i], &old[j]);
		if (!seen)
			idx[found++] = i;
	}
	return found;
}

static void fill_config(libusb_device *dev, struct bk_device_info *info)
{
	struct libusb_config_descriptor *cfg = NULL;

	/* LIBUSB_ERROR_NOT_FOUND: unconfigured (value 0, no interfaces). */
	if (libusb_get_active_config_descriptor(dev, &cfg) != LIBUSB_SUCCESS)
		return;
	info->bConfigurationValue = cfg->bConfigurationValue;
	unsigned nif = cfg->bNumInterfaces;

	if (nif > USBIP_MAX_INTERFACES)
		nif = USBIP_MAX_INTERFACES;
	info->bNumInterfaces = (uint8_t)nif;
	for (unsigned i = 0; i < nif; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];

		if (itf->num_altsetting < 1)
			continue;
		info->ifaces[i].bInterfaceClass = itf->altsetting[0].bInterfaceClass;
		info->ifaces[i].bInterfaceSubClass = itf->altsetting[0].bInterfaceSubClass;
		info->ifaces[i].bInterfaceProtocol = itf->altsetting[0].bInterfaceProtocol;
	}
	libusb_free_config_descriptor(cfg);
}

/* Strings straight from the device: needs opening it, which may fail (no
 * permission, device busy or gone); then the strings stay empty. */
static void strings_from_device(libusb_device *dev, const struct libusb_device_descriptor *dd,
				struct bk_device_info *info)
{
	libusb_device_handle *dh = NULL;

	if (dd->iSerialNumber == 0 && dd->iManufacturer == 0 && dd->iProduct == 0)
		return;
	if (libusb_open(dev, &dh) != LIBUSB_SUCCESS)
		return;

	const struct {
		uint8_t index;
		char *out;
	} want[] = {
		{ dd->iSerialNumber, info->serial },
		{ dd->iManufacturer, info->manufacturer },
		{ dd->iProduct, info->product },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (want[i].index == 0)
			continue;
		int r = libusb_get_string_descriptor_ascii(dh, want[i].index,
							   (unsigned char *)want[i].out,
							   BK_STRING_SIZE);
		if (r < 0)
			want[i].out[0] = '\0';
		lu_sanitize_string(want[i].out);
	}
	libusb_close(dh);
}

static void fill_strings(const struct lu_backend *b, libusb_device *dev,
			 const struct libusb_device_descriptor *dd,
			 const struct bk_device_info *prev, size_t nprev,
			 struct bk_device_info *info)
{
	for (size_t i = 0; i < nprev; i++) {
		if (lu_same_device(info, &prev[i])) {
			memcpy(info->serial, prev[i].serial, BK_STRING_SIZE);
			memcpy(info->manufacturer, prev[i].manufacturer, BK_STRING_SIZE);
			memcpy(info->product, prev[i].product, BK_STRING_SIZE);
			return;
		}
	}

	/* Linux caches the strings in sysfs at enumeration: reading them there
	 * costs no USB traffic and needs no access to the device node. A
	 * missing file there means the device has no such string. */
	char devnum[8];

	if (lu_sysfs_read_attr(b->sysfs_root, info->busid, "devnum", devnum, sizeof(devnum)) > 0 &&
	    strtol(devnum, NULL, 10) == info->devnum) {
		lu_sysfs_read_attr(b->sysfs_root, info->busid, "serial", info->serial, BK_STRING_SIZE);
		lu_sysfs_read_attr(b->sysfs_root, info->busid, "manufacturer", info->manufacturer,
				   BK_STRING_SIZE);
		lu_sysfs_read_attr(b->sysfs_root, info->busid, "product", info->product,
				   BK_STRING_SIZE);
		return;
	}
	/* No sysfs (not Linux): ask the device. This is synchronous I/O; it
	 * runs once per newly seen device, since later scans take the strings
	 * from prev, and on the rescan thread, never where events are handled. */
	strings_from_device(dev, dd, info);
}

int lu_device_info(const struct lu_backend *b, libusb_device *dev,
		   const struct bk_device_info *prev, size_t nprev,
		   struct bk_device_info *info)
{
	struct libusb_device_descriptor dd;

	memset(info, 0, sizeof(*info));
	int r = lu_device_busid(dev, info->busid, info->port_path, &info->port_depth);

	if (r < 0)
		return r;
	info->busnum = libusb_get_bus_number(dev);
	info->devnum = libusb_get_device_address(dev);
	info->on_vhci = lu_sysfs_bus_is_vhci(b->sysfs_root, info->busnum) == 1;
	if (info->on_vhci && !b->include_vhci)
		return -LNX_ENOENT;

	r = libusb_get_device_descriptor(dev, &dd);
	if (r != LIBUSB_SUCCESS)
		return lnx_errno_from_libusb_error(r);

	int len = snprintf(info->path, sizeof(info->path), "%s/bus/usb/devices/%s",
			   b->sysfs_root, info->busid);
	if (len < 0 || (size_t)len >= sizeof(info->path))
		info->path[0] = '\0'; /* informational only */

	info->speed = usbip_speed_from_libusb(libusb_get_device_speed(dev));
	info->idVendor = dd.idVendor;
	info->idProduct = dd.idProduct;
	info->bcdDevice = dd.bcdDevice;
	info->bDeviceClass = dd.bDeviceClass;
	info->bDeviceSubClass = dd.bDeviceSubClass;
	info->bDeviceProtocol = dd.bDeviceProtocol;
	info->bNumConfigurations = dd.bNumConfigurations;
	fill_config(dev, info);
	fill_strings(b, dev, &dd, prev, nprev, info);
	return 0;
}

int lu_scan(const struct lu_backend *b, const struct bk_device_info *prev, size_t nprev,
	    struct bk_device_info **out, size_t *count)
{
#ifdef __linux__
	int r = lu_sysfs_scan(b->sysfs_root, b->include_vhci, out, count);

	if (r < 0)
		return r;
	/* A device that a reset or a configuration change makes unreadable
	 * for a moment stays listed as it was. */
	r = lu_sysfs_keep_present(b->sysfs_root, prev, nprev, out, count);
	if (r < 0) {
		free(*out);
		*out = NULL;
		*count = 0;
	}
	return r;
#else
	libusb_device **list = NULL;
	struct bk_device_info *infos = NULL;
	size_t used = 0;

	*out = NULL;
	*count = 0;
	ssize_t n = libusb_get_device_list(b->ctx, &list);

	if (n < 0)
		return lnx_errno_from_libusb_error((int)n);
	if (n > 0) {
		infos = calloc((size_t)n, sizeof(*infos));
		if (infos == NULL) {
			libusb_free_device_list(list, 1);
			return -LNX_ENOMEM;
		}
	}
	for (ssize_t i = 0; i < n && used < USBIP_MAX_DEVICES; i++) {
		int r = lu_device_info(b, list[i], prev, nprev, &infos[used]);

		if (r == 0)
			used++;
		else if (r != -LNX_ENOENT)
			log_debug("libusb: skipping device %u-%u: %s",
				  libusb_get_bus_number(list[i]),
				  libusb_get_device_address(list[i]), linux_errno_name(r));
	}
	libusb_free_device_list(list, 1);
	if (used == 0) {
		free(infos);
		infos = NULL;
	}
	*out = infos;
	*count = used;
	return 0;
#endif
}

int lu_locate(const struct lu_backend *b, libusb_context *ctx, const char *busid,
	      uint8_t *busnum, uint8_t *devnum, libusb_device **found)
{
	libusb_device **list = NULL;
	ssize_t n = libusb_get_device_list(ctx, &list);
	int ret = -LNX_ENODEV;

	if (found != NULL)
		*found = NULL;
	if (n < 0)
		return lnx_errno_from_libusb_error((int)n);
	for (ssize_t i = 0; i < n; i++) {
		char id[USBIP_BUSID_SIZE];
		uint8_t ports[BK_MAX_PORT_DEPTH];
		uint8_t depth;

		if (lu_device_busid(list[i], id, ports, &depth) < 0 || strcmp(id, busid) != 0)
			continue;
		uint8_t bus = libusb_get_bus_number(list[i]);

		if (!b->include_vhci && lu_sysfs_bus_is_vhci(b->sysfs_root, bus) == 1)
			continue;
		*busnum = bus;
		*devnum = libusb_get_device_address(list[i]);
		if (found != NULL)
			*found = libusb_ref_device(list[i]);
		ret = 0;
		break;
	}
	libusb_free_device_list(list, 1);
	return ret;
}
