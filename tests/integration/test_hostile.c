/* Hostile input against the real server and the sim backend, over raw
 * sockets.
 *
 * One table of malformed messages for every field of every USB/IP message
 * (OP_REQ_DEVLIST, OP_REQ_IMPORT, CMD_SUBMIT, CMD_UNLINK) and of the notify
 * hello (v1 and v2): bad values, lengths at, just past and far past each
 * limit, iso descriptor lies, every truncation, random bytes. Each case runs
 * on its own connection and must get the answer the table names (a reply
 * with a status, or the connection closed), with one clear log line naming
 * the peer; after each case a session on the other device still works, and
 * a fresh import of the device plus a control transfer succeeds. The count
 * of cases is printed. Slow senders are cut off at the documented deadline
 * (shortened here through the server's configuration).
 *
 * The server's log (stderr) is captured through a pipe to count its lines;
 * anything else written to stderr is passed through.
 *
 * External mode (the e2e scenario "hostile" runs it in the guest against our
 * server on libusb exporting gadget zero on dummy_hcd as 1-1):
 *   HOSTILE_SERVER=HOST:PORT    the server to attack instead of starting one
 *   HOSTILE_NOTIFY_PORT=PORT    its notify port (token TOKEN, --no-import-auth)
 *   HOSTILE_SERVER_LOG=FILE     its log (stderr at info level), read for the
 *                               one line per case
 * The table is the same; what only the in-process setup can do is skipped
 * and said so: the second device (the bystander session and the "held by
 * another client" import), the iso cases (gadget zero on dummy_hcd has no
 * interface 1 and dummy_hcd fails iso URBs), the sim's interrupt endpoint,
 * and the slow senders (their deadlines are shortened through the server's
 * configuration, which the command line does not expose); truncations are
 * sampled (cut_in_sample). A few answers
 * are the real device's, not the sim's (see dev_*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/sim.h"
#include "common/log.h"
#include "proto/bytes.h"
#include "server/server.h"
#include "usbip_client.h"

#define TIMEOUT_MS 3000
#define TOKEN "s3cret"
#define OP_TIMEOUT_MS 500    /* the server's op request deadline in this test */
#define HELLO_TIMEOUT_MS 500 /* the notify hello deadline in this test */
#define SESSION_EARLY_MAX 16 /* unlinks waiting for their submit (docs/engine.md) */
#define TRICKLE_MS 100       /* a slow sender's pace: several times slower than both */

/* External mode (see the top): where the server is; empty when in-process. */
static struct {
	bool on;
	char host[64], port[8];
	int notify_port;
	const char *log_path;
	size_t skipped, sampled_out;
} ext;

/* The device under test: the sim's "zero", or gadget zero on dummy_hcd,
 * whose bulk OUT endpoint is 2 (the sim's is 1), whose bulk IN endpoint
 * sends 512-byte packets (a shorter IN buffer would overflow) and whose
 * ep0 takes vendor request 0x5b writes up to 4 KiB (the sim's 256 bytes). */
static unsigned dev_bulk_out_ep = 1;
static uint32_t dev_bulk_in_len = 64;
static int32_t dev_vendor_out_300 = -LNX_EPIPE;
/* libusb on Linux refuses control transfers of more than 4096 data bytes
 * (MAX_CTRL_BUFFER_LENGTH, LIBUSB_ERROR_INVALID_PARAM), so the server fails
 * a 64 KiB - 1 control IN with -EINVAL there; the kernel's server passes it
 * on and the device answers its 18 bytes, as the sim does. */
static int32_t dev_ctrl_in_64k = 0;

static struct uc_conn *ext_left_open; /* a session case's, until it ends */

/* ---- The server's log ------------------------------------------------------ */

static struct {
	pthread_mutex_t lock;
	char *text;
	size_t len, cap;
	int rd, saved_stderr;
	pthread_t thread;
} logcap = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *log_reader(void *arg)
{
	(void)arg;
	char buf[4096];
	ssize_t r;
	while ((r = read(logcap.rd, buf, sizeof(buf))) > 0) {
		pthread_mutex_lock(&logcap.lock);
		if (logcap.len + (size_t)r + 1 > logcap.cap) {
			logcap.cap = (logcap.len + (size_t)r + 1) * 2;
			logcap.text = realloc(logcap.text, logcap.cap);
		}
		memcpy(logcap.text + logcap.len, buf, (size_t)r);
		logcap.len += (size_t)r;
		logcap.text[logcap.len] = 0;
		pthread_mutex_unlock(&logcap.lock);
		/* Not the server's: cmocka's messages and the sanitizers'. */
		if (strncmp(buf, "usbip-notify ", 13) != 0)
			(void)!write(logcap.saved_stderr, buf, (size_t)r);
	}
	return NULL;
}

static void log_capture_start(void)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	logcap.saved_stderr = dup(STDERR_FILENO);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	close(p[1]);
	logcap.rd = p[0];
	assert_int_equal(pthread_create(&logcap.thread, NULL, log_reader, NULL), 0);
}

static void log_capture_stop(void)
{
	dup2(logcap.saved_stderr, STDERR_FILENO); /* the pipe's last writer goes */
	pthread_join(logcap.thread, NULL);
	close(logcap.rd);
	close(logcap.saved_stderr);
	free(logcap.text);
	logcap.text = NULL;
	logcap.len = logcap.cap = 0;
}

/* External mode: the log file's whole text into logcap. */
static void log_refresh(void)
{
	if (!ext.on)
		return;
	FILE *fp = fopen(ext.log_path, "r");
	if (!fp)
		fail_msg("cannot read the server's log %s: %s", ext.log_path, strerror(errno));
	char buf[65536];
	size_t r;
	pthread_mutex_lock(&logcap.lock);
	logcap.len = 0;
	while ((r = fread(buf, 1, sizeof(buf), fp)) > 0) {
		if (logcap.len + r + 1 > logcap.cap) {
			logcap.cap = (logcap.len + r + 1) * 2;
			logcap.text = realloc(logcap.text, logcap.cap);
			assert_non_null(logcap.text);
		}
		memcpy(logcap.text + logcap.len, buf, r);
		logcap.len += r;
	}
	if (logcap.text)
		logcap.text[logcap.len] = 0;
	pthread_mutex_unlock(&logcap.lock);
	fclose(fp);
}

static size_t log_mark(void)
{
	log_refresh();
	pthread_mutex_lock(&logcap.lock);
	size_t n = logcap.len;
	pthread_mutex_unlock(&logcap.lock);
	return n;
}

/* Lines since mark naming peer: how many at warn or error level, how many in
 * all; the lines are copied into out. */
static void log_count(size_t mark, const char *peer, int *warn, int *all, char *out, size_t n)
{
	*warn = *all = 0;
	size_t used = 0;
	out[0] = 0;
	log_refresh();
	pthread_mutex_lock(&logcap.lock);
	const char *p = logcap.text ? logcap.text + mark : "";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[1100];
		snprintf(line, sizeof(line), "%.*s", (int)(len < 1099 ? len : 1099), p);
		char needle[80];
		snprintf(needle, sizeof(needle), "%s:", peer);
		if (strstr(line, needle) || (snprintf(needle, sizeof(needle), "%s ", peer),
					    strstr(line, needle))) {
			(*all)++;
			if (strncmp(line, "usbip-notify warn:", 18) == 0 ||
			    strncmp(line, "usbip-notify error:", 19) == 0)
				(*warn)++;
			int w = snprintf(out + used, n - used, "  %s\n", line);
			if (w > 0 && (size_t)w < n - used)
				used += (size_t)w;
		}
		p += len + (nl ? 1 : 0);
	}
	pthread_mutex_unlock(&logcap.lock);
}

/* ---- Fixture ----------------------------------------------------------------- */

struct fixture {
	struct backend *sim;
	struct server *srv;
	char port[8];
	int notify_port;
	uint32_t devid;           /* 1-1's, as its import reply gives it */
	struct uc_conn *bystander; /* 1-2, used after every case */
	uint32_t bystander_seq;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static struct uc_conn *import_when_free(struct fixture *f, const char *busid)
{
	for (int waited = 0; waited <= TIMEOUT_MS; waited += 10) {
		struct uc_conn *c = NULL;
		assert_int_equal(uc_connect(ext.on ? ext.host : "127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
		uint32_t st = 0;
		int rc = uc_import(c, busid, &st, NULL);
		if (rc == 0)
			return c;
		uc_close(c);
		if (st != USBIP_ST_DEV_BUSY)
			fail_msg("import of %s: %s (status %u)", busid, uc_strerror(rc), st);
		sleep_ms(10);
	}
	fail_msg("%s not importable within %d ms", busid, TIMEOUT_MS);
	return NULL;
}

static void setup_packet(uint8_t s[8], uint8_t type, uint8_t req, uint16_t value,
			 uint16_t index, uint16_t length)
{
	s[0] = type;
	s[1] = req;
	put_le16(s + 2, value);
	put_le16(s + 4, index);
	put_le16(s + 6, length);
}

/* GET_DESCRIPTOR(device) on c: the device answers its 18 bytes. */
static void control_works(struct uc_conn *c, uint32_t seq)
{
	struct uc_urb u = { .seqnum = seq, .devid = uc_devid(c), .direction = USBIP_DIR_IN,
			    .buffer_length = 18, .transfer_flags = USBIP_URB_DIR_IN };
	setup_packet(u.setup, 0x80, 6, 0x0100, 0, 18);
	int rc = uc_submit(c, &u);
	if (rc != 0)
		fail_msg("control submit: %s (%s)", uc_strerror(rc), uc_last_error(c));
	struct uc_reply r;
	rc = uc_recv(c, &r, TIMEOUT_MS);
	if (rc != 0)
		fail_msg("control reply: %s (%s)", uc_strerror(rc), uc_last_error(c));
	assert_int_equal(r.command, USBIP_RET_SUBMIT);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 18);
	assert_int_equal(r.data[1], 1); /* a device descriptor */
	assert_int_equal(get_le16(r.data + 8), 0x0525); /* gadget zero, real or sim */
	assert_int_equal(get_le16(r.data + 10), 0xa4a0);
	uc_reply_free(&r);
}

static int setup(void **state)
{
	if (ext.on) {
		if (ext_left_open) {
			uc_close(ext_left_open);
			ext_left_open = NULL;
		}
		struct fixture *f = calloc(1, sizeof(*f));
		assert_non_null(f);
		snprintf(f->port, sizeof(f->port), "%s", ext.port);
		f->notify_port = ext.notify_port;
		struct uc_conn *c = import_when_free(f, "1-1");
		f->devid = uc_devid(c);
		uc_close(c);
		*state = f; /* no bystander: one device */
		return 0;
	}
	log_capture_start();
	log_set_level(LOG_LEVEL_INFO);
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->sim = sim_backend_new("zero,zero");
	assert_non_null(f->sim);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = "0";
	cfg.op_timeout_ms = OP_TIMEOUT_MS;
	cfg.notify.enabled = true;
	cfg.notify.host = "127.0.0.1";
	cfg.notify.port = "0";
	cfg.notify.server_name = "hostile-test";
	cfg.notify.token = TOKEN;
	cfg.notify.hello_timeout_ms = HELLO_TIMEOUT_MS;
	cfg.import_auth = false; /* the token guards the notify channel only */
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	snprintf(f->port, sizeof(f->port), "%d", server_port(f->srv));
	f->notify_port = server_notify_port(f->srv);
	assert_true(f->notify_port > 0);

	struct uc_conn *c = import_when_free(f, "1-1");
	f->devid = uc_devid(c);
	uc_close(c);
	f->bystander = import_when_free(f, "1-2");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (ext.on) {
		free(f);
		free(logcap.text);
		logcap.text = NULL;
		logcap.len = logcap.cap = 0;
		return 0;
	}
	uc_close(f->bystander);
	server_free(f->srv);
	assert_int_equal(sim_pending_transfers(f->sim), 0);
	assert_int_equal(sim_claimed_interfaces(f->sim), 0);
	f->sim->ops->destroy(f->sim);
	free(f);
	log_capture_stop();
	return 0;
}

/* ---- Raw sockets ------------------------------------------------------------- */

static const char *cur_case = ""; /* for failure messages */

static int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ext.on)
		assert_int_equal(inet_pton(AF_INET, ext.host, &a.sin_addr), 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* "127.0.0.1:PORT" of our end, as the server's log names it. */
static void local_name(int fd, char *out, size_t n)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
	snprintf(out, n, "%s:%u", ip, ntohs(a.sin_port));
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail_msg("send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* Reads exactly n bytes; false on an end of stream first. Fails on a
 * timeout. */
static bool recv_exact(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, TIMEOUT_MS) != 1)
			fail_msg("%s: no answer within %d ms", cur_case, TIMEOUT_MS);
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET)
			return false;
		if (r < 0)
			fail_msg("recv: %s", strerror(errno));
		if (r == 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/* Reads until the peer closes; returns how many bytes came (up to cap
 * kept in buf). */
static size_t recv_until_eof(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, TIMEOUT_MS) != 1)
			fail_msg("%s: connection not closed within %d ms", cur_case, TIMEOUT_MS);
		uint8_t tmp[4096];
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return got;
		size_t k = got < cap ? cap - got : 0;
		memcpy(buf + got, tmp, (size_t)r < k ? (size_t)r : k);
		got += (size_t)r;
	}
}

/* ---- The table --------------------------------------------------------------- */

enum phase { PH_OP, PH_SESSION, PH_NOTIFY };

enum expect {
	EX_CLOSED,        /* closed with nothing sent */
	EX_OP_REPLY,      /* an op reply with op_code/status, then closed */
	EX_REPLY,         /* session: this reply, then the session goes on */
	EX_REPLIES_CLOSE, /* session: valid replies (maybe none), then closed */
	EX_NO_REPLY,      /* session: nothing owed yet, the session goes on */
	EX_NOTIFY_ERROR,  /* "error reason=WHY", then closed */
	EX_SUBSCRIBED,    /* notify: welcome and snapshot, and events keep coming */
};

enum log_expect {
	LOG_WARN,  /* exactly one warning naming the peer */
	LOG_INFO,  /* a routine goodbye only (info lines, no warning): a peer that
		    * just left is no admin's concern */
	LOG_QUIET, /* well-formed, refused with a status: no warning */
};

struct hcase {
	char name[96];
	enum phase phase;
	uint8_t *bytes;
	size_t len;
	bool shut;          /* close our sending side after the bytes */
	bool iso_alt;       /* session: select interface 1 alt 1 (iso) first */
	bool sim_only;      /* needs the sim's second device or its interrupt endpoint */
	bool alt_optional;  /* iso_alt, but cut before the device is reached */
	bool cut_sampled_out; /* a truncation not in the external mode's sample */
	enum expect expect;
	uint16_t op_code;   /* EX_OP_REPLY */
	uint32_t status;    /* EX_OP_REPLY; EX_REPLY: as int32 */
	uint32_t command;   /* EX_REPLY */
	uint32_t seqnum;    /* EX_REPLY */
	bool reply_in;      /* EX_REPLY: a RET_SUBMIT carrying IN data */
	const char *reason; /* EX_NOTIFY_ERROR */
	enum log_expect log;
	const char *log_has; /* a word the log line must have, or NULL */
};

struct table {
	struct hcase *c;
	size_t n, cap;
};

static struct hcase *add(struct table *t, enum phase ph, const void *bytes, size_t len,
			 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Against a real device every case costs two sessions, each ending in a
 * device reset (about 0.35 s on dummy_hcd in the TCG guest), so external
 * mode cuts each message at a sample of its bytes instead of all of them:
 * the first four, every 16th, and the last. In-process, all of them. */
static bool cut_in_sample(size_t k, size_t whole)
{
	return k < 4 || k % 16 == 0 || k + 1 == whole;
}

static struct hcase *add(struct table *t, enum phase ph, const void *bytes, size_t len,
			 const char *fmt, ...)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 256;
		t->c = realloc(t->c, t->cap * sizeof(*t->c));
		assert_non_null(t->c);
	}
	struct hcase *c = &t->c[t->n++];
	memset(c, 0, sizeof(*c));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->name, sizeof(c->name), fmt, ap);
	va_end(ap);
	c->phase = ph;
	c->bytes = malloc(len ? len : 1);
	assert_non_null(c->bytes);
	if (len)
		memcpy(c->bytes, bytes, len);
	c->len = len;
	c->log = LOG_WARN;
	return c;
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->c[i].bytes);
	free(t->c);
}

/* A deterministic generator for the random cases. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* ---- Operation requests ---- */

static void op_header(uint8_t *p, uint16_t version, uint16_t code, uint32_t status)
{
	put_be16(p, version);
	put_be16(p + 2, code);
	put_be32(p + 4, status);
}

static void import_req(uint8_t p[USBIP_IMPORT_REQUEST_SIZE], const char *busid)
{
	memset(p, 0, USBIP_IMPORT_REQUEST_SIZE);
	op_header(p, USBIP_VERSION, USBIP_OP_REQ_IMPORT, 0);
	memcpy(p + 8, busid, strlen(busid));
}

static void add_op_cases(struct table *t)
{
	uint8_t p[256];
	struct hcase *c;

	/* Versions and codes. */
	static const uint16_t versions[] = { 0x0000, 0x0106, 0x0110, 0x0112, 0x1101, 0x0211,
					     0xffff };
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		op_header(p, versions[i], USBIP_OP_REQ_DEVLIST, 0);
		c = add(t, PH_OP, p, 8, "devlist version 0x%04x", versions[i]);
		c->expect = EX_CLOSED;
		import_req(p, "1-1");
		put_be16(p, versions[i]);
		c = add(t, PH_OP, p, 40, "import version 0x%04x", versions[i]);
		c->expect = EX_CLOSED;
	}
	static const uint16_t codes[] = { 0x0000, 0x0003, 0x0005, 0x8000, 0x8002, 0x8004,
					  0x8006, 0x0080, 0x0580, 0xffff };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		op_header(p, USBIP_VERSION, codes[i], 0);
		c = add(t, PH_OP, p, 8, "op code 0x%04x", codes[i]);
		c->expect = EX_CLOSED;
	}
	/* The status field of a request means nothing; whatever it holds,
	 * the request is served. */
	op_header(p, USBIP_VERSION, USBIP_OP_REQ_DEVLIST, 0xffffffffu);
	c = add(t, PH_OP, p, 8, "devlist with status 0xffffffff");
	c->expect = EX_OP_REPLY;
	c->op_code = USBIP_OP_REP_DEVLIST;
	c->log = LOG_QUIET;

	/* Every truncation. */
	op_header(p, USBIP_VERSION, USBIP_OP_REQ_DEVLIST, 0);
	for (size_t k = 0; k < 8; k++) {
		c = add(t, PH_OP, p, k, "devlist cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, 8);
		c->shut = true;
		c->expect = EX_CLOSED;
		c->log_has = "cut short";
	}
	import_req(p, "1-1");
	for (size_t k = 0; k < USBIP_IMPORT_REQUEST_SIZE; k++) {
		c = add(t, PH_OP, p, k, "import cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, USBIP_IMPORT_REQUEST_SIZE);
		c->shut = true;
		c->log_has = "cut short";
		if (k < 8) {
			c->expect = EX_CLOSED;
		} else {
			c->expect = EX_OP_REPLY;
			c->op_code = USBIP_OP_REP_IMPORT;
			c->status = USBIP_ST_NA;
		}
	}

	/* Bus ids. */
	static const struct {
		const char *name, *busid;
		uint32_t status;
	} busids[] = {
		{ "empty", "", USBIP_ST_NA },
		{ "unknown", "1-9", USBIP_ST_NODEV },
		{ "held by another client", "1-2", USBIP_ST_DEV_BUSY },
		{ "prefix of a real one", "1-", USBIP_ST_NA },
		{ "with a newline", "1-1\n", USBIP_ST_NA },
		{ "with a space", "1-1 ", USBIP_ST_NA },
		{ "path", "../1-1", USBIP_ST_NA },
		{ "control bytes", "\x01\x02\x03", USBIP_ST_NA },
		{ "high bytes", "\xff\xfe-1", USBIP_ST_NA },
		{ "leading zero", "01-1", USBIP_ST_NA },
		{ "bus 0", "0-1", USBIP_ST_NA },
		{ "8 ports deep", "1-1.1.1.1.1.1.1.1", USBIP_ST_NA },
		{ "31 bytes", "1-1.1.1.1.1.1.1.1.1.1.1.1.1.1.1", USBIP_ST_NA },
		{ "7 ports deep, unknown", "1-1.1.1.1.1.1.1", USBIP_ST_NODEV },
		{ "longest form, unknown", "65535-255.255.255.255.255.25", USBIP_ST_NODEV },
	};
	for (size_t i = 0; i < sizeof(busids) / sizeof(busids[0]); i++) {
		import_req(p, busids[i].busid);
		c = add(t, PH_OP, p, 40, "import busid %s", busids[i].name);
		c->expect = EX_OP_REPLY;
		c->op_code = USBIP_OP_REP_IMPORT;
		c->status = busids[i].status;
		c->log = busids[i].status == USBIP_ST_NA ? LOG_WARN : LOG_QUIET;
		c->sim_only = busids[i].status == USBIP_ST_DEV_BUSY; /* 1-2, the bystander */
	}
	import_req(p, "");
	memset(p + 8, 'A', 32);
	c = add(t, PH_OP, p, 40, "import busid without its NUL");
	c->expect = EX_OP_REPLY;
	c->op_code = USBIP_OP_REP_IMPORT;
	c->status = USBIP_ST_NA;
	import_req(p, "1-9");
	memset(p + 12, 'x', 28);
	c = add(t, PH_OP, p, 40, "import busid with bytes after its NUL");
	c->expect = EX_OP_REPLY;
	c->op_code = USBIP_OP_REP_IMPORT;
	c->status = USBIP_ST_NODEV;
	c->log = LOG_QUIET;

	/* Random bytes (never a valid version: the first byte is not 0x01). */
	uint32_t seed = 0x1badb002;
	for (int i = 0; i < 16; i++) {
		size_t n = 1 + rnd(&seed) % 200;
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)rnd(&seed);
		if (p[0] == 0x01)
			p[0] = 0x81;
		c = add(t, PH_OP, p, n, "op random %zu bytes #%d", n, i);
		c->expect = EX_CLOSED;
		c->shut = n < 8;
	}
}

/* ---- URB commands ---- */

struct hdr {
	uint32_t command, seqnum, devid, direction, ep;
	uint32_t flags, length, start, npackets, interval;
	uint8_t setup[8];
};

static size_t put_hdr(uint8_t *p, const struct hdr *h)
{
	memset(p, 0, USBIP_HEADER_SIZE);
	put_be32(p + 0, h->command);
	put_be32(p + 4, h->seqnum);
	put_be32(p + 8, h->devid);
	put_be32(p + 12, h->direction);
	put_be32(p + 16, h->ep);
	put_be32(p + 20, h->flags);
	put_be32(p + 24, h->length);
	put_be32(p + 28, h->start);
	put_be32(p + 32, h->npackets);
	put_be32(p + 36, h->interval);
	memcpy(p + 40, h->setup, 8);
	return USBIP_HEADER_SIZE;
}

static struct hdr bulk_in(uint32_t devid)
{
	return (struct hdr){ .command = USBIP_CMD_SUBMIT, .seqnum = 7, .devid = devid,
			     .direction = USBIP_DIR_IN, .ep = 1, .flags = USBIP_URB_DIR_IN,
			     .length = dev_bulk_in_len };
}

static struct hdr unlink_hdr(uint32_t devid, uint32_t victim)
{
	return (struct hdr){ .command = USBIP_CMD_UNLINK, .seqnum = 7, .devid = devid,
			     .flags = victim };
}

static struct hcase *add_reply(struct table *t, const uint8_t *p, size_t n, int32_t status,
			       bool in, const char *name)
{
	struct hcase *c = add(t, PH_SESSION, p, n, "%s", name);
	c->expect = EX_REPLY;
	c->command = USBIP_RET_SUBMIT;
	c->seqnum = get_be32(p + 4);
	c->status = (uint32_t)status;
	c->reply_in = in;
	c->log = LOG_QUIET;
	return c;
}

static struct hcase *add_closed(struct table *t, const uint8_t *p, size_t n, const char *fmt,
				...) __attribute__((format(printf, 4, 5)));

static struct hcase *add_closed(struct table *t, const uint8_t *p, size_t n, const char *fmt,
				...)
{
	char name[96];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	struct hcase *c = add(t, PH_SESSION, p, n, "%s", name);
	c->expect = EX_CLOSED;
	return c;
}

/* An iso submit on 0x04 (OUT) or 0x84 (IN): count descriptors as given,
 * OUT data of length bytes. */
static size_t iso_msg(uint8_t *p, uint32_t devid, uint32_t dir, uint32_t length,
		      uint32_t npackets, const struct usbip_iso_desc *d, uint32_t nd)
{
	struct hdr h = { .command = USBIP_CMD_SUBMIT, .seqnum = 9, .devid = devid,
			 .direction = dir, .ep = 4, .flags = USBIP_URB_ISO_ASAP |
			 (dir ? USBIP_URB_DIR_IN : 0), .length = length, .npackets = npackets,
			 .interval = 1 };
	size_t n = put_hdr(p, &h);
	if (dir == USBIP_DIR_OUT) {
		memset(p + n, 0x5a, length);
		n += length;
	}
	for (uint32_t i = 0; i < nd; i++) {
		put_be32(p + n, d[i].offset);
		put_be32(p + n + 4, d[i].length);
		put_be32(p + n + 8, d[i].actual_length);
		put_be32(p + n + 12, (uint32_t)d[i].status);
		n += USBIP_ISO_DESC_SIZE;
	}
	return n;
}

static void add_session_cases(struct table *t, uint32_t devid)
{
	static uint8_t p[USBIP_HEADER_SIZE + 1024 * USBIP_ISO_DESC_SIZE + 8192];
	struct hdr h;
	struct hcase *c;

	/* command */
	static const uint32_t commands[] = { 0, USBIP_RET_SUBMIT, USBIP_RET_UNLINK, 5,
					     0x01000000u, 0xffffffffu };
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		h = bulk_in(devid);
		h.command = commands[i];
		c = add_closed(t, p, put_hdr(p, &h), "command %u", commands[i]);
		c->log_has = commands[i] == 0 || commands[i] > 4 ? "malformed" : "unexpected";
	}
	/* devid, for both commands */
	static const uint32_t devid_xor[] = { 1, 0x10000, 0xffffffffu };
	for (size_t i = 0; i < 3; i++) {
		h = bulk_in(devid ^ devid_xor[i]);
		add_closed(t, p, put_hdr(p, &h), "submit devid 0x%08x", devid ^ devid_xor[i]);
		h = unlink_hdr(devid ^ devid_xor[i], 3);
		add_closed(t, p, put_hdr(p, &h), "unlink devid 0x%08x", devid ^ devid_xor[i]);
	}
	h = bulk_in(0);
	add_closed(t, p, put_hdr(p, &h), "submit devid 0");
	/* direction */
	static const uint32_t dirs[] = { 2, 0x01000000u, 0x80000000u, 0xffffffffu };
	for (size_t i = 0; i < 4; i++) {
		h = bulk_in(devid);
		h.direction = dirs[i];
		add_closed(t, p, put_hdr(p, &h), "submit direction 0x%x", dirs[i]);
		h = unlink_hdr(devid, 3);
		h.direction = dirs[i];
		add_closed(t, p, put_hdr(p, &h), "unlink direction 0x%x", dirs[i]);
	}
	/* endpoint: out of range closes; in range but absent fails the URB */
	static const uint32_t eps[] = { 16, 0x81, 0x100, 0xffffffffu };
	for (size_t i = 0; i < 4; i++) {
		h = bulk_in(devid);
		h.ep = eps[i];
		add_closed(t, p, put_hdr(p, &h), "submit endpoint 0x%x", eps[i]);
		h = unlink_hdr(devid, 3);
		h.ep = eps[i];
		add_closed(t, p, put_hdr(p, &h), "unlink endpoint 0x%x", eps[i]);
	}
	for (uint32_t ep = 6; ep < 16; ep += 3) {
		h = bulk_in(devid);
		h.ep = ep;
		char name[64];
		snprintf(name, sizeof(name), "bulk IN on absent endpoint %u", ep);
		add_reply(t, p, put_hdr(p, &h), -LNX_EPIPE, true, name);
	}
	h = bulk_in(devid);
	h.ep = 4; /* iso, but interface 1 is at alt 0: no such endpoint now */
	add_reply(t, p, put_hdr(p, &h), -LNX_EPIPE, true, "IN on an endpoint of another alt");
	h = bulk_in(devid);
	h.ep = 3;
	h.direction = USBIP_DIR_OUT;
	h.flags = 0;
	h.length = 0;
	c = add_reply(t, p, put_hdr(p, &h), 0, false, "interrupt OUT of 0 bytes");
	c->sim_only = true;

	/* Fields with no wrong value: any seqnum, any transfer_flags (the
	 * server keeps only what the kernel's does), any start_frame and
	 * interval, a DIR_IN flag that contradicts the direction. */
	static const uint32_t seqs[] = { 0, 0x7fffffffu, 0x80000000u, 0xffffffffu };
	for (size_t i = 0; i < 4; i++) {
		h = bulk_in(devid);
		h.seqnum = seqs[i];
		char name[64];
		snprintf(name, sizeof(name), "bulk IN seqnum 0x%x", seqs[i]);
		add_reply(t, p, put_hdr(p, &h), 0, true, name);
	}
	h = bulk_in(devid);
	h.flags = 0xffffffffu;
	add_reply(t, p, put_hdr(p, &h), 0, true, "bulk IN transfer_flags 0xffffffff");
	h = bulk_in(devid);
	h.flags = 0; /* no DIR_IN */
	add_reply(t, p, put_hdr(p, &h), 0, true, "bulk IN without the DIR_IN flag");
	h = bulk_in(devid);
	h.direction = USBIP_DIR_OUT; /* DIR_IN flag kept */
	h.ep = dev_bulk_out_ep;
	h.length = 8;
	size_t n = put_hdr(p, &h);
	memset(p + n, 7, 8);
	add_reply(t, p, n + 8, 0, false, "bulk OUT with the DIR_IN flag");
	h = bulk_in(devid);
	h.start = 0xffffffffu;
	h.interval = 0x80000000u;
	add_reply(t, p, put_hdr(p, &h), 0, true, "bulk IN start_frame -1 interval INT_MIN");
	h = bulk_in(devid);
	memset(h.setup, 0xee, 8);
	add_reply(t, p, put_hdr(p, &h), 0, true, "bulk IN with a setup packet");

	/* transfer_buffer_length: at, just past and far past the limit */
	h = bulk_in(devid);
	h.length = USBIP_MAX_TRANSFER_LENGTH;
	add_reply(t, p, put_hdr(p, &h), 0, true, "bulk IN of the maximum length");
	static const uint32_t lens[] = { USBIP_MAX_TRANSFER_LENGTH + 1,
					 USBIP_MAX_TRANSFER_LENGTH * 2, 0x7fffffffu, 0x80000000u,
					 0xfffffff0u, 0xffffffffu };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		h = bulk_in(devid);
		h.length = lens[i];
		add_closed(t, p, put_hdr(p, &h), "bulk IN length 0x%x", lens[i]);
		h.direction = USBIP_DIR_OUT;
		h.flags = 0;
		add_closed(t, p, put_hdr(p, &h), "bulk OUT length 0x%x", lens[i]);
	}
	/* A length that is less than the data that follows: the rest is read
	 * as the next header (garbage here) and closes the session after the
	 * first URB is answered. */
	h = bulk_in(devid);
	h.direction = USBIP_DIR_OUT;
	h.flags = 0;
	h.length = 8;
	n = put_hdr(p, &h);
	memset(p + n, 0xee, 56);
	c = add(t, PH_SESSION, p, n + 56, "OUT data longer than its length");
	c->expect = EX_REPLIES_CLOSE;
	c->log_has = "malformed";

	/* Control: the setup packet's wLength against the buffer. */
	h = bulk_in(devid);
	h.ep = 0;
	h.length = 18;
	setup_packet(h.setup, 0x80, 6, 0x0100, 0, 64);
	add_reply(t, p, put_hdr(p, &h), -LNX_EINVAL, true, "control IN wLength > buffer");
	h.length = 0xffff;
	setup_packet(h.setup, 0x80, 6, 0x0100, 0, 0xffff);
	add_reply(t, p, put_hdr(p, &h), dev_ctrl_in_64k, true, "control IN of 64 KiB - 1");
	h.length = 0x10000;
	add_reply(t, p, put_hdr(p, &h), -LNX_EINVAL, true, "control IN buffer past wLength");
	h.length = 0;
	setup_packet(h.setup, 0x80, 6, 0x0100, 0, 0);
	add_reply(t, p, put_hdr(p, &h), 0, true, "control IN of 0 bytes");
	h.length = 8;
	setup_packet(h.setup, 0x00, 0x5b, 0, 0, 300);
	h.direction = USBIP_DIR_OUT;
	h.flags = 0;
	n = put_hdr(p, &h);
	memset(p + n, 1, 8);
	add_reply(t, p, n + 8, -LNX_EINVAL, false, "control OUT wLength > buffer");
	h.length = 300;
	setup_packet(h.setup, 0x40, 0x5b, 0, 0, 300);
	n = put_hdr(p, &h);
	memset(p + n, 1, 300);
	add_reply(t, p, n + 300, dev_vendor_out_300, false, "vendor OUT of 300 bytes (0x5b)");
	memset(h.setup, 0xff, 6);
	h.setup[6] = h.setup[7] = 0; /* wLength 0: it goes to the device */
	h.length = 0;
	add_reply(t, p, put_hdr(p, &h), -LNX_EPIPE, false, "control setup all 0xff");
	setup_packet(h.setup, 0x80, 6, 0x0100, 0, 8); /* IN request on an OUT URB */
	h.length = 8;
	n = put_hdr(p, &h);
	memset(p + n, 1, 8);
	add_reply(t, p, n + 8, -LNX_EINVAL, false, "control setup IN on an OUT URB");

	/* number_of_packets on a non-iso endpoint and past the limit */
	h = bulk_in(devid);
	h.npackets = 1;
	n = put_hdr(p, &h);
	memset(p + n, 0, USBIP_ISO_DESC_SIZE);
	put_be32(p + n + 4, 64);
	add_reply(t, p, n + 16, -LNX_EINVAL, true, "bulk IN with one iso packet");
	static const uint32_t npk[] = { USBIP_MAX_ISO_PACKETS + 1, 0x10000, 0x7fffffffu,
					0xfffffffeu };
	for (size_t i = 0; i < sizeof(npk) / sizeof(npk[0]); i++) {
		h = bulk_in(devid);
		h.ep = 4;
		h.npackets = npk[i];
		add_closed(t, p, put_hdr(p, &h), "iso IN with %u packets", npk[i]);
	}

	/* iso descriptor lies (interface 1 at alt 1 first) */
	static struct usbip_iso_desc d[USBIP_MAX_ISO_PACKETS];
	memset(d, 0, sizeof(d));
	struct {
		const char *name;
		uint32_t dir, length, count;
		struct usbip_iso_desc d[3];
		int32_t status;
	} iso[] = {
		{ "iso OUT, packets in order", 0, 96, 3, { { 0, 32, 0, 0 }, { 32, 32, 0, 0 },
							   { 64, 32, 0, 0 } }, 0 },
		{ "iso OUT, packets out of order", 0, 96, 3, { { 64, 32, 0, 0 }, { 0, 32, 0, 0 },
							       { 32, 32, 0, 0 } }, 0 },
		{ "iso OUT, packets overlap", 0, 96, 3, { { 0, 32, 0, 0 }, { 0, 32, 0, 0 },
							  { 0, 32, 0, 0 } }, 0 },
		{ "iso OUT, actual_length and status filled in", 0, 96, 3,
		  { { 0, 32, 999, -5 }, { 32, 32, 0xffffffffu, 7 }, { 64, 32, 1, 1 } }, 0 },
		{ "iso OUT, offset past the buffer", 0, 96, 3, { { 0, 32, 0, 0 }, { 97, 0, 0, 0 },
								 { 64, 32, 0, 0 } }, -LNX_EINVAL },
		{ "iso OUT, packet ends past the buffer", 0, 96, 3,
		  { { 0, 32, 0, 0 }, { 32, 32, 0, 0 }, { 65, 32, 0, 0 } }, -LNX_EINVAL },
		{ "iso OUT, offset + length wraps 32 bits", 0, 96, 3,
		  { { 0, 32, 0, 0 }, { 0xffffffe0u, 0x40, 0, 0 }, { 64, 32, 0, 0 } }, -LNX_EINVAL },
		{ "iso OUT, one packet longer than the buffer", 0, 96, 1, { { 0, 97, 0, 0 } },
		  -LNX_EINVAL },
		{ "iso OUT, lengths sum past the buffer", 0, 96, 3,
		  { { 0, 96, 0, 0 }, { 0, 96, 0, 0 }, { 0, 96, 0, 0 } }, -LNX_EINVAL },
		{ "iso IN, packets in order", 1, 3072, 3,
		  { { 0, 1024, 0, 0 }, { 1024, 1024, 0, 0 }, { 2048, 1024, 0, 0 } }, 0 },
		{ "iso IN, offset past the buffer", 1, 3072, 3,
		  { { 0, 1024, 0, 0 }, { 1024, 1024, 0, 0 }, { 3073, 0, 0, 0 } }, -LNX_EINVAL },
		{ "iso IN, lengths sum past the buffer", 1, 1024, 3,
		  { { 0, 1024, 0, 0 }, { 0, 1024, 0, 0 }, { 0, 1024, 0, 0 } }, -LNX_EINVAL },
		{ "iso IN, length 0xffffffff", 1, 1024, 1, { { 0, 0xffffffffu, 0, 0 } },
		  -LNX_EINVAL },
	};
	for (size_t i = 0; i < sizeof(iso) / sizeof(iso[0]); i++) {
		n = iso_msg(p, devid, iso[i].dir, iso[i].length, iso[i].count, iso[i].d,
			    iso[i].count);
		c = add_reply(t, p, n, iso[i].status, iso[i].dir == 1, iso[i].name);
		c->iso_alt = true;
		if (iso[i].status != 0)
			c->log = LOG_WARN; /* the descriptors are malformed, not just refused */
	}
	/* 1024 packets (the limit) of 8 bytes, both ways */
	for (uint32_t i = 0; i < USBIP_MAX_ISO_PACKETS; i++)
		d[i] = (struct usbip_iso_desc){ .offset = i * 8, .length = 8 };
	n = iso_msg(p, devid, USBIP_DIR_OUT, 8192, USBIP_MAX_ISO_PACKETS, d, USBIP_MAX_ISO_PACKETS);
	c = add_reply(t, p, n, 0, false, "iso OUT of 1024 packets");
	c->iso_alt = true;
	n = iso_msg(p, devid, USBIP_DIR_IN, 8192, USBIP_MAX_ISO_PACKETS, d, USBIP_MAX_ISO_PACKETS);
	c = add_reply(t, p, n, 0, true, "iso IN of 1024 packets");
	c->iso_alt = true;
	/* no packets at all on an iso endpoint */
	n = iso_msg(p, devid, USBIP_DIR_IN, 1024, 0, d, 0);
	c = add_reply(t, p, n, -LNX_EINVAL, true, "iso IN with 0 packets");
	c->iso_alt = true;
	/* A count that lies: fewer descriptors than it says (the stream ends),
	 * more than it says (the rest reads as a bad header). */
	d[0] = (struct usbip_iso_desc){ 0, 32, 0, 0 };
	d[1] = (struct usbip_iso_desc){ 32, 32, 0, 0 };
	n = iso_msg(p, devid, USBIP_DIR_OUT, 64, 3, d, 2);
	c = add(t, PH_SESSION, p, n, "iso count 3, 2 descriptors sent");
	c->iso_alt = true;
	c->shut = true;
	c->expect = EX_REPLIES_CLOSE;
	c->log = LOG_INFO;
	c->log_has = "mid-message";
	n = iso_msg(p, devid, USBIP_DIR_OUT, 64, 1, d, 2);
	memset(p + n, 0xee, USBIP_HEADER_SIZE - USBIP_ISO_DESC_SIZE);
	n += USBIP_HEADER_SIZE - USBIP_ISO_DESC_SIZE;
	c = add(t, PH_SESSION, p, n, "iso count 1, 2 descriptors sent");
	c->iso_alt = true;
	c->expect = EX_REPLIES_CLOSE;
	c->log_has = "malformed";

	/* CMD_UNLINK of seqnums never submitted. A victim numbered after the
	 * unlink (or the unlink itself) never existed: status 0 at once. One
	 * numbered before it may be a submit the unlink overtook (vhci does
	 * that): it waits for that submit, at most 16 of them per session, the
	 * oldest answered with status 0 when a 17th comes. */
	static const uint32_t never[] = { 7, 8, 0x7fffffffu, 0x80000007u };
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		h = unlink_hdr(devid, never[i]);
		c = add(t, PH_SESSION, p, put_hdr(p, &h), "unlink of never-submitted seqnum %u",
			never[i]);
		c->expect = EX_REPLY;
		c->command = USBIP_RET_UNLINK;
		c->seqnum = 7;
		c->log = LOG_QUIET;
	}
	static const uint32_t early[] = { 0, 1, 6, 0xffffffffu };
	for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
		h = unlink_hdr(devid, early[i]);
		c = add(t, PH_SESSION, p, put_hdr(p, &h), "unlink ahead of submit %u", early[i]);
		c->expect = EX_NO_REPLY;
		c->log = LOG_QUIET;
	}
	n = 0;
	for (uint32_t i = 0; i <= SESSION_EARLY_MAX; i++) {
		h = unlink_hdr(devid, 50 + i);
		h.seqnum = 100 + i;
		n += put_hdr(p + n, &h);
	}
	c = add(t, PH_SESSION, p, n, "17 unlinks ahead of their submits");
	c->expect = EX_REPLY;
	c->command = USBIP_RET_UNLINK;
	c->seqnum = 100;
	c->log_has = "too many unlinks";
	h = unlink_hdr(devid, 8);
	n = put_hdr(p, &h);
	memset(p + 24, 0xff, 24); /* the padding */
	c = add(t, PH_SESSION, p, n, "unlink with garbage padding");
	c->expect = EX_REPLY;
	c->command = USBIP_RET_UNLINK;
	c->seqnum = 7;
	c->log = LOG_QUIET;

	/* Every truncation: a control OUT with data, an iso OUT with
	 * descriptors, an unlink. */
	h = bulk_in(devid);
	h.ep = 0;
	h.direction = USBIP_DIR_OUT;
	h.flags = 0;
	h.length = 8;
	setup_packet(h.setup, 0x40, 0x5b, 0, 0, 8);
	n = put_hdr(p, &h);
	memset(p + n, 3, 8);
	n += 8;
	for (size_t k = 1; k < n; k++) {
		c = add(t, PH_SESSION, p, k, "control OUT cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, n);
		c->shut = true;
		c->expect = EX_CLOSED;
		c->log = LOG_INFO;
		c->log_has = "mid-message";
	}
	d[0] = (struct usbip_iso_desc){ 0, 8, 0, 0 };
	d[1] = (struct usbip_iso_desc){ 8, 8, 0, 0 };
	n = iso_msg(p, devid, USBIP_DIR_OUT, 16, 2, d, 2);
	for (size_t k = 1; k < n; k++) {
		c = add(t, PH_SESSION, p, k, "iso OUT cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, n);
		c->iso_alt = true;
		c->alt_optional = true;
		c->shut = true;
		c->expect = EX_CLOSED;
		c->log = LOG_INFO;
		c->log_has = "mid-message";
	}
	h = unlink_hdr(devid, 3);
	n = put_hdr(p, &h);
	for (size_t k = 1; k < n; k++) {
		c = add(t, PH_SESSION, p, k, "unlink cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, n);
		c->shut = true;
		c->expect = EX_CLOSED;
		c->log = LOG_INFO;
		c->log_has = "mid-message";
	}

	/* Random bytes, at least a header's worth (an unknown command: the
	 * first byte is not 0). */
	uint32_t seed = 0xdeadbeef;
	for (int i = 0; i < 16; i++) {
		n = USBIP_HEADER_SIZE + rnd(&seed) % 400;
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)rnd(&seed);
		p[0] |= 0x80;
		add_closed(t, p, n, "session random %zu bytes #%d", n, i);
	}
}

/* ---- Notify ---- */

static struct hcase *add_line(struct table *t, const char *text, enum expect ex,
			      const char *reason, const char *name)
{
	struct hcase *c = add(t, PH_NOTIFY, text, strlen(text), "notify %s", name);
	c->expect = ex;
	c->reason = reason;
	return c;
}

static void add_notify_cases(struct table *t)
{
	static char big[70000];
	struct hcase *c;

	/* The first byte picks the dialect: any other closes at once. */
	static const char *firsts[] = { "x", "\n", "H", "c", "ping\n",
					"welcome version=2 heartbeat=5 server=x\n",
					"GET / HTTP/1.0\r\n\r\n", "\x16\x03\x01\x02\x00" };
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		c = add_line(t, firsts[i], EX_CLOSED, NULL, "bad first byte");
		snprintf(c->name, sizeof(c->name), "notify first byte 0x%02x",
			 (uint8_t)firsts[i][0]);
		c->log = LOG_INFO;
		c->log_has = "not a notify hello";
	}
	c = add(t, PH_NOTIFY, "\0hello", 6, "notify first byte 0x00");
	c->expect = EX_CLOSED;
	c->log = LOG_INFO;
	c->log_has = "not a notify hello";

	/* v1: a wrong hello, every truncation of the right one; the right
	 * one is refused since this server has a token. */
	c = add_line(t, "Client hellx", EX_CLOSED, NULL, "v1 wrong hello");
	c->log = LOG_INFO;
	c->log_has = "not a notify hello";
	c = add_line(t, "Client hello", EX_CLOSED, NULL, "v1 hello, token required");
	c->log_has = "token";
	for (size_t k = 1; k < 12; k++) {
		c = add(t, PH_NOTIFY, "Client hello", k, "notify v1 hello cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, 12);
		c->shut = true;
		c->expect = EX_CLOSED;
		c->log = LOG_INFO;
		c->log_has = "disconnected";
	}

	/* v2 hello fields */
	static const struct {
		const char *name, *line, *reason;
	} hellos[] = {
		{ "version 3", "hello version=3 token=" TOKEN "\n", "version" },
		{ "version 0", "hello version=0 token=" TOKEN "\n", "version" },
		{ "version huge", "hello version=99999999999999999999 token=" TOKEN "\n",
		  "hello" },
		{ "version negative", "hello version=-2 token=" TOKEN "\n", "hello" },
		{ "version 2x", "hello version=2x token=" TOKEN "\n", "hello" },
		{ "version empty", "hello version= token=" TOKEN "\n", "hello" },
		{ "no version", "hello token=" TOKEN "\n", "hello" },
		{ "version twice", "hello version=2 version=2 token=" TOKEN "\n", "hello" },
		{ "no token", "hello version=2\n", "auth" },
		{ "wrong token", "hello version=2 token=s3creT\n", "auth" },
		{ "token prefix", "hello version=2 token=s3cre\n", "auth" },
		{ "token longer", "hello version=2 token=" TOKEN "x\n", "auth" },
		{ "token twice", "hello version=2 token=" TOKEN " token=" TOKEN "\n", "hello" },
		{ "token with %00", "hello version=2 token=s3%00cret\n", "hello" },
		{ "token with %0A", "hello version=2 token=s3%0Acret\n", "hello" },
		{ "token with bad escape", "hello version=2 token=s3%zzcret\n", "hello" },
		{ "token with cut escape", "hello version=2 token=s3cret%4\n", "hello" },
		{ "two spaces", "hello  version=2 token=" TOKEN "\n", "hello" },
		{ "trailing space", "hello version=2 token=" TOKEN " \n", "hello" },
		{ "field without =", "hello version=2 token=" TOKEN " x\n", "hello" },
		{ "empty key", "hello version=2 token=" TOKEN " =x\n", "hello" },
		{ "control byte", "hello version=2\x01 token=" TOKEN "\n", "hello" },
		{ "NUL in line", "hello version=2\0 token=" TOKEN "\n", "hello" },
		{ "first line plugged", "hplugged busid=1-1\n", "hello" },
		{ "empty line", "h\n", "hello" },
	};
	for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++) {
		size_t n = strlen(hellos[i].line);
		if (strcmp(hellos[i].name, "NUL in line") == 0)
			n = sizeof("hello version=2\0 token=" TOKEN "\n") - 1;
		c = add(t, PH_NOTIFY, hellos[i].line, n, "notify hello %s", hellos[i].name);
		c->expect = EX_NOTIFY_ERROR;
		c->reason = hellos[i].reason;
	}
	/* A 127-byte token is the longest there is (wrong here); 128 is too
	 * long. */
	for (size_t len = 127; len <= 128; len++) {
		int k = snprintf(big, sizeof(big), "hello version=2 token=");
		memset(big + k, 't', len);
		big[k + (int)len] = '\n';
		big[k + (int)len + 1] = 0;
		c = add_line(t, big, EX_NOTIFY_ERROR, len == 127 ? "auth" : "hello", "token");
		snprintf(c->name, sizeof(c->name), "notify hello token of %zu bytes", len);
	}
	/* Line lengths: 1024 bytes with its \n is the longest; past it. */
	static const size_t line_lens[] = { 1024, 1025, 4096, 65536 };
	for (size_t i = 0; i < 4; i++) {
		int k = snprintf(big, sizeof(big), "hello version=2 token=" TOKEN " x=");
		memset(big + k, 'y', line_lens[i] - (size_t)k - 1);
		big[line_lens[i] - 1] = '\n';
		big[line_lens[i]] = 0;
		c = add_line(t, big, line_lens[i] == 1024 ? EX_SUBSCRIBED : EX_NOTIFY_ERROR,
			     "hello", "line");
		snprintf(c->name, sizeof(c->name), "notify hello line of %zu bytes",
			 line_lens[i]);
		if (line_lens[i] == 1024) {
			c->log = LOG_QUIET; /* unknown fields are ignored */
		}
	}
	/* Every truncation of a good hello, closed by the client. */
	const char *good = "hello version=2 token=" TOKEN "\n";
	for (size_t k = 1; k < strlen(good); k++) {
		c = add(t, PH_NOTIFY, good, k, "notify v2 hello cut at byte %zu", k);
		c->cut_sampled_out = !cut_in_sample(k, strlen(good));
		c->shut = true;
		c->expect = EX_CLOSED;
		c->log = LOG_INFO;
		c->log_has = "disconnected";
	}
	/* After a good hello, the server hears nothing but pings: garbage is
	 * skipped and the subscription goes on. */
	static const char *after[] = {
		"garbage\n",
		"error reason=auth\n",
		"hello version=2 token=" TOKEN "\n",
		"hello version=3\n",
		"\x01\x02\x03\xff\n",
		"\n\n\n\n",
		"plugged busid=1-9 vid=0525 pid=a4a0 speed=high held=0\n",
	};
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		snprintf(big, sizeof(big), "%s%s", good, after[i]);
		c = add_line(t, big, EX_SUBSCRIBED, NULL, "after hello");
		snprintf(c->name, sizeof(c->name), "notify after hello #%zu", i);
		c->log = LOG_QUIET;
	}
	int k = snprintf(big, sizeof(big), "%s", good);
	memset(big + k, 'z', 60000);
	big[k + 60000] = '\n';
	big[k + 60001] = 0;
	c = add_line(t, big, EX_SUBSCRIBED, NULL, "after hello: a 60000-byte line");
	c->log = LOG_QUIET;

	/* Random bytes after the v2 dialect byte. */
	uint32_t seed = 0xc0ffee;
	for (int i = 0; i < 8; i++) {
		size_t n = 2 + rnd(&seed) % 300;
		big[0] = 'h';
		for (size_t j = 1; j < n; j++) {
			big[j] = (char)rnd(&seed);
			if (big[j] == '\n')
				big[j] = ' ';
		}
		big[n - 1] = '\n';
		c = add(t, PH_NOTIFY, big, n, "notify v2 random %zu bytes #%d", n, i);
		c->expect = EX_NOTIFY_ERROR;
		c->reason = "hello";
	}
}

/* ---- Running one case ---------------------------------------------------- */

/* One RET_SUBMIT or RET_UNLINK off fd, raw; false on an end of stream. */
static bool read_reply(int fd, bool in, uint8_t hdr[USBIP_HEADER_SIZE])
{
	if (!recv_exact(fd, hdr, USBIP_HEADER_SIZE))
		return false;
	uint32_t cmd = get_be32(hdr);
	if (cmd == USBIP_RET_UNLINK)
		return true;
	if (cmd != USBIP_RET_SUBMIT)
		fail_msg("reply with command %u", cmd);
	size_t actual = get_be32(hdr + 24);
	size_t payload = (in ? actual : 0) + usbip_iso_count(get_be32(hdr + 32)) * 16u;
	while (payload > 0) {
		static uint8_t sink[65536];
		size_t k = payload < sizeof(sink) ? payload : sizeof(sink);
		if (!recv_exact(fd, sink, k))
			fail_msg("reply cut short");
		payload -= k;
	}
	return true;
}

static void set_iso_alt(struct uc_conn *c)
{
	struct uc_urb u = { .seqnum = 1, .devid = uc_devid(c), .direction = USBIP_DIR_OUT };
	setup_packet(u.setup, 0x01, 11, 1, 1, 0); /* SET_INTERFACE(1, alt 1) */
	assert_int_equal(uc_submit(c, &u), 0);
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
}

static void run_op(struct fixture *f, const struct hcase *c, char *peer, size_t peer_n)
{
	int fd = raw_connect(atoi(f->port));
	local_name(fd, peer, peer_n);
	send_all(fd, c->bytes, c->len);
	if (c->shut)
		shutdown(fd, SHUT_WR);
	static uint8_t buf[65536];
	size_t got = recv_until_eof(fd, buf, sizeof(buf));
	close(fd);
	if (c->expect == EX_CLOSED) {
		if (got != 0)
			fail_msg("%s: %zu bytes came back, expected none", c->name, got);
		return;
	}
	if (got < USBIP_OP_COMMON_SIZE)
		fail_msg("%s: no op reply (%zu bytes)", c->name, got);
	assert_int_equal(get_be16(buf), USBIP_VERSION);
	if (get_be16(buf + 2) != c->op_code || get_be32(buf + 4) != c->status)
		fail_msg("%s: op reply 0x%04x status %u, expected 0x%04x status %u", c->name,
			 get_be16(buf + 2), get_be32(buf + 4), c->op_code, c->status);
}

static void run_session(struct fixture *f, const struct hcase *c, char *peer, size_t peer_n)
{
	struct uc_conn *uc = import_when_free(f, "1-1");
	ext_left_open = uc; /* a failed case must not hold the device for the next test */
	int fd = uc_fd(uc);
	local_name(fd, peer, peer_n);
	if (c->iso_alt && !(ext.on && c->alt_optional))
		set_iso_alt(uc);
	send_all(fd, c->bytes, c->len);
	if (c->shut)
		shutdown(fd, SHUT_WR);
	bool in = c->len >= 16 && get_be32(c->bytes + 12) == USBIP_DIR_IN;
	uint8_t hdr[USBIP_HEADER_SIZE];
	switch (c->expect) {
	case EX_CLOSED: {
		uint8_t b[64];
		size_t got = recv_until_eof(fd, b, sizeof(b));
		if (got != 0)
			fail_msg("%s: %zu bytes came back, expected none", c->name, got);
		break;
	}
	case EX_REPLY: {
		if (!read_reply(fd, c->reply_in, hdr))
			fail_msg("%s: closed instead of answering", c->name);
		int32_t st = (int32_t)get_be32(hdr + 20);
		if (get_be32(hdr) != c->command || get_be32(hdr + 4) != c->seqnum ||
		    st != (int32_t)c->status)
			fail_msg("%s: reply %u seqnum %u status %d, expected %u seqnum %u status %d",
				 c->name, get_be32(hdr), get_be32(hdr + 4), st, c->command,
				 c->seqnum, (int32_t)c->status);
		/* The session goes on. */
		control_works(uc, 1000);
		break;
	}
	case EX_NO_REPLY:
		control_works(uc, 1000); /* its reply is the first to come */
		break;
	case EX_REPLIES_CLOSE:
		while (read_reply(fd, in, hdr))
			if (get_be32(hdr + 4) != 9 && get_be32(hdr + 4) != 7)
				fail_msg("%s: reply for seqnum %u", c->name, get_be32(hdr + 4));
		break;
	default:
		fail_msg("%s: bad expectation", c->name);
	}
	uc_close(uc);
	ext_left_open = NULL;
}

static bool read_line(int fd, char *line, size_t n)
{
	size_t len = 0;
	while (len + 1 < n) {
		char ch;
		if (!recv_exact(fd, (uint8_t *)&ch, 1))
			return false;
		if (ch == '\n')
			break;
		line[len++] = ch;
	}
	line[len] = 0;
	return true;
}

static void run_notify(struct fixture *f, const struct hcase *c, char *peer, size_t peer_n)
{
	int fd = raw_connect(f->notify_port);
	local_name(fd, peer, peer_n);
	send_all(fd, c->bytes, c->len);
	if (c->shut)
		shutdown(fd, SHUT_WR);
	char buf[2048];
	if (c->expect == EX_CLOSED || c->expect == EX_NOTIFY_ERROR) {
		size_t got = recv_until_eof(fd, (uint8_t *)buf, sizeof(buf) - 1);
		buf[got < sizeof(buf) ? got : sizeof(buf) - 1] = 0;
		close(fd);
		char want[64] = "";
		if (c->expect == EX_NOTIFY_ERROR)
			snprintf(want, sizeof(want), "error reason=%s\n", c->reason);
		if (strcmp(buf, want) != 0)
			fail_msg("%s: got \"%s\", expected \"%s\"", c->name, buf, want);
		return;
	}
	/* Subscribed: welcome, two devices, the end of the snapshot; then an
	 * import of 1-1 must be told. */
	char line[1100];
	assert_true(read_line(fd, line, sizeof(line)));
	if (strncmp(line, "welcome version=2 ", 18) != 0)
		fail_msg("%s: first line \"%s\"", c->name, line);
	do {
		if (!read_line(fd, line, sizeof(line)))
			fail_msg("%s: closed during the snapshot", c->name);
	} while (strncmp(line, "snapshot-end", 12) != 0);
	assert_string_equal(line, ext.on ? "snapshot-end count=1" : "snapshot-end count=2");
	struct uc_conn *uc = import_when_free(f, "1-1");
	do {
		if (!read_line(fd, line, sizeof(line)))
			fail_msg("%s: closed instead of telling the import", c->name);
	} while (strncmp(line, "held busid=1-1 ", 15) != 0 || !strstr(line, " held=1"));
	uc_close(uc);
	close(fd);
}

/* The device is free and works, the other session too; the log has the
 * case's one line. */
static void check_after(struct fixture *f, const struct hcase *c, size_t mark, const char *peer)
{
	struct uc_conn *uc = import_when_free(f, "1-1");
	control_works(uc, 1);
	uc_close(uc);

	if (!f->bystander)
		goto log; /* external mode: the fresh import is the other client */
	struct uc_urb u = { .seqnum = ++f->bystander_seq, .devid = uc_devid(f->bystander),
			    .direction = USBIP_DIR_IN, .ep = 1, .buffer_length = 8,
			    .transfer_flags = USBIP_URB_DIR_IN };
	assert_int_equal(uc_submit(f->bystander, &u), 0);
	struct uc_reply r;
	if (uc_recv(f->bystander, &r, TIMEOUT_MS) != 0)
		fail_msg("%s: the other session broke (%s)", c->name, uc_last_error(f->bystander));
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);

log:;
	/* Wait for the case's line (the server logs it as it closes, which
	 * may be just after the client saw the close). */
	int warn = 0, all = 0;
	char lines[4096];
	for (int waited = 0; waited < TIMEOUT_MS; waited += 5) {
		log_count(mark, peer, &warn, &all, lines, sizeof(lines));
		bool has = !c->log_has || strstr(lines, c->log_has);
		if (c->log == LOG_QUIET || (c->log == LOG_WARN && warn >= 1 && has) ||
		    (c->log == LOG_INFO && all >= 1 && has))
			break;
		sleep_ms(5);
	}
	bool ok;
	switch (c->log) {
	case LOG_WARN:
		ok = warn == 1 && (!c->log_has || strstr(lines, c->log_has));
		break;
	case LOG_INFO:
		ok = warn == 0 && all >= 1 && (!c->log_has || strstr(lines, c->log_has));
		break;
	default:
		ok = warn == 0;
		break;
	}
	if (!ok)
		fail_msg("%s: expected %s%s%s, the log has %d warnings:\n%s", c->name,
			 c->log == LOG_WARN ? "one warning" : c->log == LOG_INFO ? "an info line"
											     : "no warning",
			 c->log_has ? " with " : "", c->log_has ? c->log_has : "", warn, lines);
}

static void run_table(struct fixture *f, const struct table *t, const char *what)
{
	size_t count[3] = { 0 };
	for (size_t i = 0; i < t->n; i++) {
		const struct hcase *c = &t->c[i];
		if (ext.on && c->cut_sampled_out) {
			ext.sampled_out++;
			continue;
		}
		if (ext.on && ((c->iso_alt && !c->alt_optional) || c->sim_only)) {
			printf("hostile: skipped against a real gadget: %s (%s)\n", c->name,
			       c->iso_alt ? "no iso on gadget zero/dummy_hcd" : "the sim's device");
			ext.skipped++;
			continue;
		}
		char peer[64];
		size_t mark = log_mark();
		cur_case = c->name;
		if (c->phase == PH_OP)
			run_op(f, c, peer, sizeof(peer));
		else if (c->phase == PH_SESSION)
			run_session(f, c, peer, sizeof(peer));
		else
			run_notify(f, c, peer, sizeof(peer));
		check_after(f, c, mark, peer);
		count[c->phase]++;
	}
	printf("hostile %s: %zu malformed cases tried (%zu operation, %zu session, %zu notify), "
	       "each answered or closed alone\n",
	       what, count[PH_OP] + count[PH_SESSION] + count[PH_NOTIFY], count[PH_OP],
	       count[PH_SESSION], count[PH_NOTIFY]);
}

static void test_op_requests(void **state)
{
	struct fixture *f = *state;
	struct table t = { 0 };
	add_op_cases(&t);
	run_table(f, &t, "operation requests");
	table_free(&t);
}

static void test_urb_commands(void **state)
{
	struct fixture *f = *state;
	struct table t = { 0 };
	add_session_cases(&t, f->devid);
	run_table(f, &t, "URB commands");
	table_free(&t);
}

static void test_notify_hello(void **state)
{
	struct fixture *f = *state;
	struct table t = { 0 };
	add_notify_cases(&t);
	run_table(f, &t, "notify");
	table_free(&t);
}

/* ---- Slow senders ---------------------------------------------------------- */

/* Sends bytes one at a time, TRICKLE_MS apart, until the server closes.
 * Returns how many went out before it did. */
static size_t trickle(int fd, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, TRICKLE_MS) == 1) {
			uint8_t b[64];
			ssize_t r = recv(fd, b, sizeof(b), 0);
			if (r <= 0)
				return i;
		}
		if (send(fd, p + i, 1, MSG_NOSIGNAL) != 1)
			return i;
	}
	return n;
}

/* A byte every TRICKLE_MS: each recv comes in time, the whole request
 * does not, and the server gives up at its deadline with one line; the
 * notify hub does the same with its hello. */
static void test_slow_loris(void **state)
{
	struct fixture *f = *state;
	if (ext.on) {
		printf("hostile slow senders: skipped against an external server (their "
		       "deadlines are shortened through the in-process configuration)\n");
		return;
	}
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	import_req(req, "1-1");
	static const struct hcase op = { .name = "slow import", .log = LOG_WARN,
					 .log_has = "not complete in time" };
	char peer[64];
	size_t mark = log_mark();
	int fd = raw_connect(atoi(f->port));
	local_name(fd, peer, sizeof(peer));
	size_t sent = trickle(fd, req, sizeof(req));
	close(fd);
	/* Cut off at the deadline: long before the last byte (OP_TIMEOUT_MS
	 * is a fraction of sizeof(req) * TRICKLE_MS). */
	if (sent >= sizeof(req))
		fail_msg("the server waited for all %zu slow bytes", sent);
	check_after(f, &op, mark, peer);

	static const struct hcase v1 = { .name = "slow v1 hello", .log = LOG_INFO,
					 .log_has = "no hello in time" };
	static const struct hcase v2 = { .name = "slow v2 hello", .log = LOG_INFO,
					 .log_has = "no hello in time" };
	const struct hcase *cases[] = { &v1, &v2 };
	const char *hellos[] = { "Client hello", "hello version=2 token=" TOKEN "\n" };
	for (int i = 0; i < 2; i++) {
		mark = log_mark();
		fd = raw_connect(f->notify_port);
		local_name(fd, peer, sizeof(peer));
		sent = trickle(fd, (const uint8_t *)hellos[i], strlen(hellos[i]));
		close(fd);
		if (sent >= strlen(hellos[i])) {
			int warn, all;
			char lines[4096];
			log_count(mark, peer, &warn, &all, lines, sizeof(lines));
			fail_msg("%s: the hub waited for all %zu slow bytes; log:\n%s",
				 cases[i]->name, sent, lines);
		}
		check_after(f, cases[i], mark, peer);
	}
	/* A crowd of silent connections, more than the server serves at once:
	 * the extra ones are closed at once, the rest at the deadline, and then
	 * the device is importable again. */
	enum { CROWD = 80 };
	int crowd[CROWD];
	for (int i = 0; i < CROWD; i++)
		crowd[i] = raw_connect(atoi(f->port));
	for (int i = 0; i < CROWD; i++) {
		uint8_t b[8];
		cur_case = "silent crowd";
		assert_int_equal(recv_until_eof(crowd[i], b, sizeof(b)), 0);
		close(crowd[i]);
	}
	static const struct hcase crowd_case = { .name = "silent crowd", .log = LOG_QUIET };
	check_after(f, &crowd_case, log_mark(), "none");
	printf("hostile slow senders: 3 cut off at their deadline, a crowd of %d silent "
	       "connections closed\n", CROWD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_op_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_urb_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_loris, setup, teardown),
	};
	if (getenv("HOSTILE_ONLY")) /* e.g. HOSTILE_ONLY=test_slow_loris */
		cmocka_set_test_filter(getenv("HOSTILE_ONLY"));
	const char *srv = getenv("HOSTILE_SERVER");
	if (srv && *srv) {
		const char *colon = strrchr(srv, ':');
		const char *np = getenv("HOSTILE_NOTIFY_PORT");
		ext.log_path = getenv("HOSTILE_SERVER_LOG");
		if (!colon || (size_t)(colon - srv) >= sizeof(ext.host) || strlen(colon + 1) >= 8 ||
		    !np || !ext.log_path) {
			fprintf(stderr, "HOSTILE_SERVER=IPV4:PORT needs HOSTILE_NOTIFY_PORT and "
					"HOSTILE_SERVER_LOG\n");
			return 2;
		}
		ext.on = true;
		snprintf(ext.host, sizeof(ext.host), "%.*s", (int)(colon - srv), srv);
		snprintf(ext.port, sizeof(ext.port), "%s", colon + 1);
		ext.notify_port = atoi(np);
		/* gadget zero on dummy_hcd (see dev_* above), unless HOSTILE_DEVICE=sim
		 * (an external server with --sim zero: how this mode is tested) */
		const char *dev = getenv("HOSTILE_DEVICE");
		if (!dev || strcmp(dev, "sim") != 0) {
			dev_bulk_out_ep = 2;
			dev_bulk_in_len = 512;
			dev_vendor_out_300 = 0;
			dev_ctrl_in_64k = -LNX_EINVAL;
		}
		setvbuf(stdout, NULL, _IOLBF, 0);
	}
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (ext.on)
		printf("hostile: %zu cases skipped against the external server, %zu truncations "
		       "left out of the sample\n", ext.skipped, ext.sampled_out);
	return rc;
}
