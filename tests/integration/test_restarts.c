/* The server killed with SIGKILL during use and started again: the client
 * daemon (in-process, fixture vhci sysfs with the fake vhci of
 * fake_vhci.h, which frees a port when its socket dies, as vhci_hcd does)
 * subscribes again and attaches every device again with no manual step,
 * and no port stays "in use" with a dead socket.
 *
 * The server is the real binary (argv[1]) with the sim backend, on fixed
 * free ports so that the restarted one is found where the first was. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/daemon.h"
#include "client/vhci.h"
#include "common/net.h"
#include "fake_vhci.h"

extern char **environ;

static const char *server_exe;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

#define WAIT_FOR(cond, ms)                                                          \
	do {                                                                        \
		int64_t until_ = net_now_ms() + (ms);                               \
		while (!(cond) && net_now_ms() < until_)                            \
			sleep_ms(20);                                               \
		if (!(cond))                                                        \
			fail_msg("timed out after %d ms waiting for %s", (ms), #cond); \
	} while (0)

/* A port free on 127.0.0.1 now (bound and released). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static pid_t start_server(int usbip_port, int notify_port)
{
	char up[8], np[8];
	snprintf(up, sizeof(up), "%d", usbip_port);
	snprintf(np, sizeof(np), "%d", notify_port);
	char *argv[] = { (char *)server_exe, "--sim", "zero,zero", "--listen", "127.0.0.1",
			 "--port", up, "--notify-listen", "127.0.0.1", "--notify-port", np,
			 "--notify-heartbeat", "1", "--control", "none", "--no-announce",
			 "--config", "/dev/null", NULL };
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, server_exe, NULL, NULL, argv, environ), 0);
	return pid;
}

static int used_ports(struct fake_kernel *fk)
{
	int n = 0;
	pthread_mutex_lock(&fk->lock);
	for (int i = 0; i < NPORTS; i++)
		n += fk->ports[i].used;
	pthread_mutex_unlock(&fk->lock);
	return n;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_server_killed_and_restarted(void **state)
{
	(void)state;
	char root[] = "/tmp/test_restarts.XXXXXX";
	assert_non_null(mkdtemp(root));
	struct fake_kernel fk = { 0 };
	fk_init(&fk, root);
	int usbip_port = free_port(), notify_port = free_port();
	fk.usbip_port = usbip_port;
	struct fk_watcher w;
	fk_watch_start(&w, &fk);
	pid_t srv = start_server(usbip_port, notify_port);

	struct vhci_ops ops = { fk_write, &fk };
	struct daemon_config cfg;
	daemon_config_defaults(&cfg);
	char spec[64], run[PATH_MAX], statef[PATH_MAX];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", notify_port);
	assert_int_equal(daemon_config_add_server(&cfg, spec), 0);
	snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%d", usbip_port);
	snprintf(run, sizeof(run), "%s/run", root);
	snprintf(statef, sizeof(statef), "%s/state", root);
	cfg.sysfs_root = root;
	cfg.run_dir = run;
	cfg.state_file = statef;
	cfg.vhci_ops = &ops;
	cfg.backoff_min_ms = 100;
	cfg.backoff_max_ms = 500;
	struct daemon *d = daemon_new(&cfg);
	assert_non_null(d);
	assert_int_equal(daemon_start(d), 0);
	WAIT_FOR(fk_count(&fk, &fk.attaches) == 2 && used_ports(&fk) == 2, 10000);

	for (int round = 1; round <= 2; round++) {
		/* Killed: the kernel resets its connections; the fake vhci
		 * frees both ports, the daemon loses its subscription. */
		assert_int_equal(kill(srv, SIGKILL), 0);
		assert_int_equal(waitpid(srv, NULL, 0), srv);
		int64_t t0 = net_now_ms();
		WAIT_FOR(used_ports(&fk) == 0, 5000);
		WAIT_FOR(daemon_server_state(d, 0) != CONN_SUBSCRIBED, 5000);
		sleep_ms(300); /* a few failed reconnects meanwhile */

		srv = start_server(usbip_port, notify_port);
		WAIT_FOR(fk_count(&fk, &fk.attaches) == 2 + 2 * round && used_ports(&fk) == 2,
			 10000);
		WAIT_FOR(daemon_server_state(d, 0) == CONN_SUBSCRIBED, 5000);
		printf("# round %d: server killed, restarted after 300 ms; both devices "
		       "attached again %lld ms after the kill\n",
		       round, (long long)(net_now_ms() - t0));
		struct attachment at[4];
		assert_int_equal(daemon_attachments(d, 0, at, 4), 2);
	}

	daemon_stop(d);
	daemon_free(d);
	fk_watch_stop(&w);
	fk_destroy(&fk);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	nftw(root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SERVER_EXE\n", argv[0]);
		return 2;
	}
	server_exe = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_killed_and_restarted),
	};
	return cmocka_run_group_tests_name("restarts", tests, NULL, NULL);
}
