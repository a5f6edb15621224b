/* Notify protocol v1 line codec. */
#include "proto/notify_v1.h"

#include <string.h>

#include "proto/busid.h"

static const struct {
	enum notify_v1_kind kind;
	const char *word;
} kind_words[] = {
	{ NOTIFY_V1_PLUGGED, "PLUGGED" },
	{ NOTIFY_V1_UNPLUGGED, "UNPLUGGED" },
};

#define KIND_COUNT (sizeof(kind_words) / sizeof(kind_words[0]))

const char *notify_v1_strerror(int err)
{
	switch (err) {
	case NOTIFY_V1_OK:
		return "ok";
	case NOTIFY_V1_E_NOSPACE:
		return "output buffer too small";
	case NOTIFY_V1_E_FORMAT:
		return "line is not BUSID;KIND;";
	case NOTIFY_V1_E_BUSID:
		return "invalid busid";
	case NOTIFY_V1_E_KIND:
		return "unknown event kind";
	default:
		return "unknown error";
	}
}

enum notify_v1_hello_result notify_v1_match_hello(const uint8_t *p, size_t n)
{
	size_t m = n < NOTIFY_V1_HELLO_LEN ? n : NOTIFY_V1_HELLO_LEN;

	if (m > 0 && memcmp(p, NOTIFY_V1_HELLO, m) != 0)
		return NOTIFY_V1_HELLO_NO;
	return n >= NOTIFY_V1_HELLO_LEN ? NOTIFY_V1_HELLO_MATCH : NOTIFY_V1_HELLO_PARTIAL;
}

static const char *kind_word(enum notify_v1_kind kind)
{
	for (size_t i = 0; i < KIND_COUNT; i++)
		if (kind_words[i].kind == kind)
			return kind_words[i].word;
	return NULL;
}

int notify_v1_encode(const struct notify_v1_event *ev, char *out, size_t n)
{
	const char *word;
	size_t blen, wlen, total;

	/* busid_valid reads at most USBIP_BUSID_SIZE bytes, so an
	 * unterminated array is refused, not overrun. */
	if (!busid_valid(ev->busid))
		return NOTIFY_V1_E_BUSID;
	word = kind_word(ev->kind);
	if (!word)
		return NOTIFY_V1_E_KIND;

	blen = strlen(ev->busid);
	wlen = strlen(word);
	total = blen + 1 + wlen + 2; /* "BUSID" ';' "WORD" ";\n" */
	if (!out || n < total)
		return NOTIFY_V1_E_NOSPACE;
	memcpy(out, ev->busid, blen);
	out[blen] = ';';
	memcpy(out + blen + 1, word, wlen);
	out[blen + 1 + wlen] = ';';
	out[blen + 1 + wlen + 1] = '\n';
	return (int)total;
}

int notify_v1_decode(const char *line, size_t len, struct notify_v1_event *out)
{
	const char *semi1, *semi2, *word;
	size_t blen, wlen;
	char busid[USBIP_BUSID_SIZE];

	if (!line || len == 0)
		return NOTIFY_V1_E_FORMAT;
	/* An embedded NUL would make the C string differ from the bytes. */
	if (memchr(line, '\0', len))
		return NOTIFY_V1_E_FORMAT;
	semi1 = memchr(line, ';', len);
	if (!semi1)
		return NOTIFY_V1_E_FORMAT;
	semi2 = memchr(semi1 + 1, ';', len - (size_t)(semi1 + 1 - line));
	/* The second ';' must be the last byte: nothing may follow it, not
	 * even another field. */
	if (!semi2 || semi2 != line + len - 1)
		return NOTIFY_V1_E_FORMAT;

	blen = (size_t)(semi1 - line);
	if (blen >= USBIP_BUSID_SIZE)
		return NOTIFY_V1_E_BUSID;
	memcpy(busid, line, blen);
	busid[blen] = '\0';
	if (!busid_valid(busid))
		return NOTIFY_V1_E_BUSID;

	word = semi1 + 1;
	wlen = (size_t)(semi2 - word);
	for (size_t i = 0; i < KIND_COUNT; i++) {
		if (strlen(kind_words[i].word) == wlen &&
		    memcmp(kind_words[i].word, word, wlen) == 0) {
			memcpy(out->busid, busid, sizeof(busid));
			out->kind = kind_words[i].kind;
			return NOTIFY_V1_OK;
		}
	}
	return NOTIFY_V1_E_KIND;
}
