/* Restarts with SIGKILL during use; the survivors recover with no manual
 * step and nothing stays "in use" with a dead peer. The client side is a
 * fixture vhci sysfs with the fake vhci of fake_vhci.h, which keeps its own
 * reference to every attached socket and frees a port when its socket
 * dies, as vhci_hcd does.
 *
 * - The server killed: the real binary (argv[1], sim backend, fixed free
 *   ports so the restarted one is where the first was); the daemon runs
 *   in-process and attaches every device again.
 * - The daemon killed: it runs in a child process (this program again,
 *   "--daemon-child"), whose vhci writes go to the fake vhci here over a
 *   socketpair, the attached socket passed along (SCM_RIGHTS) as the
 *   kernel would take its reference; the server runs in-process. The
 *   attached devices survive the kill; the restarted daemon adopts them
 *   and acts on what changed while it was dead. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/sim.h"
#include "client/daemon.h"
#include "client/vhci.h"
#include "common/net.h"
#include "server/server.h"
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

/* ---- the daemon in a child process ------------------------------------- */

#define CHILD_FD 3
#define MSG_MAX 512

static pthread_mutex_t child_lock = PTHREAD_MUTEX_INITIALIZER;

/* The child's vhci write: "path\0text" over the socketpair, with the
 * socket for an attach; the answer is the fake vhci's return code. */
static int child_write(void *ctx, const char *path, const char *text)
{
	(void)ctx;
	char msg[MSG_MAX];
	size_t pl = strlen(path) + 1, tl = strlen(text) + 1;
	if (pl + tl > sizeof(msg))
		return -E2BIG;
	memcpy(msg, path, pl);
	memcpy(msg + pl, text, tl);
	struct iovec iov = { msg, pl + tl };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int port, sockfd;
	size_t n = strlen(path);
	if (n >= 7 && strcmp(path + n - 7, "/attach") == 0 &&
	    sscanf(text, "%d %d", &port, &sockfd) == 2) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &sockfd, sizeof(int));
	}
	pthread_mutex_lock(&child_lock);
	int32_t rc = -EIO;
	if (sendmsg(CHILD_FD, &mh, 0) < 0 || recv(CHILD_FD, &rc, sizeof(rc), 0) != sizeof(rc))
		rc = -EIO;
	pthread_mutex_unlock(&child_lock);
	return rc;
}

/* argv: --daemon-child ROOT NOTIFY_PORT USBIP_PORT. Runs until killed. */
static int daemon_child(char **argv)
{
	const char *root = argv[2];
	struct vhci_ops ops = { child_write, NULL };
	struct daemon_config cfg;
	daemon_config_defaults(&cfg);
	char spec[64], run[PATH_MAX], statef[PATH_MAX];
	snprintf(spec, sizeof(spec), "127.0.0.1:%s", argv[3]);
	if (daemon_config_add_server(&cfg, spec) != 0)
		return 2;
	snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%s", argv[4]);
	snprintf(run, sizeof(run), "%s/run", root);
	snprintf(statef, sizeof(statef), "%s/state", root);
	cfg.sysfs_root = root;
	cfg.run_dir = run;
	cfg.state_file = statef;
	cfg.vhci_ops = &ops;
	cfg.backoff_min_ms = 100;
	cfg.backoff_max_ms = 500;
	struct daemon *d = daemon_new(&cfg);
	if (!d || daemon_start(d) != 0)
		return 2;
	for (;;)
		pause();
}

/* The parent's end: hands each write to the fake vhci, the passed socket's
 * number put in place of the child's. Ends when the child is gone. */
struct broker {
	struct fake_kernel *fk;
	int fd;
	pthread_t th;
};

static void *broker_run(void *arg)
{
	struct broker *b = arg;
	for (;;) {
		char msg[MSG_MAX + 1];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = { msg, MSG_MAX };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(b->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		msg[n] = '\0';
		int passed = -1;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_type == SCM_RIGHTS)
			memcpy(&passed, CMSG_DATA(c), sizeof(int));
		const char *path = msg, *text = msg + strlen(msg) + 1;
		char fixed[MSG_MAX];
		int port, sockfd;
		unsigned devid, speed;
		if (passed >= 0 && sscanf(text, "%d %d %u %u", &port, &sockfd, &devid, &speed) == 4) {
			snprintf(fixed, sizeof(fixed), "%d %d %u %u", port, passed, devid, speed);
			text = fixed;
		}
		int32_t rc = fk_write(b->fk, path, text);
		if (passed >= 0)
			close(passed); /* fk_write keeps its own dup */
		if (send(b->fd, &rc, sizeof(rc), MSG_NOSIGNAL) != sizeof(rc))
			break;
	}
	close(b->fd);
	return NULL;
}

static const char *self_exe;

static pid_t spawn_daemon(struct broker *b, struct fake_kernel *fk, const char *root,
			  int notify_port, int usbip_port)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], CHILD_FD);
	char np[8], up[8];
	snprintf(np, sizeof(np), "%d", notify_port);
	snprintf(up, sizeof(up), "%d", usbip_port);
	char *argv[] = { (char *)self_exe, "--daemon-child", (char *)root, np, up, NULL };
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, self_exe, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	b->fk = fk;
	b->fd = sv[0];
	assert_int_equal(pthread_create(&b->th, NULL, broker_run, b), 0);
	return pid;
}

static void kill_daemon(pid_t pid, struct broker *b)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	pthread_join(b->th, NULL);
}

static int held(struct server *srv)
{
	struct export_view *views;
	int n = export_table_snapshot(server_exports(srv), &views);
	assert_true(n >= 0);
	int h = 0;
	for (int i = 0; i < n; i++)
		h += views[i].held;
	free(views);
	return h;
}

static void test_daemon_killed_and_restarted(void **state)
{
	(void)state;
	struct backend *sim = sim_backend_new("zero,zero,zero");
	assert_non_null(sim);
	struct server_config scfg;
	server_config_defaults(&scfg);
	scfg.host = "127.0.0.1";
	scfg.port = "0";
	scfg.notify.enabled = true;
	scfg.notify.host = "127.0.0.1";
	scfg.notify.port = "0";
	scfg.notify.heartbeat_s = 1;
	struct server *srv = server_new(sim, &scfg);
	assert_non_null(srv);
	assert_int_equal(server_start(srv), 0);
	int up = server_port(srv), np = server_notify_port(srv);

	char root[] = "/tmp/test_restarts.XXXXXX";
	assert_non_null(mkdtemp(root));
	struct fake_kernel fk = { 0 };
	fk_init(&fk, root);
	fk.usbip_port = up;
	struct fk_watcher w;
	fk_watch_start(&w, &fk);

	struct broker b;
	pid_t child = spawn_daemon(&b, &fk, root, np, up);
	WAIT_FOR(fk_count(&fk, &fk.attaches) == 3 && used_ports(&fk) == 3 && held(srv) == 3,
		 10000);

	/* Killed while attached: the ports and their sessions live on (the
	 * kernel holds the sockets), only the notify subscription goes. */
	kill_daemon(child, &b);
	sleep_ms(500);
	assert_int_equal(used_ports(&fk), 3);
	assert_int_equal(held(srv), 3);

	/* While no daemon runs, 1-3 leaves (its session ends, vhci frees the
	 * port by itself). */
	assert_int_equal(sim_unplug(sim, "1-3"), 0);
	WAIT_FOR(used_ports(&fk) == 2 && held(srv) == 2, 5000);

	/* Restarted: 1-1 and 1-2 adopted, not attached twice; 1-3, plugged
	 * again, attached by the new daemon. */
	int64_t t0 = net_now_ms();
	child = spawn_daemon(&b, &fk, root, np, up);
	sleep_ms(500);
	assert_int_equal(sim_plug(sim, "1-3"), 0);
	WAIT_FOR(fk_count(&fk, &fk.attaches) == 4 && used_ports(&fk) == 3 && held(srv) == 3,
		 10000);
	printf("# daemon killed and restarted: 2 attachments adopted, 1-3 attached %lld ms "
	       "after the restart\n", (long long)(net_now_ms() - t0));
	sleep_ms(500);
	assert_int_equal(fk_count(&fk, &fk.attaches), 4);
	assert_int_equal(fk_count(&fk, &fk.detaches), 0);
	assert_int_equal(fk_count(&fk, &fk.bad_sockets), 0);

	/* Killed again and 1-1 unplugged meanwhile; the third daemon finds
	 * two devices attached and everything held has a live port. */
	kill_daemon(child, &b);
	assert_int_equal(sim_unplug(sim, "1-1"), 0);
	child = spawn_daemon(&b, &fk, root, np, up);
	WAIT_FOR(used_ports(&fk) == 2 && held(srv) == 2, 5000);
	assert_int_equal(sim_plug(sim, "1-1"), 0);
	WAIT_FOR(fk_count(&fk, &fk.attaches) == 5 && used_ports(&fk) == 3 && held(srv) == 3,
		 10000);
	kill_daemon(child, &b);

	fk_watch_stop(&w);
	fk_destroy(&fk);
	server_stop(srv);
	server_free(srv);
	assert_int_equal(sim_pending_transfers(sim), 0);
	assert_int_equal(sim_claimed_interfaces(sim), 0);
	sim->ops->destroy(sim);
	nftw(root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--daemon-child") == 0)
		return daemon_child(argv);
	if (argc < 2) {
		fprintf(stderr, "usage: %s SERVER_EXE\n", argv[0]);
		return 2;
	}
	server_exe = argv[1];
	self_exe = "/proc/self/exe";
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_killed_and_restarted),
		cmocka_unit_test(test_daemon_killed_and_restarted),
	};
	return cmocka_run_group_tests_name("restarts", tests, NULL, NULL);
}
