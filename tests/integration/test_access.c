/* Integration tests for access control: the client allow-list on both
 * ports, and imports (and device lists) tied to hosts that authenticated on
 * the notify channel.
 *
 * Every test runs the real server on the sim backend (two gadget-zero
 * devices, 1-1 and 1-2) with both ports picked free, talks USB/IP through
 * the userspace test client and the notify protocol over raw sockets. */
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
#include "server/server.h"
#include "usbip_client.h"

#define TIMEOUT_MS 3000
#define TOKEN "s3cret word"
#define TOKEN_HELLO "hello version=2 token=s3cret%20word\n"
#define GRACE_MS 1000u

struct fixture {
	struct backend *sim;
	struct server *srv;
	struct cidr rules[4];
	char port[8];
	int notify_port;
};

struct options {
	const char *host;          /* NULL = every address (dual stack) */
	const char *allow[4];      /* --allow-client rules, NULL-terminated */
	const char *token;
	bool no_import_auth;
};

static int start_fixture(void **state, const struct options *o)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->sim = sim_backend_new("zero,zero");
	assert_non_null(f->sim);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = o->host;
	cfg.port = "0";
	cfg.notify.enabled = true;
	cfg.notify.host = o->host;
	cfg.notify.port = "0";
	cfg.notify.server_name = "access";
	cfg.notify.token = o->token;
	cfg.import_auth = !o->no_import_auth;
	cfg.auth_grace_ms = GRACE_MS;
	size_t n = 0;
	while (n < 4 && o->allow[n]) {
		assert_int_equal(cidr_parse(o->allow[n], &f->rules[n]), CIDR_OK);
		n++;
	}
	cfg.allow_clients = f->rules;
	cfg.n_allow_clients = n;
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	snprintf(f->port, sizeof(f->port), "%d", server_port(f->srv));
	f->notify_port = server_notify_port(f->srv);
	assert_true(f->notify_port > 0);
	*state = f;
	return 0;
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

static int setup_allow_other_net(void **state)
{
	struct options o = { .host = "127.0.0.1", .allow = { "10.0.0.0/8", "fd00::/8" } };
	return start_fixture(state, &o);
}

static int setup_allow_loopback(void **state)
{
	struct options o = { .host = "127.0.0.1", .allow = { "10.0.0.0/8", "127.0.0.0/8" } };
	return start_fixture(state, &o);
}

static int setup_dual_allow_v4(void **state)
{
	struct options o = { .host = NULL, .allow = { "127.0.0.1" } };
	return start_fixture(state, &o);
}

static int setup_dual_allow_v6(void **state)
{
	struct options o = { .host = NULL, .allow = { "::1" } };
	return start_fixture(state, &o);
}

static int setup_token(void **state)
{
	struct options o = { .host = "127.0.0.1", .token = TOKEN };
	return start_fixture(state, &o);
}

static int setup_token_dual(void **state)
{
	struct options o = { .host = NULL, .token = TOKEN };
	return start_fixture(state, &o);
}

static int setup_token_no_import_auth(void **state)
{
	struct options o = { .host = "127.0.0.1", .token = TOKEN, .no_import_auth = true };
	return start_fixture(state, &o);
}

/* ---- Helpers ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Does this machine do IPv6 on loopback? (Containers without it skip.) */
static bool have_ipv6_loopback(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* A raw TCP connection to 127.0.0.1 or ::1. */
static int connect_loopback(bool v6, int port)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int rc;
	if (v6) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6,
					  .sin6_port = htons((uint16_t)port),
					  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (rc != 0)
		fail_msg("connect to %s port %d: %s", v6 ? "::1" : "127.0.0.1", port,
			 strerror(errno));
	return fd;
}

/* Reads until end of stream or timeout; returns the bytes received, or -1
 * when the connection stayed open past the timeout. */
static ssize_t drain_until_closed(int fd, char *buf, size_t n, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t len = 0;
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = recv(fd, buf + len, n - 1 - len, 0);
		if (r > 0 && len + (size_t)r < n - 1) {
			len += (size_t)r;
			continue;
		}
		if (r > 0)
			fail_msg("more bytes than expected");
		if (r == 0 || errno == ECONNRESET) {
			buf[len] = '\0';
			return (ssize_t)len;
		}
		if (errno != EINTR && errno != EAGAIN)
			fail_msg("recv: %s", strerror(errno));
	}
}

/* A v2 subscriber that got through the hello and the whole snapshot. */
static int subscribe(struct fixture *f, bool v6, const char *hello)
{
	int fd = connect_loopback(v6, f->notify_port);
	assert_int_equal(send(fd, hello, strlen(hello), MSG_NOSIGNAL), (ssize_t)strlen(hello));
	char buf[4096];
	size_t len = 0;
	buf[0] = '\0';
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (!strstr(buf, "snapshot-end count=2\n")) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			fail_msg("no snapshot (got \"%.*s\")", (int)len, buf);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r <= 0)
			fail_msg("subscriber closed (got \"%.*s\")", (int)len, buf);
		len += (size_t)r;
		buf[len] = '\0';
		assert_true(len < sizeof(buf) - 1);
	}
	assert_memory_equal(buf, "welcome version=2", 17);
	return fd;
}

/* The notify hub refuses: closed, and not a byte of device data. */
static void expect_notify_closed(struct fixture *f, bool v6, const char *hello)
{
	int fd = connect_loopback(v6, f->notify_port);
	(void)send(fd, hello, strlen(hello), MSG_NOSIGNAL);
	char buf[1100];
	ssize_t n = drain_until_closed(fd, buf, sizeof(buf), TIMEOUT_MS);
	if (n < 0)
		fail_msg("the notify port did not close the connection");
	if (strstr(buf, "welcome") || strstr(buf, "busid="))
		fail_msg("refused subscriber was told: %s", buf);
	close(fd);
}

static void wait_subscribers(struct fixture *f, unsigned want)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (notify_hub_subscribers(server_notify(f->srv)) != want) {
		if (now_ms() > deadline)
			fail_msg("subscribers: %u, want %u",
				 notify_hub_subscribers(server_notify(f->srv)), want);
		sleep_ms(10);
	}
}

static int count_dev(void *ctx, const struct usbip_device_record *dev,
		     const struct usbip_interface_record *ifs)
{
	(void)dev;
	(void)ifs;
	(*(int *)ctx)++;
	return 0;
}

/* OP_REQ_DEVLIST from 127.0.0.1 or ::1: the device count, or the error. */
static int devlist(struct fixture *f, bool v6, int *count)
{
	struct uc_conn *c = NULL;
	assert_int_equal(uc_connect(v6 ? "::1" : "127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
	*count = 0;
	int rc = uc_devlist(c, count_dev, count);
	uc_close(c);
	return rc;
}

/* OP_REQ_IMPORT; on success the connection stays open in *out (or is
 * closed, releasing the device, when out is NULL). Returns uc_import's rc
 * and the reply status in *st. */
static int import(struct fixture *f, bool v6, const char *busid, uint32_t *st,
		  struct uc_conn **out)
{
	struct uc_conn *c = NULL;
	assert_int_equal(uc_connect(v6 ? "::1" : "127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
	*st = 99;
	int rc = uc_import(c, busid, st, NULL);
	if (rc == 0 && out)
		*out = c;
	else
		uc_close(c);
	return rc;
}

static void expect_import_ok(struct fixture *f, bool v6, const char *busid)
{
	uint32_t st;
	int rc = import(f, v6, busid, &st, NULL);
	if (rc != 0)
		fail_msg("import %s: %s (status %u)", busid, uc_strerror(rc), st);
	/* Closing released it: wait until the table says so, so the next
	 * import does not meet "busy". */
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (sim_claimed_interfaces(f->sim) != 0) {
		if (now_ms() > deadline)
			fail_msg("device %s not released", busid);
		sleep_ms(10);
	}
}

static void expect_import_refused(struct fixture *f, bool v6, const char *busid)
{
	uint32_t st;
	int rc = import(f, v6, busid, &st, NULL);
	if (rc != UC_E_STATUS || st != USBIP_ST_NA)
		fail_msg("import %s: want ST_NA, got %s (status %u)", busid, uc_strerror(rc), st);
}

/* ---- Allow-list ------------------------------------------------------------ */

static void test_allow_list_refuses(void **state)
{
	struct fixture *f = *state;
	int count = -1;

	/* USB/IP port: closed at accept, before any reply. */
	int rc = devlist(f, false, &count);
	if (rc != UC_E_CLOSED)
		fail_msg("devlist from 127.0.0.1: want closed, got %s", uc_strerror(rc));
	assert_int_equal(count, 0);
	uint32_t st;
	rc = import(f, false, "1-1", &st, NULL);
	if (rc != UC_E_CLOSED)
		fail_msg("import from 127.0.0.1: want closed, got %s", uc_strerror(rc));
	assert_int_equal(sim_claimed_interfaces(f->sim), 0);

	/* Notify port: closed, no welcome, no devices, both dialects. */
	expect_notify_closed(f, false, "hello version=2\n");
	expect_notify_closed(f, false, "Client hello");
	wait_subscribers(f, 0);
}

static void test_allow_list_accepts(void **state)
{
	struct fixture *f = *state;
	int count = -1;
	assert_int_equal(devlist(f, false, &count), 0);
	assert_int_equal(count, 2);
	int fd = subscribe(f, false, "hello version=2\n");
	expect_import_ok(f, false, "1-2");
	close(fd);
}

/* One server on every address, allowing only 127.0.0.1: ::1 is another
 * host, however local. */
static void test_dual_stack_v4_rule(void **state)
{
	struct fixture *f = *state;
	int count = -1;
	if (!have_ipv6_loopback())
		skip();
	assert_int_equal(devlist(f, false, &count), 0);
	assert_int_equal(count, 2);
	int rc = devlist(f, true, &count);
	if (rc != UC_E_CLOSED)
		fail_msg("devlist from ::1: want closed, got %s", uc_strerror(rc));
	expect_notify_closed(f, true, "hello version=2\n");
	close(subscribe(f, false, "hello version=2\n"));
}

static void test_dual_stack_v6_rule(void **state)
{
	struct fixture *f = *state;
	int count = -1;
	if (!have_ipv6_loopback())
		skip();
	assert_int_equal(devlist(f, true, &count), 0);
	assert_int_equal(count, 2);
	int rc = devlist(f, false, &count);
	if (rc != UC_E_CLOSED)
		fail_msg("devlist from 127.0.0.1: want closed, got %s", uc_strerror(rc));
	expect_notify_closed(f, false, "hello version=2\n");
	close(subscribe(f, true, "hello version=2\n"));
}

/* ---- Imports tied to the token ------------------------------------------------ */

static void test_import_needs_authenticated_host(void **state)
{
	struct fixture *f = *state;
	int count = -1;

	/* Nobody authenticated: no import, no device list. */
	expect_import_refused(f, false, "1-1");
	int rc = devlist(f, false, &count);
	if (rc != UC_E_CLOSED)
		fail_msg("devlist: want closed, got %s", uc_strerror(rc));

	/* A wrong token authenticates nothing. */
	expect_notify_closed(f, false, "hello version=2 token=guess\n");
	expect_import_refused(f, false, "1-1");

	/* The right token from this host: imports work, while subscribed. */
	int sub = subscribe(f, false, TOKEN_HELLO);
	expect_import_ok(f, false, "1-1");
	assert_int_equal(devlist(f, false, &count), 0);
	assert_int_equal(count, 2);
	expect_import_ok(f, false, "1-2");
	sleep_ms((int)GRACE_MS + 300); /* a live subscription does not expire */
	expect_import_ok(f, false, "1-1");

	/* Gone: still allowed within the grace period (a reconnect)... */
	close(sub);
	wait_subscribers(f, 0);
	expect_import_ok(f, false, "1-1");

	/* ...and not after it. */
	sleep_ms((int)GRACE_MS + 300);
	expect_import_refused(f, false, "1-1");
	rc = devlist(f, false, &count);
	if (rc != UC_E_CLOSED)
		fail_msg("devlist after the grace: want closed, got %s", uc_strerror(rc));
	assert_int_equal(auth_hosts_count(server_auth_hosts(f->srv)), 0);
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
	uc_reply_free(&r);
}

/* A client whose notify channel drops and comes back within the grace
 * keeps importing, and its running session is never touched. */
static void test_reconnect_within_grace(void **state)
{
	struct fixture *f = *state;
	uint32_t st;
	struct uc_conn *held = NULL;

	int sub = subscribe(f, false, TOKEN_HELLO);
	assert_int_equal(import(f, false, "1-1", &st, &held), 0);
	close(sub);
	wait_subscribers(f, 0);
	sleep_ms((int)GRACE_MS / 2);
	sub = subscribe(f, false, TOKEN_HELLO); /* the notify channel comes back */
	sleep_ms((int)GRACE_MS / 2 + 300);      /* past the first grace */

	/* Allowed: 1-2 imports, 1-1 is busy (held by us), not refused. */
	int rc = import(f, false, "1-2", &st, NULL);
	if (rc != 0)
		fail_msg("import 1-2: %s (status %u)", uc_strerror(rc), st);
	rc = import(f, false, "1-1", &st, NULL);
	assert_int_equal(rc, UC_E_STATUS);
	assert_int_equal(st, USBIP_ST_DEV_BUSY);
	bulk_in(held, 1);

	/* Sessions outlive the host's authentication: imports are checked
	 * when they start, not afterwards. */
	close(sub);
	wait_subscribers(f, 0);
	sleep_ms((int)GRACE_MS + 300);
	bulk_in(held, 2);
	uc_close(held);
}

static void test_other_host_not_authenticated(void **state)
{
	struct fixture *f = *state;
	if (!have_ipv6_loopback())
		skip();
	/* ::1 proves the token; 127.0.0.1 is a different host. */
	int sub = subscribe(f, true, TOKEN_HELLO);
	expect_import_ok(f, true, "1-1");
	expect_import_refused(f, false, "1-1");
	close(sub);
}

static void test_no_import_auth(void **state)
{
	struct fixture *f = *state;
	int count = -1;
	/* The token still guards the notify channel... */
	expect_notify_closed(f, false, "hello version=2\n");
	/* ...but imports and lists are not tied to it. */
	expect_import_ok(f, false, "1-1");
	assert_int_equal(devlist(f, false, &count), 0);
	assert_int_equal(count, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allow_list_refuses, setup_allow_other_net,
						teardown),
		cmocka_unit_test_setup_teardown(test_allow_list_accepts, setup_allow_loopback,
						teardown),
		cmocka_unit_test_setup_teardown(test_dual_stack_v4_rule, setup_dual_allow_v4,
						teardown),
		cmocka_unit_test_setup_teardown(test_dual_stack_v6_rule, setup_dual_allow_v6,
						teardown),
		cmocka_unit_test_setup_teardown(test_import_needs_authenticated_host, setup_token,
						teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_within_grace, setup_token,
						teardown),
		cmocka_unit_test_setup_teardown(test_other_host_not_authenticated,
						setup_token_dual, teardown),
		cmocka_unit_test_setup_teardown(test_no_import_auth, setup_token_no_import_auth,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
