/* usbip-notify-server: exports USB devices over USB/IP.
 *
 * Parses the command line (getopt_long: in every libc we target, so no
 * extra library), builds the backend and the server, and waits for
 * SIGINT/SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/libusb_backend.h"
#include "backend/sim.h"
#include "common/log.h"
#include "server/server.h"

#define SERVER_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: usbip-notify-server [OPTIONS]\n"
		"Exports USB devices to Linux USB/IP clients (vhci_hcd, `usbip attach`).\n"
		"\n"
		"  -a, --listen ADDR     address to listen on (default: every address)\n"
		"  -p, --port PORT       USB/IP TCP port (default 3240)\n"
		"      --libusb          export this machine's USB devices (the default)\n"
		"      --sim SPEC        export simulated devices instead of real ones,\n"
		"                        e.g. --sim zero or --sim zero,zero\n"
		"      --include-vhci    also export devices on vhci_hcd buses (imported\n"
		"                        copies; off by default so a server never offers\n"
		"                        a device back to where it came from)\n"
		"      --rescan-ms N     device rescan period, 0 = hotplug events only\n"
		"                        (default %u)\n"
		"      --max-urbs N      URBs in flight per session (default %u)\n"
		"  -l, --log-level LVL   error, warn, info (default) or debug\n"
		"  -v, --verbose         same as --log-level debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n",
		LIBUSB_BACKEND_DEFAULT_RESCAN_MS, SESSION_DEFAULT_MAX_URBS);
}

struct options {
	struct server_config server;
	struct libusb_backend_options libusb;
	const char *sim;
};

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_SIM = 256, OPT_LIBUSB, OPT_INCLUDE_VHCI, OPT_RESCAN_MS, OPT_MAX_URBS };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "sim", required_argument, NULL, OPT_SIM },
		{ "libusb", no_argument, NULL, OPT_LIBUSB },
		{ "include-vhci", no_argument, NULL, OPT_INCLUDE_VHCI },
		{ "rescan-ms", required_argument, NULL, OPT_RESCAN_MS },
		{ "max-urbs", required_argument, NULL, OPT_MAX_URBS },
		{ "log-level", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, level;
	char *end;
	unsigned long n;

	while ((c = getopt_long(argc, argv, "a:p:l:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			o->server.host = optarg;
			break;
		case 'p':
			n = strtoul(optarg, &end, 10);
			if (*end || n > 65535) {
				fprintf(stderr, "bad port: %s\n", optarg);
				return 2;
			}
			o->server.port = optarg;
			break;
		case OPT_SIM:
			o->sim = optarg;
			break;
		case OPT_LIBUSB:
			o->sim = NULL;
			break;
		case OPT_INCLUDE_VHCI:
			o->libusb.include_vhci = true;
			break;
		case OPT_RESCAN_MS:
			n = strtoul(optarg, &end, 10);
			if (*end || n > 3600000) {
				fprintf(stderr, "bad --rescan-ms: %s\n", optarg);
				return 2;
			}
			o->libusb.rescan_interval_ms = (unsigned)n;
			break;
		case OPT_MAX_URBS:
			n = strtoul(optarg, &end, 10);
			if (*end || n < 1 || n > 65536) {
				fprintf(stderr, "bad --max-urbs: %s (1..65536)\n", optarg);
				return 2;
			}
			o->server.limits.max_urbs = (unsigned)n;
			break;
		case 'l':
			level = log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "bad log level: %s\n", optarg);
				return 2;
			}
			log_set_level((enum log_level)level);
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("usbip-notify-server %s\n", SERVER_VERSION);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
		return 2;
	}
	return 0;
}

static bool export_everything(void *ctx, const struct bk_device_info *info)
{
	(void)ctx;
	(void)info;
	return true;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	server_config_defaults(&o.server);
	libusb_backend_options_init(&o.libusb);
	int rc = parse_options(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;

	struct backend *b = NULL;
	if (o.sim) {
		b = sim_backend_new(o.sim);
		if (!b) {
			fprintf(stderr, "bad --sim spec: %s\n", o.sim);
			return 2;
		}
	} else {
		b = libusb_backend_new(&o.libusb);
		if (!b) {
			fprintf(stderr, "cannot initialise libusb\n");
			return 1;
		}
	}
	/* Devices on vhci buses are hidden by the backend unless asked for. */
	if (o.libusb.include_vhci)
		o.server.filter = export_everything;

	/* Block the stop signals in every thread; the main thread waits for them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct server *srv = server_new(b, &o.server);
	if (!srv || server_start(srv) < 0) {
		server_free(srv);
		b->ops->destroy(b);
		return 1;
	}

	int sig = 0;
	sigwait(&stop, &sig);
	log_info("signal %d: shutting down", sig);
	server_free(srv);
	b->ops->destroy(b);
	return 0;
}
