/* usbip-notify-server: exports USB devices over USB/IP.
 *
 * Parses the options (server_cli.c: flags and configuration file), then
 * either prints the device list (`list`) or builds the backend and the
 * server, opens the control socket, and waits for SIGINT/SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/libusb_backend.h"
#include "backend/sim.h"
#include "common/control.h"
#include "common/dnssd.h"
#include "common/log.h"
#include "server/device_report.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/notify_hub.h"
#include "server/server.h"
#include "server/server_cli.h"
#include "server/trace.h"

static struct backend *make_backend(struct server_options *o)
{
	struct backend *b;
	if (o->sim) {
		b = sim_backend_new(o->sim);
		if (!b)
			fprintf(stderr, "bad --sim spec: %s\n", o->sim);
		else if (o->sim_darwin)
			sim_set_darwin(b, true);
	} else {
		b = libusb_backend_new(&o->libusb);
		if (!b)
			fprintf(stderr, "cannot initialise libusb\n");
	}
	return b;
}

/* The report over the backend's devices; views NULL without a server. */
static int build_report(struct backend *b, const struct export_filter *f,
			struct export_table *table, bool json, struct strbuf *out)
{
	struct bk_device_info *devs = NULL;
	size_t n = 0;
	int rc = b->ops->enumerate(b, &devs, &n);
	if (rc < 0) {
		sb_printf(out, "cannot enumerate devices: %s", linux_errno_name(rc));
		return rc;
	}
	struct export_view *views = NULL;
	int nviews = 0;
	if (table) {
		nviews = export_table_snapshot(table, &views);
		if (nviews < 0) {
			free(devs);
			sb_printf(out, "out of memory");
			return -ENOMEM;
		}
	}
	device_report(out, json, devs, n, f, views, nviews > 0 ? (size_t)nviews : 0);
	free(views);
	free(devs);
	return 0;
}

struct control_ctx {
	struct server_options *o;
	struct backend *b;
	struct server *srv;
	struct metrics *metrics; /* NULL without --metrics */
};

/* The metrics document: gauges from the export table and the notify hub,
 * counters from the per-device table (a slot for every exported device,
 * so each shows up from the start, at zero). */
static void render_metrics(void *ctx, struct strbuf *out)
{
	struct control_ctx *c = ctx;
	struct metrics_gauges g = { 0 };
	struct export_view *views = NULL;
	int n = export_table_snapshot(server_exports(c->srv), &views);
	for (int i = 0; i < n; i++) {
		g.exported++;
		g.sessions += views[i].held;
		metrics_device(c->metrics, views[i].info.busid);
	}
	free(views);
	struct notify_hub *hub = server_notify(c->srv);
	g.notify_enabled = hub != NULL;
	g.subscribers = hub ? notify_hub_subscribers(hub) : 0;
	metrics_render(out, &g, c->metrics);
}

static void status_report(struct control_ctx *c, bool json, struct strbuf *out)
{
	struct export_view *views = NULL;
	int n = export_table_snapshot(server_exports(c->srv), &views);
	int held = 0;
	for (int i = 0; i < n; i++)
		held += views[i].held;
	if (json) {
		struct json_writer w;
		json_init(&w, out);
		json_obj_begin(&w);
		json_key(&w, "version");
		json_str(&w, SERVER_VERSION);
		json_key(&w, "backend");
		json_str(&w, c->b->ops->name);
		json_key(&w, "port");
		json_int(&w, server_port(c->srv));
		json_key(&w, "notify_port");
		json_int(&w, server_notify_port(c->srv));
		json_key(&w, "exported");
		json_int(&w, n < 0 ? 0 : n);
		json_key(&w, "held");
		json_int(&w, held);
		json_obj_end(&w);
		sb_append(out, "\n", 1);
	} else {
		sb_printf(out, "usbip-notify-server %s, backend %s\n", SERVER_VERSION,
			  c->b->ops->name);
		sb_printf(out, "USB/IP port %d, notify port %d\n", server_port(c->srv),
			  server_notify_port(c->srv));
		sb_printf(out, "%d device(s) exported, %d held\n", n < 0 ? 0 : n, held);
	}
	free(views);
}

/* Control requests: "status [--json]", "list [--json]". */
static int control_handler(void *ctx, int argc, char **argv, struct strbuf *reply)
{
	struct control_ctx *c = ctx;
	bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
	if (argc > 2 || (argc == 2 && !json)) {
		sb_printf(reply, "usage: %s [--json]", argv[0]);
		return -EINVAL;
	}
	if (strcmp(argv[0], "list") == 0)
		return build_report(c->b, &c->o->filter, server_exports(c->srv), json, reply);
	if (strcmp(argv[0], "status") == 0) {
		status_report(c, json, reply);
		return 0;
	}
	sb_printf(reply, "unknown request \"%s\" (status, list)", argv[0]);
	return -EINVAL;
}

/* `list`: from the running server when its control socket answers (it
 * knows who holds what), else from this process's own enumeration. */
static int run_list(struct server_options *o)
{
	struct strbuf out;
	sb_init(&out);
	int rc = -ENOENT;
	if (!o->local && o->control_path[0]) {
		rc = control_request(o->control_path, o->json ? "list --json" : "list", &out);
		if (rc == -EREMOTEIO) {
			fprintf(stderr, "server: %s\n", sb_str(&out));
			sb_free(&out);
			return 1;
		}
		if (rc < 0 && o->control_given) {
			fprintf(stderr, "no server answers on %s: %s\n", o->control_path,
				strerror(-rc));
			sb_free(&out);
			return 1;
		}
		if (rc == -EACCES)
			fprintf(stderr, "note: no permission for %s (a running server's control "
					"socket); listing here, without who holds what\n",
				o->control_path);
		if (rc < 0)
			sb_free(&out);
	}
	if (rc < 0) {
		struct backend *b = make_backend(o);
		if (!b)
			return 1;
		rc = build_report(b, &o->filter, NULL, o->json, &out);
		b->ops->destroy(b);
		if (rc < 0) {
			fprintf(stderr, "%s\n", sb_str(&out));
			sb_free(&out);
			return 1;
		}
	}
	fputs(sb_str(&out), stdout);
	rc = out.failed ? 1 : 0;
	sb_free(&out);
	return rc;
}

/* `status`: only a running server knows. */
static int run_status(struct server_options *o)
{
	if (!o->control_path[0]) {
		fprintf(stderr, "status needs the control socket (--control PATH)\n");
		return 2;
	}
	struct strbuf out;
	sb_init(&out);
	int rc = control_request(o->control_path, o->json ? "status --json" : "status", &out);
	if (rc == 0)
		fputs(sb_str(&out), stdout);
	else if (rc == -EREMOTEIO)
		fprintf(stderr, "server: %s\n", sb_str(&out));
	else
		fprintf(stderr, "no server answers on %s: %s\n", o->control_path, strerror(-rc));
	sb_free(&out);
	return rc == 0 ? 0 : 1;
}

static int run_server(struct server_options *o)
{
	if (o->syslog)
		log_to_syslog("usbip-notify-server");
	struct backend *b = make_backend(o);
	if (!b)
		return o->sim ? 2 : 1;
	o->server.filter = export_filter_offers;
	o->server.filter_ctx = &o->filter;
	if (o->token[0] && !o->server.notify.enabled && o->server.import_auth)
		fprintf(stderr, "note: a notify token without the notify channel protects "
				"nothing; imports are not tied to it\n");

	/* Block the stop signals in every thread; the main thread waits for them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* --trace: the sessions print one line per command and reply. */
	struct trace trace = { .enabled = o->trace };
	o->server.trace = &trace;

	int status = 1;
	struct control_ctx cctx = { .o = o, .b = b };
	struct metrics_http *http = NULL;
	/* The counters exist before the server, which hands them to sessions. */
	if (o->metrics) {
		cctx.metrics = metrics_new();
		o->server.metrics = cctx.metrics;
	}
	struct tls_ctx *tls = NULL;
	struct server *srv = NULL;
	if (tls_options_enabled(&o->tls)) {
		char err[TLS_ERR_SIZE];
		tls = tls_ctx_new(&o->tls, true, err);
		if (!tls) {
			log_error("TLS: %s", err);
			goto out_server;
		}
		o->server.tls = tls;
		log_info("TLS 1.3 on port %s (%s)%s", o->server.port,
			 o->tls.psk_file ? "pre-shared key" : "client certificates required",
			 o->tls.optional ? "; plaintext clients accepted too (--tls-optional)"
					 : "; plaintext clients refused");
	}
	srv = server_new(b, &o->server);
	if (!srv || server_start(srv) < 0)
		goto out_server;
	cctx.srv = srv;

	if (o->metrics) {
		int rc = cctx.metrics ? metrics_http_start(o->metrics, render_metrics, &cctx, &http)
				      : -ENOMEM;
		if (rc < 0) {
			log_error("metrics endpoint %s: %s", o->metrics, strerror(-rc));
			goto out_metrics;
		}
		log_info("metrics on http://%s/metrics (port %d)", o->metrics,
			 metrics_http_port(http));
	}
	struct control_server *control = NULL;
	if (o->control_path[0]) {
		int rc = control_server_start(o->control_path, control_handler, &cctx, &control);
		if (rc < 0) {
			/* Not fatal: serving USB matters more than the socket. */
			log_warn("control socket %s: %s%s", o->control_path, strerror(-rc),
				 rc == -EADDRINUSE ? " (another server is running)" : "");
			control = NULL;
		} else {
			log_info("control socket %s", o->control_path);
		}
	}

	/* Announced last: once clients find us, everything answers. */
	struct dnssd_announcer *announcer = NULL;
	if (o->announce && dnssd_supported()) {
		struct dnssd_service svc = {
			.name = o->announce_name,
			.port = (uint16_t)server_port(srv),
			.notify_port = server_notify_port(srv),
		};
		int rc = dnssd_announce(&svc, &announcer);
		if (rc < 0)
			log_warn("dns-sd: not announcing: %s (--no-announce turns this off)",
				 rc == -ENOTCONN ? "no D-Bus system bus to reach avahi-daemon"
						 : strerror(-rc));
	} else if (o->announce_name && !dnssd_supported()) {
		log_warn("--announce-name: this build has no DNS-SD support");
	}

	int sig = 0;
	sigwait(&stop, &sig);
	log_info("signal %d: shutting down", sig);
	dnssd_announce_stop(announcer);
	control_server_stop(control);
	status = 0;
out_metrics:
	metrics_http_stop(http);
out_server:
	server_free(srv); /* its sessions counted into the metrics: free them after */
	tls_ctx_free(tls);
	metrics_free(cctx.metrics);
	b->ops->destroy(b);
	return status;
}

int main(int argc, char **argv)
{
	struct server_options o;
	int rc = server_options_parse(&o, argc, argv);
	if (rc == 0)
		rc = o.command == SERVER_CMD_LIST     ? run_list(&o)
		     : o.command == SERVER_CMD_STATUS ? run_status(&o)
						      : run_server(&o);
	else if (rc == 1)
		rc = 0;
	server_options_free(&o);
	return rc;
}
