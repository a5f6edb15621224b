/* The TLS module: the key schedule pieces against RFC 8448, the file
 * formats, and the traffic keys of a live connection, proved by doing with
 * them what kernel TLS does: decrypting and encrypting raw records that
 * OpenSSL then accepts (so sequence numbers and IV layout are right on a
 * host without the tls module too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/tls.h"

static void unhex(const char *s, uint8_t *out)
{
	for (size_t i = 0; s[2 * i]; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static void test_hkdf_label(void **state)
{
	(void)state;
	uint8_t buf[32];
	static const uint8_t want[] = { 0x00, 0x10, 0x09, 't', 'l', 's', '1', '3', ' ',
					'k',  'e',  'y',  0x00 };
	assert_int_equal(tls_hkdf_label(16, "key", buf, sizeof(buf)), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(tls_hkdf_label(16, "key", buf, 12), -EINVAL);
}

/* RFC 8448 section 3, the server's handshake traffic key and IV. */
static void test_expand_label_rfc8448(void **state)
{
	(void)state;
	uint8_t secret[32], want_key[16], want_iv[12], key[16], iv[12];
	unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38", secret);
	unhex("3fce516009c21727d0f2e4e86ee403bc", want_key);
	unhex("5d313eb2671276ee13000b30", want_iv);
	assert_int_equal(tls_expand_label(false, secret, 32, "key", key, 16), 0);
	assert_int_equal(tls_expand_label(false, secret, 32, "iv", iv, 12), 0);
	assert_memory_equal(key, want_key, 16);
	assert_memory_equal(iv, want_iv, 12);
}

static void test_keylog_parse(void **state)
{
	(void)state;
	char label[40];
	struct tls_secret s;
	assert_int_equal(tls_keylog_parse("CLIENT_TRAFFIC_SECRET_0 00ff 0a0B0c\n", label,
					  sizeof(label), &s), 0);
	assert_string_equal(label, "CLIENT_TRAFFIC_SECRET_0");
	assert_int_equal(s.len, 3);
	assert_int_equal(s.bytes[1], 0x0b);
	static const char *bad[] = { "", "X", "X 00", "X 00 0", "X 00 zz", " 00 00",
				     "X 00 00 extra", "X 00 " };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tls_keylog_parse(bad[i], label, sizeof(label), &s), -EINVAL);
	/* A label longer than the caller's room. */
	assert_int_equal(tls_keylog_parse("CLIENT_TRAFFIC_SECRET_0 00 00", label, 8, &s),
			 -EINVAL);
}

static void test_psk_parse(void **state)
{
	(void)state;
	char id[64];
	uint8_t key[TLS_PSK_MAX];
	size_t len = 0;
	assert_int_equal(tls_psk_parse("bench1:000102030405060708090a0b0c0d0e0f\n", id,
				       sizeof(id), key, &len), 0);
	assert_string_equal(id, "bench1");
	assert_int_equal(len, 16);
	assert_int_equal(key[15], 0x0f);
	static const char *bad[] = {
		"", "bench1", ":000102030405060708090a0b0c0d0e0f",
		"bench1:0001",                                   /* too short a key */
		"bench1:000102030405060708090a0b0c0d0e0g",       /* not hex */
		"be nch:000102030405060708090a0b0c0d0e0f",       /* blank in identity */
		"bench1:000102030405060708090a0b0c0d0e0f\nmore", /* two lines */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tls_psk_parse(bad[i], id, sizeof(id), key, &len), -EINVAL);
}

static void test_options_check(void **state)
{
	(void)state;
	struct tls_options o = { 0 };
	assert_false(tls_options_enabled(&o));
	assert_null(tls_options_check(&o));
	o.cert = "c";
	assert_non_null(tls_options_check(&o));
	o.key = "k";
	o.ca = "a";
	assert_null(tls_options_check(&o));
	o.psk_file = "p";
	assert_non_null(tls_options_check(&o));
	o = (struct tls_options){ .optional = true };
	assert_non_null(tls_options_check(&o));
}

/* A connected pair of TLS ends over a non-blocking socketpair, PSK mode. */
struct pair {
	int fd[2];
	struct tls_ctx *ctx[2];
	struct tls_conn *c[2]; /* 0: client, 1: server */
	char path[64];
};

static void pair_up(struct pair *p, const char *client_psk)
{
	char err[TLS_ERR_SIZE];
	snprintf(p->path, sizeof(p->path), "/tmp/test_tls_psk.XXXXXX");
	int fd = mkstemp(p->path);
	assert_true(fd >= 0);
	const char *server_psk = "bench1:00112233445566778899aabbccddeeff\n";
	assert_int_equal(write(fd, server_psk, strlen(server_psk)), (ssize_t)strlen(server_psk));
	close(fd);
	struct tls_options so = { .psk_file = p->path };
	p->ctx[1] = tls_ctx_new(&so, true, err);
	assert_non_null(p->ctx[1]);
	fd = open(p->path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, client_psk, strlen(client_psk)), (ssize_t)strlen(client_psk));
	close(fd);
	p->ctx[0] = tls_ctx_new(&so, false, err);
	assert_non_null(p->ctx[0]);
	unlink(p->path);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
	for (int i = 0; i < 2; i++) {
		p->c[i] = tls_conn_new(p->ctx[i], p->fd[i], NULL, err);
		assert_non_null(p->c[i]);
	}
}

/* Steps both ends until both are done; returns the first error. */
static int pair_handshake(struct pair *p, char *err)
{
	int rc[2] = { 1, 1 };
	for (int turn = 0; turn < 100 && (rc[0] > 0 || rc[1] > 0); turn++)
		for (int i = 0; i < 2; i++)
			if (rc[i] > 0)
				rc[i] = tls_conn_step(p->c[i], err);
	return rc[0] < 0 ? rc[0] : rc[1];
}

static void pair_free(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		tls_conn_free(p->c[i]);
		tls_ctx_free(p->ctx[i]);
		close(p->fd[i]);
	}
}

static void nonce(const struct tls_traffic *t, uint8_t *out)
{
	memcpy(out, t->iv, TLS_IV_SIZE);
	for (int i = 0; i < 8; i++)
		out[TLS_IV_SIZE - 1 - i] ^= (uint8_t)(t->seq >> (8 * i));
}

/* What kernel TLS does on receive: one TLS 1.3 record off the wire. */
static size_t open_record(int fd, const struct tls_traffic *rx, uint8_t *out)
{
	uint8_t rec[5 + 256];
	assert_int_equal(read(fd, rec, 5), 5);
	assert_int_equal(rec[0], 0x17);
	size_t len = (size_t)rec[3] << 8 | rec[4];
	assert_true(len > 17 && len <= sizeof(rec) - 5);
	assert_int_equal(read(fd, rec + 5, len), (ssize_t)len);
	uint8_t iv[TLS_IV_SIZE];
	nonce(rx, iv);
	EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
	int n = 0, m = 0;
	assert_int_equal(EVP_DecryptInit_ex(e, EVP_aes_128_gcm(), NULL, rx->key, iv), 1);
	assert_int_equal(EVP_DecryptUpdate(e, NULL, &n, rec, 5), 1);
	assert_int_equal(EVP_DecryptUpdate(e, out, &n, rec + 5, (int)len - 16), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_GCM_SET_TAG, 16, rec + 5 + len - 16), 1);
	assert_int_equal(EVP_DecryptFinal_ex(e, out + n, &m), 1); /* the tag checks */
	EVP_CIPHER_CTX_free(e);
	assert_int_equal(out[n - 1], 0x17); /* inner type: application data */
	return (size_t)n - 1;
}

/* And on send. */
static void seal_record(int fd, const struct tls_traffic *tx, const char *text)
{
	size_t tlen = strlen(text);
	uint8_t rec[5 + 256 + 17];
	size_t len = tlen + 1 + 16;
	rec[0] = 0x17;
	rec[1] = 0x03;
	rec[2] = 0x03;
	rec[3] = (uint8_t)(len >> 8);
	rec[4] = (uint8_t)len;
	uint8_t plain[257];
	memcpy(plain, text, tlen);
	plain[tlen] = 0x17;
	uint8_t iv[TLS_IV_SIZE];
	nonce(tx, iv);
	EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
	int n = 0;
	assert_int_equal(EVP_EncryptInit_ex(e, EVP_aes_128_gcm(), NULL, tx->key, iv), 1);
	assert_int_equal(EVP_EncryptUpdate(e, NULL, &n, rec, 5), 1);
	assert_int_equal(EVP_EncryptUpdate(e, rec + 5, &n, plain, (int)tlen + 1), 1);
	assert_int_equal(EVP_EncryptFinal_ex(e, rec + 5 + n, &n), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_GCM_GET_TAG, 16, rec + 5 + tlen + 1), 1);
	EVP_CIPHER_CTX_free(e);
	assert_int_equal(write(fd, rec, 5 + len), (ssize_t)(5 + len));
}

static void test_traffic_keys_carry_on(void **state)
{
	(void)state;
	struct pair p;
	char err[TLS_ERR_SIZE] = "";
	pair_up(&p, "bench1:00112233445566778899aabbccddeeff\n");
	assert_int_equal(pair_handshake(&p, err), 0);
	assert_string_equal(tls_conn_peer(p.c[1]), "bench1");
	assert_string_equal(tls_conn_cipher(p.c[0]), "TLS_AES_128_GCM_SHA256");

	/* Some records each way, as the import exchange has. */
	uint8_t buf[64];
	assert_int_equal(tls_conn_write(p.c[1], "one", 3), 0);
	assert_int_equal(tls_conn_write(p.c[1], "two", 3), 0);
	assert_int_equal(tls_conn_write(p.c[0], "req", 3), 0);
	assert_int_equal(tls_conn_read_full(p.c[0], buf, 6), 6);
	assert_memory_equal(buf, "onetwo", 6);
	assert_int_equal(tls_conn_read_full(p.c[1], buf, 3), 3);

	struct tls_traffic tx, rx;
	assert_int_equal(tls_conn_traffic(p.c[0], &tx, &rx), 0);
	assert_int_equal(tx.key_len, 16);
	assert_int_equal(tx.seq, 1);
	assert_int_equal(rx.seq, 2);

	/* The server's OpenSSL goes on; the client is "the kernel" now. */
	assert_int_equal(tls_conn_write(p.c[1], "hello kernel", 12), 0);
	uint8_t plain[256];
	assert_int_equal(open_record(p.fd[0], &rx, plain), 12);
	assert_memory_equal(plain, "hello kernel", 12);
	seal_record(p.fd[0], &tx, "from vhci");
	ssize_t got = tls_conn_read(p.c[1], buf, sizeof(buf));
	assert_int_equal(got, 9);
	assert_memory_equal(buf, "from vhci", 9);
	pair_free(&p);
}

/* Data read by OpenSSL but not yet consumed: the kernel could not go on. */
static void test_traffic_refuses_unconsumed(void **state)
{
	(void)state;
	struct pair p;
	char err[TLS_ERR_SIZE] = "";
	pair_up(&p, "bench1:00112233445566778899aabbccddeeff\n");
	assert_int_equal(pair_handshake(&p, err), 0);
	assert_int_equal(tls_conn_write(p.c[1], "four", 4), 0);
	uint8_t buf[2];
	assert_int_equal(tls_conn_read(p.c[0], buf, 2), 2);
	struct tls_traffic tx, rx;
	assert_int_equal(tls_conn_traffic(p.c[0], &tx, &rx), -EPROTO);
	assert_int_equal(tls_conn_ktls(p.c[0]), -ENOTSUP);
	pair_free(&p);
}

static void test_wrong_psk_fails(void **state)
{
	(void)state;
	struct pair p;
	char err[TLS_ERR_SIZE] = "";
	pair_up(&p, "bench1:ffeeddccbbaa99887766554433221100\n");
	assert_true(pair_handshake(&p, err) < 0);
	assert_true(strstr(err, "TLS handshake failed") != NULL);
	pair_free(&p);
}

/* A relay between a TLS end and a local socket carries bytes both ways. */
static void test_relay(void **state)
{
	(void)state;
	struct pair p;
	char err[TLS_ERR_SIZE] = "";
	pair_up(&p, "bench1:00112233445566778899aabbccddeeff\n");
	assert_int_equal(pair_handshake(&p, err), 0);
	for (int i = 0; i < 2; i++)
		fcntl(p.fd[i], F_SETFL, fcntl(p.fd[i], F_GETFL) & ~O_NONBLOCK);
	int local[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, local), 0);
	struct tls_relay *r = NULL;
	assert_int_equal(tls_relay_start(p.c[0], p.fd[0], local[1], false, &r), 0);
	p.c[0] = NULL;
	p.fd[0] = -1;
	assert_int_equal(write(local[0], "up", 2), 2);
	uint8_t buf[8];
	assert_int_equal(tls_conn_read_full(p.c[1], buf, 2), 2);
	assert_memory_equal(buf, "up", 2);
	assert_int_equal(tls_conn_write(p.c[1], "down", 4), 0);
	assert_int_equal(read(local[0], buf, 4), 4);
	assert_memory_equal(buf, "down", 4);
	close(local[0]); /* the plaintext user leaves: the relay ends */
	assert_int_equal(tls_conn_read(p.c[1], buf, sizeof(buf)), 0);
	tls_relay_stop(r);
	pair_free(&p);
}

/* Two relays back to back (a client's and a server's) with bulk data both
 * ways at once, more than every socket buffer on the way holds: neither
 * direction may wait for the other. */
#define BULK (8u << 20)

struct bulk_writer {
	int fd;
	uint8_t seed;
};

static void *bulk_write(void *arg)
{
	struct bulk_writer *w = arg;
	uint8_t buf[65536];
	for (size_t sent = 0; sent < BULK;) {
		size_t n = sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(w->seed + (sent + i) % 251);
		ssize_t k = write(w->fd, buf, n);
		if (k <= 0)
			return NULL;
		sent += (size_t)k;
		if ((size_t)k < n)
			return NULL; /* a short write on a blocking socket: give up */
	}
	return NULL;
}

static void test_relays_bulk_both_ways(void **state)
{
	(void)state;
	struct pair p;
	char err[TLS_ERR_SIZE] = "";
	pair_up(&p, "bench1:00112233445566778899aabbccddeeff\n");
	assert_int_equal(pair_handshake(&p, err), 0);
	int a[2], b[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	struct tls_relay *ra = NULL, *rb = NULL;
	assert_int_equal(tls_relay_start(p.c[0], p.fd[0], a[1], false, &ra), 0);
	assert_int_equal(tls_relay_start(p.c[1], p.fd[1], b[1], false, &rb), 0);
	p.c[0] = p.c[1] = NULL;
	p.fd[0] = p.fd[1] = -1;

	struct bulk_writer wa = { a[0], 1 }, wb = { b[0], 7 };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, bulk_write, &wa), 0);
	assert_int_equal(pthread_create(&tb, NULL, bulk_write, &wb), 0);
	/* a[0] receives what b[0] wrote and the other way round. */
	size_t got[2] = { 0, 0 };
	bool ok = true;
	uint8_t buf[65536];
	while (ok && (got[0] < BULK || got[1] < BULK)) {
		struct pollfd pfd[2] = { { .fd = a[0], .events = POLLIN },
					 { .fd = b[0], .events = POLLIN } };
		assert_true(poll(pfd, 2, 20000) > 0); /* a stall is a deadlock */
		for (int i = 0; i < 2; i++) {
			if (!pfd[i].revents)
				continue;
			ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
			assert_true(n > 0);
			uint8_t seed = i == 0 ? wb.seed : wa.seed;
			for (ssize_t k = 0; k < n && ok; k++)
				ok = buf[k] == (uint8_t)(seed + (got[i] + (size_t)k) % 251);
			got[i] += (size_t)n;
		}
	}
	assert_true(ok);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	close(a[0]);
	close(b[0]);
	tls_relay_stop(ra);
	tls_relay_stop(rb);
	pair_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hkdf_label),
		cmocka_unit_test(test_expand_label_rfc8448),
		cmocka_unit_test(test_keylog_parse),
		cmocka_unit_test(test_psk_parse),
		cmocka_unit_test(test_options_check),
		cmocka_unit_test(test_traffic_keys_carry_on),
		cmocka_unit_test(test_traffic_refuses_unconsumed),
		cmocka_unit_test(test_wrong_psk_fails),
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_relays_bulk_both_ways),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
