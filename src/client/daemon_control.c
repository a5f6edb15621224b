/* The client daemon's control requests (see daemon_control in daemon.h):
 * status as text or JSON, and attach/detach/hold/release. Formatting only;
 * the state and the actions are daemon.c's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/daemon.h"
#include "common/strbuf.h"
#include "proto/busid.h"
#include "proto/notify_v2.h"

/* The text status names the TLS mode; plaintext lines stay as they were. */
static bool tls_shown(const struct daemon_attachment_extra *ex)
{
	return ex->transport[0] && strcmp(ex->transport, "plaintext") != 0;
}

static void iso_time(int64_t t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "-");
}

static void json_time(struct json_writer *w, int64_t t)
{
	char buf[32];
	iso_time(t, buf, sizeof(buf));
	if (t > 0)
		json_str(w, buf);
	else
		json_null(w);
}

static void status_json(struct daemon *d, struct strbuf *out)
{
	struct json_writer w;
	json_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "servers");
	json_arr_begin(&w);
	for (size_t i = 0; i < daemon_nservers(d); i++) {
		struct daemon_server_status st;
		if (daemon_server_status(d, i, &st) < 0)
			continue;
		json_obj_begin(&w);
		json_key(&w, "name");
		json_str(&w, st.name[0] ? st.name : NULL);
		json_key(&w, "host");
		json_str(&w, st.host);
		json_key(&w, "notify_port");
		json_str(&w, st.notify_port);
		json_key(&w, "state");
		json_str(&w, daemon_conn_state_str(st.state));
		json_key(&w, "since");
		json_time(&w, st.since);
		json_key(&w, "sessions");
		json_int(&w, st.sessions);
		json_key(&w, "last_error");
		json_str(&w, st.last_error[0] ? st.last_error : NULL);
		json_key(&w, "last_error_at");
		json_time(&w, st.last_error_at);
		json_key(&w, "attachments");
		json_arr_begin(&w);
		struct attachment att[DAEMON_MAX_ATTACHMENTS];
		struct daemon_attachment_extra ex[DAEMON_MAX_ATTACHMENTS];
		size_t n = daemon_attachments_extra(d, i, att, ex, DAEMON_MAX_ATTACHMENTS);
		for (size_t k = 0; k < n; k++) {
			json_obj_begin(&w);
			json_key(&w, "busid");
			json_str(&w, att[k].busid);
			json_key(&w, "vhci_port");
			json_int(&w, att[k].port);
			json_key(&w, "devid");
			json_int(&w, att[k].devid);
			json_key(&w, "speed");
			json_str(&w, ex[k].speed ? notify_v2_speed_name(ex[k].speed) : NULL);
			json_key(&w, "since");
			json_time(&w, ex[k].since);
			json_key(&w, "transport");
			json_str(&w, ex[k].transport[0] ? ex[k].transport : NULL);
			json_obj_end(&w);
		}
		json_arr_end(&w);
		json_obj_end(&w);
	}
	json_arr_end(&w);
	json_key(&w, "holds");
	json_arr_begin(&w);
	char holds[DAEMON_MAX_HOLDS][USBIP_BUSID_SIZE];
	size_t nh = daemon_holds(d, holds, DAEMON_MAX_HOLDS);
	for (size_t i = 0; i < nh; i++)
		json_str(&w, holds[i]);
	json_arr_end(&w);
	json_obj_end(&w);
	sb_append(out, "\n", 1);
}

static void status_text(struct daemon *d, struct strbuf *out)
{
	for (size_t i = 0; i < daemon_nservers(d); i++) {
		struct daemon_server_status st;
		if (daemon_server_status(d, i, &st) < 0)
			continue;
		char since[32], errat[32];
		iso_time(st.since, since, sizeof(since));
		iso_time(st.last_error_at, errat, sizeof(errat));
		sb_printf(out, "server %s:%s%s%s%s: %s since %s, %u session(s)\n", st.host,
			  st.notify_port, st.name[0] ? " (\"" : "", st.name, st.name[0] ? "\")" : "",
			  daemon_conn_state_str(st.state), since, st.sessions);
		if (st.last_error[0])
			sb_printf(out, "  last error (%s): %s\n", errat, st.last_error);
		struct attachment att[DAEMON_MAX_ATTACHMENTS];
		struct daemon_attachment_extra ex[DAEMON_MAX_ATTACHMENTS];
		size_t n = daemon_attachments_extra(d, i, att, ex, DAEMON_MAX_ATTACHMENTS);
		for (size_t k = 0; k < n; k++) {
			char at[32];
			iso_time(ex[k].since, at, sizeof(at));
			/* "from HOST:PORT/BUSID", as the offline status and `usbip port` say. */
			sb_printf(out, "  %s on vhci port %d, %s speed, since %s, from %s:%s/%s%s%s\n",
				  att[k].busid, att[k].port,
				  ex[k].speed ? notify_v2_speed_name(ex[k].speed) : "unknown", at,
				  st.host, st.usbip_port, att[k].busid, tls_shown(&ex[k]) ? ", " : "",
				  tls_shown(&ex[k]) ? ex[k].transport : "");
		}
		if (n == 0)
			sb_printf(out, "  nothing attached\n");
	}
	char holds[DAEMON_MAX_HOLDS][USBIP_BUSID_SIZE];
	size_t nh = daemon_holds(d, holds, DAEMON_MAX_HOLDS);
	if (nh) {
		sb_printf(out, "on hold:");
		for (size_t i = 0; i < nh; i++)
			sb_printf(out, " %s", holds[i]);
		sb_printf(out, "\n");
	}
}

int daemon_control(void *ctx, int argc, char **argv, struct strbuf *reply)
{
	struct daemon *d = ctx;
	if (strcmp(argv[0], "status") == 0) {
		bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
		if (argc > 2 || (argc == 2 && !json)) {
			sb_printf(reply, "usage: status [--json]");
			return -EINVAL;
		}
		if (json)
			status_json(d, reply);
		else
			status_text(d, reply);
		return 0;
	}
	static const struct {
		const char *name;
		int (*fn)(struct daemon *d, const char *busid);
		const char *done;
	} verbs[] = {
		{ "attach", daemon_attach, "attached" },
		{ "detach", daemon_detach, "detached and on hold" },
		{ "hold", daemon_hold, "on hold" },
		{ "release", daemon_release, "released" },
	};
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(argv[0], verbs[i].name) != 0)
			continue;
		if (argc != 2 || !busid_valid(argv[1])) {
			sb_printf(reply, "usage: %s BUSID", verbs[i].name);
			return -EINVAL;
		}
		int rc = verbs[i].fn(d, argv[1]);
		if (rc < 0) {
			const char *why = rc == -EALREADY ? "already attached"
					: rc == -ENODEV	  ? "no subscribed server offers it free"
					: rc == -ENOENT	  ? "not attached or held"
					: rc == -ENOSPC	  ? "too many holds"
							  : strerror(-rc);
			sb_printf(reply, "%s %s: %s", verbs[i].name, argv[1], why);
			return rc;
		}
		sb_printf(reply, "%s %s\n", argv[1], verbs[i].done);
		return 0;
	}
	sb_printf(reply, "unknown request \"%s\" (status, attach, detach, hold, release)",
		  argv[0]);
	return -EINVAL;
}
