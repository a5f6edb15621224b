/* USB/IP isochronous packet descriptors and the IN data compaction.
 *
 * Each descriptor is 16 bytes: offset, length, actual_length, status. The
 * offsets always refer to the uncompacted transfer buffer, also in a
 * RET_SUBMIT whose data is compacted (PROTOCOL.md, "Isochronous details"). */
#include "proto/usbip_codec.h"

#include <string.h>

#include "proto/bytes.h"

#define ISO_OFFSET_AT 0
#define ISO_LENGTH_AT 4
#define ISO_ACTUAL_AT 8
#define ISO_STATUS_AT 12

int usbip_iso_descs_decode(const uint8_t *p, size_t n, uint32_t count, struct usbip_iso_desc *out)
{
	if (count > USBIP_MAX_ISO_PACKETS)
		return USBIP_E_NPACKETS;
	if (n < (size_t)count * USBIP_ISO_DESC_SIZE)
		return USBIP_E_SHORT;
	for (uint32_t i = 0; i < count; i++, p += USBIP_ISO_DESC_SIZE) {
		out[i].offset = get_be32(p + ISO_OFFSET_AT);
		out[i].length = get_be32(p + ISO_LENGTH_AT);
		out[i].actual_length = get_be32(p + ISO_ACTUAL_AT);
		out[i].status = (int32_t)get_be32(p + ISO_STATUS_AT);
	}
	return USBIP_OK;
}

int usbip_iso_descs_encode(const struct usbip_iso_desc *in, uint32_t count, uint8_t *p, size_t n)
{
	if (count > USBIP_MAX_ISO_PACKETS)
		return USBIP_E_NPACKETS;
	if (n < (size_t)count * USBIP_ISO_DESC_SIZE)
		return USBIP_E_NOSPACE;
	for (uint32_t i = 0; i < count; i++, p += USBIP_ISO_DESC_SIZE) {
		put_be32(p + ISO_OFFSET_AT, in[i].offset);
		put_be32(p + ISO_LENGTH_AT, in[i].length);
		put_be32(p + ISO_ACTUAL_AT, in[i].actual_length);
		put_be32(p + ISO_STATUS_AT, (uint32_t)in[i].status);
	}
	return (int)(count * USBIP_ISO_DESC_SIZE);
}

/* [offset, offset + length) inside [0, buffer_length), written so that
 * offset + length cannot wrap around in 32 bits. */
static int packet_in_buffer(const struct usbip_iso_desc *d, uint32_t buffer_length)
{
	return d->offset <= buffer_length && d->length <= buffer_length - d->offset;
}

int usbip_iso_validate_submit(const struct usbip_iso_desc *d, uint32_t count,
			      uint32_t buffer_length)
{
	if (count > USBIP_MAX_ISO_PACKETS)
		return USBIP_E_NPACKETS;
	for (uint32_t i = 0; i < count; i++) {
		if (!packet_in_buffer(&d[i], buffer_length))
			return USBIP_E_ISO_RANGE;
	}
	return USBIP_OK;
}

int usbip_iso_validate_ret(const struct usbip_iso_desc *d, uint32_t count,
			   uint32_t buffer_length, uint32_t actual_length)
{
	/* At most 1024 packets of at most 4 GiB each: the sum fits 64 bits. */
	uint64_t sum = 0;

	if (count > USBIP_MAX_ISO_PACKETS)
		return USBIP_E_NPACKETS;
	if (actual_length > buffer_length)
		return USBIP_E_ACTUAL_LENGTH;
	for (uint32_t i = 0; i < count; i++) {
		if (!packet_in_buffer(&d[i], buffer_length))
			return USBIP_E_ISO_RANGE;
		if (d[i].actual_length > d[i].length)
			return USBIP_E_ACTUAL_LENGTH;
		sum += d[i].actual_length;
	}
	if (sum != actual_length)
		return USBIP_E_ISO_SUM;
	return USBIP_OK;
}

size_t usbip_iso_compact(const uint8_t *buf, const struct usbip_iso_desc *d, uint32_t count,
			 uint8_t *out)
{
	size_t at = 0;

	for (uint32_t i = 0; i < count; i++) {
		/* Empty packets are skipped: buf or out may then be NULL. */
		if (d[i].actual_length == 0)
			continue;
		memcpy(out + at, buf + d[i].offset, d[i].actual_length);
		at += d[i].actual_length;
	}
	return at;
}

void usbip_iso_expand(const uint8_t *compact, const struct usbip_iso_desc *d, uint32_t count,
		      uint8_t *buf)
{
	size_t at = 0;

	for (uint32_t i = 0; i < count; i++) {
		if (d[i].actual_length == 0)
			continue;
		memcpy(buf + d[i].offset, compact + at, d[i].actual_length);
		at += d[i].actual_length;
	}
}
