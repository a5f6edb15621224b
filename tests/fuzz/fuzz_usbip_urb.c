/* libFuzzer target: USB/IP URB messages (48-byte header, payload, iso
 * descriptors) and the iso IN compaction built on them.
 *
 * Input layout: 5 control bytes, then one message as it comes off the wire.
 *   byte 0       bit 0: the URB a RET_SUBMIT answers was IN
 *   bytes 1..4   big-endian transfer_buffer_length of that URB (mod 64 KiB + 1);
 *                a RET_SUBMIT does not carry it, the client remembers it
 *
 * Checks, each trapping on failure so libFuzzer keeps the input:
 *   - a header that decodes re-encodes to the same 48 bytes, padding zeroed;
 *   - descriptors re-encode to the same bytes;
 *   - validate_ret implies validate_submit (same range rule);
 *   - descriptors that pass validation drive expand/compact within buffers
 *     sized exactly from the header (ASan reports any overrun), compact
 *     returns the validated total, and when packets do not overlap
 *     compact(expand(data)) gives back the data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/bytes.h"
#include "proto/usbip_codec.h"

#define CONTROL_SIZE 5
#define MAX_HARNESS_BUFFER (64u * 1024u)

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static struct usbip_iso_desc descs[USBIP_MAX_ISO_PACKETS];

static void *xmalloc(size_t n)
{
	/* Exact sizes keep ASan's redzones right behind the used bytes. */
	void *p = malloc(n ? n : 1);

	check(p != NULL);
	return p;
}

static void check_header_round_trip(const uint8_t *msg, const struct usbip_header *h)
{
	uint8_t canon[USBIP_HEADER_SIZE];
	uint8_t out[USBIP_HEADER_SIZE];
	struct usbip_header again;

	memcpy(canon, msg, sizeof(canon));
	switch (h->command) {
	case USBIP_RET_SUBMIT:
		memset(canon + 40, 0, 8);
		break;
	case USBIP_CMD_UNLINK:
	case USBIP_RET_UNLINK:
		memset(canon + 24, 0, 24);
		break;
	default:
		break;
	}
	check(usbip_header_encode(h, out, sizeof(out)) == USBIP_HEADER_SIZE);
	check(memcmp(out, canon, sizeof(out)) == 0);
	check(usbip_header_decode(out, sizeof(out), &again) == USBIP_OK);
	check(again.command == h->command && again.seqnum == h->seqnum);
}

/* Decodes count descriptors at p (the caller checked the length) and checks
 * they encode back to the same bytes. */
static void decode_descs(const uint8_t *p, uint32_t count)
{
	static uint8_t out[USBIP_MAX_ISO_PACKETS * USBIP_ISO_DESC_SIZE];
	size_t len = (size_t)count * USBIP_ISO_DESC_SIZE;

	check(usbip_iso_descs_decode(p, len, count, descs) == USBIP_OK);
	check(usbip_iso_descs_encode(descs, count, out, len) == (int)len);
	check(memcmp(out, p, len) == 0);
}

/* Whether any two packets' received bytes overlap in a buffer of
 * buffer_length bytes (then expand lets the later packet win). */
static int packets_overlap(uint32_t count, uint32_t buffer_length)
{
	uint8_t *used = calloc(buffer_length ? buffer_length : 1, 1);
	int overlap = 0;

	check(used != NULL);
	for (uint32_t i = 0; i < count && !overlap; i++) {
		for (uint32_t j = 0; j < descs[i].actual_length; j++) {
			uint8_t *u = &used[descs[i].offset + j];

			if (*u) {
				overlap = 1;
				break;
			}
			*u = 1;
		}
	}
	free(used);
	return overlap;
}

/* compacted holds total bytes (validated to be the sum of the packets'
 * actual lengths). Spreads them into a fresh buffer and gathers them again. */
static void check_expand_compact(const uint8_t *compacted, uint32_t count,
				 uint32_t buffer_length, uint32_t total)
{
	uint8_t *buf = calloc(buffer_length ? buffer_length : 1, 1);
	uint8_t *again = xmalloc(total);

	check(buf != NULL);
	usbip_iso_expand(compacted, descs, count, buf);
	check(usbip_iso_compact(buf, descs, count, again) == total);
	if (!packets_overlap(count, buffer_length))
		check(memcmp(again, compacted, total) == 0);
	free(again);
	free(buf);
}

static void fuzz_cmd_submit(const uint8_t *msg, size_t n, const struct usbip_header *h)
{
	const struct usbip_cmd_submit *c = &h->u.cmd_submit;
	size_t payload = usbip_cmd_submit_payload_size(h);
	uint32_t count = usbip_iso_count(c->number_of_packets);
	size_t descs_len = (size_t)count * USBIP_ISO_DESC_SIZE;

	check(payload >= descs_len);
	if (n - USBIP_HEADER_SIZE < payload)
		return;
	const uint8_t *data = msg + USBIP_HEADER_SIZE;
	size_t data_len = payload - descs_len;
	check(data_len == (h->direction == USBIP_DIR_OUT ? c->transfer_buffer_length : 0));
	decode_descs(data + data_len, count);

	uint32_t tbl = c->transfer_buffer_length;
	int submit_rc = usbip_iso_validate_submit(descs, count, tbl);
	uint64_t sum = 0;
	for (uint32_t i = 0; i < count; i++)
		sum += descs[i].actual_length;
	if (sum > UINT32_MAX)
		return;
	/* As the server does once an iso OUT URB completed: the packets'
	 * actual lengths now describe what was sent. */
	if (usbip_iso_validate_ret(descs, count, tbl, (uint32_t)sum) != USBIP_OK)
		return;
	check(submit_rc == USBIP_OK);
	if (h->direction != USBIP_DIR_OUT)
		return;
	uint8_t *compacted = xmalloc((size_t)sum);
	check(usbip_iso_compact(data, descs, count, compacted) == sum);
	if (tbl <= MAX_HARNESS_BUFFER)
		check_expand_compact(compacted, count, tbl, (uint32_t)sum);
	free(compacted);
}

static void fuzz_ret_submit(const uint8_t *control, const uint8_t *msg, size_t n,
			    const struct usbip_header *h)
{
	const struct usbip_ret_submit *r = &h->u.ret_submit;
	int dir_in = control[0] & 1;
	uint32_t buffer_length = get_be32(control + 1) % (MAX_HARNESS_BUFFER + 1);
	size_t payload = usbip_ret_submit_payload_size(h, dir_in);
	uint32_t count = usbip_iso_count(r->number_of_packets);
	size_t descs_len = (size_t)count * USBIP_ISO_DESC_SIZE;

	check(payload >= descs_len);
	if (n - USBIP_HEADER_SIZE < payload)
		return;
	const uint8_t *data = msg + USBIP_HEADER_SIZE;
	size_t data_len = payload - descs_len;
	check(data_len == (dir_in ? r->actual_length : 0));
	decode_descs(data + data_len, count);

	if (usbip_iso_validate_ret(descs, count, buffer_length, r->actual_length) != USBIP_OK)
		return;
	check(usbip_iso_validate_submit(descs, count, buffer_length) == USBIP_OK);
	check(r->actual_length <= buffer_length);
	if (dir_in)
		check_expand_compact(data, count, buffer_length, r->actual_length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usbip_header h;

	if (size < CONTROL_SIZE)
		return 0;
	const uint8_t *msg = data + CONTROL_SIZE;
	size_t n = size - CONTROL_SIZE;

	int rc = usbip_header_decode(msg, n, &h);
	if (rc != USBIP_OK) {
		check(rc < 0 && usbip_codec_strerror(rc) != NULL);
		return 0;
	}
	check(h.direction <= USBIP_DIR_IN && h.ep <= 15);
	check_header_round_trip(msg, &h);

	switch (h.command) {
	case USBIP_CMD_SUBMIT:
		fuzz_cmd_submit(msg, n, &h);
		break;
	case USBIP_RET_SUBMIT:
		fuzz_ret_submit(data, msg, n, &h);
		break;
	default:
		break;
	}
	return 0;
}
