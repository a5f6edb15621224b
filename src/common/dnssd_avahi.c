/* DNS-SD through Avahi's client library: see dnssd.h.
 *
 * Everything Avahi calls back runs on its threaded poll's thread; the only
 * calls from other threads (start, stop) take the poll's lock. The client
 * is made with AVAHI_CLIENT_NO_FAIL, so it waits for avahi-daemon and
 * reconnects after a daemon restart; each time the client is RUNNING the
 * entry group is (re)made. */
#include "common/dnssd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
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
		log_warn("dns-sd: %s", avahi_strerror(err));
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
	return -EIO;
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
