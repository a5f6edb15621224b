/* Strict kernel-form busids: "BUS-PORT[.PORT...]". */
#include "proto/busid.h"

#include <stdio.h>
#include <string.h>

#define BUSID_MAX_BUS 65535u
#define BUSID_MAX_PORT 255u
#define BUSID_MAX_DEPTH 7u /* USB allows at most this many tiers below a root port */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads a decimal number in 1..max at s[*i], with no leading zero (so
 * "01" and "1" cannot name the same port twice). The value is checked
 * digit by digit, so it never overflows whatever the input length. */
static bool parse_number(const char *s, size_t len, size_t *i, unsigned max)
{
	unsigned v = 0;

	if (*i >= len || !is_digit(s[*i]) || s[*i] == '0')
		return false;
	while (*i < len && is_digit(s[*i])) {
		v = v * 10u + (unsigned)(s[*i] - '0');
		if (v > max)
			return false;
		(*i)++;
	}
	return true;
}

bool busid_valid(const char *s)
{
	size_t len, i = 0, depth = 0;

	if (!s)
		return false;
	/* Never read past what a busid field can hold: callers pass fixed
	 * arrays that may lack a terminator. */
	len = strnlen(s, USBIP_BUSID_SIZE);
	if (len == USBIP_BUSID_SIZE)
		return false;

	if (!parse_number(s, len, &i, BUSID_MAX_BUS))
		return false;
	if (i >= len || s[i] != '-')
		return false;
	i++;
	for (;;) {
		if (!parse_number(s, len, &i, BUSID_MAX_PORT))
			return false;
		if (++depth > BUSID_MAX_DEPTH)
			return false;
		if (i == len)
			return true;
		if (s[i] != '.')
			return false;
		i++;
	}
}

int busid_format(uint16_t bus, const uint8_t *ports, size_t depth,
		 char out[USBIP_BUSID_SIZE])
{
	size_t pos;
	int w;

	out[0] = '\0';
	if (bus == 0 || !ports || depth == 0 || depth > BUSID_MAX_DEPTH)
		return -1;

	w = snprintf(out, USBIP_BUSID_SIZE, "%u", (unsigned)bus);
	if (w < 0 || (size_t)w >= USBIP_BUSID_SIZE)
		goto err_clear;
	pos = (size_t)w;
	for (size_t k = 0; k < depth; k++) {
		if (ports[k] == 0)
			goto err_clear;
		w = snprintf(out + pos, USBIP_BUSID_SIZE - pos, "%c%u",
			     k == 0 ? '-' : '.', (unsigned)ports[k]);
		/* The deepest path of the largest numbers is 33 characters:
		 * it does not fit the 32-byte wire field and is refused. */
		if (w < 0 || (size_t)w >= USBIP_BUSID_SIZE - pos)
			goto err_clear;
		pos += (size_t)w;
	}
	return (int)pos;

err_clear:
	out[0] = '\0';
	return -1;
}
