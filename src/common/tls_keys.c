/* The pure parts of the TLS module: key schedule pieces and file formats. */
#include "common/tls.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

int tls_hkdf_label(uint16_t out_len, const char *label, uint8_t *out, size_t n)
{
	static const char prefix[] = "tls13 ";
	size_t plen = sizeof(prefix) - 1, llen = strlen(label);
	if (plen + llen > 255 || n < 2 + 1 + plen + llen + 1)
		return -EINVAL;
	size_t i = 0;
	out[i++] = (uint8_t)(out_len >> 8);
	out[i++] = (uint8_t)out_len;
	out[i++] = (uint8_t)(plen + llen);
	memcpy(out + i, prefix, plen);
	i += plen;
	memcpy(out + i, label, llen);
	i += llen;
	out[i++] = 0; /* empty context */
	return (int)i;
}

int tls_expand_label(bool sha384, const uint8_t *secret, size_t secret_len, const char *label,
		     uint8_t *out, size_t out_len)
{
	uint8_t info[2 + 1 + 255 + 1];
	int ilen = tls_hkdf_label((uint16_t)out_len, label, info, sizeof(info));
	if (ilen < 0 || out_len > 0xffff)
		return -EINVAL;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	if (!kctx)
		return -ENOMEM;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						 sha384 ? "SHA384" : "SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, (size_t)ilen),
		OSSL_PARAM_construct_end(),
	};
	int rc = EVP_KDF_derive(kctx, out, out_len, params) == 1 ? 0 : -EINVAL;
	EVP_KDF_CTX_free(kctx);
	return rc;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes exactly len hex digits into out; -EINVAL on a bad digit. */
static int unhex(const char *s, size_t len, uint8_t *out)
{
	if (len % 2)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int tls_keylog_parse(const char *line, char *label, size_t label_size, struct tls_secret *secret)
{
	const char *sp1 = strchr(line, ' ');
	const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || (size_t)(sp1 - line) >= label_size || sp1 == line)
		return -EINVAL;
	size_t hexlen = strcspn(sp2 + 1, "\r\n");
	if (hexlen == 0 || hexlen > 2 * TLS_SECRET_MAX ||
	    sp2[1 + hexlen + strspn(sp2 + 1 + hexlen, "\r\n")] != '\0')
		return -EINVAL;
	if (unhex(sp2 + 1, hexlen, secret->bytes) < 0)
		return -EINVAL;
	secret->len = hexlen / 2;
	memcpy(label, line, (size_t)(sp1 - line));
	label[sp1 - line] = '\0';
	return 0;
}

int tls_psk_parse(const char *text, char *identity, size_t identity_size, uint8_t *key,
		  size_t *key_len)
{
	const char *colon = strchr(text, ':');
	if (!colon || colon == text || (size_t)(colon - text) >= identity_size)
		return -EINVAL;
	for (const char *p = text; p < colon; p++)
		if (!isgraph((unsigned char)*p))
			return -EINVAL;
	const char *hex = colon + 1;
	size_t hexlen = strcspn(hex, "\r\n");
	/* At most one line end after the key. */
	const char *rest = hex + hexlen;
	rest += strspn(rest, "\r\n");
	if (*rest != '\0' || hexlen < 32 || hexlen > 2 * TLS_PSK_MAX)
		return -EINVAL; /* 16..64 bytes of key */
	if (unhex(hex, hexlen, key) < 0)
		return -EINVAL;
	*key_len = hexlen / 2;
	memcpy(identity, text, (size_t)(colon - text));
	identity[colon - text] = '\0';
	return 0;
}
