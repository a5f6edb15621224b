#!/bin/bash
# e2e-timeout: 240
# hid: a HID boot-keyboard gadget exported by the server under test and
# attached through vhci_hcd; usbhid binds to the attached copy (interrupt
# endpoints through USB/IP). Reports written on the gadget side (/dev/hidgN)
# arrive byte for byte on the copy's hidraw node and as the expected key
# events on its evdev node (found through sysfs); output reports (LEDs)
# written to hidraw arrive at the gadget over the interrupt OUT endpoint.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"

BUSID=1-1
D=/tmp/e2e-hid
readers=()

cleanup() {
	local p
	for p in "${readers[@]}"; do kill "$p" 2>/dev/null; done
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove hid
}
trap cleanup EXIT

# hid_node SYSFS_DIR CLASS PATTERN: /dev node of the copy's HID device,
# e.g. hid_node DIR hidraw 'hidraw/hidraw*' or hid_node DIR input 'input/input*/event*'.
hid_node() {
	local n
	for n in "$1"/*:*/[0-9A-F]*:*:*.*/$3; do
		[ -e "$n" ] || continue
		case "$2" in
		hidraw) [ -c "/dev/${n##*/}" ] && { echo "/dev/${n##*/}"; return 0; } ;;
		input) [ -c "/dev/input/${n##*/}" ] && { echo "/dev/input/${n##*/}"; return 0; } ;;
		esac
	done
	return 1
}
has_hidraw() { hid_node "$1" hidraw 'hidraw/hidraw*' > /dev/null; }
has_event() { hid_node "$1" input 'input/input*/event*' > /dev/null; }

# Boot keyboard input reports (modifiers, reserved, 6 key usages):
# 'a'; shift+'b'; 'c'+'d' together; each followed by "all released".
REPORTS=(
	'\x00\x00\x04\x00\x00\x00\x00\x00' '\x00\x00\x00\x00\x00\x00\x00\x00'
	'\x02\x00\x05\x00\x00\x00\x00\x00' '\x00\x00\x00\x00\x00\x00\x00\x00'
	'\x00\x00\x06\x07\x00\x00\x00\x00' '\x00\x00\x00\x00\x00\x00\x00\x00'
)
# The key events they mean (code:value; KEY_A 30, KEY_LEFTSHIFT 42, KEY_B 48,
# KEY_C 46, KEY_D 32), in the order hid-input reports them: a report's
# modifier bits before its key array, releases before presses in the array.
EXPECTED_KEYS="30:1 30:0 42:1 48:1 42:0 48:0 46:1 32:1 46:0 32:0"

# send_reports: each report in one write() to the gadget's /dev/hidgN.
send_reports() {
	local r i=0
	for r in "${REPORTS[@]}"; do
		printf '%b' "$r" > "$D/r$i"
		run_t 10 dd if="$D/r$i" of="$hidg" bs=8 count=1 status=none || return 1
		i=$((i + 1))
	done
}

# key_events FILE: EV_KEY events of an evdev dump as "code:value", without
# autorepeats (value 2: a slow guest may hold a key past the repeat delay).
# struct input_event on x86-64: 16 bytes time, u16 type, u16 code, s32 value.
key_events() {
	od -An -v -tu2 -w24 "$1" |
		awk '$9 == 1 && $11 != 2 { printf "%s%d:%d", sep, $10, $11; sep = " " } END { print "" }'
}

mkdir -p "$D"
log "server under test: $E2E_SERVER"
require "dummy_hcd, libcomposite, usbhid, evdev loaded" \
	eval 'gadget_init && load_modules usbhid hid_generic evdev'
require "HID keyboard gadget created" gadget_hid_create hid
require "gadget plugged" gadget_plug hid
require "gadget enumerates as $BUSID" wait_for 20 usb_found 1d6b 0104 local
find_hidg() {
	local n
	for n in /sys/class/hidg/hidg*; do
		[ -c "/dev/${n##*/}" ] && { echo "/dev/${n##*/}"; return 0; }
	done
	return 1
}
require "gadget's /dev/hidgN exists" wait_for 10 find_hidg
hidg=$(find_hidg)
require "server exports $BUSID" server_start $BUSID
require "vhci-hcd loaded" client_init
require "usbip attach -b $BUSID" client_attach 127.0.0.1 $BUSID
copy=$(usb_find_wait 1d6b 0104 vhci 30)
require "attached copy appears on a vhci bus" test -n "$copy"
require "usbhid binds: hidraw node of the copy" wait_for 30 has_hidraw "$copy"
require "usbhid binds: evdev node of the copy" wait_for 30 has_event "$copy"
hidraw=$(hid_node "$copy" hidraw 'hidraw/hidraw*')
event=$(hid_node "$copy" input 'input/input*/event*')
log "attached copy: $copy, $hidraw, $event; gadget $hidg"

# --- input reports: gadget -> host ---------------------------------------------
expected_raw=$(printf '%b' "${REPORTS[@]}" | od -An -v -tx1 | tr -s ' \n' ' ')
nbytes=$((${#REPORTS[@]} * 8))
timeout -k 1 30 head -c $nbytes "$hidraw" > "$D/raw.out" & raw_pid=$!
timeout -k 1 30 cat "$event" > "$D/ev.out" & ev_pid=$!
readers+=("$raw_pid" "$ev_pid")
sleep 1    # both readers open: usbhid polls the interrupt IN endpoint
check "gadget sends ${#REPORTS[@]} input reports" send_reports
check "hidraw got every report" wait "$raw_pid"
got_raw=$(od -An -v -tx1 "$D/raw.out" | tr -s ' \n' ' ')
log "hidraw: $got_raw"
check "hidraw reports byte for byte" test "$got_raw" = "$expected_raw"
wait_for 10 eval '[ "$(key_events "$D/ev.out")" = "$EXPECTED_KEYS" ]'
kill "$ev_pid" 2>/dev/null
got_keys=$(key_events "$D/ev.out")
log "evdev keys: $got_keys"
check "evdev key events ($EXPECTED_KEYS)" test "$got_keys" = "$EXPECTED_KEYS"

# --- output reports: host -> gadget (LEDs over the interrupt OUT endpoint) ------
timeout -k 1 20 cat "$hidg" > "$D/out.bin" & out_pid=$!
readers+=("$out_pid")
sleep 0.5
leds_sent() {
	# No report IDs: hidraw takes a leading 0 and sends the 1-byte report.
	printf '\x00\x05' > "$D/led1"; printf '\x00\x02' > "$D/led2"
	run_t 10 dd if="$D/led1" of="$hidraw" bs=2 count=1 status=none &&
		run_t 10 dd if="$D/led2" of="$hidraw" bs=2 count=1 status=none
}
leds_arrived() { [ "$(od -An -v -tx1 "$D/out.bin" | tr -d ' \n' | tail -c 4)" = 0502 ]; }
check "host writes two LED output reports to $hidraw" leds_sent
check "gadget reads them in order (05 02)" wait_for 10 leds_arrived
log "gadget got output bytes: $(od -An -v -tx1 "$D/out.bin" | tr -s ' \n' ' ')"
kill "$out_pid" 2>/dev/null

for p in "${readers[@]}"; do kill "$p" 2>/dev/null; done
readers=()
check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "attached copy is gone" wait_for 20 usb_not_found 1d6b 0104 vhci
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
