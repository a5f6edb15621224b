/* Linux kernel TLS: the "tls" upper layer protocol and one crypto_info per
 * direction (Documentation/networking/tls.rst). TLS 1.3 takes the first 4
 * bytes of the static IV as the "salt" and the other 8 as the "iv". */
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "common/tls_internal.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

union crypto_info {
	struct tls12_crypto_info_aes_gcm_128 g128;
	struct tls12_crypto_info_aes_gcm_256 g256;
};

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

#define FILL(ci, t, type)                                                   \
	do {                                                                \
		(ci).info.version = TLS_1_3_VERSION;                        \
		(ci).info.cipher_type = (type);                             \
		memcpy((ci).key, (t)->key, sizeof((ci).key));               \
		memcpy((ci).salt, (t)->iv, sizeof((ci).salt));              \
		memcpy((ci).iv, (t)->iv + sizeof((ci).salt), sizeof((ci).iv)); \
		put_be64((ci).rec_seq, (t)->seq);                           \
	} while (0)

static socklen_t fill(union crypto_info *ci, const struct tls_traffic *t)
{
	memset(ci, 0, sizeof(*ci));
	if (t->key_len == 16) {
		FILL(ci->g128, t, TLS_CIPHER_AES_GCM_128);
		return sizeof(ci->g128);
	}
	FILL(ci->g256, t, TLS_CIPHER_AES_GCM_256);
	return sizeof(ci->g256);
}

int tls_ktls_install(int fd, const struct tls_traffic *tx, const struct tls_traffic *rx)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
		/* ENOENT: no tls module; the socket is untouched. */
		int e = errno;
		return e == ENOENT || e == ENOPROTOOPT || e == EOPNOTSUPP ? -ENOENT : -e;
	}
	union crypto_info ci;
	socklen_t len = fill(&ci, tx);
	/* A tls layer with no keys passes data through unchanged, so a
	 * refused TLS_TX (a cipher this kernel lacks) still leaves a working
	 * socket; a refused TLS_RX after TLS_TX does not. */
	int rc = setsockopt(fd, SOL_TLS, TLS_TX, &ci, len) < 0 ? -ENOTSUP : 0;
	if (rc == 0) {
		len = fill(&ci, rx);
		rc = setsockopt(fd, SOL_TLS, TLS_RX, &ci, len) < 0 ? -errno : 0;
		if (rc == -ENOENT || rc == -ENOTSUP)
			rc = -EIO;
	}
	memset(&ci, 0, sizeof(ci));
	return rc;
}
