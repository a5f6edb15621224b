/* The Linux client's vhci_hcd, driven through sysfs.
 *
 * Facts this code relies on (kernel drivers/usb/usbip/vhci_sysfs.c):
 * - Every attribute lives on the first controller, vhci_hcd.0: attach,
 *   detach, nports (the total over all controllers) and one status file per
 *   controller ("status", "status.1", ...).
 * - Ports are numbered globally: controller N owns ports N*P .. N*P+P-1
 *   (P = ports per controller), the first half on its high-speed hub, the
 *   second half on its SuperSpeed hub. Status rows carry that global number,
 *   and attach/detach take it, always written to vhci_hcd.0.
 * - A status row is "hub port sta spd dev sockfd local_busid"; port, sta,
 *   spd and sockfd are decimal, dev is hex.
 *
 * The sysfs root and the run directory (/var/run/vhci_hcd, where the stock
 * usbip tool keeps one "HOST PORT BUSID\n" record per port) are parameters,
 * so tests point this code at fixture directories. Writes go through an ops
 * struct so tests can also inject the kernel's answers (EBUSY...).
 *
 * All functions return 0 (or a count) or a negative errno of this host: these
 * are local conditions, never sent on the wire. Not thread-safe: callers
 * serialise attaches (the daemon holds its vhci lock). */
#ifndef USBIP_NOTIFY_CLIENT_VHCI_H
#define USBIP_NOTIFY_CLIENT_VHCI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

#define VHCI_MAX_PORTS 1024      /* bound on rows we accept from status files */
#define VHCI_MAX_CONTROLLERS 128 /* status, status.1 .. status.127 */
#define VHCI_ATTR_MAX 65536      /* bound on one attribute file read */
#define VHCI_HOST_SIZE 256       /* record host field, NUL included */
#define VHCI_SERVICE_SIZE 32     /* record port/service field, NUL included */

/* Port states, the kernel's enum usbip_device_status. */
enum vhci_port_state {
	VHCI_ST_NULL = 4,         /* free */
	VHCI_ST_NOTASSIGNED = 5,
	VHCI_ST_USED = 6,
	VHCI_ST_ERROR = 7,
};

enum vhci_hub {
	VHCI_HUB_HS = 0, /* high-speed hub: low, full, high, wireless devices */
	VHCI_HUB_SS = 1, /* SuperSpeed hub */
};

struct vhci_port {
	enum vhci_hub hub;
	int port;                          /* global port number */
	int state;                         /* enum vhci_port_state, or other value seen */
	uint32_t speed;
	uint32_t devid;
	uint32_t sockfd;
	char local_busid[USBIP_BUSID_SIZE];
};

/* Writes text to the attribute file at path; returns 0 or -errno. */
typedef int (*vhci_write_fn)(void *ctx, const char *path, const char *text);

struct vhci_ops {
	vhci_write_fn write_attr;
	void *ctx;
};

struct vhci {
	char sysfs_root[PATH_MAX];
	char run_dir[PATH_MAX];
	char hc_dir[PATH_MAX];   /* .../devices/platform/vhci_hcd.0, "" until found */
	struct vhci_ops ops;
};

/* Plain open/write/close, the default ops. */
int vhci_write_file(void *ctx, const char *path, const char *text);

/* Sets up v; ops NULL = vhci_write_file. Does not touch the file system. */
int vhci_init(struct vhci *v, const char *sysfs_root, const char *run_dir,
	      const struct vhci_ops *ops);

/* Finds the controller with the attributes (vhci_hcd.0). -ENOENT when the
 * module is not loaded. */
int vhci_locate(struct vhci *v);

/* Runs /sbin/modprobe vhci-hcd (fixed argv, execve, no shell), then locates
 * the controller. Only done for the real sysfs root "/sys". */
int vhci_load_module(struct vhci *v);

/* Parses one status file's text (header line, then rows), appending at most
 * max - *count rows to ports. Returns the number of rows added or -EINVAL on
 * a malformed row / -E2BIG past max. Pure. */
int vhci_parse_status(const char *text, struct vhci_port *ports, size_t max, size_t *count);

/* Reads every status file (status, status.1, ...) into ports. Returns the
 * count or -errno. */
int vhci_read_ports(struct vhci *v, struct vhci_port *ports, size_t max);

/* Reads nports. */
int vhci_read_nports(struct vhci *v, int *nports);

/* The hub a device of this wire speed needs. */
enum vhci_hub vhci_hub_for_speed(uint32_t speed);

/* The first free port (state VHCI_ST_NULL) on the hub the speed needs,
 * skipping the ports in skip; -EBUSY when there is none, -EINVAL for a speed
 * vhci rejects (unknown). Pure. */
int vhci_pick_port(const struct vhci_port *ports, size_t n, uint32_t speed, const int *skip,
		   size_t nskip);

/* Attaches the connected, imported socket sockfd as devid/speed: picks a free
 * port, writes "PORT SOCKFD DEVID SPEED" to attach, and on EBUSY (someone
 * took the port meanwhile) re-reads the table and tries another. The caller
 * still owns sockfd (the kernel takes its own reference: close it after).
 * Speed SUPER_PLUS is reported as SUPER (older kernels reject it). */
int vhci_attach(struct vhci *v, int sockfd, uint32_t devid, uint32_t speed, int *port_out);

/* Writes "PORT" to detach. */
int vhci_detach(struct vhci *v, int port);

/* Finds port in a table; NULL if absent. Pure. */
const struct vhci_port *vhci_find_port(const struct vhci_port *ports, size_t n, int port);

/* The usbip tool's port record, run_dir/portN = "HOST SERVICE BUSID\n".
 * Write creates run_dir if needed (atomically via a temporary file). */
int vhci_record_write(struct vhci *v, int port, const char *host, const char *service,
		      const char *busid);
/* Removes it; a missing record is not an error. */
int vhci_record_remove(struct vhci *v, int port);
/* Reads it back; -ENOENT if absent, -EINVAL if malformed or the busid is
 * not valid. host/service/busid get VHCI_HOST_SIZE/VHCI_SERVICE_SIZE/
 * USBIP_BUSID_SIZE bytes. */
int vhci_record_read(struct vhci *v, int port, char *host, char *service, char *busid);

/* Reads a whole small attribute file into buf (NUL-terminated). Returns the
 * length or -errno (-EFBIG if it does not fit). */
int vhci_read_attr(const char *path, char *buf, size_t size);

#endif
