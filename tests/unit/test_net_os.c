/* The per-OS socket options (net_os.h) as this OS builds them: each one is
 * read back from a real socket. On Linux that is net_os_linux.c; the darwin
 * file is built only on macOS and needs a test run there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/net_os.h"

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void test_keepalive_values(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(net_os_keepalive(fd, 7, 4, 2), 0);
	assert_int_equal(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
#if defined(TCP_KEEPIDLE)
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
#elif defined(TCP_KEEPALIVE)
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPALIVE), 7);
#endif
#ifdef TCP_KEEPINTVL
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 4);
#endif
#ifdef TCP_KEEPCNT
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 2);
#endif
	close(fd);
}

static void test_user_timeout(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int rc = net_os_user_timeout(fd, 15000);
#ifdef TCP_USER_TIMEOUT
	assert_int_equal(rc, 0);
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 15000);
#else
	assert_true(rc == 0 || rc == -ENOTSUP);
#endif
	close(fd);
}

/* A write to a peer that is gone returns EPIPE instead of killing us. */
static void test_no_sigpipe(void **state)
{
	(void)state;
	struct sigaction dfl = { .sa_handler = SIG_DFL }, old;
	sigaction(SIGPIPE, &dfl, &old); /* the default would end the process */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(net_os_nosigpipe(sv[0]), 0);
	close(sv[1]);
	ssize_t w = send(sv[0], "x", 1, net_os_send_flags());
	assert_int_equal(w, -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
	sigaction(SIGPIPE, &old, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keepalive_values),
		cmocka_unit_test(test_user_timeout),
		cmocka_unit_test(test_no_sigpipe),
	};
	return cmocka_run_group_tests_name("net_os", tests, NULL, NULL);
}
