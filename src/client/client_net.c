#include "client/client_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/net.h"

int64_t cnet_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
	int64_t left = deadline - cnet_now_ms();
	if (left <= 0)
		return 0;
	return left > 60000 ? 60000 : (int)left;
}

/* Waits for events on fd (and readability of cancel_fd). */
static int wait_fd(int fd, short events, int cancel_fd, int64_t deadline)
{
	for (;;) {
		int left = remaining(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		struct pollfd pfd[2] = { { .fd = fd, .events = events },
					 { .fd = cancel_fd, .events = POLLIN } };
		int r = poll(pfd, cancel_fd >= 0 ? 2 : 1, left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (cancel_fd >= 0 && (pfd[1].revents & POLLIN))
			return -ECANCELED;
		if (r > 0 && pfd[0].revents)
			return 0;
	}
}

static int connect_one(const struct addrinfo *ai, int cancel_fd, int64_t deadline, int *fd_out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	int flags = fcntl(fd, F_GETFL);
	int err = 0;
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		err = -errno;
		goto err_close;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = -errno;
			goto err_close;
		}
		err = wait_fd(fd, POLLOUT, cancel_fd, deadline);
		if (err)
			goto err_close;
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr) {
			err = -soerr;
			goto err_close;
		}
	}
	if (fcntl(fd, F_SETFL, flags) < 0) {
		err = -errno;
		goto err_close;
	}
	net_tune_stream(fd);
	*fd_out = fd;
	return 0;
err_close:
	close(fd);
	return err;
}

int cnet_connect(const char *host, const char *port, int timeout_ms, int cancel_fd, int *fd_out)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG,
	};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc == EAI_NONAME) {
		/* AI_ADDRCONFIG hides loopback-only families; ask again without. */
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(host, port, &hints, &res);
	}
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	int64_t deadline = cnet_now_ms() + timeout_ms;
	int err = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		err = connect_one(ai, cancel_fd, deadline, fd_out);
		if (err == 0 || err == -ECANCELED || err == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return err;
}

int cnet_read_exact(int fd, void *buf, size_t n, int64_t deadline_ms)
{
	size_t got = 0;
	while (got < n) {
		int err = wait_fd(fd, POLLIN, -1, deadline_ms);
		if (err)
			return err;
		ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
		if (r == 0)
			return -EPIPE;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

static int copy_part(char *dst, size_t size, const char *src, size_t len)
{
	if (len == 0 || len >= size)
		return -EINVAL;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

bool cnet_port_valid(const char *p)
{
	if (*p == '\0' || strlen(p) > 5)
		return false;
	char *end;
	long v = strtol(p, &end, 10);
	return *end == '\0' && v >= 1 && v <= 65535 && p[0] != '0';
}

int cnet_split_host_port(const char *spec, const char *def_port, char *host, size_t host_size,
			 char *port, size_t port_size)
{
	const char *h = spec, *p = NULL;
	size_t hlen;
	if (spec[0] == '[') {
		const char *close_br = strchr(spec, ']');
		if (!close_br)
			return -EINVAL;
		h = spec + 1;
		hlen = (size_t)(close_br - h);
		if (close_br[1] == ':')
			p = close_br + 2;
		else if (close_br[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strchr(spec, ':');
		if (colon && strchr(colon + 1, ':')) {
			hlen = strlen(spec); /* bare IPv6 literal */
		} else if (colon) {
			hlen = (size_t)(colon - spec);
			p = colon + 1;
		} else {
			hlen = strlen(spec);
		}
	}
	for (size_t i = 0; i < hlen; i++) {
		if (h[i] <= ' ' || h[i] > '~')
			return -EINVAL;
	}
	if (copy_part(host, host_size, h, hlen))
		return -EINVAL;
	if (!p)
		p = def_port;
	if (!cnet_port_valid(p))
		return -EINVAL;
	return copy_part(port, port_size, p, strlen(p));
}
