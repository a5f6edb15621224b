#!/bin/bash
# e2e-timeout: 240
# faults_kill_busy: the server is killed (-9) while O_DIRECT reads of an
# attached mass-storage gadget are in flight, then restarted; a new attach
# must give a working disk again. The killed server leaves the device in the
# middle of a SCSI command; the restarted one resets it before the session
# (the restarted server logs at debug level to server-restarted.log).
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"
. "$E2E_ROOT/lib/blockdev.sh"

BUSID=1-1
SIZE_MB=32
IMG=/tmp/e2e-ms.img
busy_pid=""

cleanup() {
	[ -z "$busy_pid" ] || kill "$busy_pid" 2>/dev/null
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove ms
}
trap cleanup EXIT

busy_reads() {
	timeout -k 1 120 sh -c \
		'while dd if="$1" of=/dev/null bs=1M iflag=direct status=none; do :; done' \
		_ "$1" > /dev/null 2>&1 &
	busy_pid=$!
}
busy_ended() { proc_gone "$busy_pid"; }

attach_and_read() {
	COPY="" VDISK=""
	client_attach 127.0.0.1 $BUSID || { log "attach failed"; return 1; }
	COPY=$(usb_find_wait 1d6b 0104 vhci 30) || { log "no vhci copy"; return 1; }
	VDISK=$(usb_wait_blockdev "$COPY" 60) || { log "no disk on $COPY"; return 1; }
	log "attached: $COPY, disk $VDISK"
	run_t 60 dd if="$VDISK" bs=1M count=4 iflag=direct status=none |
		cmp -s - <(head -c $((4 * 1024 * 1024)) "$IMG")
}

require "modules loaded" eval 'gadget_init && load_modules usb-storage sd_mod vhci-hcd'
require "mass-storage gadget created" gadget_ms_create ms $SIZE_MB
require "random content" \
	eval "head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom | dd of=$IMG conv=notrunc status=none"
require "gadget plugged" gadget_plug ms
require "gadget enumerates as $BUSID" wait_for 20 usb_found 1d6b 0104 local
require "server exports $BUSID" server_start $BUSID
require "attach and read" attach_and_read
busy_reads "$VDISK"
sleep 2
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=""
check "the vhci port is freed after kill -9" wait_for 30 vhci_ports_free
check "the busy reads end" wait_for 30 busy_ended
server_log="$E2E_RESULTS/server-restarted.log"
E2E_OURS_CMD="$(ours_cmd) --verbose"
require "server restarted, exports $BUSID" server_start $BUSID
check "attach again and read" attach_and_read
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
