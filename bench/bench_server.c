/* Server benchmark: the real server and sim backend over loopback, driven by
 * the userspace test client, against the sim backend called directly.
 *
 * Prints figures and ratios, asserts nothing: speed goals live here, not in
 * timed tests. Run: meson compile -C build bench_server && build/bench/bench_server
 * (or `meson test -C build --benchmark`). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/sim.h"
#include "common/log.h"
#include "server/server.h"
#include "usbip_client.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Baseline: the sim backend alone ------------------------------------ */

struct direct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void direct_complete(struct bk_transfer *t)
{
	struct direct *d = t->user;
	pthread_mutex_lock(&d->lock);
	d->done++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* URBs per second, depth transfers kept in flight, each of len bytes. */
static double direct_rate(struct backend *b, uint32_t len, int depth, int total)
{
	struct bk_handle *h = NULL;
	/* The previous server session may still be releasing the device. */
	for (int tries = 0; tries < 200; tries++) {
		if (b->ops->open(b, "1-1", &h) == 0 && b->ops->claim_interface(h, 0) == 0)
			break;
		if (h)
			b->ops->close(h);
		h = NULL;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	if (!h) {
		fprintf(stderr, "direct: cannot open 1-1\n");
		exit(1);
	}
	struct direct d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct bk_transfer *t = calloc((size_t)depth, sizeof(*t));
	uint8_t *buf = malloc((size_t)depth * len + 1);
	int submitted = 0;
	double t0 = now_s();
	pthread_mutex_lock(&d.lock);
	while (d.done < total) {
		if (submitted < total && submitted - d.done < depth) {
			struct bk_transfer *x = &t[submitted % depth];
			memset(x, 0, sizeof(*x));
			x->type = BK_XFER_BULK;
			x->endpoint = 0x81;
			x->buffer = buf + (size_t)(submitted % depth) * len;
			x->length = len;
			x->complete = direct_complete;
			x->user = &d;
			submitted++;
			pthread_mutex_unlock(&d.lock);
			b->ops->submit(h, x);
			pthread_mutex_lock(&d.lock);
			continue;
		}
		pthread_cond_wait(&d.cond, &d.lock);
	}
	pthread_mutex_unlock(&d.lock);
	double rate = total / (now_s() - t0);
	b->ops->release_interface(h, 0);
	b->ops->close(h);
	free(t);
	free(buf);
	return rate;
}

/* ---- Through the server ------------------------------------------------- */

static double server_rate(const char *port, uint32_t len, int depth, int total)
{
	struct uc_conn *c;
	if (uc_connect("127.0.0.1", port, 5000, &c) < 0 || uc_import(c, "1-1", NULL, NULL) < 0) {
		fprintf(stderr, "server: cannot import 1-1\n");
		exit(1);
	}
	int submitted = 0, done = 0;
	double t0 = now_s();
	while (done < total) {
		while (submitted < total && submitted - done < depth) {
			struct uc_urb u = {
				.seqnum = (uint32_t)submitted + 1,
				.devid = uc_devid(c),
				.direction = USBIP_DIR_IN,
				.ep = 1,
				.buffer_length = len,
			};
			if (uc_submit(c, &u) < 0) {
				fprintf(stderr, "submit failed\n");
				exit(1);
			}
			submitted++;
		}
		struct uc_reply r;
		if (uc_recv(c, &r, 5000) < 0 || r.status != 0) {
			fprintf(stderr, "recv failed\n");
			exit(1);
		}
		uc_reply_free(&r);
		done++;
	}
	double rate = total / (now_s() - t0);
	uc_close(c);
	return rate;
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARN);
	struct backend *b = sim_backend_new("zero");
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = "0";
	struct server *srv = server_new(b, &cfg);
	if (!b || !srv || server_start(srv) < 0)
		return 1;
	char port[8];
	snprintf(port, sizeof(port), "%d", server_port(srv));

	static const struct { uint32_t len; int depth; int total; const char *what; } runs[] = {
		{ 64, 1, 5000, "64 B, one at a time (latency-bound)" },
		{ 64, 64, 50000, "64 B, 64 in flight (URB rate)" },
		{ 65536, 8, 4000, "64 KiB, 8 in flight (throughput)" },
		{ 1048576, 4, 400, "1 MiB, 4 in flight (throughput)" },
	};
	printf("%-40s %14s %14s %8s %12s\n", "bulk IN via", "direct URB/s", "server URB/s",
	       "ratio", "server MB/s");
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		/* The device is not imported between runs, so the direct run may
		 * open it; the server's backend thread delivers both. */
		double d = direct_rate(b, runs[i].len, runs[i].depth, runs[i].total);
		double s = server_rate(port, runs[i].len, runs[i].depth, runs[i].total);
		printf("%-40s %14.0f %14.0f %8.3f %12.1f\n", runs[i].what, d, s, s / d,
		       s * runs[i].len / 1e6);
	}
	server_free(srv);
	b->ops->destroy(b);
	return 0;
}
