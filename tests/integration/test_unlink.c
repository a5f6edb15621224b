/* Unlink sequences like usbtest's, against both cancel semantics of the sim:
 * per transfer (Linux's usbfs) and darwin mode (libusb on macOS aborts the
 * whole pipe). The client must see the same thing from both: only the
 * unlinked URBs end, the others complete in order with their data, and
 * every CMD_UNLINK has exactly one RET_UNLINK (the test client is as strict
 * as vhci about a RET_SUBMIT after its URB was given back). Also: repeated
 * unlinks of one URB, a duplicate pending seqnum, and a transfer that never
 * completes at all when the session closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/sim.h"
#include "proto/bytes.h"
#include "server/server.h"
#include "usbip_client.h"

#define TIMEOUT_MS 3000
#define DRAIN_MS 300 /* the closing session's wait for a wedged transfer */
#define FIFO_MAX SIM_LOOPBACK_MAX

struct fixture {
	struct backend *sim;
	struct server *srv;
	bool darwin;
	char port[8];
};

static int start_with(void **state, bool darwin, unsigned max_urbs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->darwin = darwin;
	f->sim = sim_backend_new("zero,zero");
	assert_non_null(f->sim);
	assert_int_equal(sim_set_darwin(f->sim, darwin), 0);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = "0";
	cfg.limits.drain_ms = DRAIN_MS;
	if (max_urbs)
		cfg.limits.max_urbs = max_urbs;
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	snprintf(f->port, sizeof(f->port), "%d", server_port(f->srv));
	*state = f;
	return 0;
}

static int setup_usbfs(void **state)
{
	return start_with(state, false, 0);
}

static int setup_darwin(void **state)
{
	return start_with(state, true, 0);
}

enum { SMALL_MAX_URBS = 4 };

static int setup_small(void **state)
{
	return start_with(state, false, SMALL_MAX_URBS);
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

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Imports busid, waiting up to within_ms for an earlier session to let go. */
static struct uc_conn *import_within(struct fixture *f, const char *busid, int within_ms)
{
	for (int waited = 0; waited <= within_ms; waited += 20) {
		struct uc_conn *c = NULL;
		assert_int_equal(uc_connect("127.0.0.1", f->port, TIMEOUT_MS, &c), 0);
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

static struct uc_conn *import_dev(struct fixture *f)
{
	return import_within(f, "1-1", 0);
}

static void submit(struct uc_conn *c, uint32_t seq, uint32_t dir, uint32_t ep, uint32_t len,
		   const uint8_t *out)
{
	struct uc_urb u = {
		.seqnum = seq,
		.devid = uc_devid(c),
		.direction = dir,
		.ep = ep,
		.buffer_length = len,
		.transfer_flags = dir == USBIP_DIR_IN ? USBIP_URB_DIR_IN : 0,
		.out_data = out,
	};
	int rc = uc_submit(c, &u);
	if (rc != 0)
		fail_msg("submit %u: %s (%s)", seq, uc_strerror(rc), uc_last_error(c));
}

static void recv_reply(struct uc_conn *c, struct uc_reply *r)
{
	int rc = uc_recv(c, r, TIMEOUT_MS);
	if (rc != 0)
		fail_msg("recv: %s (%s)", uc_strerror(rc), uc_last_error(c));
}

/* The next reply is RET_UNLINK seq -ECONNRESET; first: the first answer
 * for its victim (the client gives the URB back with it). */
static void expect_unlink_verdict(struct uc_conn *c, uint32_t seq, bool first)
{
	struct uc_reply r;
	recv_reply(c, &r);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.seqnum, seq);
	assert_int_equal(r.status, -LNX_ECONNRESET);
	assert_int_equal(r.victim_was_pending, first);
	uc_reply_free(&r);
}

static void expect_unlink_won(struct uc_conn *c, uint32_t seq)
{
	expect_unlink_verdict(c, seq, true);
}

static void expect_quiet(struct uc_conn *c, int ms)
{
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, ms), UC_E_TIMEOUT);
}

/* Darwin mode really aborted pipes (the test proved something), and the
 * per-transfer mode never did. */
static void check_bystanders(struct fixture *f)
{
	if (f->darwin)
		assert_true(sim_pipe_bystanders(f->sim) > 0);
	else
		assert_int_equal(sim_pipe_bystanders(f->sim), 0);
}

/* One round trip through the loopback: the stream and device are fine. */
static void loopback_roundtrip(struct uc_conn *c, uint32_t seq)
{
	uint8_t msg[7] = { 7, 6, 5, 4, 3, 2, 1 };
	struct uc_reply r;
	submit(c, seq, USBIP_DIR_OUT, 2, sizeof(msg), msg);
	recv_reply(c, &r);
	assert_int_equal(r.seqnum, seq);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
	submit(c, seq + 1, USBIP_DIR_IN, 2, 512, NULL);
	recv_reply(c, &r);
	assert_int_equal(r.seqnum, seq + 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, sizeof(msg));
	assert_memory_equal(r.data, msg, sizeof(msg));
	uc_reply_free(&r);
}

/* Reads the loopback FIFO until want bytes came, into out. */
static void read_fifo(struct uc_conn *c, uint32_t *seq, uint8_t *out, size_t want)
{
	size_t got = 0;
	while (got < want) {
		struct uc_reply r;
		size_t n = want - got < FIFO_MAX ? want - got : FIFO_MAX;
		submit(c, *seq, USBIP_DIR_IN, 2, (uint32_t)n, NULL);
		recv_reply(c, &r);
		assert_int_equal(r.command, USBIP_RET_SUBMIT);
		assert_int_equal(r.seqnum, *seq);
		assert_int_equal(r.status, 0);
		memcpy(out + got, r.data, r.actual_length);
		got += r.actual_length;
		(*seq)++;
		uc_reply_free(&r);
	}
}

enum { QUEUE = 8, PACKET = 512 };

/* usbtest's "unlink one of many queued reads": eight reads wait on the
 * loopback, the third is unlinked; the other seven then get the next seven
 * packets written, in order. */
static void test_unlink_one_of_many_reads(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	for (uint32_t i = 1; i <= QUEUE; i++)
		submit(c, i, USBIP_DIR_IN, 2, PACKET, NULL);
	expect_quiet(c, 100);
	assert_int_equal(uc_unlink(c, 100, 3), 0);
	expect_unlink_won(c, 100);
	expect_quiet(c, 100); /* nothing for the seven others yet */
	check_bystanders(f);

	uint8_t pkt[QUEUE][PACKET];
	for (uint32_t k = 0; k < QUEUE - 1; k++) {
		memset(pkt[k], (int)(0xa0 + k), PACKET);
		submit(c, 200 + k, USBIP_DIR_OUT, 2, PACKET, pkt[k]);
	}
	unsigned writes = 0, reads = 0;
	static const uint32_t read_order[QUEUE - 1] = { 1, 2, 4, 5, 6, 7, 8 };
	while (writes + reads < 2 * (QUEUE - 1)) {
		struct uc_reply r;
		recv_reply(c, &r);
		assert_int_equal(r.command, USBIP_RET_SUBMIT);
		assert_int_equal(r.status, 0);
		if (r.seqnum >= 200) {
			writes++;
		} else {
			assert_int_equal(r.seqnum, read_order[reads]);
			assert_int_equal(r.actual_length, PACKET);
			assert_memory_equal(r.data, pkt[reads], PACKET);
			reads++;
		}
		uc_reply_free(&r);
	}
	loopback_roundtrip(c, 300);
	assert_int_equal(uc_outstanding(c), 0);
	uc_close(c);
}

/* Fills the loopback FIFO to within room bytes of full. */
static void fill_fifo(struct uc_conn *c, uint32_t seq, size_t room, uint8_t *fill)
{
	struct uc_reply r;
	for (size_t i = 0; i < FIFO_MAX - room; i++)
		fill[i] = (uint8_t)(i * 7);
	submit(c, seq, USBIP_DIR_OUT, 2, (uint32_t)(FIFO_MAX - room), fill);
	recv_reply(c, &r);
	assert_int_equal(r.status, 0);
	uc_reply_free(&r);
}

/* "Unlink one of many queued writes": six writes wait for room in a full
 * FIFO, the third is unlinked; the others land in order, once each. */
static void test_unlink_one_of_many_writes(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	static uint8_t fill[FIFO_MAX];
	fill_fifo(c, 1, 0, fill);

	enum { N = 6 };
	uint8_t pkt[N][PACKET];
	for (uint32_t k = 0; k < N; k++) {
		memset(pkt[k], (int)(0x10 + k), PACKET);
		submit(c, 11 + k, USBIP_DIR_OUT, 2, PACKET, pkt[k]);
	}
	expect_quiet(c, 100);
	assert_int_equal(uc_unlink(c, 100, 13), 0);
	expect_unlink_won(c, 100);
	expect_quiet(c, 100);
	check_bystanders(f);

	/* Make room: the FIFO's content first, then the five writes in order. */
	static uint8_t back[FIFO_MAX + N * PACKET];
	uint32_t seq = 200;
	size_t got = 0;
	unsigned writes = 0;
	static const uint32_t write_order[N - 1] = { 11, 12, 14, 15, 16 };
	submit(c, seq, USBIP_DIR_IN, 2, FIFO_MAX, NULL);
	while (writes < N - 1 || got < FIFO_MAX) {
		struct uc_reply r;
		recv_reply(c, &r);
		assert_int_equal(r.command, USBIP_RET_SUBMIT);
		assert_int_equal(r.status, 0);
		if (r.seqnum < 200) {
			assert_int_equal(r.seqnum, write_order[writes]);
			writes++;
		} else {
			memcpy(back + got, r.data, r.actual_length);
			got += r.actual_length;
		}
		uc_reply_free(&r);
	}
	assert_memory_equal(back, fill, FIFO_MAX);
	seq++;
	read_fifo(c, &seq, back, (N - 1) * PACKET);
	for (unsigned i = 0; i < N - 1; i++)
		assert_memory_equal(back + i * PACKET, pkt[write_order[i] - 11], PACKET);
	loopback_roundtrip(c, 400);
	uc_close(c);
}

/* "Unlink from the middle of a queue": eight reads on a slow source, two
 * in the middle unlinked. Each unlinked one ends one way or the other (it
 * may have completed first); the six others complete in order, whole. */
static void test_unlink_middle_of_queue(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	assert_int_equal(sim_set_delay(f->sim, "1-1", 150), 0);
	for (uint32_t i = 1; i <= QUEUE; i++)
		submit(c, i, USBIP_DIR_IN, 1, 8 * PACKET, NULL);
	assert_int_equal(uc_unlink(c, 104, 4), 0);
	assert_int_equal(uc_unlink(c, 106, 6), 0);

	static const uint32_t order[QUEUE - 2] = { 1, 2, 3, 5, 7, 8 };
	unsigned done = 0, unlinks = 0;
	bool answered[QUEUE + 1] = { false };
	while (done < QUEUE - 2 || unlinks < 2) {
		struct uc_reply r;
		recv_reply(c, &r);
		if (r.command == USBIP_RET_UNLINK) {
			unlinks++;
			uint32_t victim = r.seqnum - 100;
			if (r.status == -LNX_ECONNRESET)
				assert_false(answered[victim]);
			else
				assert_true(answered[victim]); /* its RET_SUBMIT came first */
		} else if (r.seqnum == 4 || r.seqnum == 6) {
			answered[r.seqnum] = true;
			assert_int_equal(r.status, 0);
		} else {
			assert_int_equal(r.seqnum, order[done]);
			assert_int_equal(r.status, 0);
			assert_int_equal(r.actual_length, 8 * PACKET);
			done++;
		}
		uc_reply_free(&r);
	}
	assert_int_equal(sim_set_delay(f->sim, "1-1", 0), 0);
	assert_int_equal(uc_outstanding(c), 0);
	loopback_roundtrip(c, 300);
	uc_close(c);
}

/* Control URBs share one pipe (darwin: USBDeviceAbortPipeZero): three
 * GET_DESCRIPTORs on a slow device, the middle one unlinked; the others
 * complete in order with the whole descriptor. */
static void test_unlink_control_in_queue(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	assert_int_equal(sim_set_delay(f->sim, "1-1", 150), 0);
	for (uint32_t i = 1; i <= 3; i++) {
		struct uc_urb u = {
			.seqnum = i,
			.devid = uc_devid(c),
			.direction = USBIP_DIR_IN,
			.ep = 0,
			.buffer_length = 18,
			.transfer_flags = USBIP_URB_DIR_IN,
			.setup = { 0x80, 6, 0, 1, 0, 0, 18, 0 }, /* device descriptor */
		};
		assert_int_equal(uc_submit(c, &u), 0);
	}
	assert_int_equal(uc_unlink(c, 10, 2), 0);
	int32_t verdict = 1; /* not yet */
	uint32_t order[3], n = 0;
	while (verdict == 1 || uc_outstanding(c) > 0) {
		struct uc_reply r;
		recv_reply(c, &r);
		if (r.command == USBIP_RET_UNLINK) {
			assert_int_equal(r.seqnum, 10);
			verdict = r.status;
		} else {
			assert_true(n < 3);
			order[n++] = r.seqnum;
			assert_int_equal(r.status, 0);
			assert_int_equal(r.actual_length, 18);
			assert_int_equal(r.data[0], 18);
			assert_int_equal(r.data[1], 1);
		}
		uc_reply_free(&r);
	}
	/* Won: 1 and 3 in order. Lost: 2 had completed, all three in order. */
	if (verdict == -LNX_ECONNRESET) {
		check_bystanders(f); /* darwin: 3 at least went down with 2 */
		assert_int_equal(n, 2);
		assert_int_equal(order[0], 1);
		assert_int_equal(order[1], 3);
	} else {
		assert_int_equal(verdict, 0);
		assert_int_equal(n, 3);
		for (uint32_t i = 0; i < 3; i++)
			assert_int_equal(order[i], i + 1);
	}
	assert_int_equal(sim_set_delay(f->sim, "1-1", 0), 0);
	assert_int_equal(uc_outstanding(c), 0);
	loopback_roundtrip(c, 300);
	uc_close(c);
}

/* "Unlink all": every queued read unlinked, last first; no RET_SUBMIT.
 * The answers may come in any order (darwin mode: as the aborted pipe's
 * completions come in). */
static void test_unlink_all(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	for (uint32_t i = 1; i <= QUEUE; i++)
		submit(c, i, USBIP_DIR_IN, 2, PACKET, NULL);
	expect_quiet(c, 100);
	for (uint32_t i = QUEUE; i >= 1; i--)
		assert_int_equal(uc_unlink(c, 100 + i, i), 0);
	bool seen[QUEUE + 1] = { false };
	for (uint32_t i = 0; i < QUEUE; i++) {
		struct uc_reply r;
		recv_reply(c, &r);
		assert_int_equal(r.command, USBIP_RET_UNLINK);
		assert_in_range(r.seqnum, 101, 100 + QUEUE);
		assert_false(seen[r.seqnum - 100]);
		seen[r.seqnum - 100] = true;
		assert_int_equal(r.status, -LNX_ECONNRESET);
		assert_true(r.victim_was_pending);
		uc_reply_free(&r);
	}
	expect_quiet(c, 100);
	loopback_roundtrip(c, 300);
	uc_close(c);
}

/* The URB at the head of an aborted pipe may have moved part of its data
 * (darwin mode: a loopback write puts in the whole packets that fit). It
 * must neither repeat them nor lose the rest: the FIFO ends up holding its
 * bytes exactly once, and its RET_SUBMIT counts them all. */
static void test_abort_keeps_moved_data(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	enum { ROOM = 1000, BIG = 8 * PACKET };
	static uint8_t fill[FIFO_MAX], back[FIFO_MAX + BIG];
	fill_fifo(c, 1, ROOM, fill);
	uint8_t big[BIG], small[PACKET];
	for (unsigned i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i / 3);
	memset(small, 0xee, sizeof(small));
	submit(c, 2, USBIP_DIR_OUT, 2, BIG, big);     /* waits for room */
	submit(c, 3, USBIP_DIR_OUT, 2, PACKET, small); /* behind it */
	expect_quiet(c, 100);
	assert_int_equal(uc_unlink(c, 4, 3), 0);
	expect_unlink_won(c, 4);
	check_bystanders(f);

	/* Read everything back; the big write completes whole on the way. */
	uint32_t seq = 10;
	bool big_done = false;
	size_t got = 0;
	while (got < FIFO_MAX - ROOM + BIG) {
		struct uc_reply r;
		submit(c, seq, USBIP_DIR_IN, 2, FIFO_MAX, NULL);
		for (bool mine = false; !mine;) {
			recv_reply(c, &r);
			assert_int_equal(r.command, USBIP_RET_SUBMIT);
			assert_int_equal(r.status, 0);
			if (r.seqnum == 2) {
				assert_int_equal(r.actual_length, BIG);
				big_done = true;
			} else {
				assert_int_equal(r.seqnum, seq);
				memcpy(back + got, r.data, r.actual_length);
				got += r.actual_length;
				mine = true;
			}
			uc_reply_free(&r);
		}
		seq++;
	}
	if (!big_done) {
		struct uc_reply r;
		recv_reply(c, &r);
		assert_int_equal(r.seqnum, 2);
		assert_int_equal(r.status, 0);
		assert_int_equal(r.actual_length, BIG);
		uc_reply_free(&r);
	}
	assert_memory_equal(back, fill, FIFO_MAX - ROOM);
	assert_memory_equal(back + FIFO_MAX - ROOM, big, BIG);
	expect_quiet(c, 100); /* and nothing more in the FIFO or the stream */
	loopback_roundtrip(c, 100);
	uc_close(c);
}

/* A fifth, sixth... CMD_UNLINK of one pending URB: none is answered before
 * the URB ends (an early status 0 would say its RET_SUBMIT had gone out),
 * then all of them, in order, with the one verdict. */
static void test_many_unlinks_of_one_urb(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	assert_int_equal(sim_wedge_next(f->sim, "1-1", 0x82), 0);
	submit(c, 1, USBIP_DIR_IN, 2, PACKET, NULL);
	enum { N = 7 };
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(uc_unlink(c, 11 + i, 1), 0);
	expect_quiet(c, 200); /* the transfer ignores its cancel for now */
	assert_int_equal(sim_unwedge(f->sim, "1-1"), 0);
	for (uint32_t i = 0; i < N; i++)
		expect_unlink_verdict(c, 11 + i, i == 0);
	expect_quiet(c, 100);
	loopback_roundtrip(c, 300);
	uc_close(c);
}

/* More unlinks waiting than a vhci could send (twice --max-urbs) close the
 * session. The URB never ends (wedged), so after the drain time it is given
 * up: each unlink kept is then answered -ECONNRESET, the connection closes,
 * and the device serves the next session. */
static void test_unlinks_past_the_bound(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	assert_int_equal(sim_wedge_next(f->sim, "1-1", 0x82), 0);
	submit(c, 1, USBIP_DIR_IN, 2, PACKET, NULL);
	enum { KEPT = 2 * SMALL_MAX_URBS };
	for (uint32_t i = 0; i <= KEPT; i++)
		assert_int_equal(uc_unlink(c, 11 + i, 1), 0);
	for (uint32_t i = 0; i < KEPT; i++)
		expect_unlink_verdict(c, 11 + i, i == 0);
	struct uc_reply r;
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), UC_E_CLOSED);
	uc_close(c);

	c = import_within(f, "1-1", TIMEOUT_MS);
	loopback_roundtrip(c, 1);
	uc_close(c);
}

/* Two pending submits with one seqnum: the session ends (any reply would
 * be ambiguous). The first URB's answer still goes out, the second gets
 * none, and the device serves the next session. */
static void test_duplicate_seqnum(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	submit(c, 5, USBIP_DIR_IN, 2, PACKET, NULL); /* pends */
	expect_quiet(c, 50);
	struct usbip_header h = {
		.command = USBIP_CMD_SUBMIT,
		.seqnum = 5,
		.devid = uc_devid(c),
		.direction = USBIP_DIR_IN,
		.ep = 2,
		.u.cmd_submit = { .transfer_flags = USBIP_URB_DIR_IN,
				  .transfer_buffer_length = PACKET },
	};
	uint8_t raw[USBIP_HEADER_SIZE];
	assert_int_equal(usbip_header_encode(&h, raw, sizeof(raw)), USBIP_HEADER_SIZE);
	assert_int_equal(uc_send_raw(c, raw, sizeof(raw)), 0);

	struct uc_reply r;
	recv_reply(c, &r);
	assert_int_equal(r.command, USBIP_RET_SUBMIT);
	assert_int_equal(r.seqnum, 5);
	assert_int_equal(r.status, -LNX_ECONNRESET); /* cancelled by the close */
	uc_reply_free(&r);
	assert_int_equal(uc_recv(c, &r, TIMEOUT_MS), UC_E_CLOSED);
	uc_close(c);

	c = import_within(f, "1-1", TIMEOUT_MS);
	loopback_roundtrip(c, 1);
	uc_close(c);
}

/* A transfer that never completes and ignores its cancel must not hold the
 * session or the device: after the drain time it is counted lost, the
 * device is reset and closed, and the next session works. */
static void test_wedged_transfer_at_close(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	assert_int_equal(sim_wedge_next(f->sim, "1-1", 0x82), 0);
	submit(c, 1, USBIP_DIR_IN, 2, PACKET, NULL);
	submit(c, 2, USBIP_DIR_IN, 1, PACKET, NULL); /* another endpoint: answered */
	struct uc_reply r;
	recv_reply(c, &r);
	assert_int_equal(r.seqnum, 2);
	uc_reply_free(&r);
	expect_quiet(c, 50);
	assert_int_equal(sim_pending_transfers(f->sim), 1);
	uc_close(c);

	c = import_within(f, "1-1", 10 * DRAIN_MS);
	loopback_roundtrip(c, 1);
	assert_int_equal(sim_pending_transfers(f->sim), 0); /* the close ended it */
	uc_close(c);
}

/* Darwin mode: a bystander of a pipe abort goes back to the device and
 * wedges there (the wedge catches the next submit on the endpoint: its
 * resubmission). The closing session must give up on it all the same. */
static void test_resubmitted_bystander_wedges(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	submit(c, 1, USBIP_DIR_IN, 2, PACKET, NULL);
	submit(c, 2, USBIP_DIR_IN, 2, PACKET, NULL);
	expect_quiet(c, 50);
	assert_int_equal(sim_wedge_next(f->sim, "1-1", 0x82), 0);
	assert_int_equal(uc_unlink(c, 3, 2), 0);
	expect_unlink_won(c, 3);
	uc_close(c);

	c = import_within(f, "1-1", 10 * DRAIN_MS);
	assert_int_equal(sim_unwedge(f->sim, "1-1"), 0); /* usbfs: the wedge is still armed */
	loopback_roundtrip(c, 1);
	uc_close(c);
}

/* Darwin mode leaves a device closed unreset stuck; the server resets it
 * at every session's end, so the next session finds it working. */
static void test_next_session_after_transfers(void **state)
{
	struct fixture *f = *state;
	struct uc_conn *c = import_dev(f);
	loopback_roundtrip(c, 1);
	uc_close(c);
	c = import_within(f, "1-1", TIMEOUT_MS);
	loopback_roundtrip(c, 1);
	uc_close(c);
}

#define BOTH(fn)                                                                           \
	{ #fn " (usbfs)", fn, setup_usbfs, teardown, NULL },                               \
	{                                                                                  \
		#fn " (darwin)", fn, setup_darwin, teardown, NULL                          \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_unlink_one_of_many_reads),
		BOTH(test_unlink_one_of_many_writes),
		BOTH(test_unlink_middle_of_queue),
		BOTH(test_unlink_control_in_queue),
		BOTH(test_unlink_all),
		BOTH(test_abort_keeps_moved_data),
		BOTH(test_many_unlinks_of_one_urb),
		BOTH(test_duplicate_seqnum),
		BOTH(test_wedged_transfer_at_close),
		BOTH(test_resubmitted_bystander_wedges),
		BOTH(test_next_session_after_transfers),
		{ "test_unlinks_past_the_bound", test_unlinks_past_the_bound, setup_small, teardown,
		  NULL },
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
