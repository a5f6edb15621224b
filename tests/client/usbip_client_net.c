/* Socket plumbing for the test client.
 *
 * The socket stays non-blocking for its whole life and every wait goes
 * through poll() with what is left of a deadline, so no call can hang a
 * test beyond the timeout it was given. */
#include "usbip_client_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "usbip_client.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t uc_net_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return UC_NO_DEADLINE;
	return now_ms() + timeout_ms;
}

/* Milliseconds left for poll(): -1 (forever), or 0 when the deadline passed. */
static int poll_timeout(int64_t deadline)
{
	if (deadline == UC_NO_DEADLINE)
		return -1;
	int64_t left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 60 * 60 * 1000 ? 60 * 60 * 1000 : (int)left;
}

/* Waits for events on fd. 0 when one is there, UC_E_TIMEOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int rc = poll(&pfd, 1, poll_timeout(deadline));

		if (rc > 0)
			return 0; /* including POLLHUP/POLLERR: the I/O call reports it */
		if (rc == 0)
			return UC_E_TIMEOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int uc_net_wait_readable(int fd, int64_t deadline)
{
	return wait_fd(fd, POLLIN, deadline);
}

int uc_net_prepare(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
#ifdef SO_NOSIGPIPE
	/* Where MSG_NOSIGNAL is missing (macOS) the socket itself must say so. */
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)) < 0)
		return -errno;
#endif
	return 0;
}

/* One non-blocking connect to one address, bounded by deadline. */
static int connect_one(const struct addrinfo *ai, int64_t deadline, int *fd_out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	int rc;

	if (fd < 0)
		return -errno;
	rc = uc_net_prepare(fd);
	if (rc < 0)
		goto err_close;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto err_close;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			goto err_close;
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
			rc = -errno;
			goto err_close;
		}
		if (soerr != 0) {
			rc = -soerr;
			goto err_close;
		}
	}
	/* Small requests must not wait for Nagle: tests measure latencies. */
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		rc = -errno;
		goto err_close;
	}
	*fd_out = fd;
	return 0;

err_close:
	close(fd);
	return rc;
}

int uc_net_connect(const char *host, const char *port, int timeout_ms, int *fd_out)
{
	struct addrinfo hints, *res;
	int64_t deadline = uc_net_deadline(timeout_ms);
	int rc = UC_E_RESOLVE;

	if (!host || !port || !fd_out)
		return UC_E_INVAL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return UC_E_RESOLVE;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		rc = connect_one(ai, deadline, fd_out);
		if (rc == 0 || rc == UC_E_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	return rc;
}

/* A peer that went away shows up as EOF, ECONNRESET or EPIPE: all one code. */
static int io_error(int err)
{
	if (err == ECONNRESET || err == EPIPE)
		return UC_E_CLOSED;
	return -err;
}

int uc_net_read_exact(int fd, void *buf, size_t n, int64_t deadline, size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;

	while (done < n) {
		ssize_t r = recv(fd, p + done, n - done, 0);

		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r == 0) {
			rc = UC_E_CLOSED;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			rc = io_error(errno);
			break;
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc < 0)
			break;
	}
	if (got)
		*got = done;
	return rc;
}

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0 /* SO_NOSIGPIPE was set in uc_net_prepare */
#endif

int uc_net_write_all(int fd, const void *buf, size_t n, int64_t deadline, size_t *sent)
{
	const uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;

	while (done < n) {
		ssize_t w = send(fd, p + done, n - done, SEND_FLAGS);

		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			rc = io_error(errno);
			break;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			break;
	}
	if (sent)
		*sent = done;
	return rc;
}
