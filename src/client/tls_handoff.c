/* The socket vhci_hcd gets after a TLS import: see tls_handoff.h. */
#include "client/tls_handoff.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int tls_handoff(struct import_result *res, int *vhci_fd, char *mode)
{
	*vhci_fd = -1;
	struct tls_conn *tls = res->tls;
	res->tls = NULL;
	if (!tls) {
		snprintf(mode, TLS_MODE_SIZE, "plaintext");
		*vhci_fd = res->fd;
		return 0;
	}
	int rc = tls_conn_ktls(tls);
	if (rc == 0) {
		tls_conn_free(tls); /* the keys live in the kernel now */
		snprintf(mode, TLS_MODE_SIZE, "kernel TLS");
		*vhci_fd = res->fd;
		return 0;
	}
	if (rc != -ENOENT && rc != -ENOTSUP) {
		tls_conn_free(tls);
		return rc;
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = -errno;
		tls_conn_free(tls);
		return rc;
	}
	rc = tls_relay_start(tls, res->fd, sp[1], true, NULL);
	if (rc < 0) {
		close(sp[0]);
		close(sp[1]);
		tls_conn_free(tls);
		return rc;
	}
	res->fd = -1;
	snprintf(mode, TLS_MODE_SIZE, "userspace relay");
	*vhci_fd = sp[0];
	return 0;
}
