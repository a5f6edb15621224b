/* No kernel TLS on this OS: the userspace relay carries the connection. */
#include <errno.h>

#include "common/tls_internal.h"

int tls_ktls_install(int fd, const struct tls_traffic *tx, const struct tls_traffic *rx)
{
	(void)fd;
	(void)tx;
	(void)rx;
	return -ENOTSUP;
}
