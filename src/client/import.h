/* OP_REQ_IMPORT from the client's side: the handshake that turns a TCP
 * connection into a USB/IP session the kernel's vhci_hcd can take over.
 *
 * The result's fd is owned by the caller: hand it to vhci_attach(), then
 * close it (the kernel holds its own reference to the socket). */
#ifndef USBIP_NOTIFY_CLIENT_IMPORT_H
#define USBIP_NOTIFY_CLIENT_IMPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/tls.h"
#include "proto/usbip_codec.h"

#define IMPORT_DEFAULT_TIMEOUT_MS 5000

struct import_result {
	int fd;                          /* connected, imported session socket */
	struct usbip_device_record dev;  /* as the server described it */
	uint32_t devid;                  /* busnum << 16 | devnum */
	int64_t connected_ns;            /* CLOCK_MONOTONIC: TCP connected */
	int64_t replied_ns;              /* CLOCK_MONOTONIC: whole reply read */
	/* With TLS: the connection, the caller's (tls_handoff), else NULL. */
	struct tls_conn *tls;
};

/* CLOCK_MONOTONIC in nanoseconds, the clock of the *_ns fields. */
int64_t import_now_ns(void);

/* One import without blocking, so that several can overlap in one poll
 * loop: import_begin starts a non-blocking connect to addr, then the
 * caller polls op->fd for import_events(op) and calls import_advance with
 * what poll returned (or 0 on a timeout) until it returns true. Then
 * op->err is 0 with op->res filled (res.fd is the caller's, in blocking
 * mode) or a negative errno as import_device returns it, with nothing left
 * open. op->connect_failed tells that the error came before the TCP
 * connection was up (another address may do better). import_abort closes
 * an unfinished op. The struct is the caller's; nothing is allocated. */
enum import_stage {
	IMPORT_CONNECTING,
	IMPORT_TLS,      /* the TLS handshake (import_begin_tls) */
	IMPORT_SENDING,
	IMPORT_READING,
	IMPORT_DONE,
};

struct import_op {
	char busid[USBIP_BUSID_SIZE];
	int fd;
	enum import_stage stage;
	int64_t deadline_ms;             /* net_now_ms() clock */
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	size_t req_off;
	uint8_t rep[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
	size_t rep_got;
	size_t rep_want;
	int err;
	int op_status;                   /* the server's status, -1 if none */
	bool connect_failed;
	struct import_result res;
	struct tls_ctx *tls_ctx;         /* NULL: plaintext */
	struct tls_conn *tls_conn;       /* during the op; then res.tls */
	const char *server_name;         /* the name the certificate must bear */
	short tls_events;                /* what the TLS layer waits for */
	char tls_err[TLS_ERR_SIZE];      /* why TLS failed (err is -EPROTO then) */
};

/* Returns false when the op is already done (op->err says why). */
bool import_begin(struct import_op *op, const struct sockaddr *addr, socklen_t addrlen,
		  const char *busid, int timeout_ms);
/* The same through TLS (tls NULL: plaintext): the handshake, then the
 * request and reply as TLS records; res.tls is the connection after. The
 * server's certificate must name server_name (not copied; NULL: any). */
bool import_begin_tls(struct import_op *op, const struct sockaddr *addr, socklen_t addrlen,
		      const char *busid, int timeout_ms, struct tls_ctx *tls,
		      const char *server_name);
short import_events(const struct import_op *op);
/* Milliseconds until the op's deadline from now_ms (net_now_ms), >= 0. */
int import_wait_ms(const struct import_op *op, int64_t now_ms);
bool import_advance(struct import_op *op, short revents);
void import_abort(struct import_op *op);

/* Connects to host:port, imports busid (which must be valid) and checks the
 * reply: version, code, status, and that the returned busid is the one we
 * asked for and the speed is one vhci takes. Returns 0 and fills out, or a
 * negative errno with nothing left open:
 *   -EBUSY      the server says the device is imported by someone else
 *   -ENODEV     no such exported device (or not available)
 *   -EIO        the server failed to open it (DEV_ERR / ERROR)
 *   -EPROTO     a malformed or mismatching reply
 *   -ETIMEDOUT, -ECONNREFUSED, ... from the network
 *   -ECANCELED  cancel_fd became readable
 * *op_status (may be NULL) gets the server's status, or -1 if none came. */
int import_device(const char *host, const char *port, const char *busid, int timeout_ms,
		  int cancel_fd, struct import_result *out, int *op_status);
/* The same through TLS (tls NULL: plaintext); the certificate must name
 * host. A failed handshake is -EPROTO with the reason in tls_err. */
int import_device_tls(const char *host, const char *port, const char *busid, int timeout_ms,
		      int cancel_fd, struct tls_ctx *tls, struct import_result *out,
		      int *op_status, char *tls_err);

/* Words for an op status: "busy (imported by another client)", ... */
const char *import_status_str(uint32_t status);


#endif
