/* usbip-notify-server's options: see server_cli.h. */
#include "server/server_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/sim.h"
#include "common/dnssd.h"
#include "common/log.h"
#include "common/opts.h"

/* A day: longer would let a stolen address outlive any sane session. */
#define MAX_IMPORT_AUTH_GRACE_S 86400

enum {
	OPT_SIM = 256, OPT_LIBUSB, OPT_INCLUDE_VHCI, OPT_RESCAN_MS, OPT_MAX_URBS,
	OPT_ALLOW, OPT_DENY, OPT_NOTIFY_LISTEN, OPT_NOTIFY_PORT, OPT_NOTIFY_HEARTBEAT,
	OPT_NOTIFY_TOKEN, OPT_NOTIFY_TOKEN_FILE, OPT_NO_NOTIFY, OPT_ALLOW_CLIENT,
	OPT_NO_IMPORT_AUTH, OPT_IMPORT_AUTH_GRACE, OPT_CONTROL, OPT_METRICS, OPT_TRACE,
	OPT_JSON, OPT_LOCAL, OPT_NO_ANNOUNCE, OPT_ANNOUNCE_NAME, OPT_DETACH_ON_EXPORT,
	OPT_BUSY_POLL, OPT_NO_ZERO_COPY,
	OPT_SIM_DARWIN, OPT_SYSLOG,
	OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_TLS_PSK_FILE, OPT_TLS_OPTIONAL,
	OPT_ALLOW_CLIENT_DEVICE,
};

static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "listen", required_argument, NULL, 'a' },
	{ "port", required_argument, NULL, 'p' },
	{ "sim", required_argument, NULL, OPT_SIM },
	{ "sim-darwin", no_argument, NULL, OPT_SIM_DARWIN },
	{ "libusb", no_argument, NULL, OPT_LIBUSB },
	{ "include-vhci", no_argument, NULL, OPT_INCLUDE_VHCI },
	{ "rescan-ms", required_argument, NULL, OPT_RESCAN_MS },
	{ "max-urbs", required_argument, NULL, OPT_MAX_URBS },
	{ "detach-on-export", no_argument, NULL, OPT_DETACH_ON_EXPORT },
	{ "busy-poll", required_argument, NULL, OPT_BUSY_POLL },
	{ "no-zero-copy", no_argument, NULL, OPT_NO_ZERO_COPY },
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
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-psk-file", required_argument, NULL, OPT_TLS_PSK_FILE },
	{ "tls-optional", no_argument, NULL, OPT_TLS_OPTIONAL },
	{ "allow-client-device", required_argument, NULL, OPT_ALLOW_CLIENT_DEVICE },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "trace", no_argument, NULL, OPT_TRACE },
	{ "no-announce", no_argument, NULL, OPT_NO_ANNOUNCE },
	{ "announce-name", required_argument, NULL, OPT_ANNOUNCE_NAME },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "local", no_argument, NULL, OPT_LOCAL },
	{ "log-level", required_argument, NULL, 'l' },
	{ "syslog", no_argument, NULL, OPT_SYSLOG },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Not configuration-file keys: they ask for output, not a setting. */
static const int cli_only[] = { 'h', 'V', OPT_JSON, OPT_LOCAL, 0 };

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: usbip-notify-server [OPTIONS]\n"
		"       usbip-notify-server list [--json] [--local] [OPTIONS]\n"
		"       usbip-notify-server status [--json] [--control PATH]\n"
		"Exports USB devices to Linux USB/IP clients (vhci_hcd, `usbip attach`).\n"
		"`list` prints this machine's devices and whether each is exported (asking\n"
		"the running server through its control socket when there is one);\n"
		"`status` asks the running server for its ports and counts.\n"
		"\n"
		"  -c, --config FILE     configuration file (default %s,\n"
		"                        read if present); flags override it\n"
		"  -a, --listen ADDR     address to listen on (default: every address)\n"
		"  -p, --port PORT       USB/IP TCP port (default 3240)\n"
		"      --libusb          export this machine's USB devices (the default)\n"
		"      --sim SPEC        export simulated devices instead of real ones,\n"
		"                        e.g. --sim zero or --sim zero,zero\n"
		"      --sim-darwin      the simulated devices cancel and close as\n"
		"                        libusb on macOS does (see sim.h)\n"
		"      --include-vhci    also export devices on vhci_hcd buses (imported\n"
		"                        copies; off by default so a server never offers\n"
		"                        a device back to where it came from)\n"
		"      --rescan-ms N     device rescan period, 0 = hotplug events only\n"
		"                        (default %u)\n"
		"      --max-urbs N      URBs in flight per session; more fail with -ENOMEM\n"
		"                        (default %u)\n"
		"      --detach-on-export\n"
		"                        take this machine's drivers from a device as soon\n"
		"                        as it is exported, as `usbip bind` does, so an\n"
		"                        import does not wait for them (default: only when\n"
		"                        a client imports it)\n"
		"      --busy-poll auto|USEC\n"
		"                        before a wait, poll without sleeping: auto (the\n"
		"                        default) as long as the last waits of its kind\n"
		"                        took, up to %u microseconds, and not at all after\n"
		"                        waits far longer than that; USEC always that long,\n"
		"                        0..100000; 0 never. Lower latency per URB for a CPU\n"
		"                        kept busy while a device is in use; never while\n"
		"                        only interrupt or iso transfers are at the device\n"
		"      --no-zero-copy    keep transfer buffers in ordinary memory, not in the\n"
		"                        device's (usbfs) memory, which saves a copy per\n"
		"                        transfer (default: device memory where there is some)\n"
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
		"TLS (docs/security.md), on the USB/IP port:\n"
		"      --tls-cert FILE       this server's certificate (PEM, with its chain)\n"
		"      --tls-key FILE        its private key\n"
		"      --tls-ca FILE         the CA that signs client certificates; clients\n"
		"                            must show one\n"
		"      --tls-psk-file FILE   a shared key instead: one line IDENTITY:HEXKEY\n"
		"      --tls-optional        also accept plaintext clients (migration)\n"
		"      --allow-client-device IDENTITY=RULE\n"
		"                            the TLS client IDENTITY (certificate DNS name or\n"
		"                            CN, PSK identity) may import devices matching\n"
		"                            RULE (as --allow); with any such rule, clients\n"
		"                            get only what their rules allow; repeatable\n"
		"\n"
		"Local control and observability:\n"
		"      --control PATH        control socket (default %s;\n"
		"                            \"none\": no socket)\n"
		"      --metrics ADDR:PORT   serve Prometheus metrics over HTTP (default off)\n"
		"      --trace               log one line per USB/IP command and reply\n"
		"      --no-announce         no DNS-SD announcement (_usbip._tcp through\n"
		"                            Avahi or Bonjour; on by default where built in)\n"
		"      --announce-name NAME  the announced name (default \"usbip-notify\n"
		"                            on HOSTNAME\")\n"
		"      --json                list, status: print JSON\n"
		"      --local               list: enumerate here, never ask a running server\n"
		"\n"
		"  -l, --log-level LVL   error, warn, info (default) or debug\n"
		"      --syslog          log to syslog (facility daemon) instead of stderr\n"
		"  -v, --verbose         same as --log-level debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n",
		SERVER_DEFAULT_CONFIG, LIBUSB_BACKEND_DEFAULT_RESCAN_MS, SESSION_DEFAULT_MAX_URBS,
		SERVER_DEFAULT_BUSY_POLL_US,
		NOTIFY_DEFAULT_PORT, NOTIFY_DEFAULT_HEARTBEAT_S, SERVER_MAX_ALLOW_CLIENTS,
		AUTH_HOSTS_DEFAULT_GRACE_MS / 1000, SERVER_DEFAULT_CONTROL);
}

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

/* A decimal in [lo, hi]; false for anything else (empty, sign, junk). */
static bool parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	unsigned long n = strtoul(s, &end, 10);
	if (*end || n < lo || n > hi)
		return false;
	*out = n;
	return true;
}

/* The sim backend's spec, checked here too so a bad one is reported with
 * where it came from: comma-separated "zero", at most SIM_MAX_DEVICES. */
static bool sim_spec_valid(const char *spec)
{
	int count = 0;
	for (const char *p = spec;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len != 4 || strncmp(p, "zero", 4) != 0 || ++count > SIM_MAX_DEVICES)
			return false;
		if (!end)
			return true;
		p = end + 1;
	}
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (every address); port 0 picks one. */
static bool addr_port_valid(const char *s)
{
	const char *colon = strrchr(s, ':');
	unsigned long port;
	return colon && parse_uint(colon + 1, 0, 65535, &port);
}

static int apply(void *ctx, const struct option *opt, const char *arg,
		 const struct opt_src *src)
{
	struct server_options *o = ctx;
	unsigned long n;
	int rc, level;

	switch (opt->val) {
	case 'a':
		o->server.host = arg;
		return 0;
	case 'p':
		if (!parse_uint(arg, 0, 65535, &n))
			goto bad_port;
		o->server.port = arg;
		return 0;
	case OPT_SIM:
		if (!sim_spec_valid(arg)) {
			opt_bad_value(src, opt, arg, "want zero or zero,zero,... (at most %d)",
				      SIM_MAX_DEVICES);
			return 2;
		}
		o->sim = arg;
		return 0;
	case OPT_SIM_DARWIN:
		o->sim_darwin = true;
		return 0;
	case OPT_LIBUSB:
		o->sim = NULL;
		return 0;
	case OPT_INCLUDE_VHCI:
		o->libusb.include_vhci = true;
		return 0;
	case OPT_RESCAN_MS:
		if (!parse_uint(arg, 0, 3600000, &n)) {
			opt_bad_value(src, opt, arg, "want 0..3600000");
			return 2;
		}
		o->libusb.rescan_interval_ms = (unsigned)n;
		return 0;
	case OPT_MAX_URBS:
		if (!parse_uint(arg, 1, 65536, &n)) {
			opt_bad_value(src, opt, arg, "want 1..65536");
			return 2;
		}
		o->server.limits.max_urbs = (unsigned)n;
		return 0;
	case OPT_DETACH_ON_EXPORT:
		o->server.detach_on_export = true;
		return 0;
	case OPT_BUSY_POLL:
		if (strcmp(arg, "auto") == 0) {
			o->server.busy_poll_us = SERVER_DEFAULT_BUSY_POLL_US;
			o->server.busy_poll_fixed = false;
			return 0;
		}
		if (!parse_uint(arg, 0, 100000, &n)) {
			opt_bad_value(src, opt, arg, "want auto or 0..100000 (microseconds)");
			return 2;
		}
		o->server.busy_poll_us = (unsigned)n;
		o->server.busy_poll_fixed = true;
		return 0;
	case OPT_NO_ZERO_COPY:
		o->libusb.no_dev_mem = true;
		return 0;
	case OPT_ALLOW:
	case OPT_DENY:
		rc = export_filter_add(&o->filter, opt->val == OPT_ALLOW, arg);
		if (rc != EXPORT_RULE_OK) {
			opt_bad_value(src, opt, arg, "%s", export_rule_strerror(rc));
			return 2;
		}
		return 0;
	case OPT_NOTIFY_LISTEN:
		o->server.notify.host = arg;
		return 0;
	case OPT_TLS_CERT:
	case OPT_TLS_KEY:
	case OPT_TLS_CA:
	case OPT_TLS_PSK_FILE:
	case OPT_TLS_OPTIONAL:
		tls_options_set(&o->tls, opt->name, arg);
		return 0;
	case OPT_ALLOW_CLIENT_DEVICE:
		rc = client_rules_add(&o->client_rules, arg);
		if (rc != 0) {
			opt_bad_value(src, opt, arg, "%s", client_rule_strerror(rc));
			return 2;
		}
		return 0;
	case OPT_NOTIFY_PORT:
		if (!parse_uint(arg, 0, 65535, &n))
			goto bad_port;
		o->server.notify.port = arg;
		return 0;
	case OPT_NOTIFY_HEARTBEAT:
		if (!parse_uint(arg, 1, NOTIFY_MAX_HEARTBEAT_S, &n)) {
			opt_bad_value(src, opt, arg, "want 1..%d seconds", NOTIFY_MAX_HEARTBEAT_S);
			return 2;
		}
		o->server.notify.heartbeat_s = (unsigned)n;
		return 0;
	case OPT_NOTIFY_TOKEN:
		if (strlen(arg) >= sizeof(o->token)) {
			/* Never echo a secret. */
			opt_bad_value(src, opt, "...", "want 1..%zu bytes", sizeof(o->token) - 1);
			return 2;
		}
		strcpy(o->token, arg);
		return 0;
	case OPT_NOTIFY_TOKEN_FILE:
		if (read_token_file(arg, o->token, sizeof(o->token)) < 0) {
			opt_bad_value(src, opt, arg, "cannot use it");
			return 2;
		}
		return 0;
	case OPT_NO_NOTIFY:
		o->server.notify.enabled = false;
		return 0;
	case OPT_ALLOW_CLIENT:
		if (o->server.n_allow_clients == SERVER_MAX_ALLOW_CLIENTS) {
			opt_bad_value(src, opt, arg, "too many (at most %d)",
				      SERVER_MAX_ALLOW_CLIENTS);
			return 2;
		}
		rc = cidr_parse(arg, &o->allow_clients[o->server.n_allow_clients]);
		if (rc != CIDR_OK) {
			opt_bad_value(src, opt, arg, "%s", cidr_strerror(rc));
			return 2;
		}
		o->server.n_allow_clients++;
		return 0;
	case OPT_NO_IMPORT_AUTH:
		o->server.import_auth = false;
		return 0;
	case OPT_IMPORT_AUTH_GRACE:
		if (!parse_uint(arg, 0, MAX_IMPORT_AUTH_GRACE_S, &n)) {
			opt_bad_value(src, opt, arg, "want 0..%d seconds", MAX_IMPORT_AUTH_GRACE_S);
			return 2;
		}
		o->server.auth_grace_ms = (unsigned)n * 1000u;
		return 0;
	case OPT_CONTROL:
		if (arg[0] != '/' && strcmp(arg, "none") != 0) {
			opt_bad_value(src, opt, arg, "want an absolute path or none");
			return 2;
		}
		o->control_path = arg;
		o->control_given = true;
		return 0;
	case OPT_METRICS:
		if (!addr_port_valid(arg)) {
			opt_bad_value(src, opt, arg, "want ADDR:PORT, e.g. 127.0.0.1:9324");
			return 2;
		}
		o->metrics = arg;
		return 0;
	case OPT_TRACE:
		o->trace = true;
		return 0;
	case OPT_SYSLOG:
		o->syslog = true;
		return 0;
	case OPT_NO_ANNOUNCE:
		o->announce = false;
		return 0;
	case OPT_ANNOUNCE_NAME:
		if (strlen(arg) >= DNSSD_NAME_SIZE) {
			opt_bad_value(src, opt, arg, "at most %d bytes", DNSSD_NAME_SIZE - 1);
			return 2;
		}
		o->announce_name = arg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_LOCAL:
		o->local = true;
		return 0;
	case 'l':
		level = log_level_parse(arg);
		if (level < 0) {
			opt_bad_value(src, opt, arg, "want error, warn, info or debug");
			return 2;
		}
		log_set_level((enum log_level)level);
		return 0;
	case 'v':
		log_set_level(LOG_LEVEL_DEBUG);
		return 0;
	case 'h':
		usage(stdout);
		return 1;
	case 'V':
		printf("usbip-notify-server %s\n", SERVER_VERSION);
		return 1;
	}
	return 2;

bad_port:
	opt_bad_value(src, opt, arg, "want 0..65535");
	return 2;
}

int server_options_parse(struct server_options *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	server_config_defaults(&o->server);
	o->server.notify.enabled = true;
	o->server.allow_clients = o->allow_clients;
	libusb_backend_options_init(&o->libusb);
	export_filter_init(&o->filter, false);
	o->control_path = SERVER_DEFAULT_CONTROL;
	o->announce = true;

	struct opts_spec spec = {
		.prog = "usbip-notify-server",
		.shortopts = "c:a:p:l:vhV",
		.longopts = longopts,
		.cli_only = cli_only,
		.config_val = 'c',
		.default_config = SERVER_DEFAULT_CONFIG,
		.apply = apply,
		.usage = usage,
		.ctx = o,
	};
	int first = 0;
	int rc = opts_parse(&spec, argc, argv, &first, &o->file);
	if (rc)
		return rc;
	if (first < argc && strcmp(argv[first], "list") == 0) {
		o->command = SERVER_CMD_LIST;
		first++;
	} else if (first < argc && strcmp(argv[first], "status") == 0) {
		o->command = SERVER_CMD_STATUS;
		first++;
	}
	if (first < argc) {
		fprintf(stderr, "unexpected argument: %s\n", argv[first]);
		return 2;
	}
	if (o->json && o->command == SERVER_CMD_RUN) {
		fprintf(stderr, "--json goes with the list and status commands\n");
		return 2;
	}
	const char *why = tls_options_check(&o->tls);
	if (why) {
		fprintf(stderr, "usbip-notify-server: %s\n", why);
		return 2;
	}
	if (o->client_rules.n > 0 && !tls_options_enabled(&o->tls)) {
		fprintf(stderr, "usbip-notify-server: --allow-client-device needs TLS "
				"(--tls-cert/--tls-key/--tls-ca or --tls-psk-file)\n");
		return 2;
	}
	o->server.tls_optional = o->tls.optional;
	o->server.client_rules = &o->client_rules;
	/* Devices on vhci buses are hidden (by the backend too) unless asked for. */
	o->filter.include_vhci = o->libusb.include_vhci;
	if (o->token[0])
		o->server.notify.token = o->token;
	if (strcmp(o->control_path, "none") == 0)
		o->control_path = "";
	return 0;
}

void server_options_free(struct server_options *o)
{
	conf_free(&o->file);
}
