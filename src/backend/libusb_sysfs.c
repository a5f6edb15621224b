/* Small, pure readers of a sysfs tree (the root is a parameter so tests can
 * use a directory of fixture files). Bounded buffers, everything checked;
 * a missing file is an answer ("not there"), not an error to log. */
#include "backend/libusb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/linux_errno.h"

/* What vhci_hcd's root hubs call themselves (drivers/usb/usbip/vhci_hcd.c
 * sets the hcd's product description to this). */
static const char vhci_product[] = "USB/IP Virtual Host Controller";

void lu_sanitize_string(char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			*s = '?';
	}
}

int lu_sysfs_read_attr(const char *root, const char *dev, const char *attr,
		       char *out, size_t n)
{
	char path[512];
	int len = snprintf(path, sizeof(path), "%s/bus/usb/devices/%s/%s", root, dev, attr);

	if (n == 0)
		return -LNX_EINVAL;
	out[0] = '\0';
	if (len < 0 || (size_t)len >= sizeof(path))
		return -LNX_EINVAL;

	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -LNX_ENOENT : -LNX_EIO;

	ssize_t got;

	do {
		got = read(fd, out, n - 1);
	} while (got < 0 && errno == EINTR);
	close(fd);
	if (got < 0)
		return -LNX_EIO;

	size_t used = (size_t)got;

	out[used] = '\0';
	if (used > 0 && out[used - 1] == '\n')
		out[--used] = '\0';
	lu_sanitize_string(out);
	return (int)used;
}

int lu_sysfs_bus_is_vhci(const char *root, unsigned busnum)
{
	char name[32];
	char path[512];
	char target[512];

	snprintf(name, sizeof(name), "usb%u", busnum);

	/* The bus's link names its controller's device, e.g.
	 * ../../../devices/platform/vhci_hcd.0/usb3. */
	int len = snprintf(path, sizeof(path), "%s/bus/usb/devices/%s", root, name);

	if (len > 0 && (size_t)len < sizeof(path)) {
		ssize_t tl = readlink(path, target, sizeof(target) - 1);

		if (tl > 0) {
			target[tl] = '\0';
			if (strstr(target, "/vhci_hcd") != NULL)
				return 1;
		}
	}

	/* No link (or a tree of plain directories): the root hub's product
	 * string still tells. */
	char product[BK_STRING_SIZE];

	if (lu_sysfs_read_attr(root, name, "product", product, sizeof(product)) > 0 &&
	    strstr(product, vhci_product) != NULL)
		return 1;
	return 0;
}
