#!/bin/bash
# e2e-timeout: 540
# notify_storage: USB traffic does not depend on the notify channel. Our
# server exports a 256 MiB mass-storage gadget (tmpfs file); our client
# daemon attaches it (no manual attach). 256 MiB of random data are written
# to the vhci disk and read back, both O_DIRECT, and half-way through each
# pass the daemon's notify connection is destroyed (`ss -K`, a reset as a
# vanished path or a crashed peer would end it). The daemon reconnects while
# the transfer goes on; the checksums of what was written, what was read
# back and what reached the gadget's file must all match, and the same vhci
# port stays attached throughout (no detach, no second attach).
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"
. "$E2E_ROOT/lib/blockdev.sh"

BUSID=1-1
SIZE_MB=256
BYTES=$((SIZE_MB * 1024 * 1024))
NOTIFY_PORT=65432
IMG=/dev/shm/e2e-ms.img # /tmp holds 256 MiB in the guest: not enough
CLIENT_BIN="$E2E_BUILD/src/client/usbip-notify-client"
CLIENT_LOG="$E2E_RESULTS/client.log"
CLIENT_STATE=/run/usbip-notify-client/state-e2e
client_pid=""
dd_pid=""

cleanup() {
	[ -n "$dd_pid" ] && kill "$dd_pid" 2>/dev/null
	[ -n "$client_pid" ] && kill -TERM "$client_pid" 2>/dev/null
	sleep 1
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove ms
	rm -f "$IMG"
}
trap cleanup EXIT

info() { echo "INFO: $*" | tee -a "$E2E_CHECKS"; }

if [ "$E2E_SERVER" != ours ]; then
	record SKIP "notify channel needs our server (E2E_SERVER=$E2E_SERVER)"
	e2e_finish
fi

client_logged_n() { grep -cE "$1" "$CLIENT_LOG"; }
subscriptions() { client_logged_n 'subscribed \(server'; }
subscribed_more_than() { [ "$(subscriptions)" -gt "$1" ]; }
# The daemon's end of its notify connection(s): local address:port.
notify_ends() { ss -Htn state established "( dport = :$NOTIFY_PORT )" 2>/dev/null | awk '{ print $3 }'; }
end_gone() { ! notify_ends | grep -qxF "$1"; }

# sectors_done DEV FIELD: sectors read (3) or written (7) on DEV so far.
sectors_done() { awk -v f="$2" '{ print $f }' "/sys/block/${1#/dev/}/stat"; }
past_half() { [ "$(sectors_done "$1" "$2")" -ge $((BYTES / 512 / 2 + $3)) ]; }

# drop_notify LABEL DEV FIELD BASE: once DEV has moved half the data
# (FIELD/BASE as sectors_done), destroys the daemon's notify connection and
# waits until the daemon has subscribed again; the transfer is still
# running then.
drop_notify() {
	local label=$1 dev=$2 field=$3 base=$4 before t0 ends
	require "$label: half of the data moved" wait_for 200 past_half "$dev" "$field" "$base"
	before=$(subscriptions)
	ends=$(notify_ends)
	check "$label: the daemon has one notify connection" test "$(echo "$ends" | wc -w)" -eq 1
	t0=$(now_s)
	check "$label: ss -K destroys it" run_t 10 ss -K dst 127.0.0.1 dport = :$NOTIFY_PORT
	check "$label: that connection is gone" wait_for 5 end_gone "$ends"
	check "$label: the daemon subscribed again" wait_for 30 subscribed_more_than "$before"
	info "$label: notify dropped half-way, daemon subscribed again after $(elapsed_since "$t0") s"
	check "$label: the transfer is still running" kill -0 "$dd_pid"
}

sum_of_image() { head -c $BYTES "$IMG" | sha256sum | cut -d' ' -f1; }

log "server under test: $E2E_SERVER; client $CLIENT_BIN"
require "usbip-notify-client is built" test -x "$CLIENT_BIN"
require "dummy_hcd, libcomposite, usb-storage loaded" \
	eval 'gadget_init && load_modules usb-storage sd_mod inet_diag tcp_diag'
require "mass-storage gadget created (${SIZE_MB} MiB on tmpfs)" gadget_ms_create ms $SIZE_MB /dev/shm
log "starting: $(ours_cmd)"
$(ours_cmd) > "$server_log" 2>&1 < /dev/null &
server_pid=$!
require "our server listens on $USBIP_PORT and $NOTIFY_PORT" \
	eval "wait_for 20 tcp_listening $USBIP_PORT && wait_for 20 tcp_listening $NOTIFY_PORT"
"$CLIENT_BIN" --server 127.0.0.1 --log-level debug --state-file "$CLIENT_STATE" \
	> "$CLIENT_LOG" 2>&1 < /dev/null &
client_pid=$!
require "the daemon subscribes" wait_for 20 subscribed_more_than 0
require "gadget plugged" gadget_plug ms
copy=$(usb_find_wait 1d6b 0104 vhci 60)
require "the daemon attached the disk (copy on a vhci bus)" test -n "$copy"
vdisk=$(usb_wait_blockdev "$copy" 60)
require "vhci disk found through sysfs" test -n "$vdisk"
port_before=$(vhci_used_ports | tr '\n' ' ')
log "attached copy: $copy, disk $vdisk, vhci port(s) $port_before"

# --- write, notify dropped half-way -------------------------------------------
wbase=$(sectors_done "$vdisk" 7)
t0=$(now_s)
( set -o pipefail; head -c $BYTES /dev/urandom | tee >(sha256sum | cut -d' ' -f1 > /tmp/e2e-wsum) |
	dd of="$vdisk" bs=1M iflag=fullblock oflag=direct conv=fsync status=none ) &
dd_pid=$!
drop_notify "write" "$vdisk" 7 "$wbase"
wait "$dd_pid"
wrc=$?
dd_pid=""
w=$(elapsed_since "$t0")
require "write of $SIZE_MB MiB (O_DIRECT) completed" test "$wrc" -eq 0
info "write: $SIZE_MB MiB in ${w}s = $(mb_per_s $BYTES "$w") MB/s"
sleep 0.5 # the tee'd checksum finishes after dd
wsum=$(cat /tmp/e2e-wsum)

# --- read back, notify dropped half-way again -----------------------------------
rbase=$(sectors_done "$vdisk" 3)
t0=$(now_s)
( set -o pipefail; dd if="$vdisk" bs=1M count=$SIZE_MB iflag=direct status=none | sha256sum |
	cut -d' ' -f1 > /tmp/e2e-rsum ) &
dd_pid=$!
drop_notify "read" "$vdisk" 3 "$rbase"
wait "$dd_pid"
rrc=$?
dd_pid=""
r=$(elapsed_since "$t0")
require "read of $SIZE_MB MiB (O_DIRECT) completed" test "$rrc" -eq 0
info "read: $SIZE_MB MiB in ${r}s = $(mb_per_s $BYTES "$r") MB/s"
rsum=$(cat /tmp/e2e-rsum)
log "sha256 written $wsum, read back $rsum"
check "read-back checksum equals the written one" test -n "$wsum" -a "$wsum" = "$rsum"
check "the gadget's backing file holds the data" test "$(sum_of_image)" = "$wsum"

# --- the attachment was never touched --------------------------------------------
check "the same vhci port is in use" test "$(vhci_used_ports | tr '\n' ' ')" = "$port_before"
check "the daemon attached once" test "$(client_logged_n "attached $BUSID from 127.0.0.1")" -eq 1
check "the daemon never detached" test "$(client_logged_n "detached $BUSID")" -eq 0
check "the daemon subscribed three times (start + 2 drops)" test "$(subscriptions)" -eq 3
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
