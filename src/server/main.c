/* usbip-notify-server: exports USB devices over USB/IP.
 *
 * Parses the command line (getopt_long: in every libc we target, so no
 * extra library), builds the backend and the server, and waits for
 * SIGINT/SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/libusb_backend.h"
#include "backend/sim.h"
#include "common/cidr.h"
#include "common/log.h"
#include "server/export_filter.h"
#include "server/server.h"

#define SERVER_VERSION "0.1.0"
#define MAX_ALLOW_CLIENTS 64
/* A day: longer would let a stolen address outlive any sane session. */
#define MAX_IMPORT_AUTH_GRACE_S 86400

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
		"      --max-urbs N      URBs in flight per session; more fail with -ENOMEM\n"
		"                        (default %u)\n"
		"      --allow RULE      export only devices matching an allow rule\n"
		"      --deny RULE       never export devices matching RULE (wins over\n"
		"                        --allow); both repeatable. RULE is VID[:PID[:SERIAL]]\n"
		"                        (hex ids) or a busid, which also covers the ports\n"
		"                        behind it (1-1 covers 1-1.3)\n"
		"\n"
		"Notify channel (hotplug events for clients, docs/notify-protocol.md):\n"
		"      --notify-listen ADDR  address for it (default: every address)\n"
		"      --notify-port PORT    its TCP port (default %s)\n"
		"      --notify-heartbeat S  v2 heartbeat in seconds (default %u)\n"
		"      --notify-token-file F require the shared secret in F (first line)\n"
		"      --notify-token SECRET the same, given on the command line (visible\n"
		"                            to other local users: prefer the file)\n"
		"      --no-notify           no notify channel\n"
		"\n"
		"Access (docs/notify-protocol.md, \"Imports and the token\"):\n"
		"      --allow-client CIDR   accept connections (both ports) only from these\n"
		"                            networks, e.g. 192.168.1.0/24, 10.0.0.5, fd00::/8;\n"
		"                            repeatable, at most %d (default: anyone)\n"
		"      --no-import-auth      with a notify token, still serve device lists\n"
		"                            and imports to hosts that did not authenticate\n"
		"                            on the notify channel\n"
		"      --import-auth-grace S how long a host stays authenticated after its\n"
		"                            last notify subscription ends (default %u)\n"
		"\n"
		"  -l, --log-level LVL   error, warn, info (default) or debug\n"
		"  -v, --verbose         same as --log-level debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n",
		LIBUSB_BACKEND_DEFAULT_RESCAN_MS, SESSION_DEFAULT_MAX_URBS, NOTIFY_DEFAULT_PORT,
		NOTIFY_DEFAULT_HEARTBEAT_S, MAX_ALLOW_CLIENTS, AUTH_HOSTS_DEFAULT_GRACE_MS / 1000);
}

struct options {
	struct server_config server;
	struct libusb_backend_options libusb;
	const char *sim;
	struct export_filter filter;
	char token[NOTIFY_V2_TOKEN_SIZE];
	struct cidr allow_clients[MAX_ALLOW_CLIENTS];
};

/* Reads the token: the file's first line, without its line end. */
static int read_token_file(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot open token file %s\n", path);
		return -1;
	}
	char line[NOTIFY_V2_TOKEN_SIZE + 2];
	bool ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if (ok) {
		line[strcspn(line, "\r\n")] = '\0';
		ok = line[0] != '\0' && strlen(line) < n;
	}
	if (!ok) {
		fprintf(stderr, "token file %s: want one line of 1..%zu bytes\n", path, n - 1);
		return -1;
	}
	strcpy(out, line);
	return 0;
}

static int add_rule(struct options *o, bool allow, const char *rule)
{
	int rc = export_filter_add(&o->filter, allow, rule);
	if (rc != EXPORT_RULE_OK) {
		fprintf(stderr, "bad --%s rule \"%s\": %s\n", allow ? "allow" : "deny", rule,
			export_rule_strerror(rc));
		return 2;
	}
	return 0;
}

static int add_client_rule(struct options *o, const char *text)
{
	if (o->server.n_allow_clients == MAX_ALLOW_CLIENTS) {
		fprintf(stderr, "too many --allow-client rules (at most %d)\n", MAX_ALLOW_CLIENTS);
		return 2;
	}
	int rc = cidr_parse(text, &o->allow_clients[o->server.n_allow_clients]);
	if (rc != CIDR_OK) {
		fprintf(stderr, "bad --allow-client \"%s\": %s\n", text, cidr_strerror(rc));
		return 2;
	}
	o->server.n_allow_clients++;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum {
		OPT_SIM = 256, OPT_LIBUSB, OPT_INCLUDE_VHCI, OPT_RESCAN_MS, OPT_MAX_URBS,
		OPT_ALLOW, OPT_DENY, OPT_NOTIFY_LISTEN, OPT_NOTIFY_PORT, OPT_NOTIFY_HEARTBEAT,
		OPT_NOTIFY_TOKEN, OPT_NOTIFY_TOKEN_FILE, OPT_NO_NOTIFY, OPT_ALLOW_CLIENT,
		OPT_NO_IMPORT_AUTH, OPT_IMPORT_AUTH_GRACE,
	};
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "sim", required_argument, NULL, OPT_SIM },
		{ "libusb", no_argument, NULL, OPT_LIBUSB },
		{ "include-vhci", no_argument, NULL, OPT_INCLUDE_VHCI },
		{ "rescan-ms", required_argument, NULL, OPT_RESCAN_MS },
		{ "max-urbs", required_argument, NULL, OPT_MAX_URBS },
		{ "allow", required_argument, NULL, OPT_ALLOW },
		{ "deny", required_argument, NULL, OPT_DENY },
		{ "notify-listen", required_argument, NULL, OPT_NOTIFY_LISTEN },
		{ "notify-port", required_argument, NULL, OPT_NOTIFY_PORT },
		{ "notify-heartbeat", required_argument, NULL, OPT_NOTIFY_HEARTBEAT },
		{ "notify-token", required_argument, NULL, OPT_NOTIFY_TOKEN },
		{ "notify-token-file", required_argument, NULL, OPT_NOTIFY_TOKEN_FILE },
		{ "no-notify", no_argument, NULL, OPT_NO_NOTIFY },
		{ "allow-client", required_argument, NULL, OPT_ALLOW_CLIENT },
		{ "no-import-auth", no_argument, NULL, OPT_NO_IMPORT_AUTH },
		{ "import-auth-grace", required_argument, NULL, OPT_IMPORT_AUTH_GRACE },
		{ "log-level", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, level, rc;
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
		case OPT_ALLOW:
		case OPT_DENY:
			rc = add_rule(o, c == OPT_ALLOW, optarg);
			if (rc)
				return rc;
			break;
		case OPT_NOTIFY_LISTEN:
			o->server.notify.host = optarg;
			break;
		case OPT_NOTIFY_PORT:
			n = strtoul(optarg, &end, 10);
			if (!*optarg || *end || n > 65535) {
				fprintf(stderr, "bad --notify-port: %s\n", optarg);
				return 2;
			}
			o->server.notify.port = optarg;
			break;
		case OPT_NOTIFY_HEARTBEAT:
			n = strtoul(optarg, &end, 10);
			if (!*optarg || *end || n < 1 || n > NOTIFY_MAX_HEARTBEAT_S) {
				fprintf(stderr, "bad --notify-heartbeat: %s (1..%d)\n", optarg,
					NOTIFY_MAX_HEARTBEAT_S);
				return 2;
			}
			o->server.notify.heartbeat_s = (unsigned)n;
			break;
		case OPT_NOTIFY_TOKEN:
			if (!*optarg || strlen(optarg) >= sizeof(o->token)) {
				fprintf(stderr, "bad --notify-token: 1..%zu bytes\n",
					sizeof(o->token) - 1);
				return 2;
			}
			strcpy(o->token, optarg);
			break;
		case OPT_NOTIFY_TOKEN_FILE:
			if (read_token_file(optarg, o->token, sizeof(o->token)) < 0)
				return 2;
			break;
		case OPT_NO_NOTIFY:
			o->server.notify.enabled = false;
			break;
		case OPT_ALLOW_CLIENT:
			rc = add_client_rule(o, optarg);
			if (rc)
				return rc;
			break;
		case OPT_NO_IMPORT_AUTH:
			o->server.import_auth = false;
			break;
		case OPT_IMPORT_AUTH_GRACE:
			n = strtoul(optarg, &end, 10);
			if (!*optarg || *end || n > MAX_IMPORT_AUTH_GRACE_S) {
				fprintf(stderr, "bad --import-auth-grace: %s (0..%d)\n", optarg,
					MAX_IMPORT_AUTH_GRACE_S);
				return 2;
			}
			o->server.auth_grace_ms = (unsigned)n * 1000u;
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

int main(int argc, char **argv)
{
	struct options o;
	memset(&o, 0, sizeof(o));
	server_config_defaults(&o.server);
	o.server.notify.enabled = true;
	libusb_backend_options_init(&o.libusb);
	export_filter_init(&o.filter, false);
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
	/* Devices on vhci buses are hidden (by the backend too) unless asked for. */
	o.filter.include_vhci = o.libusb.include_vhci;
	o.server.filter = export_filter_offers;
	o.server.filter_ctx = &o.filter;
	if (o.token[0])
		o.server.notify.token = o.token;
	o.server.allow_clients = o.allow_clients;
	if (o.token[0] && !o.server.notify.enabled && o.server.import_auth)
		fprintf(stderr, "note: a notify token without the notify channel protects "
				"nothing; imports are not tied to it\n");

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
