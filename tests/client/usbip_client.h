/* A userspace USB/IP client, for the server's tests and for humans.
 *
 * It speaks the client side of the protocol over one TCP connection:
 * OP_REQ_DEVLIST, OP_REQ_IMPORT, then CMD_SUBMIT / CMD_UNLINK and their
 * replies. All wire work goes through src/proto/usbip_codec.h.
 *
 * The client is as strict as the kernel's vhci_hcd, and stricter where that
 * helps to catch server bugs: a reply for a seqnum it has no request
 * outstanding for, a RET_SUBMIT whose lengths or iso descriptors do not fit
 * the URB it answers, or an unknown command is a protocol error. After a
 * protocol error, or a timeout in the middle of a message, the byte stream
 * can no longer be trusted: the connection is marked broken and every later
 * call except uc_close() returns UC_E_BROKEN.
 *
 * Errors are negative host errno values (this is test code on the host, not
 * a wire value), named below. uc_strerror() turns one into words and
 * uc_last_error() tells what exactly went wrong on a connection.
 *
 * Threading: a connection is used by one thread at a time; nothing here
 * locks. There is no global state, so a test may open many connections. */
#ifndef USBIP_NOTIFY_TESTS_CLIENT_USBIP_CLIENT_H
#define USBIP_NOTIFY_TESTS_CLIENT_USBIP_CLIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

/* Error codes. Besides these, socket calls may return their own -errno. */
#define UC_E_INVAL (-EINVAL)        /* bad argument from the caller */
#define UC_E_NOMEM (-ENOMEM)        /* out of memory */
#define UC_E_TIMEOUT (-ETIMEDOUT)   /* nothing arrived (or could be sent) in time */
#define UC_E_CLOSED (-ECONNRESET)   /* the server closed or reset the connection */
#define UC_E_PROTO (-EPROTO)        /* the server sent something invalid */
#define UC_E_STATUS (-EREMOTEIO)    /* an op reply carried a status other than OK */
#define UC_E_BROKEN (-ENOTCONN)     /* connection unusable after an earlier error */
#define UC_E_SEQNUM (-EEXIST)       /* seqnum already has a request outstanding */
#define UC_E_TOO_MANY (-ENOSPC)     /* UC_MAX_OUTSTANDING requests outstanding */
#define UC_E_RESOLVE (-EADDRNOTAVAIL) /* host or port did not resolve */

/* Bound on requests (submits and unlinks) awaiting their reply. */
#define UC_MAX_OUTSTANDING 4096u

struct uc_conn;

/* Words for an error code from this library (or any -errno). */
const char *uc_strerror(int err);

/* ---- Connection -------------------------------------------------------- */

/* Connects to host:port over TCP (IPv4 or IPv6, whatever getaddrinfo
 * returns first that answers), with TCP_NODELAY. timeout_ms bounds the
 * connect and becomes the connection's I/O timeout: how long uc_devlist and
 * uc_import wait for their reply, how long a send may stall, and how long
 * the rest of a message may take once its first byte has arrived. A negative
 * timeout_ms waits forever. On success *out owns a new connection.
 * Returns 0, UC_E_RESOLVE, UC_E_TIMEOUT, UC_E_INVAL or the connect -errno
 * (e.g. -ECONNREFUSED). */
int uc_connect(const char *host, const char *port, int timeout_ms, struct uc_conn **out);

/* Wraps an already connected stream socket (a socketpair end, say). Takes
 * ownership of fd whatever the outcome: it is closed on failure. */
int uc_adopt_fd(int fd, int timeout_ms, struct uc_conn **out);

/* Closes the socket and frees everything; NULL is fine. */
void uc_close(struct uc_conn *conn);

/* The socket, e.g. for shutdown() in a test or poll(). Still owned by conn. */
int uc_fd(const struct uc_conn *conn);

/* What went wrong last on this connection, e.g. "RET_SUBMIT for unknown
 * seqnum 7"; "" when nothing did. Valid until the next call on conn. */
const char *uc_last_error(const struct uc_conn *conn);

/* ---- Operations (before import) ---------------------------------------- */

/* Sends OP_REQ_DEVLIST and reads the whole OP_REP_DEVLIST (head, then each
 * device record and its interfaces, every count bounded by the codec's
 * maxima) before calling cb once per device, so the callback never sees a
 * device of a malformed reply. The interface array is valid only during the
 * callback. A nonzero return from cb stops the walk and is returned.
 * Returns 0, UC_E_STATUS (status not OK), UC_E_PROTO, UC_E_TIMEOUT,
 * UC_E_CLOSED, UC_E_BROKEN or another -errno. The Linux server closes the
 * connection after this reply; other servers may not. */
int uc_devlist(struct uc_conn *conn, usbip_devlist_cb cb, void *ctx);

/* Sends OP_REQ_IMPORT for busid and reads the reply. *op_status (may be
 * NULL) receives the reply's status whenever a well-formed reply arrived.
 * On success *out (may be NULL) receives the device record, whose busid is
 * checked to equal the requested one as the kernel's client does, and the
 * connection remembers devid = busnum << 16 | devnum (uc_devid()).
 * Returns 0, UC_E_INVAL (busid empty or too long), UC_E_STATUS (the server
 * refused: see *op_status), UC_E_PROTO (wrong reply or busid mismatch),
 * UC_E_TIMEOUT, UC_E_CLOSED, UC_E_BROKEN or another -errno. */
int uc_import(struct uc_conn *conn, const char *busid, uint32_t *op_status,
	      struct usbip_device_record *out);

/* devid of the imported device; 0 before a successful uc_import. */
uint32_t uc_devid(const struct uc_conn *conn);

/* ---- URBs (after import) ----------------------------------------------- */

/* One CMD_SUBMIT. The caller picks seqnums; they must be unique among the
 * requests outstanding on the connection. */
struct uc_urb {
	uint32_t seqnum;
	uint32_t devid;                  /* usually uc_devid(conn) */
	uint32_t direction;              /* USBIP_DIR_OUT or USBIP_DIR_IN */
	uint32_t ep;                     /* endpoint number 0..15, no direction bit */
	uint32_t transfer_flags;         /* USBIP_URB_* */
	uint32_t buffer_length;          /* <= USBIP_MAX_TRANSFER_LENGTH */
	int32_t start_frame;
	uint32_t number_of_packets;      /* 0 or USBIP_NO_ISO_PACKETS when not iso */
	int32_t interval;
	uint8_t setup[USBIP_SETUP_SIZE]; /* USB order (little-endian fields) */
	const uint8_t *out_data;         /* OUT: buffer_length bytes; unused for IN */
	const struct usbip_iso_desc *iso; /* usbip_iso_count(number_of_packets) of them */
};

/* Validates and sends one CMD_SUBMIT (header, OUT data, iso descriptors)
 * in one piece, and records the seqnum as outstanding with what uc_recv
 * needs to read its reply. The structure and its buffers are only read
 * during the call. Returns 0, UC_E_INVAL (direction, ep, lengths, iso
 * descriptors outside the buffer, missing out_data), UC_E_SEQNUM,
 * UC_E_TOO_MANY, UC_E_NOMEM, UC_E_TIMEOUT, UC_E_CLOSED, UC_E_BROKEN or
 * another -errno. A send that fails after some bytes went out breaks the
 * connection. */
int uc_submit(struct uc_conn *conn, const struct uc_urb *urb);

/* Sends CMD_UNLINK with its own seqnum, asking to unlink victim_seqnum,
 * which need not be outstanding (servers must cope with that). devid is
 * uc_devid(conn). Same returns as uc_submit. */
int uc_unlink(struct uc_conn *conn, uint32_t seqnum, uint32_t victim_seqnum);

/* Sends bytes as they are, e.g. a malformed message; nothing is recorded,
 * so a reply to it will read as a protocol error. Returns 0 or as uc_submit. */
int uc_send_raw(struct uc_conn *conn, const void *bytes, size_t n);

/* Number of submits and unlinks still waiting for their reply. */
size_t uc_outstanding(const struct uc_conn *conn);

/* One reply, as uc_recv fills it. Owns data and iso: uc_reply_free(). */
struct uc_reply {
	struct usbip_header hdr;         /* as decoded (devid/direction/ep included) */
	uint32_t command;                /* USBIP_RET_SUBMIT or USBIP_RET_UNLINK */
	uint32_t seqnum;
	int32_t status;                  /* 0 or a negative Linux errno (LNX_*) */

	/* RET_SUBMIT */
	bool dir_in;                     /* the URB it answers was IN */
	uint32_t actual_length;
	uint8_t *data;                   /* IN data, NULL when none */
	uint32_t data_len;               /* non-iso: actual_length; iso IN: the URB's
					  * buffer_length, each packet's bytes expanded
					  * back to its offset, zeros elsewhere */
	uint32_t iso_count;
	struct usbip_iso_desc *iso;      /* iso_count descriptors, NULL when none */

	/* RET_UNLINK */
	uint32_t victim_seqnum;          /* the seqnum the unlink asked for */
	bool victim_was_pending;         /* its RET_SUBMIT had not arrived: as in
					  * vhci, the unlink reply completes it and a
					  * later RET_SUBMIT for it is a protocol error */
};

/* Reads the next RET_SUBMIT or RET_UNLINK completely and matches it to its
 * outstanding request, which is then no longer outstanding. timeout_ms
 * bounds the wait for the message's first byte (negative: forever, 0: only
 * what has already arrived); the rest must follow within the connection's
 * I/O timeout. On success *out holds the reply (free it with
 * uc_reply_free); on failure *out holds nothing to free.
 * Returns 0, UC_E_TIMEOUT (nothing arrived: the connection stays usable;
 * mid-message: it breaks), UC_E_CLOSED (the server closed the connection,
 * possibly mid-message), UC_E_PROTO (the connection breaks), UC_E_NOMEM,
 * UC_E_BROKEN or another -errno. */
int uc_recv(struct uc_conn *conn, struct uc_reply *out, int timeout_ms);

/* Frees what a reply owns and zeroes it; NULL is fine. */
void uc_reply_free(struct uc_reply *reply);

#endif
