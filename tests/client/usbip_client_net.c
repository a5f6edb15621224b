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

#include "common/net.h"
#include "usbip_client.h"

int64_t uc_net_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return UC_NO_DEADLINE;
	return net_now_ms() + timeout_ms;
}

/* Waits for events on fd. 0 when one is there, UC_E_TIMEOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	return net_wait_fd(fd, events, -1, deadline);
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

int uc_net_connect(const char *host, const char *port, int timeout_ms, int *fd_out)
{
	if (!host || !port || !fd_out)
		return UC_E_INVAL;
	/* net_connect's "does not resolve" is UC_E_RESOLVE's value. */
	int rc = net_connect(host, port, timeout_ms, -1, fd_out);
	if (rc < 0)
		return rc;
	rc = uc_net_prepare(*fd_out);
	if (rc < 0) {
		close(*fd_out);
		return rc;
	}
	return 0;
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
