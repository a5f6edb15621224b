/* The client daemon end to end, in-process: the real server (sim backend,
 * notify hub on) over loopback, and the daemon pointed at a fixture vhci
 * sysfs directory whose attach/detach writes a fake kernel answers. The fake
 * checks that the socket handed to "attach" is a live connection to the
 * server's USB/IP port and keeps its own reference, as vhci_hcd does; closing
 * that reference is what a detach does to the server's session. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/sim.h"
#include "client/client_net.h"
#include "common/net.h"
#include "client/daemon.h"
#include "client/vhci.h"
#include "common/control.h"
#include "common/strbuf.h"
#include "server/server.h"
#include "fake_vhci.h"

/* Short fixture paths, so every joined path provably fits PATH_MAX. */
struct fixture {
	char root[64];
	char run[128];
	char state[128];
	struct fake_kernel fk;
	struct backend *sim;
	struct server *srv;
	int usbip_port;
	int notify_port;
	char run2[128];
	struct daemon *daemons[4]; /* stopped by teardown if a test fails early */
};

/* ---- fixture ------------------------------------------------------------ */

static void start_server(struct fixture *f, const char *spec, int usbip_port, int notify_port)
{
	f->sim = sim_backend_new(spec);
	assert_non_null(f->sim);
	struct server_config cfg;
	server_config_defaults(&cfg);
	char up[8], np[8];
	snprintf(up, sizeof(up), "%d", usbip_port);
	snprintf(np, sizeof(np), "%d", notify_port);
	cfg.host = "127.0.0.1";
	cfg.port = up;
	cfg.notify.enabled = true;
	cfg.notify.host = "127.0.0.1";
	cfg.notify.port = np;
	cfg.notify.heartbeat_s = 1;
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	f->usbip_port = server_port(f->srv);
	f->notify_port = server_notify_port(f->srv);
	assert_true(f->notify_port > 0);
	f->fk.usbip_port = f->usbip_port;
}

static void stop_server(struct fixture *f)
{
	server_stop(f->srv);
	server_free(f->srv);
	f->sim->ops->destroy(f->sim);
	f->srv = NULL;
	f->sim = NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_client.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/devices", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/devices/platform", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(f->fk.hc_dir, sizeof(f->fk.hc_dir), "%s/devices/platform/vhci_hcd.0", f->root);
	assert_int_equal(mkdir(f->fk.hc_dir, 0755), 0);
	snprintf(f->run, sizeof(f->run), "%s/run", f->root);
	snprintf(f->state, sizeof(f->state), "%s/state/state", f->root);
	snprintf(f->run2, sizeof(f->run2), "%s/run2", f->root);
	pthread_mutex_init(&f->fk.lock, NULL);
	for (int i = 0; i < NPORTS; i++)
		f->fk.ports[i].kfd = -1;
	const char *attrs[] = { "attach", "detach", "nports" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->fk.hc_dir, attrs[i]);
		FILE *fp = fopen(p, "w");
		assert_non_null(fp);
		if (i == 2)
			fprintf(fp, "%d\n", NPORTS);
		fclose(fp);
	}
	fk_write_status_locked(&f->fk);
	start_server(f, "zero,zero", 0, 0);
	*state = f;
	return 0;
}

static void end_daemon(struct fixture *f, struct daemon *d);

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < 4; i++) {
		if (f->daemons[i])
			end_daemon(f, f->daemons[i]);
	}
	for (int i = 0; i < NPORTS; i++)
		fk_port_gone(&f->fk, i);
	if (f->srv)
		stop_server(f);
	pthread_mutex_destroy(&f->fk.lock);
	assert_true(strncmp(f->root, "/tmp/test_client.", 17) == 0);
	nftw(f->root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void daemon_cfg(struct fixture *f, struct daemon_config *cfg, const struct vhci_ops *ops)
{
	daemon_config_defaults(cfg);
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", f->notify_port);
	assert_int_equal(daemon_config_add_server(cfg, spec), 0);
	snprintf(cfg->usbip_port, sizeof(cfg->usbip_port), "%d", f->usbip_port);
	cfg->sysfs_root = f->root;
	cfg->run_dir = f->run;
	cfg->state_file = f->state;
	cfg->vhci_ops = ops;
	cfg->backoff_min_ms = 50;
	cfg->backoff_max_ms = 300;
}

static struct daemon *start_daemon(struct fixture *f, const struct daemon_config *cfg)
{
	struct daemon *d = daemon_new(cfg);
	assert_non_null(d);
	size_t i = 0;
	while (i < 4 && f->daemons[i])
		i++;
	assert_true(i < 4);
	f->daemons[i] = d;
	assert_int_equal(daemon_start(d), 0);
	return d;
}

static void end_daemon(struct fixture *f, struct daemon *d)
{
	for (size_t i = 0; i < 4; i++) {
		if (f->daemons[i] == d)
			f->daemons[i] = NULL;
	}
	daemon_stop(d);
	daemon_free(d);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

#define WAIT_FOR(cond)                                                                 \
	do {                                                                           \
		int64_t until_ = net_now_ms() + 10000;                                \
		while (!(cond) && net_now_ms() < until_)                              \
			sleep_ms(20);                                                  \
		if (!(cond))                                                           \
			fail_msg("timed out waiting for %s", #cond);                   \
	} while (0)

/* held flag of busid on the server, -1 if absent. */
static int server_held(struct fixture *f, const char *busid, uint32_t *devid)
{
	struct export_view *views;
	int n = export_table_snapshot(server_exports(f->srv), &views);
	assert_true(n >= 0);
	int held = -1;
	for (int i = 0; i < n; i++) {
		if (strcmp(views[i].info.busid, busid) == 0) {
			held = views[i].held;
			if (devid)
				*devid = (uint32_t)views[i].info.busnum << 16 | views[i].info.devnum;
		}
	}
	free(views);
	return held;
}

static int port_of(struct daemon *d, const char *busid)
{
	struct attachment att[16];
	size_t n = daemon_attachments(d, 0, att, 16);
	int i = attachment_find(att, n, busid);
	return i < 0 ? -1 : att[i].port;
}

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static char *read_text(const char *dir, const char *name)
{
	static char buf[1024];
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return vhci_read_attr(path, buf, sizeof(buf)) < 0 ? NULL : buf;
}

/* ---- tests -------------------------------------------------------------- */

static void test_attach_unplug_replug(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	assert_int_equal(filter_add(&cfg.filter, true, "1-1"), 0);
	int fds_before = open_fds();
	struct daemon *d = start_daemon(f, &cfg);

	/* Snapshot: 1-1 is allowed and attached, 1-2 is filtered out. */
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 1);
	uint32_t devid = 0;
	WAIT_FOR(server_held(f, "1-1", &devid) == 1);
	assert_int_equal(server_held(f, "1-2", NULL), 0);
	int port = f->fk.last_attach_port;
	assert_true(port >= 0 && port < HALF); /* high speed: hs hub */
	assert_int_equal(f->fk.ports[port].devid, devid);
	assert_int_equal(f->fk.ports[port].speed, 3);
	assert_int_equal(f->fk.bad_sockets, 0);
	WAIT_FOR(port_of(d, "1-1") == port);
	char rec[64], name[16];
	snprintf(rec, sizeof(rec), "127.0.0.1 %d 1-1\n", f->usbip_port);
	snprintf(name, sizeof(name), "port%d", port);
	assert_non_null(read_text(f->run, name));
	assert_string_equal(read_text(f->run, name), rec);
	assert_int_equal(daemon_server_state(d, 0), CONN_SUBSCRIBED);
	const char *st = read_text(f->root, "state/state");
	assert_non_null(st);
	assert_non_null(strstr(st, "busid=1-1"));
	assert_non_null(strstr(st, "state=subscribed"));

	/* Unplug: exactly our port is detached, the record goes. */
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	WAIT_FOR(fk_count(&f->fk, &f->fk.detaches) == 1);
	assert_int_equal(f->fk.last_detach_port, port);
	WAIT_FOR(port_of(d, "1-1") == -1);
	assert_null(read_text(f->run, name));

	/* Plugged again: imported and attached again. */
	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 2);
	WAIT_FOR(server_held(f, "1-1", NULL) == 1);
	assert_int_equal(f->fk.bad_sockets, 0);

	end_daemon(f, d);
	/* Without --detach-on-exit the device stays attached. */
	assert_int_equal(fk_count(&f->fk, &f->fk.detaches), 1);
	assert_int_equal(server_held(f, "1-1", NULL), 1);
	/* Once "the kernel" lets go, no descriptor of ours is left open. */
	fk_port_gone(&f->fk, f->fk.last_attach_port);
	WAIT_FOR(server_held(f, "1-1", NULL) == 0);
	WAIT_FOR(open_fds() == fds_before);
}

static void test_restart_reconcile(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	struct daemon *d = start_daemon(f, &cfg);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 2);
	WAIT_FOR(port_of(d, "1-1") >= 0 && port_of(d, "1-2") >= 0);
	int p11 = port_of(d, "1-1"), p12 = port_of(d, "1-2");
	assert_int_equal(daemon_sessions(d, 0), 1);

	/* The server goes away and comes back on the same ports with only one
	 * device. vhci noticed 1-1's session end (port freed); 1-2's port is
	 * still shown in use. */
	int up = f->usbip_port, np = f->notify_port;
	stop_server(f);
	WAIT_FOR(daemon_server_state(d, 0) != CONN_SUBSCRIBED);
	fk_port_gone(&f->fk, p11);
	start_server(f, "zero", up, np);

	WAIT_FOR(daemon_sessions(d, 0) == 2);
	/* 1-2 vanished: its port detached; 1-1 attached again. */
	WAIT_FOR(fk_count(&f->fk, &f->fk.detaches) == 1);
	assert_int_equal(f->fk.last_detach_port, p12);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 3);
	WAIT_FOR(server_held(f, "1-1", NULL) == 1);
	WAIT_FOR(port_of(d, "1-2") == -1);
	assert_true(port_of(d, "1-1") >= 0);
	assert_int_equal(f->fk.bad_sockets, 0);

	end_daemon(f, d);
}

/* Seen in the QEMU guest: right after the attach write, vhci shows the port
 * as state 5 with devid 0 until enumeration; the next event (our own import's
 * "held") must not make the daemon forget the attachment, or it no longer
 * detaches on unplug or --detach-on-exit and drops the port record. */
static void test_event_before_enumeration(void **state)
{
	struct fixture *f = *state;
	f->fk.slow_enumeration = true;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	assert_int_equal(sim_unplug(f->sim, "1-2"), 0);
	struct daemon *d = start_daemon(f, &cfg);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 1);
	int p11 = f->fk.last_attach_port;
	WAIT_FOR(port_of(d, "1-1") == p11);

	/* Events after the attach, port still not enumerated: "held" for 1-1,
	 * then 1-2 plugged; once 1-2 is attached both have been handled. */
	assert_int_equal(sim_plug(f->sim, "1-2"), 0);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 2);
	int p12 = f->fk.last_attach_port;
	WAIT_FOR(port_of(d, "1-2") == p12);
	assert_int_equal(port_of(d, "1-1"), p11);
	char name[16];
	snprintf(name, sizeof(name), "port%d", p11);
	assert_non_null(read_text(f->run, name));
	const char *st = read_text(f->root, "state/state");
	assert_non_null(st);
	assert_non_null(strstr(st, "busid=1-1"));

	/* Enumerated: unplugging 1-1 detaches exactly its port. */
	fk_enumerate(&f->fk, p11);
	fk_enumerate(&f->fk, p12);
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	WAIT_FOR(fk_count(&f->fk, &f->fk.detaches) == 1);
	assert_int_equal(f->fk.last_detach_port, p11);
	WAIT_FOR(port_of(d, "1-1") == -1);
	assert_null(read_text(f->run, name));
	assert_int_equal(port_of(d, "1-2"), p12);

	/* vhci frees 1-2's port on its own: the server says held=0, the daemon
	 * forgets the old port and attaches 1-2 again. */
	fk_port_gone(&f->fk, p12);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 3);
	WAIT_FOR(port_of(d, "1-2") == f->fk.last_attach_port);
	assert_int_equal(f->fk.bad_sockets, 0);
	end_daemon(f, d);
}

static void test_busy_then_free(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg_a, cfg_b;
	daemon_cfg(f, &cfg_a, &ops);
	assert_int_equal(filter_add(&cfg_a.filter, true, "1-1"), 0);
	cfg_a.detach_on_exit = true;
	cfg_a.state_file = NULL;
	struct daemon *a = start_daemon(f, &cfg_a);
	WAIT_FOR(port_of(a, "1-1") >= 0);

	/* The second client wants the same device: busy, it keeps running. */
	daemon_cfg(f, &cfg_b, &ops);
	assert_int_equal(filter_add(&cfg_b.filter, false, "0525:a4a0"), 0);
	assert_int_equal(filter_add(&cfg_b.filter, true, "2-9"), 0);
	cfg_b.run_dir = f->root; /* its own records */
	struct daemon *b = start_daemon(f, &cfg_b);
	/* b takes the free 1-2 and leaves 1-1 (held by a). */
	WAIT_FOR(port_of(b, "1-2") >= 0);
	sleep_ms(300);
	assert_int_equal(port_of(b, "1-1"), -1);
	assert_int_equal(daemon_server_state(b, 0), CONN_SUBSCRIBED);

	/* A v1 client has no held flags: it tries the import, hears "busy",
	 * logs it and keeps running. */
	struct daemon_config cfg_c;
	daemon_cfg(f, &cfg_c, &ops);
	cfg_c.protocol = 1;
	cfg_c.state_file = NULL;
	cfg_c.run_dir = f->run2; /* a's records are not its own */
	struct daemon *c = start_daemon(f, &cfg_c);
	WAIT_FOR(daemon_sessions(c, 0) == 1);
	sleep_ms(500);
	struct attachment none[4];
	assert_int_equal(daemon_attachments(c, 0, none, 4), 0);
	assert_int_equal(daemon_server_state(c, 0), CONN_SUBSCRIBED);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 2);
	end_daemon(f, c);

	/* a stops and detaches: the server sees the session end, says held=0,
	 * and b attaches 1-1. */
	end_daemon(f, a);
	WAIT_FOR(port_of(b, "1-1") >= 0);
	WAIT_FOR(server_held(f, "1-1", NULL) == 1);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 3);
	assert_int_equal(f->fk.bad_sockets, 0);

	end_daemon(f, b);
}

static void test_protocol_v1(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	cfg.protocol = 1;
	cfg.detach_on_exit = true;
	/* A vid rule under v1: decided after the import tells the ids. */
	assert_int_equal(filter_add(&cfg.filter, false, "0525"), 0);
	struct daemon *d = start_daemon(f, &cfg);
	WAIT_FOR(port_of(d, "1-1") >= 0 && port_of(d, "1-2") >= 0);
	assert_int_equal(sim_unplug(f->sim, "1-2"), 0);
	WAIT_FOR(port_of(d, "1-2") == -1);
	assert_int_equal(fk_count(&f->fk, &f->fk.detaches), 1);
	end_daemon(f, d);
	/* detach-on-exit took 1-1 down too. */
	assert_int_equal(fk_count(&f->fk, &f->fk.detaches), 2);
	WAIT_FOR(server_held(f, "1-1", NULL) == 0);
}

static void test_dry_run(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	cfg.dry_run = true;
	struct daemon *d = start_daemon(f, &cfg);
	WAIT_FOR(daemon_server_state(d, 0) == CONN_SUBSCRIBED);
	sleep_ms(200);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 0);
	assert_int_equal(server_held(f, "1-1", NULL), 0);
	assert_null(read_text(f->root, "state/state"));
	end_daemon(f, d);
}

/* A notify server that welcomes us, then goes silent: after three missed
 * heartbeats the daemon must give up on it and reconnect. */
static void test_silent_server(void **state)
{
	struct fixture *f = *state;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);

	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", ntohs(sa.sin_port));
	cfg.nservers = 0;
	assert_int_equal(daemon_config_add_server(&cfg, spec), 0);
	struct daemon *d = start_daemon(f, &cfg);

	int64_t t0 = net_now_ms();
	int c1 = accept(lfd, NULL, NULL);
	assert_true(c1 >= 0);
	const char *hello = "welcome version=2 heartbeat=1 server=silent\nsnapshot-end count=0\n";
	assert_int_equal(send(c1, hello, strlen(hello), 0), (ssize_t)strlen(hello));
	WAIT_FOR(daemon_server_state(d, 0) == CONN_SUBSCRIBED);
	/* The daemon pings us while we say nothing. */
	char buf[64];
	ssize_t r = recv(c1, buf, sizeof(buf) - 1, 0);
	assert_true(r > 0);
	buf[r] = '\0';
	assert_non_null(strstr(buf, "hello version=2"));
	int c2 = accept(lfd, NULL, NULL);
	int64_t waited = net_now_ms() - t0;
	assert_true(c2 >= 0);
	assert_true(waited >= 2500 && waited < 8000);
	end_daemon(f, d);
	close(c1);
	close(c2);
	close(lfd);
}

static int listen_loopback(int *port)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return lfd;
}

/* Accepts within ms, or -1. */
static int accept_within(int lfd, int ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	if (poll(&p, 1, ms) != 1)
		return -1;
	return accept(lfd, NULL, NULL);
}

static void send_v2(int fd, const struct notify_v2_msg *m)
{
	char line[NOTIFY_V2_MAX_LINE];
	int n = notify_v2_encode(m, line, sizeof(line));
	assert_true(n > 0);
	assert_int_equal(send(fd, line, (size_t)n, MSG_NOSIGNAL), n);
}

/* Several devices to attach at once (a snapshot of three): their imports
 * overlap, one connection each in flight together, instead of one after
 * another. The fake server accepts all three connections before it answers
 * any: imports done in turn would never get the second one. They go to the
 * notify peer's address (no name lookup), and each attach logs its timing. */
static void test_snapshot_imports_overlap(void **state)
{
	struct fixture *f = *state;
	int nport, uport;
	int nl = listen_loopback(&nport);
	int ul = listen_loopback(&uport);
	f->fk.usbip_port = uport;

	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", nport);
	cfg.nservers = 0;
	assert_int_equal(daemon_config_add_server(&cfg, spec), 0);
	snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%d", uport);
	cfg.import_timeout_ms = 4000;
	struct daemon *d = start_daemon(f, &cfg);

	int nfd = accept_within(nl, 5000);
	assert_true(nfd >= 0);
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_WELCOME;
	m.version = NOTIFY_V2_VERSION;
	m.heartbeat_s = 5;
	snprintf(m.name, sizeof(m.name), "fake");
	send_v2(nfd, &m);
	const char *ids[3] = { "1-1", "1-2", "2-4.1" };
	for (int i = 0; i < 3; i++) {
		memset(&m, 0, sizeof(m));
		m.type = NOTIFY_V2_DEVICE;
		snprintf(m.dev.busid, sizeof(m.dev.busid), "%s", ids[i]);
		m.dev.vid = 0x0525;
		m.dev.pid = 0xa4a0;
		m.dev.speed = USBIP_SPEED_HIGH;
		send_v2(nfd, &m);
	}
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_SNAPSHOT_END;
	m.count = 3;
	send_v2(nfd, &m);

	int ufd[3];
	for (int i = 0; i < 3; i++) {
		ufd[i] = accept_within(ul, 3000);
		if (ufd[i] < 0)
			fail_msg("import %d of 3 not in flight with the others", i + 1);
	}
	for (int i = 0; i < 3; i++) {
		uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
		char busid[USBIP_BUSID_SIZE];
		assert_int_equal(cnet_read_exact(ufd[i], req, sizeof(req), net_now_ms() + 3000), 0);
		assert_int_equal(usbip_import_request_decode(req, sizeof(req), busid), USBIP_OK);
		struct usbip_device_record dev;
		memset(&dev, 0, sizeof(dev));
		snprintf(dev.busid, sizeof(dev.busid), "%s", busid);
		snprintf(dev.path, sizeof(dev.path), "/sys/fake/%s", busid);
		dev.busnum = (uint32_t)atoi(busid);
		dev.devnum = (uint32_t)(10 + i);
		dev.speed = USBIP_SPEED_HIGH;
		dev.idVendor = 0x0525;
		dev.idProduct = 0xa4a0;
		uint8_t rep[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
		int n = usbip_import_reply_encode(USBIP_ST_OK, &dev, rep, sizeof(rep));
		assert_int_equal(n, (int)sizeof(rep));
		assert_int_equal(send(ufd[i], rep, sizeof(rep), MSG_NOSIGNAL), (ssize_t)sizeof(rep));
	}
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 3);
	for (int i = 0; i < 3; i++)
		WAIT_FOR(port_of(d, ids[i]) >= 0);
	assert_int_equal(f->fk.bad_sockets, 0);
	end_daemon(f, d);
	for (int i = 0; i < 3; i++)
		close(ufd[i]);
	close(nfd);
	close(nl);
	close(ul);
}

/* The merge of overlapping imports with the per-server settings: the
 * imports go to the server's own USB/IP port (not the daemon-wide default),
 * a held busid is left out of the batch, and each attachment gets its
 * extras (speed, since). */
static void test_overlap_server_port_and_holds(void **state)
{
	struct fixture *f = *state;
	int nport, uport, dport;
	int nl = listen_loopback(&nport);
	int ul = listen_loopback(&uport);
	int dl = listen_loopback(&dport); /* the default port: must stay unused */
	f->fk.usbip_port = uport;

	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", nport);
	cfg.nservers = 0;
	assert_int_equal(daemon_config_add_server(&cfg, spec), 0);
	snprintf(cfg.servers[0].usbip_port, sizeof(cfg.servers[0].usbip_port), "%d", uport);
	snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%d", dport);
	cfg.import_timeout_ms = 4000;
	struct daemon *d = start_daemon(f, &cfg);
	assert_int_equal(daemon_hold(d, "1-2"), 0);

	int nfd = accept_within(nl, 5000);
	assert_true(nfd >= 0);
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_WELCOME;
	m.version = NOTIFY_V2_VERSION;
	m.heartbeat_s = 5;
	snprintf(m.name, sizeof(m.name), "fake");
	send_v2(nfd, &m);
	const char *ids[3] = { "1-1", "1-2", "2-4.1" };
	for (int i = 0; i < 3; i++) {
		memset(&m, 0, sizeof(m));
		m.type = NOTIFY_V2_DEVICE;
		snprintf(m.dev.busid, sizeof(m.dev.busid), "%s", ids[i]);
		m.dev.vid = 0x0525;
		m.dev.pid = 0xa4a0;
		m.dev.speed = USBIP_SPEED_HIGH;
		send_v2(nfd, &m);
	}
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_SNAPSHOT_END;
	m.count = 3;
	send_v2(nfd, &m);

	/* Two imports in flight together (1-2 is held), none on the default. */
	int ufd[2];
	for (int i = 0; i < 2; i++) {
		ufd[i] = accept_within(ul, 3000);
		if (ufd[i] < 0)
			fail_msg("import %d of 2 not in flight on the server's port", i + 1);
	}
	for (int i = 0; i < 2; i++) {
		uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
		char busid[USBIP_BUSID_SIZE];
		assert_int_equal(cnet_read_exact(ufd[i], req, sizeof(req), net_now_ms() + 3000), 0);
		assert_int_equal(usbip_import_request_decode(req, sizeof(req), busid), USBIP_OK);
		assert_string_not_equal(busid, "1-2");
		struct usbip_device_record dev;
		memset(&dev, 0, sizeof(dev));
		snprintf(dev.busid, sizeof(dev.busid), "%s", busid);
		snprintf(dev.path, sizeof(dev.path), "/sys/fake/%s", busid);
		dev.busnum = (uint32_t)atoi(busid);
		dev.devnum = (uint32_t)(10 + i);
		dev.speed = USBIP_SPEED_HIGH;
		dev.idVendor = 0x0525;
		dev.idProduct = 0xa4a0;
		uint8_t rep[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
		int n = usbip_import_reply_encode(USBIP_ST_OK, &dev, rep, sizeof(rep));
		assert_int_equal(n, (int)sizeof(rep));
		assert_int_equal(send(ufd[i], rep, sizeof(rep), MSG_NOSIGNAL), (ssize_t)sizeof(rep));
	}
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 2);
	WAIT_FOR(port_of(d, "1-1") >= 0);
	WAIT_FOR(port_of(d, "2-4.1") >= 0);
	assert_int_equal(port_of(d, "1-2"), -1);
	assert_int_equal(accept_within(ul, 300), -1);
	assert_int_equal(accept_within(dl, 0), -1);
	assert_int_equal(f->fk.bad_sockets, 0);

	struct attachment att[4];
	struct daemon_attachment_extra extra[4];
	size_t n = daemon_attachments_extra(d, 0, att, extra, 4);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(extra[i].speed, USBIP_SPEED_HIGH);
		assert_true(extra[i].since > 0);
	}
	end_daemon(f, d);
	for (int i = 0; i < 2; i++)
		close(ufd[i]);
	close(nfd);
	close(nl);
	close(ul);
	close(dl);
}

/* One control request through the socket; returns its rc, reply in *out. */
static int ctl(const char *path, const char *line, struct strbuf *out)
{
	sb_free(out);
	return control_request(path, line, out);
}

static void test_control_socket(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	assert_int_equal(filter_add(&cfg.filter, true, "1-1"), 0);
	struct daemon *d = start_daemon(f, &cfg);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ctl/client.sock", f->root);
	struct control_server *cs = NULL;
	assert_int_equal(control_server_start(path, daemon_control, d, &cs), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);

	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 1);
	WAIT_FOR(port_of(d, "1-1") >= 0);
	int port = port_of(d, "1-1");
	struct strbuf r;
	sb_init(&r);

	/* status --json: the server's state and the attachment's details. */
	assert_int_equal(ctl(path, "status --json", &r), 0);
	char want[64];
	assert_non_null(strstr(sb_str(&r), "\"state\":\"subscribed\""));
	assert_non_null(strstr(sb_str(&r), "\"last_error\":null"));
	snprintf(want, sizeof(want), "{\"busid\":\"1-1\",\"vhci_port\":%d,", port);
	assert_non_null(strstr(sb_str(&r), want));
	assert_non_null(strstr(sb_str(&r), "\"speed\":\"high\",\"since\":\"20"));
	assert_non_null(strstr(sb_str(&r), "\"holds\":[]"));
	assert_int_equal(ctl(path, "status", &r), 0);
	assert_non_null(strstr(sb_str(&r), "subscribed since"));
	snprintf(want, sizeof(want), "1-1 on vhci port %d, high speed", port);
	assert_non_null(strstr(sb_str(&r), want));
	/* Where it came from, as the offline status and `usbip port` say it. */
	snprintf(want, sizeof(want), ", from 127.0.0.1:%d/1-1\n", f->usbip_port);
	assert_non_null(strstr(sb_str(&r), want));

	/* detach: the port goes, and the device stays away although the
	 * server says it is free again (it is on hold). */
	assert_int_equal(ctl(path, "detach 1-1", &r), 0);
	assert_int_equal(fk_count(&f->fk, &f->fk.detaches), 1);
	assert_int_equal(f->fk.last_detach_port, port);
	fk_port_gone(&f->fk, port);
	WAIT_FOR(server_held(f, "1-1", NULL) == 0);
	sleep_ms(500);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 1);
	assert_true(daemon_is_held(d, "1-1"));
	assert_int_equal(ctl(path, "status --json", &r), 0);
	assert_non_null(strstr(sb_str(&r), "\"holds\":[\"1-1\"]"));
	assert_non_null(strstr(sb_str(&r), "\"attachments\":[]"));

	/* attach: released and attached now. */
	assert_int_equal(ctl(path, "attach 1-1", &r), 0);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 2);
	assert_false(daemon_is_held(d, "1-1"));
	WAIT_FOR(server_held(f, "1-1", NULL) == 1);
	assert_int_equal(ctl(path, "attach 1-1", &r), -EREMOTEIO);
	assert_non_null(strstr(sb_str(&r), "already attached"));

	/* An explicit attach is not subject to the filters (1-2 is not allowed). */
	assert_int_equal(ctl(path, "attach 1-2", &r), 0);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 3);
	assert_int_equal(ctl(path, "attach 9-9", &r), -EREMOTEIO);
	assert_non_null(strstr(sb_str(&r), "no subscribed server"));

	/* hold keeps a replugged device from being attached; release lifts it. */
	assert_int_equal(ctl(path, "hold 1-1", &r), 0);
	assert_int_equal(sim_unplug(f->sim, "1-1"), 0);
	WAIT_FOR(fk_count(&f->fk, &f->fk.detaches) == 2);
	assert_int_equal(sim_plug(f->sim, "1-1"), 0);
	sleep_ms(500);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 3);
	assert_int_equal(ctl(path, "release 1-1", &r), 0);
	assert_int_equal(ctl(path, "release 1-1", &r), -EREMOTEIO);
	assert_non_null(strstr(sb_str(&r), "not attached or held"));

	/* Bad requests are answered, not fatal. */
	assert_int_equal(ctl(path, "attach nope", &r), -EREMOTEIO);
	assert_non_null(strstr(sb_str(&r), "usage: attach BUSID"));
	assert_int_equal(ctl(path, "frobnicate", &r), -EREMOTEIO);
	assert_non_null(strstr(sb_str(&r), "unknown request"));
	assert_int_equal(ctl(path, "status --yaml", &r), -EREMOTEIO);

	/* The server goes: status says so, with the error. */
	stop_server(f);
	WAIT_FOR(daemon_server_state(d, 0) != CONN_SUBSCRIBED);
	assert_int_equal(ctl(path, "status --json", &r), 0);
	assert_non_null(strstr(sb_str(&r), "\"last_error\":\"notify connection"));

	sb_free(&r);
	control_server_stop(cs);
	assert_int_equal(stat(path, &st), -1);
	end_daemon(f, d);
}

/* Servers added and removed at run time (what discovery does). */
static void test_dynamic_servers(void **state)
{
	struct fixture *f = *state;
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_cfg(f, &cfg, &ops);
	cfg.nservers = 0; /* none given: they come later */
	assert_int_equal(filter_add(&cfg.filter, true, "1-1"), 0);
	struct daemon *d = start_daemon(f, &cfg);
	assert_int_equal(daemon_nservers(d), 0);

	struct daemon_server_spec spec;
	memset(&spec, 0, sizeof(spec));
	snprintf(spec.name, sizeof(spec.name), "lab bench");
	snprintf(spec.host, sizeof(spec.host), "127.0.0.1");
	snprintf(spec.notify_port, sizeof(spec.notify_port), "%d", f->notify_port);
	snprintf(spec.usbip_port, sizeof(spec.usbip_port), "%d", f->usbip_port);
	assert_int_equal(daemon_add_server(d, &spec), 0);
	assert_int_equal(daemon_add_server(d, &spec), -EEXIST);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 1);
	WAIT_FOR(port_of(d, "1-1") >= 0);
	int port = port_of(d, "1-1");
	struct daemon_server_status st;
	assert_int_equal(daemon_server_status(d, 0, &st), 0);
	assert_string_equal(st.name, "lab bench");
	assert_int_equal(st.state, CONN_SUBSCRIBED);

	/* Gone from the network: its thread ends, its port is freed, status
	 * no longer lists it. */
	assert_int_equal(daemon_remove_server(d, "lab bench"), 0);
	assert_int_equal(fk_count(&f->fk, &f->fk.detaches), 1);
	assert_int_equal(f->fk.last_detach_port, port);
	assert_int_equal(daemon_server_status(d, 0, &st), -ENOENT);
	assert_int_equal(daemon_remove_server(d, "lab bench"), -ENOENT);
	fk_port_gone(&f->fk, port);
	WAIT_FOR(server_held(f, "1-1", NULL) == 0);

	/* Back again: the same slot, attached again. */
	assert_int_equal(daemon_add_server(d, &spec), 0);
	assert_int_equal(daemon_nservers(d), 1);
	WAIT_FOR(fk_count(&f->fk, &f->fk.attaches) == 2);
	assert_int_equal(daemon_server_status(d, 0, &st), 0);

	/* A name that never was, and an empty one. */
	assert_int_equal(daemon_remove_server(d, "other"), -ENOENT);
	char name[DAEMON_NAME_SIZE];
	memcpy(name, spec.name, sizeof(name));
	spec.name[0] = '\0';
	assert_int_equal(daemon_add_server(d, &spec), -EINVAL);
	memcpy(spec.name, name, sizeof(name));

	/* A new run that finds the same server again takes back what the old
	 * one attached from it, without importing it again. */
	WAIT_FOR(port_of(d, "1-1") >= 0);
	port = port_of(d, "1-1");
	fk_enumerate(&f->fk, port);
	end_daemon(f, d);
	d = start_daemon(f, &cfg);
	assert_int_equal(daemon_add_server(d, &spec), 0);
	assert_int_equal(port_of(d, "1-1"), port);
	WAIT_FOR(daemon_server_state(d, 0) == CONN_SUBSCRIBED);
	sleep_ms(300);
	assert_int_equal(fk_count(&f->fk, &f->fk.attaches), 2);
	end_daemon(f, d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_attach_unplug_replug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_reconcile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_before_enumeration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_then_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_imports_overlap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_server_port_and_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dynamic_servers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
