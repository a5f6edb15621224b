/* The client daemon: subscribes to notify servers and attaches/detaches
 * their devices through vhci_hcd.
 *
 * One thread per server. Each connects to the notify port, says hello (v2 or
 * v1), and turns events into imports + vhci attaches and detaches. A lost
 * connection is retried with capped exponential backoff and jitter; devices
 * already attached stay attached (their sessions are separate connections
 * the kernel owns), and after a v2 reconnect the snapshot is reconciled
 * against our attachments. Heartbeats: we ping every heartbeat seconds and
 * count the connection dead after DAEMON_DEAD_HALF_HEARTBEATS / 2 silent
 * heartbeat periods (2.5: a vanished server is noticed within 15 s at the
 * default 5 s, which three whole periods missed by the poll's latency).
 *
 * Locking: d->lock guards the vhci port table (attaches are chosen and
 * written under it), every server's attachments and state, and the state
 * file. Network I/O (notify reads, imports) happens without it. */
#ifndef USBIP_NOTIFY_CLIENT_DAEMON_H
#define USBIP_NOTIFY_CLIENT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/reconcile.h"
#include "client/vhci.h"

#define DAEMON_MAX_SERVERS 16
#define DAEMON_HOST_SIZE 256
#define DAEMON_PORT_SIZE 8
#define DAEMON_MAX_ATTACHMENTS 64           /* per server */
#define DAEMON_DEAD_HALF_HEARTBEATS 5
#define DAEMON_MAX_HOLDS 64
#define DAEMON_ERROR_SIZE 160
#define DAEMON_DEFAULT_NOTIFY_PORT "65432"
#define DAEMON_DEFAULT_USBIP_PORT "3240"
#define DAEMON_DEFAULT_STATE_FILE "/run/usbip-notify-client/state"
#define DAEMON_DEFAULT_SYSFS_ROOT "/sys"
#define DAEMON_DEFAULT_RUN_DIR "/var/run/vhci_hcd"

#define DAEMON_NAME_SIZE 64

struct daemon_server_spec {
	char host[DAEMON_HOST_SIZE];
	char notify_port[DAEMON_PORT_SIZE];
	char usbip_port[DAEMON_PORT_SIZE]; /* "": daemon_config.usbip_port */
	char name[DAEMON_NAME_SIZE];       /* DNS-SD instance name; "" for --server */
};

struct daemon_config {
	struct daemon_server_spec servers[DAEMON_MAX_SERVERS];
	size_t nservers;
	char usbip_port[DAEMON_PORT_SIZE];
	struct client_filter filter;
	int protocol;                  /* 1 or 2 */
	bool dry_run;                  /* log what would be done, touch nothing */
	bool detach_on_exit;
	char token[NOTIFY_V2_TOKEN_SIZE];  /* "" = none */
	const char *sysfs_root;
	const char *run_dir;
	const char *state_file;        /* NULL = none */
	const struct vhci_ops *vhci_ops; /* NULL = real sysfs writes (tests inject) */
	int backoff_min_ms;
	int backoff_max_ms;
	int connect_timeout_ms;
	int import_timeout_ms;
	int hello_timeout_ms;          /* wait for welcome (v2) */
	/* TLS to the servers (common/tls.h); NULL: plaintext. Not owned, must
	 * outlive the daemon. */
	struct tls_ctx *tls;
};

void daemon_config_defaults(struct daemon_config *cfg);

/* Parses "HOST[:PORT]" into the next server slot. 0 or -EINVAL/-ENOSPC. */
int daemon_config_add_server(struct daemon_config *cfg, const char *spec);

enum daemon_conn_state {
	CONN_IDLE,
	CONN_CONNECTING,
	CONN_CONNECTED,   /* hello sent, snapshot not yet complete */
	CONN_SUBSCRIBED,  /* snapshot reconciled (v2) / hello sent (v1) */
	CONN_BACKOFF,
};
const char *daemon_conn_state_str(enum daemon_conn_state s);

struct daemon;

/* Copies cfg. NULL on no memory or a bad configuration. cfg may name no
 * server when they are to come from discovery (daemon_add_server). */
struct daemon *daemon_new(const struct daemon_config *cfg);

/* Finds vhci_hcd (loading the module if needed and possible), adopts the
 * attachments recorded for our servers by an earlier run, starts one
 * thread per server. 0 or -errno. */
int daemon_start(struct daemon *d);

/* Asks every thread to stop (safe from any thread, not from a signal
 * handler), joins them, and with detach_on_exit detaches what we attached. */
void daemon_stop(struct daemon *d);
void daemon_free(struct daemon *d);

/* For tests and status: a consistent copy of a server's state. */
enum daemon_conn_state daemon_server_state(struct daemon *d, size_t server);
size_t daemon_attachments(struct daemon *d, size_t server, struct attachment *out, size_t max);
/* How many sessions (welcome received / v1 hello sent) a server has had. */
unsigned daemon_sessions(struct daemon *d, size_t server);

/* What status shows of an attachment beyond struct attachment. */
struct daemon_attachment_extra {
	uint32_t speed; /* enum usbip_speed; 0 when not known (adopted from a record) */
	int64_t since;  /* wall-clock seconds of the attach; 0 when not known */
	char transport[24]; /* "kernel TLS", "userspace relay", "plaintext"; "" unknown */
};
/* daemon_attachments() with each one's extra, index for index. */
size_t daemon_attachments_extra(struct daemon *d, size_t server, struct attachment *out,
				struct daemon_attachment_extra *extra, size_t max);

/* Servers found at run time (DNS-SD, client/discover.h), keyed by name:
 * add starts following it (a slot of DAEMON_MAX_SERVERS, reused when the
 * same name comes back); remove stops its thread, detaches what we
 * attached from it and frees the slot for status. Safe from any thread
 * after daemon_start and before daemon_stop; remove blocks until the
 * server's thread has ended (it is woken at once). 0, -EEXIST (followed
 * already), -ENOSPC, -ENOENT (remove: unknown), -EINVAL. */
int daemon_add_server(struct daemon *d, const struct daemon_server_spec *spec);
int daemon_remove_server(struct daemon *d, const char *name);

/* A server as status shows it (a consistent copy). */
struct daemon_server_status {
	char name[DAEMON_NAME_SIZE];       /* "" unless discovered */
	char host[DAEMON_HOST_SIZE];
	char notify_port[DAEMON_PORT_SIZE];
	char usbip_port[DAEMON_PORT_SIZE];
	enum daemon_conn_state state;
	unsigned sessions;
	int64_t since;                     /* wall-clock s of the current state */
	char last_error[DAEMON_ERROR_SIZE]; /* "" when none yet */
	int64_t last_error_at;             /* wall-clock s, 0 when none */
};
/* Slots in use so far (some may be free again: daemon_server_status then
 * says -ENOENT). */
size_t daemon_nservers(struct daemon *d);
int daemon_server_status(struct daemon *d, size_t server, struct daemon_server_status *out);

/* Holds: busids kept from automatic attach (from every server) until
 * released. hold does not detach; detach holds (or the server's next
 * "free" event would attach it straight back). 0, -EINVAL (bad busid),
 * -ENOSPC (too many holds), -ENOENT (release/detach: nothing to do). */
int daemon_hold(struct daemon *d, const char *busid);
int daemon_release(struct daemon *d, const char *busid);
bool daemon_is_held(struct daemon *d, const char *busid);
size_t daemon_holds(struct daemon *d, char (*out)[USBIP_BUSID_SIZE], size_t max);
int daemon_detach(struct daemon *d, const char *busid);
/* Releases a hold and imports busid now from the first subscribed server
 * that has it, filters or not (an explicit request). Blocks for the
 * import. 0, -EALREADY (attached already), -ENODEV (no server has it
 * free), -EINVAL. */
int daemon_attach(struct daemon *d, const char *busid);

/* The control socket's requests (common/control.h): "status [--json]",
 * "attach|detach|hold|release BUSID". Has control_handler_fn's shape;
 * ctx is the daemon. In daemon_control.c. */
struct strbuf;
int daemon_control(void *ctx, int argc, char **argv, struct strbuf *reply);

/* Prints the state file (if any) and the live vhci port table with each
 * port's record: the `status` subcommand. Returns 0 or -errno. */
int daemon_print_status(const char *state_file, const char *sysfs_root, const char *run_dir);

#endif
