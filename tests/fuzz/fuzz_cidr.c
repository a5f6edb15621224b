/* Fuzz target: the --allow-client rule parser and matcher.
 *
 * The input up to its first NUL is a rule. Whatever it is, cidr_parse must
 * not crash, must leave a zeroed result on error, and on success give a
 * rule that is in range, has no host bits, prints and parses back to
 * itself and matches its own network address. The bytes after the NUL (16
 * of them, zero-padded) are an address: cidr_match must agree with a
 * bit-by-bit comparison written independently here, and flipping one bit
 * inside / outside the prefix must leave / keep the address in the rule. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cidr.h"

static bool bit(const uint8_t *b, unsigned i)
{
	return (b[i / 8] >> (7 - i % 8)) & 1;
}

static void flip(struct cidr_addr *a, unsigned i)
{
	a->b[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
}

static bool slow_match(const struct cidr *c, const struct cidr_addr *a)
{
	for (unsigned i = 0; i < c->prefix; i++)
		if (bit(c->net.b, i) != bit(a->b, i))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	size_t len = strlen(text);

	struct cidr c, again;
	int rc = cidr_parse(text, &c);
	if (rc != CIDR_OK) {
		struct cidr zero;
		memset(&zero, 0, sizeof(zero));
		if (rc > 0 || memcmp(&c, &zero, sizeof(c)) != 0 || !cidr_strerror(rc))
			abort();
		free(text);
		return 0;
	}
	if (len == 0 || len > CIDR_MAX_TEXT || c.prefix > 128)
		abort();
	for (unsigned i = c.prefix; i < 128; i++)
		if (bit(c.net.b, i))
			abort();
	/* IPv4 rules live in the mapped range. */
	if (!strchr(text, ':') && (c.prefix < 96 || !cidr_addr_is_v4(&c.net)))
		abort();

	char printed[CIDR_TEXT_SIZE];
	cidr_format(&c, printed, sizeof(printed));
	if (cidr_parse(printed, &again) != CIDR_OK || memcmp(&again, &c, sizeof(c)) != 0)
		abort();
	if (!cidr_match(&c, &c.net))
		abort();

	struct cidr_addr a;
	memset(&a, 0, sizeof(a));
	if (len + 1 < size)
		memcpy(a.b, data + len + 1, size - len - 1 < 16 ? size - len - 1 : 16);
	bool m = cidr_match(&c, &a);
	if (m != slow_match(&c, &a) || m != cidr_match_any(&c, 1, &a))
		abort();

	/* Flip one bit of the network address, chosen by the address bytes. */
	unsigned k = (unsigned)a.b[15] % 128;
	struct cidr_addr f = c.net;
	flip(&f, k);
	if (cidr_match(&c, &f) != (k >= c.prefix))
		abort();

	char host[CIDR_TEXT_SIZE];
	cidr_addr_format(&a, host, sizeof(host));
	if (!host[0])
		abort();
	free(text);
	return 0;
}
