/* TLS 1.3 for both daemons (OpenSSL 3), shaped for a hand-off to the kernel.
 *
 * A context comes from a certificate, its key and a CA (the peer must show
 * a certificate that CA signed: both sides verify) or from a PSK file. Only
 * TLS 1.3, only AES-GCM (the ciphers Linux kernel TLS takes), no session
 * tickets and no key updates: after the handshake nothing but application
 * data flows, so the traffic keys and the record sequence numbers we track
 * are all the kernel needs to carry the connection on (tls_conn_ktls).
 *
 * OpenSSL 3.0 (Debian 12) has SSL_OP_ENABLE_KTLS, but for TLS 1.3 it only
 * offloads the sending side and does so itself right after the handshake;
 * the importing side needs both directions on a socket that vhci_hcd then
 * owns. So we take the secrets from the key log callback, derive key and IV
 * with HKDF-Expand-Label (RFC 8446 7.1, 7.3) and count records ourselves.
 *
 * A struct tls_conn is used by one thread at a time. It never closes the
 * socket it was given. Errors are negative errno; a text for the log goes
 * to err[TLS_ERR_SIZE] where a function takes one. */
#ifndef USBIP_NOTIFY_COMMON_TLS_H
#define USBIP_NOTIFY_COMMON_TLS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TLS_ERR_SIZE 256
#define TLS_IDENTITY_SIZE 256
#define TLS_PSK_MAX 64          /* bytes of key */
#define TLS_SECRET_MAX 48       /* SHA-384 */
#define TLS_KEY_MAX 32
#define TLS_IV_SIZE 12
#define TLS_RECORD_MAX 16384    /* plaintext bytes per record */

/* What the user configured; strings are not copied by tls_ctx_new. */
struct tls_options {
	const char *cert, *key, *ca; /* all three, or none */
	const char *psk_file;       /* "IDENTITY:HEXKEY" on one line */
	bool optional;              /* server: plaintext peers too (migration) */
};

/* Sets the option of that long name (tls-cert, tls-key, tls-ca,
 * tls-psk-file: arg is kept, not copied; tls-optional). False for another
 * name. Both daemons' option parsers share it. */
bool tls_options_set(struct tls_options *o, const char *name, const char *arg);

/* True when the options ask for TLS at all. */
bool tls_options_enabled(const struct tls_options *o);

/* Checks the combination (all of cert/key/ca or none; PSK or
 * certificates, not both). Returns NULL or a reason. */
const char *tls_options_check(const struct tls_options *o);

struct tls_ctx;
struct tls_ctx *tls_ctx_new(const struct tls_options *o, bool server, char *err);
void tls_ctx_free(struct tls_ctx *ctx);

/* The secret a direction's keys come from, as the key log gives it. */
struct tls_secret {
	uint8_t bytes[TLS_SECRET_MAX];
	size_t len;     /* 0: not seen yet */
};

/* One direction's traffic keys: what kernel TLS wants. */
struct tls_traffic {
	unsigned key_len;            /* 16 (AES-128-GCM) or 32 (AES-256-GCM) */
	uint8_t key[TLS_KEY_MAX];
	uint8_t iv[TLS_IV_SIZE];     /* the static IV; the nonce is iv ^ seq */
	uint64_t seq;                /* the next record's sequence number */
};

struct tls_conn;

/* Prepares the handshake on fd (run it with tls_conn_step). Both sides
 * require the peer's certificate (or the PSK); a client with certificates
 * also checks that the server's certificate names server_name (a DNS name
 * or an IP address; NULL: any name the CA signed). NULL on failure with
 * the reason in err; fd is left open either way. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, const char *server_name, char *err);

/* The whole handshake on a blocking fd (with the fd's timeouts). */
int tls_conn_handshake(struct tls_conn *c, char *err);

/* Non-blocking use: one step of the handshake. Returns 0 when done, the
 * poll events it waits for (POLLIN/POLLOUT) or a negative errno (reason in
 * err). A blocking fd makes the first call finish it. */
int tls_conn_step(struct tls_conn *c, char *err);

/* Peer identity: first DNS name of the certificate's subjectAltName, else
 * its CN, else the PSK identity. "" before the handshake is done. */
const char *tls_conn_peer(const struct tls_conn *c);
/* "TLS_AES_128_GCM_SHA256", ... */
const char *tls_conn_cipher(const struct tls_conn *c);

/* Application data after the handshake. read returns bytes (>0), 0 at the
 * peer's close, -EAGAIN on a non-blocking fd with nothing there, or
 * another negative errno. write_full writes all of buf (one record per
 * TLS_RECORD_MAX bytes); on a non-blocking fd -EAGAIN means: call again
 * with the same arguments. */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t n);
ssize_t tls_conn_read_full(struct tls_conn *c, void *buf, size_t n);
int tls_conn_write(struct tls_conn *c, const void *buf, size_t n);
/* Bytes decrypted and waiting inside OpenSSL. */
size_t tls_conn_pending(const struct tls_conn *c);

/* The keys of both directions at this point of the stream. -EPROTO when
 * something but application data was seen after the handshake or some was
 * read but not consumed (the kernel could not pick up from here). */
int tls_conn_traffic(const struct tls_conn *c, struct tls_traffic *tx, struct tls_traffic *rx);

/* Moves the connection into kernel TLS: both directions on c's socket,
 * which then reads and writes plaintext for anyone holding it. Returns 0,
 * or -ENOPROTOOPT/-ENOENT (no tls module), -ENOTSUP (no kernel TLS on this
 * OS or this cipher) or another negative errno; the connection is then
 * unusable unless the error came before anything was set (-ENOENT,
 * -ENOPROTOOPT, -ENOTSUP: the userspace path can go on). */
int tls_conn_ktls(struct tls_conn *c);

/* Frees OpenSSL's state (no close_notify: the socket may be the kernel's
 * now). Does not close the fd. NULL is fine. */
void tls_conn_free(struct tls_conn *c);

/* A relay: a thread that copies between the TLS connection and a local
 * socket (one end of a socketpair whose other end is the plaintext user:
 * vhci_hcd, or the server's session engine). It ends when either side
 * closes or fails, shutting both down. It owns c (freed at the end) and
 * local_fd and tcp_fd (closed at the end). Returns 0 or a negative errno
 * (then nothing is taken). detached: nobody joins it. */
struct tls_relay;
int tls_relay_start(struct tls_conn *c, int tcp_fd, int local_fd, bool detached,
		    struct tls_relay **out);
/* A client's stream through TLS for code that wants a plain socket (the
 * notify channel): the handshake on the connected, blocking fd (at most
 * timeout_ms), then a detached relay. Returns the plain end, the caller's
 * to close (the relay then ends and closes fd), or a negative errno with
 * the reason in err and fd still the caller's. */
int tls_client_stream(struct tls_ctx *ctx, int fd, const char *server_name, int timeout_ms,
		      char *err);

/* Makes a joinable relay end now (shuts its sockets down) and waits. */
void tls_relay_stop(struct tls_relay *r);

/* Pure parts, for tests: the HkdfLabel structure of RFC 8446 7.1 for
 * label ("key", "iv", ...; "tls13 " is prefixed) with an empty context;
 * returns its length or -EINVAL if out (n bytes) is too small. */
int tls_hkdf_label(uint16_t out_len, const char *label, uint8_t *out, size_t n);

/* HKDF-Expand-Label(secret, label, "", out_len) with sha256 or sha384. */
int tls_expand_label(bool sha384, const uint8_t *secret, size_t secret_len, const char *label,
		     uint8_t *out, size_t out_len);

/* Parses one key log line "LABEL CLIENT_RANDOM_HEX SECRET_HEX"; returns 0
 * and fills label (up to label_size) and secret, or -EINVAL. */
int tls_keylog_parse(const char *line, char *label, size_t label_size, struct tls_secret *secret);

/* Parses a PSK file's text "IDENTITY:HEXKEY" (a trailing newline is fine).
 * Returns 0 or -EINVAL. */
int tls_psk_parse(const char *text, char *identity, size_t identity_size, uint8_t *key,
		  size_t *key_len);

/* Does the first byte of a connection look like a TLS handshake record?
 * (USB/IP and notify requests start otherwise.) */
static inline bool tls_looks_like_handshake(uint8_t first)
{
	return first == 0x16;
}

#endif
