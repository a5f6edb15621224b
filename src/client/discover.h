/* --discover: follow the USB/IP servers announced over DNS-SD
 * (common/dnssd.h) as they appear and leave, beside or instead of fixed
 * --servers. Each found server is added to the daemon by its instance
 * name (daemon_add_server: notify port from its TXT record, USB/IP port
 * from its SRV record) and removed when its announcement goes. */
#ifndef USBIP_NOTIFY_CLIENT_DISCOVER_H
#define USBIP_NOTIFY_CLIENT_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "client/daemon.h"

#define DISCOVER_MAX_NAMES 16

struct discover_config {
	bool enabled;
	const char *domain;                    /* NULL: "local" */
	const char *names[DISCOVER_MAX_NAMES]; /* fnmatch(3) patterns; none: all */
	size_t nnames;
};

/* Whether an instance name passes the name patterns. */
bool discover_name_wanted(const struct discover_config *cfg, const char *name);

struct discover;

/* Starts browsing for d (which must be started). 0, -ENOTSUP (built
 * without DNS-SD), -EIO, -ENOMEM. */
int discover_start(struct daemon *d, const struct discover_config *cfg, struct discover **out);

/* Stops browsing (servers found stay followed until daemon_stop). NULL is
 * fine. */
void discover_stop(struct discover *disc);

#endif
