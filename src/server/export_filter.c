/* Export filters: rule parsing and matching. */
#include "server/export_filter.h"

#include <stdio.h>
#include <string.h>

#include "proto/busid.h"

const char *export_rule_strerror(int err)
{
	switch (err) {
	case EXPORT_RULE_OK:
		return "ok";
	case EXPORT_RULE_E_EMPTY:
		return "empty rule";
	case EXPORT_RULE_E_VID:
		return "vendor id is not 1 to 4 hex digits";
	case EXPORT_RULE_E_PID:
		return "product id is not 1 to 4 hex digits";
	case EXPORT_RULE_E_SERIAL:
		return "serial number empty or too long";
	case EXPORT_RULE_E_BUSID:
		return "busid is not BUS-PORT[.PORT...]";
	case EXPORT_RULE_E_FULL:
		return "too many rules";
	default:
		return "unknown error";
	}
}

/* 1..4 hex digits, the whole of s[0..n). */
static bool parse_hex_id(const char *s, size_t n, uint16_t *out)
{
	unsigned v = 0;

	if (n < 1 || n > 4)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*out = (uint16_t)v;
	return true;
}

int export_rule_parse(const char *s, struct export_rule *out)
{
	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return EXPORT_RULE_E_EMPTY;

	if (strchr(s, '-')) {
		out->kind = EXPORT_RULE_BUSID;
		if (strlen(s) >= sizeof(out->busid) || !busid_valid(s))
			return EXPORT_RULE_E_BUSID;
		strcpy(out->busid, s);
		return EXPORT_RULE_OK;
	}

	out->kind = EXPORT_RULE_ID;
	const char *colon = strchr(s, ':');
	size_t vlen = colon ? (size_t)(colon - s) : strlen(s);
	if (!parse_hex_id(s, vlen, &out->vid))
		return EXPORT_RULE_E_VID;
	if (!colon)
		return EXPORT_RULE_OK;

	const char *p = colon + 1;
	const char *colon2 = strchr(p, ':');
	size_t plen = colon2 ? (size_t)(colon2 - p) : strlen(p);
	if (!parse_hex_id(p, plen, &out->pid))
		return EXPORT_RULE_E_PID;
	out->has_pid = true;
	if (!colon2)
		return EXPORT_RULE_OK;

	const char *serial = colon2 + 1;
	size_t slen = strlen(serial);
	if (slen == 0 || slen >= sizeof(out->serial))
		return EXPORT_RULE_E_SERIAL;
	memcpy(out->serial, serial, slen + 1);
	out->has_serial = true;
	return EXPORT_RULE_OK;
}

/* "1-1" covers "1-1" and "1-1.3...", never "1-10". */
static bool busid_covers(const char *prefix, const char *busid)
{
	size_t n = strlen(prefix);

	return strncmp(prefix, busid, n) == 0 && (busid[n] == '\0' || busid[n] == '.');
}

bool export_rule_matches(const struct export_rule *r, const struct bk_device_info *info)
{
	if (r->kind == EXPORT_RULE_BUSID)
		return busid_covers(r->busid, info->busid);
	if (info->idVendor != r->vid)
		return false;
	if (r->has_pid && info->idProduct != r->pid)
		return false;
	if (r->has_serial && strncmp(info->serial, r->serial, sizeof(info->serial)) != 0)
		return false;
	return true;
}

void export_filter_init(struct export_filter *f, bool include_vhci)
{
	memset(f, 0, sizeof(*f));
	f->include_vhci = include_vhci;
}

int export_filter_add(struct export_filter *f, bool allow, const char *rule)
{
	struct export_rule r;

	if (f->n_rules >= EXPORT_FILTER_MAX_RULES)
		return EXPORT_RULE_E_FULL;
	int rc = export_rule_parse(rule, &r);
	if (rc != EXPORT_RULE_OK)
		return rc;
	r.allow = allow;
	snprintf(r.text, sizeof(r.text), "%s", rule);
	f->rules[f->n_rules++] = r;
	f->n_allow += allow;
	return EXPORT_RULE_OK;
}

enum export_verdict export_filter_explain(const struct export_filter *f,
					  const struct bk_device_info *info, int *rule)
{
	int first_allow = -1;
	int dummy;

	if (!rule)
		rule = &dummy;
	*rule = -1;
	if (info->on_vhci && !f->include_vhci)
		return EXPORT_HIDDEN_VHCI;
	for (unsigned i = 0; i < f->n_rules; i++) {
		if (!export_rule_matches(&f->rules[i], info))
			continue;
		if (!f->rules[i].allow) {
			*rule = (int)i;
			return EXPORT_HIDDEN_DENY;
		}
		if (first_allow < 0)
			first_allow = (int)i;
	}
	if (first_allow >= 0) {
		*rule = first_allow;
		return EXPORT_OFFERED_ALLOW;
	}
	return f->n_allow == 0 ? EXPORT_OFFERED : EXPORT_HIDDEN_NO_ALLOW;
}

const char *export_verdict_name(enum export_verdict v)
{
	switch (v) {
	case EXPORT_OFFERED:
		return "offered";
	case EXPORT_OFFERED_ALLOW:
		return "allow";
	case EXPORT_HIDDEN_VHCI:
		return "vhci";
	case EXPORT_HIDDEN_DENY:
		return "deny";
	case EXPORT_HIDDEN_NO_ALLOW:
		return "no-allow-match";
	}
	return "unknown";
}

bool export_filter_offers(void *filter, const struct bk_device_info *info)
{
	return export_verdict_offered(export_filter_explain(filter, info, NULL));
}
