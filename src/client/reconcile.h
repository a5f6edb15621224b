/* What the client should do, as pure functions: no I/O, no allocation.
 *
 * Inputs are the server's device set (a v2 snapshot, or the devices a v1
 * server announced), the user's filters, and the attachments this client made
 * for that server (its own records, checked against vhci's port table).
 * Outputs are actions: attach this busid, detach that port. A detach always
 * names the port we attached for that server and busid, never a guess. */
#ifndef USBIP_NOTIFY_CLIENT_RECONCILE_H
#define USBIP_NOTIFY_CLIENT_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/notify_v2.h"
#include "proto/usbip_codec.h"

#define FILTER_MAX_RULES 64

/* --allow VID[:PID[:SERIAL]] (has_pid/has_serial false = any) or
 * --allow-busid BUSID. */
struct filter_rule {
	bool is_busid;
	char busid[USBIP_BUSID_SIZE];
	uint16_t vid;
	bool has_pid;
	uint16_t pid;
	bool has_serial;
	char serial[NOTIFY_V2_STRING_SIZE];
};

/* No rules = every device is allowed. */
struct client_filter {
	struct filter_rule rules[FILTER_MAX_RULES];
	size_t n;
};

/* Parses one --allow (is_busid false) or --allow-busid value and appends it.
 * VID and PID are 1..4 hex digits; the serial is printable, no spaces.
 * Returns 0, -EINVAL or -ENOSPC. */
int filter_add(struct client_filter *f, bool is_busid, const char *spec);

/* What we know of a device. A v1 server tells only the busid (has_ids
 * false); after an import the record gives vid/pid but no serial. */
struct dev_identity {
	const char *busid;
	bool has_ids;
	uint16_t vid;
	uint16_t pid;
	const char *serial;  /* NULL = unknown, "" = the device has none */
};

enum filter_verdict {
	FILTER_DENY = 0,
	FILTER_ALLOW = 1,
	FILTER_UNKNOWN = 2, /* depends on ids we do not know yet (import, then ask again) */
};

enum filter_verdict filter_check(const struct client_filter *f, const struct dev_identity *id);

/* One device this client attached for one server. */
struct attachment {
	char busid[USBIP_BUSID_SIZE];
	int port;
	uint32_t devid;
};

/* A port as vhci shows it right now (from its status files). */
struct port_view {
	int port;
	bool used;        /* state VDEV_ST_USED */
	uint32_t devid;
	/* State VDEV_ST_NOTASSIGNED: attach was written, the hub has not
	 * enumerated the device yet, and vhci shows devid 0 until it has. */
	bool attaching;
};

/* Which of our attachments are still real: the port is in use with the devid
 * we attached, or still attaching (no devid to compare yet). stale_out gets 1 for each one that is gone (vhci freed the
 * port when its session ended, or someone else's device sits there now); its
 * port must not be detached, only forgotten. Returns how many are stale. */
size_t reconcile_check_live(const struct attachment *att, size_t natt,
			    const struct port_view *ports, size_t nports, bool *stale_out);

enum action_type {
	ACTION_ATTACH,
	ACTION_DETACH,
};

struct action {
	enum action_type type;
	char busid[USBIP_BUSID_SIZE];
	int port;       /* detach only */
};

/* After a (re)connect and its snapshot: detach what left the server, attach
 * what is allowed, present, free (held=0) and not attached yet, leave the
 * rest. Devices the filter cannot decide yet (FILTER_UNKNOWN) are attached:
 * the caller checks again once the import tells the ids. Returns the number
 * of actions, or -ENOSPC if max is too small (nothing is then reliable). */
int reconcile_plan(const struct notify_v2_device *devs, size_t ndevs, bool ids_known,
		   const struct attachment *att, size_t natt, const struct client_filter *f,
		   struct action *out, size_t max);

enum event_decision {
	DECIDE_NOTHING = 0,
	DECIDE_ATTACH,
	DECIDE_DETACH,
	DECIDE_REATTACH, /* our session ended (the server says nobody holds it): forget, attach */
};

/* Why nothing is done, for logs. */
enum event_reason {
	REASON_NONE = 0,
	REASON_ALREADY_ATTACHED,
	REASON_FILTERED,
	REASON_HELD_ELSEWHERE,
	REASON_NOT_OURS,
	REASON_STILL_HELD,
};
const char *event_reason_str(enum event_reason r);

/* A device was plugged in (or, for a v1 server, announced). */
enum event_decision reconcile_on_plugged(const struct notify_v2_device *dev, bool ids_known,
					 const struct attachment *att, size_t natt,
					 const struct client_filter *f, enum event_reason *why);

/* A device left: detach exactly the port we attached for it (*port_out),
 * or nothing when we never attached it. */
enum event_decision reconcile_on_unplugged(const char *busid, const struct attachment *att,
					   size_t natt, int *port_out, enum event_reason *why);

/* A device's held flag changed: when it became free and we want it, attach. */
enum event_decision reconcile_on_held(const struct notify_v2_device *dev, bool ids_known,
				      const struct attachment *att, size_t natt,
				      const struct client_filter *f, enum event_reason *why);

/* Index of busid in att, or -1. */
int attachment_find(const struct attachment *att, size_t natt, const char *busid);

#endif
