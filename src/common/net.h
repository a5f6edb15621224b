/* Socket helpers shared by the server and the client.
 *
 * All return 0 (or a count) on success and a negative errno (the host's, as
 * these are local conditions, never sent on the wire) on failure. */
#ifndef USBIP_NOTIFY_COMMON_NET_H
#define USBIP_NOTIFY_COMMON_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Deadlines are absolute CLOCK_MONOTONIC milliseconds. */
#define NET_NO_DEADLINE INT64_MAX

int64_t net_now_ms(void);

/* Waits until fd reports one of events (errors and hang-ups count: the I/O
 * call that follows reports them). -ETIMEDOUT when the deadline passes,
 * -ECANCELED as soon as cancel_fd (when >= 0) is readable. */
int net_wait_fd(int fd, short events, int cancel_fd, int64_t deadline_ms);

/* Resolves host (name, IPv4 or IPv6 literal) and port, and connects to the
 * first address that answers before the deadline (timeout_ms < 0: none).
 * The socket comes back blocking, close-on-exec and tuned (net_tune_stream).
 * -EADDRNOTAVAIL when the name does not resolve, -ETIMEDOUT, -ECANCELED
 * (cancel_fd readable), or the connect error. */
/* TCP addresses for host and port (numeric port), as net_connect tries
 * them; *res is freed with freeaddrinfo. -EADDRNOTAVAIL when the name does
 * not resolve. */
struct addrinfo;
int net_resolve(const char *host, const char *port, struct addrinfo **res);
int net_connect(const char *host, const char *port, int timeout_ms, int cancel_fd, int *fd_out);

/* Reads exactly n bytes. Returns n, 0 on a clean end of stream before the
 * first byte, or -errno (-EPIPE for an end of stream in the middle). */
ssize_t net_read_full(int fd, void *buf, size_t n);

/* Writes every byte of every iovec, retrying on partial writes and EINTR.
 * Never raises SIGPIPE. iov is modified. Returns 0 or -errno. */
int net_writev_full(int fd, struct iovec *iov, int iovcnt);

/* One sendmsg of iov, never raising SIGPIPE; for non-blocking sockets.
 * Returns the bytes written or -errno. */
ssize_t net_send_iov(int fd, const struct iovec *iov, int iovcnt);
/* Low latency (TCP_NODELAY) and dead-peer detection (keepalive). */
void net_tune_stream(int fd);

/* Opens listening TCP sockets for host (NULL or "" = every address, IPv4 and
 * IPv6) and port ("0" picks one). Fills at most max fds, returns the count
 * or -errno. Sockets are close-on-exec. */
int net_listen(const char *host, const char *port, int *fds, int max);

/* The local port a socket is bound to, or -1. */
int net_local_port(int fd);

/* "addr:port" of the peer, for logs. */
void net_peer_name(int fd, char *out, size_t n);

#endif
