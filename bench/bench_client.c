/* The benchmark's pipelined USB/IP client.
 *
 * One thread, a blocking socket, and per loop turn: one sendmsg with every
 * CMD_SUBMIT the free slots allow, one recv of whatever has arrived, and a
 * parse of every complete RET_SUBMIT in it. The test client library
 * (tests/client) is correct and strict but makes a syscall or two per
 * message and allocates per reply; this is the least a client can do, so
 * the server's figures are not the client's. The same code drives the raw
 * TCP peer, so the two sides of each ratio differ only in who answers. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "proto/usbip_codec.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: the process ignores SIGPIPE instead */
#endif

/* Outstanding seqnums are looked up by their low bits; replies come back at
 * most this far out of order (they come in order per endpoint anyway). */
#define SLOT_COUNT 4096u
#define MSG_MAX (USBIP_HEADER_SIZE + BENCH_MAX_LEN)
#define RBUF_SIZE (16u * MSG_MAX)

struct slot {
	uint32_t seqnum; /* 0 = free */
	uint64_t submitted_ns;
};

struct bench_client {
	uint8_t *rbuf;    /* RBUF_SIZE */
	uint8_t *payload; /* BENCH_MAX_LEN, the OUT data */
	uint8_t hdr[BENCH_MAX_DEPTH][USBIP_HEADER_SIZE];
	struct slot slot[SLOT_COUNT];
};

struct bench_client *bench_client_new(void)
{
	struct bench_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->rbuf = malloc(RBUF_SIZE);
	c->payload = malloc(BENCH_MAX_LEN);
	if (c->rbuf == NULL || c->payload == NULL) {
		bench_client_free(c);
		return NULL;
	}
	/* Touch everything now: page faults here are not the server's RSS. */
	memset(c->rbuf, 0xa5, RBUF_SIZE); /* not 0: malloc+memset 0 may become calloc */
	for (uint32_t i = 0; i < BENCH_MAX_LEN; i++)
		c->payload[i] = (uint8_t)(i % 63u);
	return c;
}

void bench_client_free(struct bench_client *c)
{
	if (c == NULL)
		return;
	free(c->rbuf);
	free(c->payload);
	free(c);
}

int bench_connect(int port)
{
	struct sockaddr_in sa = { 0 };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -errno;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/* Sends every byte the iovecs describe; they are consumed on the way. */
static int send_all(int fd, struct iovec *iov, int cnt)
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

static int recv_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int bench_import(int fd, const char *busid, uint32_t *devid)
{
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	uint8_t rep[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
	struct usbip_op_common op;
	struct usbip_device_record rec;

	if (usbip_import_request_encode(busid, req, sizeof(req)) < 0)
		return -EINVAL;
	struct iovec iov = { req, sizeof(req) };
	int rc = send_all(fd, &iov, 1);
	if (rc == 0)
		rc = recv_all(fd, rep, USBIP_OP_COMMON_SIZE);
	if (rc < 0)
		return rc;
	if (usbip_op_common_decode(rep, USBIP_OP_COMMON_SIZE, &op) != USBIP_OK ||
	    op.code != USBIP_OP_REP_IMPORT)
		return -EPROTO;
	if (op.status != USBIP_ST_OK)
		return -EREMOTEIO;
	rc = recv_all(fd, rep + USBIP_OP_COMMON_SIZE, USBIP_DEVICE_RECORD_SIZE);
	if (rc < 0)
		return rc;
	if (usbip_device_record_decode(rep + USBIP_OP_COMMON_SIZE, USBIP_DEVICE_RECORD_SIZE,
				       &rec) != USBIP_OK)
		return -EPROTO;
	*devid = usbip_devid(rec.busnum, rec.devnum);
	return 0;
}

/* The CMD_SUBMIT header of one URB of the pattern. */
static int encode_submit(const struct bench_pattern *p, uint32_t seqnum, uint32_t devid,
			 uint8_t *out)
{
	struct usbip_header h = {
		.command = USBIP_CMD_SUBMIT,
		.seqnum = seqnum,
		.devid = devid,
	};
	struct usbip_cmd_submit *s = &h.u.cmd_submit;

	s->transfer_buffer_length = p->len;
	switch (p->kind) {
	case BENCH_CTRL_IN:
		h.direction = USBIP_DIR_IN;
		h.ep = 0;
		s->transfer_flags = USBIP_URB_DIR_IN;
		bench_ctrl_read_setup(s->setup, (uint16_t)p->len);
		break;
	case BENCH_BULK_IN:
	case BENCH_INT_IN:
		h.direction = USBIP_DIR_IN;
		h.ep = p->kind == BENCH_INT_IN ? 3 : 1;
		s->transfer_flags = USBIP_URB_DIR_IN;
		break;
	case BENCH_BULK_OUT:
		h.direction = USBIP_DIR_OUT;
		h.ep = 1;
		break;
	}
	return usbip_header_encode(&h, out, USBIP_HEADER_SIZE) == USBIP_HEADER_SIZE ? 0 : -EINVAL;
}

/* The control case reads back what gadget zero's vendor OUT stored: store
 * len bytes first, one synchronous round trip outside the measurement. */
static int ctrl_prepare(struct bench_client *c, int fd, uint32_t devid, uint32_t len)
{
	struct usbip_header h = {
		.command = USBIP_CMD_SUBMIT,
		.seqnum = 0x7fffffffu,
		.devid = devid,
		.direction = USBIP_DIR_OUT,
		.ep = 0,
	};
	uint8_t hdr[USBIP_HEADER_SIZE];

	h.u.cmd_submit.transfer_buffer_length = len;
	bench_ctrl_write_setup(h.u.cmd_submit.setup, (uint16_t)len);
	if (usbip_header_encode(&h, hdr, sizeof(hdr)) != USBIP_HEADER_SIZE)
		return -EINVAL;
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { c->payload, len } };
	int rc = send_all(fd, iov, 2);
	if (rc == 0)
		rc = recv_all(fd, hdr, sizeof(hdr));
	if (rc < 0)
		return rc;
	if (usbip_header_decode(hdr, sizeof(hdr), &h) != USBIP_OK ||
	    h.command != USBIP_RET_SUBMIT || h.u.ret_submit.status != 0)
		return -EPROTO;
	return 0;
}

int bench_client_run(struct bench_client *c, int fd, uint32_t devid,
		     const struct bench_pattern *p, const struct bench_timing *t,
		     struct bench_result *out)
{
	const bool in = p->kind != BENCH_BULK_OUT;
	struct iovec iov[2 * BENCH_MAX_DEPTH];
	size_t rlen = 0, rpos = 0;
	uint32_t next_seq = 1;
	int inflight = 0, rc;

	if (p->depth < 1 || p->depth > BENCH_MAX_DEPTH || p->len > BENCH_MAX_LEN)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(c->slot, 0, sizeof(c->slot));
	if (p->kind == BENCH_CTRL_IN && (rc = ctrl_prepare(c, fd, devid, p->len)) < 0)
		return rc;

	const uint64_t begin = bench_now_ns();
	const uint64_t open_at = begin + t->warmup_ns, close_at = open_at + t->window_ns;
	uint64_t opened = 0, last = 0, cpu0 = 0, pcpu0 = 0;
	struct bench_ctxsw cs0 = { 0, 0 }, cs1;
	bool is_open = false;

	for (;;) {
		uint64_t now = bench_now_ns();
		if (!is_open && now >= open_at) {
			is_open = true;
			opened = last = now;
			cpu0 = bench_thread_cpu_ns();
			pcpu0 = bench_process_cpu_ns();
			bench_ctxsw_read(&cs0);
		}

		/* Refill every free slot in one send. */
		int n = 0;
		while (now < close_at && inflight < p->depth) {
			uint32_t seq = next_seq++;
			struct slot *s = &c->slot[seq % SLOT_COUNT];
			if (s->seqnum != 0)
				return -EPROTO; /* a reply overdue by SLOT_COUNT URBs */
			s->seqnum = seq;
			s->submitted_ns = now;
			if ((rc = encode_submit(p, seq, devid, c->hdr[n])) < 0)
				return rc;
			iov[2 * n] = (struct iovec){ c->hdr[n], USBIP_HEADER_SIZE };
			iov[2 * n + 1] = (struct iovec){ c->payload, in ? 0 : p->len };
			n++;
			inflight++;
		}
		if (n > 0 && (rc = send_all(fd, iov, 2 * n)) < 0)
			return rc;
		if (inflight == 0)
			break;

		ssize_t r = recv(fd, c->rbuf + rlen, RBUF_SIZE - rlen, 0);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		rlen += (size_t)r;
		now = bench_now_ns();

		while (rlen - rpos >= USBIP_HEADER_SIZE) {
			struct usbip_header h;
			if (usbip_header_decode(c->rbuf + rpos, USBIP_HEADER_SIZE, &h) != USBIP_OK ||
			    h.command != USBIP_RET_SUBMIT)
				return -EPROTO;
			size_t need = USBIP_HEADER_SIZE + usbip_ret_submit_payload_size(&h, in);
			if (rlen - rpos < need)
				break;
			struct slot *s = &c->slot[h.seqnum % SLOT_COUNT];
			if (s->seqnum != h.seqnum || h.u.ret_submit.status != 0 ||
			    h.u.ret_submit.actual_length != p->len)
				return -EPROTO;
			if (is_open) {
				out->urbs++;
				out->bytes += p->len;
				bench_hist_add(&out->lat, now - s->submitted_ns);
				last = now;
			}
			s->seqnum = 0;
			inflight--;
			rpos += need;
		}
		if (rpos == rlen) {
			rpos = rlen = 0;
		} else if (RBUF_SIZE - rlen < MSG_MAX) {
			memmove(c->rbuf, c->rbuf + rpos, rlen - rpos);
			rlen -= rpos;
			rpos = 0;
		}
	}
	if (!is_open)
		return -ETIME;
	out->wall_ns = last - opened;
	out->client_cpu_ns = bench_thread_cpu_ns() - cpu0;
	out->process_cpu_ns = bench_process_cpu_ns() - pcpu0;
	bench_ctxsw_read(&cs1);
	out->client_ctxsw = cs1.thread - cs0.thread;
	out->process_ctxsw = cs1.process - cs0.process;
	return 0;
}
