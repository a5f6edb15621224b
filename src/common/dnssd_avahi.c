/* DNS-SD through Avahi's client library: see dnssd.h.
 *
 * Everything Avahi calls back runs on its threaded poll's thread; the only
 * calls from other threads (start, stop) take the poll's lock. The client
 * is made with AVAHI_CLIENT_NO_FAIL, so it waits for avahi-daemon and
 * reconnects after a daemon restart; each time the client is RUNNING the
 * entry group is (re)made, or the browser. */
#include "common/dnssd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/thread-watch.h>

#include "common/log.h"

struct dnssd_announcer {
	AvahiThreadedPoll *poll;
	AvahiClient *client;
	AvahiEntryGroup *group;
	char *name; /* avahi_malloc'ed: replaced by avahi_alternative_service_name */
	uint16_t port;
	int notify_port;
	bool tls;
};

static void register_service(struct dnssd_announcer *a, AvahiClient *c);

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *ctx)
{
	struct dnssd_announcer *a = ctx;
	switch (state) {
	case AVAHI_ENTRY_GROUP_ESTABLISHED:
		log_info("dns-sd: announced \"%s\" (%s, port %u)", a->name, DNSSD_USBIP_TYPE,
			 a->port);
		break;
	case AVAHI_ENTRY_GROUP_COLLISION: {
		char *alt = avahi_alternative_service_name(a->name);
		log_warn("dns-sd: name \"%s\" taken; trying \"%s\"", a->name, alt ? alt : "?");
		if (alt) {
			avahi_free(a->name);
			a->name = alt;
		}
		avahi_entry_group_reset(g);
		register_service(a, avahi_entry_group_get_client(g));
		break;
	}
	case AVAHI_ENTRY_GROUP_FAILURE:
		log_warn("dns-sd: announcement failed: %s",
			 avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
		break;
	case AVAHI_ENTRY_GROUP_UNCOMMITED:
	case AVAHI_ENTRY_GROUP_REGISTERING:
		break;
	}
}

static void register_service(struct dnssd_announcer *a, AvahiClient *c)
{
	if (!a->group) {
		a->group = avahi_entry_group_new(c, group_cb, a);
		if (!a->group) {
			log_warn("dns-sd: cannot make an entry group: %s",
				 avahi_strerror(avahi_client_errno(c)));
			return;
		}
	}
	if (!avahi_entry_group_is_empty(a->group))
		return;
	char notify[32] = "", tls[8];
	snprintf(tls, sizeof(tls), "tls=%d", a->tls ? 1 : 0);
	if (a->notify_port > 0)
		snprintf(notify, sizeof(notify), "notify=%d", a->notify_port);
	int rc = avahi_entry_group_add_service(a->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0,
					       a->name, DNSSD_USBIP_TYPE, NULL, NULL, a->port,
					       "txtvers=1", tls, notify[0] ? notify : NULL, NULL);
	if (rc == AVAHI_ERR_COLLISION) {
		char *alt = avahi_alternative_service_name(a->name);
		if (alt) {
			avahi_free(a->name);
			a->name = alt;
			avahi_entry_group_reset(a->group);
			register_service(a, c);
		}
		return;
	}
	if (rc < 0 || (rc = avahi_entry_group_commit(a->group)) < 0)
		log_warn("dns-sd: cannot announce \"%s\": %s", a->name, avahi_strerror(rc));
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *ctx)
{
	struct dnssd_announcer *a = ctx;
	switch (state) {
	case AVAHI_CLIENT_S_RUNNING:
		register_service(a, c);
		break;
	case AVAHI_CLIENT_S_COLLISION:
	case AVAHI_CLIENT_S_REGISTERING:
		/* The host name changes: withdraw, register again when RUNNING. */
		if (a->group)
			avahi_entry_group_reset(a->group);
		break;
	case AVAHI_CLIENT_FAILURE:
		/* The daemon went away: the group died with the connection. With
		 * NO_FAIL the client itself waits for a new daemon. */
		log_warn("dns-sd: lost avahi-daemon (%s); waiting for it",
			 avahi_strerror(avahi_client_errno(c)));
		a->group = NULL;
		break;
	case AVAHI_CLIENT_CONNECTING:
		log_info("dns-sd: waiting for avahi-daemon");
		break;
	}
}

bool dnssd_supported(void)
{
	return true;
}

int dnssd_announce(const struct dnssd_service *svc, struct dnssd_announcer **out)
{
	*out = NULL;
	struct dnssd_announcer *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	char name[DNSSD_NAME_SIZE];
	if (svc->name && svc->name[0]) {
		snprintf(name, sizeof(name), "%s", svc->name);
	} else {
		char host[DNSSD_NAME_SIZE - 20];
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		host[strcspn(host, ".")] = '\0';
		snprintf(name, sizeof(name), "usbip-notify on %s", host);
	}
	int rc = -EIO;
	a->name = avahi_strdup(name);
	a->port = svc->port;
	a->notify_port = svc->notify_port;
	a->tls = svc->tls;
	a->poll = avahi_threaded_poll_new();
	if (!a->name || !a->poll)
		goto err;
	int err = 0;
	avahi_threaded_poll_lock(a->poll);
	a->client = avahi_client_new(avahi_threaded_poll_get(a->poll), AVAHI_CLIENT_NO_FAIL,
				     client_cb, a, &err);
	avahi_threaded_poll_unlock(a->poll);
	if (!a->client) {
		log_debug("dns-sd: %s", avahi_strerror(err));
		rc = err == AVAHI_ERR_NO_DAEMON ? -ENOTCONN : -EIO;
		goto err;
	}
	if (avahi_threaded_poll_start(a->poll) < 0)
		goto err;
	*out = a;
	return 0;

err:
	if (a->client)
		avahi_client_free(a->client);
	if (a->poll)
		avahi_threaded_poll_free(a->poll);
	avahi_free(a->name);
	free(a);
	return rc;
}

void dnssd_announce_stop(struct dnssd_announcer *a)
{
	if (!a)
		return;
	avahi_threaded_poll_stop(a->poll);
	/* Freeing the client frees its groups and withdraws the service. */
	avahi_client_free(a->client);
	avahi_threaded_poll_free(a->poll);
	avahi_free(a->name);
	free(a);
}

/* ---- Browsing ------------------------------------------------------------ */

#define BROWSE_MAX_NAMES 64

/* A name seen on some interfaces/protocols: one callback for the first
 * resolution, one when the last instance goes. */
struct seen_name {
	char name[AVAHI_LABEL_MAX];
	unsigned instances;
	bool reported;
};

struct dnssd_browser {
	AvahiThreadedPoll *poll;
	AvahiClient *client;
	AvahiServiceBrowser *browser;
	char *domain;
	dnssd_browse_fn fn;
	void *ctx;
	struct seen_name seen[BROWSE_MAX_NAMES];
};

static struct seen_name *seen_find(struct dnssd_browser *b, const char *name, bool make)
{
	struct seen_name *free_slot = NULL;
	for (size_t i = 0; i < BROWSE_MAX_NAMES; i++) {
		if (b->seen[i].instances && strcmp(b->seen[i].name, name) == 0)
			return &b->seen[i];
		if (!b->seen[i].instances && !free_slot)
			free_slot = &b->seen[i];
	}
	if (!make || !free_slot)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
	return free_slot;
}

/* The value of key in a TXT list, or NULL (avahi_free it). */
static char *txt_value(AvahiStringList *txt, const char *key)
{
	AvahiStringList *e = avahi_string_list_find(txt, key);
	char *k = NULL, *v = NULL;
	if (!e || avahi_string_list_get_pair(e, &k, &v, NULL) < 0)
		return NULL;
	avahi_free(k);
	return v;
}

static void resolve_cb(AvahiServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
		       AvahiResolverEvent event, const char *name, const char *type,
		       const char *domain, const char *host, const AvahiAddress *addr,
		       uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
		       void *ctx)
{
	(void)iface;
	(void)proto;
	(void)type;
	(void)domain;
	(void)host;
	(void)flags;
	struct dnssd_browser *b = ctx;
	struct seen_name *sn = seen_find(b, name, false);
	if (event == AVAHI_RESOLVER_FOUND && sn && !sn->reported) {
		char address[AVAHI_ADDRESS_STR_MAX];
		avahi_address_snprint(address, sizeof(address), addr);
		char *notify = txt_value(txt, "notify");
		char *tls = txt_value(txt, "tls");
		struct dnssd_found f = {
			.name = name,
			.address = address,
			.port = port,
			.notify_port = notify ? atoi(notify) : 0,
			.tls = tls && strcmp(tls, "1") == 0,
		};
		avahi_free(notify);
		avahi_free(tls);
		sn->reported = true;
		b->fn(b->ctx, true, &f);
	} else if (event == AVAHI_RESOLVER_FAILURE) {
		log_debug("dns-sd: cannot resolve \"%s\": %s", name,
			  avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
	}
	avahi_service_resolver_free(r);
}

static void browse_cb(AvahiServiceBrowser *sb, AvahiIfIndex iface, AvahiProtocol proto,
		      AvahiBrowserEvent event, const char *name, const char *type,
		      const char *domain, AvahiLookupResultFlags flags, void *ctx)
{
	(void)flags;
	struct dnssd_browser *b = ctx;
	struct seen_name *sn;
	switch (event) {
	case AVAHI_BROWSER_NEW:
		sn = seen_find(b, name, true);
		if (!sn) {
			log_warn("dns-sd: more than %d servers; ignoring \"%s\"", BROWSE_MAX_NAMES,
				 name);
			return;
		}
		sn->instances++;
		/* IPv4 addresses: an IPv6 link-local one would need its scope. */
		if (!avahi_service_resolver_new(avahi_service_browser_get_client(sb), iface, proto,
						name, type, domain, AVAHI_PROTO_INET, 0, resolve_cb,
						b))
			log_warn("dns-sd: cannot resolve \"%s\"", name);
		break;
	case AVAHI_BROWSER_REMOVE:
		sn = seen_find(b, name, false);
		if (!sn || --sn->instances > 0)
			return;
		if (sn->reported) {
			struct dnssd_found f = { .name = name };
			b->fn(b->ctx, false, &f);
		}
		break;
	case AVAHI_BROWSER_FAILURE:
		log_warn("dns-sd: browsing failed: %s",
			 avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(sb))));
		break;
	case AVAHI_BROWSER_ALL_FOR_NOW:
	case AVAHI_BROWSER_CACHE_EXHAUSTED:
		break;
	}
}

/* Everything the browser saw is gone with the daemon: say so. */
static void forget_all(struct dnssd_browser *b)
{
	for (size_t i = 0; i < BROWSE_MAX_NAMES; i++) {
		struct seen_name *sn = &b->seen[i];
		if (sn->instances && sn->reported) {
			struct dnssd_found f = { .name = sn->name };
			b->fn(b->ctx, false, &f);
		}
		sn->instances = 0;
	}
}

static void browse_client_cb(AvahiClient *c, AvahiClientState state, void *ctx)
{
	struct dnssd_browser *b = ctx;
	switch (state) {
	case AVAHI_CLIENT_S_RUNNING:
		if (b->browser)
			break;
		b->browser = avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
						       DNSSD_USBIP_TYPE, b->domain, 0, browse_cb, b);
		if (!b->browser)
			log_warn("dns-sd: cannot browse: %s", avahi_strerror(avahi_client_errno(c)));
		break;
	case AVAHI_CLIENT_FAILURE:
		log_warn("dns-sd: lost avahi-daemon (%s); waiting for it",
			 avahi_strerror(avahi_client_errno(c)));
		b->browser = NULL; /* freed with the connection */
		forget_all(b);
		break;
	case AVAHI_CLIENT_CONNECTING:
		log_info("dns-sd: waiting for avahi-daemon");
		break;
	case AVAHI_CLIENT_S_COLLISION:
	case AVAHI_CLIENT_S_REGISTERING:
		break;
	}
}

int dnssd_browse(const char *domain, dnssd_browse_fn fn, void *ctx, struct dnssd_browser **out)
{
	*out = NULL;
	struct dnssd_browser *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	int rc = -EIO;
	b->fn = fn;
	b->ctx = ctx;
	if (domain && domain[0] && !(b->domain = avahi_strdup(domain)))
		goto err;
	b->poll = avahi_threaded_poll_new();
	if (!b->poll)
		goto err;
	int err = 0;
	avahi_threaded_poll_lock(b->poll);
	b->client = avahi_client_new(avahi_threaded_poll_get(b->poll), AVAHI_CLIENT_NO_FAIL,
				     browse_client_cb, b, &err);
	avahi_threaded_poll_unlock(b->poll);
	if (!b->client) {
		log_debug("dns-sd: %s", avahi_strerror(err));
		rc = err == AVAHI_ERR_NO_DAEMON ? -ENOTCONN : -EIO;
		goto err;
	}
	if (avahi_threaded_poll_start(b->poll) < 0)
		goto err;
	*out = b;
	return 0;

err:
	if (b->client)
		avahi_client_free(b->client);
	if (b->poll)
		avahi_threaded_poll_free(b->poll);
	avahi_free(b->domain);
	free(b);
	return rc;
}

void dnssd_browse_stop(struct dnssd_browser *b)
{
	if (!b)
		return;
	avahi_threaded_poll_stop(b->poll);
	avahi_client_free(b->client);
	avahi_threaded_poll_free(b->poll);
	avahi_free(b->domain);
	free(b);
}
