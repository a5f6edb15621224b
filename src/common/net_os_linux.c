/* Linux (and other systems with the Linux option names): see net_os.h. */
#include "common/net_os.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int set_int(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

int net_os_send_flags(void)
{
#ifdef MSG_NOSIGNAL
	return MSG_NOSIGNAL;
#else
	return 0;
#endif
}

int net_os_nosigpipe(int fd)
{
	(void)fd; /* MSG_NOSIGNAL on every send does it */
	return 0;
}

int net_os_keepalive(int fd, int idle_s, int intvl_s, int cnt)
{
	int rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (rc == 0)
		rc = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
	if (rc == 0)
		rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl_s);
	if (rc == 0)
		rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt);
	return rc;
}

int net_os_user_timeout(int fd, int ms)
{
#ifdef TCP_USER_TIMEOUT
	return set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, ms);
#else
	(void)fd;
	(void)ms;
	return -ENOTSUP;
#endif
}
