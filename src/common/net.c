#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/net_os.h"

/* A vanished peer is noticed within 15 s: keepalive probes after 5 s of
 * silence, 3 s apart; replies left unacknowledged (a peer gone while data
 * was in flight, which keepalive does not probe) for 12 s. Where
 * TCP_USER_TIMEOUT is set Linux also ends an idle connection by it, not by
 * the probe count: at the first probe past 12 s of silence, i.e. at 14 s
 * (5 + 3 x 3). A user timeout of 15 s made that 17 s, measured by
 * tests/integration/test_half_open.c, which prints the times. */
#define NET_KEEPIDLE_S 5
#define NET_KEEPINTVL_S 3
#define NET_KEEPCNT 3
#define NET_USER_TIMEOUT_MS 12000

ssize_t net_read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return got == 0 ? 0 : -EPIPE;
		if (errno == EINTR)
			continue;
		return -errno;
	}
	return (ssize_t)n;
}

int net_writev_full(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iovcnt };
		ssize_t w = sendmsg(fd, &msg, net_os_send_flags());
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t left = (size_t)w;
		while (iovcnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

ssize_t net_send_iov(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t w = sendmsg(fd, &msg, net_os_send_flags());
	return w < 0 ? -errno : w;
}

void net_tune_stream(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	net_os_nosigpipe(fd);
	net_os_keepalive(fd, NET_KEEPIDLE_S, NET_KEEPINTVL_S, NET_KEEPCNT);
	net_os_user_timeout(fd, NET_USER_TIMEOUT_MS);
}

int net_listen(const char *host, const char *port, int *fds, int max)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res;
	if (host && !*host)
		host = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;

	int count = 0, last_err = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai && count < max; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			last_err = -errno;
			continue;
		}
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Keep the IPv6 socket IPv6-only so the IPv4 one can bind too. */
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
			last_err = -errno;
			close(fd);
			continue;
		}
		fds[count++] = fd;
		/* With port "0", make the next family use the same port. */
		if (strcmp(port, "0") == 0 && ai->ai_next) {
			char buf[8];
			snprintf(buf, sizeof(buf), "%d", net_local_port(fd));
			freeaddrinfo(res);
			int more = net_listen(host, buf, fds + count, max - count);
			if (more > 0)
				count += more;
			return count;
		}
	}
	freeaddrinfo(res);
	return count > 0 ? count : last_err;
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

void net_peer_name(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(out, n, "%s:%d", host, port);
}

int64_t net_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds for poll(): -1 for no deadline, 0 once it passed. */
static int poll_timeout(int64_t deadline)
{
	if (deadline == NET_NO_DEADLINE)
		return -1;
	int64_t left = deadline - net_now_ms();
	if (left <= 0)
		return 0;
	return left > 60000 ? 60000 : (int)left; /* re-checked after each wake */
}

int net_wait_fd(int fd, short events, int cancel_fd, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = fd, .events = events },
					 { .fd = cancel_fd, .events = POLLIN } };
		int r = poll(pfd, cancel_fd >= 0 ? 2 : 1, poll_timeout(deadline_ms));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (cancel_fd >= 0 && (pfd[1].revents & POLLIN))
			return -ECANCELED;
		if (r > 0 && pfd[0].revents)
			return 0;
		if (deadline_ms != NET_NO_DEADLINE && net_now_ms() >= deadline_ms)
			return -ETIMEDOUT;
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
		err = net_wait_fd(fd, POLLOUT, cancel_fd, deadline);
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

int net_resolve(const char *host, const char *port, struct addrinfo **res)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG,
	};
	int rc = getaddrinfo(host, port, &hints, res);
	if (rc == EAI_NONAME) {
		/* AI_ADDRCONFIG hides loopback-only families; ask again without. */
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(host, port, &hints, res);
	}
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	return 0;
}

int net_connect(const char *host, const char *port, int timeout_ms, int cancel_fd, int *fd_out)
{
	struct addrinfo *res;
	int rc = net_resolve(host, port, &res);
	if (rc < 0)
		return rc;
	int64_t deadline = timeout_ms < 0 ? NET_NO_DEADLINE : net_now_ms() + timeout_ms;
	int err = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		err = connect_one(ai, cancel_fd, deadline, fd_out);
		if (err == 0 || err == -ECANCELED || err == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return err;
}
