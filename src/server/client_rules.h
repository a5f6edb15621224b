/* Per-client device rules: --allow-client-device IDENTITY=RULE.
 *
 * IDENTITY is a TLS peer identity (certificate SAN/CN or PSK identity,
 * common/tls.h), compared exactly; RULE is an export rule as --allow takes
 * it (export_filter.h). With no rules every client may import every
 * exported device; with at least one, a client may import (and sees in its
 * device list and notify events) only devices matching a rule given for its
 * identity, and a
 * client without an identity (plaintext under --tls-optional) none. They
 * narrow the export filter, never widen it. Filled before the server
 * starts, read only afterwards: no lock. */
#ifndef USBIP_NOTIFY_SERVER_CLIENT_RULES_H
#define USBIP_NOTIFY_SERVER_CLIENT_RULES_H

#include <stdbool.h>

#include "common/tls.h"
#include "server/export_filter.h"

#define CLIENT_RULES_MAX 64

struct client_rule {
	char identity[TLS_IDENTITY_SIZE];
	struct export_rule rule;
};

struct client_rules {
	struct client_rule rules[CLIENT_RULES_MAX];
	unsigned n;
};

/* Parses "IDENTITY=RULE" (split at the first '=') and appends it. Returns
 * 0, an export_rule_err for the rule, or CLIENT_RULE_E_FORM. */
#define CLIENT_RULE_E_FORM (-100)
int client_rules_add(struct client_rules *r, const char *text);
const char *client_rule_strerror(int err);

/* May identity ("" = none) import the device? */
bool client_rules_allow(const struct client_rules *r, const char *identity,
			const struct bk_device_info *info);

#endif
