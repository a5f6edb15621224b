/* The metrics endpoint: see metrics_http.h. */
#include "server/metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"

#define MAX_LISTEN 4

struct metrics_http {
	int fds[MAX_LISTEN];
	int nfds;
	int wake[2];
	pthread_t thread;
	metrics_render_fn render;
	void *ctx;
};

static int split(const char *addr_port, char *host, size_t hn, char *port, size_t pn)
{
	const char *colon = strrchr(addr_port, ':');
	if (!colon)
		return -EINVAL;
	const char *h = addr_port;
	size_t hl = (size_t)(colon - addr_port);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= hn || strlen(colon + 1) >= pn || !colon[1])
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* The end of the request head: an empty line. */
static bool head_complete(const char *req, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (req[i] == '\n' && (req[i + 1] == '\n' ||
				       (req[i + 1] == '\r' && i + 2 < len && req[i + 2] == '\n')))
			return true;
	}
	return false;
}

static void reply(int fd, const char *status, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, len);
	struct iovec iov[2] = { { head, (size_t)n }, { (void *)body, len } };
	net_writev_full(fd, iov, len ? 2 : 1);
}

static void serve(struct metrics_http *h, int fd)
{
	char req[METRICS_HTTP_MAX_REQUEST + 1];
	size_t len = 0;
	int64_t deadline = net_now_ms() + METRICS_HTTP_TIMEOUT_MS;
	while (!head_complete(req, len)) {
		if (len == METRICS_HTTP_MAX_REQUEST) {
			reply(fd, "400 Bad Request", "request too long\n", 17);
			return;
		}
		if (net_wait_fd(fd, POLLIN, h->wake[0], deadline) < 0)
			return;
		ssize_t n = recv(fd, req + len, METRICS_HTTP_MAX_REQUEST - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		len += (size_t)n;
	}
	req[len] = '\0';
	char method[8], path[256];
	if (sscanf(req, "%7s %255s", method, path) != 2) {
		reply(fd, "400 Bad Request", "bad request\n", 12);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		reply(fd, "405 Method Not Allowed", "GET only\n", 9);
		return;
	}
	if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
		reply(fd, "404 Not Found", "try /metrics\n", 13);
		return;
	}
	struct strbuf body;
	sb_init(&body);
	h->render(h->ctx, &body);
	if (body.failed)
		reply(fd, "500 Internal Server Error", "out of memory\n", 14);
	else
		reply(fd, "200 OK", sb_str(&body), strcmp(method, "HEAD") == 0 ? 0 : body.len);
	sb_free(&body);
}

static void *http_main(void *arg)
{
	struct metrics_http *h = arg;
	for (;;) {
		struct pollfd p[MAX_LISTEN + 1];
		for (int i = 0; i < h->nfds; i++)
			p[i] = (struct pollfd){ h->fds[i], POLLIN, 0 };
		p[h->nfds] = (struct pollfd){ h->wake[0], POLLIN, 0 };
		if (poll(p, (nfds_t)h->nfds + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[h->nfds].revents)
			break;
		for (int i = 0; i < h->nfds; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int fd = accept(h->fds[i], NULL, NULL);
			if (fd < 0)
				continue;
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			serve(h, fd);
			close(fd);
		}
	}
	return NULL;
}

int metrics_http_start(const char *addr_port, metrics_render_fn render, void *ctx,
		       struct metrics_http **out)
{
	char host[256], port[16];
	int rc = split(addr_port, host, sizeof(host), port, sizeof(port));
	if (rc < 0)
		return rc;
	struct metrics_http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->render = render;
	h->ctx = ctx;
	h->nfds = net_listen(host, port, h->fds, MAX_LISTEN);
	if (h->nfds < 0) {
		rc = h->nfds;
		free(h);
		return rc;
	}
	if (pipe(h->wake) < 0) {
		rc = -errno;
		goto err_close;
	}
	rc = -pthread_create(&h->thread, NULL, http_main, h);
	if (rc < 0) {
		close(h->wake[0]);
		close(h->wake[1]);
		goto err_close;
	}
	*out = h;
	return 0;

err_close:
	for (int i = 0; i < h->nfds; i++)
		close(h->fds[i]);
	free(h);
	return rc;
}

int metrics_http_port(const struct metrics_http *h)
{
	return h && h->nfds > 0 ? net_local_port(h->fds[0]) : -1;
}

void metrics_http_stop(struct metrics_http *h)
{
	if (!h)
		return;
	ssize_t w = write(h->wake[1], "x", 1);
	(void)w;
	pthread_join(h->thread, NULL);
	close(h->wake[0]);
	close(h->wake[1]);
	for (int i = 0; i < h->nfds; i++)
		close(h->fds[i]);
	free(h);
}
