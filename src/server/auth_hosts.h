/* Hosts that proved the notify token: the tie between the notify channel's
 * authentication and USB/IP imports (docs/notify-protocol.md, "Imports").
 *
 * The notify hub calls auth_hosts_login when a v2 subscriber's hello carried
 * the right token and auth_hosts_logout when that subscriber goes; the
 * server asks auth_hosts_allowed before it serves a request. A host stays
 * allowed while it has at least one authenticated subscription, and for
 * grace_ms after its last one went, so a client that reconnects its notify
 * channel keeps its imports (and can re-import) meanwhile.
 *
 * Identity is the peer's IP address only (IPv4-mapped IPv6 folded to IPv4,
 * see common/cidr.h), so a client must reach both ports over the same
 * address family. Thread-safe: every call takes the table's own mutex and
 * never calls out while holding it. Owned by the server, shared by pointer
 * with the hub; it must outlive both. */
#ifndef USBIP_NOTIFY_SERVER_AUTH_HOSTS_H
#define USBIP_NOTIFY_SERVER_AUTH_HOSTS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cidr.h"

#define AUTH_HOSTS_DEFAULT_GRACE_MS 60000u
/* Hard bound on remembered hosts. Only token holders get in, so this is a
 * guard, not a working limit: when full, the longest-idle host without a
 * live subscription is forgotten first. */
#define AUTH_HOSTS_MAX 4096u

struct auth_hosts;

struct auth_hosts *auth_hosts_new(unsigned grace_ms);
void auth_hosts_free(struct auth_hosts *t);

/* One more authenticated subscription from a. Returns 0 or -ENOMEM (the
 * table is full of live hosts, or no memory): the host is then not
 * remembered and its imports will be refused. */
int auth_hosts_login(struct auth_hosts *t, const struct cidr_addr *a);

/* One authenticated subscription from a went; the grace period starts when
 * the host has none left. A logout without a login is ignored. */
void auth_hosts_logout(struct auth_hosts *t, const struct cidr_addr *a);

/* Has a a live authenticated subscription, or had one within grace_ms? */
bool auth_hosts_allowed(struct auth_hosts *t, const struct cidr_addr *a);

/* Hosts remembered right now (live or within their grace): for tests. */
unsigned auth_hosts_count(struct auth_hosts *t);

#endif
