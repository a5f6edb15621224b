/* --discover: DNS-SD browse results into daemon servers. See discover.h. */
#include "client/discover.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dnssd.h"
#include "common/log.h"

struct discover {
	struct daemon *d;
	struct discover_config cfg;
	struct dnssd_browser *browser;
};

bool discover_name_wanted(const struct discover_config *cfg, const char *name)
{
	if (cfg->nnames == 0)
		return true;
	for (size_t i = 0; i < cfg->nnames; i++) {
		if (fnmatch(cfg->names[i], name, 0) == 0)
			return true;
	}
	return false;
}

static void on_found(void *ctx, bool found, const struct dnssd_found *svc)
{
	struct discover *disc = ctx;
	if (!discover_name_wanted(&disc->cfg, svc->name)) {
		log_debug("dns-sd: \"%s\" does not match --discover-name", svc->name);
		return;
	}
	if (!found) {
		if (daemon_remove_server(disc->d, svc->name) == 0)
			log_info("dns-sd: \"%s\" left", svc->name);
		return;
	}
	if (svc->tls) {
		log_warn("dns-sd: \"%s\" requires TLS, which this client does not speak; "
			 "not following it", svc->name);
		return;
	}
	struct daemon_server_spec spec;
	memset(&spec, 0, sizeof(spec));
	snprintf(spec.name, sizeof(spec.name), "%s", svc->name);
	snprintf(spec.host, sizeof(spec.host), "%s", svc->address);
	if (svc->notify_port > 0 && svc->notify_port <= 65535)
		snprintf(spec.notify_port, sizeof(spec.notify_port), "%d", svc->notify_port);
	else
		snprintf(spec.notify_port, sizeof(spec.notify_port), "%s",
			 DAEMON_DEFAULT_NOTIFY_PORT);
	snprintf(spec.usbip_port, sizeof(spec.usbip_port), "%u", svc->port);
	int rc = daemon_add_server(disc->d, &spec);
	if (rc == 0)
		log_info("dns-sd: found \"%s\" at %s", svc->name, svc->address);
	else if (rc != -EEXIST)
		log_warn("dns-sd: cannot follow \"%s\": %s", svc->name, strerror(-rc));
}

int discover_start(struct daemon *d, const struct discover_config *cfg, struct discover **out)
{
	*out = NULL;
	if (!dnssd_supported())
		return -ENOTSUP;
	struct discover *disc = calloc(1, sizeof(*disc));
	if (!disc)
		return -ENOMEM;
	disc->d = d;
	disc->cfg = *cfg;
	int rc = dnssd_browse(cfg->domain, on_found, disc, &disc->browser);
	if (rc < 0) {
		free(disc);
		return rc;
	}
	*out = disc;
	return 0;
}

void discover_stop(struct discover *disc)
{
	if (!disc)
		return;
	dnssd_browse_stop(disc->browser);
	free(disc);
}
