/* libFuzzer target: the server's session state machine.
 *
 * Each input is a script of client actions (submit, unlink, wait, drain,
 * disconnect) run against a real session (src/server/session*.c, the engine
 * and its worker) on one end of a socketpair, with a sim "zero" device. The
 * harness plays vhci on the other end and keeps a model of what it is owed;
 * every reply is checked against the unlink rules of shared/docs/PROTOCOL.md
 * as it arrives, and the whole exchange at the end:
 *   - a RET_SUBMIT only for a submitted seqnum not yet answered, and never
 *     for an URB whose unlink was answered -ECONNRESET (nor after it);
 *   - a RET_UNLINK only for a sent CMD_UNLINK, once; -ECONNRESET only while
 *     its victim had no RET_SUBMIT yet, 0 only when the victim was answered
 *     already (its RET_SUBMIT, or an earlier unlink's -ECONNRESET) or never
 *     existed;
 *   - no reply with a seqnum the client did not use;
 *   - at the end (every URB still pending unlinked first) each submit got
 *     exactly one answer (its RET_SUBMIT, or a RET_UNLINK -ECONNRESET) and
 *     each unlink one RET_UNLINK, within a bound (no hang);
 *   - after the client goes, the session ends, and no transfer or claim is
 *     left at the sim.
 * A failed check traps, so libFuzzer keeps the input.
 *
 * Input layout:
 *   byte 0     bits 0-1: completion delay in ms (sim_set_delay), so unlinks
 *              race completions; bit 2: a budget of 4 URBs (-ENOMEM past it)
 *   then actions, one byte each plus operands:
 *     0-3  submit: kind byte (see submit()), length byte
 *     4    unlink: target byte (a pending URB, an answered one, or unknown)
 *     5    wait for one reply (up to 50 ms)
 *     6    drain what has arrived
 *     7    disconnect now: stop here, with whatever is outstanding
 * Seqnums grow with gaps (vhci numbers across all its devices). A CMD_UNLINK
 * for a number it never used before its own is not sent: engine.md has such
 * an unlink wait for a submit that overtook it. At most URB_MAX_UNLINKS
 * unlinks go to one URB (what a fifth gets is issue 9's open question). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/sim.h"
#include "common/log.h"
#include "proto/bytes.h"
#include "proto/linux_errno.h"
#include "proto/usbip_codec.h"
#include "server/engine.h"
#include "server/session.h"

#define MAX_REQ 256        /* requests per input */
#define MAX_UNLINKS_PER_URB 4
#define END_WAIT_MS 5000   /* for every answer owed at the end */

static void check(bool ok)
{
	if (!ok)
		__builtin_trap();
}

/* ---- The world, made once ---- */

static struct backend *sim;
static struct engine *engine;
static struct bk_device_info info;

static void world_init(void)
{
	if (sim)
		return;
	log_set_level(LOG_LEVEL_ERROR); /* a session's routine lines, millions of times */
	sim = sim_backend_new("zero");
	check(sim != NULL);
	check(sim->ops->start(sim) == 0);
	engine = engine_new(sim);
	check(engine != NULL && engine_start(engine) == 0);
	struct bk_device_info *devs;
	size_t n;
	check(sim->ops->enumerate(sim, &devs, &n) == 0 && n == 1);
	info = devs[0];
	free(devs);
}

/* ---- The model ---- */

enum req_state {
	R_PENDING,    /* no answer yet */
	R_SUBMITTED,  /* RET_SUBMIT came */
	R_UNLINKED,   /* a RET_UNLINK -ECONNRESET answered it */
	R_UNLINK_DONE /* an unlink, answered */
};

struct req {
	uint32_t seqnum;
	bool unlink;
	bool in;           /* submit: IN data comes back */
	uint32_t victim;   /* unlink */
	unsigned n_unlinks; /* submit: unlinks sent for it */
	enum req_state state;
};

struct run {
	int fd;
	uint32_t devid, next_seq;
	struct req req[MAX_REQ];
	unsigned n;
	unsigned owed; /* requests without their answer */
	unsigned max_waiting; /* unlinks of pending URBs the session allows */
	uint8_t *rx;
	size_t rx_len, rx_cap;
};

static struct req *find(struct run *r, uint32_t seqnum)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->req[i].seqnum == seqnum)
			return &r->req[i];
	return NULL;
}

static void on_ret_unlink(struct run *r, uint32_t seqnum, int32_t status);
static bool debug;

static void on_ret_submit(struct run *r, uint32_t seqnum)
{
	if (debug)
		fprintf(stderr, "RET_SUBMIT %u\n", seqnum);
	struct req *q = find(r, seqnum);
	check(q && !q->unlink);            /* a seqnum we submitted */
	check(q->state == R_PENDING);      /* answered once, never after its unlink */
	q->state = R_SUBMITTED;
	r->owed--;
}

/* FUZZ_SESSION_DEBUG=1: the exchange on stderr */

static void on_ret_unlink(struct run *r, uint32_t seqnum, int32_t status)
{
	if (debug)
		fprintf(stderr, "RET_UNLINK %u status %d\n", seqnum, status);
	struct req *q = find(r, seqnum);
	check(q && q->unlink && q->state == R_PENDING);
	q->state = R_UNLINK_DONE;
	r->owed--;
	struct req *v = find(r, q->victim);
	if (status == -LNX_ECONNRESET) {
		/* The cancel won: the victim was pending and gets no RET_SUBMIT. */
		check(v && !v->unlink && (v->state == R_PENDING || v->state == R_UNLINKED));
		if (v->state == R_PENDING)
			r->owed--;
		v->state = R_UNLINKED;
	} else {
		/* Too late, unknown, or the victim already answered (by an
		 * earlier unlink): never while its RET_SUBMIT is still to come,
		 * which vhci would take for a reply to nothing. */
		check(status == 0);
		check(!v || v->unlink || v->state != R_PENDING);
	}
}

/* Parses what has arrived; every complete reply goes through the model. */
static void parse(struct run *r)
{
	size_t off = 0;
	while (r->rx_len - off >= USBIP_HEADER_SIZE) {
		struct usbip_header h;
		check(usbip_header_decode(r->rx + off, USBIP_HEADER_SIZE, &h) == USBIP_OK);
		check(h.devid == 0 && h.direction == 0 && h.ep == 0);
		size_t need = USBIP_HEADER_SIZE;
		if (h.command == USBIP_RET_SUBMIT) {
			struct req *q = find(r, h.seqnum);
			check(q != NULL && !q->unlink);
			need += usbip_ret_submit_payload_size(&h, q->in);
		} else {
			check(h.command == USBIP_RET_UNLINK);
		}
		if (r->rx_len - off < need)
			break;
		if (h.command == USBIP_RET_SUBMIT)
			on_ret_submit(r, h.seqnum);
		else
			on_ret_unlink(r, h.seqnum, h.u.ret_unlink.status);
		off += need;
	}
	memmove(r->rx, r->rx + off, r->rx_len - off);
	r->rx_len -= off;
}

/* Reads what is there; waits up to ms for something first. Returns 1 when
 * something came, 0 when nothing did, -1 once the server closed. */
static int pump_in(struct run *r, int ms)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	if (poll(&p, 1, ms) <= 0)
		return 0;
	for (;;) {
		if (r->rx_cap - r->rx_len < 65536) {
			r->rx_cap = r->rx_cap * 2 + 65536;
			r->rx = realloc(r->rx, r->rx_cap);
			check(r->rx != NULL);
		}
		ssize_t n = recv(r->fd, r->rx + r->rx_len, r->rx_cap - r->rx_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			parse(r);
			return -1;
		}
		r->rx_len += (size_t)n;
	}
	parse(r);
	return 1;
}

/* Sends all of p, reading replies whenever the server waits for us to. */
static void send_msg(struct run *r, const uint8_t *p, size_t n)
{
	while (n > 0) {
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN | POLLOUT };
		check(poll(&pfd, 1, END_WAIT_MS) == 1);
		if (pfd.revents & POLLIN)
			check(pump_in(r, 0) >= 0);
		if (!(pfd.revents & POLLOUT))
			continue;
		ssize_t w = send(r->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		check(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

static struct req *new_req(struct run *r)
{
	if (r->n == MAX_REQ)
		return NULL;
	struct req *q = &r->req[r->n++];
	memset(q, 0, sizeof(*q));
	q->seqnum = r->next_seq;
	q->state = R_PENDING;
	r->owed++;
	return q;
}

static void setup(uint8_t *s, uint8_t type, uint8_t req, uint16_t value, uint16_t index,
		  uint16_t length)
{
	s[0] = type;
	s[1] = req;
	put_le16(s + 2, value);
	put_le16(s + 4, index);
	put_le16(s + 6, length);
}

/* One CMD_SUBMIT of a kind the sim answers in its own way. */
static void submit(struct run *r, uint8_t kind, uint8_t lenb)
{
	static uint8_t msg[USBIP_HEADER_SIZE + 16384 + 4 * USBIP_ISO_DESC_SIZE];
	struct req *q = new_req(r);
	if (!q)
		return;
	struct usbip_header h = { .command = USBIP_CMD_SUBMIT, .seqnum = q->seqnum,
				  .devid = r->devid };
	struct usbip_cmd_submit *c = &h.u.cmd_submit;
	uint32_t len = (uint32_t)lenb * 64;
	uint32_t iso = 0;
	switch (kind % 12) {
	case 0: /* GET_DESCRIPTOR(configuration) */
		h.direction = USBIP_DIR_IN;
		len = lenb;
		setup(c->setup, 0x80, 6, 0x0200, 0, (uint16_t)len);
		break;
	case 1: /* bulk IN source */
		h.direction = USBIP_DIR_IN;
		h.ep = 1;
		break;
	case 2: /* bulk OUT sink */
		h.ep = 1;
		break;
	case 3: /* loopback OUT: feeds the pending loopback INs */
		h.ep = 2;
		break;
	case 4: /* loopback IN: pends until data, the natural unlink target */
	case 5:
		h.direction = USBIP_DIR_IN;
		h.ep = 2;
		break;
	case 6: /* interrupt IN */
		h.direction = USBIP_DIR_IN;
		h.ep = 3;
		len = len > 64 ? 64 : len;
		break;
	case 7: /* SET_INTERFACE(1, alt 0 or 1): the worker runs it, in order */
		setup(c->setup, 0x01, 11, lenb & 1, 1, 0);
		len = 0;
		break;
	case 8: /* CLEAR_FEATURE(ENDPOINT_HALT) on 0x81 */
		setup(c->setup, 0x02, 1, 0, 0x81, 0);
		len = 0;
		break;
	case 9: /* iso IN, 4 packets (-EPIPE unless alt 1 is set) */
		h.direction = USBIP_DIR_IN;
		h.ep = 4;
		iso = 4;
		len = 4 * 256;
		break;
	case 10: /* vendor OUT then (kind 11) IN: the device's buffer */
		len = lenb > 255 ? 255 : lenb;
		setup(c->setup, 0x40, 0x5b, 0, 0, (uint16_t)len);
		break;
	case 11:
		h.direction = USBIP_DIR_IN;
		len = lenb;
		setup(c->setup, 0xc0, 0x5c, 0, 0, (uint16_t)len);
		break;
	}
	c->transfer_buffer_length = len;
	c->transfer_flags = h.direction == USBIP_DIR_IN ? USBIP_URB_DIR_IN : 0;
	c->number_of_packets = iso ? iso : 0;
	q->in = h.direction == USBIP_DIR_IN;
	check(usbip_header_encode(&h, msg, sizeof(msg)) == USBIP_HEADER_SIZE);
	size_t n = USBIP_HEADER_SIZE;
	if (!q->in) {
		memset(msg + n, 0xa5, len);
		n += len;
	}
	for (uint32_t i = 0; i < iso; i++) {
		struct usbip_iso_desc d = { .offset = i * 256, .length = 256 };
		check(usbip_iso_descs_encode(&d, 1, msg + n, USBIP_ISO_DESC_SIZE) >= 0);
		n += USBIP_ISO_DESC_SIZE;
	}
	r->next_seq += 1 + (lenb & 1); /* gaps, as vhci leaves them */
	if (debug)
		fprintf(stderr, "CMD_SUBMIT %u kind %u len %u\n", q->seqnum, kind % 12, len);
	send_msg(r, msg, n);
}

/* Unlinks sent for URBs not yet answered, as far as we know: at least as
 * many as wait at the session (some victims may have completed there). */
static unsigned unlinks_waiting(const struct run *r)
{
	unsigned n = 0;
	for (unsigned i = 0; i < r->n; i++) {
		const struct req *q = &r->req[i];
		if (!q->unlink || q->state != R_PENDING)
			continue;
		const struct req *v = find((struct run *)r, q->victim);
		n += v && !v->unlink && v->state == R_PENDING;
	}
	return n;
}

static void unlink_req(struct run *r, uint32_t victim)
{
	struct req *v = find(r, victim);
	if (v && (v->unlink || v->n_unlinks == MAX_UNLINKS_PER_URB))
		return;
	/* More waiting unlinks than twice the URBs allowed close the session
	 * by design (no client could have that many: docs/engine.md). Ours
	 * are cancels at the device, answered soon: read those answers first
	 * (our count lags behind the session's), and hold this one back only
	 * if they do not come. */
	for (int tries = 0; v && v->state == R_PENDING && tries < 20 &&
			    unlinks_waiting(r) >= r->max_waiting; tries++)
		check(pump_in(r, 50) >= 0);
	if (v && v->state == R_PENDING && unlinks_waiting(r) >= r->max_waiting)
		return;
	struct req *q = new_req(r);
	if (!q)
		return;
	q->unlink = true;
	q->victim = victim;
	if (v)
		v->n_unlinks++;
	struct usbip_header h = { .command = USBIP_CMD_UNLINK, .seqnum = q->seqnum,
				  .devid = r->devid };
	h.u.cmd_unlink.seqnum = victim;
	uint8_t msg[USBIP_HEADER_SIZE];
	check(usbip_header_encode(&h, msg, sizeof(msg)) == USBIP_HEADER_SIZE);
	r->next_seq++;
	if (debug)
		fprintf(stderr, "CMD_UNLINK %u victim %u\n", q->seqnum, victim);
	send_msg(r, msg, sizeof(msg));
}

/* An unlink target: a pending submit, an answered one, or a seqnum after
 * this unlink's own (never used: answered 0 at once). */
static void unlink_action(struct run *r, uint8_t t)
{
	unsigned subs[MAX_REQ], ns = 0;
	for (unsigned i = 0; i < r->n; i++)
		if (!r->req[i].unlink && (t & 0x80 ? r->req[i].state != R_PENDING
						   : r->req[i].state == R_PENDING))
			subs[ns++] = i;
	if ((t & 0x40) || ns == 0) {
		uint32_t never = r->next_seq + 1 + (t & 7);
		unlink_req(r, never);
		r->next_seq = never + 1; /* and never used later */
	} else
		unlink_req(r, r->req[subs[t % ns]].seqnum);
}

/* ---- The session ---- */

static void *worker(void *arg)
{
	session_run(arg);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	world_init();
	debug = getenv("FUZZ_SESSION_DEBUG") != NULL;
	check(sim_set_delay(sim, info.busid, data[0] & 3) == 0);
	struct session_limits limits = { .max_urbs = (data[0] & 4) ? 4 : 1024,
					 .max_bytes = 4u * 1024u * 1024u };

	int sv[2];
	check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct session *s = session_new(sim, engine, sv[0], &limits);
	check(s != NULL);
	session_set_need_reset(s, false);
	check(session_open_device(s, &info) == 0);
	pthread_t t;
	check(pthread_create(&t, NULL, worker, s) == 0);

	struct run *r = calloc(1, sizeof(*r));
	check(r != NULL);
	r->fd = sv[1];
	r->devid = usbip_devid(info.busnum, info.devnum);
	r->next_seq = 1;
	r->max_waiting = 2 * limits.max_urbs;
	bool gone = false;
	size_t i = 1;
	while (i < size && !gone) {
		uint8_t op = data[i++] % 8;
		uint8_t a = i < size ? data[i] : 0, b = i + 1 < size ? data[i + 1] : 0;
		switch (op) {
		case 0: case 1: case 2: case 3:
			submit(r, a, b);
			i += 2;
			break;
		case 4:
			unlink_action(r, a);
			i += 1;
			break;
		case 5:
			if (r->owed)
				check(pump_in(r, 50) >= 0);
			break;
		case 6:
			check(pump_in(r, 0) >= 0);
			break;
		case 7:
			gone = true;
			break;
		}
	}
	if (!gone) {
		/* Unlink what still pends (loopback INs wait for data that will
		 * not come), then every answer owed must arrive. */
		for (unsigned k = 0, n = r->n; k < n; k++)
			if (!r->req[k].unlink && r->req[k].state == R_PENDING)
				unlink_req(r, r->req[k].seqnum);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (r->owed > 0) {
			check(pump_in(r, 100) >= 0);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
			check(ms < END_WAIT_MS);
		}
		check(r->rx_len == 0);
		/* Nothing more comes: every request has its one answer, and a
		 * stray reply would arrive before the session's end. */
	}
	shutdown(sv[1], SHUT_WR);
	/* The session ends, and nothing more comes before its close: a stray
	 * reply traps in parse(), a session that never ends meets libFuzzer's
	 * -timeout (run_fuzzer.sh counts both as failures). */
	if (!gone) {
		while (pump_in(r, 1000) >= 0)
			;
		check(r->rx_len == 0);
	}
	close(sv[1]);
	pthread_join(t, NULL);
	session_free(s);
	close(sv[0]);
	check(sim_pending_transfers(sim) == 0);
	check(sim_claimed_interfaces(sim) == 0);
	free(r->rx);
	free(r);
	return 0;
}
