/* The userspace path: a thread copying between a TLS connection and a
 * local socket whose other end reads and writes plaintext. Used where
 * kernel TLS is missing (no tls module, macOS) or refuses the cipher.
 *
 * Non-blocking both ways with one buffer per direction: a relay that
 * blocked writing one way while its peer's relay did the same the other way
 * would deadlock once both TCP directions are full (bulk IN and OUT at
 * once); here a full direction only stops that direction. OpenSSL's rule
 * for a write that returned "again": call it again with the same bytes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/net_os.h"
#include "common/tls_internal.h"

struct tls_relay {
	struct tls_conn *c;
	int tcp_fd, local_fd;
	bool detached;
	pthread_t thread;
};

struct relay_bufs {
	uint8_t down[TLS_RECORD_MAX]; /* TLS -> local */
	size_t down_off, down_len;
	uint8_t up[TLS_RECORD_MAX];   /* local -> TLS */
	size_t up_len;                /* > 0: a write still owed to OpenSSL */
};

static bool again(ssize_t r)
{
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

/* Moves what can move without blocking; false when either side ended. */
static bool relay_move(struct tls_relay *r, struct relay_bufs *b, bool *moved)
{
	if (b->down_len == 0) {
		ssize_t n = tls_conn_read(r->c, b->down, sizeof(b->down));
		if (n == 0 || (n < 0 && n != -EAGAIN))
			return false;
		if (n > 0) {
			b->down_off = 0;
			b->down_len = (size_t)n;
			*moved = true;
		}
	}
	while (b->down_off < b->down_len) {
		ssize_t n = send(r->local_fd, b->down + b->down_off, b->down_len - b->down_off,
				 net_os_send_flags());
		if (again(n))
			break;
		if (n <= 0)
			return false;
		b->down_off += (size_t)n;
		*moved = true;
	}
	if (b->down_off == b->down_len)
		b->down_len = b->down_off = 0;
	if (b->up_len == 0) {
		ssize_t n = recv(r->local_fd, b->up, sizeof(b->up), 0);
		if (n == 0 || (n < 0 && !again(n)))
			return false;
		if (n > 0) {
			b->up_len = (size_t)n;
			*moved = true;
		}
	}
	if (b->up_len > 0) {
		int rc = tls_conn_write(r->c, b->up, b->up_len);
		if (rc < 0 && rc != -EAGAIN)
			return false;
		if (rc == 0) {
			b->up_len = 0;
			*moved = true;
		}
	}
	return true;
}

static void relay_loop(struct tls_relay *r, struct relay_bufs *b)
{
	for (;;) {
		bool moved = false;
		if (!relay_move(r, b, &moved))
			return;
		if (moved || (b->down_len == 0 && tls_conn_pending(r->c) > 0))
			continue;
		struct pollfd pfd[2] = { { .fd = r->tcp_fd }, { .fd = r->local_fd } };
		if (b->down_len == 0)
			pfd[0].events |= POLLIN;
		else
			pfd[1].events |= POLLOUT;
		if (b->up_len == 0)
			pfd[1].events |= POLLIN;
		else
			pfd[0].events |= POLLOUT;
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return;
		if ((pfd[0].revents | pfd[1].revents) & POLLNVAL)
			return;
	}
}

static void *relay_main(void *arg)
{
	struct tls_relay *r = arg;
	struct relay_bufs *b = calloc(1, sizeof(*b));
	for (int i = 0; b && i < 2; i++) {
		int fd = i ? r->local_fd : r->tcp_fd;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	}
	if (b)
		relay_loop(r, b);
	free(b);
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
