#!/bin/bash
# e2e-timeout: 360
# faults: a mass-storage gadget (random content) exported by the server under
# test and attached through vhci_hcd, then broken in the ways a real setup is:
#  (d) the server must not offer the vhci copy back: with the device attached
#      `usbip list -r` shows 1-1 and no device of a vhci bus;
#  (c) `usbip detach` while O_DIRECT reads are busy: the port is freed, the
#      server releases the device and gives usb-storage back to the local
#      copy's interface; a new attach works and reads the right data;
#  (a) the gadget is unplugged (UDC "") while reads are busy: the server fails
#      what is in flight and ends the session, vhci frees the port; plugged
#      again, the server offers it again (rescan) and it attaches and reads;
#  (b) the server is killed (-9) while attached (idle): vhci frees the port;
#      a restarted server exports it again and it attaches and reads.
# Any oops/BUG/WARNING in the guest fails the scenario.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"
. "$E2E_ROOT/lib/blockdev.sh"

BUSID=1-1
SIZE_MB=32
IMG=/tmp/e2e-ms.img
LOCAL=/sys/bus/usb/devices/$BUSID
busy_pid=""

cleanup() {
	[ -z "$busy_pid" ] || kill "$busy_pid" 2>/dev/null
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove ms
}
trap cleanup EXIT

# busy_reads DEV: O_DIRECT reads of the whole disk, over and over, in the
# background, until the disk goes away (or 120 s).
busy_reads() {
	timeout -k 1 120 sh -c \
		'while dd if="$1" of=/dev/null bs=1M iflag=direct status=none; do :; done' \
		_ "$1" > /dev/null 2>&1 &
	busy_pid=$!
}
busy_ended() { proc_gone "$busy_pid"; }

# reads_running DEV: the disk has completed reads since we last looked.
reads_running() {
	local a b
	read -r a _ < "/sys/block/${1#/dev/}/stat" || return 1
	sleep 1
	read -r b _ < "/sys/block/${1#/dev/}/stat" || return 1
	[ "$b" -gt "$a" ]
}

# attach_and_read: attaches $BUSID, waits for the copy's disk and checks that
# its first 4 MiB are the gadget's. Sets COPY and VDISK.
attach_and_read() {
	COPY="" VDISK=""
	client_attach 127.0.0.1 $BUSID || { log "attach failed"; return 1; }
	COPY=$(usb_find_wait 1d6b 0104 vhci 30) || { log "no vhci copy"; return 1; }
	VDISK=$(usb_wait_blockdev "$COPY" 60) || { log "no disk on $COPY"; return 1; }
	log "attached: $COPY, disk $VDISK"
	run_t 60 dd if="$VDISK" bs=1M count=4 iflag=direct status=none |
		cmp -s - <(head -c $((4 * 1024 * 1024)) "$IMG")
}

server_alive() { [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; }
local_storage_bound() { usb_iface_driver_is "$LOCAL" 0 usb-storage; }
local_not_claimed() { [ "$(usb_iface_driver "$LOCAL" 0)" != usbfs ]; }
session_ended_in_log() { grep -q "$1" "$server_log"; }
# No device but $BUSID was ever exported, plugged or seen arriving.
only_busid_in_log() {
	! grep -E 'exporting|plugged|arrived' "$server_log" | grep -v " ${BUSID}[ :(]"
}
more_released() { [ "$(grep -c released "$server_log")" -gt "$n_released" ]; }

log "server under test: $E2E_SERVER"
require "dummy_hcd, libcomposite, usb-storage, vhci-hcd loaded" \
	eval 'gadget_init && load_modules usb-storage sd_mod vhci-hcd'
require "mass-storage gadget created (${SIZE_MB} MiB)" gadget_ms_create ms $SIZE_MB
require "random content in its backing file" \
	eval "head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom | dd of=$IMG conv=notrunc status=none"
require "gadget plugged" gadget_plug ms
require "gadget enumerates as $BUSID" wait_for 20 usb_found 1d6b 0104 local
require "usb-storage binds to the local copy" wait_for 30 local_storage_bound
require "server exports $BUSID" server_start $BUSID
require "attach and read through vhci" attach_and_read

# --- (d) no re-export of the vhci copy -----------------------------------------
vhci_ids=$(usb_busids_on_vhci | tr '\n' ' ')
log "devices on vhci buses: $vhci_ids"
sleep 3    # a few of the backend's 1 s rescans see the vhci copy
listed=$(run_t 20 usbip list -r 127.0.0.1 2>/dev/null |
	sed -n 's/^ *\([0-9][0-9]*-[0-9.]*\):.*/\1/p' | tr '\n' ' ')
log "usbip list -r 127.0.0.1: $listed"
check "(d) the list is exactly $BUSID, no vhci copy ($vhci_ids)" test "$listed" = "$BUSID "
check "(d) the server never offered a vhci device" only_busid_in_log

# --- (c) detach while busy ------------------------------------------------------
busy_reads "$VDISK"
check "(c) reads are running through vhci" reads_running "$VDISK"
check "(c) usbip detach while busy" client_detach_all
check "(c) the vhci port is freed" wait_for 20 vhci_ports_free
check "(c) the busy reads end" wait_for 30 busy_ended
check "(c) the vhci copy is gone" wait_for 20 usb_not_found 1d6b 0104 vhci
check "(c) server still running" server_alive
check "(c) server released the device" wait_for 20 session_ended_in_log 'released'
check "(c) usb-storage is bound to the local $BUSID again" wait_for 30 local_storage_bound
check "(c) server lists $BUSID again" wait_for 20 server_lists $BUSID
require "(c) attach again and read" attach_and_read

# --- (a) unplug while busy --------------------------------------------------------
n_released=$(grep -c 'released' "$server_log")
busy_reads "$VDISK"
check "(a) reads are running through vhci" reads_running "$VDISK"
check "(a) gadget unplugged (UDC \"\") while busy" gadget_unplug ms
check "(a) the local $BUSID is gone" wait_for 20 usb_not_found 1d6b 0104 local
check "(a) the vhci port is freed" wait_for 30 vhci_ports_free
check "(a) the busy reads end" wait_for 30 busy_ended
check "(a) the vhci copy is gone" wait_for 20 usb_not_found 1d6b 0104 vhci
check "(a) server still running" server_alive
check "(a) server ended the session" wait_for 20 more_released
check "(a) no kernel trouble after the unplug" no_kernel_trouble
require "(a) gadget plugged again" gadget_plug ms
require "(a) it enumerates as $BUSID again" wait_for 20 usb_found 1d6b 0104 local
check "(a) server offers $BUSID again (rescan)" wait_for 30 server_lists $BUSID
require "(a) attach again and read" attach_and_read

# --- (b) server killed while attached ----------------------------------------------
# Idle: killed in the middle of a bulk transfer, the device itself is left
# mid-command and a new session cannot recover it (see faults_kill_busy.sh).
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=""
check "(b) the vhci port is freed after kill -9" wait_for 30 vhci_ports_free
check "(b) the vhci copy is gone" wait_for 20 usb_not_found 1d6b 0104 vhci
check "(b) the local $BUSID is still there" usb_found 1d6b 0104 local
server_log="$E2E_RESULTS/server-restarted.log"
require "(b) server restarted, exports $BUSID" server_start $BUSID
require "(b) attach again and read" attach_and_read

check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
# Nothing gives usb-storage back after a kill -9 (usbfs only releases the
# interface), and the restarted server gives back only what it took itself.
check "the server let go of the local $BUSID interface" wait_for 20 local_not_claimed
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
