#include "client/import.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client_net.h"
#include "common/net.h"
#include "common/net_os.h"
#include "proto/busid.h"

const char *import_status_str(uint32_t status)
{
	switch (status) {
	case USBIP_ST_OK:
		return "ok";
	case USBIP_ST_NA:
		return "not available";
	case USBIP_ST_DEV_BUSY:
		return "busy (imported by another client)";
	case USBIP_ST_DEV_ERR:
		return "device error on the server";
	case USBIP_ST_NODEV:
		return "no such device";
	case USBIP_ST_ERROR:
		return "server error";
	default:
		return "unknown status";
	}
}

/* Maps an op status to the errno import_device returns for it. */
static int import_status_errno(uint32_t status)
{
	switch (status) {
	case USBIP_ST_OK:
		return 0;
	case USBIP_ST_DEV_BUSY:
		return -EBUSY;
	case USBIP_ST_NA:
	case USBIP_ST_NODEV:
		return -ENODEV;
	case USBIP_ST_DEV_ERR:
	case USBIP_ST_ERROR:
		return -EIO;
	default:
		return -EPROTO;
	}
}

int64_t import_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool finish(struct import_op *op, int err)
{
	if (err) {
		tls_conn_free(op->tls_conn);
		op->tls_conn = NULL;
	}
	if (op->fd >= 0) {
		if (err == 0) {
			/* Blocking again, as vhci's callers expect a plain socket. */
			int flags = fcntl(op->fd, F_GETFL);
			if (flags < 0 || fcntl(op->fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
				err = -errno;
		}
		if (err) {
			close(op->fd);
			op->fd = -1;
		}
	}
	op->err = err;
	op->stage = IMPORT_DONE;
	if (err == 0) {
		op->res.fd = op->fd;
		op->res.tls = op->tls_conn;
		op->tls_conn = NULL;
	}
	return true;
}

bool import_begin(struct import_op *op, const struct sockaddr *addr, socklen_t addrlen,
		  const char *busid, int timeout_ms)
{
	return import_begin_tls(op, addr, addrlen, busid, timeout_ms, NULL, NULL);
}

/* TCP is up: on to TLS or straight to the request. */
static bool connected(struct import_op *op)
{
	op->connect_failed = false;
	op->res.connected_ns = import_now_ns();
	net_tune_stream(op->fd);
	if (!op->tls_ctx) {
		op->stage = IMPORT_SENDING;
		return true;
	}
	op->stage = IMPORT_TLS;
	op->tls_events = POLLOUT;
	op->tls_conn = tls_conn_new(op->tls_ctx, op->fd, op->server_name, op->tls_err);
	return op->tls_conn != NULL || !finish(op, -ENOMEM);
}

bool import_begin_tls(struct import_op *op, const struct sockaddr *addr, socklen_t addrlen,
		      const char *busid, int timeout_ms, struct tls_ctx *tls,
		      const char *server_name)
{
	memset(op, 0, sizeof(*op));
	op->tls_ctx = tls;
	op->server_name = server_name;
	op->fd = -1;
	op->op_status = -1;
	op->res.fd = -1;
	op->stage = IMPORT_CONNECTING;
	op->deadline_ms = net_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	op->connect_failed = true;
	if (!busid_valid(busid) ||
	    usbip_import_request_encode(busid, op->req, sizeof(op->req)) != (int)sizeof(op->req))
		return !finish(op, -EINVAL);
	memcpy(op->busid, busid, strlen(busid) + 1);

	op->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (op->fd < 0)
		return !finish(op, -errno);
	if (connect(op->fd, addr, addrlen) == 0)
		return connected(op);
	if (errno != EINPROGRESS)
		return !finish(op, -errno);
	return true;
}

short import_events(const struct import_op *op)
{
	switch (op->stage) {
	case IMPORT_TLS:
		return op->tls_events;
	case IMPORT_CONNECTING:
	case IMPORT_SENDING:
		return op->tls_conn ? op->tls_events : POLLOUT;
	case IMPORT_READING:
		return POLLIN;
	case IMPORT_DONE:
		break;
	}
	return 0;
}

int import_wait_ms(const struct import_op *op, int64_t now_ms)
{
	int64_t left = op->deadline_ms - now_ms;
	if (left < 0)
		return 0;
	return left > 60000 ? 60000 : (int)left;
}

/* Checks what has been read; returns 1 to read on, 0 when the op is done
 * (successfully or not: op->err). */
static int check_reply(struct import_op *op)
{
	struct usbip_op_common hdr;
	if (op->rep_got < USBIP_OP_COMMON_SIZE)
		return 1;
	if (op->rep_want == USBIP_OP_COMMON_SIZE) {
		if (usbip_op_common_decode(op->rep, USBIP_OP_COMMON_SIZE, &hdr) != USBIP_OK ||
		    hdr.code != USBIP_OP_REP_IMPORT) {
			finish(op, -EPROTO);
			return 0;
		}
		op->op_status = (int)(hdr.status > 0xff ? 0xff : hdr.status);
		if (hdr.status != USBIP_ST_OK) {
			finish(op, import_status_errno(hdr.status));
			return 0;
		}
		op->rep_want = sizeof(op->rep);
		return 1;
	}
	if (op->rep_got < op->rep_want)
		return 1;
	struct usbip_device_record *dev = &op->res.dev;
	if (usbip_device_record_decode(op->rep + USBIP_OP_COMMON_SIZE, USBIP_DEVICE_RECORD_SIZE,
				       dev) != USBIP_OK ||
	    strcmp(dev->busid, op->busid) != 0 || dev->speed == USBIP_SPEED_UNKNOWN ||
	    dev->speed > USBIP_SPEED_SUPER_PLUS || dev->busnum > 0xffff || dev->devnum > 0xffff) {
		finish(op, -EPROTO);
		return 0;
	}
	op->res.devid = dev->busnum << 16 | dev->devnum;
	op->res.replied_ns = import_now_ns();
	finish(op, 0);
	return 0;
}

bool import_advance(struct import_op *op, short revents)
{
	if (op->stage == IMPORT_DONE)
		return true;
	if (op->stage == IMPORT_CONNECTING && revents) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr)
			return finish(op, -soerr);
		if (!connected(op))
			return true;
		revents = POLLOUT;
	}
	if (op->stage == IMPORT_TLS && revents) {
		int rc = tls_conn_step(op->tls_conn, op->tls_err);
		if (rc < 0)
			return finish(op, -EPROTO);
		if (rc > 0) {
			op->tls_events = (short)rc;
		} else {
			op->stage = IMPORT_SENDING;
			op->tls_events = POLLOUT;
		}
	}
	if (op->stage == IMPORT_SENDING && op->tls_conn) {
		/* One record; on EAGAIN the same call again (OpenSSL's rule). */
		int rc = tls_conn_write(op->tls_conn, op->req, sizeof(op->req));
		if (rc == 0) {
			op->req_off = sizeof(op->req);
			op->stage = IMPORT_READING;
			op->rep_want = USBIP_OP_COMMON_SIZE;
			revents = POLLIN;
		} else if (rc != -EAGAIN) {
			return finish(op, rc);
		}
	}
	if (op->stage == IMPORT_READING && op->tls_conn && revents) {
		for (;;) {
			/* Exactly what the reply has left: nothing of what follows
			 * may stay inside OpenSSL when the kernel takes over. */
			ssize_t r = tls_conn_read(op->tls_conn, op->rep + op->rep_got,
						  op->rep_want - op->rep_got);
			if (r == -EAGAIN)
				break;
			if (r <= 0)
				return finish(op, r < 0 ? (int)r : -EPIPE);
			op->rep_got += (size_t)r;
			if (check_reply(op) == 0)
				return true;
		}
	}
	if (op->stage == IMPORT_SENDING && !op->tls_conn) {
		while (op->req_off < sizeof(op->req)) {
			ssize_t w = send(op->fd, op->req + op->req_off, sizeof(op->req) - op->req_off,
					 net_os_send_flags());
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (w <= 0)
				return finish(op, w < 0 ? -errno : -EPIPE);
			op->req_off += (size_t)w;
		}
		if (op->req_off == sizeof(op->req)) {
			op->stage = IMPORT_READING;
			op->rep_want = USBIP_OP_COMMON_SIZE;
			revents = POLLIN; /* the reply may be there already */
		}
	}
	if (op->stage == IMPORT_READING && !op->tls_conn && revents) {
		for (;;) {
			ssize_t r = recv(op->fd, op->rep + op->rep_got, op->rep_want - op->rep_got, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (r <= 0)
				return finish(op, r < 0 ? -errno : -EPIPE);
			op->rep_got += (size_t)r;
			if (check_reply(op) == 0)
				return true;
		}
	}
	if (net_now_ms() >= op->deadline_ms)
		return finish(op, -ETIMEDOUT);
	return false;
}

void import_abort(struct import_op *op)
{
	if (op->stage != IMPORT_DONE)
		finish(op, -ECANCELED);
}

/* One address, blocking: the op driven by its own poll. */
static int import_one(const struct addrinfo *ai, const char *busid, int64_t deadline,
		      int cancel_fd, struct tls_ctx *tls, const char *host, struct import_op *op)
{
	int64_t now = net_now_ms();
	if (!import_begin_tls(op, ai->ai_addr, ai->ai_addrlen, busid,
			      (int)(deadline > now ? deadline - now : 0), tls, host))
		return op->err;
	while (op->stage != IMPORT_DONE) {
		struct pollfd pfd[2] = { { .fd = op->fd, .events = import_events(op) },
					 { .fd = cancel_fd, .events = POLLIN } };
		int r = poll(pfd, cancel_fd >= 0 ? 2 : 1, import_wait_ms(op, net_now_ms()));
		if (r < 0 && errno != EINTR) {
			int err = -errno;
			import_abort(op);
			return op->err = err;
		}
		if (r > 0 && cancel_fd >= 0 && (pfd[1].revents & POLLIN)) {
			import_abort(op);
			return -ECANCELED;
		}
		import_advance(op, r > 0 ? pfd[0].revents : 0);
	}
	return op->err;
}

int import_device(const char *host, const char *port, const char *busid, int timeout_ms,
		  int cancel_fd, struct import_result *out, int *op_status)
{
	return import_device_tls(host, port, busid, timeout_ms, cancel_fd, NULL, out, op_status,
				 NULL);
}

int import_device_tls(const char *host, const char *port, const char *busid, int timeout_ms,
		      int cancel_fd, struct tls_ctx *tls, struct import_result *out,
		      int *op_status, char *tls_err)
{
	if (op_status)
		*op_status = -1;
	if (!busid_valid(busid))
		return -EINVAL;
	struct addrinfo *res;
	int rc = net_resolve(host, port, &res);
	if (rc < 0)
		return rc;
	int64_t deadline = net_now_ms() + timeout_ms;
	struct import_op op = { .fd = -1, .stage = IMPORT_CONNECTING, .op_status = -1 };
	int err = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		err = import_one(ai, busid, deadline, cancel_fd, tls, host, &op);
		/* Only a failed connect is worth the next address. */
		if (err == 0 || !op.connect_failed || err == -ECANCELED || err == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (op_status && op.stage == IMPORT_DONE)
		*op_status = op.op_status;
	if (tls_err)
		memcpy(tls_err, op.tls_err, sizeof(op.tls_err));
	if (err == 0)
		*out = op.res;
	return err;
}
