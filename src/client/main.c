/* usbip-notify-client: subscribes to usbip-notify servers and attaches their
 * devices through vhci_hcd. See docs/client.md. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_net.h"
#include "client/daemon.h"
#include "client/discover.h"
#include "client/vhci.h"
#include "common/control.h"
#include "common/dnssd.h"
#include "common/log.h"
#include "common/opts.h"
#include "common/tls.h"
#include "proto/busid.h"

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
	OPT_CONTROL,
	OPT_JSON,
	OPT_DISCOVER,
	OPT_DISCOVER_NAME,
	OPT_DISCOVER_DOMAIN,
	OPT_SYSLOG,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_TLS_PSK_FILE,
};

#define CLIENT_DEFAULT_CONFIG "/etc/usbip-notify/client.conf"
/* In the client's own runtime directory: the server unit's /run/usbip-notify
 * belongs to the usbip-notify user, where root without CAP_DAC_OVERRIDE (the
 * client unit) may not make a socket. */
#define CLIENT_DEFAULT_CONTROL "/run/usbip-notify-client/client.sock"

static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },
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
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "discover", no_argument, NULL, OPT_DISCOVER },
	{ "discover-name", required_argument, NULL, OPT_DISCOVER_NAME },
	{ "discover-domain", required_argument, NULL, OPT_DISCOVER_DOMAIN },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-psk-file", required_argument, NULL, OPT_TLS_PSK_FILE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "syslog", no_argument, NULL, OPT_SYSLOG },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Not configuration-file keys. */
static const int cli_only[] = { 'h', OPT_JSON, 0 };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usbip-notify-client [-c FILE] --server HOST[:PORT] [--server ...] [options]\n"
		"       usbip-notify-client [-c FILE] --discover [--discover-name PATTERN] [options]\n"
		"       usbip-notify-client status [--json] [--control PATH]\n"
		"       usbip-notify-client attach|detach|hold|release BUSID [--control PATH]\n"
		"\n"
		"  -c, --config FILE       configuration file (%s, read if\n"
		"                          present); flags override it\n"
		"  -s, --server HOST[:PORT]  notify server (port %s by default); repeatable\n"
		"  --usbip-port PORT       USB/IP port of the servers named by --server (%s)\n"
		"  --discover              follow servers announced over DNS-SD (_usbip._tcp),\n"
		"                          beside any --server\n"
		"  --discover-name PATTERN only those whose name matches (glob; repeatable)\n"
		"  --discover-domain D     browse domain D (default local)\n"
		"  -a, --allow VID[:PID[:SERIAL]]  attach only matching devices (repeatable)\n"
		"  --allow-busid BUSID     attach this busid (repeatable)\n"
		"  --protocol v1|v2        notify protocol (v2)\n"
		"  --token-file FILE       shared secret for the v2 hello\n"
		"  --dry-run               log what would be done, touch nothing\n"
		"  --detach-on-exit        detach our devices when stopping\n"
		"  --state-file FILE       (%s)\n"
		"  --sysfs-root DIR        (%s)\n"
		"  --run-dir DIR           port records (%s)\n"
		"  --control PATH          control socket (%s; \"none\": none)\n"
		"  --tls-cert FILE         TLS to the USB/IP port: this client's certificate,\n"
		"  --tls-key FILE          its key, and the CA that signed the servers'\n"
		"  --tls-ca FILE           (each server's must name the host it is reached by)\n"
		"  --tls-psk-file FILE     or a shared key: one line IDENTITY:HEXKEY\n"
		"  --json                  status: print JSON\n"
		"  --log-level LEVEL       error, warn, info, debug\n"
		"  --syslog                log to syslog (facility daemon) instead of stderr\n"
		"  -h, --help              this text\n",
		CLIENT_DEFAULT_CONFIG, DAEMON_DEFAULT_NOTIFY_PORT, DAEMON_DEFAULT_USBIP_PORT,
		DAEMON_DEFAULT_STATE_FILE, DAEMON_DEFAULT_SYSFS_ROOT, DAEMON_DEFAULT_RUN_DIR,
		CLIENT_DEFAULT_CONTROL);
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

struct client_options {
	struct daemon_config cfg;
	struct tls_options tls;
	struct discover_config discover;
	const char *control_path; /* "" = none */
	bool json;
	bool syslog; /* the daemon logs to syslog(3), not stderr */
	struct conf file;
};

static int apply(void *ctx, const struct option *opt, const char *arg,
		 const struct opt_src *src)
{
	struct client_options *o = ctx;
	struct daemon_config *cfg = &o->cfg;
	int err;

	switch (opt->val) {
	case 's':
		err = daemon_config_add_server(cfg, arg);
		if (err) {
			opt_bad_value(src, opt, arg, "%s", err == -ENOSPC ? "too many servers"
									 : "want HOST[:PORT]");
			return 2;
		}
		return 0;
	case OPT_USBIP_PORT:
		if (!cnet_port_valid(arg)) {
			opt_bad_value(src, opt, arg, "want 1..65535");
			return 2;
		}
		snprintf(cfg->usbip_port, sizeof(cfg->usbip_port), "%s", arg);
		return 0;
	case 'a':
	case OPT_ALLOW_BUSID:
		if (filter_add(&cfg->filter, opt->val == OPT_ALLOW_BUSID, arg)) {
			opt_bad_value(src, opt, arg, NULL);
			return 2;
		}
		return 0;
	case OPT_DRY_RUN:
		cfg->dry_run = true;
		return 0;
	case OPT_DETACH_ON_EXIT:
		cfg->detach_on_exit = true;
		return 0;
	case OPT_SYSFS_ROOT:
		cfg->sysfs_root = arg;
		return 0;
	case OPT_RUN_DIR:
		cfg->run_dir = arg;
		return 0;
	case OPT_STATE_FILE:
		cfg->state_file = arg;
		return 0;
	case OPT_TOKEN_FILE:
		err = read_token(arg, cfg->token, sizeof(cfg->token));
		if (err) {
			opt_bad_value(src, opt, arg, "cannot use it: %s", strerror(-err));
			return 2;
		}
		return 0;
	case OPT_PROTOCOL:
		if (strcmp(arg, "v1") == 0 || strcmp(arg, "1") == 0) {
			cfg->protocol = 1;
		} else if (strcmp(arg, "v2") == 0 || strcmp(arg, "2") == 0) {
			cfg->protocol = 2;
		} else {
			opt_bad_value(src, opt, arg, "want v1 or v2");
			return 2;
		}
		return 0;
	case OPT_CONTROL:
		if (arg[0] != '/' && strcmp(arg, "none") != 0) {
			opt_bad_value(src, opt, arg, "want an absolute path or none");
			return 2;
		}
		o->control_path = strcmp(arg, "none") == 0 ? "" : arg;
		return 0;
	case OPT_TLS_CERT:
	case OPT_TLS_KEY:
	case OPT_TLS_CA:
	case OPT_TLS_PSK_FILE:
		tls_options_set(&o->tls, opt->name, arg);
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_DISCOVER:
		o->discover.enabled = true;
		return 0;
	case OPT_DISCOVER_NAME:
		if (o->discover.nnames == DISCOVER_MAX_NAMES) {
			opt_bad_value(src, opt, arg, "at most %d patterns", DISCOVER_MAX_NAMES);
			return 2;
		}
		o->discover.names[o->discover.nnames++] = arg;
		return 0;
	case OPT_DISCOVER_DOMAIN:
		if (!arg[0] || strlen(arg) > 253) {
			opt_bad_value(src, opt, arg, "want a domain name");
			return 2;
		}
		o->discover.domain = arg;
		return 0;
	case OPT_LOG_LEVEL: {
		int lvl = log_level_parse(arg);
		if (lvl < 0) {
			opt_bad_value(src, opt, arg, "want error, warn, info or debug");
			return 2;
		}
		log_set_level((enum log_level)lvl);
		return 0;
	}
	case OPT_SYSLOG:
		o->syslog = true;
		return 0;
	case 'h':
		usage(stdout);
		return 1;
	}
	return 2;
}

/* `status` and the steering commands: through the running daemon's
 * control socket. status falls back to what the files say when no daemon
 * answers (the state file and vhci's port table). */
static int run_remote(struct client_options *o, int argc, char **argv)
{
	bool status = strcmp(argv[0], "status") == 0;
	if (status ? argc != 1 : argc != 2) {
		usage(stderr);
		return 2;
	}
	if (!status && !busid_valid(argv[1])) {
		fprintf(stderr, "bad busid \"%s\"\n", argv[1]);
		return 2;
	}
	struct strbuf line, reply;
	sb_init(&line);
	sb_init(&reply);
	if (status)
		sb_printf(&line, "status%s", o->json ? " --json" : "");
	else
		sb_printf(&line, "%s %s", argv[0], argv[1]);
	int rc = o->control_path[0] ? control_request(o->control_path, sb_str(&line), &reply)
				    : -ENOENT;
	int ret = 0;
	if (rc == 0) {
		fputs(sb_str(&reply), stdout);
	} else if (rc == -EREMOTEIO) {
		fprintf(stderr, "daemon: %s\n", sb_str(&reply));
		ret = 1;
	} else if (status && !o->json) {
		printf("no daemon answers on %s (%s)\n",
		       o->control_path[0] ? o->control_path : "-", strerror(-rc));
		ret = daemon_print_status(o->cfg.state_file, o->cfg.sysfs_root, o->cfg.run_dir)
			      ? 1 : 0;
	} else {
		fprintf(stderr, "no daemon answers on %s: %s\n",
			o->control_path[0] ? o->control_path : "-", strerror(-rc));
		ret = 1;
	}
	sb_free(&line);
	sb_free(&reply);
	return ret;
}

static int control_handler(void *ctx, int argc, char **argv, struct strbuf *reply)
{
	return daemon_control(ctx, argc, argv, reply);
}

static int run_daemon(struct client_options *o)
{
	struct daemon_config *cfg = &o->cfg;
	if (cfg->nservers == 0 && !o->discover.enabled) {
		fprintf(stderr, "no --server or --discover given (on the command line or in the "
				"configuration file)\n");
		usage(stderr);
		return 2;
	}
	if (o->discover.enabled && !dnssd_supported()) {
		fprintf(stderr, "--discover: this build has no DNS-SD support (Avahi)\n");
		return 2;
	}
	if (cfg->protocol == 1 && cfg->token[0])
		fprintf(stderr, "note: --token-file is ignored with --protocol v1\n");
	if (o->syslog)
		log_to_syslog("usbip-notify-client");

	/* Signals are taken synchronously by this thread (sigwait), so no
	 * handler and no global state; the daemon's threads inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	const char *why = tls_options_check(&o->tls);
	if (why) {
		fprintf(stderr, "usbip-notify-client: %s\n", why);
		return 2;
	}
	struct tls_ctx *tls = NULL;
	if (tls_options_enabled(&o->tls)) {
		char terr[TLS_ERR_SIZE];
		tls = tls_ctx_new(&o->tls, false, terr);
		if (!tls) {
			log_error("TLS: %s", terr);
			return 1;
		}
		cfg->tls = tls;
		log_info("TLS 1.3 to the servers' USB/IP ports (%s)",
			 o->tls.psk_file ? "pre-shared key" : "certificates");
	}
	struct daemon *d = daemon_new(cfg);
	if (!d) {
		fprintf(stderr, "cannot set up the daemon\n");
		tls_ctx_free(tls);
		return 1;
	}
	int err = daemon_start(d);
	if (err) {
		log_error("cannot start: %s", strerror(-err));
		daemon_free(d);
		tls_ctx_free(tls);
		return 1;
	}
	struct control_server *control = NULL;
	if (o->control_path[0]) {
		err = control_server_start(o->control_path, control_handler, d, &control);
		if (err) {
			log_warn("control socket %s: %s%s", o->control_path, strerror(-err),
				 err == -EADDRINUSE ? " (another client daemon is running)" : "");
			control = NULL;
		} else {
			log_info("control socket %s", o->control_path);
		}
	}
	struct discover *disc = NULL;
	if (o->discover.enabled) {
		err = discover_start(d, &o->discover, &disc);
		if (err) {
			log_error("--discover: %s",
				  err == -ENOTCONN ? "no D-Bus system bus to reach avahi-daemon"
						   : strerror(-err));
			control_server_stop(control);
			daemon_stop(d);
			daemon_free(d);
			tls_ctx_free(tls);
			return 1;
		}
	}
	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		log_info("SIGHUP ignored (restart to change the configuration)");
	log_info("stopping (signal %d)", sig);
	discover_stop(disc);
	control_server_stop(control);
	daemon_stop(d);
	daemon_free(d);
	tls_ctx_free(tls);
	return 0;
}

static int run(struct client_options *o, int argc, char **argv)
{
	static const char *remote[] = { "status", "attach", "detach", "hold", "release" };
	if (argc == 0) {
		if (o->json) {
			fprintf(stderr, "--json goes with the status command\n");
			return 2;
		}
		return run_daemon(o);
	}
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		if (strcmp(argv[0], remote[i]) == 0)
			return run_remote(o, argc, argv);
	}
	fprintf(stderr, "unexpected argument: %s\n", argv[0]);
	return 2;
}

int main(int argc, char **argv)
{
	static struct client_options o;
	daemon_config_defaults(&o.cfg);
	o.control_path = CLIENT_DEFAULT_CONTROL;
	struct opts_spec spec = {
		.prog = "usbip-notify-client",
		.shortopts = "c:s:a:h",
		.longopts = longopts,
		.cli_only = cli_only,
		.config_val = 'c',
		.default_config = CLIENT_DEFAULT_CONFIG,
		.apply = apply,
		.usage = usage,
		.ctx = &o,
	};
	int first = 0;
	int rc = opts_parse(&spec, argc, argv, &first, &o.file);
	if (rc == 0)
		rc = run(&o, argc - first, argv + first);
	else if (rc == 1)
		rc = 0;
	conf_free(&o.file);
	return rc;
}
