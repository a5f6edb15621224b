/* Integration tests: the real server, the simulated backend and the
 * userspace test client, over loopback.
 *
 * Every test gets a fresh sim backend with two gadget-zero devices (1-1 and
 * 1-2) and a server on 127.0.0.1 with a free port, and checks at the end
 * that nothing stayed in flight or claimed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
#include "proto/bytes.h"
#include "server/server.h"
#include "usbip_client.h"

#define TIMEOUT_MS 3000
#define ZERO_VID 0x0525
#define ZERO_PID 0xa4a0

/* --trace lines a test collected (the server's engine thread writes them). */
struct trace_lines {
	pthread_mutex_t lock;
	char text[8192];
	size_t len;
};

struct fixture {
	struct backend *sim;
	struct server *srv;
	const char *host;
	char port[8];
	struct trace trace;
	struct trace_lines lines;
};

static void collect_trace(void *ctx, const char *line)
{
	struct trace_lines *l = ctx;
	pthread_mutex_lock(&l->lock);
	int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s\n", line);
	if (n > 0 && (size_t)n < sizeof(l->text) - l->len)
		l->len += (size_t)n;
	pthread_mutex_unlock(&l->lock);
}

/* Fixture settings beyond the defaults (zero: the default). */
struct fixture_opts {
	unsigned max_urbs;
	bool trace, detach_on_export;
	bool busy_poll_set, busy_poll_fixed; /* else the server's default */
	unsigned busy_poll_us;
	bool dev_mem_limited;
	size_t dev_mem_limit;
};

static int start_fixture_with(void **state, const char *host, const struct fixture_opts *o)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	pthread_mutex_init(&f->lines.lock, NULL);
	f->trace = (struct trace){ .enabled = o->trace, .emit = collect_trace, .ctx = &f->lines };
	f->sim = sim_backend_new("zero,zero");
	assert_non_null(f->sim);
	if (o->dev_mem_limited)
		sim_set_dev_mem_limit(f->sim, o->dev_mem_limit);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = host;
	cfg.port = "0";
	if (o->max_urbs)
		cfg.limits.max_urbs = o->max_urbs;
	cfg.trace = &f->trace;
	cfg.detach_on_export = o->detach_on_export;
	if (o->busy_poll_set) {
		cfg.busy_poll_us = o->busy_poll_us;
		cfg.busy_poll_fixed = o->busy_poll_fixed;
	}
	f->host = host;
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	snprintf(f->port, sizeof(f->port), "%d", server_port(f->srv));
	*state = f;
	return 0;
}

static int start_fixture(void **state, const char *host, unsigned max_urbs)
{
	return start_fixture_with(state, host, &(struct fixture_opts){ .max_urbs = max_urbs });
}

static int setup_trace(void **state)
{
	return start_fixture_with(state, "127.0.0.1", &(struct fixture_opts){ .trace = true });
}

static int setup_detach_on_export(void **state)
{
	return start_fixture_with(state, "127.0.0.1",
				  &(struct fixture_opts){ .detach_on_export = true });
}

enum { BUSY_POLL_US = 5000 };

static int setup_busy_poll(void **state)
{
	return start_fixture_with(state, "127.0.0.1",
				  &(struct fixture_opts){ .busy_poll_set = true,
							  .busy_poll_fixed = true,
							  .busy_poll_us = BUSY_POLL_US });
}

static int setup_busy_poll_off(void **state)
{
	return start_fixture_with(state, "127.0.0.1",
				  &(struct fixture_opts){ .busy_poll_set = true, .busy_poll_fixed = true });
}

/* Learnt windows of up to 20 ms: wide enough for the sim's millisecond
 * delays to count as waits worth spinning through. */
enum { WIDE_BUSY_POLL_US = 20000 };

static int setup_busy_poll_wide(void **state)
{
	return start_fixture_with(state, "127.0.0.1",
				  &(struct fixture_opts){ .busy_poll_set = true,
							  .busy_poll_us = WIDE_BUSY_POLL_US });
}

static int setup_no_dev_mem(void **state)
{
	return start_fixture_with(state, "127.0.0.1", &(struct fixture_opts){
		.dev_mem_limited = true, .dev_mem_limit = 0 });
}

enum { DEV_MEM_LIMIT = 100 * 1024 };

static int setup_little_dev_mem(void **state)
{
	return start_fixture_with(state, "127.0.0.1", &(struct fixture_opts){
		.dev_mem_limited = true, .dev_mem_limit = DEV_MEM_LIMIT });
}

static int setup(void **state)
{
	return start_fixture(state, "127.0.0.1", 0);
}

static int setup_ipv6(void **state)
{
	return start_fixture(state, "::1", 0);
}

enum { SMALL_BUDGET = 8 };

static int setup_small_budget(void **state)
{
	return start_fixture(state, "127.0.0.1", SMALL_BUDGET);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	server_free(f->srv);
	/* Nothing lost, nothing leaked: every transfer completed, every
	 * interface released. */
	assert_int_equal(sim_pending_transfers(f->sim), 0);
	assert_int_equal(sim_claimed_interfaces(f->sim), 0);
	/* Device memory all given back, and before its handle closed. */
	assert_int_equal(sim_dev_mem_bytes(f->sim), 0);
	assert_int_equal(sim_dev_mem_left_at_close(f->sim), 0);
	f->sim->ops->destroy(f->sim);
	pthread_mutex_destroy(&f->lines.lock);
	free(f);
	return 0;
}

static struct uc_conn *connect_to(struct fixture *f)
{
	struct uc_conn *c = NULL;
	assert_int_equal(uc_connect(f->host, f->port, TIMEOUT_MS, &c), 0);
	return c;
}

static struct uc_conn *import_dev(struct fixture *f, const char *busid)
{
	struct uc_conn *c = connect_to(f);
	uint32_t st = 99;
	struct usbip_device_record rec;
	int rc = uc_import(c, busid, &st, &rec);
	if (rc != 0)
		fail_msg("import %s: %s (status %u, %s)", busid, uc_strerror(rc), st,
			 uc_last_error(c));
	assert_string_equal(rec.busid, busid);
	return c;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Submits one URB and waits for its RET_SUBMIT. */
static void do_urb(struct uc_conn *c, struct uc_urb *u, struct uc_reply *r)
{
	u->devid = uc_devid(c);
	int rc = uc_submit(c, u);
	if (rc != 0)
		fail_msg("submit: %s (%s)", uc_strerror(rc), uc_last_error(c));
	rc = uc_recv(c, r, TIMEOUT_MS);
	if (rc != 0)
		fail_msg("recv: %s (%s)", uc_strerror(rc), uc_last_error(c));
	assert_int_equal(r->command, USBIP_RET_SUBMIT);
	assert_int_equal(r->seqnum, u->seqnum);
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

static void control(struct uc_conn *c, uint32_t seq, uint8_t type, uint8_t req, uint16_t value,
		    uint16_t index, uint16_t length, const uint8_t *out, struct uc_reply *r)
{
	struct uc_urb u = {
		.seqnum = seq,
		.direction = (type & 0x80) ? USBIP_DIR_IN : USBIP_DIR_OUT,
		.ep = 0,
		.buffer_length = length,
		.out_data = out,
	};
	setup_packet(u.setup, type, req, value, index, length);
	do_urb(c, &u, r);
}

static void bulk(struct uc_conn *c, uint32_t seq, uint32_t dir, uint32_t ep, uint32_t len,
		 uint32_t flags, const uint8_t *out, struct uc_reply *r)
{
	struct uc_urb u = {
		.seqnum = seq,
		.direction = dir,
		.ep = ep,
		.buffer_length = len,
		.transfer_flags = flags | (dir == USBIP_DIR_IN ? USBIP_URB_DIR_IN : 0),
		.out_data = out,
	};
	do_urb(c, &u, r);
}

/* ---- Transfer buffers and busy polling ---------------------------------- */

/* Waits until the server has given every device buffer back (its session
 * ends a moment after the client closes). */
static size_t dev_mem_after_close(struct fixture *f)
{
	for (int i = 0; i < 300 && sim_dev_mem_bytes(f->sim) > 0; i++)
		sleep_ms(10);
	return sim_dev_mem_bytes(f->sim);
}

/* Bulk IN of len on 1-1's source (bytes j % 63), n at once; checks every byte. */
static void bulk_in_checked(struct uc_conn *c, uint32_t *seq, uint32_t len, int n)
{
	for (int i = 0; i < n; i++) {
		struct uc_urb u = { .seqnum = (*seq)++, .devid = uc_devid(c),
				    .direction = USBIP_DIR_IN, .ep = 1, .buffer_length = len,
				    .transfer_flags = USBIP_URB_DIR_IN };
		assert_int_equal(uc_submit(c, &u), 0);
	}
	for (int i = 0; i < n; i++) {
		struct uc_reply r;
		assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
		assert_int_equal(r.status, 0);
		assert_int_equal(r.actual_length, len);
		for (uint32_t j = 0; j < len; j++)
			if (r.data[j] != j % 63)
				fail_msg("seqnum %u: byte %u is %u", r.seqnum, j, r.data[j]);
		uc_reply_free(&r);
	}
}

static void test_device_memory_for_big_buffers(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	/* Small buffers stay on the heap. */
	bulk_in_checked(c, &seq, 512, 4);
	assert_int_equal(sim_dev_mem_bytes(f->sim), 0);

	/* Big ones use the device's memory, in and out, and keep it while
	 * pooled for the next URB. */
	bulk_in_checked(c, &seq, 65536, 4);
	uint8_t *out = malloc(65536);
	assert_non_null(out);
	memset(out, 0x5a, 65536);
	struct uc_reply r;
	bulk(c, seq++, USBIP_DIR_OUT, 1, 65536, 0, out, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 65536);
	uc_reply_free(&r);
	free(out);
	size_t held = sim_dev_mem_bytes(f->sim);
	assert_true(held >= 65536);
	assert_true(held <= 2 * 1024 * 1024); /* a session holds at most 2 MiB of it */

	uc_close(c);
	assert_int_equal(dev_mem_after_close(f), 0);
	assert_int_equal(sim_dev_mem_left_at_close(f->sim), 0);
}

static void test_device_memory_refused(void **state)
{
	struct fixture *f = *state; /* the sim has none to give */
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	bulk_in_checked(c, &seq, 65536, 8);
	assert_int_equal(sim_dev_mem_bytes(f->sim), 0);
	uc_close(c);
}

static void test_device_memory_runs_out(void **state)
{
	struct fixture *f = *state; /* room for one 64 KiB buffer at a time */
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	for (int round = 0; round < 3; round++)
		bulk_in_checked(c, &seq, 65536, 8);
	assert_true(sim_dev_mem_bytes(f->sim) <= DEV_MEM_LIMIT);
	uc_close(c);
	assert_int_equal(dev_mem_after_close(f), 0);
}

/* A queue deeper than a session's share of device memory: the rest is
 * ordinary memory, and every buffer is reused, none mapped anew per URB. */
static void test_device_memory_deep_queue(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	for (int round = 0; round < 5; round++) {
		bulk_in_checked(c, &seq, 65536, 48);
		assert_true(sim_dev_mem_bytes(f->sim) <= 2 * 1024 * 1024);
	}
	/* Each buffer was mapped once, up to the session's 2 MiB, however
	 * many of the 48 were at the device at once (how many depends on how
	 * the submits and completions interleave); mapping and unmapping per
	 * URB past the cap would count some 100 more. */
	unsigned long allocs = sim_dev_mem_allocs(f->sim);
	assert_true(allocs > 0);
	assert_true(allocs <= 2 * 1024 * 1024 / 65536);
	uc_close(c);
	assert_int_equal(dev_mem_after_close(f), 0);
}

static void control_round_trips(struct uc_conn *c, int n)
{
	for (int i = 0; i < n; i++) {
		struct uc_reply r;
		control(c, (uint32_t)i + 1, 0x80, 6, 0x0100, 0, 18, NULL, &r); /* device descriptor */
		assert_int_equal(r.status, 0);
		assert_int_equal(r.actual_length, 18);
		uc_reply_free(&r);
	}
}

static void test_busy_poll_then_sleep(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");

	control_round_trips(c, 50);
	/* The loop polled without sleeping between the URBs... */
	assert_true(server_busy_polls(f->srv) > 0);
	/* ...and sleeps once the window after the last one is over. */
	sleep_ms(BUSY_POLL_US / 1000 * 10);
	unsigned long idle = server_busy_polls(f->srv);
	sleep_ms(300);
	assert_int_equal(server_busy_polls(f->srv), idle);
	uc_close(c);
}

static void test_no_busy_poll_when_off(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");

	control_round_trips(c, 50);
	assert_int_equal(server_busy_polls(f->srv), 0);
	uc_close(c);
}

static unsigned client_window(struct fixture *f)
{
	return server_busy_poll_window(f->srv, false);
}

static unsigned device_window(struct fixture *f)
{
	return server_busy_poll_window(f->srv, true);
}

/* The default: a client that answers at once earns a window, which a long
 * pause shrinks again; nothing spins through the pause. */
static void test_busy_poll_learns_quick_client(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");

	assert_int_equal(client_window(f), 0);
	control_round_trips(c, 50);
	unsigned learnt = client_window(f);
	assert_true(learnt > 0);
	assert_true(learnt <= SERVER_DEFAULT_BUSY_POLL_US);
	assert_true(server_busy_polls(f->srv) > 0);

	sleep_ms(100);
	unsigned long idle = server_busy_polls(f->srv);
	sleep_ms(300);
	assert_int_equal(server_busy_polls(f->srv), idle);
	control_round_trips(c, 1); /* ends the 400 ms wait */
	assert_true(client_window(f) < learnt);
	uc_close(c);
}

/* A device that answers within the largest window earns the device wait a
 * window; one far slower than that takes it away again, while the
 * client's stays. */
static void test_busy_poll_follows_the_device(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	assert_int_equal(sim_set_delay(f->sim, "1-1", 2), 0);
	for (int i = 0; i < 8; i++)
		bulk_in_checked(c, &seq, 512, 1);
	assert_true(device_window(f) > 0);
	assert_true(client_window(f) > 0);

	assert_int_equal(sim_set_delay(f->sim, "1-1", 5 * WIDE_BUSY_POLL_US / 1000), 0);
	for (int i = 0; i < 6; i++)
		bulk_in_checked(c, &seq, 512, 1);
	assert_int_equal(device_window(f), 0);
	assert_true(client_window(f) > 0);
	uc_close(c);
}

/* The two waits of an URB are told apart: a device that answers in 2 ms
 * keeps its window while a client that pauses 100 ms after each reply
 * closes its own (the device's wait ends when its completion is due, not
 * at the client's next command). */
static void test_busy_poll_splits_the_waits(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	assert_int_equal(sim_set_delay(f->sim, "1-1", 2), 0);
	for (int i = 0; i < 6; i++) {
		bulk_in_checked(c, &seq, 512, 1);
		sleep_ms(5 * WIDE_BUSY_POLL_US / 1000);
	}
	assert_true(device_window(f) > 0);
	assert_int_equal(client_window(f), 0);
	uc_close(c);
}

/* Sends one IN URB on ep, answered by the sim after its delay; checked
 * by recv_in. */
static void submit_in(struct uc_conn *c, uint32_t seq, uint8_t ep, uint32_t len)
{
	struct uc_urb u = { .seqnum = seq, .devid = uc_devid(c), .direction = USBIP_DIR_IN,
			    .ep = ep, .buffer_length = len, .transfer_flags = USBIP_URB_DIR_IN };
	assert_int_equal(uc_submit(c, &u), 0);
}

static void recv_in(struct uc_conn *c, uint32_t seq, uint32_t len)
{
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, seq);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, len);
	uc_reply_free(&r);
}

/* Counts the engine's spins while one IN URB on ep waits 200 ms at the
 * device, from before its CMD_SUBMIT until 50 ms into the wait. */
static unsigned long spins_while_waiting(struct fixture *f, struct uc_conn *c, uint32_t *seq,
					 uint8_t ep)
{
	assert_int_equal(sim_set_delay(f->sim, "1-1", 200), 0);
	sleep_ms(50); /* any window after the last reply is over */
	unsigned long before = server_busy_polls(f->srv);
	submit_in(c, *seq, ep, 64);
	sleep_ms(50);
	unsigned long during = server_busy_polls(f->srv) - before;
	recv_in(c, (*seq)++, 64);
	return during;
}

/* An interrupt IN (a mouse's, a security key's) completes when the device
 * has something to say: the wait for it is not spun, even with the device
 * window open from bulk traffic, and does not teach that window. A bulk IN
 * in the same place is spun. */
static void test_no_busy_poll_for_interrupt_waits(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uint32_t seq = 1;

	assert_int_equal(sim_set_delay(f->sim, "1-1", 2), 0);
	bulk_in_checked(c, &seq, 512, 8);
	for (int i = 0; i < 8; i++)
		bulk_in_checked(c, &seq, 512, 1);
	unsigned learnt = device_window(f);
	assert_true(learnt > 0);

	assert_int_equal(spins_while_waiting(f, c, &seq, 3), 0);
	assert_int_equal(device_window(f), learnt);
	assert_true(spins_while_waiting(f, c, &seq, 1) > 0);
	uc_close(c);
}

/* Holds the engine inside the backend's dispatch after the armed
 * completion, until the client has its reply or half the timeout passed. */
struct held_delivery {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed, replied, done;
	bool replied_in_dispatch;
};

static void hold_delivery(void *ctx)
{
	struct held_delivery *h = ctx;
	pthread_mutex_lock(&h->lock);
	if (h->armed) {
		h->armed = false;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long ns = until.tv_nsec + (long)(TIMEOUT_MS / 2 % 1000) * 1000000L;
		until.tv_sec += TIMEOUT_MS / 2 / 1000 + ns / 1000000000L;
		until.tv_nsec = ns % 1000000000L;
		while (!h->replied && pthread_cond_timedwait(&h->cond, &h->lock, &until) == 0)
			;
		h->replied_in_dispatch = h->replied;
		h->done = true;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->lock);
}

/* The only URB in flight is answered from its completion, not after the
 * backend's dispatch has returned to the loop. */
static void test_last_reply_written_in_dispatch(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct held_delivery h = { .armed = true };
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	sim_set_delivered_hook(f->sim, hold_delivery, &h);

	struct uc_reply r;
	bulk(c, 1, USBIP_DIR_IN, 1, 64, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 64);
	pthread_mutex_lock(&h.lock);
	h.replied = true;
	pthread_cond_broadcast(&h.cond);
	while (!h.done)
		pthread_cond_wait(&h.cond, &h.lock);
	pthread_mutex_unlock(&h.lock);
	sim_set_delivered_hook(f->sim, NULL, NULL);
	assert_true(h.replied_in_dispatch);

	uc_reply_free(&r);
	pthread_cond_destroy(&h.cond);
	pthread_mutex_destroy(&h.lock);
	uc_close(c);
}

/* ---- Operations -------------------------------------------------------- */

struct seen {
	int count;
	struct usbip_device_record dev[4];
	struct usbip_interface_record ifc[4][USBIP_MAX_INTERFACES];
};

static int collect(void *ctx, const struct usbip_device_record *dev,
		   const struct usbip_interface_record *ifaces)
{
	struct seen *s = ctx;
	if (s->count >= 4)
		return -1;
	s->dev[s->count] = *dev;
	memcpy(s->ifc[s->count], ifaces, dev->bNumInterfaces * sizeof(*ifaces));
	s->count++;
	return 0;
}

static void test_devlist_fields(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = connect_to(f);
	struct seen s = { 0 };
	assert_int_equal(uc_devlist(c, collect, &s), 0);
	uc_close(c);

	assert_int_equal(s.count, 2);
	for (int i = 0; i < 2; i++) {
		const struct usbip_device_record *d = &s.dev[i];
		char busid[8];
		snprintf(busid, sizeof(busid), "1-%d", i + 1);
		assert_string_equal(d->busid, busid);
		assert_true(strstr(d->path, busid) != NULL);
		assert_int_equal(d->busnum, 1);
		assert_true(d->devnum > 0);
		assert_int_equal(d->speed, USBIP_SPEED_HIGH);
		assert_int_equal(d->idVendor, ZERO_VID);
		assert_int_equal(d->idProduct, ZERO_PID);
		assert_int_equal(d->bConfigurationValue, 1);
		assert_int_equal(d->bNumConfigurations, 1);
		assert_int_equal(d->bNumInterfaces, 4);
		for (int j = 0; j < 4; j++)
			assert_int_equal(s.ifc[i][j].bInterfaceClass, 0xff);
	}
	assert_int_not_equal(s.dev[0].devnum, s.dev[1].devnum);
}

static void test_import_unknown_and_busy(void **state)
{
	struct fixture *f = *state;
	uint32_t st = 0;

	struct uc_conn *c = connect_to(f);
	assert_int_equal(uc_import(c, "9-9", &st, NULL), UC_E_STATUS);
	assert_int_equal(st, USBIP_ST_NODEV);
	uc_close(c);

	struct uc_conn *holder = import_dev(f, "1-1");
	c = connect_to(f);
	assert_int_equal(uc_import(c, "1-1", &st, NULL), UC_E_STATUS);
	assert_int_equal(st, USBIP_ST_DEV_BUSY);
	uc_close(c);

	/* The other device is still free. */
	c = import_dev(f, "1-2");
	uc_close(c);
	uc_close(holder);
}

static void test_import_record_matches_devlist(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = connect_to(f);
	struct seen s = { 0 };
	assert_int_equal(uc_devlist(c, collect, &s), 0);
	uc_close(c);

	c = connect_to(f);
	struct usbip_device_record rec;
	uint32_t st = 99;
	assert_int_equal(uc_import(c, "1-2", &st, &rec), 0);
	assert_int_equal(st, USBIP_ST_OK);
	assert_memory_equal(&rec, &s.dev[1], sizeof(rec));
	assert_int_equal(uc_devid(c), (1u << 16) | rec.devnum);
	uc_close(c);
}

/* ---- Control ----------------------------------------------------------- */

static void test_control_get_descriptor(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;

	control(c, 1, 0x80, 6, 0x0100, 0, 18, NULL, &r); /* GET_DESCRIPTOR(DEVICE) */
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 18);
	assert_int_equal(r.data[0], 18);
	assert_int_equal(r.data[1], 1);
	assert_int_equal(get_le16(r.data + 8), ZERO_VID);
	assert_int_equal(get_le16(r.data + 10), ZERO_PID);
	uc_reply_free(&r);

	/* Asking for more than there is gives the short answer. */
	control(c, 2, 0x80, 6, 0x0200, 0, 4096, NULL, &r); /* GET_DESCRIPTOR(CONFIG) */
	assert_int_equal(r.status, 0);
	assert_int_equal(r.data[1], 2);
	assert_int_equal(r.actual_length, get_le16(r.data + 2));
	uc_reply_free(&r);
	uc_close(c);
}

static void test_control_vendor_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	uint8_t msg[100];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);

	control(c, 1, 0x40, 0x5b, 0, 0, sizeof(msg), msg, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, sizeof(msg));
	assert_null(r.data);
	uc_reply_free(&r);

	control(c, 2, 0xc0, 0x5c, 0, 0, sizeof(msg), NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, sizeof(msg));
	assert_memory_equal(r.data, msg, sizeof(msg));
	uc_reply_free(&r);

	/* A setup packet that disagrees with the URB is refused with a status:
	 * wLength larger than the buffer, or an IN request sent as OUT. */
	struct uc_urb bad = { .seqnum = 5, .direction = USBIP_DIR_IN, .buffer_length = 8 };
	setup_packet(bad.setup, 0x80, 6, 0x0100, 0, 18);
	do_urb(c, &bad, &r);
	assert_int_equal(r.status, -LNX_EINVAL);
	uc_reply_free(&r);
	uint8_t eight[8] = { 0 };
	struct uc_urb wrong_way = { .seqnum = 6, .direction = USBIP_DIR_OUT, .buffer_length = 8,
				    .out_data = eight };
	setup_packet(wrong_way.setup, 0xc0, 0x5c, 0, 0, 8);
	do_urb(c, &wrong_way, &r);
	assert_int_equal(r.status, -LNX_EINVAL);
	uc_reply_free(&r);

	/* An unknown request stalls: a status, not a disconnect. */
	control(c, 3, 0xc0, 0x77, 0, 0, 8, NULL, &r);
	assert_int_equal(r.status, -LNX_EPIPE);
	uc_reply_free(&r);
	control(c, 4, 0x80, 6, 0x0100, 0, 18, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(c);
}

/* ---- Bulk and interrupt ------------------------------------------------ */

static void test_bulk_in_sizes(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	static const uint32_t sizes[] = { 0, 1, 63, 512, 513, 4096, 65536, 1024 * 1024 };
	uint32_t seq = 1;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct uc_reply r;
		bulk(c, seq++, USBIP_DIR_IN, 1, sizes[i], 0, NULL, &r);
		assert_int_equal(r.status, 0);
		assert_int_equal(r.actual_length, sizes[i]);
		for (uint32_t j = 0; j < sizes[i]; j++)
			if (r.data[j] != j % 63)
				fail_msg("size %u: byte %u is %u", sizes[i], j, r.data[j]);
		uc_reply_free(&r);
	}
	uc_close(c);
}

static void test_bulk_out_sizes(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	static const uint32_t sizes[] = { 0, 1, 512, 4097, 262144 };
	uint8_t *buf = calloc(1, 262144);
	assert_non_null(buf);
	uint32_t seq = 1;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct uc_reply r;
		bulk(c, seq++, USBIP_DIR_OUT, 1, sizes[i], USBIP_URB_ZERO_PACKET, buf, &r);
		assert_int_equal(r.status, 0);
		assert_int_equal(r.actual_length, sizes[i]);
		assert_null(r.data);
		uc_reply_free(&r);
	}
	free(buf);
	uc_close(c);
}

static void test_loopback_short_packets(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	uint8_t msg[100];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(255 - i);

	bulk(c, 1, USBIP_DIR_OUT, 2, sizeof(msg), 0, msg, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);

	/* A short read is a success with fewer bytes... */
	bulk(c, 2, USBIP_DIR_IN, 2, 512, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, sizeof(msg));
	assert_memory_equal(r.data, msg, sizeof(msg));
	uc_reply_free(&r);

	/* ...unless the client said short-not-ok. */
	bulk(c, 3, USBIP_DIR_OUT, 2, 10, 0, msg, &r);
	uc_reply_free(&r);
	bulk(c, 4, USBIP_DIR_IN, 2, 512, USBIP_URB_SHORT_NOT_OK, NULL, &r);
	assert_int_equal(r.status, -LNX_EREMOTEIO);
	assert_int_equal(r.actual_length, 10);
	assert_memory_equal(r.data, msg, 10);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_interrupt(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	uint8_t out[64] = { 1, 2, 3 };

	bulk(c, 1, USBIP_DIR_IN, 3, 64, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 64);
	assert_int_equal(r.data[62], 62);
	uc_reply_free(&r);

	bulk(c, 2, USBIP_DIR_OUT, 3, sizeof(out), 0, out, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, sizeof(out));
	uc_reply_free(&r);
	uc_close(c);
}

/* ---- Isochronous ------------------------------------------------------- */

static void set_interface_ok(struct uc_conn *c, uint32_t seq, uint16_t ifnum, uint16_t alt)
{
	struct uc_reply r;
	control(c, seq, 0x01, 11, alt, ifnum, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
}

/* An URB sent right behind a SET_INTERFACE (without waiting for its reply)
 * is routed by the alternate setting the request leaves, never by the one
 * before it: the iso endpoint exists only in alt 1 of interface 1. */
static void test_urb_behind_set_interface(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct usbip_iso_desc iso[1] = { { .offset = 0, .length = 512 } };
	uint32_t seq = 1;
	for (int i = 0; i < 20; i++) {
		uint16_t alt = (uint16_t)((i + 1) % 2); /* 1, 0, 1, ... */
		struct uc_urb set = { .seqnum = seq++, .direction = USBIP_DIR_OUT, .ep = 0 };
		setup_packet(set.setup, 0x01, 11, alt, 1, 0);
		set.devid = uc_devid(c);
		struct uc_urb u = {
			.seqnum = seq++,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_IN,
			.ep = 4,
			.buffer_length = 512,
			.number_of_packets = 1,
			.transfer_flags = USBIP_URB_ISO_ASAP | USBIP_URB_DIR_IN,
			.iso = iso,
		};
		assert_int_equal(uc_submit(c, &set), 0);
		assert_int_equal(uc_submit(c, &u), 0);
		for (int k = 0; k < 2; k++) {
			struct uc_reply r;
			assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
			if (r.seqnum == set.seqnum)
				assert_int_equal(r.status, 0);
			else if (alt == 1)
				assert_int_equal(r.status, 0);
			else
				assert_int_equal(r.status, -LNX_EPIPE); /* no such endpoint in alt 0 */
			uc_reply_free(&r);
		}
	}
	uc_close(c);
}

static void test_iso_in(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	set_interface_ok(c, 1, 1, 1);

	/* Three packets, deliberately not back to back in the client's buffer. */
	struct usbip_iso_desc iso[3] = {
		{ .offset = 0, .length = 1024 },
		{ .offset = 1100, .length = 1024 },
		{ .offset = 2200, .length = 1024 },
	};
	struct uc_urb u = {
		.seqnum = 2,
		.direction = USBIP_DIR_IN,
		.ep = 4,
		.buffer_length = 3300,
		.number_of_packets = 3,
		.transfer_flags = USBIP_URB_ISO_ASAP | USBIP_URB_DIR_IN,
		.iso = iso,
	};
	struct uc_reply r;
	do_urb(c, &u, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.iso_count, 3);
	uint32_t sum = 0;
	for (uint32_t i = 0; i < 3; i++) {
		uint32_t want = 1024 - 8 * (i % 4);
		assert_int_equal(r.iso[i].offset, iso[i].offset);
		assert_int_equal(r.iso[i].length, 1024);
		assert_int_equal(r.iso[i].actual_length, want);
		assert_int_equal(r.iso[i].status, 0);
		for (uint32_t j = 0; j < want; j++)
			if (r.data[iso[i].offset + j] != i)
				fail_msg("packet %u byte %u is %u", i, j, r.data[iso[i].offset + j]);
		sum += want;
	}
	/* The wire carried the compacted bytes: actual_length is their sum. */
	assert_int_equal(r.actual_length, sum);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_iso_out(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	set_interface_ok(c, 1, 1, 1);

	uint8_t buf[3000] = { 0 };
	struct usbip_iso_desc iso[3] = {
		{ .offset = 0, .length = 1000 },
		{ .offset = 1000, .length = 1000 },
		{ .offset = 2000, .length = 1000 },
	};
	struct uc_urb u = {
		.seqnum = 2,
		.direction = USBIP_DIR_OUT,
		.ep = 4,
		.buffer_length = sizeof(buf),
		.number_of_packets = 3,
		.transfer_flags = USBIP_URB_ISO_ASAP,
		.out_data = buf,
		.iso = iso,
	};
	struct uc_reply r;
	do_urb(c, &u, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 3000);
	assert_int_equal(r.iso_count, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(r.iso[i].actual_length, 1000);
	uc_reply_free(&r);

	/* Back at alt 0 the iso endpoints are gone: a status, no disconnect. */
	set_interface_ok(c, 3, 1, 0);
	u.seqnum = 4;
	do_urb(c, &u, &r);
	assert_true(r.status < 0);
	uc_reply_free(&r);
	uc_close(c);
}

/* ---- Stall, claims ----------------------------------------------------- */

static void test_stall_then_clear_halt(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;

	assert_int_equal(sim_set_stall(f->sim, "1-1", 0x81, true), 0);
	bulk(c, 1, USBIP_DIR_IN, 1, 64, 0, NULL, &r);
	assert_int_equal(r.status, -LNX_EPIPE);
	uc_reply_free(&r);

	/* Still stalled until the client clears the halt. */
	bulk(c, 2, USBIP_DIR_IN, 1, 64, 0, NULL, &r);
	assert_int_equal(r.status, -LNX_EPIPE);
	uc_reply_free(&r);

	control(c, 3, 0x02, 1, 0, 0x81, 0, NULL, &r); /* CLEAR_FEATURE(ENDPOINT_HALT) */
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);

	bulk(c, 4, USBIP_DIR_IN, 1, 64, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 64);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_unclaimable_interface_eperm(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(sim_lock_interface(f->sim, "1-1", 3, true), 0);
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;

	bulk(c, 1, USBIP_DIR_IN, 5, 64, 0, NULL, &r); /* 0x85 on the locked interface */
	assert_int_equal(r.status, -LNX_EPERM);
	uc_reply_free(&r);

	/* The rest of the device keeps working. */
	bulk(c, 2, USBIP_DIR_IN, 1, 64, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	control(c, 3, 0x80, 6, 0x0100, 0, 18, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_set_configuration(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;

	control(c, 1, 0x00, 9, 1, 0, 0, NULL, &r); /* SET_CONFIGURATION(1) */
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	bulk(c, 2, USBIP_DIR_IN, 1, 16, 0, NULL, &r); /* interfaces claimed again */
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	control(c, 3, 0x00, 9, 7, 0, 0, NULL, &r); /* no such configuration */
	assert_true(r.status < 0);
	uc_reply_free(&r);
	uc_close(c);
}

static void submit_control(struct uc_conn *c, uint32_t seq, uint8_t type, uint8_t req,
			   uint16_t value, uint16_t index, uint16_t length)
{
	struct uc_urb u = {
		.seqnum = seq,
		.devid = uc_devid(c),
		.direction = (type & 0x80) ? USBIP_DIR_IN : USBIP_DIR_OUT,
		.buffer_length = length,
	};
	setup_packet(u.setup, type, req, value, index, length);
	assert_int_equal(uc_submit(c, &u), 0);
}

static void test_control_order_around_state_changes(void **state)
{
	struct fixture *f = *state;
	/* Forwarded requests take 100 ms; SET_INTERFACE runs at once in the
	 * worker, yet every reply must come back in submission order. */
	assert_int_equal(sim_set_delay(f->sim, "1-1", 100), 0);
	struct uc_conn *c = import_dev(f, "1-1");
	submit_control(c, 1, 0x80, 6, 0x0100, 0, 18);  /* GET_DESCRIPTOR */
	submit_control(c, 2, 0x01, 11, 1, 1, 0);       /* SET_INTERFACE 1/1 */
	submit_control(c, 3, 0x80, 6, 0x0100, 0, 18);
	submit_control(c, 4, 0x02, 1, 0, 0x81, 0);     /* CLEAR_FEATURE(HALT) */
	submit_control(c, 5, 0x80, 6, 0x0100, 0, 18);
	for (uint32_t want = 1; want <= 5; want++) {
		struct uc_reply r;
		assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
		assert_int_equal(r.seqnum, want);
		assert_int_equal(r.status, 0);
		uc_reply_free(&r);
	}

	/* A control URB waiting behind a state change can still be unlinked. */
	submit_control(c, 6, 0x80, 6, 0x0100, 0, 18);
	submit_control(c, 7, 0x01, 11, 0, 1, 0);
	submit_control(c, 8, 0x80, 6, 0x0100, 0, 18);
	assert_int_equal(uc_unlink(c, 9, 8), 0);
	/* 6 and 7 answered in order; 8 only by the unlink's RET_UNLINK. */
	static const uint32_t want[3] = { 6, 7, 9 };
	for (int i = 0; i < 3; i++) {
		struct uc_reply r;
		assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
		assert_int_equal(r.seqnum, want[i]);
		assert_int_equal(r.status, want[i] == 9 ? -LNX_ECONNRESET : 0);
		uc_reply_free(&r);
	}
	assert_int_equal(uc_recv(c, &(struct uc_reply){ 0 }, 200), UC_E_TIMEOUT);
	assert_int_equal(uc_outstanding(c), 0);
	uc_close(c);
}

static void test_clear_halt_ep0_goes_to_device(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	/* The host OS has no endpoint 0 halt to clear; the device answers. */
	control(c, 1, 0x02, 1, 0, 0, 0, NULL, &r);
	assert_true(r.status == 0 || r.status == -LNX_EPIPE);
	uc_reply_free(&r);
	control(c, 2, 0x80, 6, 0x0100, 0, 18, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(c);
}

/* ---- Unlink ------------------------------------------------------------ */

static void test_unlink_pending(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_urb u = {
		.seqnum = 10,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_IN,
		.ep = 2, /* loopback IN pends while the FIFO is empty */
		.buffer_length = 512,
	};
	assert_int_equal(uc_submit(c, &u), 0);
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, 200), UC_E_TIMEOUT); /* really pending */

	assert_int_equal(uc_unlink(c, 11, 10), 0);
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.seqnum, 11);
	assert_int_equal(r.status, -LNX_ECONNRESET);
	assert_true(r.victim_was_pending);
	uc_reply_free(&r);

	/* No RET_SUBMIT may follow for the unlinked URB: the client would read
	 * one as a protocol error. Prove the stream is still clean. */
	assert_int_equal(uc_recv(c, &r, 300), UC_E_TIMEOUT);
	uint8_t msg[5] = { 9, 8, 7, 6, 5 };
	bulk(c, 12, USBIP_DIR_OUT, 2, 5, 0, msg, &r);
	uc_reply_free(&r);
	bulk(c, 13, USBIP_DIR_IN, 2, 512, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 5);
	assert_memory_equal(r.data, msg, 5);
	uc_reply_free(&r);
	uc_close(c);
}

/* usbtest's unlink cases, the way vhci sees them: every URB is unlinked
 * right after its submit, while it may be at the device, completing or
 * answered. Each must end exactly one way: RET_UNLINK -ECONNRESET alone,
 * or its RET_SUBMIT first and then RET_UNLINK 0 (the test client, like
 * vhci, fails on a RET_SUBMIT for an URB a RET_UNLINK already gave back). */
static void test_unlink_race(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uint8_t data[1024];
	memset(data, 0x5a, sizeof(data));
	int won = 0, lost = 0;
	for (uint32_t i = 0; i < 600; i++) {
		/* Vary the device's pace so the unlink meets every state: done
		 * already (0 ms), racing it (2 ms), still at the device (50 ms,
		 * so some unlinks win even on a loaded machine). */
		static const uint32_t pace_ms[3] = { 0, 2, 50 };
		if (i % 100 == 0)
			assert_int_equal(sim_set_delay(f->sim, "1-1", pace_ms[(i / 100) % 3]), 0);
		uint32_t seq = 2 * i + 1;
		struct uc_urb u = {
			.seqnum = seq,
			.devid = uc_devid(c),
			.direction = i % 2 ? USBIP_DIR_IN : USBIP_DIR_OUT,
			.ep = 1,
			.buffer_length = sizeof(data),
			.out_data = i % 2 ? NULL : data,
		};
		assert_int_equal(uc_submit(c, &u), 0);
		bool submit_answered = false, unlink_answered = false;
		/* Some unlinks come only after the RET_SUBMIT, as vhci's do when
		 * the URB completed first: a slow (sanitizer) server may read
		 * every other submit and unlink in one go and let all unlinks win. */
		if (i % 4 == 0) {
			struct uc_reply r;
			assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
			assert_int_equal(r.command, USBIP_RET_SUBMIT);
			assert_int_equal(r.seqnum, seq);
			submit_answered = true;
			uc_reply_free(&r);
		}
		assert_int_equal(uc_unlink(c, seq + 1, seq), 0);
		while (!unlink_answered) {
			struct uc_reply r;
			assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
			if (r.command == USBIP_RET_SUBMIT) {
				assert_int_equal(r.seqnum, seq);
				assert_false(submit_answered);
				submit_answered = true;
			} else {
				assert_int_equal(r.seqnum, seq + 1);
				unlink_answered = true;
				if (r.status == -LNX_ECONNRESET) {
					assert_false(submit_answered);
					assert_true(r.victim_was_pending);
					won++;
				} else {
					assert_int_equal(r.status, 0);
					assert_true(submit_answered); /* RET_SUBMIT came first */
					assert_false(r.victim_was_pending);
					lost++;
				}
			}
			uc_reply_free(&r);
		}
	}
	assert_int_equal(uc_outstanding(c), 0);
	/* Both outcomes were met, or the test proved nothing. */
	assert_true(won > 0);
	assert_true(lost > 0);
	uc_close(c);
}

/* Linux's vhci can put a CMD_UNLINK on the wire before the CMD_SUBMIT it
 * names (its transmit thread had just passed the submit list when the URB
 * was queued and unlinked). The server must not answer "not pending" with
 * status 0 (vhci would give the URB back and then fail on its RET_SUBMIT):
 * the submit, when it comes, is unlinked unstarted and RET_UNLINK
 * -ECONNRESET is its only answer. */
static void test_unlink_before_its_submit(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	uint8_t data[64] = { 1 };
	bulk(c, 1, USBIP_DIR_OUT, 1, sizeof(data), 0, data, &r);
	uc_reply_free(&r);

	assert_int_equal(uc_unlink(c, 3, 2), 0); /* names seqnum 2, not sent yet */
	assert_int_equal(uc_recv(c, &r, 200), UC_E_TIMEOUT); /* waits for it */
	struct uc_urb u = {
		.seqnum = 2,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_OUT,
		.ep = 1,
		.buffer_length = sizeof(data),
		.out_data = data,
	};
	assert_int_equal(uc_submit(c, &u), 0);
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.seqnum, 3);
	assert_int_equal(r.status, -LNX_ECONNRESET);
	assert_true(r.victim_was_pending);
	uc_reply_free(&r);
	assert_int_equal(uc_recv(c, &r, 300), UC_E_TIMEOUT); /* no RET_SUBMIT for 2 */

	bulk(c, 4, USBIP_DIR_OUT, 1, sizeof(data), 0, data, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(c);
}

/* --trace: one line per command and per reply, naming the device and the
 * peer, with seqnum, endpoint, direction, length and status. */
static void test_trace_lines(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	uint8_t data[5] = { 1, 2, 3, 4, 5 };
	bulk(c, 7, USBIP_DIR_OUT, 2, sizeof(data), 0, data, &r);
	uc_reply_free(&r);
	assert_int_equal(uc_unlink(c, 8, 7), 0); /* answered: status 0 */
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	uc_reply_free(&r);
	uc_close(c);

	pthread_mutex_lock(&f->lines.lock);
	char text[sizeof(f->lines.text)];
	memcpy(text, f->lines.text, sizeof(text));
	pthread_mutex_unlock(&f->lines.lock);
	/* Four lines: CMD_SUBMIT, RET_SUBMIT, CMD_UNLINK, RET_UNLINK. */
	int n = 0;
	for (const char *p = text; (p = strchr(p, '\n')); p++)
		n++;
	if (n != 4)
		fail_msg("want 4 trace lines, got %d:\n%s", n, text);
	assert_non_null(strstr(text, "1-1 127.0.0.1:"));
	assert_non_null(strstr(text, "> SUBMIT seq=7 ep=2 out len=5"));
	assert_non_null(strstr(text, "< SUBMIT seq=7 ep=2 out len=5 status=0"));
	assert_non_null(strstr(text, "> UNLINK seq=8 victim=7"));
	assert_non_null(strstr(text, "< UNLINK seq=8 status=0"));
}

static void test_unlink_twice(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_urb u = {
		.seqnum = 10,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_IN,
		.ep = 2,
		.buffer_length = 64,
	};
	assert_int_equal(uc_submit(c, &u), 0);
	/* Two unlinks of one pending URB: the first wins, and no RET_SUBMIT
	 * follows. The second is answered with the same verdict when it
	 * found the URB still there, or with 0 when the URB was already
	 * gone by the time it was read (both are the rules). */
	assert_int_equal(uc_unlink(c, 11, 10), 0);
	assert_int_equal(uc_unlink(c, 12, 10), 0);
	for (uint32_t want = 11; want <= 12; want++) {
		struct uc_reply r;
		assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
		assert_int_equal(r.command, USBIP_RET_UNLINK);
		assert_int_equal(r.seqnum, want);
		if (want == 11 || r.status != 0)
			assert_int_equal(r.status, -LNX_ECONNRESET);
		uc_reply_free(&r);
	}
	assert_int_equal(uc_recv(c, &(struct uc_reply){ 0 }, 300), UC_E_TIMEOUT);
	uc_close(c);
}

static void test_unlink_completed_and_unknown(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;

	bulk(c, 1, USBIP_DIR_IN, 1, 64, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);

	assert_int_equal(uc_unlink(c, 2, 1), 0); /* already completed */
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.seqnum, 2);
	assert_int_equal(r.status, 0);
	assert_false(r.victim_was_pending);
	uc_reply_free(&r);

	assert_int_equal(uc_unlink(c, 3, 4242), 0); /* never existed */
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	assert_int_equal(uc_recv(c, &r, 300), UC_E_TIMEOUT);
	uc_close(c);
}

/* ---- Many in flight ---------------------------------------------------- */

static void test_512_in_flight(void **state)
{
	struct fixture *f = *state;
	enum { N = 512 };
	/* Completions wait, so all 512 must be in the backend at once. */
	assert_int_equal(sim_set_delay(f->sim, "1-1", 400), 0);
	struct uc_conn *c = import_dev(f, "1-1");

	for (uint32_t i = 0; i < N; i++) {
		struct uc_urb u = {
			.seqnum = 1000 + i,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_IN,
			.ep = 1,
			.buffer_length = 64 + i,
		};
		assert_int_equal(uc_submit(c, &u), 0);
	}
	int max_pending = 0;
	for (int tries = 0; tries < 300 && max_pending < N; tries++) {
		int p = sim_pending_transfers(f->sim);
		if (p > max_pending)
			max_pending = p;
		sleep_ms(1);
	}
	assert_int_equal(max_pending, N);

	static bool seen[N];
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < N; i++) {
		struct uc_reply r;
		assert_int_equal(uc_recv(c, &r, 5000), 0);
		uint32_t k = r.seqnum - 1000;
		assert_true(k < N);
		assert_false(seen[k]);
		seen[k] = true;
		assert_int_equal(r.status, 0);
		assert_int_equal(r.actual_length, 64 + k);
		assert_int_equal(r.data[63], 63 % 63);
		uc_reply_free(&r);
	}
	assert_int_equal(uc_outstanding(c), 0);
	uc_close(c);
}

static void test_budget_urbs_at_device(void **state)
{
	struct fixture *f = *state;
	enum { N = 64 };
	/* Completions take long enough that all N arrive while the first
	 * SMALL_BUDGET are still at the device. */
	assert_int_equal(sim_set_delay(f->sim, "1-1", 300), 0);
	struct uc_conn *c = import_dev(f, "1-1");

	for (uint32_t i = 0; i < N; i++) {
		struct uc_urb u = {
			.seqnum = i + 1,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_IN,
			.ep = 1,
			.buffer_length = 128,
		};
		assert_int_equal(uc_submit(c, &u), 0);
	}
	/* Past the limit URBs fail at once with a status instead of
	 * queueing without bound; every one is answered exactly once. */
	int max_pending = 0, ok = 0, refused = 0;
	for (int got = 0; got < N;) {
		int p = sim_pending_transfers(f->sim);
		if (p > max_pending)
			max_pending = p;
		struct uc_reply r;
		int rc = uc_recv(c, &r, 1);
		if (rc == UC_E_TIMEOUT)
			continue;
		assert_int_equal(rc, 0);
		if (r.status == 0) {
			assert_int_equal(r.actual_length, 128);
			ok++;
		} else {
			assert_int_equal(r.status, -LNX_ENOMEM);
			refused++;
		}
		uc_reply_free(&r);
		got++;
	}
	assert_true(max_pending <= SMALL_BUDGET);
	assert_true(ok >= SMALL_BUDGET);
	assert_true(refused > 0);
	assert_int_equal(uc_outstanding(c), 0);
	uc_close(c);
}

/* The byte budget holds for large OUT URBs (checked before their buffer is
 * allocated, so a refused one costs no buffer): URBs past
 * it fail with -ENOMEM (their data read and dropped, the stream kept in
 * step), every URB is answered once, and the session goes on. */
static void test_budget_bytes(void **state)
{
	struct fixture *f = *state;
	enum { N = 6 };
	const uint32_t len = USBIP_MAX_TRANSFER_LENGTH; /* 4 of them fill the 64 MiB budget */
	uint8_t *data = calloc(1, len);
	assert_non_null(data);
	/* Slow enough that all N arrive while the first are at the device,
	 * even in a sanitizer build. */
	assert_int_equal(sim_set_delay(f->sim, "1-1", 2500), 0);
	struct uc_conn *c = import_dev(f, "1-1");
	for (uint32_t i = 0; i < N; i++) {
		struct uc_urb u = {
			.seqnum = i + 1,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_OUT,
			.ep = 1,
			.buffer_length = len,
			.out_data = data,
		};
		assert_int_equal(uc_submit(c, &u), 0);
	}
	int ok = 0, refused = 0;
	for (int got = 0; got < N; got++) {
		struct uc_reply r;
		assert_int_equal(uc_recv(c, &r, 2 * TIMEOUT_MS), 0);
		if (r.status == 0) {
			assert_int_equal(r.actual_length, len);
			ok++;
		} else {
			assert_int_equal(r.status, -LNX_ENOMEM);
			assert_int_equal(r.actual_length, 0);
			refused++;
		}
		uc_reply_free(&r);
	}
	assert_true(ok >= 3);       /* what fits in the budget was served */
	assert_true(refused >= 1);  /* the rest was refused, not queued */
	assert_int_equal(ok + refused, N);
	free(data);
	/* In step: the next URB works. */
	assert_int_equal(sim_set_delay(f->sim, "1-1", 0), 0);
	struct uc_reply r;
	uint8_t small[8] = { 1, 2, 3 };
	bulk(c, 100, USBIP_DIR_OUT, 1, sizeof(small), 0, small, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_budget_never_blocks_unlink(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	/* One more URB than the budget, all waiting for loopback data that
	 * never comes: the reader must still read and honour an unlink. */
	for (uint32_t i = 0; i <= SMALL_BUDGET; i++) {
		struct uc_urb u = {
			.seqnum = i + 1,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_IN,
			.ep = 2,
			.buffer_length = 64,
		};
		assert_int_equal(uc_submit(c, &u), 0);
	}
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0); /* the one over budget */
	assert_int_equal(r.seqnum, SMALL_BUDGET + 1);
	assert_int_equal(r.status, -LNX_ENOMEM);
	uc_reply_free(&r);

	assert_int_equal(uc_unlink(c, 100, 1), 0);
	assert_int_equal(uc_recv(c, &r, 1000), 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.status, -LNX_ECONNRESET);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_port_reset(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	set_interface_ok(c, 1, 1, 1);
	struct uc_reply r;
	control(c, 2, 0x23, 3, 4, 1, 0, NULL, &r); /* SET_FEATURE(PORT_RESET) */
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	bulk(c, 3, USBIP_DIR_IN, 1, 16, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_ipv6(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = connect_to(f);
	struct seen s = { 0 };
	assert_int_equal(uc_devlist(c, collect, &s), 0);
	assert_int_equal(s.count, 2);
	uc_close(c);
	c = import_dev(f, "1-2");
	struct uc_reply r;
	bulk(c, 1, USBIP_DIR_IN, 1, 100, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 100);
	uc_reply_free(&r);
	uc_close(c);
}

/* ---- Client and device going away -------------------------------------- */

/* Imports busid as soon as the server has released it from an earlier
 * session, failing if that takes longer than within_ms. */
static struct uc_conn *import_when_free(struct fixture *f, const char *busid, int within_ms)
{
	for (int waited = 0; waited <= within_ms; waited += 20) {
		struct uc_conn *c = connect_to(f);
		uint32_t st = 0;
		if (uc_import(c, busid, &st, NULL) == 0)
			return c;
		uc_close(c);
		assert_int_equal(st, USBIP_ST_DEV_BUSY);
		sleep_ms(20);
	}
	fail_msg("%s not importable within %d ms", busid, within_ms);
	return NULL;
}

static void wait_importable(struct fixture *f, const char *busid, int within_ms)
{
	uc_close(import_when_free(f, busid, within_ms));
}

static void test_client_killed_mid_transfer(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	for (uint32_t i = 0; i < 8; i++) {
		struct uc_urb u = {
			.seqnum = i + 1,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_IN,
			.ep = 2, /* pending */
			.buffer_length = 512,
		};
		assert_int_equal(uc_submit(c, &u), 0);
	}
	sleep_ms(50);
	assert_int_equal(sim_pending_transfers(f->sim), 8);

	/* A killed process: the kernel resets the connection. */
	struct linger lg = { 1, 0 };
	setsockopt(uc_fd(c), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	uc_close(c);

	wait_importable(f, "1-1", 1000);
	assert_int_equal(sim_pending_transfers(f->sim), 0);
}

static void test_device_reset_between_sessions(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	uint8_t half[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	/* The session leaves state behind in the device (loopback data no one
	 * read), as a client that goes mid-command does. */
	bulk(c, 1, USBIP_DIR_OUT, 2, sizeof(half), 0, half, &r);
	uc_reply_free(&r);
	uc_close(c);

	/* The next session finds a device that was reset: nothing stale. */
	c = import_when_free(f, "1-1", 1000);
	struct uc_urb u = {
		.seqnum = 2,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_IN,
		.ep = 2,
		.buffer_length = 64,
	};
	assert_int_equal(uc_submit(c, &u), 0);
	assert_int_equal(uc_recv(c, &r, 300), UC_E_TIMEOUT);
	uc_close(c);
}

static void test_device_vanishes_mid_transfer(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_conn *other = import_dev(f, "1-2");
	struct uc_urb u = {
		.seqnum = 1,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_IN,
		.ep = 2,
		.buffer_length = 512,
	};
	assert_int_equal(uc_submit(c, &u), 0);
	sleep_ms(50);
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);

	/* The in-flight URB fails, then the session closes. */
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), 0);
	assert_int_equal(r.seqnum, 1);
	assert_true(r.status == -LNX_ESHUTDOWN || r.status == -LNX_ENODEV);
	uc_reply_free(&r);
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), UC_E_CLOSED);
	uc_close(c);

	/* The server serves the other device as before... */
	bulk(other, 7, USBIP_DIR_IN, 1, 32, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	uc_close(other);

	/* ...and no longer lists the one that left, until it comes back. */
	struct seen s = { 0 };
	c = connect_to(f);
	assert_int_equal(uc_devlist(c, collect, &s), 0);
	uc_close(c);
	assert_int_equal(s.count, 1);
	assert_string_equal(s.dev[0].busid, "1-2");

	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	for (int i = 0; i < 100; i++) {
		memset(&s, 0, sizeof(s));
		c = connect_to(f);
		assert_int_equal(uc_devlist(c, collect, &s), 0);
		uc_close(c);
		if (s.count == 2)
			break;
		sleep_ms(20);
	}
	assert_int_equal(s.count, 2);
	c = import_dev(f, "1-1");
	uc_close(c);
}

/* ---- Drivers taken at export ------------------------------------------ */

/* Polls the sim's count of detach_drivers calls for busid until it is want. */
static int wait_taken(struct fixture *f, const char *busid, int want)
{
	int n = -1;
	for (int i = 0; i < 200 && (n = sim_drivers_taken(f->sim, busid)) != want; i++)
		sleep_ms(10);
	return n;
}

/* --detach-on-export: the server takes a device's drivers when it exports
 * it (at start and on a plug) and again after each session, whose end may
 * have let them bind again. */
static void test_detach_on_export(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(sim_drivers_taken(f->sim, "1-1"), 1);
	assert_int_equal(sim_drivers_taken(f->sim, "1-2"), 1);
	/* Devices found at start are reset at export, not before the import. */
	assert_int_equal(sim_resets(f->sim, "1-1"), 1);
	assert_int_equal(sim_resets(f->sim, "1-2"), 1);

	struct uc_conn *c = import_dev(f, "1-1");
	struct uc_reply r;
	bulk(c, 1, USBIP_DIR_IN, 1, 32, 0, NULL, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	assert_int_equal(sim_resets(f->sim, "1-1"), 1);
	uc_close(c);
	assert_int_equal(wait_taken(f, "1-1", 2), 2);
	assert_int_equal(sim_resets(f->sim, "1-1"), 2); /* the session's closing reset */

	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	assert_int_equal(wait_taken(f, "1-1", 3), 3);
	assert_int_equal(sim_drivers_taken(f->sim, "1-2"), 1);
}

/* Without it a device keeps its drivers until an import claims it. */
static void test_drivers_kept_by_default(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f, "1-1");
	uc_close(c);
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	struct seen s = { 0 };
	for (int i = 0; i < 100 && s.count != 2; i++) { /* until the plug was handled */
		memset(&s, 0, sizeof(s));
		c = connect_to(f);
		assert_int_equal(uc_devlist(c, collect, &s), 0);
		uc_close(c);
		if (s.count != 2)
			sleep_ms(20);
	}
	assert_int_equal(s.count, 2);
	assert_int_equal(sim_drivers_taken(f->sim, "1-1"), 0);
	assert_int_equal(sim_resets(f->sim, "1-2"), 0); /* not exported early */
	assert_int_equal(sim_drivers_taken(f->sim, "1-2"), 0);
}

/* ---- Malformed input --------------------------------------------------- */

struct bad_case {
	const char *name;
	uint32_t command, devid_xor, direction, ep, length, npackets;
	bool truncate; /* send half a header, then close our side */
};

static void send_bad(struct uc_conn *c, const struct bad_case *b)
{
	uint8_t raw[USBIP_HEADER_SIZE] = { 0 };
	put_be32(raw + 0, b->command);
	put_be32(raw + 4, 77);
	put_be32(raw + 8, uc_devid(c) ^ b->devid_xor);
	put_be32(raw + 12, b->direction);
	put_be32(raw + 16, b->ep);
	put_be32(raw + 24, b->length);
	put_be32(raw + 32, b->npackets);
	if (b->truncate) {
		assert_int_equal(uc_send_raw(c, raw, 20), 0);
		shutdown(uc_fd(c), SHUT_WR);
	} else {
		assert_int_equal(uc_send_raw(c, raw, sizeof(raw)), 0);
	}
}

static void test_malformed_ends_only_that_session(void **state)
{
	struct fixture *f = *state;
	static const struct bad_case cases[] = {
		{ "unknown command", 9, 0, 0, 1, 0, 0, false },
		{ "reply sent by client", USBIP_RET_SUBMIT, 0, 0, 1, 0, 0, false },
		{ "wrong devid", USBIP_CMD_SUBMIT, 0x5, 1, 1, 64, 0, false },
		{ "direction 7", USBIP_CMD_SUBMIT, 0, 7, 1, 64, 0, false },
		{ "endpoint 16", USBIP_CMD_SUBMIT, 0, 1, 16, 64, 0, false },
		{ "absurd length", USBIP_CMD_SUBMIT, 0, 0, 1, 0x7fffffff, 0, false },
		{ "negative length", USBIP_CMD_SUBMIT, 0, 1, 1, 0xfffffff0, 0, false },
		{ "too many iso packets", USBIP_CMD_SUBMIT, 0, 1, 4, 1024, 100000, false },
		{ "half a header", USBIP_CMD_SUBMIT, 0, 1, 1, 64, 0, true },
	};
	struct uc_conn *bystander = import_dev(f, "1-2");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* The device must be free again after each broken session. */
		struct uc_conn *c = import_when_free(f, "1-1", 1000);
		send_bad(c, &cases[i]);
		struct uc_reply r;
		int rc = uc_recv(c, &r, TIMEOUT_MS);
		if (rc != UC_E_CLOSED)
			fail_msg("%s: session not closed (%s)", cases[i].name, uc_strerror(rc));
		uc_close(c);

		/* The other session is unharmed. */
		bulk(bystander, (uint32_t)i + 1, USBIP_DIR_IN, 1, 8, 0, NULL, &r);
		assert_int_equal(r.status, 0);
		uc_reply_free(&r);
	}
	uc_close(bystander);
}

static void test_malformed_op_request(void **state)
{
	struct fixture *f = *state;
	/* A wrong version, then an unknown op code: each gets the connection
	 * closed, and the server keeps answering. */
	static const uint8_t bad[][8] = {
		{ 0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0 },
		{ 0x01, 0x11, 0x80, 0x99, 0, 0, 0, 0 },
	};
	for (size_t i = 0; i < 2; i++) {
		struct uc_conn *c = connect_to(f);
		assert_int_equal(uc_send_raw(c, bad[i], 8), 0);
		struct pollfd pfd = { .fd = uc_fd(c), .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, TIMEOUT_MS), 1);
		uint8_t b;
		assert_int_equal(recv(uc_fd(c), &b, 1, 0), 0); /* closed, nothing sent */
		uc_close(c);
	}
	struct uc_conn *c = connect_to(f);
	struct seen s = { 0 };
	assert_int_equal(uc_devlist(c, collect, &s), 0);
	assert_int_equal(s.count, 2);
	uc_close(c);
}

/* ---- The stock Linux tool ---------------------------------------------- */

static void test_stock_usbip_list(void **state)
{
	struct fixture *f = *state;
	if (access("/usr/sbin/usbip", X_OK) != 0)
		fail_msg("the stock usbip tool (Debian package usbip) is not installed");

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "/usr/sbin/usbip --tcp-port %s list -r 127.0.0.1 2>&1", f->port);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char out[8192];
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	int status = pclose(p);
	if (status != 0)
		fail_msg("usbip list failed (%d):\n%s", status, out);

	/* One entry per device with its ids, and its four interfaces. */
	const char *d1 = strstr(out, "1-1:");
	const char *d2 = strstr(out, "1-2:");
	if (!d1 || !d2 || !strstr(out, "(0525:a4a0)"))
		fail_msg("devices missing from usbip list:\n%s", out);
	for (int i = 0; i < 4; i++) {
		char line[16];
		snprintf(line, sizeof(line), ":  %d - ", i);
		if (!strstr(d1, line))
			fail_msg("interface %d missing:\n%s", i, out);
	}
	assert_non_null(strstr(out, "/sys/devices/sim/usb1/1-1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_devlist_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detach_on_export, setup_detach_on_export,
						teardown),
		cmocka_unit_test_setup_teardown(test_drivers_kept_by_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_unknown_and_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_record_matches_devlist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_get_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_vendor_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_in_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_out_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_short_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iso_in, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iso_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_then_clear_halt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclaimable_interface_eperm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_configuration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_order_around_state_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_halt_ep0_goes_to_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_completed_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_512_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_killed_mid_transfer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_reset_between_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_vanishes_mid_transfer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_ends_only_that_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_op_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stock_usbip_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_urbs_at_device, setup_small_budget, teardown),
		cmocka_unit_test_setup_teardown(test_budget_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_never_blocks_unlink, setup_small_budget,
						teardown),
		cmocka_unit_test_setup_teardown(test_unlink_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_urb_behind_set_interface, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_lines, setup_trace, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_before_its_submit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6, setup_ipv6, teardown),
		cmocka_unit_test_setup_teardown(test_device_memory_for_big_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_memory_deep_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_memory_refused, setup_no_dev_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_device_memory_runs_out, setup_little_dev_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_poll_then_sleep, setup_busy_poll, teardown),
		cmocka_unit_test_setup_teardown(test_last_reply_written_in_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_busy_poll_when_off, setup_busy_poll_off,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_poll_learns_quick_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_poll_follows_the_device,
						setup_busy_poll_wide, teardown),
		cmocka_unit_test_setup_teardown(test_busy_poll_splits_the_waits,
						setup_busy_poll_wide, teardown),
		cmocka_unit_test_setup_teardown(test_no_busy_poll_for_interrupt_waits,
						setup_busy_poll_wide, teardown),
	};
	return cmocka_run_group_tests_name("server_sim", tests, NULL, NULL);
}
