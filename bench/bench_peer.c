/* The raw-TCP reference: the least a USB/IP server can do per URB.
 *
 * It answers every CMD_SUBMIT at once, with no device behind it: status 0
 * and the full length, IN data from one pre-filled buffer. It reads as much
 * as has arrived per recv and answers all of it in one sendmsg, which is
 * the shape the issue asks of the server's engine. The bytes on the wire
 * are exactly the server's, so client and kernel costs are identical and
 * the ratio server / peer is what the server adds. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "proto/usbip_codec.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define MSG_MAX (USBIP_HEADER_SIZE + BENCH_MAX_LEN)
#define RBUF_SIZE (16u * MSG_MAX)
#define BATCH_MAX 64 /* replies per sendmsg */

struct bench_peer {
	int listen_fd;
	pthread_t thread;
	bool running;
	int error; /* -errno of a failed serve, 0 otherwise */
	uint8_t *rbuf;
	uint8_t *data; /* BENCH_MAX_LEN of IN data */
	uint8_t hdr[BATCH_MAX][USBIP_HEADER_SIZE];
};

struct bench_peer *bench_peer_new(void)
{
	struct bench_peer *peer = calloc(1, sizeof(*peer));

	if (peer == NULL)
		return NULL;
	peer->listen_fd = -1;
	peer->rbuf = malloc(RBUF_SIZE);
	peer->data = malloc(BENCH_MAX_LEN);
	if (peer->rbuf == NULL || peer->data == NULL) {
		bench_peer_free(peer);
		return NULL;
	}
	memset(peer->rbuf, 0xa5, RBUF_SIZE); /* not 0: see bench_client_new */
	for (uint32_t i = 0; i < BENCH_MAX_LEN; i++)
		peer->data[i] = (uint8_t)(i % 63u);
	return peer;
}

void bench_peer_free(struct bench_peer *peer)
{
	if (peer == NULL)
		return;
	if (peer->running)
		bench_peer_join(peer);
	if (peer->listen_fd >= 0)
		close(peer->listen_fd);
	free(peer->rbuf);
	free(peer->data);
	free(peer);
}

static int flush(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t left = (size_t)n;
		while (cnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static int serve(struct bench_peer *peer, int fd)
{
	struct iovec iov[2 * BATCH_MAX];
	size_t rlen = 0, rpos = 0;

	for (;;) {
		ssize_t r = recv(fd, peer->rbuf + rlen, RBUF_SIZE - rlen, 0);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		rlen += (size_t)r;

		int n = 0, rc;
		while (rlen - rpos >= USBIP_HEADER_SIZE) {
			struct usbip_header h;
			if (usbip_header_decode(peer->rbuf + rpos, USBIP_HEADER_SIZE, &h) != USBIP_OK ||
			    h.command != USBIP_CMD_SUBMIT)
				return -EPROTO;
			size_t need = USBIP_HEADER_SIZE + usbip_cmd_submit_payload_size(&h);
			if (rlen - rpos < need)
				break;
			uint32_t len = h.u.cmd_submit.transfer_buffer_length;
			if (len > BENCH_MAX_LEN)
				return -EPROTO;
			bool in = h.direction == USBIP_DIR_IN;
			struct usbip_header rep = {
				.command = USBIP_RET_SUBMIT,
				.seqnum = h.seqnum,
				.u.ret_submit = { .actual_length = len },
			};
			if (usbip_header_encode(&rep, peer->hdr[n], USBIP_HEADER_SIZE) < 0)
				return -EPROTO;
			iov[2 * n] = (struct iovec){ peer->hdr[n], USBIP_HEADER_SIZE };
			iov[2 * n + 1] = (struct iovec){ peer->data, in ? len : 0 };
			rpos += need;
			if (++n == BATCH_MAX) {
				if ((rc = flush(fd, iov, 2 * n)) < 0)
					return rc;
				n = 0;
			}
		}
		if (n > 0 && (rc = flush(fd, iov, 2 * n)) < 0)
			return rc;
		if (rpos == rlen) {
			rpos = rlen = 0;
		} else if (RBUF_SIZE - rlen < MSG_MAX) {
			memmove(peer->rbuf, peer->rbuf + rpos, rlen - rpos);
			rlen -= rpos;
			rpos = 0;
		}
	}
}

static void *peer_thread(void *arg)
{
	struct bench_peer *peer = arg;
	int one = 1;
	int fd = accept(peer->listen_fd, NULL, NULL);

	if (fd < 0) {
		peer->error = -errno;
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer->error = serve(peer, fd);
	close(fd);
	return NULL;
}

int bench_peer_start(struct bench_peer *peer)
{
	struct sockaddr_in sa = { 0 };
	socklen_t salen = sizeof(sa);

	if (peer->listen_fd < 0) {
		int one = 1;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -errno;
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		peer->listen_fd = fd;
	}
	if (getsockname(peer->listen_fd, (struct sockaddr *)&sa, &salen) < 0)
		return -errno;
	peer->error = 0;
	int rc = pthread_create(&peer->thread, NULL, peer_thread, peer);
	if (rc != 0)
		return -rc;
	peer->running = true;
	return ntohs(sa.sin_port);
}

int bench_peer_join(struct bench_peer *peer)
{
	if (!peer->running)
		return 0;
	pthread_join(peer->thread, NULL);
	peer->running = false;
	return peer->error;
}
