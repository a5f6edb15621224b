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

int cnet_read_exact(int fd, void *buf, size_t n, int64_t deadline_ms)
{
	size_t got = 0;
	while (got < n) {
		int err = net_wait_fd(fd, POLLIN, -1, deadline_ms);
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
