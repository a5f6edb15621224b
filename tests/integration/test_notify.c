/* Integration tests for the notify channel: the real server and hub, the
 * simulated backend, and raw TCP subscribers over loopback.
 *
 * Every test gets a fresh sim backend with two gadget-zero devices (1-1,
 * serial SIM0001, and 1-2, SIM0002) and a server whose USB/IP and notify
 * ports are picked free on 127.0.0.1. Subscribers are left connected at
 * teardown on purpose: stopping the server must close and free them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/sim.h"
#include "server/export_filter.h"
#include "server/server.h"
#include "usbip_client.h"

#define TIMEOUT_MS 3000
#define SERVER_NAME "test-server"

#define ZERO_FIELDS(busid, n, held)                                                     \
	"busid=" busid " vid=0525 pid=a4a0 speed=high held=" held " serial=SIM000" n      \
	" manufacturer=usbip-notify product=Simulated%20Gadget%20Zero\n"

struct fixture {
	struct backend *sim;
	struct server *srv;
	struct export_filter filter;
	char port[8];
	int notify_port;
};

struct options {
	unsigned heartbeat_s;
	size_t queue_bytes;
	int sndbuf;
	unsigned hello_timeout_ms;
	const char *token;
	const char *deny;
};

static int start_fixture(void **state, const struct options *o)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->sim = sim_backend_new("zero,zero");
	assert_non_null(f->sim);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = "0";
	cfg.notify.enabled = true;
	cfg.notify.host = "127.0.0.1";
	cfg.notify.port = "0";
	cfg.notify.server_name = SERVER_NAME;
	if (o->heartbeat_s)
		cfg.notify.heartbeat_s = o->heartbeat_s;
	if (o->queue_bytes)
		cfg.notify.queue_bytes = o->queue_bytes;
	if (o->sndbuf)
		cfg.notify.sndbuf = o->sndbuf;
	if (o->hello_timeout_ms)
		cfg.notify.hello_timeout_ms = o->hello_timeout_ms;
	cfg.notify.token = o->token;
	export_filter_init(&f->filter, false);
	if (o->deny)
		assert_int_equal(export_filter_add(&f->filter, false, o->deny), EXPORT_RULE_OK);
	cfg.filter = export_filter_offers;
	cfg.filter_ctx = &f->filter;
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	snprintf(f->port, sizeof(f->port), "%d", server_port(f->srv));
	f->notify_port = server_notify_port(f->srv);
	assert_true(f->notify_port > 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	struct options o = { 0 };
	return start_fixture(state, &o);
}

static int setup_slow(void **state)
{
	struct options o = { .queue_bytes = 8192, .sndbuf = 4096 };
	return start_fixture(state, &o);
}

static int setup_heartbeat(void **state)
{
	struct options o = { .heartbeat_s = 1 };
	return start_fixture(state, &o);
}

static int setup_token(void **state)
{
	struct options o = { .token = "s3cret word" };
	return start_fixture(state, &o);
}

static int setup_hello_timeout(void **state)
{
	struct options o = { .hello_timeout_ms = 500 };
	return start_fixture(state, &o);
}

static int setup_deny(void **state)
{
	struct options o = { .deny = "0525:a4a0:SIM0002" };
	return start_fixture(state, &o);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	server_free(f->srv);
	assert_int_equal(sim_pending_transfers(f->sim), 0);
	assert_int_equal(sim_claimed_interfaces(f->sim), 0);
	f->sim->ops->destroy(f->sim);
	free(f);
	return 0;
}

/* ---- A raw subscriber ------------------------------------------------------ */

struct sub {
	int fd;
	char buf[16384];
	size_t len;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* rcvbuf > 0 shrinks the receive buffer before connecting (a slow peer). */
static struct sub *sub_connect(struct fixture *f, int rcvbuf)
{
	struct sub *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	if (rcvbuf > 0)
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->notify_port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

static void sub_send(struct sub *s, const char *text)
{
	size_t n = strlen(text);
	assert_int_equal(send(s->fd, text, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void sub_close(struct sub *s)
{
	close(s->fd);
	free(s);
}

/* Reads more bytes within the deadline: >0 got some, 0 end of stream (or
 * reset), -1 timed out. */
static int sub_fill(struct sub *s, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (s->len == sizeof(s->buf))
			fail_msg("subscriber buffer full");
		ssize_t r = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
		if (r > 0) {
			s->len += (size_t)r;
			return 1;
		}
		if (r == 0 || errno == ECONNRESET)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			fail_msg("recv: %s", strerror(errno));
	}
}

/* One line, '\n' included, into out; false on end of stream or timeout. */
static bool sub_line(struct sub *s, char *out, size_t n, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		char *nl = memchr(s->buf, '\n', s->len);
		if (nl) {
			size_t k = (size_t)(nl - s->buf) + 1;
			assert_true(k < n);
			memcpy(out, s->buf, k);
			out[k] = '\0';
			memmove(s->buf, s->buf + k, s->len - k);
			s->len -= k;
			return true;
		}
		if (sub_fill(s, deadline) <= 0)
			return false;
	}
}

static void expect_line(struct sub *s, const char *want)
{
	char line[1100];
	if (!sub_line(s, line, sizeof(line), TIMEOUT_MS))
		fail_msg("want \"%s\": nothing came", want);
	if (strcmp(line, want) != 0)
		fail_msg("want \"%s\", got \"%s\"", want, line);
}

/* The next line that is not a ping. */
static void expect_event(struct sub *s, const char *want)
{
	char line[1100];
	for (;;) {
		if (!sub_line(s, line, sizeof(line), TIMEOUT_MS))
			fail_msg("want \"%s\": nothing came", want);
		if (strcmp(line, "ping\n") != 0)
			break;
	}
	if (strcmp(line, want) != 0)
		fail_msg("want \"%s\", got \"%s\"", want, line);
}

/* Exactly n bytes, compared byte for byte: a v1 reader sees no framing. */
static void expect_bytes(struct sub *s, const char *want)
{
	size_t n = strlen(want);
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (s->len < n)
		if (sub_fill(s, deadline) <= 0)
			fail_msg("want \"%s\": got only %zu bytes", want, s->len);
	assert_memory_equal(s->buf, want, n);
	memmove(s->buf, s->buf + n, s->len - n);
	s->len -= n;
}

/* The server closes: end of stream, with nothing but pings (if allowed)
 * before it. */
static void expect_closed(struct sub *s, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int r = sub_fill(s, deadline);
		if (r == 0)
			break;
		if (r < 0)
			fail_msg("the server did not close (%zu bytes pending)", s->len);
	}
}

static void nothing_pending(struct sub *s, int ms)
{
	int r = sub_fill(s, now_ms() + ms);
	if (r >= 0)
		fail_msg("unexpected: %s (%.*s)", r ? "data" : "close", (int)s->len, s->buf);
}

static struct sub *subscribe_v2(struct fixture *f, const char *hello)
{
	struct sub *s = sub_connect(f, 0);
	sub_send(s, hello);
	expect_line(s, "welcome version=2 heartbeat=5 server=" SERVER_NAME "\n");
	return s;
}

static struct sub *subscribe_v2_snapshot(struct fixture *f)
{
	struct sub *s = subscribe_v2(f, "hello version=2\n");
	expect_line(s, "device " ZERO_FIELDS("1-1", "1", "0"));
	expect_line(s, "device " ZERO_FIELDS("1-2", "2", "0"));
	expect_line(s, "snapshot-end count=2\n");
	return s;
}

static struct uc_conn *import_dev(struct fixture *f, const char *busid)
{
	struct uc_conn *c = NULL;
	assert_int_equal(uc_connect("127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
	uint32_t st = 99;
	int rc = uc_import(c, busid, &st, NULL);
	if (rc != 0)
		fail_msg("import %s: %s (status %u)", busid, uc_strerror(rc), st);
	return c;
}

static void bulk_in(struct uc_conn *c, uint32_t seq)
{
	struct uc_urb u = {
		.seqnum = seq,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_IN,
		.ep = 1,
		.buffer_length = 512,
		.transfer_flags = USBIP_URB_DIR_IN,
	};
	struct uc_reply r;
	assert_int_equal(uc_submit(c, &u), 0);
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, seq);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 512);
	uc_reply_free(&r);
}

/* ---- v1 -------------------------------------------------------------------- */

static void test_v1_byte_for_byte(void **state)
{
	struct fixture *f = *state;
	struct sub *s = sub_connect(f, 0);

	/* The hello may come in pieces. */
	sub_send(s, "Client");
	sleep_ms(50);
	sub_send(s, " hello");
	expect_bytes(s, "1-1;PLUGGED;\n1-2;PLUGGED;\n");

	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	expect_bytes(s, "1-1;UNPLUGGED;\n");
	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	expect_bytes(s, "1-1;PLUGGED;\n");

	/* Claims are not v1 events. */
	struct uc_conn *c = import_dev(f, "1-2");
	uc_close(c);
	nothing_pending(s, 300);
	sub_close(s);
}

/* ---- v2 -------------------------------------------------------------------- */

static void test_v2_session(void **state)
{
	struct fixture *f = *state;
	struct sub *s = subscribe_v2_snapshot(f);

	struct uc_conn *c = import_dev(f, "1-1");
	expect_event(s, "held " ZERO_FIELDS("1-1", "1", "1"));
	bulk_in(c, 1);
	uc_close(c);
	expect_event(s, "held " ZERO_FIELDS("1-1", "1", "0"));

	assert_int_equal(sim_unplug(f->sim, "1-2"), 0);
	expect_event(s, "unplugged busid=1-2\n");
	assert_int_equal(sim_plug(f->sim, "1-2"), 0);
	expect_event(s, "plugged " ZERO_FIELDS("1-2", "2", "0"));

	/* A late subscriber's snapshot shows what is held now. */
	c = import_dev(f, "1-2");
	expect_event(s, "held " ZERO_FIELDS("1-2", "2", "1"));
	struct sub *late = subscribe_v2(f, "hello version=2 future=ignored\n");
	expect_line(late, "device " ZERO_FIELDS("1-1", "1", "0"));
	expect_line(late, "device " ZERO_FIELDS("1-2", "2", "1"));
	expect_line(late, "snapshot-end count=2\n");
	uc_close(c);
	expect_event(s, "held " ZERO_FIELDS("1-2", "2", "0"));
	expect_event(late, "held " ZERO_FIELDS("1-2", "2", "0"));
	sub_close(late);
	sub_close(s);
}

/* A device that leaves and comes back quickly, many times: always
 * unplugged then plugged, never lost, never doubled, to every subscriber,
 * including one that subscribes in the middle of it. */
static void test_replug_order(void **state)
{
	struct fixture *f = *state;
	struct sub *a = subscribe_v2_snapshot(f);
	struct sub *b = sub_connect(f, 0);
	sub_send(b, "Client hello");
	expect_bytes(b, "1-1;PLUGGED;\n1-2;PLUGGED;\n");

	enum { ROUNDS = 40 };
	struct sub *mid = NULL;
	for (int i = 0; i < ROUNDS; i++) {
		assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
		assert_int_equal(sim_plug(f->sim, "1-1"), 0);
		if (i == ROUNDS / 2) {
			mid = sub_connect(f, 0);
			sub_send(mid, "hello version=2\n");
		}
	}
	for (int i = 0; i < ROUNDS; i++) {
		expect_event(a, "unplugged busid=1-1\n");
		expect_event(a, "plugged " ZERO_FIELDS("1-1", "1", "0"));
		expect_bytes(b, "1-1;UNPLUGGED;\n1-1;PLUGGED;\n");
	}

	/* The mid-flood subscriber: a snapshot, then events that continue from
	 * it consistently (1-1 never plugged twice, never unplugged twice). */
	char line[1100];
	bool present_1_1 = false;
	int count = 0;
	expect_line(mid, "welcome version=2 heartbeat=5 server=" SERVER_NAME "\n");
	for (;;) {
		assert_true(sub_line(mid, line, sizeof(line), TIMEOUT_MS));
		if (strncmp(line, "snapshot-end", 12) == 0)
			break;
		count++;
		if (strstr(line, "busid=1-1 "))
			present_1_1 = true;
	}
	char want[64];
	snprintf(want, sizeof(want), "snapshot-end count=%d\n", count);
	assert_string_equal(line, want);
	while (sub_line(mid, line, sizeof(line), 300)) {
		if (strcmp(line, "unplugged busid=1-1\n") == 0) {
			assert_true(present_1_1);
			present_1_1 = false;
		} else {
			assert_string_equal(line, "plugged " ZERO_FIELDS("1-1", "1", "0"));
			assert_false(present_1_1);
			present_1_1 = true;
		}
	}
	assert_true(present_1_1);
	sub_close(mid);
	sub_close(a);
	sub_close(b);
}

static void test_two_subscribers(void **state)
{
	struct fixture *f = *state;
	struct sub *a = subscribe_v2_snapshot(f);
	struct sub *b = subscribe_v2_snapshot(f);

	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	assert_int_equal(sim_unplug(f->sim, "1-2"), 0);
	assert_int_equal(sim_plug(f->sim, "1-2"), 0);
	struct sub *both[] = { a, b };
	for (int i = 0; i < 2; i++) {
		expect_event(both[i], "unplugged busid=1-1\n");
		expect_event(both[i], "unplugged busid=1-2\n");
		expect_event(both[i], "plugged " ZERO_FIELDS("1-2", "2", "0"));
	}
	/* One leaving does not disturb the other. */
	sub_close(a);
	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	expect_event(b, "plugged " ZERO_FIELDS("1-1", "1", "0"));
	sub_close(b);
}

/* A subscriber that never reads: its queue fills, it is dropped; the other
 * subscriber gets every event and USB traffic goes on meanwhile. */
static void test_slow_subscriber_dropped(void **state)
{
	struct fixture *f = *state;
	struct sub *slow = sub_connect(f, 1024);
	sub_send(slow, "hello version=2\n");
	struct sub *fast = subscribe_v2_snapshot(f);
	struct uc_conn *c = import_dev(f, "1-2");
	expect_event(fast, "held " ZERO_FIELDS("1-2", "2", "1"));

	enum { BATCHES = 10, PAIRS = 50 };
	uint32_t seq = 1;
	for (int b = 0; b < BATCHES; b++) {
		for (int i = 0; i < PAIRS; i++) {
			assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
			assert_int_equal(sim_plug(f->sim, "1-1"), 0);
		}
		for (int i = 0; i < PAIRS; i++) {
			expect_event(fast, "unplugged busid=1-1\n");
			expect_event(fast, "plugged " ZERO_FIELDS("1-1", "1", "0"));
		}
		bulk_in(c, seq++);
	}
	assert_true(notify_hub_dropped(server_notify(f->srv)) >= 1);
	/* What it finally reads ends in a close, well short of every event. */
	int64_t deadline = now_ms() + TIMEOUT_MS;
	size_t total = 0;
	for (;;) {
		int r = sub_fill(slow, deadline);
		assert_true(r >= 0);
		if (r == 0)
			break;
		total += slow->len;
		slow->len = 0;
	}
	assert_true(total < (size_t)BATCHES * PAIRS * 100);
	assert_int_equal(notify_hub_subscribers(server_notify(f->srv)), 1);

	/* The fast one is still subscribed. */
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	expect_event(fast, "unplugged busid=1-1\n");
	uc_close(c);
	sub_close(slow);
	sub_close(fast);
}

static void test_heartbeat(void **state)
{
	struct fixture *f = *state;
	struct sub *quiet = sub_connect(f, 0);
	struct sub *alive = sub_connect(f, 0);
	sub_send(quiet, "hello version=2\n");
	sub_send(alive, "hello version=2\n");
	expect_line(alive, "welcome version=2 heartbeat=1 server=" SERVER_NAME "\n");

	int64_t start = now_ms(), quiet_closed = 0;
	int pings = 0;
	char line[1100];
	while (now_ms() - start < 6000) {
		sub_send(alive, "ping\n");
		int64_t until = now_ms() + 500;
		while (now_ms() < until && sub_line(alive, line, sizeof(line),
						     (int)(until - now_ms())))
			pings += strcmp(line, "ping\n") == 0;
		if (!quiet_closed) {
			int r;
			do {
				quiet->len = 0; /* welcome, snapshot, pings: not looked at */
				r = sub_fill(quiet, now_ms() + 1);
			} while (r > 0);
			if (r == 0)
				quiet_closed = now_ms();
		}
	}
	if (!quiet_closed)
		fail_msg("a silent subscriber was not dropped");
	int64_t after = quiet_closed - start;
	if (after < 2500 || after > 4600)
		fail_msg("silent subscriber dropped after %lld ms, want about 3000",
			 (long long)after);
	/* About one ping a second reached the live one, and it is still here. */
	assert_true(pings >= 4);
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	expect_event(alive, "unplugged busid=1-1\n");
	assert_true(notify_hub_dropped(server_notify(f->srv)) >= 1);
	sub_close(quiet);
	sub_close(alive);
}

static void test_token(void **state)
{
	struct fixture *f = *state;
	struct sub *s;

	static const char *const bad[] = {
		"hello version=2\n",
		"hello version=2 token=s3cret\n",
		"hello version=2 token=s3cret%20word2\n",
		"hello version=2 token=S3cret%20word\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = sub_connect(f, 0);
		sub_send(s, bad[i]);
		expect_line(s, "error reason=auth\n");
		expect_closed(s, TIMEOUT_MS);
		sub_close(s);
	}

	/* v1 cannot carry a token: closed without a word. */
	s = sub_connect(f, 0);
	sub_send(s, "Client hello");
	expect_closed(s, TIMEOUT_MS);
	assert_int_equal(s->len, 0);
	sub_close(s);

	s = subscribe_v2(f, "hello version=2 token=s3cret%20word\n");
	expect_line(s, "device " ZERO_FIELDS("1-1", "1", "0"));
	expect_line(s, "device " ZERO_FIELDS("1-2", "2", "0"));
	expect_line(s, "snapshot-end count=2\n");
	sub_close(s);
}

static void test_bad_hellos(void **state)
{
	struct fixture *f = *state;
	struct sub *s;

	/* Neither hello: closed, nothing said. */
	s = sub_connect(f, 0);
	sub_send(s, "GET / HTTP/1.0\r\n\r\n");
	expect_closed(s, TIMEOUT_MS);
	assert_int_equal(s->len, 0);
	sub_close(s);

	s = sub_connect(f, 0);
	sub_send(s, "Client hellO");
	expect_closed(s, TIMEOUT_MS);
	assert_int_equal(s->len, 0);
	sub_close(s);

	/* A v2-looking first line that is not a hello, or a future version. */
	s = sub_connect(f, 0);
	sub_send(s, "hello version=2 token=%ZZ\n");
	expect_line(s, "error reason=hello\n");
	expect_closed(s, TIMEOUT_MS);
	sub_close(s);

	s = sub_connect(f, 0);
	sub_send(s, "hello version=3\n");
	expect_line(s, "error reason=version\n");
	expect_closed(s, TIMEOUT_MS);
	sub_close(s);

	/* Silence: closed after the hello timeout (500 ms here). */
	int64_t start = now_ms();
	s = sub_connect(f, 0);
	expect_closed(s, TIMEOUT_MS);
	assert_true(now_ms() - start >= 400);
	sub_close(s);

	/* A partial v1 hello that never completes, too. */
	s = sub_connect(f, 0);
	sub_send(s, "Client he");
	expect_closed(s, TIMEOUT_MS);
	sub_close(s);
}

struct seen {
	int count;
	char busid[4][USBIP_BUSID_SIZE];
};

static int collect(void *ctx, const struct usbip_device_record *dev,
		   const struct usbip_interface_record *ifaces)
{
	(void)ifaces;
	struct seen *s = ctx;
	if (s->count >= 4)
		return -1;
	strcpy(s->busid[s->count++], dev->busid);
	return 0;
}

static void test_filter_denied_device(void **state)
{
	struct fixture *f = *state;

	struct uc_conn *c = NULL;
	assert_int_equal(uc_connect("127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
	struct seen seen = { 0 };
	assert_int_equal(uc_devlist(c, collect, &seen), 0);
	uc_close(c);
	assert_int_equal(seen.count, 1);
	assert_string_equal(seen.busid[0], "1-1");

	assert_int_equal(uc_connect("127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
	uint32_t st = 0;
	assert_int_equal(uc_import(c, "1-2", &st, NULL), UC_E_STATUS);
	assert_int_equal(st, USBIP_ST_NODEV);
	uc_close(c);

	struct sub *s = subscribe_v2(f, "hello version=2\n");
	expect_line(s, "device " ZERO_FIELDS("1-1", "1", "0"));
	expect_line(s, "snapshot-end count=1\n");
	struct sub *v1 = sub_connect(f, 0);
	sub_send(v1, "Client hello");
	expect_bytes(v1, "1-1;PLUGGED;\n");

	/* Its comings and goings are not told either. */
	assert_int_equal(sim_unplug(f->sim, "1-2"), 0);
	assert_int_equal(sim_plug(f->sim, "1-2"), 0);
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	expect_event(s, "unplugged busid=1-1\n");
	expect_bytes(v1, "1-1;UNPLUGGED;\n");
	sub_close(v1);
	sub_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v1_byte_for_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replug_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_subscribers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_subscriber_dropped, setup_slow,
						teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat, setup_heartbeat, teardown),
		cmocka_unit_test_setup_teardown(test_token, setup_token, teardown),
		cmocka_unit_test_setup_teardown(test_bad_hellos, setup_hello_timeout, teardown),
		cmocka_unit_test_setup_teardown(test_filter_denied_device, setup_deny, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
