/* Client-side socket helpers: timed reads, host:port parsing (connecting
 * with a deadline is net_connect in common/net.h).
 *
 * Every function returns 0 or a negative host errno (-ETIMEDOUT when the
 * deadline passes). Deadlines are absolute CLOCK_MONOTONIC milliseconds. */
#ifndef USBIP_NOTIFY_CLIENT_CLIENT_NET_H
#define USBIP_NOTIFY_CLIENT_CLIENT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads exactly n bytes before the deadline; -EPIPE on end of stream. */
int cnet_read_exact(int fd, void *buf, size_t n, int64_t deadline_ms);

/* A decimal TCP port 1..65535 without leading zeros. */
bool cnet_port_valid(const char *p);

/* Splits "HOST[:PORT]", "[V6]:PORT" or a bare IPv6 literal. host gets
 * host_size bytes, port port_size bytes (def_port when none is given).
 * -EINVAL for an empty host or a bad port. */
int cnet_split_host_port(const char *spec, const char *def_port, char *host, size_t host_size,
			 char *port, size_t port_size);

#endif
