/* A fake vhci_hcd for integration tests: the daemon's attach/detach writes
 * (through its vhci_ops hook) go to fk_write, which checks that the socket
 * handed over is a live connection to the server's USB/IP port and keeps
 * its own reference, as vhci_hcd does, and rewrites the status file the
 * daemon reads. Closing that reference is what a detach does to the
 * server's session. */
#ifndef USBIP_NOTIFY_TESTS_FAKE_VHCI_H
#define USBIP_NOTIFY_TESTS_FAKE_VHCI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HALF 4 /* 4 hs + 4 ss ports */
#define NPORTS (2 * HALF)

struct fake_port {
	bool used;
	bool enumerated; /* false: state 5 (VDEV_ST_NOTASSIGNED), devid not shown */
	uint32_t devid;
	uint32_t speed;
	int kfd; /* the "kernel's" reference to the session socket */
};

struct fake_kernel {
	pthread_mutex_t lock;
	char hc_dir[128];
	int usbip_port;           /* the socket must be connected to this port */
	struct fake_port ports[NPORTS];
	int attaches;
	int detaches;
	int bad_sockets;
	int last_attach_port;
	int last_detach_port;
	/* Like the real vhci: an attached port stays "not assigned" (state 5,
	 * devid 0) until the hub enumerates it (fk_enumerate). Off: at once. */
	bool slow_enumeration;
};

/* Creates root/devices/platform/vhci_hcd.0 with attach, detach, nports
 * and status, and initialises fk (hc_dir, lock, free ports). */
void fk_init(struct fake_kernel *fk, const char *root);
void fk_destroy(struct fake_kernel *fk);

void fk_write_status_locked(struct fake_kernel *fk);
/* The vhci_write_fn for vhci_ops (ctx = the fake kernel). */
int fk_write(void *ctx, const char *path, const char *text);
/* What vhci does by itself when the server closes a session. */
void fk_port_gone(struct fake_kernel *fk, int port);
/* The hub enumerated the device on port: vhci shows it in use with its devid. */
void fk_enumerate(struct fake_kernel *fk, int port);
/* Reads a counter of fk under its lock. */
int fk_count(struct fake_kernel *fk, const int *field);

/* Like vhci_hcd's receive thread: a port whose socket reports an error or
 * end of stream is freed (fk_port_gone). Polls every 50 ms on a thread. */
struct fk_watcher {
	struct fake_kernel *fk;
	atomic_bool stop;
	pthread_t th;
};
void fk_watch_start(struct fk_watcher *w, struct fake_kernel *fk);
void fk_watch_stop(struct fk_watcher *w);

#endif
