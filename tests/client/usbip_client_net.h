/* Socket plumbing for the test client: connect with a timeout, and exact
 * reads and writes on a non-blocking socket against an absolute deadline.
 *
 * Internal to tests/client. Returns 0 or the UC_E_* / -errno codes of
 * usbip_client.h. */
#ifndef USBIP_NOTIFY_TESTS_CLIENT_USBIP_CLIENT_NET_H
#define USBIP_NOTIFY_TESTS_CLIENT_USBIP_CLIENT_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/net.h"

/* Deadlines are CLOCK_MONOTONIC milliseconds; UC_NO_DEADLINE waits forever. */
#define UC_NO_DEADLINE NET_NO_DEADLINE

/* now + timeout_ms, or UC_NO_DEADLINE for a negative timeout. */
int64_t uc_net_deadline(int timeout_ms);

/* Resolves and connects; *fd_out is a non-blocking, close-on-exec TCP
 * socket with TCP_NODELAY set. */
int uc_net_connect(const char *host, const char *port, int timeout_ms, int *fd_out);

/* Makes an adopted socket non-blocking and close-on-exec. */
int uc_net_prepare(int fd);

/* Waits until fd has data or EOF to read. 0, UC_E_TIMEOUT or -errno. */
int uc_net_wait_readable(int fd, int64_t deadline);

/* Reads exactly n bytes. *got (may be NULL) counts what was read, also on
 * failure. 0, UC_E_TIMEOUT, UC_E_CLOSED (EOF or reset) or -errno. */
int uc_net_read_exact(int fd, void *buf, size_t n, int64_t deadline, size_t *got);

/* Writes exactly n bytes, never raising SIGPIPE. *sent (may be NULL) counts
 * what went out, also on failure. 0, UC_E_TIMEOUT, UC_E_CLOSED or -errno. */
int uc_net_write_all(int fd, const void *buf, size_t n, int64_t deadline, size_t *sent);

#endif
