#!/bin/bash
# e2e-timeout: 300
# e2e-qemu-args: -device qemu-xhci,id=xhci -device usb-audio,bus=xhci.0,audiodev=snd0,buffer=96000 -audiodev wav,id=snd0,path=@RUN_DIR@/audio-out.wav,out.frequency=48000,out.channels=2,out.format=s16
# e2e-host-check: tools/iso_pattern.py check
# iso: isochronous OUT through the server under test. dummy_hcd has no iso, so
# the device is QEMU's usb-audio (46f4:0002, full speed, 48 kHz 16-bit stereo,
# one iso OUT endpoint) on an emulated xHCI; QEMU's wav audio backend writes
# what the device plays to audio-out.wav in the results directory on the host.
# The server exports it, `usbip attach` imports it, snd-usb-audio binds to the
# vhci copy and aplay plays a numbered pattern (tools/iso_pattern.py) through
# it. The wav file is complete only once QEMU exits, so the pattern check runs
# on the host afterwards (the e2e-host-check line): >= 90% of the frames must
# arrive in order, and none changed, repeated or reordered.
#
# Why 90% and not all: iso has no retries by design. Every link of the chain
# (snd-usb-audio -> vhci -> TCP -> server -> usbfs -> emulated xHCI ->
# usb-audio's buffer -> QEMU's audio timer -> wav) runs in real time on TCG,
# where a late packet is legitimately dropped (or the device underruns and
# QEMU writes silence). Losses show as gaps, counted and printed as INFO;
# corruption, repeats or reordering would be server bugs and fail outright.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"

VID=46f4 PID=0002
PATTERN=/tmp/iso-pattern.raw
PATTERN_SECONDS=4
FRAMES=$((48000 * PATTERN_SECONDS))
busid=""
trap 'client_detach_all >/dev/null 2>&1; server_stop "$busid"' EXIT

if ! command -v aplay >/dev/null || ! command -v amixer >/dev/null; then
	record SKIP "aplay/amixer (alsa-utils) are not installed on the host"
	e2e_finish
fi

log "server under test: $E2E_SERVER"
require "xhci-pci loaded" load_modules xhci-pci
local_dev=$(usb_find_wait $VID $PID local 20)
require "QEMU usb-audio ($VID:$PID) on the xHCI bus" test -n "$local_dev"
busid=${local_dev##*/}
log "usb-audio is $busid ($(sysfs_read "$local_dev/speed") Mb/s)"
require "server exports $busid" server_start "$busid"

# The server offers that device and nothing else: no root hubs, and (after
# the attach below) not the vhci copy either. Prints the offered busids.
exported() {
	run_t 20 usbip list -r 127.0.0.1 2>/dev/null |
		sed -n 's/^ *\([0-9][0-9]*-[0-9.]*\): .*/\1/p' | tr '\n' ' '
}
check "server offers only $busid (offered: $(exported))" test "$(exported)" = "$busid "

require "vhci-hcd loaded" client_init
require "usbip attach -b $busid" client_attach 127.0.0.1 "$busid"
copy=$(usb_find_wait $VID $PID vhci 30)
require "attached copy appears on a vhci bus" test -n "$copy"
log "attached copy: $copy"
# While imported, a server may list the device or leave it out; never the copy.
offered=$(exported)
check "server does not offer the vhci copy ${copy##*/} (offered: $offered)" \
	eval '[ "$offered" = "$busid " ] || [ -z "$offered" ]'

# Loaded only now: the local device is claimed by the server, so the driver
# can bind only to the copy.
require "snd-usb-audio loaded" load_modules snd-usb-audio
# copy_card: the ALSA card number of the vhci copy.
copy_card() {
	local c
	for c in /sys/class/sound/card*; do
		[ -e "$c/device" ] || continue
		[[ "$(readlink -f "$c/device")" == "$(readlink -f "$copy")"/* ]] || continue
		echo "${c##*/card}"
		return 0
	done
	return 1
}
require "snd-usb-audio binds to the copy (an ALSA card)" wait_for 30 eval 'copy_card > /dev/null'
card=$(copy_card)
log "ALSA card $card; cards: $(tr '\n' ';' < /proc/asound/cards)"

# Below 100% QEMU scales the samples; at 100% they reach the wav file
# unchanged (the host check fails on any changed frame).
mixer_full() {
	local ctl rc=0
	while IFS= read -r ctl; do
		run_t 10 amixer -q -c "$card" sset "$ctl" 100% unmute ||
			run_t 10 amixer -q -c "$card" sset "$ctl" 100% || rc=1
	done < <(run_t 10 amixer -c "$card" scontrols |
		sed -n "s/^Simple mixer control '\(.*\)',0$/\1/p")
	return $rc
}
check "mixer of card $card at 100%" mixer_full
log "mixer: $(run_t 10 amixer -c "$card" 2>&1 | tr '\n' ';')"

require "pattern of $PATTERN_SECONDS s generated" \
	python3 "$E2E_ROOT/tools/iso_pattern.py" gen "$FRAMES" "$PATTERN"
# Tells the host check what to look for (written before playing, so a failed
# play still gets its wav file checked).
echo "frames=$FRAMES" > "$E2E_RESULTS/iso-expect"
t0=$SECONDS
run_t 90 aplay -D "hw:$card,0" -t raw -f S16_LE -r 48000 -c 2 "$PATTERN" \
	> "$E2E_RESULTS/aplay.log" 2>&1
aplay_rc=$?
log "aplay exit $aplay_rc after $((SECONDS - t0)) s: $(tr '\n' ';' < "$E2E_RESULTS/aplay.log")"
check "aplay plays $PATTERN_SECONDS s through the vhci copy" test "$aplay_rc" -eq 0
check "aplay reports no underrun" eval '! grep -qi underrun "$E2E_RESULTS/aplay.log"'

# Iso trouble on either side: the kernel (vhci_hcd, usbip, the copy's driver)
# and our server's log. Prints the lines.
iso_trouble() {
	dmesg | grep -E 'vhci|usbip|snd-usb-audio|snd_usb_audio|usb [0-9]+-[0-9.]+:' |
		grep -iE 'iso|EXDEV|actual_length|error|fail|cannot|unlink'
	if [ "$E2E_SERVER" = ours ]; then
		grep -iE 'iso|EXDEV|actual_length|error|fail' "$server_log"
	fi
}
no_iso_trouble() {
	local lines
	lines=$(iso_trouble)
	[ -z "$lines" ] && return 0
	echo "$lines"
	return 1
}
log "kernel lines on usb/vhci/snd: $(dmesg | grep -E 'vhci|usbip|snd|usb [0-9]' | tail -30 | tr '\n' ';')"
check "no iso errors logged (kernel: vhci/usbip/the copy; our server)" no_iso_trouble
check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "attached copy is gone" wait_for 20 usb_not_found $VID $PID vhci
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
