/* Bus ids in the kernel's form "BUS-PORT[.PORT...]".
 *
 * Network-supplied busids reach sysfs paths and logs on the client, so every
 * one is checked against this strict form before use. */
#ifndef USBIP_NOTIFY_PROTO_BUSID_H
#define USBIP_NOTIFY_PROTO_BUSID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

/* True when s is "BUS-PORT[.PORT...]": decimal numbers without leading
 * zeros, bus 1..65535, ports 1..255, at most 7 ports (USB's tier limit),
 * and shorter than USBIP_BUSID_SIZE. */
bool busid_valid(const char *s);

/* Formats a busid from a bus number and a port path; returns its length or
 * -1 if depth is 0 or above 7 or a port is 0. out has USBIP_BUSID_SIZE bytes.
 * Also -1 for bus 0 and for the few paths too long for the field (e.g.
 * 65535 with seven 3-digit ports), so that every result passes busid_valid;
 * on -1 out holds "". */
int busid_format(uint16_t bus, const uint8_t *ports, size_t depth,
		 char out[USBIP_BUSID_SIZE]);

#endif
