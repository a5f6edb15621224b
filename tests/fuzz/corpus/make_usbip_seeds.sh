#!/usr/bin/env bash
# Regenerates the seed corpora of the usbip_op and usbip_urb fuzz targets:
# a few small valid messages (layouts as in shared/docs/PROTOCOL.md) and a
# few near-misses. usbip_urb inputs start with 5 harness control bytes:
# bit 0 of the first "the answered URB was IN", then the URB's
# transfer_buffer_length as a big-endian u32 (see fuzz_usbip_urb.c).
set -euo pipefail
cd "$(dirname "$0")"

hex() { tr -d ' \n' | xxd -r -p; }
zeros() { head -c "$1" /dev/zero; }
# A string in a fixed field of $2 bytes, zero padded.
field() { printf '%s' "$1"; zeros $(($2 - ${#1})); }

op=usbip_op
urb=usbip_urb
mkdir -p "$op" "$urb"

# ---- Operation messages ----
echo 0111 8005 00000000 | hex >"$op/devlist_request"
echo 0110 8005 00000000 | hex >"$op/bad_version"
echo 0111 8005 0000 | hex >"$op/short_header"
{ echo 0111 8003 00000000 | hex; field 1-2 32; } >"$op/import_request"
{ echo 0111 8003 00000000 | hex; printf '%s' 0123456789abcdef0123456789abcdef; } \
	>"$op/import_busid_no_nul"
echo 0111 0005 00000000 00000000 | hex >"$op/devlist_reply_empty"

device_record() {
	field /sys/bus/usb/devices/1-2 256
	field 1-2 32
	# busnum 1, devnum 3, speed high, 0483:5740 bcd 0200, class ef/02/01,
	# config 1, 1 configuration, $1 interfaces
	echo 00000001 00000003 00000003 0483 5740 0200 ef 02 01 01 01 "$1" | hex
}
{
	echo 0111 0005 00000000 00000001 | hex
	device_record 02
	echo 02020100 0a000000 | hex
} >"$op/devlist_reply_one"
{ cat "$op/devlist_reply_one"; echo 00 | hex; } >"$op/devlist_reply_trailing"
{ echo 0111 0003 00000000 | hex; device_record 00; } >"$op/import_reply_ok"
echo 0111 0003 00000001 | hex >"$op/import_reply_na"

# ---- URB messages (5 control bytes first) ----
# CMD_SUBMIT control IN GET_DESCRIPTOR(DEVICE), 18 bytes.
echo 00 00000012 \
	00000001 00000001 00010003 00000001 00000000 \
	00000200 00000012 00000000 00000000 00000000 \
	8006000100001200 | hex >"$urb/cmd_submit_get_desc"
# Its RET_SUBMIT with the 18-byte device descriptor.
echo 01 00000012 \
	00000003 00000001 00000000 00000000 00000000 \
	00000000 00000012 00000000 00000000 00000000 0000000000000000 \
	120100020000004083044057000201020301 | hex >"$urb/ret_submit_get_desc"
# Bulk OUT of 8 bytes on ep 2, number_of_packets as the document has it.
echo 00 00000008 \
	00000001 00000002 00010003 00000000 00000002 \
	00000000 00000008 00000000 ffffffff 00000000 0000000000000000 \
	0102030405060708 | hex >"$urb/cmd_submit_bulk_out"
# CMD_UNLINK of seqnum 1 and the RET_UNLINK (-ECONNRESET).
{ echo 00 00000000 00000002 00000002 00010003 00000000 00000000 00000001 | hex
  zeros 24; } >"$urb/cmd_unlink"
{ echo 00 00000000 00000004 00000002 00000000 00000000 00000000 ffffff98 | hex
  zeros 24; } >"$urb/ret_unlink"
# Iso OUT on ep 3: 6 bytes, two packets of 3.
echo 00 00000006 \
	00000001 0000002a 00020005 00000000 00000003 \
	00000002 00000006 ffffffff 00000002 00000001 0000000000000000 \
	111213212223 \
	00000000 00000003 00000000 00000000 \
	00000003 00000003 00000000 00000000 | hex >"$urb/cmd_submit_iso_out"
# Iso IN reply: 3 packets of 8 in a 24-byte buffer, actual 3 + 0 + 5.
iso_ret() { # $1: actual_length of the last packet
	echo 01 00000018 \
		00000003 00000007 00000000 00000000 00000000 \
		00000000 00000008 00000100 00000003 00000001 0000000000000000 \
		a0a1a2c0c1c2c3c4 \
		00000000 00000008 00000003 00000000 \
		00000008 00000008 00000000 ffffffb9 \
		00000010 00000008 "$1" 00000000 | hex
}
iso_ret 00000005 >"$urb/ret_submit_iso_in"
iso_ret 00000004 >"$urb/ret_submit_iso_bad_sum"
# Near-misses: endpoint 16, a header one byte short.
echo 00 00000000 \
	00000001 00000003 00010003 00000001 00000010 \
	00000200 00000000 00000000 00000000 00000000 0000000000000000 | hex \
	>"$urb/cmd_submit_bad_ep"
head -c 52 "$urb/cmd_submit_get_desc" >"$urb/short_header"
