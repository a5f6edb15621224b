/* Client address rules: parsing and matching IPv4/IPv6 CIDR prefixes.
 *
 * Pure: no I/O, no allocation, no global state. Every address lives in one
 * 128-bit space, IPv4 as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so an
 * IPv4 rule matches a peer whether it arrived on an IPv4 socket or as a
 * mapped address on a dual-stack IPv6 one. A consequence worth knowing: an
 * IPv6 rule whose range contains ::ffff:0:0/96 (::/0, say) also covers every
 * IPv4 peer. */
#ifndef USBIP_NOTIFY_COMMON_CIDR_H
#define USBIP_NOTIFY_COMMON_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest rule text we accept, without the NUL: a full IPv6 address with an
 * embedded IPv4 part (45) plus "/128". */
#define CIDR_MAX_TEXT 49
/* Room for cidr_addr_format / cidr_format output, with the NUL. */
#define CIDR_TEXT_SIZE 64

struct cidr_addr {
	uint8_t b[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
};

struct cidr {
	struct cidr_addr net; /* host bits are zero */
	unsigned prefix;      /* 0..128, in the 128-bit space */
};

enum cidr_err {
	CIDR_OK = 0,
	CIDR_E_EMPTY = -1,    /* NULL or "" */
	CIDR_E_LONG = -2,     /* longer than CIDR_MAX_TEXT */
	CIDR_E_ADDR = -3,     /* not an IPv4 dotted quad or IPv6 address */
	CIDR_E_PREFIX = -4,   /* prefix length not a number in range */
	CIDR_E_HOSTBITS = -5, /* bits set after the prefix (192.168.1.5/24) */
};

/* Parses "ADDR" or "ADDR/LEN": IPv4 (LEN 0..32, a lone address is /32) or
 * IPv6 (LEN 0..128, a lone address is /128), decimal LEN without sign or
 * leading zeros. Zone ids (fe80::1%eth0) and host names are refused, and so
 * are set host bits: a typo there would silently widen or narrow the rule.
 * On error *out is left zeroed. Returns CIDR_OK or a cidr_err. */
int cidr_parse(const char *text, struct cidr *out);

const char *cidr_strerror(int err);

/* Does the address fall inside the rule? */
bool cidr_match(const struct cidr *rule, const struct cidr_addr *a);

/* Does any of n rules match? n == 0 matches nothing. */
bool cidr_match_any(const struct cidr *rules, size_t n, const struct cidr_addr *a);

/* Converts an AF_INET or AF_INET6 socket address (IPv4-mapped IPv6 becomes
 * the same as the IPv4 address). Returns false for anything else or a short
 * length. */
bool cidr_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct cidr_addr *out);

bool cidr_addr_equal(const struct cidr_addr *a, const struct cidr_addr *b);

/* True for an IPv4(-mapped) address. */
bool cidr_addr_is_v4(const struct cidr_addr *a);

/* "10.0.0.9" or "fd00::1" (no port, no brackets), for logs. */
void cidr_addr_format(const struct cidr_addr *a, char *out, size_t n);

/* "10.0.0.0/8" or "fd00::/8", in the notation it was written in. */
void cidr_format(const struct cidr *c, char *out, size_t n);

#endif
