/* In-process server benchmark: the real server and sim backend over
 * loopback TCP, side by side with raw loopback TCP moving the same bytes in
 * the same message pattern, and with the sim backend called directly.
 *
 * Prints figures and ratios, asserts nothing: speed goals live here, not in
 * timed tests. Uses the server's public API only (server.h), so it measures
 * any session engine behind it.
 *
 * Each case runs the three ways (server, raw TCP, sim) in R rounds, the
 * order rotating each round (ABC, BCA, CAB, ...), so that drift on a shared
 * machine lands on all three alike; figures are the rounds' totals and the
 * ratios' min-max over the rounds show the noise.
 *
 * Reading the figures:
 * - raw TCP is the same client and the same bytes against a peer thread that
 *   answers at once (bench_peer.c): the loopback stack's own cost, a ceiling
 *   no TCP server can pass. "srv/tcp" is therefore the server's overhead.
 * - sim alone includes one thread hand-off per wake-up (the sim completes on
 *   its own event thread) but no socket; its bulk IN fills every byte with a
 *   pattern, which bounds 64 KiB IN at a few GB/s, while bulk OUT is a sink
 *   that touches nothing, so OUT's srv/sim is small by construction.
 * - 1 in flight is latency-bound: every URB waits for thread wake-ups, which
 *   on a shared or virtual machine vary by 2x between runs; read p50 and the
 *   CPU/context-switch columns (steadier) along with the rates.
 * - The client thread's CPU% shows it is not the bottleneck; CPU and context
 *   switches of the other threads are charged to the server (getrusage and
 *   CLOCK_PROCESS_CPUTIME_ID minus the client thread's own).
 *
 * Usage: bench_server [-t SECONDS] [-r ROUNDS] [-w SECONDS] [-c FILTER]
 *   -t  measured time per way and case, split over the rounds (default 1,
 *       or $BENCH_SECONDS)
 *   -r  rounds (default 3)
 *   -w  warm-up before each round's window, not measured (default 0.1)
 *   -c  only the cases whose name contains FILTER, e.g. "bulk OUT"
 *       ("busy poll": only the busy-polling table at the end)
 * Or: meson test -C build --benchmark; scripts/bench.sh for a release build. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/sim.h"
#include "bench.h"
#include "common/log.h"
#include "server/server.h"

#define BUSID "1-1"

struct bench_case {
	const char *name;
	struct bench_pattern p;
};

static const struct bench_case cases[] = {
	{ "control IN 64 B", { BENCH_CTRL_IN, 64, 1 } },
	{ "control IN 64 B", { BENCH_CTRL_IN, 64, 32 } },
	{ "bulk IN 64 B", { BENCH_BULK_IN, 64, 1 } },
	{ "bulk IN 64 B", { BENCH_BULK_IN, 64, 32 } },
	{ "bulk IN 64 KiB", { BENCH_BULK_IN, 65536, 1 } },
	{ "bulk IN 64 KiB", { BENCH_BULK_IN, 65536, 8 } },
	{ "bulk IN 64 KiB", { BENCH_BULK_IN, 65536, 32 } },
	{ "bulk OUT 64 KiB", { BENCH_BULK_OUT, 65536, 1 } },
	{ "bulk OUT 64 KiB", { BENCH_BULK_OUT, 65536, 8 } },
	{ "bulk OUT 64 KiB", { BENCH_BULK_OUT, 65536, 32 } },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

enum { SERVER, TCP, SIM, NWAYS };

struct case_result {
	bool ran;
	struct bench_result r[NWAYS];  /* summed over the rounds */
	double ratio_min[NWAYS], ratio_max[NWAYS]; /* server / way, per round */
	long server_hwm_kib; /* highest VmHWM at the end of a server run */
};

/* Static and touched in main before the first reading of RSS. */
static struct case_result results[NCASES];
static struct bench_result round_result;

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_server: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static double rate(const struct bench_result *r)
{
	return r->wall_ns ? (double)r->urbs * 1e9 / (double)r->wall_ns : 0.0;
}

static double mbps(const struct bench_result *r)
{
	return r->wall_ns ? (double)r->bytes * 1e3 / (double)r->wall_ns : 0.0;
}

static double us(double ns)
{
	return ns / 1e3;
}

/* CPU time of everything but the driving thread. */
static double other_cpu_ns(const struct bench_result *r)
{
	double ns = (double)r->process_cpu_ns - (double)r->client_cpu_ns;
	return ns > 0 ? ns : 0;
}

static int run_tcp(struct bench_peer *peer, struct bench_client *cl, const struct bench_pattern *p,
		   const struct bench_timing *t, struct bench_result *out)
{
	int port = bench_peer_start(peer);
	if (port < 0)
		return port;
	int fd = bench_connect(port);
	if (fd < 0) {
		/* The peer waits in accept: connect once more to release it. */
		int fd2 = bench_connect(port);
		if (fd2 >= 0)
			close(fd2);
		bench_peer_join(peer);
		return fd;
	}
	int rc = bench_client_run(cl, fd, 0x10002u, p, t, out);
	close(fd);
	int prc = bench_peer_join(peer);
	return rc < 0 ? rc : prc;
}

static int run_server(int port, struct bench_client *cl, const struct bench_pattern *p,
		      const struct bench_timing *t, struct bench_result *out)
{
	uint32_t devid = 0;
	int fd = -1, rc = -EBUSY;

	/* The previous session (or the direct run) may still hold the device. */
	for (int tries = 0; tries < 500; tries++) {
		if ((fd = bench_connect(port)) < 0)
			return fd;
		if ((rc = bench_import(fd, BUSID, &devid)) == 0)
			break;
		close(fd);
		fd = -1;
		if (rc != -EREMOTEIO)
			return rc;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	if (fd < 0)
		return rc;
	rc = bench_client_run(cl, fd, devid, p, t, out);
	close(fd);
	return rc;
}

static void print_rule(void)
{
	printf("%.*s\n", 128,
	       "--------------------------------------------------------------------------------"
	       "------------------------------------------------------------");
}

static void print_section(bool bytes)
{
	const char *u = bytes ? "MB/s" : "URB/s";
	printf("\n%-16s %5s | %-25s | %-25s | %-25s | %s\n", "", "",
	       "server (sim over TCP)", "raw loopback TCP", "sim backend alone",
	       "ratios [min-max of rounds]");
	printf("%-16s %5s | %9s %7s %7s | %9s %7s %7s | %9s %7s %7s | %-17s %s\n", "case",
	       "inflt", u, "p50 us", "p99 us", u, "p50 us", "p99 us", u, "p50 us", "p99 us",
	       "srv/tcp", "srv/sim");
	print_rule();
}

static void print_row(const struct bench_case *c, const struct case_result *cr, bool bytes)
{
	double v[NWAYS];

	printf("%-16s %5d |", c->name, c->p.depth);
	for (int w = 0; w < NWAYS; w++) {
		const struct bench_result *r = &cr->r[w];
		v[w] = bytes ? mbps(r) : rate(r);
		printf(" %9.*f %7.1f %7.1f |", bytes ? 1 : 0, v[w],
		       us(bench_hist_quantile(&r->lat, 0.50)),
		       us(bench_hist_quantile(&r->lat, 0.99)));
	}
	printf(" %5.3f [%.2f-%.2f] %5.3f [%.2f-%.2f]\n", v[TCP] > 0 ? v[SERVER] / v[TCP] : 0.0,
	       cr->ratio_min[TCP], cr->ratio_max[TCP], v[SIM] > 0 ? v[SERVER] / v[SIM] : 0.0,
	       cr->ratio_min[SIM], cr->ratio_max[SIM]);
	fflush(stdout);
}

static void print_resources(bool hwm_per_run)
{
	printf("\nCPU, context switches and memory over the measured windows (CPU = process CPU "
	       "time minus the driving client\n"
	       "  thread's own; csw = process context switches (getrusage) minus the client's; "
	       "server = server threads + sim\n"
	       "  event thread; raw TCP = the echo peer thread; sim = its event thread; client "
	       "CPU%% = client thread CPU / wall)\n");
	printf("%-16s %5s | %-42s | %-22s | %-22s | %s\n", "", "", "server", "raw TCP peer",
	       "sim alone", "client");
	printf("%-16s %5s | %5s %7s %8s %6s %11s | %6s %7s %7s | %6s %7s %7s | %s\n", "case",
	       "inflt", "cores", "us/URB", "s/GiB", "csw/U", hwm_per_run ? "pk RSS MiB" : "pk(all)MiB",
	       "us/URB", "s/GiB", "csw/U", "us/URB", "s/GiB", "csw/U", "CPU% srv/tcp/sim");
	print_rule();
	for (size_t i = 0; i < NCASES; i++) {
		const struct case_result *cr = &results[i];
		if (!cr->ran)
			continue;
		double per_urb[NWAYS], per_gib[NWAYS], csw[NWAYS], cli[NWAYS];
		for (int w = 0; w < NWAYS; w++) {
			const struct bench_result *r = &cr->r[w];
			double cpu = other_cpu_ns(r);
			double sw = (double)r->process_ctxsw - (double)r->client_ctxsw;
			per_urb[w] = r->urbs ? cpu / 1e3 / (double)r->urbs : 0.0;
			per_gib[w] = r->bytes ? cpu / 1e9 / ((double)r->bytes / (1024.0 * 1024 * 1024))
					      : 0.0;
			csw[w] = r->urbs && sw > 0 ? sw / (double)r->urbs : 0.0;
			cli[w] = r->wall_ns ? 100.0 * (double)r->client_cpu_ns / (double)r->wall_ns
					    : 0.0;
		}
		const struct bench_result *s = &cr->r[SERVER];
		double cores = s->wall_ns ? other_cpu_ns(s) / (double)s->wall_ns : 0.0;
		printf("%-16s %5d | %5.2f %7.2f %8.2f %6.2f %11.1f | %6.2f %7.2f %7.2f | %6.2f %7.2f "
		       "%7.2f | %3.0f/%3.0f/%3.0f\n",
		       cases[i].name, cases[i].p.depth, cores, per_urb[SERVER], per_gib[SERVER],
		       csw[SERVER], (double)cr->server_hwm_kib / 1024.0, per_urb[TCP], per_gib[TCP],
		       csw[TCP], per_urb[SIM], per_gib[SIM], csw[SIM], cli[SERVER], cli[TCP],
		       cli[SIM]);
	}
}

/* ---- Busy polling: what each mode costs and buys -------------------------- */

struct poll_mode {
	const char *name;
	unsigned us;
	bool fixed;
};

static const struct poll_mode poll_modes[] = {
	{ "off (0)", 0, true },
	{ "fixed 1000 us", 1000, true },
	{ "auto (default)", SERVER_DEFAULT_BUSY_POLL_US, false },
};
#define NPOLL_MODES (sizeof(poll_modes) / sizeof(poll_modes[0]))

/* A server on a new sim backend (one "zero" device, BUSID) on a loopback
 * port, busy polling as mode says (NULL: the defaults). Dies on failure. */
static struct server *start_sim_server(const struct poll_mode *mode, struct backend **b_out)
{
	struct backend *b = sim_backend_new("zero");
	if (b == NULL)
		die("sim_backend_new", EINVAL);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = "0";
	if (mode != NULL) {
		cfg.busy_poll_us = mode->us;
		cfg.busy_poll_fixed = mode->fixed;
	}
	struct server *srv = server_new(b, &cfg);
	if (srv == NULL)
		die("server_new", ENOMEM);
	int rc = server_start(srv);
	if (rc < 0)
		die("server_start", rc);
	*b_out = b;
	return srv;
}

/* One URB at a time against a device answering at once; against an
 * interrupt IN answering every 1 ms (a 1000 Hz mouse's reports), and a bulk
 * IN doing the same (an FTDI serial adapter at a 1 ms latency timer);
 * against a bulk IN taking 16 ms (an idle FTDI at its default). A fresh
 * server and sim per mode. The slow devices show whether a mode burns a
 * core while little is gained. */
static void run_busy_poll_modes(const struct bench_timing *t)
{
	static const struct {
		const char *name;
		uint32_t delay_ms;
		struct bench_pattern p;
	} loads[] = {
		{ "quick, control 64 B", 0, { BENCH_CTRL_IN, 64, 1 } },
		{ "1 ms, interrupt IN 64 B", 1, { BENCH_INT_IN, 64, 1 } },
		{ "1 ms, bulk IN 64 B", 1, { BENCH_BULK_IN, 64, 1 } },
		{ "16 ms, bulk IN 64 B", 16, { BENCH_BULK_IN, 64, 1 } },
	};
	printf("\nBusy polling (--busy-poll), one URB in flight, a fresh server per mode; "
	       "cores = server CPU / wall\n");
	printf("%-22s |", "");
	for (size_t l = 0; l < sizeof(loads) / sizeof(loads[0]); l++)
		printf(" %-28s |", loads[l].name);
	printf("\n%-22s |", "mode");
	for (size_t l = 0; l < sizeof(loads) / sizeof(loads[0]); l++)
		printf(" %9s %8s %9s |", "URB/s", "p50 us", "cores");
	printf("\n");
	print_rule();
	for (size_t m = 0; m < NPOLL_MODES; m++) {
		printf("%-22s |", poll_modes[m].name);
		for (size_t l = 0; l < sizeof(loads) / sizeof(loads[0]); l++) {
			struct backend *b;
			struct server *srv = start_sim_server(&poll_modes[m], &b);
			int rc = sim_set_delay(b, BUSID, loads[l].delay_ms);
			if (rc < 0)
				die("sim_set_delay", rc);
			struct bench_client *cl = bench_client_new();
			if (cl == NULL)
				die("allocating buffers", ENOMEM);
			static struct bench_result res;
			memset(&res, 0, sizeof(res));
			if ((rc = run_server(server_port(srv), cl, &loads[l].p, t, &res)) < 0)
				die("server run", rc);
			printf(" %9.0f %8.1f %9.3f |", rate(&res),
			       us(bench_hist_quantile(&res.lat, 0.50)),
			       res.wall_ns ? other_cpu_ns(&res) / (double)res.wall_ns : 0.0);
			fflush(stdout);
			bench_client_free(cl);
			server_free(srv);
			b->ops->destroy(b);
		}
		printf("\n");
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_server [-t SECONDS] [-r ROUNDS] [-w SECONDS] [-c FILTER]\n"
			"  -t  measured time per way and case, split over the rounds\n"
			"      (default 1, or $BENCH_SECONDS)\n"
			"  -r  rounds, the order of server/raw TCP/sim rotating (default 3)\n"
			"  -w  warm-up before each round's window (default 0.1)\n"
			"  -c  only the cases whose name contains FILTER\n");
	exit(2);
}

static double parse_seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= 0.0) || v > 3600.0)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	double window_s = 1.0, warmup_s = 0.1;
	int rounds = 3;
	const char *filter = NULL;
	const char *env = getenv("BENCH_SECONDS");
	int opt;

	if (env != NULL && *env != '\0')
		window_s = parse_seconds(env);
	while ((opt = getopt(argc, argv, "t:r:w:c:h")) != -1) {
		switch (opt) {
		case 't':
			window_s = parse_seconds(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			if (rounds < 1 || rounds > 100)
				usage();
			break;
		case 'w':
			warmup_s = parse_seconds(optarg);
			break;
		case 'c':
			filter = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || window_s <= 0.0)
		usage();
	const struct bench_timing timing = {
		.warmup_ns = (uint64_t)(warmup_s * 1e9),
		.window_ns = (uint64_t)(window_s / rounds * 1e9),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_WARN);
	struct backend *b;
	struct server *srv = start_sim_server(NULL, &b);
	int rc, port = server_port(srv);

	struct bench_mem mem_bare;
	bench_mem_read(&mem_bare);
	struct bench_client *cl = bench_client_new();
	struct bench_peer *peer = bench_peer_new();
	struct bench_direct *direct = bench_direct_new();
	if (cl == NULL || peer == NULL || direct == NULL)
		die("allocating buffers", ENOMEM);
	memset(results, 0, sizeof(results));
	memset(&round_result, 0, sizeof(round_result));

	struct bench_mem mem_start, mem_end, mem;
	bench_mem_read(&mem_start);
	bool hwm_per_run = bench_mem_reset_peak();
	long hwm_max = mem_start.hwm_kib;

	printf("bench_server: per case and way %.2f s measured in %d rounds (+ %.2f s warm-up "
	       "each), order rotating; %ld CPUs online.\n"
	       "64 B rows in URB/s, 64 KiB rows in MB/s (10^6 B/s); latency = per-URB submit -> "
	       "reply at the client;\none pipelined client thread drives all three ways.\n",
	       window_s, rounds, warmup_s, sysconf(_SC_NPROCESSORS_ONLN));

	int section = -1;
	for (size_t i = 0; i < NCASES; i++) {
		const struct bench_case *c = &cases[i];
		char label[64];
		snprintf(label, sizeof(label), "%s %d", c->name, c->p.depth);
		if (filter != NULL && strstr(label, filter) == NULL)
			continue;
		bool bytes = c->p.len >= 1024;
		if (section != (int)bytes) {
			section = (int)bytes;
			print_section(bytes);
		}
		struct case_result *cr = &results[i];

		for (int r = 0; r < rounds; r++) {
			double v[NWAYS];
			for (int k = 0; k < NWAYS; k++) {
				int w = (r + k) % NWAYS;
				struct bench_result *res = &round_result;
				switch (w) {
				case SIM:
					rc = bench_direct_run(direct, b, BUSID, &c->p, &timing, res);
					if (rc < 0)
						die("sim direct run", rc);
					break;
				case TCP:
					if ((rc = run_tcp(peer, cl, &c->p, &timing, res)) < 0)
						die("raw TCP run", rc);
					break;
				case SERVER:
					if (hwm_per_run)
						bench_mem_reset_peak();
					if ((rc = run_server(port, cl, &c->p, &timing, res)) < 0)
						die("server run", rc);
					bench_mem_read(&mem);
					if (mem.hwm_kib > cr->server_hwm_kib)
						cr->server_hwm_kib = mem.hwm_kib;
					if (mem.hwm_kib > hwm_max)
						hwm_max = mem.hwm_kib;
					break;
				}
				v[w] = rate(res);
				bench_result_add(&cr->r[w], res);
			}
			for (int w = 0; w < NWAYS; w++) {
				double q = v[w] > 0 ? v[SERVER] / v[w] : 0.0;
				if (r == 0 || q < cr->ratio_min[w])
					cr->ratio_min[w] = q;
				if (r == 0 || q > cr->ratio_max[w])
					cr->ratio_max[w] = q;
			}
		}
		cr->ran = true;
		print_row(c, cr, bytes);
	}
	print_resources(hwm_per_run);
	if (filter == NULL || strstr("busy poll", filter) != NULL)
		run_busy_poll_modes(&(struct bench_timing){ .warmup_ns = timing.warmup_ns,
							    .window_ns = timing.window_ns * rounds });

	bench_mem_read(&mem_end);
	printf("\nprocess RSS (server, sim and this bench in one process): VmRSS after "
	       "server_start %.1f MiB, + the bench's own buffers (touched) %.1f MiB;\n"
	       "  VmRSS before the first URB %.1f MiB, after the last %.1f MiB (growth %+.1f MiB);"
	       " peak VmHWM %s %.1f MiB (growth %+.1f MiB)\n",
	       (double)mem_bare.rss_kib / 1024.0,
	       (double)(mem_start.rss_kib - mem_bare.rss_kib) / 1024.0,
	       (double)mem_start.rss_kib / 1024.0, (double)mem_end.rss_kib / 1024.0,
	       (double)(mem_end.rss_kib - mem_start.rss_kib) / 1024.0,
	       hwm_per_run ? "during server runs" : "since process start",
	       (double)hwm_max / 1024.0, (double)(hwm_max - mem_start.rss_kib) / 1024.0);

	server_free(srv);
	bench_direct_free(direct);
	bench_peer_free(peer);
	bench_client_free(cl);
	b->ops->destroy(b);
	return 0;
}
