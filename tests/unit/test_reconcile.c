/* Pure reconcile logic: filters, liveness, the reconnect plan and per-event
 * decisions, table-driven. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/reconcile.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct notify_v2_device dev(const char *busid, uint16_t vid, uint16_t pid,
				   const char *serial, bool held)
{
	struct notify_v2_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.busid, sizeof(d.busid), "%s", busid);
	d.vid = vid;
	d.pid = pid;
	d.speed = 3;
	d.held = held;
	snprintf(d.serial, sizeof(d.serial), "%s", serial);
	return d;
}

static struct client_filter make_filter(const char *const *allow, const char *const *busids)
{
	struct client_filter f;
	memset(&f, 0, sizeof(f));
	for (; allow && *allow; allow++)
		assert_int_equal(filter_add(&f, false, *allow), 0);
	for (; busids && *busids; busids++)
		assert_int_equal(filter_add(&f, true, *busids), 0);
	return f;
}

/* ---- filter parsing ------------------------------------------------------ */

struct add_case {
	bool busid;
	const char *spec;
	int rc;
};

static void test_filter_add(void **state)
{
	(void)state;
	static const struct add_case cases[] = {
		{ false, "0525", 0 },
		{ false, "0525:a4a0", 0 },
		{ false, "0525:A4A0:SIM0001", 0 },
		{ false, "1:2", 0 },
		{ false, "", -EINVAL },
		{ false, "12345", -EINVAL },
		{ false, "xyz", -EINVAL },
		{ false, "0525:", -EINVAL },
		{ false, "0525:a4a0:", -EINVAL },
		{ false, "0525:a4a0:has space", -EINVAL },
		{ false, ":a4a0", -EINVAL },
		{ true, "1-1", 0 },
		{ true, "3-1.4.2", 0 },
		{ true, "0-1", -EINVAL },
		{ true, "../1-1", -EINVAL },
		{ true, "", -EINVAL },
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct client_filter f;
		memset(&f, 0, sizeof(f));
		int rc = filter_add(&f, cases[i].busid, cases[i].spec);
		if (rc != cases[i].rc)
			fail_msg("'%s': got %d want %d", cases[i].spec, rc, cases[i].rc);
		assert_int_equal(f.n, rc == 0 ? 1u : 0u);
	}
	struct client_filter f;
	memset(&f, 0, sizeof(f));
	assert_int_equal(filter_add(&f, false, "0525:A4a0:S1"), 0);
	assert_int_equal(f.rules[0].vid, 0x0525);
	assert_true(f.rules[0].has_pid);
	assert_int_equal(f.rules[0].pid, 0xa4a0);
	assert_true(f.rules[0].has_serial);
	assert_string_equal(f.rules[0].serial, "S1");
	for (int i = 1; i < FILTER_MAX_RULES; i++)
		assert_int_equal(filter_add(&f, true, "1-1"), 0);
	assert_int_equal(filter_add(&f, true, "1-1"), -ENOSPC);
}

/* ---- filter decisions ---------------------------------------------------- */

struct check_case {
	const char *name;
	const char *allow[4];
	const char *busids[3];
	struct dev_identity id;
	enum filter_verdict want;
};

static void test_filter_check(void **state)
{
	(void)state;
	static const struct check_case cases[] = {
		{ "no rules allow all", { NULL }, { NULL },
		  { "1-1", true, 1, 2, "" }, FILTER_ALLOW },
		{ "no rules, ids unknown", { NULL }, { NULL },
		  { "1-1", false, 0, 0, NULL }, FILTER_ALLOW },
		{ "vid match", { "0525" }, { NULL },
		  { "1-1", true, 0x525, 9, "" }, FILTER_ALLOW },
		{ "vid mismatch", { "0525" }, { NULL },
		  { "1-1", true, 0x526, 9, "" }, FILTER_DENY },
		{ "vid:pid match", { "0525:a4a0" }, { NULL },
		  { "1-1", true, 0x525, 0xa4a0, "" }, FILTER_ALLOW },
		{ "pid mismatch", { "0525:a4a0" }, { NULL },
		  { "1-1", true, 0x525, 0xa4a1, "" }, FILTER_DENY },
		{ "serial match", { "0525:a4a0:S1" }, { NULL },
		  { "1-1", true, 0x525, 0xa4a0, "S1" }, FILTER_ALLOW },
		{ "serial mismatch", { "0525:a4a0:S1" }, { NULL },
		  { "1-1", true, 0x525, 0xa4a0, "S2" }, FILTER_DENY },
		{ "serial none on device", { "0525:a4a0:S1" }, { NULL },
		  { "1-1", true, 0x525, 0xa4a0, "" }, FILTER_DENY },
		{ "serial unknown", { "0525:a4a0:S1" }, { NULL },
		  { "1-1", true, 0x525, 0xa4a0, NULL }, FILTER_UNKNOWN },
		{ "ids unknown (v1)", { "0525" }, { NULL },
		  { "1-1", false, 0, 0, NULL }, FILTER_UNKNOWN },
		{ "busid match", { NULL }, { "2-3" },
		  { "2-3", false, 0, 0, NULL }, FILTER_ALLOW },
		{ "busid mismatch", { NULL }, { "2-3" },
		  { "2-4", true, 1, 1, "" }, FILTER_DENY },
		{ "busid or vid: vid", { "0525" }, { "2-3" },
		  { "9-9", true, 0x525, 1, "" }, FILTER_ALLOW },
		{ "busid or vid: busid", { "0525" }, { "2-3" },
		  { "2-3", true, 0x111, 1, "" }, FILTER_ALLOW },
		{ "busid or vid: none", { "0525" }, { "2-3" },
		  { "9-9", true, 0x111, 1, "" }, FILTER_DENY },
		{ "second rule matches", { "1111", "2222:0001" }, { NULL },
		  { "1-1", true, 0x2222, 1, "" }, FILTER_ALLOW },
		{ "unknown beats deny", { "1111", "2222:0001:X" }, { NULL },
		  { "1-1", true, 0x2222, 1, NULL }, FILTER_UNKNOWN },
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct client_filter f = make_filter(cases[i].allow, cases[i].busids);
		enum filter_verdict got = filter_check(&f, &cases[i].id);
		if (got != cases[i].want)
			fail_msg("'%s': got %d want %d", cases[i].name, got, cases[i].want);
	}
}

/* ---- liveness ------------------------------------------------------------ */

static void test_check_live(void **state)
{
	(void)state;
	const struct attachment att[] = {
		{ "1-1", 0, 0x10002 },  /* live */
		{ "1-2", 1, 0x10003 },  /* port freed by vhci */
		{ "1-3", 2, 0x10004 },  /* someone else's device now */
		{ "1-4", 9, 0x10005 },  /* port not in the table at all */
		{ "1-5", 8, 0x10006 },  /* live on the ss hub */
		{ "1-6", 3, 0x10007 },  /* attach written, not enumerated yet */
	};
	/* The real vhci shows an attaching port (state 5) with devid 0. */
	const struct port_view ports[] = {
		{ 0, true, 0x10002, false }, { 1, false, 0, false }, { 2, true, 0x50001, false },
		{ 8, true, 0x10006, false }, { 3, false, 0, true },
	};
	bool stale[N(att)];
	assert_int_equal(reconcile_check_live(att, N(att), ports, N(ports), stale), 3);
	const bool want[] = { false, true, true, true, false, false };
	for (size_t i = 0; i < N(att); i++)
		assert_int_equal(stale[i], want[i]);
	assert_int_equal(reconcile_check_live(att, 0, ports, N(ports), stale), 0);
}

/* ---- reconnect plan ------------------------------------------------------ */

struct plan_case {
	const char *name;
	const char *allow[2];
	struct notify_v2_device devs[4];
	size_t ndevs;
	struct attachment att[3];
	size_t natt;
	const char *want; /* actions, "A:busid" / "D:busid:port", space-separated */
};

static void render(const struct action *a, int n, char *out, size_t size)
{
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		int w = a[i].type == ACTION_ATTACH
				? snprintf(out + len, size - len, "%sA:%s", i ? " " : "", a[i].busid)
				: snprintf(out + len, size - len, "%sD:%s:%d", i ? " " : "",
					   a[i].busid, a[i].port);
		len += (size_t)w;
	}
}

static void test_plan_table(void **state)
{
	(void)state;
	const struct plan_case cases[] = {
		{ "empty both", { NULL }, { dev("", 0, 0, "", false) }, 0, { { "", 0, 0 } }, 0, "" },
		{ "new device attached", { NULL },
		  { dev("1-1", 1, 2, "", false) }, 1, { { "", 0, 0 } }, 0, "A:1-1" },
		{ "attached and present: left alone", { NULL },
		  { dev("1-1", 1, 2, "", true) }, 1, { { "1-1", 3, 0x10002 } }, 1, "" },
		{ "vanished: detach our port", { NULL },
		  { dev("", 0, 0, "", false) }, 0, { { "1-1", 3, 0x10002 } }, 1, "D:1-1:3" },
		{ "mixed", { NULL },
		  { dev("1-1", 1, 2, "", true), dev("1-3", 1, 2, "", false) }, 2,
		  { { "1-1", 0, 1 }, { "1-2", 5, 2 } }, 2, "D:1-2:5 A:1-3" },
		{ "held by someone else: wait", { NULL },
		  { dev("1-1", 1, 2, "", true) }, 1, { { "", 0, 0 } }, 0, "" },
		{ "filtered out", { "0525" },
		  { dev("1-1", 1, 2, "", false), dev("1-2", 0x525, 2, "", false) }, 2,
		  { { "", 0, 0 } }, 0, "A:1-2" },
		{ "duplicate busid attached once", { NULL },
		  { dev("1-1", 1, 2, "", false), dev("1-1", 1, 2, "", false) }, 2,
		  { { "", 0, 0 } }, 0, "A:1-1" },
		{ "attached but now filtered: left alone", { "0525" },
		  { dev("1-1", 1, 2, "", true) }, 1, { { "1-1", 2, 3 } }, 1, "" },
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct client_filter f = make_filter(cases[i].allow, NULL);
		struct action acts[8];
		int n = reconcile_plan(cases[i].devs, cases[i].ndevs, true, cases[i].att,
				       cases[i].natt, &f, acts, N(acts));
		assert_true(n >= 0);
		char got[256];
		render(acts, n, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("'%s': got '%s' want '%s'", cases[i].name, got, cases[i].want);
	}
}

static void test_plan_nospace(void **state)
{
	(void)state;
	struct notify_v2_device devs[] = { dev("1-1", 1, 2, "", false),
					   dev("1-2", 1, 2, "", false) };
	struct attachment att[] = { { "2-1", 1, 1 } };
	struct client_filter f = make_filter(NULL, NULL);
	struct action acts[2];
	assert_int_equal(reconcile_plan(devs, 2, true, att, 1, &f, acts, 2), -ENOSPC);
	assert_int_equal(reconcile_plan(devs, 2, true, att, 1, &f, acts, 0), -ENOSPC);
	struct action more[3];
	assert_int_equal(reconcile_plan(devs, 2, true, att, 1, &f, more, 3), 3);
}

/* ---- per-event decisions ------------------------------------------------- */

enum ev { EV_PLUGGED, EV_HELD };

struct event_case {
	const char *name;
	enum ev kind;
	const char *allow;
	bool ids_known;
	struct notify_v2_device d;
	enum event_decision want;
	enum event_reason why;
};

static void test_event_table(void **state)
{
	(void)state;
	const struct attachment att[] = { { "1-1", 4, 0x10002 } };
	const struct event_case cases[] = {
		{ "plugged new", EV_PLUGGED, NULL, true, dev("1-2", 1, 2, "", false),
		  DECIDE_ATTACH, REASON_NONE },
		{ "plugged already ours", EV_PLUGGED, NULL, true, dev("1-1", 1, 2, "", false),
		  DECIDE_NOTHING, REASON_ALREADY_ATTACHED },
		{ "plugged filtered", EV_PLUGGED, "0525", true, dev("1-2", 1, 2, "", false),
		  DECIDE_NOTHING, REASON_FILTERED },
		{ "plugged allowed", EV_PLUGGED, "0001:0002", true, dev("1-2", 1, 2, "", false),
		  DECIDE_ATTACH, REASON_NONE },
		{ "plugged but held", EV_PLUGGED, NULL, true, dev("1-2", 1, 2, "", true),
		  DECIDE_NOTHING, REASON_HELD_ELSEWHERE },
		{ "v1 plugged, vid rule: import to learn", EV_PLUGGED, "0525", false,
		  dev("1-2", 0, 0, "", false), DECIDE_ATTACH, REASON_NONE },
		{ "held=0: now free, attach", EV_HELD, NULL, true, dev("1-2", 1, 2, "", false),
		  DECIDE_ATTACH, REASON_NONE },
		{ "held=1 by another", EV_HELD, NULL, true, dev("1-2", 1, 2, "", true),
		  DECIDE_NOTHING, REASON_STILL_HELD },
		{ "held=1 by us", EV_HELD, NULL, true, dev("1-1", 1, 2, "", true),
		  DECIDE_NOTHING, REASON_ALREADY_ATTACHED },
		{ "held=0 but filtered", EV_HELD, "0525", true, dev("1-2", 1, 2, "", false),
		  DECIDE_NOTHING, REASON_FILTERED },
		{ "held=0 while ours: our session ended, attach again", EV_HELD, NULL, true,
		  dev("1-1", 1, 2, "", false), DECIDE_REATTACH, REASON_NONE },
		{ "held=0 while ours, now filtered: just forget", EV_HELD, "0525", true,
		  dev("1-1", 1, 2, "", false), DECIDE_DETACH, REASON_FILTERED },
	};
	for (size_t i = 0; i < N(cases); i++) {
		const char *allow[] = { cases[i].allow, NULL };
		struct client_filter f = make_filter(allow, NULL);
		enum event_reason why = REASON_NONE;
		enum event_decision got =
			cases[i].kind == EV_PLUGGED
				? reconcile_on_plugged(&cases[i].d, cases[i].ids_known, att, N(att),
						       &f, &why)
				: reconcile_on_held(&cases[i].d, cases[i].ids_known, att, N(att), &f,
						    &why);
		if (got != cases[i].want || why != cases[i].why)
			fail_msg("'%s': got %d/%d want %d/%d", cases[i].name, got, why,
				 cases[i].want, cases[i].why);
	}
}

static void test_unplugged(void **state)
{
	(void)state;
	const struct attachment att[] = { { "1-1", 4, 1 }, { "1-2", 9, 2 } };
	int port = -1;
	enum event_reason why;
	assert_int_equal(reconcile_on_unplugged("1-2", att, 2, &port, &why), DECIDE_DETACH);
	assert_int_equal(port, 9);
	port = -1;
	assert_int_equal(reconcile_on_unplugged("1-3", att, 2, &port, &why), DECIDE_NOTHING);
	assert_int_equal(why, REASON_NOT_OURS);
	assert_int_equal(port, -1);
	assert_int_equal(reconcile_on_unplugged("1-1", att, 0, &port, &why), DECIDE_NOTHING);
	assert_string_equal(event_reason_str(REASON_NOT_OURS), "not attached by us");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_add),
		cmocka_unit_test(test_filter_check),
		cmocka_unit_test(test_check_live),
		cmocka_unit_test(test_plan_table),
		cmocka_unit_test(test_plan_nospace),
		cmocka_unit_test(test_event_table),
		cmocka_unit_test(test_unplugged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
