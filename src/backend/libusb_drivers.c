/* The server machine's own drivers of exported devices, taken at export.
 *
 * By default a device keeps its drivers until a client imports it: the
 * import then detaches them, which for a disk means tearing down its SCSI
 * host (~0.2 s in the test guest) while the client waits. With
 * detach_drivers() the server takes them when it exports the device, as the
 * kernel's `usbip bind` does before any import, so an import finds the
 * interfaces free. The backend remembers what it took and gives it back at
 * stop(), as `usbip unbind` would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/libusb_internal.h"
#include "common/log.h"
#include "proto/busid.h"

/* Detaches every kernel driver bound to an interface of the active
 * configuration; returns how many it recorded in t. */
static unsigned detach_all(libusb_device_handle *dh, struct lu_taken *t)
{
	struct libusb_config_descriptor *cfg;
	unsigned n = 0;

	if (libusb_get_active_config_descriptor(libusb_get_device(dh), &cfg) != LIBUSB_SUCCESS)
		return 0; /* unconfigured: no interfaces, no drivers */
	for (uint8_t i = 0; i < cfg->bNumInterfaces && n < LU_TAKEN_MAX_IFACES; i++) {
		int ifnum = cfg->interface[i].altsetting[0].bInterfaceNumber;

		if (libusb_kernel_driver_active(dh, ifnum) != 1)
			continue;
		int r = libusb_detach_kernel_driver(dh, ifnum);

		if (r == LIBUSB_SUCCESS)
			t->ifaces[n++] = (uint8_t)ifnum;
		else if (r != LIBUSB_ERROR_NOT_FOUND) /* NOT_FOUND: it left by itself */
			log_warn("libusb: %s: taking the driver of interface %d: %s", t->busid,
				 ifnum, libusb_error_name(r));
	}
	libusb_free_config_descriptor(cfg);
	return n;
}

/* Caller holds b->lock. */
static struct lu_taken *find_taken_locked(struct lu_backend *b, const char *busid)
{
	for (size_t i = 0; i < b->ntaken; i++)
		if (strcmp(b->taken[i].busid, busid) == 0)
			return &b->taken[i];
	return NULL;
}

/* Records t, merging with what was taken from the same device before (a
 * reset may have let a driver bind again in between). */
static void remember(struct lu_backend *b, const struct lu_taken *t)
{
	pthread_mutex_lock(&b->lock);
	struct lu_taken *old = find_taken_locked(b, t->busid);

	if (old != NULL && (old->busnum != t->busnum || old->devnum != t->devnum)) {
		*old = *t; /* an earlier device on that port: forget it */
	} else if (old != NULL) {
		for (unsigned i = 0; i < t->n; i++) {
			bool known = false;

			for (unsigned j = 0; j < old->n; j++)
				known |= old->ifaces[j] == t->ifaces[i];
			if (!known && old->n < LU_TAKEN_MAX_IFACES)
				old->ifaces[old->n++] = t->ifaces[i];
		}
	} else if (t->n > 0) {
		struct lu_taken *grown = realloc(b->taken, (b->ntaken + 1) * sizeof(*grown));

		if (grown != NULL) {
			b->taken = grown;
			b->taken[b->ntaken++] = *t;
		} else {
			log_warn("libusb: %s: out of memory: its drivers stay detached at exit",
				 t->busid);
		}
	}
	pthread_mutex_unlock(&b->lock);
}

int lu_detach_drivers(struct backend *base, const char *busid)
{
	struct lu_backend *b = (struct lu_backend *)base;
	libusb_device_handle *dh = NULL;
	int fd = -1;

	if (busid == NULL || !busid_valid(busid))
		return -LNX_EINVAL;
	int r = lu_open_device(b, busid, &dh, &fd);

	if (r < 0)
		return r;
	struct lu_taken t = { 0 };

	snprintf(t.busid, sizeof(t.busid), "%s", busid);
	t.busnum = libusb_get_bus_number(libusb_get_device(dh));
	t.devnum = libusb_get_device_address(libusb_get_device(dh));
	t.n = detach_all(dh, &t);
	libusb_close(dh); /* closing gives nothing back: only attach does */
	if (fd >= 0)
		close(fd);
	if (t.n > 0)
		log_info("libusb: %s: took %u interface driver%s of this machine (exported)",
			 busid, t.n, t.n == 1 ? "" : "s");
	remember(b, &t);
	return (int)t.n;
}

/* Gives one device its drivers back, if it is still the device they were
 * taken from. */
static void give_back(struct lu_backend *b, const struct lu_taken *t)
{
	libusb_device_handle *dh = NULL;
	int fd = -1;

	if (lu_open_device(b, t->busid, &dh, &fd) < 0)
		return; /* gone: its drivers went with it */
	libusb_device *dev = libusb_get_device(dh);

	if (libusb_get_bus_number(dev) == t->busnum && libusb_get_device_address(dev) == t->devnum)
		for (unsigned i = 0; i < t->n; i++) {
			int r = libusb_attach_kernel_driver(dh, t->ifaces[i]);

			/* BUSY: a driver is bound again already. */
			if (r != LIBUSB_SUCCESS && r != LIBUSB_ERROR_BUSY &&
			    r != LIBUSB_ERROR_NOT_FOUND && r != LIBUSB_ERROR_NO_DEVICE)
				log_warn("libusb: %s: giving back the driver of interface %u: %s",
					 t->busid, t->ifaces[i], libusb_error_name(r));
		}
	libusb_close(dh);
	if (fd >= 0)
		close(fd);
}

void lu_give_back_drivers(struct lu_backend *b)
{
	pthread_mutex_lock(&b->lock);
	struct lu_taken *taken = b->taken;
	size_t n = b->ntaken;

	b->taken = NULL;
	b->ntaken = 0;
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n; i++)
		give_back(b, &taken[i]);
	free(taken);
}
