/* The client daemon through TLS, in-process: the real server (sim backend,
 * TLS with a pre-shared key on its USB/IP port) over loopback and the daemon
 * with a fake vhci whose "attach" keeps the socket it is handed, as vhci_hcd
 * does, and then plays vhci: it sends CMD_SUBMITs in plaintext on that
 * socket and reads the replies. The daemon's hand-off put either kernel TLS
 * or its userspace relay behind it; on a host without the tls module it is
 * the relay, and the test checks the mode is named in status either way.
 * The notify channel runs through TLS too (a relay on both ends).
 * Also: a wrong PSK and a plaintext daemon get nothing attached, and the
 * server goes on serving. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/sim.h"
#include "client/daemon.h"
#include "common/net.h"
#include "common/strbuf.h"
#include "common/tls.h"
#include "server/server.h"
#include "usbip_client.h"

#define NPORTS 8
#define RIGHT_PSK "bench1:00112233445566778899aabbccddeeff\n"
#define WRONG_PSK "bench1:ffeeddccbbaa99887766554433221100\n"

struct fake_vhci {
	pthread_mutex_t lock;
	char hc_dir[128];
	int kfd[NPORTS];
	uint32_t devid[NPORTS];
	int attaches;
};

struct fixture {
	char root[64];
	char run[128];
	struct fake_vhci fv;
	struct backend *sim;
	struct server *srv;
	struct tls_ctx *server_tls;
	int usbip_port, notify_port;
};

static void write_status_locked(struct fake_vhci *fv)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/status", fv->hc_dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "hub port sta spd dev      sockfd local_busid\n");
	for (int i = 0; i < NPORTS; i++) {
		bool used = fv->kfd[i] >= 0;
		fprintf(f, "%s  %04d %03d %03u %08x %06d %s\n", i < NPORTS / 2 ? "hs" : "ss", i,
			used ? 6 : 4, used ? 3u : 0u, used ? fv->devid[i] : 0, used ? fv->kfd[i] : 0,
			used ? "9-1" : "0-0");
	}
	fclose(f);
}

static int fv_write(void *ctx, const char *path, const char *text)
{
	struct fake_vhci *fv = ctx;
	int port, sockfd, rc = 0;
	unsigned devid, speed;
	size_t n = strlen(path);
	pthread_mutex_lock(&fv->lock);
	if (n > 7 && strcmp(path + n - 7, "/attach") == 0 &&
	    sscanf(text, "%d %d %u %u", &port, &sockfd, &devid, &speed) == 4 && port >= 0 &&
	    port < NPORTS && fv->kfd[port] < 0) {
		fv->kfd[port] = dup(sockfd); /* the kernel's own reference */
		fv->devid[port] = devid;
		fv->attaches++;
		write_status_locked(fv);
	} else {
		rc = -EINVAL;
	}
	pthread_mutex_unlock(&fv->lock);
	return rc;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct tls_ctx *psk_ctx(struct fixture *f, const char *psk, bool server)
{
	char path[128], err[TLS_ERR_SIZE];
	snprintf(path, sizeof(path), "%s/psk", f->root);
	write_file(path, psk);
	struct tls_options o = { .psk_file = path };
	struct tls_ctx *ctx = tls_ctx_new(&o, server, err);
	assert_non_null(ctx);
	return ctx;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_client_tls.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	char p[256];
	snprintf(p, sizeof(p), "%s/devices", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/devices/platform", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(f->fv.hc_dir, sizeof(f->fv.hc_dir), "%s/devices/platform/vhci_hcd.0", f->root);
	assert_int_equal(mkdir(f->fv.hc_dir, 0755), 0);
	snprintf(f->run, sizeof(f->run), "%s/run", f->root);
	pthread_mutex_init(&f->fv.lock, NULL);
	for (int i = 0; i < NPORTS; i++)
		f->fv.kfd[i] = -1;
	const char *attrs[] = { "attach", "detach" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->fv.hc_dir, attrs[i]);
		write_file(p, "");
	}
	snprintf(p, sizeof(p), "%s/nports", f->fv.hc_dir);
	write_file(p, "8\n");
	write_status_locked(&f->fv);

	f->server_tls = psk_ctx(f, RIGHT_PSK, true);
	f->sim = sim_backend_new("zero");
	assert_non_null(f->sim);
	struct server_config cfg;
	server_config_defaults(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = "0";
	cfg.notify.enabled = true;
	cfg.notify.host = "127.0.0.1";
	cfg.notify.port = "0";
	cfg.notify.heartbeat_s = 1;
	cfg.tls = f->server_tls;
	f->srv = server_new(f->sim, &cfg);
	assert_non_null(f->srv);
	assert_int_equal(server_start(f->srv), 0);
	f->usbip_port = server_port(f->srv);
	f->notify_port = server_notify_port(f->srv);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < NPORTS; i++)
		if (f->fv.kfd[i] >= 0)
			close(f->fv.kfd[i]);
	server_free(f->srv);
	f->sim->ops->destroy(f->sim);
	tls_ctx_free(f->server_tls);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_true(strncmp(f->root, "/tmp/test_client_tls.", 21) == 0);
	assert_int_equal(system(cmd), 0);
	pthread_mutex_destroy(&f->fv.lock);
	free(f);
	return 0;
}

static struct daemon *start_daemon(struct fixture *f, struct tls_ctx *tls)
{
	struct daemon_config cfg;
	daemon_config_defaults(&cfg);
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", f->notify_port);
	assert_int_equal(daemon_config_add_server(&cfg, spec), 0);
	snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%d", f->usbip_port);
	cfg.sysfs_root = f->root;
	cfg.run_dir = f->run;
	cfg.state_file = NULL;
	static struct vhci_ops ops;
	ops = (struct vhci_ops){ fv_write, &f->fv };
	cfg.vhci_ops = &ops;
	cfg.backoff_min_ms = 50;
	cfg.backoff_max_ms = 300;
	cfg.tls = tls;
	struct daemon *d = daemon_new(&cfg);
	assert_non_null(d);
	assert_int_equal(daemon_start(d), 0);
	return d;
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

static int attaches(struct fixture *f)
{
	pthread_mutex_lock(&f->fv.lock);
	int n = f->fv.attaches;
	pthread_mutex_unlock(&f->fv.lock);
	return n;
}

static bool error_contains(struct daemon *d, const char *needle)
{
	struct daemon_server_status st;
	return daemon_server_status(d, 0, &st) == 0 && strstr(st.last_error, needle) != NULL;
}

static int held(struct fixture *f)
{
	struct export_view *views;
	int n = export_table_snapshot(server_exports(f->srv), &views);
	assert_true(n == 1);
	int h = views[0].held;
	free(views);
	return h;
}

/* vhci's side of the attached socket: GET_DESCRIPTOR(DEVICE) on ep0. */
static void vhci_get_descriptor(int kfd, uint32_t devid)
{
	struct uc_conn *c;
	assert_int_equal(uc_adopt_fd(dup(kfd), 5000, &c), 0);
	struct uc_urb u = {
		.seqnum = 1, .devid = devid, .direction = USBIP_DIR_IN, .ep = 0,
		.buffer_length = 18,
		.setup = { 0x80, 6, 0x00, 0x01, 0, 0, 18, 0 },
	};
	struct uc_reply r;
	assert_int_equal(uc_submit(c, &u), 0);
	assert_int_equal(uc_recv(c, &r, 5000), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 18);
	assert_int_equal(r.data[0], 18);
	assert_int_equal(r.data[1], 1);
	uc_reply_free(&r);
	uc_close(c);
}

static void test_attach_and_urbs_through_tls(void **state)
{
	struct fixture *f = *state;
	struct tls_ctx *tls = psk_ctx(f, RIGHT_PSK, false);
	struct daemon *d = start_daemon(f, tls);
	WAIT_FOR(attaches(f) == 1);
	int port = -1;
	for (int i = 0; i < NPORTS; i++)
		if (f->fv.kfd[i] >= 0)
			port = i;
	assert_true(port >= 0);
	WAIT_FOR(held(f) == 1);
	vhci_get_descriptor(f->fv.kfd[port], f->fv.devid[port]);
	vhci_get_descriptor(f->fv.kfd[port], f->fv.devid[port]);

	struct attachment att[4];
	struct daemon_attachment_extra ex[4];
	assert_int_equal(daemon_attachments_extra(d, 0, att, ex, 4), 1);
	assert_true(strcmp(ex[0].transport, "kernel TLS") == 0 ||
		    strcmp(ex[0].transport, "userspace relay") == 0);
	/* And status says it. */
	struct strbuf r;
	sb_init(&r);
	char *argv[] = { (char *)"status" };
	assert_int_equal(daemon_control(d, 1, argv, &r), 0);
	char want[64];
	snprintf(want, sizeof(want), "/1-1, %s\n", ex[0].transport);
	assert_non_null(strstr(sb_str(&r), want));
	sb_free(&r);

	/* vhci lets go (a detach): the session on the server ends. */
	daemon_stop(d);
	pthread_mutex_lock(&f->fv.lock);
	close(f->fv.kfd[port]);
	f->fv.kfd[port] = -1;
	pthread_mutex_unlock(&f->fv.lock);
	WAIT_FOR(held(f) == 0);
	daemon_free(d);
	tls_ctx_free(tls);
}

static void test_wrong_psk_attaches_nothing(void **state)
{
	struct fixture *f = *state;
	struct tls_ctx *tls = psk_ctx(f, WRONG_PSK, false);
	struct daemon *d = start_daemon(f, tls);
	WAIT_FOR(error_contains(d, "TLS handshake failed"));
	assert_int_equal(attaches(f), 0);
	assert_int_equal(held(f), 0);
	daemon_stop(d);
	daemon_free(d);
	tls_ctx_free(tls);
	/* The server goes on serving: the right key attaches. */
	tls = psk_ctx(f, RIGHT_PSK, false);
	d = start_daemon(f, tls);
	WAIT_FOR(attaches(f) == 1);
	daemon_stop(d);
	daemon_free(d);
	tls_ctx_free(tls);
}

static void test_plaintext_daemon_attaches_nothing(void **state)
{
	struct fixture *f = *state;
	struct daemon *d = start_daemon(f, NULL);
	/* The notify port refuses it already (and the USB/IP port would). */
	WAIT_FOR(error_contains(d, "notify connection"));
	assert_int_equal(attaches(f), 0);
	daemon_stop(d);
	daemon_free(d);
	/* The server goes on serving TLS clients. */
	struct tls_ctx *tls = psk_ctx(f, RIGHT_PSK, false);
	d = start_daemon(f, tls);
	WAIT_FOR(attaches(f) == 1);
	daemon_stop(d);
	daemon_free(d);
	tls_ctx_free(tls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_attach_and_urbs_through_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_psk_attaches_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_daemon_attaches_nothing, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
