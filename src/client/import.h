/* OP_REQ_IMPORT from the client's side: the handshake that turns a TCP
 * connection into a USB/IP session the kernel's vhci_hcd can take over.
 *
 * The result's fd is owned by the caller: hand it to vhci_attach(), then
 * close it (the kernel holds its own reference to the socket). */
#ifndef USBIP_NOTIFY_CLIENT_IMPORT_H
#define USBIP_NOTIFY_CLIENT_IMPORT_H

#include <stdint.h>

#include "proto/usbip_codec.h"

#define IMPORT_DEFAULT_TIMEOUT_MS 5000

struct import_result {
	int fd;                          /* connected, imported session socket */
	struct usbip_device_record dev;  /* as the server described it */
	uint32_t devid;                  /* busnum << 16 | devnum */
};

/* Connects to host:port, imports busid (which must be valid) and checks the
 * reply: version, code, status, and that the returned busid is the one we
 * asked for and the speed is one vhci takes. Returns 0 and fills out, or a
 * negative errno with nothing left open:
 *   -EBUSY      the server says the device is imported by someone else
 *   -ENODEV     no such exported device (or not available)
 *   -EIO        the server failed to open it (DEV_ERR / ERROR)
 *   -EPROTO     a malformed or mismatching reply
 *   -ETIMEDOUT, -ECONNREFUSED, ... from the network
 *   -ECANCELED  cancel_fd became readable
 * *op_status (may be NULL) gets the server's status, or -1 if none came. */
int import_device(const char *host, const char *port, const char *busid, int timeout_ms,
		  int cancel_fd, struct import_result *out, int *op_status);

/* Words for an op status: "busy (imported by another client)", ... */
const char *import_status_str(uint32_t status);


#endif
