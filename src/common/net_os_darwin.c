/* macOS: see net_os.h. Not built or run here (no macOS machine); the
 * option names are the SDK's <netinet/tcp.h>. */
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
	return 0; /* no MSG_NOSIGNAL: SO_NOSIGPIPE is set per socket */
}

int net_os_nosigpipe(int fd)
{
	return set_int(fd, SOL_SOCKET, SO_NOSIGPIPE, 1);
}

int net_os_keepalive(int fd, int idle_s, int intvl_s, int cnt)
{
	int rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (rc == 0)
		rc = set_int(fd, IPPROTO_TCP, TCP_KEEPALIVE, idle_s); /* Linux: TCP_KEEPIDLE */
#ifdef TCP_KEEPINTVL
	if (rc == 0)
		rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl_s);
#else
	(void)intvl_s;
#endif
#ifdef TCP_KEEPCNT
	if (rc == 0)
		rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt);
#else
	(void)cnt;
#endif
	return rc;
}

int net_os_user_timeout(int fd, int ms)
{
	/* TCP_RXT_CONNDROPTIME (seconds) is macOS's nearest equivalent. */
#ifdef TCP_RXT_CONNDROPTIME
	return set_int(fd, IPPROTO_TCP, TCP_RXT_CONNDROPTIME, (ms + 999) / 1000);
#else
	(void)fd;
	(void)ms;
	return -ENOTSUP;
#endif
}
