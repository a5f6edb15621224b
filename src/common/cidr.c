/* CIDR rules in one 128-bit space (IPv4 mapped into IPv6). */
#include "common/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* ::ffff:0:0/96, the IPv4-mapped prefix. */
static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool cidr_addr_is_v4(const struct cidr_addr *a)
{
	return memcmp(a->b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

static void set_v4(struct cidr_addr *a, const uint8_t v4[4])
{
	memcpy(a->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
	memcpy(a->b + 12, v4, 4);
}

/* Parses the decimal prefix length: digits only, no leading zeros, <= max. */
static bool parse_prefix(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (!s[0] || (s[0] == '0' && s[1]))
		return false;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool host_bits_clear(const struct cidr_addr *a, unsigned prefix)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned first = i * 8; /* bit index of this byte's top bit */
		uint8_t keep;
		if (prefix >= first + 8)
			keep = 0xff;
		else if (prefix <= first)
			keep = 0;
		else
			keep = (uint8_t)(0xff << (8 - (prefix - first)));
		if (a->b[i] & (uint8_t)~keep)
			return false;
	}
	return true;
}

int cidr_parse(const char *text, struct cidr *out)
{
	char buf[CIDR_MAX_TEXT + 1];
	struct cidr c;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (!text || !text[0])
		return CIDR_E_EMPTY;
	size_t len = strnlen(text, CIDR_MAX_TEXT + 1);
	if (len > CIDR_MAX_TEXT)
		return CIDR_E_LONG;
	memcpy(buf, text, len + 1);

	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	/* inet_pton does the address grammar; a ':' tells the family. */
	bool v6 = strchr(buf, ':') != NULL;
	unsigned max = v6 ? 128 : 32;
	if (v6) {
		if (inet_pton(AF_INET6, buf, c.net.b) != 1)
			return CIDR_E_ADDR;
	} else {
		uint8_t v4[4];
		if (inet_pton(AF_INET, buf, v4) != 1)
			return CIDR_E_ADDR;
		set_v4(&c.net, v4);
	}
	unsigned prefix = max;
	if (slash && !parse_prefix(slash + 1, max, &prefix))
		return CIDR_E_PREFIX;
	c.prefix = v6 ? prefix : 96 + prefix;
	if (!host_bits_clear(&c.net, c.prefix))
		return CIDR_E_HOSTBITS;
	*out = c;
	return CIDR_OK;
}

const char *cidr_strerror(int err)
{
	switch (err) {
	case CIDR_OK:
		return "ok";
	case CIDR_E_EMPTY:
		return "empty";
	case CIDR_E_LONG:
		return "too long";
	case CIDR_E_ADDR:
		return "not an IPv4 or IPv6 address";
	case CIDR_E_PREFIX:
		return "bad prefix length (IPv4 0..32, IPv6 0..128)";
	case CIDR_E_HOSTBITS:
		return "address has bits set after the prefix (write the network address)";
	default:
		return "unknown error";
	}
}

bool cidr_match(const struct cidr *rule, const struct cidr_addr *a)
{
	unsigned full = rule->prefix / 8, rest = rule->prefix % 8;

	if (rule->prefix > 128)
		return false;
	if (memcmp(rule->net.b, a->b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a->b[full] & mask) == rule->net.b[full];
}

bool cidr_match_any(const struct cidr *rules, size_t n, const struct cidr_addr *a)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&rules[i], a))
			return true;
	return false;
}

bool cidr_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct cidr_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;
		memcpy(&sin, sa, sizeof(sin));
		set_v4(out, (const uint8_t *)&sin.sin_addr.s_addr);
		return true;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(out->b, sin6.sin6_addr.s6_addr, 16);
		return true;
	}
	return false;
}

bool cidr_addr_equal(const struct cidr_addr *a, const struct cidr_addr *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

void cidr_addr_format(const struct cidr_addr *a, char *out, size_t n)
{
	char text[INET6_ADDRSTRLEN];
	const char *ok = cidr_addr_is_v4(a) ? inet_ntop(AF_INET, a->b + 12, text, sizeof(text))
					    : inet_ntop(AF_INET6, a->b, text, sizeof(text));
	snprintf(out, n, "%s", ok ? text : "?");
}

void cidr_format(const struct cidr *c, char *out, size_t n)
{
	char text[INET6_ADDRSTRLEN];
	/* A rule inside the mapped range reads best as IPv4. */
	bool v4 = c->prefix >= 96 && cidr_addr_is_v4(&c->net);
	const char *ok = v4 ? inet_ntop(AF_INET, c->net.b + 12, text, sizeof(text))
			    : inet_ntop(AF_INET6, c->net.b, text, sizeof(text));
	snprintf(out, n, "%s/%u", ok ? text : "?", v4 ? c->prefix - 96 : c->prefix);
}
