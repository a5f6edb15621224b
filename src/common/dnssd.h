/* DNS-SD (mDNS/Bonjour) announcement of a USB/IP server, behind one small
 * interface so the daemons never see the system's API.
 *
 * Implementations (meson -Ddnssd_impl): dnssd_avahi.c (Linux's default,
 * libavahi-client, talks to avahi-daemon over D-Bus), dnssd_bonjour.c
 * (macOS's default, the Bonjour API dns_sd.h; on Linux over Avahi's
 * compatibility library, which is how the tests run it) and dnssd_none.c
 * (no DNS-SD library found: every call says -ENOTSUP).
 *
 * The service: type DNSSD_USBIP_TYPE, port = the USB/IP port, and TXT
 * records "txtvers=1", "notify=PORT" (the notify channel's port; absent
 * when it is off) and "tls=0|1" (whether the server requires TLS).
 *
 * Threads: the implementation runs its own (Avahi's threaded poll, or one
 * polling thread per object with Bonjour); the announcement follows the
 * daemon by itself (registers when the mDNS daemon appears, again after it
 * restarts, and renames on a name conflict). */
#ifndef USBIP_NOTIFY_COMMON_DNSSD_H
#define USBIP_NOTIFY_COMMON_DNSSD_H

#include <stdbool.h>
#include <stdint.h>

#define DNSSD_USBIP_TYPE "_usbip._tcp"
#define DNSSD_NAME_SIZE 64

struct dnssd_service {
	const char *name;     /* instance name; NULL: "usbip-notify on HOSTNAME" */
	uint16_t port;        /* the USB/IP port */
	int notify_port;      /* 0 or less: no notify channel */
	bool tls;
};

struct dnssd_announcer;

/* False when built without a DNS-SD library. */
bool dnssd_supported(void);

/* Starts announcing (copies svc). 0, -ENOTSUP (no library), -ENOMEM,
 * -ENOTCONN (Avahi: no D-Bus system bus to reach avahi-daemon through), or
 * -EIO when the library cannot start. With the bus but no avahi-daemon yet
 * it succeeds: the service is registered once the daemon runs (Bonjour:
 * always so; its thread retries until mDNSResponder answers). */
int dnssd_announce(const struct dnssd_service *svc, struct dnssd_announcer **out);

/* Withdraws the service and frees everything. NULL is fine. */
void dnssd_announce_stop(struct dnssd_announcer *a);

/* A server found by browsing. Strings valid only during the callback. */
struct dnssd_found {
	const char *name;    /* instance name */
	const char *address; /* numeric IPv4 address (NULL when lost) */
	uint16_t port;       /* the USB/IP port */
	int notify_port;     /* TXT notify=, 0 when absent */
	bool tls;            /* TXT tls=1 */
};

/* found: a server appeared (resolved); !found: it left (only name set;
 * sent once its last instance, on any interface, is gone). Called on the
 * library's thread, one call at a time; may block briefly. */
typedef void (*dnssd_browse_fn)(void *ctx, bool found, const struct dnssd_found *svc);

struct dnssd_browser;

/* Follows DNSSD_USBIP_TYPE services in domain (NULL: "local"). Same
 * errors as dnssd_announce; a missing avahi-daemon is waited for. */
int dnssd_browse(const char *domain, dnssd_browse_fn fn, void *ctx, struct dnssd_browser **out);

/* Stops (no callback runs after it returns) and frees. NULL is fine. */
void dnssd_browse_stop(struct dnssd_browser *b);

#endif
