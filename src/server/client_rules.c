/* Per-client device rules: see client_rules.h. */
#include "server/client_rules.h"

#include <string.h>

int client_rules_add(struct client_rules *r, const char *text)
{
	const char *eq = strchr(text, '=');
	if (!eq || eq == text || (size_t)(eq - text) >= TLS_IDENTITY_SIZE)
		return CLIENT_RULE_E_FORM;
	if (r->n >= CLIENT_RULES_MAX)
		return EXPORT_RULE_E_FULL;
	struct client_rule *cr = &r->rules[r->n];
	int rc = export_rule_parse(eq + 1, &cr->rule);
	if (rc != EXPORT_RULE_OK)
		return rc;
	memcpy(cr->identity, text, (size_t)(eq - text));
	cr->identity[eq - text] = '\0';
	cr->rule.allow = true;
	r->n++;
	return 0;
}

const char *client_rule_strerror(int err)
{
	if (err == CLIENT_RULE_E_FORM)
		return "want IDENTITY=RULE";
	return export_rule_strerror(err);
}

bool client_rules_allow(const struct client_rules *r, const char *identity,
			const struct bk_device_info *info)
{
	if (!r || r->n == 0)
		return true;
	if (!identity || !identity[0])
		return false;
	for (unsigned i = 0; i < r->n; i++)
		if (strcmp(r->rules[i].identity, identity) == 0 &&
		    export_rule_matches(&r->rules[i].rule, info))
			return true;
	return false;
}
