/* Clocks, /proc/self/status and the latency histogram of the benchmark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t bench_thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t bench_process_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

void bench_ctxsw_read(struct bench_ctxsw *c)
{
	struct rusage ru;

	c->process = c->thread = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		c->process = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
#ifdef RUSAGE_THREAD
	if (getrusage(RUSAGE_THREAD, &ru) == 0)
		c->thread = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
#endif
}

void bench_mem_read(struct bench_mem *m)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	m->rss_kib = -1;
	m->hwm_kib = -1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			m->rss_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			m->hwm_kib = strtol(line + 6, NULL, 10);
	}
	fclose(f);
}

bool bench_mem_reset_peak(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (f == NULL)
		return false;
	bool ok = fputs("5", f) >= 0;
	if (fclose(f) != 0)
		ok = false;
	return ok;
}

void bench_hist_clear(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

/* Index of the highest set bit; v > 0. */
static unsigned msb64(uint64_t v)
{
	unsigned n = 0;

	while (v >>= 1)
		n++;
	return n;
}

/* Values below 2*SUB have a bucket each; above, a power of two [2^k, 2^k+1)
 * is split into SUB buckets of width 2^(k-5). */
static unsigned bucket_of(uint64_t ns)
{
	if (ns < 2u * BENCH_HIST_SUB)
		return (unsigned)ns;
	unsigned shift = msb64(ns) - 5u; /* ns >> shift lies in [32, 64) */
	unsigned idx = 2u * BENCH_HIST_SUB + (shift - 1u) * BENCH_HIST_SUB +
		       (unsigned)((ns >> shift) - BENCH_HIST_SUB);
	return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1u;
}

static double bucket_mid(unsigned idx)
{
	if (idx < 2u * BENCH_HIST_SUB)
		return (double)idx;
	unsigned shift = (idx - 2u * BENCH_HIST_SUB) / BENCH_HIST_SUB + 1u;
	unsigned sub = (idx - 2u * BENCH_HIST_SUB) % BENCH_HIST_SUB + BENCH_HIST_SUB;
	double lo = (double)((uint64_t)sub << shift);
	return lo + (double)((uint64_t)1 << shift) / 2.0;
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
	h->bucket[bucket_of(ns)]++;
	h->count++;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
}

void bench_result_add(struct bench_result *total, const struct bench_result *round)
{
	total->urbs += round->urbs;
	total->bytes += round->bytes;
	total->wall_ns += round->wall_ns;
	total->client_cpu_ns += round->client_cpu_ns;
	total->process_cpu_ns += round->process_cpu_ns;
	total->client_ctxsw += round->client_ctxsw;
	total->process_ctxsw += round->process_ctxsw;
	bench_hist_merge(&total->lat, &round->lat);
}

double bench_hist_quantile(const struct bench_hist *h, double q)
{
	if (h->count == 0)
		return 0.0;
	uint64_t rank = (uint64_t)(q * (double)(h->count - 1)) + 1u;
	uint64_t seen = 0;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			return bucket_mid(i);
	}
	return bucket_mid(BENCH_HIST_BUCKETS - 1u);
}

void bench_ctrl_read_setup(uint8_t setup[8], uint16_t len)
{
	/* bmRequestType: IN, vendor, device; gadget zero's "read back". */
	const uint8_t s[8] = { 0xc0, 0x5c, 0, 0, 0, 0, (uint8_t)len, (uint8_t)(len >> 8) };
	memcpy(setup, s, sizeof(s));
}

void bench_ctrl_write_setup(uint8_t setup[8], uint16_t len)
{
	const uint8_t s[8] = { 0x40, 0x5b, 0, 0, 0, 0, (uint8_t)len, (uint8_t)(len >> 8) };
	memcpy(setup, s, sizeof(s));
}
