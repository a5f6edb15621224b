/* Fuzz target: busid validation against an independent round trip.
 *
 * A string is valid exactly when a loose strtoul parse of it, formatted
 * back with busid_format, gives the same string: that catches valid ids
 * rejected and invalid ones (leading zeros, '+', spaces, overflow, extra
 * ports) accepted. The input is also read as a bus and a port path to
 * check that busid_format succeeds exactly when its result would be valid,
 * and that what it writes is valid. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/busid.h"

#define MAX_PORTS 8 /* one more than allowed, so busid_format sees depth 8 */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads a number that starts with a digit; strtoul itself would accept
 * spaces and signs, which the round trip then has to reject. */
static bool read_number(const char **s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!is_digit(**s))
		return false;
	*out = strtoul(*s, &end, 10);
	if (*out > max)
		return false;
	*s = end;
	return true;
}

static bool loose_parse(const char *s, uint16_t *bus, uint8_t *ports, size_t *depth)
{
	unsigned long v;

	if (!read_number(&s, 65535, &v))
		return false;
	*bus = (uint16_t)v;
	if (*s++ != '-')
		return false;
	*depth = 0;
	for (;;) {
		if (*depth == MAX_PORTS || !read_number(&s, 255, &v))
			return false;
		ports[(*depth)++] = (uint8_t)v;
		if (*s == '\0')
			return true;
		if (*s++ != '.')
			return false;
	}
}

static void check_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	uint8_t ports[MAX_PORTS];
	char out[USBIP_BUSID_SIZE];
	uint16_t bus;
	size_t depth;
	bool valid, round_trip = false;

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';

	valid = busid_valid(s);
	if (loose_parse(s, &bus, ports, &depth)) {
		int n = busid_format(bus, ports, depth, out);

		round_trip = n >= 0 && (size_t)n == strlen(out) && strcmp(out, s) == 0;
	}
	if (valid != round_trip)
		abort();
	free(s);
}

static void check_format(const uint8_t *data, size_t size)
{
	uint8_t ports[MAX_PORTS] = { 0 };
	char out[USBIP_BUSID_SIZE];
	char wide[128];
	uint16_t bus;
	size_t depth, pos;
	bool want;
	int n;

	if (size < 3)
		return;
	bus = (uint16_t)(data[0] << 8 | data[1]);
	depth = data[2] % (MAX_PORTS + 1);
	for (size_t i = 0; i < depth && 3 + i < size; i++)
		ports[i] = data[3 + i];

	/* What the result should be, built without any bound. */
	want = bus != 0 && depth >= 1 && depth <= 7;
	pos = (size_t)snprintf(wide, sizeof(wide), "%u", (unsigned)bus);
	for (size_t i = 0; i < depth; i++) {
		if (ports[i] == 0)
			want = false;
		pos += (size_t)snprintf(wide + pos, sizeof(wide) - pos, "%c%u",
					i ? '.' : '-', (unsigned)ports[i]);
	}
	if (pos >= USBIP_BUSID_SIZE)
		want = false;

	n = busid_format(bus, ports, depth, out);
	if (!want) {
		if (n != -1 || out[0] != '\0')
			abort();
		return;
	}
	if (n < 0 || (size_t)n != pos || strcmp(out, wide) != 0 || !busid_valid(out))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_string(data, size);
	check_format(data, size);
	return 0;
}
