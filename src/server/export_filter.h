/* Export filters: which devices the server offers at all.
 *
 * A rule names devices either by identity, "VID[:PID[:SERIAL]]" (1..4 hex
 * digits each for VID and PID; the serial is everything after the second
 * ':', compared exactly), or by place, a busid "BUS-PORT[.PORT...]" that
 * matches that device and everything behind it ("1-1" matches "1-1" and
 * "1-1.3", not "1-10"). A rule with a '-' is a busid rule.
 *
 * Decision: devices on a vhci bus are never offered unless include_vhci is
 * set; then a matching deny rule hides a device (deny wins); then, if there
 * is at least one allow rule, only devices matching an allow rule are
 * offered; with no allow rule everything not denied is.
 *
 * Pure functions, no allocation; the filter is filled before the server
 * starts and only read afterwards, so it needs no lock. */
#ifndef USBIP_NOTIFY_SERVER_EXPORT_FILTER_H
#define USBIP_NOTIFY_SERVER_EXPORT_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

#define EXPORT_FILTER_MAX_RULES 64
#define EXPORT_RULE_TEXT_SIZE (BK_STRING_SIZE + 16)

enum export_rule_err {
	EXPORT_RULE_OK = 0,
	EXPORT_RULE_E_EMPTY = -1,   /* empty rule */
	EXPORT_RULE_E_VID = -2,     /* VID not 1..4 hex digits */
	EXPORT_RULE_E_PID = -3,     /* PID not 1..4 hex digits */
	EXPORT_RULE_E_SERIAL = -4,  /* serial empty or too long */
	EXPORT_RULE_E_BUSID = -5,   /* busid not in the kernel's form */
	EXPORT_RULE_E_FULL = -6,    /* EXPORT_FILTER_MAX_RULES already */
};

enum export_rule_kind {
	EXPORT_RULE_ID,     /* VID[:PID[:SERIAL]] */
	EXPORT_RULE_BUSID,  /* busid or port-path prefix */
};

struct export_rule {
	enum export_rule_kind kind;
	bool allow;
	uint16_t vid;
	bool has_pid;
	uint16_t pid;
	bool has_serial;
	char serial[BK_STRING_SIZE];
	char busid[USBIP_BUSID_SIZE];
	char text[EXPORT_RULE_TEXT_SIZE]; /* as given (export_filter_add), for messages */
};

struct export_filter {
	struct export_rule rules[EXPORT_FILTER_MAX_RULES];
	unsigned n_rules;
	unsigned n_allow;
	bool include_vhci;
};

const char *export_rule_strerror(int err);

/* Parses one rule (kind and fields; allow is left false). */
int export_rule_parse(const char *s, struct export_rule *out);

bool export_rule_matches(const struct export_rule *r, const struct bk_device_info *info);

void export_filter_init(struct export_filter *f, bool include_vhci);

/* Parses and appends an allow or deny rule; returns an export_rule_err. */
int export_filter_add(struct export_filter *f, bool allow, const char *rule);

/* Why a device is or is not offered (the decision above, spelled out). */
enum export_verdict {
	EXPORT_OFFERED,          /* no allow rules, no deny rule matched */
	EXPORT_OFFERED_ALLOW,    /* *rule: the first allow rule that matched */
	EXPORT_HIDDEN_VHCI,      /* on a vhci bus, include_vhci not set */
	EXPORT_HIDDEN_DENY,      /* *rule: the first deny rule that matched */
	EXPORT_HIDDEN_NO_ALLOW,  /* allow rules exist, none matched */
};

/* The decision with its reason; *rule (may be NULL) gets the deciding
 * rule's index into f->rules, or -1 when no rule decided. */
enum export_verdict export_filter_explain(const struct export_filter *f,
					  const struct bk_device_info *info, int *rule);

static inline bool export_verdict_offered(enum export_verdict v)
{
	return v == EXPORT_OFFERED || v == EXPORT_OFFERED_ALLOW;
}

/* "offered", "allow", "vhci", "deny", "no-allow-match": stable words for
 * list --json. */
const char *export_verdict_name(enum export_verdict v);

/* The decision above. Has the export_filter_fn signature: pass the filter
 * as ctx (server_config.filter_ctx). */
bool export_filter_offers(void *filter, const struct bk_device_info *info);

#endif
