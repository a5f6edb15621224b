/* Shared pieces of the in-process benchmark (bench_server).
 *
 * One pipelined client (bench_client.c) drives both the real server and a
 * raw-TCP echo peer (bench_peer.c) with the same USB/IP messages, so the
 * ratio between the two is the cost of the server alone. The sim backend
 * driven directly (bench_direct.c) is the other reference. Everything here
 * is single-purpose benchmark code: no locking unless said, errors are
 * negative errno and end the run. */
#ifndef USBIP_NOTIFY_BENCH_BENCH_H
#define USBIP_NOTIFY_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* Most URBs any case keeps in flight, and the largest payload. */
#define BENCH_MAX_DEPTH 32
#define BENCH_MAX_LEN (64u * 1024u)

/* ---- Time and CPU ---------------------------------------------------------- */

uint64_t bench_now_ns(void);         /* CLOCK_MONOTONIC */
uint64_t bench_thread_cpu_ns(void);  /* CLOCK_THREAD_CPUTIME_ID of the caller */
uint64_t bench_process_cpu_ns(void); /* CLOCK_PROCESS_CPUTIME_ID: every thread */

/* Context switches (voluntary + involuntary, getrusage) of the whole
 * process and of the calling thread (0 where RUSAGE_THREAD is missing). */
struct bench_ctxsw {
	uint64_t process;
	uint64_t thread;
};
void bench_ctxsw_read(struct bench_ctxsw *c);

/* VmRSS / VmHWM of this process in KiB (-1 when /proc is missing). */
struct bench_mem {
	long rss_kib;
	long hwm_kib;
};
void bench_mem_read(struct bench_mem *m);
/* Resets VmHWM to the current RSS (Linux: "5" > /proc/self/clear_refs).
 * Returns false where that is not possible; VmHWM is then the peak since
 * the process started. */
bool bench_mem_reset_peak(void);

/* ---- Latency histogram ----------------------------------------------------- */

/* Log-linear buckets: exact below 64 ns, then 32 per power of two (about 3%
 * resolution) up to ~2^40 ns. Fixed size, so recording allocates nothing. */
#define BENCH_HIST_SUB 32u
#define BENCH_HIST_BUCKETS (2u * BENCH_HIST_SUB + 36u * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t count;
	uint64_t bucket[BENCH_HIST_BUCKETS];
};

void bench_hist_clear(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
/* Adds src's samples to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The q-quantile (0..1) in ns, as its bucket's midpoint; 0 when empty. */
double bench_hist_quantile(const struct bench_hist *h, double q);

/* ---- What one case moves --------------------------------------------------- */

enum bench_kind {
	BENCH_CTRL_IN,  /* control IN on ep0: gadget zero's vendor read (0x5c) */
	BENCH_BULK_IN,  /* bulk IN on 0x81 (source) */
	BENCH_BULK_OUT, /* bulk OUT on 0x01 (sink) */
	BENCH_INT_IN,   /* interrupt IN on 0x83 (source): a HID device's reports */
};

struct bench_pattern {
	enum bench_kind kind;
	uint32_t len;   /* data bytes per URB (wLength for control) */
	int depth;      /* URBs kept in flight, 1..BENCH_MAX_DEPTH */
};

/* What one measured window produced. Times are in ns. */
struct bench_result {
	uint64_t urbs;       /* completed inside the window */
	uint64_t bytes;      /* payload bytes those URBs moved */
	uint64_t wall_ns;    /* window start to the last completion */
	uint64_t client_cpu_ns;  /* the driving thread's own CPU time */
	uint64_t process_cpu_ns; /* the whole process's CPU time */
	uint64_t client_ctxsw;   /* the driving thread's context switches */
	uint64_t process_ctxsw;  /* the whole process's */
	struct bench_hist lat;   /* per-URB submit -> reply */
};

/* Adds one round's figures to a total (wall times and CPU times add up). */
void bench_result_add(struct bench_result *total, const struct bench_result *round);

struct bench_timing {
	uint64_t warmup_ns;  /* run, then forget, before the window opens */
	uint64_t window_ns;  /* submit for this long, then drain */
};

/* ---- The pipelined client (bench_client.c) --------------------------------- */

/* Buffers for one driver, allocated and touched once up front so the runs
 * themselves allocate nothing (the RSS figures are the server's). */
struct bench_client;
struct bench_client *bench_client_new(void);
void bench_client_free(struct bench_client *c);

/* A TCP connection to 127.0.0.1:port with TCP_NODELAY. fd or -errno. */
int bench_connect(int port);

/* OP_REQ_IMPORT of busid on fd; *devid from the reply's record. 0 or -errno
 * (-EREMOTEIO when the server refused). */
int bench_import(int fd, const char *busid, uint32_t *devid);

/* Keeps p->depth CMD_SUBMITs in flight on fd (batched into one send per
 * turn, replies parsed many per recv) for t->warmup_ns + t->window_ns and
 * drains. Every RET_SUBMIT must be status 0 with the full length. Returns 0
 * or -errno (-EPROTO for a reply that does not fit). */
int bench_client_run(struct bench_client *c, int fd, uint32_t devid,
		     const struct bench_pattern *p, const struct bench_timing *t,
		     struct bench_result *out);

/* ---- The raw-TCP reference peer (bench_peer.c) ----------------------------- */

/* A listener on 127.0.0.1 and a thread that serves one connection on it the
 * way the smallest possible server would: read each 48-byte CMD_SUBMIT
 * header (+ OUT payload), answer a 48-byte RET_SUBMIT (+ IN payload of the
 * requested length), all replies of one recv in one sendmsg, TCP_NODELAY.
 * Buffers are allocated and touched by bench_peer_new. */
struct bench_peer;
struct bench_peer *bench_peer_new(void);
/* Starts listening and serving one connection; returns its port or -errno. */
int bench_peer_start(struct bench_peer *peer);
/* Waits for the served connection to end (the client closes first).
 * Returns 0 or the -errno that ended it early. */
int bench_peer_join(struct bench_peer *peer);
void bench_peer_free(struct bench_peer *peer);

/* ---- The sim backend alone (bench_direct.c) -------------------------------- */

struct bench_direct;
struct bench_direct *bench_direct_new(void);
void bench_direct_free(struct bench_direct *d);

/* Opens busid on b (retrying while a finished server session still holds
 * it), keeps p->depth transfers in flight from the calling thread, waiting
 * on a condition variable for completions the sim's event thread delivers,
 * and closes it again. 0 or -errno. */
int bench_direct_run(struct bench_direct *d, struct backend *b, const char *busid,
		     const struct bench_pattern *p, const struct bench_timing *t,
		     struct bench_result *out);

/* The 8 setup bytes of the control case: vendor IN 0x5c, wLength len. And
 * the vendor OUT 0x5b that first stores len bytes for it to read back. */
void bench_ctrl_read_setup(uint8_t setup[8], uint16_t len);
void bench_ctrl_write_setup(uint8_t setup[8], uint16_t len);

#endif
