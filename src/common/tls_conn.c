/* TLS contexts and connections over OpenSSL 3 (see tls.h for the shape). */
#include "common/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/tls_internal.h"

bool tls_options_enabled(const struct tls_options *o)
{
	return (o->cert && *o->cert) || (o->key && *o->key) || (o->ca && *o->ca) ||
	       (o->psk_file && *o->psk_file);
}

bool tls_options_set(struct tls_options *o, const char *name, const char *arg)
{
	static const struct {
		const char *name;
		size_t field;
	} files[] = {
		{ "tls-cert", offsetof(struct tls_options, cert) },
		{ "tls-key", offsetof(struct tls_options, key) },
		{ "tls-ca", offsetof(struct tls_options, ca) },
		{ "tls-psk-file", offsetof(struct tls_options, psk_file) },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (strcmp(name, files[i].name) == 0) {
			*(const char **)((char *)o + files[i].field) = arg;
			return true;
		}
	if (strcmp(name, "tls-optional") == 0) {
		o->optional = true;
		return true;
	}
	return false;
}

const char *tls_options_check(const struct tls_options *o)
{
	bool cert = o->cert && *o->cert, key = o->key && *o->key, ca = o->ca && *o->ca;
	bool psk = o->psk_file && *o->psk_file;
	if ((cert || key || ca) && !(cert && key && ca))
		return "--tls-cert, --tls-key and --tls-ca go together";
	if (psk && cert)
		return "--tls-psk-file or certificates, not both";
	if (o->optional && !cert && !psk)
		return "--tls-optional needs TLS configured";
	return NULL;
}

/* OpenSSL's reasons, joined, for err. */
static void ssl_reason(char *err, const char *what)
{
	char buf[160] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	if (err)
		snprintf(err, TLS_ERR_SIZE, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static int conn_index = -1;
static pthread_once_t conn_index_once = PTHREAD_ONCE_INIT;

static void make_conn_index(void)
{
	conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct tls_conn *conn_of(const SSL *ssl)
{
	return SSL_get_ex_data(ssl, conn_index);
}

/* The two application traffic secrets, the only ones we keep. */
static void on_keylog(const SSL *ssl, const char *line)
{
	struct tls_conn *c = conn_of(ssl);
	char label[40];
	struct tls_secret s;
	if (!c || tls_keylog_parse(line, label, sizeof(label), &s) < 0)
		return;
	if (strcmp(label, "CLIENT_TRAFFIC_SECRET_0") == 0)
		c->client_secret = s;
	else if (strcmp(label, "SERVER_TRAFFIC_SECRET_0") == 0)
		c->server_secret = s;
	OPENSSL_cleanse(&s, sizeof(s));
}

/* Counts the records of the application epoch, by inner content type:
 * their number is the next sequence number, and anything but application
 * data there means the kernel could not take over. */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	(void)version;
	(void)arg;
	struct tls_conn *c = conn_of(ssl);
	if (!c || !c->done || content_type != SSL3_RT_INNER_CONTENT_TYPE || len != 1)
		return;
	uint8_t type = *(const uint8_t *)buf;
	if (write_p)
		c->tx_records++;
	else
		c->rx_records++;
	if (type != SSL3_RT_APPLICATION_DATA)
		c->not_data = true;
}

static unsigned psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
			      unsigned max_len)
{
	struct tls_conn *c = conn_of(ssl);
	const struct tls_ctx *ctx = c ? c->ctx : NULL;
	if (!ctx || !identity || strcmp(identity, ctx->psk_identity) != 0 ||
	    ctx->psk_len > max_len)
		return 0;
	memcpy(psk, ctx->psk, ctx->psk_len);
	snprintf(c->peer, sizeof(c->peer), "%s", identity);
	return (unsigned)ctx->psk_len;
}

static unsigned psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned max_id,
			      unsigned char *psk, unsigned max_len)
{
	(void)hint;
	struct tls_conn *c = conn_of(ssl);
	const struct tls_ctx *ctx = c ? c->ctx : NULL;
	if (!ctx || strlen(ctx->psk_identity) + 1 > max_id || ctx->psk_len > max_len)
		return 0;
	memcpy(identity, ctx->psk_identity, strlen(ctx->psk_identity) + 1);
	memcpy(psk, ctx->psk, ctx->psk_len);
	snprintf(c->peer, sizeof(c->peer), "%s", ctx->psk_identity);
	return (unsigned)ctx->psk_len;
}

static int load_psk(struct tls_ctx *ctx, const char *path, char *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, TLS_ERR_SIZE, "%s: %s", path, strerror(errno));
		return -errno;
	}
	char text[2 * TLS_PSK_MAX + TLS_IDENTITY_SIZE + 8];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	int more = fgetc(f);
	fclose(f);
	text[n] = '\0';
	int rc = more == EOF ? tls_psk_parse(text, ctx->psk_identity, sizeof(ctx->psk_identity),
					     ctx->psk, &ctx->psk_len)
			     : -EINVAL;
	OPENSSL_cleanse(text, sizeof(text));
	if (rc < 0)
		snprintf(err, TLS_ERR_SIZE,
			 "%s: not one line IDENTITY:HEXKEY (16 to 64 bytes of key)", path);
	return rc;
}

struct tls_ctx *tls_ctx_new(const struct tls_options *o, bool server, char *err)
{
	const char *why = tls_options_check(o);
	if (why || !tls_options_enabled(o)) {
		snprintf(err, TLS_ERR_SIZE, "%s", why ? why : "no TLS configured");
		return NULL;
	}
	pthread_once(&conn_index_once, make_conn_index);
	struct tls_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, TLS_ERR_SIZE, "out of memory");
		return NULL;
	}
	ctx->server = server;
	ctx->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx->ssl) {
		ssl_reason(err, "cannot make a TLS context");
		goto err_free;
	}
	SSL_CTX *s = ctx->ssl;
	/* Only what kernel TLS can carry on, and nothing after the handshake. */
	if (!SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(s, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384") ||
	    !SSL_CTX_set_num_tickets(s, 0)) {
		ssl_reason(err, "cannot restrict TLS to 1.3 with AES-GCM");
		goto err_free;
	}
	SSL_CTX_set_options(s, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF |
				       SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_keylog_callback(s, on_keylog);
	SSL_CTX_set_msg_callback(s, on_msg);
	SSL_CTX_set_mode(s, SSL_MODE_AUTO_RETRY);

	if (o->psk_file && *o->psk_file) {
		if (load_psk(ctx, o->psk_file, err) < 0)
			goto err_free;
		ctx->psk_mode = true;
		if (server)
			SSL_CTX_set_psk_server_callback(s, psk_server_cb);
		else
			SSL_CTX_set_psk_client_callback(s, psk_client_cb);
		/* The PSK callbacks' key is for SHA-256 suites. */
		SSL_CTX_set_ciphersuites(s, "TLS_AES_128_GCM_SHA256");
		return ctx;
	}
	if (SSL_CTX_use_certificate_chain_file(s, o->cert) != 1) {
		ssl_reason(err, "cannot load the certificate (--tls-cert)");
		goto err_free;
	}
	if (SSL_CTX_use_PrivateKey_file(s, o->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(s) != 1) {
		ssl_reason(err, "cannot load the key or it does not match the certificate "
				"(--tls-key)");
		goto err_free;
	}
	if (SSL_CTX_load_verify_locations(s, o->ca, NULL) != 1) {
		ssl_reason(err, "cannot load the CA certificate (--tls-ca)");
		goto err_free;
	}
	if (server) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
		if (names)
			SSL_CTX_set_client_CA_list(s, names);
	}
	SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;

err_free:
	tls_ctx_free(ctx);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl);
	OPENSSL_cleanse(ctx->psk, sizeof(ctx->psk));
	free(ctx);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, const char *server_name, char *err)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, TLS_ERR_SIZE, "out of memory");
		return NULL;
	}
	c->ctx = ctx;
	c->fd = fd;
	c->ssl = SSL_new(ctx->ssl);
	if (!c->ssl || !SSL_set_fd(c->ssl, fd) || !SSL_set_ex_data(c->ssl, conn_index, c)) {
		ssl_reason(err, "cannot start TLS");
		goto err_free;
	}
	if (ctx->server) {
		SSL_set_accept_state(c->ssl);
	} else {
		SSL_set_connect_state(c->ssl);
		if (server_name && *server_name && !ctx->psk_mode) {
			struct in6_addr a;
			X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
			bool ip = inet_pton(AF_INET, server_name, &a) == 1 ||
				  inet_pton(AF_INET6, server_name, &a) == 1;
			if (!(ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, server_name)
				 : X509_VERIFY_PARAM_set1_host(vp, server_name, 0))) {
				ssl_reason(err, "bad server name");
				goto err_free;
			}
			if (!ip)
				SSL_set_tlsext_host_name(c->ssl, server_name);
		}
	}
	return c;

err_free:
	SSL_free(c->ssl);
	free(c);
	return NULL;
}

/* Keeps printable ASCII: the identity goes to logs and rules. */
static void set_identity(char *out, size_t n, const unsigned char *s, size_t len)
{
	size_t i;
	for (i = 0; i < len && i + 1 < n; i++)
		out[i] = s[i] > 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	out[i] = '\0';
}

static void peer_identity(struct tls_conn *c)
{
	if (c->ctx->psk_mode)
		return; /* set by the PSK callback */
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	if (!cert)
		return;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !c->peer[0]; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type == GEN_DNS)
			set_identity(c->peer, sizeof(c->peer), ASN1_STRING_get0_data(gn->d.dNSName),
				     (size_t)ASN1_STRING_length(gn->d.dNSName));
	}
	GENERAL_NAMES_free(names);
	if (!c->peer[0]) {
		char cn[TLS_IDENTITY_SIZE];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
						  sizeof(cn));
		if (n > 0)
			set_identity(c->peer, sizeof(c->peer), (const unsigned char *)cn,
				     (size_t)n);
	}
	X509_free(cert);
}

int tls_conn_step(struct tls_conn *c, char *err)
{
	if (c->done)
		return 0;
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->done = true;
		peer_identity(c);
		return 0;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return POLLIN;
	if (e == SSL_ERROR_WANT_WRITE)
		return POLLOUT;
	long v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK) {
		snprintf(err, TLS_ERR_SIZE, "TLS handshake failed: certificate: %s",
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
		snprintf(err, TLS_ERR_SIZE, "TLS handshake failed: %s",
			 errno ? strerror(errno) : "connection closed by the peer");
	} else {
		ssl_reason(err, "TLS handshake failed");
	}
	return -EPROTO;
}

int tls_conn_handshake(struct tls_conn *c, char *err)
{
	int rc = tls_conn_step(c, err);
	return rc > 0 ? -ETIMEDOUT : rc; /* a blocking fd wants more: its timeout struck */
}

const char *tls_conn_peer(const struct tls_conn *c)
{
	return c->done ? c->peer : "";
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
	return ci ? SSL_CIPHER_get_name(ci) : "none";
}

/* Maps a failed SSL_read/SSL_write to a return value. */
static int io_error(struct tls_conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_SYSCALL:
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : errno ? -errno : -EPIPE;
	default:
		return -EPROTO;
	}
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t n)
{
	size_t got = 0;
	ERR_clear_error();
	int r = SSL_read_ex(c->ssl, buf, n, &got);
	return r == 1 ? (ssize_t)got : io_error(c, r);
}

ssize_t tls_conn_read_full(struct tls_conn *c, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = tls_conn_read(c, (uint8_t *)buf + got, n - got);
		if (r <= 0)
			return r == 0 ? (ssize_t)got : r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int tls_conn_write(struct tls_conn *c, const void *buf, size_t n)
{
	size_t done = 0;
	ERR_clear_error();
	int r = SSL_write_ex(c->ssl, buf, n, &done);
	if (r == 1)
		return 0;
	r = io_error(c, r);
	return r == 0 ? -EPIPE : r;
}

size_t tls_conn_pending(const struct tls_conn *c)
{
	return (size_t)SSL_pending(c->ssl);
}

static int derive(const struct tls_conn *c, const struct tls_secret *s, uint64_t seq,
		  struct tls_traffic *out)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
	uint32_t id = ci ? SSL_CIPHER_get_id(ci) & 0xffff : 0;
	bool sha384;
	if (id == 0x1301) {
		out->key_len = 16;
		sha384 = false;
	} else if (id == 0x1302) {
		out->key_len = 32;
		sha384 = true;
	} else {
		return -ENOTSUP;
	}
	if (s->len != (sha384 ? 48u : 32u))
		return -EPROTO;
	out->seq = seq;
	if (tls_expand_label(sha384, s->bytes, s->len, "key", out->key, out->key_len) < 0 ||
	    tls_expand_label(sha384, s->bytes, s->len, "iv", out->iv, TLS_IV_SIZE) < 0)
		return -EPROTO;
	return 0;
}

int tls_conn_traffic(const struct tls_conn *c, struct tls_traffic *tx, struct tls_traffic *rx)
{
	if (!c->done || c->not_data || SSL_pending(c->ssl) > 0 || SSL_has_pending(c->ssl))
		return -EPROTO;
	bool server = c->ctx->server;
	int rc = derive(c, server ? &c->server_secret : &c->client_secret, c->tx_records, tx);
	if (rc == 0)
		rc = derive(c, server ? &c->client_secret : &c->server_secret, c->rx_records, rx);
	return rc;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

int tls_conn_ktls(struct tls_conn *c)
{
	struct tls_traffic tx, rx;
	int rc = tls_conn_traffic(c, &tx, &rx);
	if (rc == 0)
		rc = tls_ktls_install(c->fd, &tx, &rx);
	OPENSSL_cleanse(&tx, sizeof(tx));
	OPENSSL_cleanse(&rx, sizeof(rx));
	return rc == -EPROTO ? -ENOTSUP : rc; /* -EPROTO: nothing was set */
}
