/* The USB/IP server: listener, export table, one thread per connection.
 *
 * A connection first carries one operation request (OP_REQ_DEVLIST or
 * OP_REQ_IMPORT); a successful import turns it into a session. All state
 * lives in struct server, so tests can run several servers in one process. */
#ifndef USBIP_NOTIFY_SERVER_SERVER_H
#define USBIP_NOTIFY_SERVER_SERVER_H

#include "backend/backend.h"
#include "common/cidr.h"
#include "common/tls.h"
#include "server/auth_hosts.h"
#include "server/client_rules.h"
#include "server/export_table.h"
#include "server/notify_hub.h"
#include "server/metrics.h"
#include "server/session.h"
#include "server/trace.h"

#define SERVER_DEFAULT_PORT "3240"
#define SERVER_MAX_LISTEN_FDS 8
#define SERVER_DEFAULT_OP_TIMEOUT_MS 10000u
#define SERVER_DEFAULT_BUSY_POLL_US 1000u /* covers a disk's 120 KiB transfer */

struct server_config {
	const char *host;            /* NULL or "" = every address */
	const char *port;            /* "0" picks a free port */
	struct session_limits limits;
	unsigned max_connections;    /* connections served at once */
	export_filter_fn filter;     /* NULL = every device not on a vhci bus */
	void *filter_ctx;
	struct notify_config notify; /* the hotplug channel; off by default */

	/* Client networks allowed on both ports (the USB/IP one and notify's;
	 * they replace notify.allow_clients). Peers outside are closed at
	 * accept, with a log line. n == 0 = anyone. Not copied: the array
	 * must outlive the server. */
	const struct cidr *allow_clients;
	size_t n_allow_clients;

	/* When the notify channel is on and has a token: serve OP_REQ_DEVLIST
	 * and OP_REQ_IMPORT only to hosts with an authenticated v2
	 * subscription now or within auth_grace_ms (auth_hosts.h). Others get
	 * ST_NA for an import and a closed connection for a device list.
	 * Default on; false keeps the token on the notify channel only. */
	bool import_auth;
	/* Take the server machine's drivers from a device as soon as it is
	 * exported (and again after each session), as `usbip bind` does, so
	 * an import does not wait for them to let go. Default off: a device
	 * stays usable here until a client imports it. */
	bool detach_on_export;
	/* engine_set_busy_poll(): at most how many microseconds the loop
	 * polls without sleeping before a wait (0: never), and whether always
	 * that long (busy_poll_fixed) or as long as the last waits of its
	 * kind suggest (spin_window.h). Default SERVER_DEFAULT_BUSY_POLL_US,
	 * learnt. */
	unsigned busy_poll_us;
	bool busy_poll_fixed;
	/* Optional, not owned, must outlive the server: per-device counters
	 * (metrics.h) and the --trace sink (trace.h). */
	struct metrics *metrics;
	const struct trace *trace;
	unsigned auth_grace_ms;      /* default AUTH_HOSTS_DEFAULT_GRACE_MS */
	/* The whole operation request (OP_REQ_DEVLIST, OP_REQ_IMPORT) must
	 * arrive within this time of the accept, however it trickles in;
	 * default SERVER_DEFAULT_OP_TIMEOUT_MS (tests use less). */
	unsigned op_timeout_ms;

	/* TLS on the USB/IP port (common/tls.h); NULL: plaintext. Not owned,
	 * must outlive the server. With it, plaintext connections are refused
	 * (one log line) unless tls_optional. A session runs on the socket
	 * through kernel TLS where the kernel takes the keys, else through a
	 * userspace relay. */
	struct tls_ctx *tls;
	bool tls_optional;
	/* Per-client device rules by TLS identity (client_rules.h); NULL or
	 * empty: none. Not copied, must outlive the server. */
	const struct client_rules *client_rules;
};

void server_config_defaults(struct server_config *cfg);

struct server;

/* Does not take ownership of the backend; it must outlive the server. */
struct server *server_new(struct backend *b, const struct server_config *cfg);

/* Lists the devices, starts the backend's event thread, binds and starts
 * accepting. Returns 0 or a negative errno. */
int server_start(struct server *srv);

/* The TCP port actually bound (useful with port "0"). */
int server_port(const struct server *srv);

/* engine_busy_polls() of the server's engine (tests). */
unsigned long server_busy_polls(const struct server *srv);
/* engine_busy_poll_window() of the server's engine (tests). */
unsigned server_busy_poll_window(const struct server *srv, bool device);

struct export_table *server_exports(struct server *srv);

/* The notify hub, NULL when notify is disabled or not started, and its
 * port (-1 then). */
struct notify_hub *server_notify(struct server *srv);
int server_notify_port(const struct server *srv);

/* The authenticated-hosts table (always there; only consulted when
 * imports are tied to the notify token). */
struct auth_hosts *server_auth_hosts(struct server *srv);

/* Stops the notify hub (closing its subscribers), stops accepting, ends
 * every session (releasing its device), stops the backend's event thread. */
void server_stop(struct server *srv);
void server_free(struct server *srv);

#endif
