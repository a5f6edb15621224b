/* The notify hub: tells subscribers which devices are exported, and when
 * that changes (docs/notify-protocol.md).
 *
 * One thread polls the listening sockets and every subscriber; all socket
 * I/O is non-blocking and happens there. The export table's observer (run
 * by whoever changes the table, with the table locked) formats each change
 * once and appends it to every subscriber's queue under the hub's lock, then
 * wakes the thread: no I/O and nothing that waits on a peer. A subscriber
 * whose queue would pass queue_bytes is dropped (it reconnects and gets a
 * fresh snapshot), so one slow or dead peer never holds up USB traffic, the
 * table, or the other subscribers.
 *
 * A subscriber's snapshot is taken with export_table_snapshot_locked and
 * the subscriber starts receiving changes in the same locked section, so a
 * device is never reported twice or out of order.
 *
 * Lock order: export table lock, then hub lock. The hub thread never holds
 * its lock while it calls into the table. */
#ifndef USBIP_NOTIFY_SERVER_NOTIFY_HUB_H
#define USBIP_NOTIFY_SERVER_NOTIFY_HUB_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cidr.h"
#include "common/tls.h"
#include "proto/notify_v2.h"
#include "server/auth_hosts.h"
#include "server/client_rules.h"
#include "server/export_table.h"

#define NOTIFY_DEFAULT_PORT "65432"
#define NOTIFY_DEFAULT_HEARTBEAT_S 5
#define NOTIFY_MAX_HEARTBEAT_S 3600
#define NOTIFY_DEFAULT_MAX_SUBSCRIBERS 256
#define NOTIFY_DEFAULT_QUEUE_BYTES (256u * 1024u)
#define NOTIFY_DEFAULT_HELLO_TIMEOUT_MS 5000
/* A v2 subscriber from which nothing arrived for this many heartbeats is
 * dropped. */
#define NOTIFY_SILENT_HEARTBEATS 3
#define NOTIFY_MAX_LISTEN_FDS 8

struct notify_config {
	bool enabled;              /* false: no hub at all */
	const char *host;          /* NULL or "" = every address, IPv4 and IPv6 */
	const char *port;          /* "0" picks a free port */
	unsigned heartbeat_s;      /* 1..NOTIFY_MAX_HEARTBEAT_S */
	unsigned max_subscribers;  /* connections beyond this are closed at once */
	size_t queue_bytes;        /* per-subscriber output queue bound */
	int sndbuf;                /* SO_SNDBUF for subscribers, 0 = kernel default */
	unsigned hello_timeout_ms; /* a connection must say hello by then */
	const char *token;         /* shared secret, NULL or "" = none; copied */
	const char *server_name;   /* welcome's server=, NULL = host name; copied */
	/* Peers outside these rules are closed at accept; n == 0 = anyone.
	 * Not copied: the array must outlive the hub. */
	const struct cidr *allow_clients;
	size_t n_allow_clients;
	/* With a token: told of every subscriber that proved it, and of its
	 * going (auth_hosts.h). NULL = nobody is told. Not owned. */
	struct auth_hosts *auth;
	/* TLS (common/tls.h), NULL: plaintext. Not owned. A connection's
	 * first byte decides: a TLS handshake is run on a helper thread and
	 * the subscriber then talks through a userspace relay; plaintext is
	 * refused with a log line unless tls_optional. */
	struct tls_ctx *tls;
	bool tls_optional;
	/* Per-client device rules by TLS identity (client_rules.h): a
	 * subscriber hears only of the devices its identity may import. NULL
	 * or empty: every subscriber of every device. Not owned. */
	const struct client_rules *client_rules;
};

/* Defaults: disabled (the daemon turns it on; tests pick their port). */
void notify_config_defaults(struct notify_config *cfg);

struct notify_hub;

/* Does not take ownership of the table; it must outlive the hub. Returns
 * NULL on a bad configuration (token too long or with control characters,
 * heartbeat out of range) or no memory. */
struct notify_hub *notify_hub_new(struct export_table *table, const struct notify_config *cfg);

/* Binds, starts the thread and starts observing the table. 0 or -errno. */
int notify_hub_start(struct notify_hub *hub);

/* The TCP port bound, or -1. */
int notify_hub_port(const struct notify_hub *hub);

/* Subscribers connected right now (any state), and how many were dropped
 * for a full queue or silence since start: for tests and logs. */
unsigned notify_hub_subscribers(struct notify_hub *hub);
unsigned long notify_hub_dropped(struct notify_hub *hub);

/* Stops observing the table, closes every subscriber and the listeners,
 * joins the thread. Safe to call when not started, or with NULL. */
void notify_hub_stop(struct notify_hub *hub);
void notify_hub_free(struct notify_hub *hub);

#endif
