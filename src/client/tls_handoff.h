/* After an import through TLS: the socket vhci_hcd gets.
 *
 * First choice, kernel TLS: the session's keys go onto the connection
 * (common/tls.h, tls_conn_ktls) and vhci_hcd gets the connection itself, so
 * its own sendmsg/recvmsg are encrypted by the kernel with no copy through
 * us. Where the kernel has no tls module or refuses the cipher, a relay:
 * vhci_hcd gets one end of a local socket pair and a detached thread of ours
 * carries the other end through userspace TLS until either side closes. */
#ifndef USBIP_NOTIFY_CLIENT_TLS_HANDOFF_H
#define USBIP_NOTIFY_CLIENT_TLS_HANDOFF_H

#include "client/import.h"

#define TLS_MODE_SIZE 24

/* Takes res->tls (NULL: plaintext, *vhci_fd = res->fd). On success
 * *vhci_fd is the socket for vhci's attach, to be closed by the caller
 * after the attach (also when it fails: a relay then ends), and mode says
 * "kernel TLS", "userspace relay" or "plaintext". The relay, when there
 * is one, owns res->fd from then on (res->fd becomes -1). On failure
 * res->fd is still the caller's and the connection is unusable. Returns 0
 * or a negative errno. */
int tls_handoff(struct import_result *res, int *vhci_fd, char *mode);

#endif
