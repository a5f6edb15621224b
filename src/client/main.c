/* usbip-notify-client: subscribes to usbip-notify servers and attaches their
 * devices through vhci_hcd. See docs/client.md. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_net.h"
#include "client/daemon.h"
#include "client/vhci.h"
#include "common/log.h"

enum {
	OPT_USBIP_PORT = 256,
	OPT_ALLOW_BUSID,
	OPT_DRY_RUN,
	OPT_DETACH_ON_EXIT,
	OPT_SYSFS_ROOT,
	OPT_RUN_DIR,
	OPT_TOKEN_FILE,
	OPT_PROTOCOL,
	OPT_STATE_FILE,
	OPT_LOG_LEVEL,
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usbip-notify-client --server HOST[:PORT] [--server ...] [options]\n"
		"       usbip-notify-client status [--state-file F] [--sysfs-root D] [--run-dir D]\n"
		"\n"
		"  --server HOST[:PORT]    notify server (port %s by default); repeatable\n"
		"  --usbip-port PORT       USB/IP port of the servers (%s)\n"
		"  --allow VID[:PID[:SERIAL]]  attach only matching devices (repeatable)\n"
		"  --allow-busid BUSID     attach this busid (repeatable)\n"
		"  --protocol v1|v2        notify protocol (v2)\n"
		"  --token-file FILE       shared secret for the v2 hello\n"
		"  --dry-run               log what would be done, touch nothing\n"
		"  --detach-on-exit        detach our devices when stopping\n"
		"  --state-file FILE       (%s)\n"
		"  --sysfs-root DIR        (%s)\n"
		"  --run-dir DIR           port records (%s)\n"
		"  --log-level LEVEL       error, warn, info, debug\n",
		DAEMON_DEFAULT_NOTIFY_PORT, DAEMON_DEFAULT_USBIP_PORT, DAEMON_DEFAULT_STATE_FILE,
		DAEMON_DEFAULT_SYSFS_ROOT, DAEMON_DEFAULT_RUN_DIR);
}

/* The token file holds one line; surrounding whitespace is dropped. */
static int read_token(const char *path, char *out, size_t size)
{
	char buf[NOTIFY_V2_TOKEN_SIZE + 2];
	int n = vhci_read_attr(path, buf, sizeof(buf));
	if (n < 0)
		return n == -EFBIG ? -E2BIG : n;
	size_t len = (size_t)n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (buf[i] < ' ' || buf[i] > '~')
			return -EINVAL;
	}
	if (len == 0 || len >= size)
		return -EINVAL;
	memcpy(out, buf, len + 1);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "usbip-port", required_argument, NULL, OPT_USBIP_PORT },
		{ "allow", required_argument, NULL, 'a' },
		{ "allow-busid", required_argument, NULL, OPT_ALLOW_BUSID },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "detach-on-exit", no_argument, NULL, OPT_DETACH_ON_EXIT },
		{ "sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT },
		{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
		{ "protocol", required_argument, NULL, OPT_PROTOCOL },
		{ "state-file", required_argument, NULL, OPT_STATE_FILE },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_config cfg;
	daemon_config_defaults(&cfg);
	bool status_cmd = argc > 1 && strcmp(argv[1], "status") == 0;
	if (status_cmd) {
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	int c, err;
	while ((c = getopt_long(argc, argv, "s:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			err = daemon_config_add_server(&cfg, optarg);
			if (err) {
				fprintf(stderr, "bad --server %s\n", optarg);
				return 2;
			}
			break;
		case OPT_USBIP_PORT:
			if (!cnet_port_valid(optarg)) {
				fprintf(stderr, "bad --usbip-port %s\n", optarg);
				return 2;
			}
			snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%s", optarg);
			break;
		case 'a':
		case OPT_ALLOW_BUSID:
			if (filter_add(&cfg.filter, c == OPT_ALLOW_BUSID, optarg)) {
				fprintf(stderr, "bad filter %s\n", optarg);
				return 2;
			}
			break;
		case OPT_DRY_RUN:
			cfg.dry_run = true;
			break;
		case OPT_DETACH_ON_EXIT:
			cfg.detach_on_exit = true;
			break;
		case OPT_SYSFS_ROOT:
			cfg.sysfs_root = optarg;
			break;
		case OPT_RUN_DIR:
			cfg.run_dir = optarg;
			break;
		case OPT_STATE_FILE:
			cfg.state_file = optarg;
			break;
		case OPT_TOKEN_FILE:
			err = read_token(optarg, cfg.token, sizeof(cfg.token));
			if (err) {
				fprintf(stderr, "cannot use token file %s: %s\n", optarg, strerror(-err));
				return 2;
			}
			break;
		case OPT_PROTOCOL:
			if (strcmp(optarg, "v1") == 0 || strcmp(optarg, "1") == 0) {
				cfg.protocol = 1;
			} else if (strcmp(optarg, "v2") == 0 || strcmp(optarg, "2") == 0) {
				cfg.protocol = 2;
			} else {
				fprintf(stderr, "bad --protocol %s\n", optarg);
				return 2;
			}
			break;
		case OPT_LOG_LEVEL: {
			int lvl = log_level_parse(optarg);
			if (lvl < 0) {
				fprintf(stderr, "bad --log-level %s\n", optarg);
				return 2;
			}
			log_set_level((enum log_level)lvl);
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (status_cmd)
		return daemon_print_status(cfg.state_file, cfg.sysfs_root, cfg.run_dir) ? 1 : 0;
	if (cfg.nservers == 0) {
		usage(stderr);
		return 2;
	}
	if (cfg.protocol == 1 && cfg.token[0])
		fprintf(stderr, "note: --token-file is ignored with --protocol v1\n");

	/* Signals are taken synchronously by this thread (sigwait), so no
	 * handler and no global state; the daemon's threads inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct daemon *d = daemon_new(&cfg);
	if (!d) {
		fprintf(stderr, "cannot set up the daemon\n");
		return 1;
	}
	err = daemon_start(d);
	if (err) {
		log_error("cannot start: %s", strerror(-err));
		daemon_free(d);
		return 1;
	}
	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		log_info("SIGHUP ignored (restart to change the configuration)");
	log_info("stopping (signal %d)", sig);
	daemon_stop(d);
	daemon_free(d);
	return 0;
}
