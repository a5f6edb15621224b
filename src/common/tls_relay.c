/* The userspace path: a thread copying between a TLS connection and a
 * local socket whose other end reads and writes plaintext. Used where
 * kernel TLS is missing (no tls module, macOS) or refuses the cipher. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/net.h"
#include "common/tls_internal.h"

struct tls_relay {
	struct tls_conn *c;
	int tcp_fd, local_fd;
	bool detached;
	pthread_t thread;
};

/* One turn each way; false when either side ended. */
static bool relay_turn(struct tls_relay *r, uint8_t *buf, size_t n)
{
	struct pollfd pfd[2] = { { .fd = r->tcp_fd, .events = POLLIN },
				 { .fd = r->local_fd, .events = POLLIN } };
	if (tls_conn_pending(r->c) == 0 && poll(pfd, 2, -1) < 0)
		return errno == EINTR;
	if (tls_conn_pending(r->c) > 0 || pfd[0].revents) {
		ssize_t got = tls_conn_read(r->c, buf, n);
		if (got == -EAGAIN)
			return true;
		if (got <= 0)
			return false;
		struct iovec iov = { buf, (size_t)got };
		if (net_writev_full(r->local_fd, &iov, 1) < 0)
			return false;
	}
	if (pfd[1].revents) {
		ssize_t got = read(r->local_fd, buf, n);
		if (got < 0 && errno == EINTR)
			return true;
		if (got <= 0 || tls_conn_write(r->c, buf, (size_t)got) < 0)
			return false;
	}
	return true;
}

static void *relay_main(void *arg)
{
	struct tls_relay *r = arg;
	uint8_t *buf = malloc(TLS_RECORD_MAX);
	while (buf && relay_turn(r, buf, TLS_RECORD_MAX))
		;
	free(buf);
	shutdown(r->local_fd, SHUT_RDWR);
	shutdown(r->tcp_fd, SHUT_RDWR);
	if (r->detached) {
		close(r->local_fd);
		close(r->tcp_fd);
		tls_conn_free(r->c);
		free(r);
	}
	return NULL;
}

int tls_relay_start(struct tls_conn *c, int tcp_fd, int local_fd, bool detached,
		    struct tls_relay **out)
{
	struct tls_relay *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct tls_relay){ .c = c, .tcp_fd = tcp_fd, .local_fd = local_fd,
				 .detached = detached };
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	if (detached)
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* A detached relay may be over and freed before pthread_create returns. */
	pthread_t t;
	int rc = pthread_create(detached ? &t : &r->thread, &attr, relay_main, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(r);
		return -rc;
	}
	if (out)
		*out = detached ? NULL : r;
	return 0;
}

void tls_relay_stop(struct tls_relay *r)
{
	if (!r)
		return;
	shutdown(r->local_fd, SHUT_RDWR);
	shutdown(r->tcp_fd, SHUT_RDWR);
	pthread_join(r->thread, NULL);
	close(r->local_fd);
	close(r->tcp_fd);
	tls_conn_free(r->c);
	free(r);
}

int tls_client_stream(struct tls_ctx *ctx, int fd, const char *server_name, int timeout_ms,
		      char *err)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
	struct timeval none = { 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct tls_conn *c = tls_conn_new(ctx, fd, server_name, err);
	int rc = c ? tls_conn_handshake(c, err) : -ENOMEM;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	if (rc < 0) {
		if (rc == -ETIMEDOUT && !err[0])
			snprintf(err, TLS_ERR_SIZE, "TLS handshake timed out");
		tls_conn_free(c);
		return rc;
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = -errno;
		snprintf(err, TLS_ERR_SIZE, "socketpair: %s", strerror(errno));
		tls_conn_free(c);
		return rc;
	}
	rc = tls_relay_start(c, fd, sp[1], true, NULL);
	if (rc < 0) {
		snprintf(err, TLS_ERR_SIZE, "cannot start the relay: %s", strerror(-rc));
		close(sp[0]);
		close(sp[1]);
		tls_conn_free(c);
		return rc;
	}
	return sp[0];
}
