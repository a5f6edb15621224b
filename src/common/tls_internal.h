/* What the TLS module's files share; not for other code. */
#ifndef USBIP_NOTIFY_COMMON_TLS_INTERNAL_H
#define USBIP_NOTIFY_COMMON_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "common/tls.h"

struct tls_ctx {
	SSL_CTX *ssl;
	bool server;
	bool psk_mode;
	char psk_identity[TLS_IDENTITY_SIZE];
	uint8_t psk[TLS_PSK_MAX];
	size_t psk_len;
};

struct tls_conn {
	struct tls_ctx *ctx;
	SSL *ssl;
	int fd;
	bool done;                  /* handshake finished */
	char peer[TLS_IDENTITY_SIZE];
	struct tls_secret client_secret, server_secret;
	/* Records of the application epoch so far: the next sequence numbers. */
	uint64_t tx_records, rx_records;
	bool not_data;              /* a non-application record in that epoch */
};

/* Per OS (tls_ktls_linux.c, tls_ktls_none.c): installs both directions. */
int tls_ktls_install(int fd, const struct tls_traffic *tx, const struct tls_traffic *rx);

#endif
