/* Unit tests for common/cidr: parsing, matching, sockaddr conversion and
 * formatting, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "common/cidr.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Parsing ---------------------------------------------------------------- */

struct parse_case {
	const char *text;
	int rc;
	const char *canonical; /* cidr_format of the result when rc == CIDR_OK */
	unsigned prefix;       /* in the 128-bit space */
};

static const struct parse_case parse_cases[] = {
	{ "192.168.1.0/24", CIDR_OK, "192.168.1.0/24", 120 },
	{ "10.0.0.5", CIDR_OK, "10.0.0.5/32", 128 },
	{ "10.0.0.0/8", CIDR_OK, "10.0.0.0/8", 104 },
	{ "0.0.0.0/0", CIDR_OK, "0.0.0.0/0", 96 },
	{ "255.255.255.255/32", CIDR_OK, "255.255.255.255/32", 128 },
	{ "172.16.0.0/12", CIDR_OK, "172.16.0.0/12", 108 },
	{ "fd00::/8", CIDR_OK, "fd00::/8", 8 },
	{ "::1", CIDR_OK, "::1/128", 128 },
	{ "::/0", CIDR_OK, "::/0", 0 },
	{ "2001:db8::/32", CIDR_OK, "2001:db8::/32", 32 },
	{ "2001:DB8::/32", CIDR_OK, "2001:db8::/32", 32 },
	{ "fe80::/10", CIDR_OK, "fe80::/10", 10 },
	{ "::ffff:10.0.0.0/104", CIDR_OK, "10.0.0.0/8", 104 },
	{ "::ffff:192.0.2.1", CIDR_OK, "192.0.2.1/32", 128 },
	{ "1:2:3:4:5:6:7:8/128", CIDR_OK, "1:2:3:4:5:6:7:8/128", 128 },

	{ "", CIDR_E_EMPTY, NULL, 0 },
	{ "0000:0000:0000:0000:0000:ffff:255.255.255.255/128x", CIDR_E_LONG, NULL, 0 },
	{ "10.0.0", CIDR_E_ADDR, NULL, 0 },
	{ "10.0.0.256", CIDR_E_ADDR, NULL, 0 },
	{ "010.0.0.1", CIDR_E_ADDR, NULL, 0 },
	{ "10.0.0.1.", CIDR_E_ADDR, NULL, 0 },
	{ " 10.0.0.1", CIDR_E_ADDR, NULL, 0 },
	{ "localhost", CIDR_E_ADDR, NULL, 0 },
	{ "/8", CIDR_E_ADDR, NULL, 0 },
	{ "fe80::1%eth0", CIDR_E_ADDR, NULL, 0 },
	{ "1:2:3:4:5:6:7:8:9", CIDR_E_ADDR, NULL, 0 },
	{ ":::", CIDR_E_ADDR, NULL, 0 },
	{ "10.0.0.0/", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/33", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/08", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/+8", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/-8", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/8/8", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/8 ", CIDR_E_PREFIX, NULL, 0 },
	{ "10.0.0.0/0008", CIDR_E_PREFIX, NULL, 0 },
	{ "::/129", CIDR_E_PREFIX, NULL, 0 },
	{ "::/1000", CIDR_E_PREFIX, NULL, 0 },
	{ "192.168.1.5/24", CIDR_E_HOSTBITS, NULL, 0 },
	{ "10.0.0.1/0", CIDR_E_HOSTBITS, NULL, 0 },
	{ "fd00::1/8", CIDR_E_HOSTBITS, NULL, 0 },
	{ "fe80::/8", CIDR_E_HOSTBITS, NULL, 0 },
	{ "fe80::/9", CIDR_OK, "fe80::/9", 9 },
	{ "::ffff:10.0.0.1/104", CIDR_E_HOSTBITS, NULL, 0 },
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *t = &parse_cases[i];
		struct cidr c;
		memset(&c, 0xa5, sizeof(c));
		int rc = cidr_parse(t->text, &c);
		if (rc != t->rc)
			fail_msg("\"%s\": got %d (%s), want %d", t->text, rc, cidr_strerror(rc),
				 t->rc);
		if (rc != CIDR_OK) {
			struct cidr zero;
			memset(&zero, 0, sizeof(zero));
			assert_memory_equal(&c, &zero, sizeof(c));
			continue;
		}
		char text[CIDR_TEXT_SIZE];
		cidr_format(&c, text, sizeof(text));
		if (strcmp(text, t->canonical) != 0)
			fail_msg("\"%s\": formats as \"%s\", want \"%s\"", t->text, text,
				 t->canonical);
		assert_int_equal(c.prefix, t->prefix);
		/* What we print parses back to the same rule. */
		struct cidr again;
		assert_int_equal(cidr_parse(text, &again), CIDR_OK);
		assert_memory_equal(&again, &c, sizeof(c));
	}
}

static void test_parse_null_and_unterminated_length(void **state)
{
	(void)state;
	struct cidr c;
	assert_int_equal(cidr_parse(NULL, &c), CIDR_E_EMPTY);

	/* Exactly CIDR_MAX_TEXT is read in full; one more is refused unread. */
	char longest[] = "0000:0000:0000:0000:0000:ffff:255.255.255.255/128";
	assert_int_equal(strlen(longest), CIDR_MAX_TEXT);
	assert_int_equal(cidr_parse(longest, &c), CIDR_OK);
	assert_int_equal(c.prefix, 128);
	char big[1000];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(cidr_parse(big, &c), CIDR_E_LONG);
	assert_string_not_equal(cidr_strerror(CIDR_E_HOSTBITS), cidr_strerror(12345));
}

/* ---- Matching --------------------------------------------------------------- */

struct match_case {
	const char *rule;
	const char *addr; /* "1.2.3.4" or an IPv6 text */
	bool match;
};

static const struct match_case match_cases[] = {
	{ "10.0.0.0/8", "10.0.0.1", true },
	{ "10.0.0.0/8", "10.255.255.255", true },
	{ "10.0.0.0/8", "11.0.0.0", false },
	{ "10.0.0.0/8", "9.255.255.255", false },
	{ "10.0.0.0/8", "127.0.0.1", false },
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },  /* mapped matches IPv4 rules */
	{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
	{ "10.0.0.0/8", "::10.1.2.3", false },      /* "IPv4-compatible" is not mapped */
	{ "10.0.0.0/8", "a00::", false },           /* same top byte, other family */
	{ "192.168.1.0/24", "192.168.1.77", true },
	{ "192.168.1.0/24", "192.168.2.77", false },
	{ "172.16.0.0/12", "172.31.255.1", true },
	{ "172.16.0.0/12", "172.32.0.1", false },
	{ "10.0.0.5", "10.0.0.5", true },
	{ "10.0.0.5", "10.0.0.6", false },
	{ "127.0.0.1", "::ffff:127.0.0.1", true },
	{ "127.0.0.1", "::1", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "::1", false },              /* all IPv4 is not all IPv6 */
	{ "::1", "::1", true },
	{ "::1", "127.0.0.1", false },
	{ "::1", "::2", false },
	{ "fd00::/8", "fd12:3456::1", true },
	{ "fd00::/8", "fc00::1", false },
	{ "fe80::/10", "febf::1", true },
	{ "fe80::/10", "fec0::1", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "::/0", "2001:db8::1", true },
	{ "::/0", "10.0.0.1", true },               /* documented: ::/0 is everyone */
	{ "::ffff:10.0.0.0/104", "10.9.9.9", true },
};

static void to_addr(const char *text, struct cidr_addr *a)
{
	struct cidr c;
	/* A lone address parses as a host rule: its net is the address. */
	assert_int_equal(cidr_parse(text, &c), CIDR_OK);
	*a = c.net;
}

static void test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(match_cases); i++) {
		const struct match_case *t = &match_cases[i];
		struct cidr rule;
		struct cidr_addr a;
		assert_int_equal(cidr_parse(t->rule, &rule), CIDR_OK);
		to_addr(t->addr, &a);
		if (cidr_match(&rule, &a) != t->match)
			fail_msg("%s in %s: want %s", t->addr, t->rule, t->match ? "yes" : "no");
		assert_int_equal(cidr_match_any(&rule, 1, &a), t->match);
	}
}

static void test_match_any(void **state)
{
	(void)state;
	struct cidr rules[2];
	struct cidr_addr a, b, c;
	assert_int_equal(cidr_parse("10.0.0.0/8", &rules[0]), CIDR_OK);
	assert_int_equal(cidr_parse("::1", &rules[1]), CIDR_OK);
	to_addr("10.1.1.1", &a);
	to_addr("::1", &b);
	to_addr("127.0.0.1", &c);
	assert_true(cidr_match_any(rules, 2, &a));
	assert_true(cidr_match_any(rules, 2, &b));
	assert_false(cidr_match_any(rules, 2, &c));
	assert_false(cidr_match_any(rules, 0, &a)); /* no rules: nothing matches */
	assert_false(cidr_match_any(rules, 1, &b));
}

/* ---- Socket addresses ------------------------------------------------------- */

static void test_from_sockaddr(void **state)
{
	(void)state;
	struct cidr_addr a, want;
	char text[CIDR_TEXT_SIZE];

	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(3240);
	assert_int_equal(inet_pton(AF_INET, "10.0.0.9", &sin.sin_addr), 1);
	assert_true(cidr_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a));
	to_addr("10.0.0.9", &want);
	assert_true(cidr_addr_equal(&a, &want));
	assert_true(cidr_addr_is_v4(&a));
	cidr_addr_format(&a, text, sizeof(text));
	assert_string_equal(text, "10.0.0.9");
	assert_false(cidr_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin) - 1, &a));

	/* A mapped address on an IPv6 socket is the same host. */
	struct sockaddr_in6 sin6;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.0.0.9", &sin6.sin6_addr), 1);
	assert_true(cidr_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a));
	assert_true(cidr_addr_equal(&a, &want));
	cidr_addr_format(&a, text, sizeof(text));
	assert_string_equal(text, "10.0.0.9");

	assert_int_equal(inet_pton(AF_INET6, "fd00::42", &sin6.sin6_addr), 1);
	assert_true(cidr_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a));
	assert_false(cidr_addr_is_v4(&a));
	assert_false(cidr_addr_equal(&a, &want));
	cidr_addr_format(&a, text, sizeof(text));
	assert_string_equal(text, "fd00::42");
	assert_false(cidr_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6) - 1, &a));

	struct sockaddr other;
	memset(&other, 0, sizeof(other));
	other.sa_family = AF_UNIX;
	assert_false(cidr_addr_from_sockaddr(&other, sizeof(other), &a));
	assert_false(cidr_addr_from_sockaddr(NULL, 0, &a));
}

static void test_format_truncates(void **state)
{
	(void)state;
	struct cidr c;
	char small[6];
	assert_int_equal(cidr_parse("192.168.100.0/24", &c), CIDR_OK);
	cidr_format(&c, small, sizeof(small));
	assert_string_equal(small, "192.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_null_and_unterminated_length),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_any),
		cmocka_unit_test(test_from_sockaddr),
		cmocka_unit_test(test_format_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
