/* Small, pure readers of a sysfs tree (the root is a parameter so tests can
 * use a directory of fixture files). Bounded buffers, everything checked;
 * a missing file is an answer ("not there"), not an error to log. */
#include "backend/libusb_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/libusb_map.h"
#include "proto/busid.h"
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

/* ---- Enumeration from sysfs ---------------------------------------------- */

/* Reads an attribute as an unsigned number in base, at most max. A missing
 * or empty file is -LNX_ENOENT (an unconfigured device has an empty
 * bConfigurationValue); anything else unparsable is -LNX_EINVAL. */
static int read_uint(const char *root, const char *dev, const char *attr, int base,
		     unsigned long max, unsigned long *out)
{
	char buf[32];
	int n = lu_sysfs_read_attr(root, dev, attr, buf, sizeof(buf));

	if (n < 0)
		return n;
	char *p = buf;

	while (*p == ' ') /* bNumInterfaces is "%2d" */
		p++;
	if (*p == '\0')
		return -LNX_ENOENT;
	if (*p == '-' || *p == '+')
		return -LNX_EINVAL;
	char *end;

	errno = 0;
	unsigned long v = strtoul(p, &end, base);

	if (errno != 0 || end == p || *end != '\0' || v > max)
		return -LNX_EINVAL;
	*out = v;
	return 0;
}

uint32_t lu_sysfs_speed(const char *text)
{
	static const struct {
		const char *text;
		int speed;
	} map[] = {
		{ "1.5", LIBUSB_SPEED_LOW },
		{ "12", LIBUSB_SPEED_FULL },
		{ "480", LIBUSB_SPEED_HIGH },
		{ "5000", LIBUSB_SPEED_SUPER },
		{ "10000", LIBUSB_SPEED_SUPER_PLUS },
		{ "20000", LIBUSB_SPEED_SUPER_PLUS },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(text, map[i].text) == 0)
			return usbip_speed_from_libusb(map[i].speed);
	return usbip_speed_from_libusb(LIBUSB_SPEED_UNKNOWN);
}

/* Port path of a busid we already know is valid ("B-P[.P...]"). */
static int ports_from_busid(const char *busid, uint8_t ports[BK_MAX_PORT_DEPTH],
			    uint8_t *depth)
{
	const char *p = strchr(busid, '-');
	uint8_t n = 0;

	if (p == NULL)
		return -LNX_EINVAL;
	while (*p == '-' || *p == '.') {
		char *end;
		unsigned long v = strtoul(p + 1, &end, 10);

		if (end == p + 1 || v == 0 || v > 255 || n >= BK_MAX_PORT_DEPTH)
			return -LNX_EINVAL;
		ports[n++] = (uint8_t)v;
		p = end;
	}
	if (*p != '\0')
		return -LNX_EINVAL;
	*depth = n;
	return 0;
}

struct if_entry {
	unsigned ifnum;
	char name[USBIP_BUSID_SIZE + 16];
};

static int cmp_if_entry(const void *a, const void *b)
{
	const struct if_entry *x = a, *y = b;

	return (x->ifnum > y->ifnum) - (x->ifnum < y->ifnum);
}

/* Interface classes of the active configuration, from the interface
 * entries ("BUSID:CFG.IFNUM") among names, in interface-number order. */
static void fill_interfaces(const char *root, char *const *names, size_t nnames,
			    struct bk_device_info *info)
{
	struct if_entry ifs[USBIP_MAX_INTERFACES];
	size_t nifs = 0;
	size_t blen = strlen(info->busid);

	if (info->bConfigurationValue == 0)
		return;
	for (size_t i = 0; i < nnames && nifs < USBIP_MAX_INTERFACES; i++) {
		const char *n = names[i];
		char *end;

		if (strncmp(n, info->busid, blen) != 0 || n[blen] != ':')
			continue;
		unsigned long cfg = strtoul(n + blen + 1, &end, 10);

		if (end == n + blen + 1 || *end != '.' || cfg != info->bConfigurationValue)
			continue;
		const char *ifp = end + 1;
		unsigned long ifnum = strtoul(ifp, &end, 10);

		if (end == ifp || *end != '\0' || ifnum > 255 ||
		    strlen(n) >= sizeof(ifs[nifs].name))
			continue;
		ifs[nifs].ifnum = (unsigned)ifnum;
		snprintf(ifs[nifs].name, sizeof(ifs[nifs].name), "%s", n);
		nifs++;
	}
	qsort(ifs, nifs, sizeof(ifs[0]), cmp_if_entry);
	for (size_t i = 0; i < nifs; i++) {
		unsigned long cls = 0, sub = 0, proto = 0;

		read_uint(root, ifs[i].name, "bInterfaceClass", 16, 0xff, &cls);
		read_uint(root, ifs[i].name, "bInterfaceSubClass", 16, 0xff, &sub);
		read_uint(root, ifs[i].name, "bInterfaceProtocol", 16, 0xff, &proto);
		info->ifaces[i].bInterfaceClass = (uint8_t)cls;
		info->ifaces[i].bInterfaceSubClass = (uint8_t)sub;
		info->ifaces[i].bInterfaceProtocol = (uint8_t)proto;
	}
	/* bNumInterfaces counts what the configuration declares; the record
	 * lists the ones that exist. */
	if (info->bNumInterfaces > nifs)
		info->bNumInterfaces = (uint8_t)nifs;
}

int lu_sysfs_device_info(const char *root, bool include_vhci, const char *busid,
			 char *const *names, size_t nnames, struct bk_device_info *info)
{
	struct {
		const char *attr;
		int base;
		unsigned long max;
		bool optional;
		unsigned long v;
	} num[] = {
		{ "busnum", 10, 0xffff, false, 0 },      /* 0 */
		{ "devnum", 10, 0xff, false, 0 },        /* 1 */
		{ "idVendor", 16, 0xffff, false, 0 },    /* 2 */
		{ "idProduct", 16, 0xffff, false, 0 },   /* 3 */
		{ "bcdDevice", 16, 0xffff, false, 0 },   /* 4 */
		{ "bDeviceClass", 16, 0xff, false, 0 },  /* 5 */
		{ "bDeviceSubClass", 16, 0xff, false, 0 }, /* 6 */
		{ "bDeviceProtocol", 16, 0xff, false, 0 }, /* 7 */
		{ "bNumConfigurations", 10, 0xff, false, 0 }, /* 8 */
		{ "bConfigurationValue", 10, 0xff, true, 0 }, /* 9: empty = unconfigured */
		{ "bNumInterfaces", 10, 0xff, true, 0 },      /* 10 */
	};

	memset(info, 0, sizeof(*info));
	if (!busid_valid(busid))
		return -LNX_ENOENT;
	snprintf(info->busid, sizeof(info->busid), "%s", busid);
	if (ports_from_busid(busid, info->port_path, &info->port_depth) < 0)
		return -LNX_ENOENT;
	for (size_t i = 0; i < sizeof(num) / sizeof(num[0]); i++) {
		int r = read_uint(root, busid, num[i].attr, num[i].base, num[i].max, &num[i].v);

		if (r == -LNX_ENOENT && num[i].optional)
			num[i].v = 0;
		else if (r < 0)
			return r == -LNX_ENOENT ? -LNX_ENODEV : r; /* gone, or half there */
	}
	info->busnum = (uint8_t)num[0].v;
	if (num[0].v != strtoul(busid, NULL, 10) || num[0].v > 0xff)
		return -LNX_EINVAL; /* bk_device_info keeps a byte, like libusb */
	/* A port reset clears the device's address until SET_ADDRESS gives
	 * the old one back (hub_port_finish_reset: update_devnum(udev, 0)):
	 * not a device we can name by its numbers right now. */
	if (num[1].v == 0)
		return -LNX_EBUSY;
	info->devnum = (uint8_t)num[1].v;
	info->idVendor = (uint16_t)num[2].v;
	info->idProduct = (uint16_t)num[3].v;
	info->bcdDevice = (uint16_t)num[4].v;
	info->bDeviceClass = (uint8_t)num[5].v;
	info->bDeviceSubClass = (uint8_t)num[6].v;
	info->bDeviceProtocol = (uint8_t)num[7].v;
	info->bNumConfigurations = (uint8_t)num[8].v;
	info->bConfigurationValue = (uint8_t)num[9].v;
	info->bNumInterfaces = (uint8_t)(num[9].v != 0 ? num[10].v : 0);

	info->on_vhci = lu_sysfs_bus_is_vhci(root, info->busnum) == 1;
	if (info->on_vhci && !include_vhci)
		return -LNX_ENOENT;

	char speed[16];

	if (lu_sysfs_read_attr(root, busid, "speed", speed, sizeof(speed)) < 0)
		return -LNX_ENODEV;
	info->speed = lu_sysfs_speed(speed);

	int len = snprintf(info->path, sizeof(info->path), "%s/bus/usb/devices/%s", root, busid);

	if (len < 0 || (size_t)len >= sizeof(info->path))
		info->path[0] = '\0'; /* informational only */
	/* Cached by the kernel at enumeration: no USB traffic. A missing file
	 * means the device has no such string. */
	lu_sysfs_read_attr(root, busid, "serial", info->serial, BK_STRING_SIZE);
	lu_sysfs_read_attr(root, busid, "manufacturer", info->manufacturer, BK_STRING_SIZE);
	lu_sysfs_read_attr(root, busid, "product", info->product, BK_STRING_SIZE);
	fill_interfaces(root, names, nnames, info);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The entry names of <root>/bus/usb/devices (devices, interfaces, root
 * hubs). A missing directory is an empty list: a host without USB. */
static int list_names(const char *root, char ***out, size_t *count)
{
	char path[512];
	int len = snprintf(path, sizeof(path), "%s/bus/usb/devices", root);

	*out = NULL;
	*count = 0;
	if (len < 0 || (size_t)len >= sizeof(path))
		return -LNX_EINVAL;
	DIR *dir = opendir(path);

	if (dir == NULL)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -LNX_EIO;

	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int ret = 0;

	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **grown = realloc(names, ncap * sizeof(*names));

			if (grown == NULL) {
				ret = -LNX_ENOMEM;
				break;
			}
			names = grown;
			cap = ncap;
		}
		names[n] = strdup(de->d_name);
		if (names[n] == NULL) {
			ret = -LNX_ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (ret < 0) {
		free_names(names, n);
		return ret;
	}
	*out = names;
	*count = n;
	return 0;
}

int lu_sysfs_scan(const char *root, bool include_vhci, struct bk_device_info **out,
		  size_t *count)
{
	char **names = NULL;
	size_t nnames = 0;
	size_t used = 0;
	struct bk_device_info *infos = NULL;

	*out = NULL;
	*count = 0;
	int r = list_names(root, &names, &nnames);

	if (r < 0)
		return r;
	if (nnames > 0) {
		infos = calloc(nnames < USBIP_MAX_DEVICES ? nnames : USBIP_MAX_DEVICES,
			       sizeof(*infos));
		if (infos == NULL) {
			free_names(names, nnames);
			return -LNX_ENOMEM;
		}
	}
	for (size_t i = 0; i < nnames && used < USBIP_MAX_DEVICES; i++) {
		/* Root hubs ("usbN") and interfaces ("B-P:C.I") fail the busid
		 * check; devices mid-removal fail their reads. */
		if (!busid_valid(names[i]))
			continue;
		if (lu_sysfs_device_info(root, include_vhci, names[i], names, nnames,
					 &infos[used]) == 0)
			used++;
	}
	free_names(names, nnames);
	if (used == 0) {
		free(infos);
		infos = NULL;
	}
	*out = infos;
	*count = used;
	return 0;
}

int lu_sysfs_locate(const char *root, bool include_vhci, const char *busid, uint8_t *busnum,
		    uint8_t *devnum)
{
	unsigned long bus, dev;

	if (!busid_valid(busid))
		return -LNX_ENODEV;
	if (read_uint(root, busid, "busnum", 10, 0xff, &bus) < 0 ||
	    read_uint(root, busid, "devnum", 10, 0xff, &dev) < 0)
		return -LNX_ENODEV;
	if (!include_vhci && lu_sysfs_bus_is_vhci(root, (unsigned)bus) == 1)
		return -LNX_ENODEV;
	*busnum = (uint8_t)bus;
	*devnum = (uint8_t)dev;
	return 0;
}

bool lu_sysfs_still_there(const char *root, const struct bk_device_info *known)
{
	char path[512];
	struct stat st;
	unsigned long v;

	if (!busid_valid(known->busid))
		return false;
	int len = snprintf(path, sizeof(path), "%s/bus/usb/devices/%s", root, known->busid);

	if (len < 0 || (size_t)len >= sizeof(path))
		return false;
	if (stat(path, &st) != 0)
		return errno != ENOENT && errno != ENOTDIR; /* gone, else unreadable */
	/* Unreadable, empty or 0 (mid-reset): the same device for all we know. */
	if (read_uint(root, known->busid, "devnum", 10, 0xff, &v) == 0 && v != 0 &&
	    v != known->devnum)
		return false; /* the port holds another device now */
	if (read_uint(root, known->busid, "busnum", 10, 0xffff, &v) == 0 && v != known->busnum)
		return false;
	return true;
}

int lu_sysfs_keep_present(const char *root, const struct bk_device_info *known, size_t nknown,
			  struct bk_device_info **cur, size_t *ncur)
{
	for (size_t i = 0; i < nknown; i++) {
		bool listed = false;

		/* Listed under another device number: a re-plug, not kept. */
		for (size_t j = 0; j < *ncur && !listed; j++)
			listed = strcmp((*cur)[j].busid, known[i].busid) == 0;
		if (listed || !lu_sysfs_still_there(root, &known[i]))
			continue;
		if (*ncur >= USBIP_MAX_DEVICES)
			break;
		struct bk_device_info *grown = realloc(*cur, (*ncur + 1) * sizeof(*grown));

		if (grown == NULL)
			return -LNX_ENOMEM;
		*cur = grown;
		(*cur)[(*ncur)++] = known[i];
	}
	return 0;
}

/* ---- Kernel uevents ------------------------------------------------------ */

bool lu_uevent_wants_rescan(const char *msg, size_t n)
{
	/* "ACTION@DEVPATH\0KEY=VALUE\0...": the header, then NUL-separated
	 * variables. libudev's own messages start with "libudev" instead. */
	const char *action = NULL, *subsystem = NULL, *devtype = NULL;
	size_t off = 0;

	if (n == 0 || memchr(msg, '@', strnlen(msg, n)) == NULL)
		return false;
	off = strnlen(msg, n) + 1;
	while (off < n) {
		const char *v = msg + off;
		size_t len = strnlen(v, n - off);

		if (len == n - off)
			break; /* no terminating NUL: ignore the rest */
		if (strncmp(v, "ACTION=", 7) == 0)
			action = v + 7;
		else if (strncmp(v, "SUBSYSTEM=", 10) == 0)
			subsystem = v + 10;
		else if (strncmp(v, "DEVTYPE=", 8) == 0)
			devtype = v + 8;
		off += len + 1;
	}
	if (action == NULL || subsystem == NULL || devtype == NULL ||
	    strcmp(subsystem, "usb") != 0 || strcmp(devtype, "usb_device") != 0)
		return false;
	/* "bind": the generic driver has chosen a configuration, so the scan
	 * sees the interfaces too ("add" comes before that); "remove": gone. */
	return strcmp(action, "bind") == 0 || strcmp(action, "remove") == 0;
}
