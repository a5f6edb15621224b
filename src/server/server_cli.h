/* usbip-notify-server's options: one table for the command line and the
 * configuration file (common/opts.h), the checks for each value, --help.
 *
 * Not in the server library: only main and the list command use it. */
#ifndef USBIP_NOTIFY_SERVER_SERVER_CLI_H
#define USBIP_NOTIFY_SERVER_SERVER_CLI_H

#include <stdbool.h>

#include "backend/libusb_backend.h"
#include "common/cidr.h"
#include "common/conf.h"
#include "proto/notify_v2.h"
#include "server/export_filter.h"
#include "server/server.h"

#define SERVER_VERSION "0.1.0"
#define SERVER_DEFAULT_CONFIG "/etc/usbip-notify/server.conf"
#define SERVER_DEFAULT_CONTROL "/run/usbip-notify/server.sock"
#define SERVER_MAX_ALLOW_CLIENTS 64

enum server_command {
	SERVER_CMD_RUN,   /* no argument: serve */
	SERVER_CMD_LIST,  /* "list": print devices and exit */
	SERVER_CMD_STATUS, /* "status": ask the running server */
};

struct server_options {
	enum server_command command;
	struct server_config server;
	struct libusb_backend_options libusb;
	const char *sim;            /* NULL: libusb */
	bool sim_darwin;            /* sim_set_darwin */
	struct export_filter filter;
	struct tls_options tls;     /* the context is made by run_server */
	struct client_rules client_rules;
	char token[NOTIFY_V2_TOKEN_SIZE];
	struct cidr allow_clients[SERVER_MAX_ALLOW_CLIENTS];
	const char *control_path;   /* "" or "none": no control socket */
	bool control_given;         /* --control was set (list: no fallback) */
	const char *metrics;        /* ADDR:PORT, NULL: off */
	bool trace;
	bool syslog;                /* log to syslog(3), not stderr */
	bool announce;              /* DNS-SD (default on where supported) */
	const char *announce_name;  /* NULL: "usbip-notify on HOST" */
	bool json;                  /* list/status --json */
	bool local;                 /* list --local: never ask a running server */
	struct conf file;           /* values from it point in here */
};

/* Defaults, then the configuration file, then argv. Returns 0 to go on,
 * 1 when done (--help, --version printed) or 2 on a usage error (printed).
 * Free with server_options_free() in every case. */
int server_options_parse(struct server_options *o, int argc, char **argv);
void server_options_free(struct server_options *o);

#endif
