/* Export filters: rule parsing (one row per outcome) and the allow/deny
 * decision over a small set of devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/export_filter.h"

static struct bk_device_info dev(const char *busid, uint16_t vid, uint16_t pid,
				 const char *serial, bool on_vhci)
{
	struct bk_device_info d;
	memset(&d, 0, sizeof(d));
	strcpy(d.busid, busid);
	d.idVendor = vid;
	d.idProduct = pid;
	strcpy(d.serial, serial);
	d.on_vhci = on_vhci;
	return d;
}

struct parse_case {
	const char *rule;
	int err;
	enum export_rule_kind kind;
	uint16_t vid, pid;
	bool has_pid, has_serial;
	const char *serial_or_busid;
};

static void test_parse(void **state)
{
	(void)state;
	static const struct parse_case cases[] = {
		{ "0525", EXPORT_RULE_OK, EXPORT_RULE_ID, 0x0525, 0, false, false, "" },
		{ "1d6B:2", EXPORT_RULE_OK, EXPORT_RULE_ID, 0x1d6b, 0x0002, true, false, "" },
		{ "0525:a4a0:SIM0001", EXPORT_RULE_OK, EXPORT_RULE_ID, 0x0525, 0xa4a0, true, true,
		  "SIM0001" },
		{ "0525:a4a0:A:B c", EXPORT_RULE_OK, EXPORT_RULE_ID, 0x0525, 0xa4a0, true, true,
		  "A:B c" },
		{ "1-1", EXPORT_RULE_OK, EXPORT_RULE_BUSID, 0, 0, false, false, "1-1" },
		{ "3-1.4.2", EXPORT_RULE_OK, EXPORT_RULE_BUSID, 0, 0, false, false, "3-1.4.2" },
		{ "", EXPORT_RULE_E_EMPTY, 0, 0, 0, false, false, NULL },
		{ "12345", EXPORT_RULE_E_VID, 0, 0, 0, false, false, NULL },
		{ "xyz", EXPORT_RULE_E_VID, 0, 0, 0, false, false, NULL },
		{ ":a4a0", EXPORT_RULE_E_VID, 0, 0, 0, false, false, NULL },
		{ "0525:", EXPORT_RULE_E_PID, 0, 0, 0, false, false, NULL },
		{ "0525:a4a0x", EXPORT_RULE_E_PID, 0, 0, 0, false, false, NULL },
		{ "0525:a4a0:", EXPORT_RULE_E_SERIAL, 0, 0, 0, false, false, NULL },
		{ "1-01", EXPORT_RULE_E_BUSID, 0, 0, 0, false, false, NULL },
		{ "1-", EXPORT_RULE_E_BUSID, 0, 0, 0, false, false, NULL },
		{ "1-1.", EXPORT_RULE_E_BUSID, 0, 0, 0, false, false, NULL },
		{ "0525:a4a0-1", EXPORT_RULE_E_BUSID, 0, 0, 0, false, false, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		struct export_rule r;
		int rc = export_rule_parse(c->rule, &r);
		if (rc != c->err)
			fail_msg("\"%s\": got %d (%s), want %d", c->rule, rc,
				 export_rule_strerror(rc), c->err);
		if (rc != EXPORT_RULE_OK)
			continue;
		assert_int_equal(r.kind, c->kind);
		if (c->kind == EXPORT_RULE_BUSID) {
			assert_string_equal(r.busid, c->serial_or_busid);
			continue;
		}
		assert_int_equal(r.vid, c->vid);
		assert_int_equal(r.has_pid, c->has_pid);
		assert_int_equal(r.pid, c->pid);
		assert_int_equal(r.has_serial, c->has_serial);
		assert_string_equal(r.serial, c->serial_or_busid);
	}
	struct export_rule r;
	assert_int_equal(export_rule_parse(NULL, &r), EXPORT_RULE_E_EMPTY);

	/* The longest serial that fits the field, and one byte more. */
	char rule[16 + BK_STRING_SIZE];
	strcpy(rule, "0525:a4a0:");
	size_t pre = strlen(rule);
	memset(rule + pre, 'x', BK_STRING_SIZE - 1);
	rule[pre + BK_STRING_SIZE - 1] = '\0';
	assert_int_equal(export_rule_parse(rule, &r), EXPORT_RULE_OK);
	assert_int_equal(strlen(r.serial), BK_STRING_SIZE - 1);
	strcat(rule, "x");
	assert_int_equal(export_rule_parse(rule, &r), EXPORT_RULE_E_SERIAL);
}

struct match_case {
	const char *rule;
	const char *busid;
	uint16_t vid, pid;
	const char *serial;
	bool match;
};

static void test_rule_matches(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
		{ "1-1", "1-1", 1, 1, "", true },
		{ "1-1", "1-1.3", 1, 1, "", true },
		{ "1-1", "1-1.3.7", 1, 1, "", true },
		{ "1-1", "1-10", 1, 1, "", false },
		{ "1-1", "11-1", 1, 1, "", false },
		{ "1-1", "2-1", 1, 1, "", false },
		{ "1-1.3", "1-1", 1, 1, "", false },
		{ "1-1.3", "1-1.3", 1, 1, "", true },
		{ "1-1.3", "1-1.30", 1, 1, "", false },
		{ "0525", "1-1", 0x0525, 0xa4a0, "x", true },
		{ "0525", "1-1", 0x0526, 0xa4a0, "x", false },
		{ "525:a4a0", "1-1", 0x0525, 0xa4a0, "x", true },
		{ "0525:a4a1", "1-1", 0x0525, 0xa4a0, "x", false },
		{ "0525:a4a0:SIM1", "1-1", 0x0525, 0xa4a0, "SIM1", true },
		{ "0525:a4a0:SIM1", "1-1", 0x0525, 0xa4a0, "SIM10", false },
		{ "0525:a4a0:SIM1", "1-1", 0x0525, 0xa4a0, "sim1", false },
		{ "0525:a4a0:SIM1", "1-1", 0x0525, 0xa4a0, "", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct match_case *c = &cases[i];
		struct export_rule r;
		assert_int_equal(export_rule_parse(c->rule, &r), EXPORT_RULE_OK);
		struct bk_device_info d = dev(c->busid, c->vid, c->pid, c->serial, false);
		if (export_rule_matches(&r, &d) != c->match)
			fail_msg("rule %s, device %s %04x:%04x \"%s\": want %s", c->rule, c->busid,
				 c->vid, c->pid, c->serial, c->match ? "match" : "no match");
	}
}

/* Devices used by the decision tests. */
static const struct {
	const char *busid;
	uint16_t vid, pid;
	const char *serial;
	bool vhci;
} devs[] = {
	{ "1-1", 0x0525, 0xa4a0, "SIM0001", false },   /* 0 */
	{ "1-2", 0x0525, 0xa4a0, "SIM0002", false },   /* 1 */
	{ "1-2.4", 0x1d50, 0x6018, "BMP", false },     /* 2 */
	{ "3-1", 0x0525, 0xa4a0, "SIM0003", true },    /* 3: an imported copy */
};
#define NDEVS (sizeof(devs) / sizeof(devs[0]))

struct decision_case {
	const char *name;
	bool include_vhci;
	const char *allow[3];
	const char *deny[3];
	bool offered[NDEVS];
};

static void test_decision(void **state)
{
	(void)state;
	static const struct decision_case cases[] = {
		{ "no rules", false, { NULL }, { NULL }, { true, true, true, false } },
		{ "no rules, vhci", true, { NULL }, { NULL }, { true, true, true, true } },
		{ "deny a port", false, { NULL }, { "1-2" }, { true, false, false, false } },
		{ "deny a serial", false, { NULL }, { "0525:a4a0:SIM0002" },
		  { true, false, true, false } },
		{ "allow a vendor", true, { "1d50" }, { NULL }, { false, false, true, false } },
		{ "allow two", false, { "1-1", "1d50:6018" }, { NULL },
		  { true, false, true, false } },
		{ "deny wins", false, { "0525" }, { "1-1" }, { false, true, false, false } },
		{ "deny wins, same rule", false, { "1-2" }, { "1-2" },
		  { false, false, false, false } },
		{ "allow does not bring vhci back", false, { "3-1" }, { NULL },
		  { false, false, false, false } },
		{ "vhci allowed by rule", true, { "3-1" }, { NULL }, { false, false, false, true } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct decision_case *c = &cases[i];
		struct export_filter f;
		export_filter_init(&f, c->include_vhci);
		for (int j = 0; j < 3 && c->allow[j]; j++)
			assert_int_equal(export_filter_add(&f, true, c->allow[j]), EXPORT_RULE_OK);
		for (int j = 0; j < 3 && c->deny[j]; j++)
			assert_int_equal(export_filter_add(&f, false, c->deny[j]), EXPORT_RULE_OK);
		for (size_t d = 0; d < NDEVS; d++) {
			struct bk_device_info info =
				dev(devs[d].busid, devs[d].vid, devs[d].pid, devs[d].serial,
				    devs[d].vhci);
			if (export_filter_offers(&f, &info) != c->offered[d])
				fail_msg("%s: device %s: want %s", c->name, devs[d].busid,
					 c->offered[d] ? "offered" : "hidden");
		}
	}
}

/* The reason given matches the decision and names the deciding rule. */
static void test_explain(void **state)
{
	(void)state;
	struct export_filter f;
	export_filter_init(&f, false);
	assert_int_equal(export_filter_add(&f, true, "0525"), EXPORT_RULE_OK);
	assert_int_equal(export_filter_add(&f, true, "1-1"), EXPORT_RULE_OK);
	assert_int_equal(export_filter_add(&f, false, "0525:a4a0:BAD"), EXPORT_RULE_OK);
	static const struct {
		const char *busid;
		uint16_t vid;
		const char *serial;
		bool vhci;
		enum export_verdict v;
		int rule;
		const char *name;
	} cases[] = {
		{ "1-1", 0x0525, "OK", false, EXPORT_OFFERED_ALLOW, 0, "allow" },
		{ "1-1.2", 0x1234, "", false, EXPORT_OFFERED_ALLOW, 1, "allow" },
		{ "1-1", 0x0525, "BAD", false, EXPORT_HIDDEN_DENY, 2, "deny" },
		{ "2-1", 0x1234, "", false, EXPORT_HIDDEN_NO_ALLOW, -1, "no-allow-match" },
		{ "3-1", 0x0525, "", true, EXPORT_HIDDEN_VHCI, -1, "vhci" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bk_device_info info =
			dev(cases[i].busid, cases[i].vid, 0xa4a0, cases[i].serial, cases[i].vhci);
		int rule = 99;
		enum export_verdict v = export_filter_explain(&f, &info, &rule);
		if (v != cases[i].v || rule != cases[i].rule)
			fail_msg("case %zu: verdict %d rule %d", i, v, rule);
		assert_string_equal(export_verdict_name(v), cases[i].name);
		assert_int_equal(export_filter_offers(&f, &info), export_verdict_offered(v));
	}
	assert_string_equal(f.rules[2].text, "0525:a4a0:BAD");
	export_filter_init(&f, false);
	struct bk_device_info any = dev("1-1", 1, 2, "", false);
	assert_int_equal(export_filter_explain(&f, &any, NULL), EXPORT_OFFERED);
}

static void test_filter_bounds(void **state)
{
	(void)state;
	struct export_filter f;
	export_filter_init(&f, false);
	/* A bad rule is not added. */
	assert_int_equal(export_filter_add(&f, true, "nope"), EXPORT_RULE_E_VID);
	assert_int_equal(f.n_rules, 0);
	assert_int_equal(f.n_allow, 0);
	for (int i = 0; i < EXPORT_FILTER_MAX_RULES; i++)
		assert_int_equal(export_filter_add(&f, false, "1-1"), EXPORT_RULE_OK);
	assert_int_equal(export_filter_add(&f, false, "1-1"), EXPORT_RULE_E_FULL);
	assert_int_equal(f.n_rules, EXPORT_FILTER_MAX_RULES);
	for (int e = EXPORT_RULE_E_FULL; e <= EXPORT_RULE_OK; e++)
		assert_string_not_equal(export_rule_strerror(e), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_rule_matches),
		cmocka_unit_test(test_decision),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_filter_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
