/* USB/IP client: the op handshake and the URB layer.
 *
 * Every message is read in two steps, a fixed-size head and then a body
 * whose size follows from the head and from what the client itself sent.
 * Each size is checked against a named maximum (or the URB's own buffer)
 * before anything is allocated for it. */
#include "usbip_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usbip_client_net.h"

/* A request awaiting its reply: what uc_recv needs to read and check it. */
struct uc_pending {
	uint32_t seqnum;
	uint32_t command;       /* USBIP_CMD_SUBMIT or USBIP_CMD_UNLINK */
	bool dir_in;            /* CMD_SUBMIT */
	uint32_t buffer_length; /* CMD_SUBMIT */
	uint32_t iso_count;     /* CMD_SUBMIT */
	uint32_t victim;        /* CMD_UNLINK */
};

struct uc_conn {
	int fd;
	int io_timeout_ms;
	bool broken;            /* stream out of step: refuse everything */
	uint32_t devid;
	struct uc_pending *pending; /* unordered; a few entries in practice */
	size_t npending;
	size_t cap;
	char err[160];
};

/* The largest OP_REP_DEVLIST a server may send us. */
#define DEVLIST_HEAD_SIZE (USBIP_OP_COMMON_SIZE + USBIP_DEVLIST_COUNT_SIZE)
#define DEVLIST_DEVICE_MAX \
	(USBIP_DEVICE_RECORD_SIZE + USBIP_MAX_INTERFACES * USBIP_INTERFACE_RECORD_SIZE)

const char *uc_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case UC_E_INVAL: return "invalid argument";
	case UC_E_NOMEM: return "out of memory";
	case UC_E_TIMEOUT: return "timed out";
	case UC_E_CLOSED: return "server closed the connection";
	case UC_E_PROTO: return "protocol error";
	case UC_E_STATUS: return "server answered with an error status";
	case UC_E_BROKEN: return "connection unusable after an earlier error";
	case UC_E_SEQNUM: return "seqnum already outstanding";
	case UC_E_TOO_MANY: return "too many requests outstanding";
	case UC_E_RESOLVE: return "host or port did not resolve";
	default: return err < 0 ? strerror(-err) : "unknown error";
	}
}

__attribute__((format(printf, 3, 4)))
static int fail(struct uc_conn *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* Same, and the stream can no longer be trusted. */
__attribute__((format(printf, 3, 4)))
static int fail_broken(struct uc_conn *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->broken = true;
	return rc;
}

static int usable(struct uc_conn *c)
{
	if (c->broken)
		return UC_E_BROKEN; /* keep the message of what broke it */
	c->err[0] = '\0';
	return 0;
}

/* ---- Connection -------------------------------------------------------- */

static int conn_new(int fd, int timeout_ms, struct uc_conn **out)
{
	struct uc_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return UC_E_NOMEM;
	c->fd = fd;
	c->io_timeout_ms = timeout_ms;
	*out = c;
	return 0;
}

int uc_connect(const char *host, const char *port, int timeout_ms, struct uc_conn **out)
{
	int fd;
	int rc;

	if (!out)
		return UC_E_INVAL;
	rc = uc_net_connect(host, port, timeout_ms, &fd);
	if (rc < 0)
		return rc;
	rc = conn_new(fd, timeout_ms, out);
	if (rc < 0)
		close(fd);
	return rc;
}

int uc_adopt_fd(int fd, int timeout_ms, struct uc_conn **out)
{
	int rc;

	if (fd < 0 || !out) {
		if (fd >= 0)
			close(fd);
		return UC_E_INVAL;
	}
	rc = uc_net_prepare(fd);
	if (rc == 0)
		rc = conn_new(fd, timeout_ms, out);
	if (rc < 0)
		close(fd);
	return rc;
}

void uc_close(struct uc_conn *conn)
{
	if (!conn)
		return;
	close(conn->fd);
	free(conn->pending);
	free(conn);
}

int uc_fd(const struct uc_conn *conn)
{
	return conn->fd;
}

const char *uc_last_error(const struct uc_conn *conn)
{
	return conn->err;
}

uint32_t uc_devid(const struct uc_conn *conn)
{
	return conn->devid;
}

size_t uc_outstanding(const struct uc_conn *conn)
{
	return conn->npending;
}

/* ---- Socket I/O with error reporting ----------------------------------- */

/* Sends a whole message. Breaks the connection when part of it went out. */
static int conn_send(struct uc_conn *c, const void *buf, size_t n, const char *what)
{
	size_t sent = 0;
	int rc = uc_net_write_all(c->fd, buf, n, uc_net_deadline(c->io_timeout_ms), &sent);

	if (rc == 0)
		return 0;
	if (rc == UC_E_CLOSED)
		return fail(c, rc, "sending %s: server closed the connection", what);
	if (sent > 0)
		return fail_broken(c, rc, "sending %s: %s after %zu of %zu bytes", what,
				   uc_strerror(rc), sent, n);
	return fail(c, rc, "sending %s: %s", what, uc_strerror(rc));
}

/* Reads part of a message whose start was already committed to: anything
 * but a clean close leaves the stream out of step. */
static int conn_read(struct uc_conn *c, void *buf, size_t n, int64_t deadline, const char *what)
{
	size_t got = 0;
	int rc = uc_net_read_exact(c->fd, buf, n, deadline, &got);

	if (rc == 0)
		return 0;
	if (rc == UC_E_CLOSED)
		return fail(c, rc, "reading %s: server closed the connection after %zu of %zu bytes",
			    what, got, n);
	return fail_broken(c, rc, "reading %s: %s after %zu of %zu bytes", what,
			   uc_strerror(rc), got, n);
}

/* Reads and checks an op reply header with the expected code. */
static int read_op_common(struct uc_conn *c, uint16_t code, int64_t deadline,
			  struct usbip_op_common *op, uint8_t raw[USBIP_OP_COMMON_SIZE])
{
	int rc = conn_read(c, raw, USBIP_OP_COMMON_SIZE, deadline, "op reply header");

	if (rc < 0)
		return rc;
	rc = usbip_op_common_decode(raw, USBIP_OP_COMMON_SIZE, op);
	if (rc != USBIP_OK)
		return fail_broken(c, UC_E_PROTO, "op reply header: %s",
				   usbip_codec_strerror(rc));
	if (op->code != code)
		return fail_broken(c, UC_E_PROTO, "op reply code 0x%04x, expected 0x%04x",
				   op->code, code);
	return 0;
}

/* ---- Operations -------------------------------------------------------- */

/* Tells the callback's own return value apart from codec errors. */
struct devlist_trampoline {
	usbip_devlist_cb cb;
	void *ctx;
	int stopped_with;
};

static int devlist_trampoline_cb(void *ctx, const struct usbip_device_record *dev,
				 const struct usbip_interface_record *ifaces)
{
	struct devlist_trampoline *t = ctx;

	t->stopped_with = t->cb(t->ctx, dev, ifaces);
	return t->stopped_with;
}

int uc_devlist(struct uc_conn *conn, usbip_devlist_cb cb, void *ctx)
{
	uint8_t req[USBIP_OP_COMMON_SIZE];
	struct usbip_op_common op;
	uint32_t ndevices;
	uint8_t *buf;
	int rc;

	if (!conn || !cb)
		return UC_E_INVAL;
	rc = usable(conn);
	if (rc < 0)
		return rc;
	rc = usbip_devlist_request_encode(req, sizeof(req));
	if (rc < 0)
		return fail(conn, UC_E_INVAL, "encoding devlist request: %s",
			    usbip_codec_strerror(rc));
	rc = conn_send(conn, req, (size_t)rc, "OP_REQ_DEVLIST");
	if (rc < 0)
		return rc;

	int64_t deadline = uc_net_deadline(conn->io_timeout_ms);
	uint8_t head[DEVLIST_HEAD_SIZE];
	rc = read_op_common(conn, USBIP_OP_REP_DEVLIST, deadline, &op, head);
	if (rc < 0)
		return rc;
	if (op.status != USBIP_ST_OK)
		return fail(conn, UC_E_STATUS, "devlist refused: status %u (%s)", op.status,
			    usbip_op_status_name(op.status));
	rc = conn_read(conn, head + USBIP_OP_COMMON_SIZE, USBIP_DEVLIST_COUNT_SIZE, deadline,
		       "device count");
	if (rc < 0)
		return rc;
	rc = usbip_devlist_reply_head_decode(head, sizeof(head), &op, &ndevices);
	if (rc != USBIP_OK)
		return fail_broken(conn, UC_E_PROTO, "devlist reply head: %s",
				   usbip_codec_strerror(rc));

	/* ndevices <= USBIP_MAX_DEVICES: at most about 110 KiB. */
	buf = malloc(DEVLIST_HEAD_SIZE + (size_t)ndevices * DEVLIST_DEVICE_MAX);
	if (!buf)
		return fail_broken(conn, UC_E_NOMEM, "devlist reply: out of memory");
	memcpy(buf, head, DEVLIST_HEAD_SIZE);
	size_t at = DEVLIST_HEAD_SIZE;
	for (uint32_t i = 0; i < ndevices; i++) {
		struct usbip_device_record dev;

		rc = conn_read(conn, buf + at, USBIP_DEVICE_RECORD_SIZE, deadline, "device record");
		if (rc < 0)
			goto out_free;
		rc = usbip_device_record_decode(buf + at, USBIP_DEVICE_RECORD_SIZE, &dev);
		if (rc != USBIP_OK) {
			rc = fail_broken(conn, UC_E_PROTO, "device record %u of %u: %s", i + 1,
					 ndevices, usbip_codec_strerror(rc));
			goto out_free;
		}
		at += USBIP_DEVICE_RECORD_SIZE;
		/* The decoder bounded bNumInterfaces by USBIP_MAX_INTERFACES. */
		size_t iface_bytes = (size_t)dev.bNumInterfaces * USBIP_INTERFACE_RECORD_SIZE;
		rc = conn_read(conn, buf + at, iface_bytes, deadline, "interface records");
		if (rc < 0)
			goto out_free;
		at += iface_bytes;
	}

	struct devlist_trampoline t = { .cb = cb, .ctx = ctx, .stopped_with = 0 };
	rc = usbip_devlist_reply_decode(buf, at, devlist_trampoline_cb, &t);
	if (t.stopped_with != 0)
		rc = t.stopped_with;
	else if (rc != USBIP_OK)
		rc = fail_broken(conn, UC_E_PROTO, "devlist reply: %s", usbip_codec_strerror(rc));
out_free:
	free(buf);
	return rc;
}

int uc_import(struct uc_conn *conn, const char *busid, uint32_t *op_status,
	      struct usbip_device_record *out)
{
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	uint8_t raw[USBIP_DEVICE_RECORD_SIZE];
	struct usbip_op_common op;
	struct usbip_device_record dev;
	int rc;

	if (!conn || !busid)
		return UC_E_INVAL;
	rc = usable(conn);
	if (rc < 0)
		return rc;
	rc = usbip_import_request_encode(busid, req, sizeof(req));
	if (rc < 0)
		return fail(conn, UC_E_INVAL, "import request: %s", usbip_codec_strerror(rc));
	rc = conn_send(conn, req, (size_t)rc, "OP_REQ_IMPORT");
	if (rc < 0)
		return rc;

	int64_t deadline = uc_net_deadline(conn->io_timeout_ms);
	rc = read_op_common(conn, USBIP_OP_REP_IMPORT, deadline, &op, raw);
	if (rc < 0)
		return rc;
	if (op_status)
		*op_status = op.status;
	/* A refusal is the header alone. */
	if (op.status != USBIP_ST_OK)
		return fail(conn, UC_E_STATUS, "import of %s refused: status %u (%s)", busid,
			    op.status, usbip_op_status_name(op.status));
	rc = conn_read(conn, raw, sizeof(raw), deadline, "import device record");
	if (rc < 0)
		return rc;
	rc = usbip_device_record_decode(raw, sizeof(raw), &dev);
	if (rc != USBIP_OK)
		return fail_broken(conn, UC_E_PROTO, "import device record: %s",
				   usbip_codec_strerror(rc));
	/* Both are NUL-terminated within USBIP_BUSID_SIZE (checked above). */
	if (strcmp(dev.busid, busid) != 0)
		return fail_broken(conn, UC_E_PROTO, "import of %s answered for busid %s", busid,
				   dev.busid);
	conn->devid = usbip_devid(dev.busnum, dev.devnum);
	if (out)
		*out = dev;
	return 0;
}

/* ---- Outstanding requests ---------------------------------------------- */

static struct uc_pending *pending_find(struct uc_conn *c, uint32_t seqnum)
{
	for (size_t i = 0; i < c->npending; i++) {
		if (c->pending[i].seqnum == seqnum)
			return &c->pending[i];
	}
	return NULL;
}

static void pending_remove(struct uc_conn *c, struct uc_pending *p)
{
	*p = c->pending[--c->npending];
}

/* Makes room for one more entry before anything is sent, so that a request
 * that went out can always be recorded. */
static int pending_reserve(struct uc_conn *c, uint32_t seqnum)
{
	if (pending_find(c, seqnum))
		return fail(c, UC_E_SEQNUM, "seqnum %u already outstanding", seqnum);
	if (c->npending >= UC_MAX_OUTSTANDING)
		return fail(c, UC_E_TOO_MANY, "%u requests outstanding", UC_MAX_OUTSTANDING);
	if (c->npending < c->cap)
		return 0;
	size_t cap = c->cap ? c->cap * 2 : 16;
	struct uc_pending *p = realloc(c->pending, cap * sizeof(*p));
	if (!p)
		return fail(c, UC_E_NOMEM, "out of memory");
	c->pending = p;
	c->cap = cap;
	return 0;
}

/* ---- URBs -------------------------------------------------------------- */

static int urb_check(struct uc_conn *c, const struct uc_urb *u, uint32_t *iso_count)
{
	if (u->direction != USBIP_DIR_OUT && u->direction != USBIP_DIR_IN)
		return fail(c, UC_E_INVAL, "direction %u", u->direction);
	if (u->ep > 15)
		return fail(c, UC_E_INVAL, "endpoint %u", u->ep);
	if (u->buffer_length > USBIP_MAX_TRANSFER_LENGTH)
		return fail(c, UC_E_INVAL, "buffer length %u", u->buffer_length);
	if (u->direction == USBIP_DIR_OUT && u->buffer_length > 0 && !u->out_data)
		return fail(c, UC_E_INVAL, "OUT URB without data");
	*iso_count = usbip_iso_count(u->number_of_packets);
	if (*iso_count > USBIP_MAX_ISO_PACKETS)
		return fail(c, UC_E_INVAL, "%u iso packets", *iso_count);
	if (*iso_count > 0) {
		if (!u->iso)
			return fail(c, UC_E_INVAL, "iso URB without descriptors");
		int rc = usbip_iso_validate_submit(u->iso, *iso_count, u->buffer_length);
		if (rc != USBIP_OK)
			return fail(c, UC_E_INVAL, "iso descriptors: %s", usbip_codec_strerror(rc));
	}
	return 0;
}

int uc_submit(struct uc_conn *conn, const struct uc_urb *urb)
{
	struct usbip_header h;
	uint32_t iso_count = 0;
	int rc;

	if (!conn || !urb)
		return UC_E_INVAL;
	rc = usable(conn);
	if (rc < 0)
		return rc;
	rc = urb_check(conn, urb, &iso_count);
	if (rc < 0)
		return rc;
	rc = pending_reserve(conn, urb->seqnum);
	if (rc < 0)
		return rc;

	memset(&h, 0, sizeof(h));
	h.command = USBIP_CMD_SUBMIT;
	h.seqnum = urb->seqnum;
	h.devid = urb->devid;
	h.direction = urb->direction;
	h.ep = urb->ep;
	h.u.cmd_submit.transfer_flags = urb->transfer_flags;
	h.u.cmd_submit.transfer_buffer_length = urb->buffer_length;
	h.u.cmd_submit.start_frame = urb->start_frame;
	h.u.cmd_submit.number_of_packets = urb->number_of_packets;
	h.u.cmd_submit.interval = urb->interval;
	memcpy(h.u.cmd_submit.setup, urb->setup, USBIP_SETUP_SIZE);

	/* One buffer, one send: a reader never sees half a message from us
	 * unless the socket itself fails. */
	size_t data_len = urb->direction == USBIP_DIR_OUT ? urb->buffer_length : 0;
	size_t iso_len = (size_t)iso_count * USBIP_ISO_DESC_SIZE;
	size_t total = USBIP_HEADER_SIZE + data_len + iso_len;
	uint8_t *msg = malloc(total);
	if (!msg)
		return fail(conn, UC_E_NOMEM, "out of memory");
	rc = usbip_header_encode(&h, msg, USBIP_HEADER_SIZE);
	if (rc < 0) {
		rc = fail(conn, UC_E_INVAL, "CMD_SUBMIT header: %s", usbip_codec_strerror(rc));
		goto out_free;
	}
	if (data_len > 0)
		memcpy(msg + USBIP_HEADER_SIZE, urb->out_data, data_len);
	if (iso_count > 0) {
		rc = usbip_iso_descs_encode(urb->iso, iso_count, msg + USBIP_HEADER_SIZE + data_len,
					    iso_len);
		if (rc < 0) {
			rc = fail(conn, UC_E_INVAL, "iso descriptors: %s", usbip_codec_strerror(rc));
			goto out_free;
		}
	}
	rc = conn_send(conn, msg, total, "CMD_SUBMIT");
	if (rc < 0)
		goto out_free;
	conn->pending[conn->npending++] = (struct uc_pending){
		.seqnum = urb->seqnum,
		.command = USBIP_CMD_SUBMIT,
		.dir_in = urb->direction == USBIP_DIR_IN,
		.buffer_length = urb->buffer_length,
		.iso_count = iso_count,
	};
out_free:
	free(msg);
	return rc;
}

int uc_unlink(struct uc_conn *conn, uint32_t seqnum, uint32_t victim_seqnum)
{
	struct usbip_header h;
	uint8_t msg[USBIP_HEADER_SIZE];
	int rc;

	if (!conn)
		return UC_E_INVAL;
	rc = usable(conn);
	if (rc < 0)
		return rc;
	rc = pending_reserve(conn, seqnum);
	if (rc < 0)
		return rc;
	memset(&h, 0, sizeof(h));
	h.command = USBIP_CMD_UNLINK;
	h.seqnum = seqnum;
	h.devid = conn->devid;
	h.direction = USBIP_DIR_OUT;
	h.u.cmd_unlink.seqnum = victim_seqnum;
	rc = usbip_header_encode(&h, msg, sizeof(msg));
	if (rc < 0)
		return fail(conn, UC_E_INVAL, "CMD_UNLINK header: %s", usbip_codec_strerror(rc));
	rc = conn_send(conn, msg, sizeof(msg), "CMD_UNLINK");
	if (rc < 0)
		return rc;
	conn->pending[conn->npending++] = (struct uc_pending){
		.seqnum = seqnum,
		.command = USBIP_CMD_UNLINK,
		.victim = victim_seqnum,
	};
	return 0;
}

int uc_send_raw(struct uc_conn *conn, const void *bytes, size_t n)
{
	int rc;

	if (!conn || (!bytes && n > 0))
		return UC_E_INVAL;
	rc = usable(conn);
	if (rc < 0)
		return rc;
	return conn_send(conn, bytes, n, "raw bytes");
}

/* ---- Replies ----------------------------------------------------------- */

void uc_reply_free(struct uc_reply *reply)
{
	if (!reply)
		return;
	free(reply->data);
	free(reply->iso);
	memset(reply, 0, sizeof(*reply));
}

/* Reads the body of a RET_SUBMIT answering p, whose header is in out->hdr. */
static int recv_ret_submit_body(struct uc_conn *c, const struct uc_pending *p,
				int64_t deadline, struct uc_reply *out)
{
	const struct usbip_ret_submit *r = &out->hdr.u.ret_submit;
	uint32_t seq = out->seqnum;
	uint8_t *raw_iso = NULL;
	int rc;

	out->status = r->status;
	out->dir_in = p->dir_in;
	out->actual_length = r->actual_length;
	out->iso_count = usbip_iso_count(r->number_of_packets);

	/* vhci reads at most its buffer; we hold OUT to the same bound. */
	if (r->actual_length > p->buffer_length)
		return fail_broken(c, UC_E_PROTO,
				   "RET_SUBMIT seqnum %u: actual_length %u > buffer length %u",
				   seq, r->actual_length, p->buffer_length);
	if (out->iso_count != p->iso_count)
		return fail_broken(c, UC_E_PROTO,
				   "RET_SUBMIT seqnum %u: %u iso packets, URB had %u", seq,
				   out->iso_count, p->iso_count);

	/* IN data comes first: all of it, or for iso the packets back to back. */
	uint32_t in_len = p->dir_in ? r->actual_length : 0;
	if (in_len > 0) {
		out->data = malloc(in_len);
		if (!out->data)
			return fail_broken(c, UC_E_NOMEM, "RET_SUBMIT data: out of memory");
		rc = conn_read(c, out->data, in_len, deadline, "RET_SUBMIT data");
		if (rc < 0)
			return rc;
		out->data_len = in_len;
	}
	if (out->iso_count == 0)
		return 0;

	size_t iso_bytes = (size_t)out->iso_count * USBIP_ISO_DESC_SIZE;
	raw_iso = malloc(iso_bytes);
	out->iso = calloc(out->iso_count, sizeof(*out->iso));
	if (!raw_iso || !out->iso) {
		rc = fail_broken(c, UC_E_NOMEM, "RET_SUBMIT iso: out of memory");
		goto out_free;
	}
	rc = conn_read(c, raw_iso, iso_bytes, deadline, "RET_SUBMIT iso descriptors");
	if (rc < 0)
		goto out_free;
	rc = usbip_iso_descs_decode(raw_iso, iso_bytes, out->iso_count, out->iso);
	if (rc == USBIP_OK)
		rc = usbip_iso_validate_ret(out->iso, out->iso_count, p->buffer_length,
					    r->actual_length);
	if (rc != USBIP_OK) {
		rc = fail_broken(c, UC_E_PROTO, "RET_SUBMIT seqnum %u iso: %s", seq,
				 usbip_codec_strerror(rc));
		goto out_free;
	}
	if (p->dir_in && p->buffer_length > 0) {
		/* Put each packet back at its offset, as the URB's owner expects. */
		uint8_t *buf = calloc(1, p->buffer_length);
		if (!buf) {
			rc = fail_broken(c, UC_E_NOMEM, "RET_SUBMIT iso: out of memory");
			goto out_free;
		}
		if (out->data)
			usbip_iso_expand(out->data, out->iso, out->iso_count, buf);
		free(out->data);
		out->data = buf;
		out->data_len = p->buffer_length;
	}
	rc = 0;
out_free:
	free(raw_iso);
	return rc;
}

int uc_recv(struct uc_conn *conn, struct uc_reply *out, int timeout_ms)
{
	uint8_t raw[USBIP_HEADER_SIZE];
	struct uc_pending *p;
	int rc;

	if (!conn || !out)
		return UC_E_INVAL;
	memset(out, 0, sizeof(*out));
	rc = usable(conn);
	if (rc < 0)
		return rc;

	/* Waiting for a message to start leaves the stream in step. */
	rc = uc_net_wait_readable(conn->fd, uc_net_deadline(timeout_ms));
	if (rc == UC_E_TIMEOUT)
		return fail(conn, rc, "no reply within %d ms", timeout_ms);
	if (rc < 0)
		return fail(conn, rc, "waiting for a reply: %s", uc_strerror(rc));

	int64_t deadline = uc_net_deadline(conn->io_timeout_ms);
	rc = conn_read(conn, raw, sizeof(raw), deadline, "reply header");
	if (rc < 0)
		return rc;
	rc = usbip_header_decode(raw, sizeof(raw), &out->hdr);
	if (rc != USBIP_OK)
		return fail_broken(conn, UC_E_PROTO, "reply header: %s", usbip_codec_strerror(rc));
	out->command = out->hdr.command;
	out->seqnum = out->hdr.seqnum;

	switch (out->command) {
	case USBIP_RET_SUBMIT:
		p = pending_find(conn, out->seqnum);
		if (!p || p->command != USBIP_CMD_SUBMIT) {
			rc = fail_broken(conn, UC_E_PROTO, "RET_SUBMIT for %s seqnum %u",
					 p ? "unlink" : "unknown", out->seqnum);
			break;
		}
		rc = recv_ret_submit_body(conn, p, deadline, out);
		if (rc == 0)
			pending_remove(conn, p);
		break;
	case USBIP_RET_UNLINK:
		p = pending_find(conn, out->seqnum);
		if (!p || p->command != USBIP_CMD_UNLINK) {
			rc = fail_broken(conn, UC_E_PROTO, "RET_UNLINK for %s seqnum %u",
					 p ? "submit" : "unknown", out->seqnum);
			break;
		}
		out->status = out->hdr.u.ret_unlink.status;
		out->victim_seqnum = p->victim;
		pending_remove(conn, p);
		/* As in vhci, a RET_UNLINK gives back a URB still waiting. */
		struct uc_pending *victim = pending_find(conn, out->victim_seqnum);
		if (victim && victim->command == USBIP_CMD_SUBMIT) {
			out->victim_was_pending = true;
			pending_remove(conn, victim);
		}
		rc = 0;
		break;
	default:
		rc = fail_broken(conn, UC_E_PROTO, "server sent command %u, not a reply",
				 out->command);
		break;
	}
	if (rc < 0)
		uc_reply_free(out);
	return rc;
}
