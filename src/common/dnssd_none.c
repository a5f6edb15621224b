/* DNS-SD when the build found no DNS-SD library: see dnssd.h. */
#include "common/dnssd.h"

#include <errno.h>
#include <stddef.h>

bool dnssd_supported(void)
{
	return false;
}

int dnssd_announce(const struct dnssd_service *svc, struct dnssd_announcer **out)
{
	(void)svc;
	*out = NULL;
	return -ENOTSUP;
}

void dnssd_announce_stop(struct dnssd_announcer *a)
{
	(void)a;
}

int dnssd_browse(const char *domain, dnssd_browse_fn fn, void *ctx, struct dnssd_browser **out)
{
	(void)domain;
	(void)fn;
	(void)ctx;
	*out = NULL;
	return -ENOTSUP;
}

void dnssd_browse_stop(struct dnssd_browser *b)
{
	(void)b;
}
