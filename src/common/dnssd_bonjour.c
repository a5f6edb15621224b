/* DNS-SD through the Bonjour API (dns_sd.h): see dnssd.h.
 *
 * macOS builds this by default against the system's mDNSResponder; on
 * Linux it builds against Avahi's compatibility library (which runs the
 * same calls over avahi-daemon), so the code is tested where we test.
 * It keeps to what both provide: DNSServiceRegister, Browse, Resolve and
 * QueryRecord (for the A record; DNSServiceGetAddrInfo is not in Avahi's
 * library), with flags 0 and the default interface, and no
 * DNSServiceSetDispatchQueue.
 *
 * Each announcer and browser owns one thread that polls the sockets of its
 * DNSServiceRefs and a wake pipe, and calls DNSServiceProcessResult, so
 * every callback runs on that thread and no lock is needed; stop writes to
 * the pipe and joins. When the mDNS daemon is not there (Register or
 * Browse fails) or goes away (ProcessResult fails), the thread drops its
 * refs, says the browsed servers are gone, and tries again every
 * RETRY_MS: the daemon is followed as dnssd.h promises. */
#include "common/dnssd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dns_sd.h>

#include "common/log.h"

#define RETRY_MS 5000

/* The wake pipe: stop writes one byte; the thread only polls it. */
static int wake_open(int fds[2])
{
	if (pipe(fds) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	return 0;
}

static void wake_close(int fds[2])
{
	close(fds[0]);
	close(fds[1]);
}

static void wake_send(int fd)
{
	char c = 'q';
	while (write(fd, &c, 1) < 0 && errno == EINTR)
		;
}

/* ---- Announcing ---------------------------------------------------------- */

struct dnssd_announcer {
	pthread_t thread;
	int wake[2];
	DNSServiceRef ref; /* NULL while the daemon is not reachable */
	bool failed;       /* the register callback reported an error */
	char name[DNSSD_NAME_SIZE];
	uint16_t port;
	int notify_port;
	bool tls;
};

static void register_cb(DNSServiceRef ref, DNSServiceFlags flags, DNSServiceErrorType err,
			const char *name, const char *regtype, const char *domain, void *ctx)
{
	(void)ref;
	(void)flags;
	(void)regtype;
	(void)domain;
	struct dnssd_announcer *a = ctx;
	if (err != kDNSServiceErr_NoError) {
		log_warn("dns-sd: announcement failed (error %d)", (int)err);
		a->failed = true;
		return;
	}
	/* The library renames on a conflict by itself: name is the one taken. */
	if (name && strcmp(name, a->name) != 0)
		log_warn("dns-sd: name \"%s\" taken; announced as \"%s\"", a->name, name);
	log_info("dns-sd: announced \"%s\" (%s, port %u)", name ? name : a->name,
		 DNSSD_USBIP_TYPE, a->port);
}

/* The TXT record of dnssd.h; 0 or a dns_sd error. */
static DNSServiceErrorType make_txt(const struct dnssd_announcer *a, TXTRecordRef *txt)
{
	char notify[16], tls[2] = { a->tls ? '1' : '0', '\0' };
	TXTRecordCreate(txt, 0, NULL);
	DNSServiceErrorType err = TXTRecordSetValue(txt, "txtvers", 1, "1");
	if (!err)
		err = TXTRecordSetValue(txt, "tls", 1, tls);
	if (!err && a->notify_port > 0) {
		int n = snprintf(notify, sizeof(notify), "%d", a->notify_port);
		err = TXTRecordSetValue(txt, "notify", (uint8_t)n, notify);
	}
	return err;
}

static DNSServiceErrorType register_as(struct dnssd_announcer *a, const char *name)
{
	TXTRecordRef txt;
	DNSServiceErrorType err = make_txt(a, &txt);
	if (!err)
		err = DNSServiceRegister(&a->ref, 0, kDNSServiceInterfaceIndexAny, name,
					 DNSSD_USBIP_TYPE, NULL, NULL, htons(a->port),
					 TXTRecordGetLength(&txt), TXTRecordGetBytesPtr(&txt),
					 register_cb, a);
	TXTRecordDeallocate(&txt);
	if (err)
		a->ref = NULL;
	return err;
}

static void probe_cb(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
		     DNSServiceErrorType err, const char *name, const char *regtype,
		     const char *domain, void *ctx)
{
	(void)ref, (void)flags, (void)ifindex, (void)err, (void)name, (void)regtype;
	(void)domain, (void)ctx;
}

/* Whether the mDNS daemon answers: a browse that starts. */
static bool daemon_answers(void)
{
	DNSServiceRef ref = NULL;
	if (DNSServiceBrowse(&ref, 0, kDNSServiceInterfaceIndexAny, DNSSD_USBIP_TYPE, "local.",
			     probe_cb, NULL) != kDNSServiceErr_NoError)
		return false;
	DNSServiceRefDeallocate(ref);
	return true;
}

/* Registers a->name, or "NAME (2)" ... when it is taken. mDNSResponder
 * renames by itself; Avahi's library refuses a name another program on
 * the same avahi-daemon holds (error at the call, no callback), so when
 * the daemon does answer, the next names are tried here. */
static DNSServiceErrorType announce_register(struct dnssd_announcer *a)
{
	a->failed = false;
	DNSServiceErrorType err = register_as(a, a->name);
	if (!err || !daemon_answers())
		return err;
	for (int i = 2; i <= 10; i++) {
		char alt[DNSSD_NAME_SIZE];
		snprintf(alt, sizeof(alt), "%.*s (%d)", DNSSD_NAME_SIZE - 8, a->name, i);
		log_warn("dns-sd: name \"%s\" taken; trying \"%s\"", a->name, alt);
		if (!(err = register_as(a, alt))) {
			snprintf(a->name, sizeof(a->name), "%s", alt);
			return err;
		}
	}
	return err;
}

static void *announce_thread(void *arg)
{
	struct dnssd_announcer *a = arg;
	bool said_waiting = false;
	for (;;) {
		if (!a->ref) {
			DNSServiceErrorType err = announce_register(a);
			if (err && !said_waiting) {
				log_info("dns-sd: waiting for the mDNS daemon (error %d)", (int)err);
				said_waiting = true;
			}
			if (!err)
				said_waiting = false;
		}
		struct pollfd p[2] = { { .fd = a->wake[0], .events = POLLIN } };
		nfds_t n = 1;
		if (a->ref)
			p[n++] = (struct pollfd){ .fd = DNSServiceRefSockFD(a->ref), .events = POLLIN };
		int r = poll(p, n, a->ref ? -1 : RETRY_MS);
		if (r < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (n > 1 && p[1].revents) {
			DNSServiceErrorType err = DNSServiceProcessResult(a->ref);
			if (err || a->failed) {
				if (err)
					log_warn("dns-sd: lost the mDNS daemon (error %d); waiting for it",
						 (int)err);
				DNSServiceRefDeallocate(a->ref);
				a->ref = NULL;
				said_waiting = true;
				/* Not straight back: a failing daemon would spin us. */
				struct pollfd w = { .fd = a->wake[0], .events = POLLIN };
				if (poll(&w, 1, RETRY_MS) > 0)
					break;
			}
		}
	}
	return NULL;
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
	if (svc->name && svc->name[0]) {
		snprintf(a->name, sizeof(a->name), "%s", svc->name);
	} else {
		char host[DNSSD_NAME_SIZE - 20];
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		host[strcspn(host, ".")] = '\0';
		snprintf(a->name, sizeof(a->name), "usbip-notify on %s", host);
	}
	a->port = svc->port;
	a->notify_port = svc->notify_port;
	a->tls = svc->tls;
	int rc = wake_open(a->wake);
	if (rc < 0)
		goto err_free;
	rc = -pthread_create(&a->thread, NULL, announce_thread, a);
	if (rc < 0)
		goto err_wake;
	*out = a;
	return 0;

err_wake:
	wake_close(a->wake);
err_free:
	free(a);
	return rc == -ENOMEM ? -ENOMEM : -EIO;
}

void dnssd_announce_stop(struct dnssd_announcer *a)
{
	if (!a)
		return;
	wake_send(a->wake[1]);
	pthread_join(a->thread, NULL);
	/* Deallocating the registration withdraws the service. */
	if (a->ref)
		DNSServiceRefDeallocate(a->ref);
	wake_close(a->wake);
	free(a);
}

/* ---- Browsing ------------------------------------------------------------ */

#define BROWSE_MAX_NAMES 64
/* Resolutions and address queries in flight at once (one socket each). */
#define BROWSE_MAX_OPS 16

/* kDNSServiceMaxServiceName is 64 with its NUL. */
#define SERVICE_NAME_SIZE 64

/* A name seen on some interfaces: one callback for the first resolution,
 * one when the last instance goes. */
struct seen_name {
	char name[SERVICE_NAME_SIZE];
	unsigned instances;
	bool reported;
};

/* One resolution (service -> host, port, TXT), then its A query. */
struct op {
	struct dnssd_browser *b;
	DNSServiceRef ref; /* NULL: free slot */
	bool done;         /* freed by the loop after ProcessResult returns */
	char name[SERVICE_NAME_SIZE];
	uint32_t ifindex;
	uint16_t port;
	int notify_port;
	bool tls;
};

struct dnssd_browser {
	pthread_t thread;
	int wake[2];
	DNSServiceRef ref; /* the browse; NULL while the daemon is not reachable */
	bool failed;       /* the browse callback reported an error */
	char domain[256];
	dnssd_browse_fn fn;
	void *ctx;
	struct seen_name seen[BROWSE_MAX_NAMES];
	struct op ops[BROWSE_MAX_OPS];
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

/* The decimal value of key in a TXT record, 0 when absent or not a number
 * in 1..65535 (a peer's record: bounded, checked). */
static int txt_port(uint16_t len, const unsigned char *txt, const char *key)
{
	uint8_t vlen = 0;
	const char *v = TXTRecordGetValuePtr(len, txt, key, &vlen);
	if (!v || vlen == 0 || vlen > 5)
		return 0;
	int n = 0;
	for (uint8_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0;
		n = n * 10 + (v[i] - '0');
	}
	return n <= 65535 ? n : 0;
}

static bool txt_is(uint16_t len, const unsigned char *txt, const char *key, char want)
{
	uint8_t vlen = 0;
	const char *v = TXTRecordGetValuePtr(len, txt, key, &vlen);
	return v && vlen == 1 && v[0] == want;
}

static void query_cb(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
		     DNSServiceErrorType err, const char *fullname, uint16_t rrtype,
		     uint16_t rrclass, uint16_t rdlen, const void *rdata, uint32_t ttl, void *ctx)
{
	(void)ref;
	(void)ifindex;
	(void)fullname;
	(void)rrclass;
	(void)ttl;
	struct op *op = ctx;
	op->done = true;
	if (err) {
		log_debug("dns-sd: no address for \"%s\" (error %d)", op->name, (int)err);
		return;
	}
	if (!(flags & kDNSServiceFlagsAdd) || rrtype != kDNSServiceType_A || rdlen != 4 ||
	    !rdata) {
		op->done = false; /* not the answer: keep asking */
		return;
	}
	struct seen_name *sn = seen_find(op->b, op->name, false);
	if (!sn || sn->reported)
		return;
	char address[INET_ADDRSTRLEN];
	if (!inet_ntop(AF_INET, rdata, address, sizeof(address)))
		return;
	struct dnssd_found f = {
		.name = op->name,
		.address = address,
		.port = op->port,
		.notify_port = op->notify_port,
		.tls = op->tls,
	};
	sn->reported = true;
	op->b->fn(op->b->ctx, true, &f);
}

static void resolve_cb(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
		       DNSServiceErrorType err, const char *fullname, const char *host,
		       uint16_t port, uint16_t txt_len, const unsigned char *txt, void *ctx)
{
	(void)flags;
	(void)fullname;
	struct op *op = ctx;
	if (err || !host) {
		log_debug("dns-sd: cannot resolve \"%s\" (error %d)", op->name, (int)err);
		op->done = true;
		return;
	}
	op->port = ntohs(port);
	op->notify_port = txt_port(txt_len, txt, "notify");
	op->tls = txt_is(txt_len, txt, "tls", '1');
	/* The same slot goes on with the address query. IPv4 only: an IPv6
	 * link-local address would need its scope. */
	DNSServiceRef q = NULL;
	err = DNSServiceQueryRecord(&q, 0, ifindex, host, kDNSServiceType_A, kDNSServiceClass_IN,
				    query_cb, op);
	DNSServiceRefDeallocate(ref);
	op->ref = q;
	if (err) {
		log_debug("dns-sd: cannot look up %s (error %d)", host, (int)err);
		op->ref = NULL;
	}
}

static void op_start(struct dnssd_browser *b, uint32_t ifindex, const char *name,
		     const char *regtype, const char *domain)
{
	struct op *op = NULL;
	for (size_t i = 0; i < BROWSE_MAX_OPS && !op; i++)
		if (!b->ops[i].ref)
			op = &b->ops[i];
	if (!op) {
		log_warn("dns-sd: more than %d servers resolving at once; ignoring \"%s\"",
			 BROWSE_MAX_OPS, name);
		return;
	}
	memset(op, 0, sizeof(*op));
	op->b = b;
	op->ifindex = ifindex;
	snprintf(op->name, sizeof(op->name), "%s", name);
	DNSServiceErrorType err = DNSServiceResolve(&op->ref, 0, ifindex, name, regtype, domain,
						    resolve_cb, op);
	if (err) {
		op->ref = NULL;
		log_warn("dns-sd: cannot resolve \"%s\" (error %d)", name, (int)err);
	}
}

static void browse_cb(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
		      DNSServiceErrorType err, const char *name, const char *regtype,
		      const char *domain, void *ctx)
{
	(void)ref;
	struct dnssd_browser *b = ctx;
	if (err) {
		log_warn("dns-sd: browsing failed (error %d)", (int)err);
		b->failed = true;
		return;
	}
	if (!name || !regtype || !domain)
		return;
	struct seen_name *sn;
	if (flags & kDNSServiceFlagsAdd) {
		sn = seen_find(b, name, true);
		if (!sn) {
			log_warn("dns-sd: more than %d servers; ignoring \"%s\"", BROWSE_MAX_NAMES,
				 name);
			return;
		}
		sn->instances++;
		op_start(b, ifindex, name, regtype, domain);
		return;
	}
	sn = seen_find(b, name, false);
	if (!sn || --sn->instances > 0)
		return;
	if (sn->reported) {
		struct dnssd_found f = { .name = name };
		b->fn(b->ctx, false, &f);
	}
}

static void ops_free(struct dnssd_browser *b, bool all)
{
	for (size_t i = 0; i < BROWSE_MAX_OPS; i++) {
		struct op *op = &b->ops[i];
		if (op->ref && (all || op->done)) {
			DNSServiceRefDeallocate(op->ref);
			op->ref = NULL;
		}
	}
}

/* The daemon is gone, and with it everything the browse saw: say so. */
static void browse_reset(struct dnssd_browser *b)
{
	ops_free(b, true);
	if (b->ref)
		DNSServiceRefDeallocate(b->ref);
	b->ref = NULL;
	for (size_t i = 0; i < BROWSE_MAX_NAMES; i++) {
		struct seen_name *sn = &b->seen[i];
		if (sn->instances && sn->reported) {
			struct dnssd_found f = { .name = sn->name };
			b->fn(b->ctx, false, &f);
		}
		sn->instances = 0;
	}
}

static void *browse_thread(void *arg)
{
	struct dnssd_browser *b = arg;
	bool said_waiting = false;
	for (;;) {
		if (!b->ref) {
			b->failed = false;
			DNSServiceErrorType err = DNSServiceBrowse(&b->ref, 0,
								   kDNSServiceInterfaceIndexAny,
								   DNSSD_USBIP_TYPE, b->domain,
								   browse_cb, b);
			if (err) {
				b->ref = NULL;
				if (!said_waiting)
					log_info("dns-sd: waiting for the mDNS daemon (error %d)",
						 (int)err);
				said_waiting = true;
			} else {
				said_waiting = false;
			}
		}
		struct pollfd p[2 + BROWSE_MAX_OPS] = { { .fd = b->wake[0], .events = POLLIN } };
		DNSServiceRef refs[2 + BROWSE_MAX_OPS] = { NULL };
		nfds_t n = 1;
		if (b->ref) {
			refs[n] = b->ref;
			p[n++] = (struct pollfd){ .fd = DNSServiceRefSockFD(b->ref), .events = POLLIN };
		}
		for (size_t i = 0; i < BROWSE_MAX_OPS; i++) {
			if (!b->ops[i].ref)
				continue;
			refs[n] = b->ops[i].ref;
			p[n++] = (struct pollfd){ .fd = DNSServiceRefSockFD(b->ops[i].ref),
						  .events = POLLIN };
		}
		int r = poll(p, n, b->ref ? -1 : RETRY_MS);
		if (r < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		bool lost = false;
		/* The browse first: an op it ends is not processed after. */
		for (nfds_t i = 1; i < n && !lost; i++) {
			if (!p[i].revents)
				continue;
			DNSServiceErrorType err = DNSServiceProcessResult(refs[i]);
			if (refs[i] == b->ref && (err || b->failed))
				lost = true;
			else if (err)
				for (size_t k = 0; k < BROWSE_MAX_OPS; k++)
					if (b->ops[k].ref == refs[i])
						b->ops[k].done = true;
		}
		ops_free(b, false);
		if (lost) {
			log_warn("dns-sd: lost the mDNS daemon; waiting for it");
			browse_reset(b);
			said_waiting = true;
			struct pollfd w = { .fd = b->wake[0], .events = POLLIN };
			if (poll(&w, 1, RETRY_MS) > 0)
				break;
		}
	}
	return NULL;
}

int dnssd_browse(const char *domain, dnssd_browse_fn fn, void *ctx, struct dnssd_browser **out)
{
	*out = NULL;
	struct dnssd_browser *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	/* Avahi's library wants a domain; Bonjour's "local." is the same. */
	snprintf(b->domain, sizeof(b->domain), "%s", domain && domain[0] ? domain : "local.");
	b->fn = fn;
	b->ctx = ctx;
	int rc = wake_open(b->wake);
	if (rc < 0)
		goto err_free;
	rc = -pthread_create(&b->thread, NULL, browse_thread, b);
	if (rc < 0)
		goto err_wake;
	*out = b;
	return 0;

err_wake:
	wake_close(b->wake);
err_free:
	free(b);
	return rc == -ENOMEM ? -ENOMEM : -EIO;
}

void dnssd_browse_stop(struct dnssd_browser *b)
{
	if (!b)
		return;
	wake_send(b->wake[1]);
	pthread_join(b->thread, NULL);
	ops_free(b, true);
	if (b->ref)
		DNSServiceRefDeallocate(b->ref);
	wake_close(b->wake);
	free(b);
}
