/* Notify protocol v2 line codec.
 *
 * Encoding writes fields in a fixed order and leaves out optional strings
 * that are empty; decoding accepts the fields in any order, ignores unknown
 * keys and refuses everything else that is not exactly the grammar. */
#include "proto/notify_v2.h"

#include <string.h>

#include "proto/busid.h"

/* ---- Words and speeds ---------------------------------------------------- */

static const char *const type_words[] = {
	[NOTIFY_V2_HELLO] = "hello",
	[NOTIFY_V2_WELCOME] = "welcome",
	[NOTIFY_V2_DEVICE] = "device",
	[NOTIFY_V2_SNAPSHOT_END] = "snapshot-end",
	[NOTIFY_V2_PLUGGED] = "plugged",
	[NOTIFY_V2_UNPLUGGED] = "unplugged",
	[NOTIFY_V2_HELD] = "held",
	[NOTIFY_V2_PING] = "ping",
	[NOTIFY_V2_ERROR] = "error",
};

#define TYPE_COUNT (sizeof(type_words) / sizeof(type_words[0]))

static const char *const speed_names[] = {
	[USBIP_SPEED_UNKNOWN] = "unknown",
	[USBIP_SPEED_LOW] = "low",
	[USBIP_SPEED_FULL] = "full",
	[USBIP_SPEED_HIGH] = "high",
	[USBIP_SPEED_WIRELESS] = "wireless",
	[USBIP_SPEED_SUPER] = "super",
	[USBIP_SPEED_SUPER_PLUS] = "super-plus",
};

#define SPEED_COUNT (sizeof(speed_names) / sizeof(speed_names[0]))

const char *notify_v2_speed_name(uint32_t speed)
{
	return speed < SPEED_COUNT ? speed_names[speed] : NULL;
}

const char *notify_v2_strerror(int err)
{
	switch (err) {
	case NOTIFY_V2_OK:
		return "ok";
	case NOTIFY_V2_E_NOSPACE:
		return "output buffer too small";
	case NOTIFY_V2_E_WORD:
		return "unknown message word";
	case NOTIFY_V2_E_FIELD:
		return "malformed field";
	case NOTIFY_V2_E_MISSING:
		return "required field missing";
	case NOTIFY_V2_E_VALUE:
		return "value out of range";
	case NOTIFY_V2_E_BUSID:
		return "invalid busid";
	case NOTIFY_V2_E_LONG:
		return "string or line too long";
	case NOTIFY_V2_E_VERSION:
		return "unsupported protocol version";
	default:
		return "unknown error";
	}
}

/* Bytes that travel as themselves inside a value. */
static bool plain_byte(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '~' || c == ':' || c == '/' || c == '-';
}

static bool control_byte(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* ---- Encoder --------------------------------------------------------------- */

struct writer {
	char *out;
	size_t cap; /* min(n, NOTIFY_V2_MAX_LINE) */
	size_t len;
	bool long_line; /* ran past NOTIFY_V2_MAX_LINE */
	bool full;      /* ran past the caller's buffer */
};

static void put_bytes(struct writer *w, const char *s, size_t k)
{
	if (w->long_line || w->full)
		return;
	if (w->len + k > NOTIFY_V2_MAX_LINE) {
		w->long_line = true;
		return;
	}
	if (w->len + k > w->cap) {
		w->full = true;
		return;
	}
	memcpy(w->out + w->len, s, k);
	w->len += k;
}

static void put_str(struct writer *w, const char *s)
{
	put_bytes(w, s, strlen(s));
}

static void put_uint(struct writer *w, uint32_t v)
{
	char buf[10];
	size_t i = sizeof(buf);

	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_bytes(w, buf + i, sizeof(buf) - i);
}

static void put_hex16(struct writer *w, uint16_t v)
{
	static const char hex[] = "0123456789abcdef";
	char buf[4] = { hex[v >> 12], hex[(v >> 8) & 15], hex[(v >> 4) & 15], hex[v & 15] };

	put_bytes(w, buf, sizeof(buf));
}

/* A string field of the message: NUL-terminated within size, no control
 * characters. Returns its length or an error. */
static int check_string(const char *s, size_t size)
{
	const char *nul = memchr(s, '\0', size);

	if (!nul)
		return NOTIFY_V2_E_LONG;
	for (const char *p = s; p < nul; p++)
		if (control_byte((unsigned char)*p))
			return NOTIFY_V2_E_VALUE;
	return (int)(nul - s);
}

static void put_encoded(struct writer *w, const char *s, size_t k)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)s[i];
		if (plain_byte(c)) {
			put_bytes(w, (const char *)&s[i], 1);
		} else {
			char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
			put_bytes(w, esc, sizeof(esc));
		}
	}
}

/* " key=VALUE"; an empty optional string is left out. */
static int put_string_field(struct writer *w, const char *key, const char *s, size_t size,
			    bool optional)
{
	int k = check_string(s, size);

	if (k < 0)
		return k;
	if (k == 0 && optional)
		return NOTIFY_V2_OK;
	put_str(w, " ");
	put_str(w, key);
	put_str(w, "=");
	put_encoded(w, s, (size_t)k);
	return NOTIFY_V2_OK;
}

static int put_device(struct writer *w, const struct notify_v2_device *d, bool busid_only)
{
	int rc;

	if (!busid_valid(d->busid))
		return NOTIFY_V2_E_BUSID;
	put_str(w, " busid=");
	put_str(w, d->busid); /* a valid busid needs no escaping */
	if (busid_only)
		return NOTIFY_V2_OK;

	const char *speed = notify_v2_speed_name(d->speed);
	if (!speed)
		return NOTIFY_V2_E_VALUE;
	put_str(w, " vid=");
	put_hex16(w, d->vid);
	put_str(w, " pid=");
	put_hex16(w, d->pid);
	put_str(w, " speed=");
	put_str(w, speed);
	put_str(w, d->held ? " held=1" : " held=0");
	rc = put_string_field(w, "serial", d->serial, sizeof(d->serial), true);
	if (rc == NOTIFY_V2_OK)
		rc = put_string_field(w, "manufacturer", d->manufacturer,
				      sizeof(d->manufacturer), true);
	if (rc == NOTIFY_V2_OK)
		rc = put_string_field(w, "product", d->product, sizeof(d->product), true);
	return rc;
}

int notify_v2_encode(const struct notify_v2_msg *msg, char *out, size_t n)
{
	struct writer w = { out, n < NOTIFY_V2_MAX_LINE ? n : NOTIFY_V2_MAX_LINE, 0, false,
			    false };
	int rc = NOTIFY_V2_OK;

	if ((unsigned)msg->type >= TYPE_COUNT)
		return NOTIFY_V2_E_WORD;
	put_str(&w, type_words[msg->type]);

	switch (msg->type) {
	case NOTIFY_V2_HELLO:
		if (msg->version != NOTIFY_V2_VERSION)
			return NOTIFY_V2_E_VERSION;
		put_str(&w, " version=");
		put_uint(&w, msg->version);
		rc = put_string_field(&w, "token", msg->token, sizeof(msg->token), true);
		break;
	case NOTIFY_V2_WELCOME:
		if (msg->version != NOTIFY_V2_VERSION)
			return NOTIFY_V2_E_VERSION;
		if (msg->heartbeat_s < 1 || msg->heartbeat_s > 3600)
			return NOTIFY_V2_E_VALUE;
		put_str(&w, " version=");
		put_uint(&w, msg->version);
		put_str(&w, " heartbeat=");
		put_uint(&w, msg->heartbeat_s);
		rc = put_string_field(&w, "server", msg->name, sizeof(msg->name), false);
		break;
	case NOTIFY_V2_DEVICE:
	case NOTIFY_V2_PLUGGED:
	case NOTIFY_V2_HELD:
		rc = put_device(&w, &msg->dev, false);
		break;
	case NOTIFY_V2_UNPLUGGED:
		rc = put_device(&w, &msg->dev, true);
		break;
	case NOTIFY_V2_SNAPSHOT_END:
		put_str(&w, " count=");
		put_uint(&w, msg->count);
		break;
	case NOTIFY_V2_PING:
		break;
	case NOTIFY_V2_ERROR:
		rc = put_string_field(&w, "reason", msg->name, sizeof(msg->name), false);
		break;
	}
	if (rc < 0)
		return rc;
	put_str(&w, "\n");
	if (w.long_line)
		return NOTIFY_V2_E_LONG;
	if (w.full)
		return NOTIFY_V2_E_NOSPACE;
	return (int)w.len;
}

/* ---- Decoder --------------------------------------------------------------- */

/* Known keys; each may appear once. */
enum key {
	K_VERSION,
	K_HEARTBEAT,
	K_SERVER,
	K_TOKEN,
	K_BUSID,
	K_VID,
	K_PID,
	K_SPEED,
	K_HELD,
	K_SERIAL,
	K_MANUFACTURER,
	K_PRODUCT,
	K_COUNT,
	K_REASON,
	K_NONE, /* unknown: ignored */
};

static const char *const key_names[K_NONE] = {
	[K_VERSION] = "version",   [K_HEARTBEAT] = "heartbeat",
	[K_SERVER] = "server",     [K_TOKEN] = "token",
	[K_BUSID] = "busid",       [K_VID] = "vid",
	[K_PID] = "pid",           [K_SPEED] = "speed",
	[K_HELD] = "held",         [K_SERIAL] = "serial",
	[K_MANUFACTURER] = "manufacturer", [K_PRODUCT] = "product",
	[K_COUNT] = "count",       [K_REASON] = "reason",
};

#define BIT(k) (1u << (k))
#define DEVICE_KEYS (BIT(K_BUSID) | BIT(K_VID) | BIT(K_PID) | BIT(K_SPEED) | BIT(K_HELD))

/* Which keys each word uses, and which of those it requires. */
static const struct {
	unsigned used;
	unsigned required;
} word_keys[] = {
	[NOTIFY_V2_HELLO] = { BIT(K_VERSION) | BIT(K_TOKEN), BIT(K_VERSION) },
	[NOTIFY_V2_WELCOME] = { BIT(K_VERSION) | BIT(K_HEARTBEAT) | BIT(K_SERVER),
				BIT(K_VERSION) | BIT(K_HEARTBEAT) | BIT(K_SERVER) },
	[NOTIFY_V2_DEVICE] = { DEVICE_KEYS | BIT(K_SERIAL) | BIT(K_MANUFACTURER) |
				       BIT(K_PRODUCT),
			       DEVICE_KEYS },
	[NOTIFY_V2_SNAPSHOT_END] = { BIT(K_COUNT), BIT(K_COUNT) },
	[NOTIFY_V2_PLUGGED] = { DEVICE_KEYS | BIT(K_SERIAL) | BIT(K_MANUFACTURER) |
					BIT(K_PRODUCT),
				DEVICE_KEYS },
	[NOTIFY_V2_UNPLUGGED] = { BIT(K_BUSID), BIT(K_BUSID) },
	[NOTIFY_V2_HELD] = { DEVICE_KEYS | BIT(K_SERIAL) | BIT(K_MANUFACTURER) | BIT(K_PRODUCT),
			     DEVICE_KEYS },
	[NOTIFY_V2_PING] = { 0, 0 },
	[NOTIFY_V2_ERROR] = { BIT(K_REASON), BIT(K_REASON) },
};

static bool key_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Checks a raw value's syntax (plain bytes and %XX escapes only) without
 * decoding it; every value is checked, known or not. */
static int check_raw_value(const char *v, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '%') {
			if (k - i < 3)
				return NOTIFY_V2_E_FIELD;
			if (hex_digit((unsigned char)v[i + 1]) < 0 ||
			    hex_digit((unsigned char)v[i + 2]) < 0)
				return NOTIFY_V2_E_FIELD;
			i += 2;
		} else if (!plain_byte(c)) {
			return NOTIFY_V2_E_FIELD;
		}
	}
	return NOTIFY_V2_OK;
}

/* Decodes a checked raw value into out (size bytes, NUL included). */
static int decode_string(const char *v, size_t k, char *out, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '%') {
			c = (unsigned char)(hex_digit((unsigned char)v[i + 1]) << 4 |
					    hex_digit((unsigned char)v[i + 2]));
			i += 2;
			if (control_byte(c))
				return NOTIFY_V2_E_VALUE;
		}
		if (n + 1 >= size)
			return NOTIFY_V2_E_LONG;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return NOTIFY_V2_OK;
}

/* Decimal without sign or leading zeros, at most UINT32_MAX. */
static int parse_uint(const char *v, size_t k, uint32_t *out)
{
	uint64_t x = 0;

	if (k == 0 || k > 10 || (k > 1 && v[0] == '0'))
		return NOTIFY_V2_E_VALUE;
	for (size_t i = 0; i < k; i++) {
		if (v[i] < '0' || v[i] > '9')
			return NOTIFY_V2_E_VALUE;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > UINT32_MAX)
		return NOTIFY_V2_E_VALUE;
	*out = (uint32_t)x;
	return NOTIFY_V2_OK;
}

/* Exactly four hex digits, either case. */
static int parse_hex16(const char *v, size_t k, uint16_t *out)
{
	unsigned x = 0;

	if (k != 4)
		return NOTIFY_V2_E_VALUE;
	for (size_t i = 0; i < 4; i++) {
		int d = hex_digit((unsigned char)v[i]);
		if (d < 0)
			return NOTIFY_V2_E_VALUE;
		x = x << 4 | (unsigned)d;
	}
	*out = (uint16_t)x;
	return NOTIFY_V2_OK;
}

static int parse_field(enum key key, const char *v, size_t k, struct notify_v2_msg *m)
{
	uint32_t u;
	int rc;

	switch (key) {
	case K_VERSION:
		rc = parse_uint(v, k, &m->version);
		if (rc == NOTIFY_V2_OK && m->version != NOTIFY_V2_VERSION)
			rc = NOTIFY_V2_E_VERSION;
		return rc;
	case K_HEARTBEAT:
		rc = parse_uint(v, k, &m->heartbeat_s);
		if (rc == NOTIFY_V2_OK && (m->heartbeat_s < 1 || m->heartbeat_s > 3600))
			rc = NOTIFY_V2_E_VALUE;
		return rc;
	case K_COUNT:
		return parse_uint(v, k, &m->count);
	case K_SERVER:
	case K_REASON:
		return decode_string(v, k, m->name, sizeof(m->name));
	case K_TOKEN:
		return decode_string(v, k, m->token, sizeof(m->token));
	case K_SERIAL:
		return decode_string(v, k, m->dev.serial, sizeof(m->dev.serial));
	case K_MANUFACTURER:
		return decode_string(v, k, m->dev.manufacturer, sizeof(m->dev.manufacturer));
	case K_PRODUCT:
		return decode_string(v, k, m->dev.product, sizeof(m->dev.product));
	case K_BUSID:
		if (k >= sizeof(m->dev.busid))
			return NOTIFY_V2_E_BUSID;
		rc = decode_string(v, k, m->dev.busid, sizeof(m->dev.busid));
		if (rc == NOTIFY_V2_OK && !busid_valid(m->dev.busid))
			rc = NOTIFY_V2_E_BUSID;
		return rc;
	case K_VID:
		return parse_hex16(v, k, &m->dev.vid);
	case K_PID:
		return parse_hex16(v, k, &m->dev.pid);
	case K_SPEED:
		for (u = 0; u < SPEED_COUNT; u++) {
			if (strlen(speed_names[u]) == k && memcmp(speed_names[u], v, k) == 0) {
				m->dev.speed = u;
				return NOTIFY_V2_OK;
			}
		}
		return NOTIFY_V2_E_VALUE;
	case K_HELD:
		if (k != 1 || (v[0] != '0' && v[0] != '1'))
			return NOTIFY_V2_E_VALUE;
		m->dev.held = v[0] == '1';
		return NOTIFY_V2_OK;
	case K_NONE:
		break;
	}
	return NOTIFY_V2_OK;
}

static enum key lookup_key(const char *s, size_t k, unsigned used)
{
	for (unsigned i = 0; i < K_NONE; i++)
		if ((used & BIT(i)) && strlen(key_names[i]) == k && memcmp(key_names[i], s, k) == 0)
			return (enum key)i;
	return K_NONE;
}

int notify_v2_decode(const char *line, size_t len, struct notify_v2_msg *out)
{
	unsigned seen = 0;
	size_t i, start;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > NOTIFY_V2_MAX_LINE - 1)
		return NOTIFY_V2_E_LONG;

	for (i = 0; i < len && line[i] != ' '; i++)
		;
	unsigned t;
	for (t = 0; t < TYPE_COUNT; t++)
		if (strlen(type_words[t]) == i && memcmp(type_words[t], line, i) == 0)
			break;
	if (t == TYPE_COUNT)
		return NOTIFY_V2_E_WORD;
	out->type = (enum notify_v2_type)t;
	unsigned used = word_keys[t].used;

	/* Each field: exactly one space, then key=value. */
	while (i < len) {
		i++; /* the space */
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		const char *f = line + start;
		size_t flen = i - start;
		const char *eq = memchr(f, '=', flen);
		if (!eq || eq == f)
			return NOTIFY_V2_E_FIELD;
		size_t klen = (size_t)(eq - f);
		for (size_t j = 0; j < klen; j++)
			if (!key_byte((unsigned char)f[j]))
				return NOTIFY_V2_E_FIELD;
		const char *v = eq + 1;
		size_t vlen = flen - klen - 1;
		rc = check_raw_value(v, vlen);
		if (rc < 0)
			return rc;
		enum key key = lookup_key(f, klen, used);
		if (key == K_NONE)
			continue;
		if (seen & BIT(key))
			return NOTIFY_V2_E_FIELD;
		seen |= BIT(key);
		rc = parse_field(key, v, vlen, out);
		if (rc < 0)
			return rc;
	}
	if ((seen & word_keys[t].required) != word_keys[t].required)
		return NOTIFY_V2_E_MISSING;
	return NOTIFY_V2_OK;
}
