#include "client/daemon.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_net.h"
#include "client/import.h"
#include "client/tls_handoff.h"
#include "common/log.h"
#include "common/net.h"
#include "proto/busid.h"
#include "proto/notify_v1.h"

#define DAEMON_MAX_SNAPSHOT USBIP_MAX_DEVICES
#define DAEMON_READ_CHUNK 4096
#define DAEMON_MAX_PENDING 32 /* attaches imported together */

/* Newline framing with v2's bound (a v2 device line may reach
 * NOTIFY_V2_MAX_LINE). */
struct linebuf {
	char buf[NOTIFY_V2_MAX_LINE + 1];
	size_t len;
	bool skipping;
};

/* An attach waiting for its import (flush_attaches). */
struct pending_attach {
	char busid[USBIP_BUSID_SIZE];
	struct notify_v2_device expect;
	bool has_expect;
	bool ids_known;
	bool by_name;        /* import by host name instead (blocking) */
	bool manual;         /* the control socket's attach: filters do not apply */
	int64_t t0_ns;       /* the notify line that asked for it */
	struct import_op op;
};

struct server_ctx {
	struct daemon *d;
	size_t index;
	const struct daemon_server_spec *spec;
	pthread_t thread;
	bool started;
	/* Written to end this server's thread (daemon_stop, or removal);
	 * every wait of the thread watches it. */
	int wake[2];
	/* Under d->lock: a removal is under way / done (the slot is free). */
	bool leaving;
	bool gone;
	/* Under d->lock. */
	enum daemon_conn_state state;
	unsigned sessions;
	int64_t state_since;
	char last_error[DAEMON_ERROR_SIZE];
	int64_t last_error_at;
	struct attachment att[DAEMON_MAX_ATTACHMENTS];
	struct daemon_attachment_extra att_extra[DAEMON_MAX_ATTACHMENTS]; /* beside att[] */
	size_t natt;
	/* Connection, owned by the thread. */
	int fd;
	struct linebuf lb;
	bool welcomed;
	bool in_snapshot;
	unsigned heartbeat_s;
	int64_t last_rx_ms;
	int64_t last_tx_ms;
	struct notify_v2_device *snap; /* DAEMON_MAX_SNAPSHOT entries */
	size_t nsnap;
	unsigned seed;
	/* Imports go to the notify peer's address with the usbip port: no name
	 * lookup per import. import_addrlen 0: unknown, import by name. */
	struct sockaddr_storage import_addr;
	socklen_t import_addrlen;
	int64_t line_ns;               /* when the line being handled was framed */
	struct pending_attach *pend;   /* DAEMON_MAX_PENDING entries */
	size_t npend;
};

struct daemon {
	struct daemon_config cfg;
	struct vhci vhci;
	bool vhci_ok;
	pthread_mutex_t lock;
	int stop_pipe[2];
	struct server_ctx servers[DAEMON_MAX_SERVERS];
	/* Under lock: busids kept from automatic attach (daemon_hold). */
	char holds[DAEMON_MAX_HOLDS][USBIP_BUSID_SIZE];
	size_t nholds;
};

void daemon_config_defaults(struct daemon_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->usbip_port, sizeof(cfg->usbip_port), "%s", DAEMON_DEFAULT_USBIP_PORT);
	cfg->protocol = 2;
	cfg->sysfs_root = DAEMON_DEFAULT_SYSFS_ROOT;
	cfg->run_dir = DAEMON_DEFAULT_RUN_DIR;
	cfg->state_file = DAEMON_DEFAULT_STATE_FILE;
	cfg->backoff_min_ms = 500;
	cfg->backoff_max_ms = 30000;
	cfg->connect_timeout_ms = 5000;
	cfg->import_timeout_ms = 5000;
	cfg->hello_timeout_ms = 10000;
}

int daemon_config_add_server(struct daemon_config *cfg, const char *spec)
{
	if (cfg->nservers >= DAEMON_MAX_SERVERS)
		return -ENOSPC;
	struct daemon_server_spec *s = &cfg->servers[cfg->nservers];
	int err = cnet_split_host_port(spec, DAEMON_DEFAULT_NOTIFY_PORT, s->host, sizeof(s->host),
				       s->notify_port, sizeof(s->notify_port));
	if (err)
		return err;
	cfg->nservers++;
	return 0;
}

const char *daemon_conn_state_str(enum daemon_conn_state s)
{
	switch (s) {
	case CONN_IDLE:
		return "idle";
	case CONN_CONNECTING:
		return "connecting";
	case CONN_CONNECTED:
		return "connected";
	case CONN_SUBSCRIBED:
		return "subscribed";
	case CONN_BACKOFF:
		return "reconnecting";
	}
	return "?";
}

static bool stopping(struct daemon *d)
{
	struct pollfd p = { .fd = d->stop_pipe[0], .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

/* The daemon stops or this server is being removed. */
static bool server_done(struct server_ctx *s)
{
	struct pollfd p = { .fd = s->wake[0], .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

/* ---- State file --------------------------------------------------------- */

/* Caller holds d->lock. Written whole to a temporary file and renamed, so a
 * reader never sees half of it. */
static void state_write_locked(struct daemon *d)
{
	const char *path = d->cfg.state_file;
	if (!path || !*path || d->cfg.dry_run)
		return;
	char tmp[PATH_MAX], dir[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return;
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_debug("state file %s: %s", tmp, strerror(errno));
		return;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	fprintf(f, "# usbip-notify-client state (protocol v%d%s)\n", d->cfg.protocol,
		d->cfg.dry_run ? ", dry run" : "");
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		struct server_ctx *s = &d->servers[i];
		if (s->gone)
			continue;
		fprintf(f, "server %s port=%s state=%s attached=%zu\n", s->spec->host,
			s->spec->notify_port, daemon_conn_state_str(s->state), s->natt);
		for (size_t k = 0; k < s->natt; k++)
			fprintf(f, "  attached busid=%s vhci-port=%d devid=0x%08x\n",
				s->att[k].busid, s->att[k].port, s->att[k].devid);
	}
	bool ok = fflush(f) == 0;
	if (fclose(f) != 0)
		ok = false;
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}

/* Caller holds d->lock. */
static void change_state_locked(struct server_ctx *s, enum daemon_conn_state st)
{
	if (s->state != st) {
		s->state = st;
		s->state_since = (int64_t)time(NULL);
		state_write_locked(s->d);
	}
}

static void set_state(struct server_ctx *s, enum daemon_conn_state st)
{
	pthread_mutex_lock(&s->d->lock);
	change_state_locked(s, st);
	pthread_mutex_unlock(&s->d->lock);
}

/* Remembers the latest failure for status; the log line is the caller's. */
static void set_error(struct server_ctx *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct server_ctx *s, const char *fmt, ...)
{
	char msg[DAEMON_ERROR_SIZE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->d->lock);
	memcpy(s->last_error, msg, sizeof(msg));
	s->last_error_at = (int64_t)time(NULL);
	pthread_mutex_unlock(&s->d->lock);
}

/* Caller holds d->lock. */
static int hold_find_locked(struct daemon *d, const char *busid)
{
	for (size_t i = 0; i < d->nholds; i++) {
		if (strcmp(d->holds[i], busid) == 0)
			return (int)i;
	}
	return -1;
}

/* ---- vhci actions (all under d->lock) ----------------------------------- */

/* Reads the live port table into views; returns the count or -errno. */
static int read_views_locked(struct daemon *d, struct port_view *views, size_t max)
{
	struct vhci_port *ports = calloc(VHCI_MAX_PORTS, sizeof(*ports));
	if (!ports)
		return -ENOMEM;
	int n = vhci_read_ports(&d->vhci, ports, VHCI_MAX_PORTS);
	for (int i = 0; i < n && (size_t)i < max; i++) {
		views[i].port = ports[i].port;
		views[i].used = ports[i].state == VHCI_ST_USED;
		views[i].devid = ports[i].devid;
		views[i].attaching = ports[i].state == VHCI_ST_NOTASSIGNED;
	}
	free(ports);
	return n < 0 ? n : (n > (int)max ? (int)max : n);
}

/* Removes port's record only when it is the one we wrote. */
static void remove_our_record(struct server_ctx *s, const struct attachment *a)
{
	char host[VHCI_HOST_SIZE], service[VHCI_SERVICE_SIZE], busid[USBIP_BUSID_SIZE];
	if (vhci_record_read(&s->d->vhci, a->port, host, service, busid) == 0 &&
	    strcmp(host, s->spec->host) == 0 && strcmp(busid, a->busid) == 0)
		vhci_record_remove(&s->d->vhci, a->port);
}

static void drop_attachment_locked(struct server_ctx *s, size_t i)
{
	s->att[i] = s->att[s->natt - 1];
	s->att_extra[i] = s->att_extra[s->natt - 1];
	s->natt--;
}

/* Forgets attachments whose port vhci freed (their session ended). */
static void prune_stale_locked(struct server_ctx *s)
{
	struct daemon *d = s->d;
	if (!d->vhci_ok || s->natt == 0)
		return;
	struct port_view *views = calloc(VHCI_MAX_PORTS, sizeof(*views));
	if (!views)
		return;
	int n = read_views_locked(d, views, VHCI_MAX_PORTS);
	if (n >= 0) {
		bool stale[DAEMON_MAX_ATTACHMENTS];
		size_t nstale = reconcile_check_live(s->att, s->natt, views, (size_t)n, stale);
		for (size_t i = s->natt; i-- > 0;) {
			if (!stale[i])
				continue;
			log_info("%s: %s on vhci port %d ended on its own; forgetting it",
				 s->spec->host, s->att[i].busid, s->att[i].port);
			remove_our_record(s, &s->att[i]);
			drop_attachment_locked(s, i);
		}
		if (nstale > 0)
			state_write_locked(d); /* the state file must not list them */
	}
	free(views);
}

static void detach_locked(struct server_ctx *s, size_t i)
{
	struct daemon *d = s->d;
	struct attachment a = s->att[i];
	if (d->cfg.dry_run) {
		log_info("dry run: would detach %s (from %s) on vhci port %d", a.busid,
			 s->spec->host, a.port);
		drop_attachment_locked(s, i);
		return;
	}
	/* Detach only a port that still carries the device we attached. */
	struct port_view *views = calloc(VHCI_MAX_PORTS, sizeof(*views));
	int n = views ? read_views_locked(d, views, VHCI_MAX_PORTS) : -ENOMEM;
	bool stale = true;
	if (n >= 0)
		reconcile_check_live(&a, 1, views, (size_t)n, &stale);
	free(views);
	if (n < 0) {
		log_warn("%s: cannot read vhci status (%s); not detaching port %d", a.busid,
			 strerror(-n), a.port);
	} else if (stale) {
		log_info("%s: vhci port %d already freed", a.busid, a.port);
	} else {
		int err = vhci_detach(&d->vhci, a.port);
		if (err && err != -EINVAL)
			log_warn("%s: detach of vhci port %d failed: %s", a.busid, a.port,
				 strerror(-err));
		else
			log_info("detached %s (from %s) from vhci port %d", a.busid, s->spec->host,
				 a.port);
	}
	remove_our_record(s, &a);
	drop_attachment_locked(s, i);
}

/* Caller holds d->lock. Dry run: records busid as attached (no vhci port). */
static void dry_run_record_locked(struct server_ctx *s, const char *busid)
{
	log_info("dry run: would import %s from %s:%s and attach it", busid, s->spec->host,
		 s->spec->usbip_port);
	if (s->natt < DAEMON_MAX_ATTACHMENTS && attachment_find(s->att, s->natt, busid) < 0) {
		memset(&s->att_extra[s->natt], 0, sizeof(s->att_extra[0]));
		s->att_extra[s->natt].since = (int64_t)time(NULL);
		struct attachment *a = &s->att[s->natt++];
		memset(a, 0, sizeof(*a));
		snprintf(a->busid, sizeof(a->busid), "%s", busid);
		a->port = -1;
	}
}

/* Finds vhci_hcd if it was not there before; false (logged, last error set)
 * when it is still missing. first names the device that wanted it. */
static bool vhci_ready(struct server_ctx *s, const char *first)
{
	struct daemon *d = s->d;
	pthread_mutex_lock(&d->lock);
	if (!d->vhci_ok)
		d->vhci_ok = vhci_locate(&d->vhci) == 0; /* loaded by the admin since */
	bool vhci_ok = d->vhci_ok;
	pthread_mutex_unlock(&d->lock);
	if (!vhci_ok)
		set_error(s, "%s: vhci_hcd is not available (modprobe vhci-hcd)", first);
	return vhci_ok;
}

/* The second half of an attach, once the import is done: checks the device
 * is the one announced and allowed (filters do not apply to a manual
 * attach), writes the vhci attach, records it and logs the timing of each
 * step. Returns 0 when attached, else a negative errno. */
static int finish_attach(struct server_ctx *s, struct pending_attach *p, int err,
			 int op_status, struct import_result *res)
{
	struct daemon *d = s->d;
	const char *busid = p->busid;
	const struct notify_v2_device *expect = p->has_expect ? &p->expect : NULL;
	bool ids_known = p->ids_known;
	int vhci_fd = -1;
	char tls_peer[TLS_IDENTITY_SIZE] = "";
	if (err == 0 && res->tls)
		snprintf(tls_peer, sizeof(tls_peer), "%s", tls_conn_peer(res->tls));

	if (err == -EBUSY) {
		log_info("%s: %s is busy (imported by another client); will retry when it is free",
			 s->spec->host, busid);
		return err;
	}
	if (err == -EPROTO && p->op.tls_err[0]) {
		log_warn("%s: import of %s failed: %s", s->spec->host, busid, p->op.tls_err);
		set_error(s, "import of %s failed: %s", busid, p->op.tls_err);
		return err;
	}
	if (err) {
		if (op_status > 0) {
			log_warn("%s: import of %s refused: %s", s->spec->host, busid,
				 import_status_str((uint32_t)op_status));
			set_error(s, "import of %s refused: %s", busid,
				  import_status_str((uint32_t)op_status));
		} else {
			log_warn("%s: import of %s failed: %s", s->spec->host, busid,
				 strerror(-err));
			set_error(s, "import of %s failed: %s", busid, strerror(-err));
		}
		return err;
	}
	int result = -EPERM;
	/* The session now holds the device: check it is the one we want. */
	if (expect && ids_known &&
	    (res->dev.idVendor != expect->vid || res->dev.idProduct != expect->pid)) {
		log_warn("%s: %s is %04x:%04x, not the announced %04x:%04x; not attaching",
			 s->spec->host, busid, res->dev.idVendor, res->dev.idProduct, expect->vid,
			 expect->pid);
		goto out_close;
	}
	struct dev_identity id = {
		.busid = busid,
		.has_ids = true,
		.vid = res->dev.idVendor,
		.pid = res->dev.idProduct,
		.serial = (expect && ids_known) ? expect->serial : NULL,
	};
	enum filter_verdict v = p->manual ? FILTER_ALLOW : filter_check(&d->cfg.filter, &id);
	if (v != FILTER_ALLOW) {
		log_info("%s: %s (%04x:%04x) is not allowed by the filters%s", s->spec->host, busid,
			 res->dev.idVendor, res->dev.idProduct,
			 v == FILTER_UNKNOWN ? " (serial rules need protocol v2)" : "");
		goto out_close;
	}

	pthread_mutex_lock(&d->lock);
	if (s->natt >= DAEMON_MAX_ATTACHMENTS) {
		pthread_mutex_unlock(&d->lock);
		log_warn("%s: too many attachments; not attaching %s", s->spec->host, busid);
		goto out_close;
	}
	int port = -1;
	char mode[TLS_MODE_SIZE];
	err = tls_handoff(res, &vhci_fd, mode);
	if (err) {
		pthread_mutex_unlock(&d->lock);
		log_error("%s: cannot hand %s over to the kernel through TLS: %s", s->spec->host,
			  busid, strerror(-err));
		set_error(s, "TLS hand-off of %s failed: %s", busid, strerror(-err));
		result = err;
		goto out_close;
	}
	err = vhci_attach(&d->vhci, vhci_fd, res->devid, res->dev.speed, &port);
	int64_t vhci_ns = import_now_ns();
	if (err) {
		pthread_mutex_unlock(&d->lock);
		log_error("%s: vhci attach of %s failed: %s%s", s->spec->host, busid, strerror(-err),
			  err == -EBUSY ? " (no free port on the right hub)" : "");
		set_error(s, "vhci attach of %s failed: %s", busid, strerror(-err));
		result = err;
		goto out_close;
	}
	memset(&s->att_extra[s->natt], 0, sizeof(s->att_extra[0]));
	s->att_extra[s->natt].speed = res->dev.speed;
	s->att_extra[s->natt].since = (int64_t)time(NULL);
	snprintf(s->att_extra[s->natt].transport, sizeof(s->att_extra[0].transport), "%s", mode);
	struct attachment *a = &s->att[s->natt++];
	memset(a, 0, sizeof(*a));
	snprintf(a->busid, sizeof(a->busid), "%s", busid);
	a->port = port;
	a->devid = res->devid;
	err = vhci_record_write(&d->vhci, port, s->spec->host, s->spec->usbip_port, busid);
	if (err)
		log_warn("cannot write the port record for vhci port %d: %s", port,
			 strerror(-err));
	state_write_locked(d);
	pthread_mutex_unlock(&d->lock);
	log_info("attached %s from %s (%04x:%04x, %s speed) on vhci port %d, %s%s%s%s", busid,
		 s->spec->host, res->dev.idVendor, res->dev.idProduct,
		 notify_v2_speed_name(res->dev.speed), port, mode, d->cfg.tls ? " (server \"" : "",
		 d->cfg.tls ? tls_peer : "", d->cfg.tls ? "\")" : "");
	/* From the notify line (or snapshot end) to the attach write. */
	log_info("attach %s timing: connect=%.3f import=%.3f vhci=%.3f total=%.3f", busid,
		 (double)(res->connected_ns - p->t0_ns) / 1e6,
		 (double)(res->replied_ns - res->connected_ns) / 1e6,
		 (double)(vhci_ns - res->replied_ns) / 1e6, (double)(vhci_ns - p->t0_ns) / 1e6);
	result = 0;
out_close:
	/* After attach the kernel holds its own reference; ours goes either way
	 * (a relay's thread keeps the connection and ends when vhci's end does). */
	if (vhci_fd >= 0 && vhci_fd != res->fd)
		close(vhci_fd);
	if (res->fd >= 0)
		close(res->fd);
	tls_conn_free(res->tls);
	res->tls = NULL;
	return result;
}

/* Imports by name, blocking: when the notify peer's address is unknown or
 * does not take the usbip port, and for a manual attach. The server's wake
 * pipe cancels it (daemon_stop, or the server's removal). */
static int attach_by_name(struct server_ctx *s, struct pending_attach *p)
{
	struct daemon *d = s->d;
	struct import_result res;
	int op_status;
	int err = import_device_tls(s->spec->host, s->spec->usbip_port, p->busid,
				    d->cfg.import_timeout_ms, s->wake[0], d->cfg.tls, &res,
				    &op_status, p->op.tls_err);
	return finish_attach(s, p, err, op_status, &res);
}

/* Imports every queued device at once (one connection each, all in flight
 * together) and attaches each as its reply comes: n devices cost about one
 * round trip, not n. Held busids are dropped here, just before the import. */
static void flush_attaches(struct server_ctx *s)
{
	struct daemon *d = s->d;
	size_t n = s->npend;

	s->npend = 0;
	if (n == 0 || server_done(s))
		return;
	struct pending_attach *pend = s->pend;
	pthread_mutex_lock(&d->lock);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (hold_find_locked(d, pend[i].busid) >= 0) {
			log_info("%s: %s is on hold; not attaching", s->spec->host, pend[i].busid);
			continue;
		}
		if (kept != i)
			pend[kept] = pend[i];
		kept++;
	}
	n = kept;
	if (n > 0 && d->cfg.dry_run) {
		for (size_t i = 0; i < n; i++)
			dry_run_record_locked(s, pend[i].busid);
	}
	pthread_mutex_unlock(&d->lock);
	if (n == 0 || d->cfg.dry_run)
		return;
	if (!vhci_ready(s, pend[0].busid)) {
		for (size_t i = 0; i < n; i++)
			log_error("%s: cannot attach %s: vhci_hcd is not available (modprobe vhci-hcd)",
				  s->spec->host, pend[i].busid);
		return;
	}

	size_t active = 0;
	for (size_t i = 0; i < n; i++) {
		struct pending_attach *p = &pend[i];
		if (s->import_addrlen == 0 ||
		    (!import_begin_tls(&p->op, (const struct sockaddr *)&s->import_addr,
				       s->import_addrlen, p->busid, d->cfg.import_timeout_ms,
				       d->cfg.tls, s->spec->host) &&
		     p->op.connect_failed)) {
			p->op.stage = IMPORT_DONE;
			p->by_name = true;
			continue;
		}
		if (p->op.stage != IMPORT_DONE)
			active++;
	}
	struct pollfd *pfd = calloc(n + 1, sizeof(*pfd));
	size_t *idx = calloc(n + 1, sizeof(*idx));
	bool cancelled = false;
	while (active > 0 && pfd && idx) {
		nfds_t np = 0;
		int timeout = 60000;
		int64_t now = net_now_ms();
		for (size_t i = 0; i < n; i++) {
			if (pend[i].op.stage == IMPORT_DONE)
				continue;
			pfd[np] = (struct pollfd){ .fd = pend[i].op.fd,
						   .events = import_events(&pend[i].op) };
			idx[np++] = i;
			int w = import_wait_ms(&pend[i].op, now);
			if (w < timeout)
				timeout = w;
		}
		/* The daemon stops or this server is removed. */
		pfd[np] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		int r = poll(pfd, np + 1, timeout);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && (pfd[np].revents & POLLIN)) {
			cancelled = true;
			break;
		}
		for (nfds_t k = 0; k < np; k++) {
			struct pending_attach *p = &pend[idx[k]];
			if (!import_advance(&p->op, r > 0 ? pfd[k].revents : 0))
				continue;
			active--;
			if (p->op.err && p->op.connect_failed && p->op.err != -ETIMEDOUT) {
				p->by_name = true; /* another of the host's addresses may do */
				continue;
			}
			finish_attach(s, p, p->op.err, p->op.op_status, &p->op.res);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct pending_attach *p = &pend[i];
		if (p->op.stage != IMPORT_DONE) {
			import_abort(&p->op);
			if (!cancelled) {
				log_warn("%s: import of %s abandoned (out of memory or poll "
					 "failed)", s->spec->host, p->busid);
				set_error(s, "import of %s abandoned", p->busid);
			}
		} else if (p->by_name && !cancelled && !server_done(s)) {
			attach_by_name(s, p);
		}
	}
	free(pfd);
	free(idx);
}

/* Queues an attach of busid, to be imported with the others of the same
 * read (flush_attaches). expect (may be NULL) is what the notify channel
 * said the device is; ids_known tells whether its vid/pid count. */
static void queue_attach(struct server_ctx *s, const char *busid,
			 const struct notify_v2_device *expect, bool ids_known)
{
	if (!busid_valid(busid))
		return;
	for (size_t i = 0; i < s->npend; i++)
		if (strcmp(s->pend[i].busid, busid) == 0)
			return;
	if (s->npend == DAEMON_MAX_PENDING)
		flush_attaches(s);
	struct pending_attach *p = &s->pend[s->npend++];
	memset(p, 0, sizeof(*p));
	snprintf(p->busid, sizeof(p->busid), "%s", busid);
	if (expect) {
		p->expect = *expect;
		p->has_expect = true;
	}
	p->ids_known = ids_known;
	p->t0_ns = s->line_ns;
	p->op.fd = -1;
}

/* Imports busid and attaches it now, by name and blocking; for the control
 * socket's attach (from its thread, not the server's). manual: holds and
 * filters do not apply. Returns 0 when attached, else a negative errno. */
static int attach_device_how(struct server_ctx *s, const char *busid,
			     const struct notify_v2_device *expect, bool ids_known, bool manual)
{
	struct daemon *d = s->d;
	if (!busid_valid(busid))
		return -EINVAL;
	if (!manual) {
		pthread_mutex_lock(&d->lock);
		bool held = hold_find_locked(d, busid) >= 0;
		pthread_mutex_unlock(&d->lock);
		if (held) {
			log_info("%s: %s is on hold; not attaching", s->spec->host, busid);
			return -EPERM;
		}
	}
	if (d->cfg.dry_run) {
		pthread_mutex_lock(&d->lock);
		dry_run_record_locked(s, busid);
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	if (!vhci_ready(s, busid)) {
		log_error("%s: cannot attach %s: vhci_hcd is not available (modprobe vhci-hcd)",
			  s->spec->host, busid);
		return -ENODEV;
	}
	struct pending_attach *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->busid, sizeof(p->busid), "%s", busid);
	if (expect) {
		p->expect = *expect;
		p->has_expect = true;
	}
	p->ids_known = ids_known;
	p->manual = manual;
	p->by_name = true;
	p->t0_ns = import_now_ns();
	p->op.fd = -1;
	int rc = attach_by_name(s, p);
	free(p);
	return rc;
}

static void detach_busid(struct server_ctx *s, const char *busid)
{
	flush_attaches(s); /* events act in the order they came */
	pthread_mutex_lock(&s->d->lock);
	int port;
	enum event_reason why;
	if (reconcile_on_unplugged(busid, s->att, s->natt, &port, &why) == DECIDE_DETACH) {
		int i = attachment_find(s->att, s->natt, busid);
		detach_locked(s, (size_t)i);
		state_write_locked(s->d);
	} else {
		log_debug("%s: %s unplugged: %s", s->spec->host, busid, event_reason_str(why));
	}
	pthread_mutex_unlock(&s->d->lock);
}

/* ---- Events ------------------------------------------------------------- */

static void on_device_event(struct server_ctx *s, enum notify_v2_type type,
			    const struct notify_v2_device *dev, bool ids_known)
{
	struct daemon *d = s->d;
	enum event_reason why = REASON_NONE;
	enum event_decision dec;
	pthread_mutex_lock(&d->lock);
	prune_stale_locked(s);
	if (type == NOTIFY_V2_HELD)
		dec = reconcile_on_held(dev, ids_known, s->att, s->natt, &d->cfg.filter, &why);
	else
		dec = reconcile_on_plugged(dev, ids_known, s->att, s->natt, &d->cfg.filter, &why);
	if (dec == DECIDE_REATTACH || dec == DECIDE_DETACH) {
		int k = attachment_find(s->att, s->natt, dev->busid);
		if (k >= 0) {
			log_info("%s: session for %s on vhci port %d ended (not held any more)",
				 s->spec->host, dev->busid, s->att[k].port);
			detach_locked(s, (size_t)k);
			state_write_locked(d);
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (dec == DECIDE_ATTACH || dec == DECIDE_REATTACH)
		queue_attach(s, dev->busid, dev, ids_known);
	else if (why != REASON_NONE)
		log_debug("%s: %s: %s", s->spec->host, dev->busid, event_reason_str(why));
}

static void on_snapshot_end(struct server_ctx *s)
{
	struct daemon *d = s->d;
	struct action *acts = calloc(DAEMON_MAX_SNAPSHOT + DAEMON_MAX_ATTACHMENTS, sizeof(*acts));
	if (!acts)
		return;
	pthread_mutex_lock(&d->lock);
	prune_stale_locked(s);
	int n = reconcile_plan(s->snap, s->nsnap, true, s->att, s->natt, &d->cfg.filter, acts,
			       DAEMON_MAX_SNAPSHOT + DAEMON_MAX_ATTACHMENTS);
	for (int i = 0; i < n; i++) {
		if (acts[i].type != ACTION_DETACH)
			continue;
		int k = attachment_find(s->att, s->natt, acts[i].busid);
		if (k >= 0 && s->att[k].port == acts[i].port) {
			log_info("%s: %s left while we were away", s->spec->host, acts[i].busid);
			detach_locked(s, (size_t)k);
		}
	}
	s->sessions++;
	change_state_locked(s, CONN_SUBSCRIBED);
	state_write_locked(d);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < n; i++) { /* queued: flush_attaches watches the wake pipe */
		if (acts[i].type != ACTION_ATTACH)
			continue;
		for (size_t k = 0; k < s->nsnap; k++) {
			if (strcmp(s->snap[k].busid, acts[i].busid) == 0) {
				queue_attach(s, acts[i].busid, &s->snap[k], true);
				break;
			}
		}
	}
	free(acts);
	s->nsnap = 0;
}

/* Returns 0, or -1 to drop the connection. */
static int handle_v2_line(struct server_ctx *s, const char *line, size_t len)
{
	struct notify_v2_msg *m = malloc(sizeof(*m));
	if (!m)
		return -1;
	int rc = 0;
	int err = notify_v2_decode(line, len, m);
	if (err != NOTIFY_V2_OK) {
		/* Unknown words are skipped (newer servers); so are bad lines. */
		log_debug("%s: skipping a notify line: %s", s->spec->host, notify_v2_strerror(err));
		goto out;
	}
	if (!s->welcomed) {
		if (m->type == NOTIFY_V2_WELCOME) {
			s->welcomed = true;
			s->in_snapshot = true;
			s->heartbeat_s = m->heartbeat_s;
			s->nsnap = 0;
			log_info("%s: subscribed (server %s, heartbeat %us)", s->spec->host, m->name,
				 m->heartbeat_s);
			set_state(s, CONN_CONNECTED);
		} else if (m->type == NOTIFY_V2_ERROR) {
			log_error("%s: server refused us: %s", s->spec->host, m->name);
			rc = -1;
		} else if (m->type != NOTIFY_V2_PING) {
			log_warn("%s: expected welcome", s->spec->host);
			rc = -1;
		}
		goto out;
	}
	switch (m->type) {
	case NOTIFY_V2_DEVICE:
		if (!s->in_snapshot)
			break;
		if (s->nsnap < DAEMON_MAX_SNAPSHOT)
			s->snap[s->nsnap++] = m->dev;
		else
			log_warn("%s: snapshot too large; ignoring %s", s->spec->host, m->dev.busid);
		break;
	case NOTIFY_V2_SNAPSHOT_END:
		if (!s->in_snapshot)
			break;
		s->in_snapshot = false;
		if (m->count != s->nsnap)
			log_warn("%s: snapshot said %u devices, got %zu", s->spec->host, m->count,
				 s->nsnap);
		on_snapshot_end(s);
		break;
	case NOTIFY_V2_PLUGGED:
	case NOTIFY_V2_HELD:
		if (s->in_snapshot)
			break;
		if (m->type == NOTIFY_V2_PLUGGED)
			log_info("%s: plugged %s (%04x:%04x %s)", s->spec->host, m->dev.busid,
				 m->dev.vid, m->dev.pid, m->dev.product);
		on_device_event(s, m->type, &m->dev, true);
		break;
	case NOTIFY_V2_UNPLUGGED:
		if (s->in_snapshot)
			break;
		log_info("%s: unplugged %s", s->spec->host, m->dev.busid);
		detach_busid(s, m->dev.busid);
		break;
	case NOTIFY_V2_ERROR:
		log_error("%s: server error: %s", s->spec->host, m->name);
		rc = -1;
		break;
	default:
		break; /* ping, or a stray hello/welcome: any line is a sign of life */
	}
out:
	free(m);
	return rc;
}

static int handle_v1_line(struct server_ctx *s, const char *line, size_t len)
{
	struct notify_v1_event ev;
	int err = notify_v1_decode(line, len, &ev);
	if (err != NOTIFY_V1_OK) {
		log_debug("%s: skipping a v1 line: %s", s->spec->host, notify_v1_strerror(err));
		return 0;
	}
	if (ev.kind == NOTIFY_V1_UNPLUGGED) {
		log_info("%s: unplugged %s", s->spec->host, ev.busid);
		detach_busid(s, ev.busid);
		return 0;
	}
	struct notify_v2_device dev;
	memset(&dev, 0, sizeof(dev));
	memcpy(dev.busid, ev.busid, sizeof(dev.busid));
	log_info("%s: plugged %s", s->spec->host, ev.busid);
	on_device_event(s, NOTIFY_V2_PLUGGED, &dev, false);
	return 0;
}

static int handle_line(struct server_ctx *s, const char *line, size_t len)
{
	return s->d->cfg.protocol == 1 ? handle_v1_line(s, line, len)
				       : handle_v2_line(s, line, len);
}

/* Feeds bytes to the line buffer; returns -1 when a handler drops us. */
static int feed_lines(struct server_ctx *s, const char *p, size_t n)
{
	struct linebuf *lb = &s->lb;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\n') {
			bool was_skipping = lb->skipping;
			lb->skipping = false;
			size_t len = lb->len;
			lb->len = 0;
			if (was_skipping)
				continue;
			if (len > 0 && lb->buf[len - 1] == '\r')
				len--;
			lb->buf[len] = '\0';
			s->line_ns = import_now_ns();
			if (handle_line(s, lb->buf, len) < 0)
				return -1;
			continue;
		}
		if (lb->skipping)
			continue;
		if (lb->len >= NOTIFY_V2_MAX_LINE - 1) {
			log_warn("%s: overlong notify line skipped", s->spec->host);
			lb->skipping = true;
			lb->len = 0;
			continue;
		}
		lb->buf[lb->len++] = c;
	}
	return 0;
}

/* The attaches that one read's lines asked for are imported together once
 * all its lines are handled (earlier when another event must keep its
 * place in the order). */
static int feed(struct server_ctx *s, const char *p, size_t n)
{
	int rc = feed_lines(s, p, n);
	flush_attaches(s);
	return rc;
}

/* ---- Connection loop ---------------------------------------------------- */

static int send_text(struct server_ctx *s, const char *text, size_t len)
{
	struct iovec iov = { .iov_base = (void *)text, .iov_len = len };
	int err = net_writev_full(s->fd, &iov, 1);
	if (err == 0)
		s->last_tx_ms = net_now_ms();
	return err;
}

static int send_hello(struct server_ctx *s)
{
	if (s->d->cfg.protocol == 1)
		return send_text(s, NOTIFY_V1_HELLO, NOTIFY_V1_HELLO_LEN);
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_HELLO;
	m.version = NOTIFY_V2_VERSION;
	snprintf(m.token, sizeof(m.token), "%s", s->d->cfg.token);
	char line[NOTIFY_V2_MAX_LINE];
	int n = notify_v2_encode(&m, line, sizeof(line));
	if (n < 0)
		return -EINVAL;
	return send_text(s, line, (size_t)n);
}

static int send_ping(struct server_ctx *s)
{
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_PING;
	char line[64];
	int n = notify_v2_encode(&m, line, sizeof(line));
	return n < 0 ? -EINVAL : send_text(s, line, (size_t)n);
}

/* Serves one connection until it ends or we stop. */
static void run_connection(struct server_ctx *s)
{
	struct daemon *d = s->d;
	bool v2 = d->cfg.protocol != 1;
	memset(&s->lb, 0, sizeof(s->lb));
	s->welcomed = false;
	s->in_snapshot = false;
	s->nsnap = 0;
	s->heartbeat_s = 0;
	s->last_rx_ms = s->last_tx_ms = net_now_ms();
	int64_t hello_deadline = s->last_rx_ms + d->cfg.hello_timeout_ms;
	if (send_hello(s) < 0) {
		log_warn("%s: cannot send hello", s->spec->host);
		return;
	}
	if (!v2) {
		/* v1 has no welcome: the hello is the subscription. */
		pthread_mutex_lock(&d->lock);
		s->sessions++;
		change_state_locked(s, CONN_SUBSCRIBED);
		state_write_locked(d);
		pthread_mutex_unlock(&d->lock);
	}
	char *buf = malloc(DAEMON_READ_CHUNK);
	if (!buf)
		return;
	for (;;) {
		int64_t now = net_now_ms();
		int timeout = 1000;
		if (v2 && !s->welcomed) {
			if (now >= hello_deadline) {
				log_warn("%s: no welcome from the server", s->spec->host);
				set_error(s, "no welcome from the server");
				break;
			}
			timeout = (int)(hello_deadline - now);
		} else if (v2 && s->heartbeat_s) {
			int64_t hb = (int64_t)s->heartbeat_s * 1000;
			int64_t silence = hb * DAEMON_DEAD_HALF_HEARTBEATS / 2;
			if (now - s->last_rx_ms >= silence) {
				log_warn("%s: nothing received for %.1fs; reconnecting", s->spec->host,
					 (double)silence / 1000);
				set_error(s, "nothing received for %.1fs", (double)silence / 1000);
				break;
			}
			if (now - s->last_tx_ms >= hb && send_ping(s) < 0)
				break;
			int64_t next = s->last_tx_ms + hb - now;
			int64_t dead = s->last_rx_ms + silence - now;
			int64_t t = next < dead ? next : dead;
			timeout = t < 1 ? 1 : (t > 60000 ? 60000 : (int)t);
		}
		struct pollfd pfd[2] = { { .fd = s->fd, .events = POLLIN },
					 { .fd = s->wake[0], .events = POLLIN } };
		int r = poll(pfd, 2, timeout);
		if (r < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN)
			break;
		if (r <= 0 || !pfd[0].revents)
			continue;
		ssize_t got = recv(s->fd, buf, DAEMON_READ_CHUNK, 0);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			const char *why = got == 0 ? "closed by the server" : strerror(errno);
			log_warn("%s: notify connection %s", s->spec->host, why);
			set_error(s, "notify connection %s", why);
			break;
		}
		s->last_rx_ms = net_now_ms();
		if (feed(s, buf, (size_t)got) < 0)
			break;
	}
	free(buf);
}

static int backoff_delay(struct server_ctx *s, unsigned attempt)
{
	const struct daemon_config *c = &s->d->cfg;
	int64_t delay = c->backoff_min_ms;
	for (unsigned i = 0; i < attempt && delay < c->backoff_max_ms; i++)
		delay *= 2;
	if (delay > c->backoff_max_ms)
		delay = c->backoff_max_ms;
	/* Jitter of +-25% so clients of a restarted server do not stampede. */
	int64_t span = delay / 2;
	if (span > 0)
		delay = delay - span / 2 + rand_r(&s->seed) % (span + 1);
	return delay < 1 ? 1 : (int)delay;
}

/* The address imports go to: the notify peer's, with the usbip port. */
static void remember_import_addr(struct server_ctx *s)
{
	long port = strtol(s->spec->usbip_port, NULL, 10);
	s->import_addrlen = sizeof(s->import_addr);
	if (port <= 0 || port > 65535 ||
	    getpeername(s->fd, (struct sockaddr *)&s->import_addr, &s->import_addrlen) < 0) {
		s->import_addrlen = 0;
		return;
	}
	if (s->import_addr.ss_family == AF_INET)
		((struct sockaddr_in *)&s->import_addr)->sin_port = htons((uint16_t)port);
	else if (s->import_addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&s->import_addr)->sin6_port = htons((uint16_t)port);
	else
		s->import_addrlen = 0;
}

/* The notify channel through TLS: s->fd becomes a relay's plain end. */
static int notify_tls(struct server_ctx *s)
{
	char err[TLS_ERR_SIZE] = "";
	int fd = tls_client_stream(s->d->cfg.tls, s->fd, s->spec->host,
				   s->d->cfg.connect_timeout_ms, err);
	if (fd < 0) {
		log_warn("%s:%s: notify channel: %s", s->spec->host, s->spec->notify_port, err);
		set_error(s, "notify channel: %s", err);
		return fd;
	}
	s->fd = fd;
	return 0;
}

static void *server_thread(void *arg)
{
	struct server_ctx *s = arg;
	struct daemon *d = s->d;
	unsigned attempt = 0;
	while (!server_done(s)) {
		set_state(s, CONN_CONNECTING);
		unsigned before = daemon_sessions(d, s->index);
		int err = net_connect(s->spec->host, s->spec->notify_port,
				       d->cfg.connect_timeout_ms, s->wake[0], &s->fd);
		if (err == -ECANCELED)
			break;
		if (err) {
			/* Warn once per outage; the retries go to debug. */
			log_msg(attempt == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG,
				"%s:%s: cannot connect: %s", s->spec->host, s->spec->notify_port,
				strerror(-err));
			set_error(s, "cannot connect: %s", strerror(-err));
		} else {
			log_info("%s:%s: connected", s->spec->host, s->spec->notify_port);
			remember_import_addr(s);
			if (d->cfg.tls && notify_tls(s) < 0) {
				close(s->fd);
				s->fd = -1;
			} else {
				run_connection(s);
				close(s->fd);
				s->fd = -1;
			}
			if (daemon_sessions(d, s->index) != before)
				attempt = 0; /* it worked for a while: start the backoff over */
		}
		if (server_done(s))
			break;
		set_state(s, CONN_BACKOFF);
		int delay = backoff_delay(s, attempt);
		if (attempt < 32)
			attempt++;
		log_debug("%s: reconnecting in %d ms", s->spec->host, delay);
		struct pollfd p = { .fd = s->wake[0], .events = POLLIN };
		int64_t until = net_now_ms() + delay;
		while (net_now_ms() < until) {
			int left = (int)(until - net_now_ms());
			if (poll(&p, 1, left < 1 ? 1 : left) > 0)
				break;
		}
	}
	set_state(s, CONN_IDLE);
	return NULL;
}

/* ---- Lifecycle ---------------------------------------------------------- */

/* Prepares slot i for d->cfg.servers[i] (already filled). */
static int init_slot(struct daemon *d, size_t i)
{
	struct server_ctx *s = &d->servers[i];
	struct daemon_server_spec *spec = &d->cfg.servers[i];
	if (!spec->usbip_port[0])
		snprintf(spec->usbip_port, sizeof(spec->usbip_port), "%s", d->cfg.usbip_port);
	s->d = d;
	s->index = i;
	s->spec = spec;
	s->fd = -1;
	s->seed = (unsigned)(net_now_ms() ^ (int64_t)(i * 7919u));
	if (pipe(s->wake) < 0) {
		s->wake[0] = s->wake[1] = -1;
		return -errno;
	}
	fcntl(s->wake[0], F_SETFD, FD_CLOEXEC);
	fcntl(s->wake[1], F_SETFD, FD_CLOEXEC);
	s->snap = calloc(DAEMON_MAX_SNAPSHOT, sizeof(*s->snap));
	s->pend = calloc(DAEMON_MAX_PENDING, sizeof(*s->pend));
	return s->snap && s->pend ? 0 : -ENOMEM;
}

static void free_slot(struct server_ctx *s)
{
	free(s->snap);
	s->snap = NULL;
	free(s->pend);
	s->pend = NULL;
	s->npend = 0;
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	s->wake[0] = s->wake[1] = -1;
}

static void wake_server(struct server_ctx *s)
{
	char c = 1;
	ssize_t w;
	do {
		w = write(s->wake[1], &c, 1);
	} while (w < 0 && errno == EINTR);
}

struct daemon *daemon_new(const struct daemon_config *cfg)
{
	if (cfg->nservers > DAEMON_MAX_SERVERS || (cfg->protocol != 1 && cfg->protocol != 2))
		return NULL;
	struct daemon *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->cfg = *cfg;
	d->stop_pipe[0] = d->stop_pipe[1] = -1;
	if (vhci_init(&d->vhci, cfg->sysfs_root, cfg->run_dir, cfg->vhci_ops) < 0)
		goto err_free;
	if (pipe(d->stop_pipe) < 0)
		goto err_free;
	fcntl(d->stop_pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(d->stop_pipe[1], F_SETFD, FD_CLOEXEC);
	pthread_mutex_init(&d->lock, NULL);
	for (size_t i = 0; i < DAEMON_MAX_SERVERS; i++)
		d->servers[i].wake[0] = d->servers[i].wake[1] = -1;
	for (size_t i = 0; i < cfg->nservers; i++) {
		if (init_slot(d, i) < 0)
			goto err_free_slots;
	}
	return d;

err_free_slots:
	for (size_t i = 0; i < cfg->nservers; i++)
		free_slot(&d->servers[i]);
	pthread_mutex_destroy(&d->lock);
err_free:
	if (d->stop_pipe[0] >= 0) {
		close(d->stop_pipe[0]);
		close(d->stop_pipe[1]);
	}
	free(d);
	return NULL;
}

/* Takes back the attachments an earlier run recorded for server s (its
 * host and USB/IP port). Caller holds d->lock. */
static void adopt_recorded_locked(struct daemon *d, struct server_ctx *s)
{
	struct vhci_port *ports = calloc(VHCI_MAX_PORTS, sizeof(*ports));
	if (!ports)
		return;
	int n = vhci_read_ports(&d->vhci, ports, VHCI_MAX_PORTS);
	for (int i = 0; i < n; i++) {
		if (ports[i].state != VHCI_ST_USED)
			continue;
		char host[VHCI_HOST_SIZE], service[VHCI_SERVICE_SIZE], busid[USBIP_BUSID_SIZE];
		if (vhci_record_read(&d->vhci, ports[i].port, host, service, busid) < 0 ||
		    strcmp(s->spec->host, host) != 0 || strcmp(s->spec->usbip_port, service) != 0 ||
		    s->natt >= DAEMON_MAX_ATTACHMENTS || attachment_find(s->att, s->natt, busid) >= 0)
			continue;
		memset(&s->att_extra[s->natt], 0, sizeof(s->att_extra[0]));
		struct attachment *a = &s->att[s->natt++];
		snprintf(a->busid, sizeof(a->busid), "%s", busid);
		a->port = ports[i].port;
		a->devid = ports[i].devid;
		log_info("%s: %s is already attached on vhci port %d", host, busid, a->port);
	}
	free(ports);
}

static void adopt_recorded(struct daemon *d)
{
	pthread_mutex_lock(&d->lock);
	for (size_t k = 0; k < d->cfg.nservers; k++)
		adopt_recorded_locked(d, &d->servers[k]);
	pthread_mutex_unlock(&d->lock);
}

int daemon_start(struct daemon *d)
{
	if (!d->cfg.dry_run) {
		int err = vhci_load_module(&d->vhci);
		if (err)
			log_error("vhci_hcd is not available under %s (%s): load it with "
				  "`modprobe vhci-hcd`; devices cannot be attached until then",
				  d->cfg.sysfs_root, strerror(-err));
		d->vhci_ok = err == 0;
		if (d->vhci_ok)
			adopt_recorded(d);
	}
	pthread_mutex_lock(&d->lock);
	state_write_locked(d);
	pthread_mutex_unlock(&d->lock);
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		struct server_ctx *s = &d->servers[i];
		int err = pthread_create(&s->thread, NULL, server_thread, s);
		if (err) {
			daemon_stop(d);
			return -err;
		}
		s->started = true;
	}
	return 0;
}

void daemon_stop(struct daemon *d)
{
	if (d->stop_pipe[1] >= 0) {
		char c = 1;
		ssize_t w;
		do {
			w = write(d->stop_pipe[1], &c, 1);
		} while (w < 0 && errno == EINTR);
	}
	pthread_mutex_lock(&d->lock);
	size_t nservers = d->cfg.nservers;
	for (size_t i = 0; i < nservers; i++) {
		if (d->servers[i].wake[1] >= 0)
			wake_server(&d->servers[i]);
	}
	pthread_mutex_unlock(&d->lock);
	for (size_t i = 0; i < nservers; i++) {
		if (d->servers[i].started) {
			pthread_join(d->servers[i].thread, NULL);
			d->servers[i].started = false;
		}
	}
	pthread_mutex_lock(&d->lock);
	if (d->cfg.detach_on_exit) {
		for (size_t i = 0; i < d->cfg.nservers; i++) {
			struct server_ctx *s = &d->servers[i];
			while (s->natt > 0)
				detach_locked(s, s->natt - 1);
		}
	}
	state_write_locked(d);
	pthread_mutex_unlock(&d->lock);
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->cfg.nservers; i++)
		free_slot(&d->servers[i]);
	pthread_mutex_destroy(&d->lock);
	close(d->stop_pipe[0]);
	close(d->stop_pipe[1]);
	free(d);
}

enum daemon_conn_state daemon_server_state(struct daemon *d, size_t server)
{
	pthread_mutex_lock(&d->lock);
	if (server >= d->cfg.nservers) {
		pthread_mutex_unlock(&d->lock);
		return CONN_IDLE;
	}
	enum daemon_conn_state st = d->servers[server].state;
	pthread_mutex_unlock(&d->lock);
	return st;
}

size_t daemon_attachments(struct daemon *d, size_t server, struct attachment *out, size_t max)
{
	if (server >= d->cfg.nservers)
		return 0;
	pthread_mutex_lock(&d->lock);
	struct server_ctx *s = &d->servers[server];
	size_t n = s->natt < max ? s->natt : max;
	memcpy(out, s->att, n * sizeof(*out));
	pthread_mutex_unlock(&d->lock);
	return n;
}

size_t daemon_attachments_extra(struct daemon *d, size_t server, struct attachment *out,
				struct daemon_attachment_extra *extra, size_t max)
{
	if (server >= d->cfg.nservers)
		return 0;
	pthread_mutex_lock(&d->lock);
	struct server_ctx *s = &d->servers[server];
	size_t n = s->natt < max ? s->natt : max;
	memcpy(out, s->att, n * sizeof(*out));
	memcpy(extra, s->att_extra, n * sizeof(*extra));
	pthread_mutex_unlock(&d->lock);
	return n;
}

unsigned daemon_sessions(struct daemon *d, size_t server)
{
	if (server >= d->cfg.nservers)
		return 0;
	pthread_mutex_lock(&d->lock);
	unsigned n = d->servers[server].sessions;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* ---- Control: status and steering ---------------------------------------- */

size_t daemon_nservers(struct daemon *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->cfg.nservers;
	pthread_mutex_unlock(&d->lock);
	return n;
}

int daemon_server_status(struct daemon *d, size_t server, struct daemon_server_status *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&d->lock);
	if (server >= d->cfg.nservers || d->servers[server].gone) {
		pthread_mutex_unlock(&d->lock);
		return server >= d->cfg.nservers ? -EINVAL : -ENOENT;
	}
	const struct server_ctx *s = &d->servers[server];
	snprintf(out->name, sizeof(out->name), "%s", s->spec->name);
	snprintf(out->host, sizeof(out->host), "%s", s->spec->host);
	snprintf(out->notify_port, sizeof(out->notify_port), "%s", s->spec->notify_port);
	snprintf(out->usbip_port, sizeof(out->usbip_port), "%s", s->spec->usbip_port);
	out->state = s->state;
	out->sessions = s->sessions;
	out->since = s->state_since;
	memcpy(out->last_error, s->last_error, sizeof(out->last_error));
	out->last_error_at = s->last_error_at;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int daemon_hold(struct daemon *d, const char *busid)
{
	if (!busid_valid(busid))
		return -EINVAL;
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	if (hold_find_locked(d, busid) < 0) {
		if (d->nholds == DAEMON_MAX_HOLDS)
			rc = -ENOSPC;
		else
			snprintf(d->holds[d->nholds++], USBIP_BUSID_SIZE, "%s", busid);
	}
	pthread_mutex_unlock(&d->lock);
	if (rc == 0)
		log_info("%s: on hold (no automatic attach)", busid);
	return rc;
}

int daemon_release(struct daemon *d, const char *busid)
{
	if (!busid_valid(busid))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	int i = hold_find_locked(d, busid);
	if (i >= 0) {
		d->nholds--;
		memmove(d->holds[i], d->holds[i + 1], (d->nholds - (size_t)i) * USBIP_BUSID_SIZE);
	}
	pthread_mutex_unlock(&d->lock);
	if (i >= 0)
		log_info("%s: released from hold", busid);
	return i >= 0 ? 0 : -ENOENT;
}

bool daemon_is_held(struct daemon *d, const char *busid)
{
	pthread_mutex_lock(&d->lock);
	bool held = hold_find_locked(d, busid) >= 0;
	pthread_mutex_unlock(&d->lock);
	return held;
}

size_t daemon_holds(struct daemon *d, char (*out)[USBIP_BUSID_SIZE], size_t max)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->nholds < max ? d->nholds : max;
	memcpy(out, d->holds, n * USBIP_BUSID_SIZE);
	pthread_mutex_unlock(&d->lock);
	return n;
}

int daemon_detach(struct daemon *d, const char *busid)
{
	int rc = daemon_hold(d, busid);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		struct server_ctx *s = &d->servers[i];
		int k = attachment_find(s->att, s->natt, busid);
		if (k >= 0) {
			detach_locked(s, (size_t)k);
			state_write_locked(d);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int daemon_attach(struct daemon *d, const char *busid)
{
	if (!busid_valid(busid))
		return -EINVAL;
	daemon_release(d, busid);
	pthread_mutex_lock(&d->lock);
	bool attached = false;
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		const struct server_ctx *s = &d->servers[i];
		attached |= attachment_find(s->att, s->natt, busid) >= 0;
	}
	pthread_mutex_unlock(&d->lock);
	if (attached)
		return -EALREADY;
	/* Which server has it we do not track between snapshots: ask each
	 * subscribed one in turn; one without it refuses the import. */
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		if (daemon_server_state(d, i) != CONN_SUBSCRIBED)
			continue;
		if (attach_device_how(&d->servers[i], busid, NULL, false, true) == 0)
			return 0;
	}
	/* Released, a server thread may have taken it meanwhile (the server
	 * announced it free): that is an attach too. */
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		const struct server_ctx *s = &d->servers[i];
		attached |= attachment_find(s->att, s->natt, busid) >= 0;
	}
	pthread_mutex_unlock(&d->lock);
	return attached ? 0 : -ENODEV;
}

/* ---- Servers found at run time ------------------------------------------ */

int daemon_add_server(struct daemon *d, const struct daemon_server_spec *spec)
{
	if (!spec->name[0] || !spec->host[0] || !spec->notify_port[0])
		return -EINVAL;
	if (stopping(d))
		return -ECANCELED;
	pthread_mutex_lock(&d->lock);
	size_t slot = d->cfg.nservers;
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		const struct server_ctx *s = &d->servers[i];
		if (strcmp(s->spec->name, spec->name) != 0)
			continue;
		if (!s->gone) {
			pthread_mutex_unlock(&d->lock);
			return -EEXIST;
		}
		slot = i;
	}
	if (slot == DAEMON_MAX_SERVERS) {
		pthread_mutex_unlock(&d->lock);
		return -ENOSPC;
	}
	struct server_ctx *s = &d->servers[slot];
	free_slot(s);
	unsigned sessions = s->sessions;
	memset(s, 0, sizeof(*s));
	s->sessions = sessions;
	d->cfg.servers[slot] = *spec;
	int rc = init_slot(d, slot);
	/* Devices an earlier run attached from it (same host and port). */
	if (rc == 0 && d->vhci_ok && !d->cfg.dry_run)
		adopt_recorded_locked(d, s);
	if (rc == 0)
		rc = -pthread_create(&s->thread, NULL, server_thread, s);
	if (rc < 0) {
		free_slot(s);
		s->gone = true;
		snprintf(d->cfg.servers[slot].name, DAEMON_NAME_SIZE, "%s", spec->name);
	} else {
		s->started = true;
	}
	if (slot == d->cfg.nservers)
		d->cfg.nservers++;
	state_write_locked(d);
	pthread_mutex_unlock(&d->lock);
	if (rc == 0)
		log_info("following %s (\"%s\", notify port %s, USB/IP port %s)", spec->host,
			 spec->name, spec->notify_port, spec->usbip_port);
	return rc;
}

int daemon_remove_server(struct daemon *d, const char *name)
{
	pthread_mutex_lock(&d->lock);
	struct server_ctx *s = NULL;
	for (size_t i = 0; i < d->cfg.nservers; i++) {
		struct server_ctx *c = &d->servers[i];
		if (!c->gone && !c->leaving && strcmp(c->spec->name, name) == 0)
			s = c;
	}
	if (!s) {
		pthread_mutex_unlock(&d->lock);
		return -ENOENT;
	}
	s->leaving = true;
	wake_server(s);
	pthread_mutex_unlock(&d->lock);
	if (s->started)
		pthread_join(s->thread, NULL);
	pthread_mutex_lock(&d->lock);
	s->started = false;
	/* Its devices went with it (their connections end): free their ports
	 * and records rather than leave them to the next run. */
	while (s->natt > 0)
		detach_locked(s, s->natt - 1);
	s->state = CONN_IDLE;
	s->gone = true;
	state_write_locked(d);
	pthread_mutex_unlock(&d->lock);
	log_info("no longer following %s (\"%s\")", s->spec->host, name);
	return 0;
}

/* ---- status subcommand -------------------------------------------------- */

int daemon_print_status(const char *state_file, const char *sysfs_root, const char *run_dir)
{
	char *buf = malloc(VHCI_ATTR_MAX);
	if (!buf)
		return -ENOMEM;
	int n = state_file ? vhci_read_attr(state_file, buf, VHCI_ATTR_MAX) : -ENOENT;
	if (n >= 0)
		fputs(buf, stdout);
	else
		printf("no daemon state at %s (%s)\n", state_file ? state_file : "-",
		       strerror(-n));
	free(buf);

	struct vhci v;
	int err = vhci_init(&v, sysfs_root, run_dir, NULL);
	if (err == 0)
		err = vhci_locate(&v);
	if (err) {
		printf("vhci_hcd: not available (%s)\n", strerror(-err));
		return 0;
	}
	struct vhci_port *ports = calloc(VHCI_MAX_PORTS, sizeof(*ports));
	if (!ports)
		return -ENOMEM;
	n = vhci_read_ports(&v, ports, VHCI_MAX_PORTS);
	if (n < 0) {
		printf("vhci_hcd: cannot read status (%s)\n", strerror(-n));
		free(ports);
		return n;
	}
	int used = 0;
	printf("vhci_hcd ports in use:\n");
	for (int i = 0; i < n; i++) {
		if (ports[i].state == VHCI_ST_NULL)
			continue;
		char host[VHCI_HOST_SIZE], service[VHCI_SERVICE_SIZE], busid[USBIP_BUSID_SIZE];
		bool rec = vhci_record_read(&v, ports[i].port, host, service, busid) == 0;
		printf("  port %d (%s hub): state %d, %s speed, devid 0x%08x, local %s",
		       ports[i].port, ports[i].hub == VHCI_HUB_SS ? "ss" : "hs", ports[i].state,
		       notify_v2_speed_name(ports[i].speed), ports[i].devid, ports[i].local_busid);
		if (rec)
			printf(", from %s:%s/%s", host, service, busid);
		printf("\n");
		used++;
	}
	if (used == 0)
		printf("  none\n");
	free(ports);
	return 0;
}
