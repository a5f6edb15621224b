#include "client/reconcile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/busid.h"

static int parse_hex16(const char *s, size_t len, uint16_t *out)
{
	if (len == 0 || len > 4)
		return -EINVAL;
	uint32_t v = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -EINVAL;
		v = v << 4 | (uint32_t)d;
	}
	*out = (uint16_t)v;
	return 0;
}

int filter_add(struct client_filter *f, bool is_busid, const char *spec)
{
	struct filter_rule r;
	memset(&r, 0, sizeof(r));
	r.is_busid = is_busid;
	if (is_busid) {
		if (!busid_valid(spec))
			return -EINVAL;
		memcpy(r.busid, spec, strlen(spec) + 1);
	} else {
		const char *c1 = strchr(spec, ':');
		size_t vlen = c1 ? (size_t)(c1 - spec) : strlen(spec);
		if (parse_hex16(spec, vlen, &r.vid))
			return -EINVAL;
		if (c1) {
			const char *p = c1 + 1;
			const char *c2 = strchr(p, ':');
			size_t plen = c2 ? (size_t)(c2 - p) : strlen(p);
			if (parse_hex16(p, plen, &r.pid))
				return -EINVAL;
			r.has_pid = true;
			if (c2) {
				const char *s = c2 + 1;
				size_t slen = strlen(s);
				if (slen == 0 || slen >= sizeof(r.serial))
					return -EINVAL;
				for (size_t i = 0; i < slen; i++) {
					if (s[i] <= ' ' || s[i] > '~')
						return -EINVAL;
				}
				memcpy(r.serial, s, slen + 1);
				r.has_serial = true;
			}
		}
	}
	if (f->n >= FILTER_MAX_RULES)
		return -ENOSPC;
	f->rules[f->n++] = r;
	return 0;
}

enum filter_verdict filter_check(const struct client_filter *f, const struct dev_identity *id)
{
	if (f->n == 0)
		return FILTER_ALLOW;
	bool unknown = false;
	for (size_t i = 0; i < f->n; i++) {
		const struct filter_rule *r = &f->rules[i];
		if (r->is_busid) {
			if (strcmp(r->busid, id->busid) == 0)
				return FILTER_ALLOW;
			continue;
		}
		if (!id->has_ids) {
			unknown = true;
			continue;
		}
		if (r->vid != id->vid || (r->has_pid && r->pid != id->pid))
			continue;
		if (!r->has_serial)
			return FILTER_ALLOW;
		if (!id->serial) {
			unknown = true;
			continue;
		}
		if (strcmp(r->serial, id->serial) == 0)
			return FILTER_ALLOW;
	}
	return unknown ? FILTER_UNKNOWN : FILTER_DENY;
}

int attachment_find(const struct attachment *att, size_t natt, const char *busid)
{
	for (size_t i = 0; i < natt; i++) {
		if (strcmp(att[i].busid, busid) == 0)
			return (int)i;
	}
	return -1;
}

size_t reconcile_check_live(const struct attachment *att, size_t natt,
			    const struct port_view *ports, size_t nports, bool *stale_out)
{
	size_t stale = 0;
	for (size_t i = 0; i < natt; i++) {
		bool live = false;
		for (size_t k = 0; k < nports; k++) {
			if (ports[k].port == att[i].port) {
				live = ports[k].attaching ||
				       (ports[k].used && ports[k].devid == att[i].devid);
				break;
			}
		}
		stale_out[i] = !live;
		stale += !live;
	}
	return stale;
}

static struct dev_identity identity_of(const struct notify_v2_device *dev, bool ids_known)
{
	struct dev_identity id = {
		.busid = dev->busid,
		.has_ids = ids_known,
		.vid = dev->vid,
		.pid = dev->pid,
		.serial = ids_known ? dev->serial : NULL,
	};
	return id;
}

const char *event_reason_str(enum event_reason r)
{
	switch (r) {
	case REASON_NONE:
		return "";
	case REASON_ALREADY_ATTACHED:
		return "already attached";
	case REASON_FILTERED:
		return "not allowed by the client's filters";
	case REASON_HELD_ELSEWHERE:
		return "held by another client";
	case REASON_NOT_OURS:
		return "not attached by us";
	case REASON_STILL_HELD:
		return "still held";
	}
	return "?";
}

/* Attach when wanted and possible; shared by plugged, held and the plan. */
static enum event_decision decide_attach(const struct notify_v2_device *dev, bool ids_known,
					 const struct attachment *att, size_t natt,
					 const struct client_filter *f, enum event_reason *why)
{
	*why = REASON_NONE;
	if (attachment_find(att, natt, dev->busid) >= 0) {
		*why = REASON_ALREADY_ATTACHED;
		return DECIDE_NOTHING;
	}
	struct dev_identity id = identity_of(dev, ids_known);
	if (filter_check(f, &id) == FILTER_DENY) {
		*why = REASON_FILTERED;
		return DECIDE_NOTHING;
	}
	if (dev->held) {
		*why = REASON_HELD_ELSEWHERE;
		return DECIDE_NOTHING;
	}
	return DECIDE_ATTACH;
}

int reconcile_plan(const struct notify_v2_device *devs, size_t ndevs, bool ids_known,
		   const struct attachment *att, size_t natt, const struct client_filter *f,
		   struct action *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < natt; i++) {
		bool present = false;
		for (size_t k = 0; k < ndevs && !present; k++)
			present = strcmp(devs[k].busid, att[i].busid) == 0;
		if (present)
			continue;
		if (n == max)
			return -ENOSPC;
		out[n].type = ACTION_DETACH;
		memcpy(out[n].busid, att[i].busid, sizeof(out[n].busid));
		out[n].port = att[i].port;
		n++;
	}
	for (size_t k = 0; k < ndevs; k++) {
		enum event_reason why;
		/* A busid listed twice is attached once. */
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(devs[j].busid, devs[k].busid) == 0;
		if (dup || decide_attach(&devs[k], ids_known, att, natt, f, &why) != DECIDE_ATTACH)
			continue;
		if (n == max)
			return -ENOSPC;
		out[n].type = ACTION_ATTACH;
		memcpy(out[n].busid, devs[k].busid, sizeof(out[n].busid));
		out[n].port = -1;
		n++;
	}
	return (int)n;
}

enum event_decision reconcile_on_plugged(const struct notify_v2_device *dev, bool ids_known,
					 const struct attachment *att, size_t natt,
					 const struct client_filter *f, enum event_reason *why)
{
	return decide_attach(dev, ids_known, att, natt, f, why);
}

enum event_decision reconcile_on_unplugged(const char *busid, const struct attachment *att,
					   size_t natt, int *port_out, enum event_reason *why)
{
	*why = REASON_NONE;
	int i = attachment_find(att, natt, busid);
	if (i < 0) {
		*why = REASON_NOT_OURS;
		return DECIDE_NOTHING;
	}
	*port_out = att[i].port;
	return DECIDE_DETACH;
}

enum event_decision reconcile_on_held(const struct notify_v2_device *dev, bool ids_known,
				      const struct attachment *att, size_t natt,
				      const struct client_filter *f, enum event_reason *why)
{
	bool ours = attachment_find(att, natt, dev->busid) >= 0;
	if (dev->held && !ours) {
		*why = REASON_STILL_HELD;
		return DECIDE_NOTHING;
	}
	/* We hold an attachment, yet nobody holds the device: our session
	 * ended (vhci may not show the port free yet, it frees it just after
	 * the connection closes). Attach again if it is still wanted. */
	if (!dev->held && ours) {
		enum event_decision d = decide_attach(dev, ids_known, NULL, 0, f, why);
		return d == DECIDE_ATTACH ? DECIDE_REATTACH : DECIDE_DETACH;
	}
	return decide_attach(dev, ids_known, att, natt, f, why);
}
