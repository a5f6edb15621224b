#!/bin/bash
# e2e-timeout: 300
# notify: our server (libusb backend, notify channel on TCP 65432) and our
# client daemon (usbip-notify-client, real /sys and /var/run/vhci_hcd) in the
# same guest. No manual attach anywhere: the daemon loads vhci-hcd itself and
# attaches what the server announces.
#   1. plug gadget zero -> attached on vhci and usable (usbtest case 1);
#      the plug-to-attached time is logged as an INFO check line
#   2. stock `usbip port` lists the attachment (the daemon's port record)
#   3. unplug -> detached, port free, record gone; replug -> same busid again
#   4. server restart -> the client reconnects and reattaches; one port only
#   5. two clients, one device: the second waits while the first holds it and
#      attaches when the first stops (--detach-on-exit); then a plug race:
#      exactly one wins, the other logs "busy", keeps running, and takes the
#      device over when the winner stops.
# The second client stands for another machine: its own state file and run
# dir, so it neither adopts nor removes the first one's port records.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"

BUSID=1-1
NOTIFY_PORT=65432
CLIENT_BIN="$E2E_BUILD/src/client/usbip-notify-client"
RUN_DIR=/var/run/vhci_hcd
declare -A client_pid client_state client_log client_args

cleanup() {
	local n
	for n in "${!client_pid[@]}"; do
		kill -TERM "${client_pid[$n]}" 2>/dev/null
	done
	sleep 1
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove zero
}
trap cleanup EXIT

if [ "$E2E_SERVER" != ours ]; then
	record SKIP "notify channel needs our server (E2E_SERVER=$E2E_SERVER)"
	e2e_finish
fi

now() { cut -d' ' -f1 /proc/uptime; }

# Our server, started before any device exists; its log accumulates over
# restarts.
notify_server_start() {
	local cmd
	cmd=$(ours_cmd)
	[ -x "${cmd%% *}" ] || { log "our server is not built: ${cmd%% *}"; return 1; }
	log "starting: $cmd"
	echo "=== start at $(now)" >> "$server_log"
	$cmd >> "$server_log" 2>&1 < /dev/null &
	server_pid=$!
	wait_for 20 tcp_listening "$USBIP_PORT" && wait_for 20 tcp_listening "$NOTIFY_PORT"
}

# client_start NAME ARGS...: one daemon, logging to client-NAME.log.
client_start() {
	local name=$1; shift
	client_state[$name]=/run/usbip-notify-client/state-$name
	client_log[$name]="$E2E_RESULTS/client-$name.log"
	client_args[$name]="$*"
	echo "=== start at $(now): $*" >> "${client_log[$name]}"
	"$CLIENT_BIN" --server 127.0.0.1 --log-level debug \
		--state-file "${client_state[$name]}" "$@" \
		>> "${client_log[$name]}" 2>&1 < /dev/null &
	client_pid[$name]=$!
	log "client $name: pid ${client_pid[$name]}, $*"
}

# client_stop NAME: SIGTERM; true when it exited with status 0.
client_stop() {
	local pid=${client_pid[$1]} rc
	kill -TERM "$pid" 2>/dev/null || return 1
	wait_for 15 proc_gone "$pid" || { kill -KILL "$pid"; return 1; }
	wait "$pid"
	rc=$?
	unset "client_pid[$1]"
	log "client $1 exited with $rc"
	[ "$rc" -eq 0 ]
}

client_alive() { kill -0 "${client_pid[$1]}" 2>/dev/null; }
client_subscribed() { grep -q 'state=subscribed' "${client_state[$1]}" 2>/dev/null; }
# client_attached NAME N: its state file counts N attachments.
client_attached() { grep -q "state=subscribed attached=$2\$" "${client_state[$1]}" 2>/dev/null; }
# client_log_count NAME REGEX: matching lines in its log.
client_log_count() { grep -cE "$2" "${client_log[$1]}"; }
client_logged() { [ "$(client_log_count "$1" "$2")" -ge "${3:-1}" ]; }

copy_attached() { usb_has_dev 0525 a4a0 vhci; }
copy_gone() { usb_no_dev 0525 a4a0 vhci; }
used_ports_are() { [ "$(vhci_used_ports | wc -l)" -eq "$1" ]; }
usbip_port_lists_busid() {
	run_t 20 usbip port 2>/dev/null | grep -q "usbip://127.0.0.1:$USBIP_PORT/$BUSID"
}
# No port record without a used vhci port behind it.
no_stale_records() {
	local f p used
	used=" $(vhci_used_ports | tr '\n' ' ') "
	for f in "$RUN_DIR"/port*; do
		[ -e "$f" ] || continue
		p=${f##*/port}
		[[ "$used" == *" $p "* ]] || { log "stale record $f: $(cat "$f")"; return 1; }
	done
	return 0
}

# usable: usbtest binds to the vhci copy and case 1 (bulk out) passes.
usable() {
	local copy node out
	copy=$(vhci_wait_dev 0525 a4a0 10) || return 1
	wait_for 20 usb_iface_driver_is "$copy" 0 usbtest || { log "usbtest did not bind"; return 1; }
	node=$(usb_devnode "$copy") || return 1
	out=$("$E2E_USBTEST_RUN" -c 1 -i 50 -l 1024 -t 30 -T 60 -k 1 "$node" 2>&1)
	log "usbtest_run on $node: $(echo "$out" | tr '\n' ';')"
	grep -q '^case 1: pass' <<< "$out"
}

# dmesg_time_after MARK REGEX: kernel timestamp of the first line matching
# REGEX after the last line holding MARK.
dmesg_time_after() {
	dmesg | awk -v mark="$1" -v re="$2" '
		index($0, mark) { t = ""; after = 1; next }
		after && t == "" && $0 ~ re { t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t) }
		END { print t }'
}

# record_attach_time LABEL MARK WHAT: INFO line with the time from MARK (a
# line written to /dev/kmsg right before WHAT) to vhci's "Device attached"
# and to the copy enumerated, from kernel timestamps.
record_attach_time() {
	local copy name t0 t1 t2
	copy=$(vhci_wait_dev 0525 a4a0 1) || return 1
	name=${copy##*/}
	t0=$(dmesg | grep -F "$2" | tail -1 | sed 's/^\[ *//; s/\].*//')
	t1=$(dmesg_time_after "$2" "vhci_hcd.*Device attached")
	t2=$(dmesg_time_after "$2" "usb $name: SerialNumber")
	record INFO "$1: $3 -> $(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
		printf "vhci attach %.2f s, copy enumerated %.2f s", b - a, c - a }') (kernel timestamps, TCG guest)"
}

# plug_and_time LABEL: plugs gadget zero on dummy_udc.0, waits for the copy
# on vhci and records how long it took.
plug_and_time() {
	local mark="e2e-mark: plug $1 $RANDOM"
	echo "$mark" > /dev/kmsg
	gadget_plug zero dummy_udc.0 || return 1
	wait_for 30 copy_attached || return 1
	record_attach_time "$1" "$mark" "UDC write"
}

log "server under test: $E2E_SERVER; client $CLIENT_BIN"
require "usbip-notify-client is built" test -x "$CLIENT_BIN"
require "usbtest_run available" test -x "$E2E_USBTEST_RUN"
require "dummy_hcd and libcomposite loaded" gadget_init
require "gadget zero created" gadget_zero_create zero
require "usbtest loaded" load_modules usbtest
require "our server listens on $USBIP_PORT and $NOTIFY_PORT" notify_server_start
check "vhci-hcd not loaded yet" test ! -e /sys/devices/platform/vhci_hcd.0

# --- 1. plug -> attached ---------------------------------------------------
client_start a --detach-on-exit
require "client a subscribes" wait_for 20 client_subscribed a
check "the daemon loaded vhci-hcd itself" test -e /sys/devices/platform/vhci_hcd.0
require "plug: attached without any manual attach" plug_and_time "first plug"
check "client a logged the attach" wait_for 10 client_logged a "attached $BUSID from 127.0.0.1"
check "client a state file: attached=1" wait_for 10 client_attached a 1
check "plug: one vhci port in use" used_ports_are 1
check "plug: device usable (usbtest case 1)" usable

# --- 2. usbip port ---------------------------------------------------------------
log "usbip port: $(run_t 20 usbip port 2>&1 | tr '\n' ';')"
check "stock usbip port lists usbip://127.0.0.1:$USBIP_PORT/$BUSID" usbip_port_lists_busid
check "usbip-notify-client status shows the record" \
	sh -c "'$CLIENT_BIN' status --state-file '${client_state[a]}' | grep -q 'from 127.0.0.1:$USBIP_PORT/$BUSID'"

# --- 3. unplug, replug ----------------------------------------------------------
require "unplug" gadget_unplug zero
check "unplug: the copy leaves vhci" wait_for 20 copy_gone
check "unplug: vhci ports free" wait_for 20 vhci_ports_free
check "unplug: client a saw the event" wait_for 10 client_logged a "unplugged $BUSID"
check "unplug: client a state file: attached=0" wait_for 10 client_attached a 0
check "unplug: no stale port record" no_stale_records
require "replug: attached again" plug_and_time "replug"
check "replug: same busid $BUSID attached again" \
	wait_for 10 client_logged a "attached $BUSID from 127.0.0.1" 2
check "replug: one vhci port in use" used_ports_are 1
check "replug: usbip port lists $BUSID" usbip_port_lists_busid
check "replug: device usable" usable

# --- 4. server restart -----------------------------------------------------------
sessions_before=$(client_log_count a 'subscribed \(server')
server_stop $BUSID
check "server stop: the kernel frees the vhci port" wait_for 20 vhci_ports_free
mark="e2e-mark: server restart $RANDOM"
echo "$mark" > /dev/kmsg
require "server restarted" notify_server_start
check "restart: client a reconnects" \
	wait_for 30 client_logged a 'subscribed \(server' $((sessions_before + 1))
check "restart: device attached again" wait_for 30 copy_attached
record_attach_time "server restart" "$mark" "server start"
check "restart: client a state file: attached=1" wait_for 10 client_attached a 1
sleep 2 # a duplicate attach would show up by now
check "restart: exactly one vhci port in use" used_ports_are 1
check "restart: exactly one copy on vhci" test "$(usb_dev_by_id 0525 a4a0 vhci | wc -l)" -eq 1
check "restart: no stale port record" no_stale_records
check "restart: usbip port lists $BUSID" usbip_port_lists_busid
check "restart: device usable" usable

# --- 5. two clients, one device --------------------------------------------------
client_start b --detach-on-exit --run-dir /tmp/client-b-run
check "client b subscribes" wait_for 20 client_subscribed b
sleep 3 # would have attached by now
check "held by a: client b does not attach it" client_attached b 0
check "held by a: still one vhci port in use" used_ports_are 1
check "held by a: client b keeps running" client_alive b
check "client a stops cleanly (--detach-on-exit)" client_stop a
check "a stopped: client b attaches the freed device" wait_for 30 client_attached b 1
check "a stopped: one vhci port in use" wait_for 10 used_ports_are 1
check "a stopped: device usable through b" usable

# A plug race: both clients see "plugged held=0" and import; one wins.
client_start a --detach-on-exit
check "client a subscribes again" wait_for 20 client_subscribed a
check "race: unplug" gadget_unplug zero
check "race: b detached (state file)" wait_for 20 client_attached b 0
check "race: vhci ports free" wait_for 20 vhci_ports_free
busy_re="$BUSID is busy"
busy_a=$(client_log_count a "$busy_re")
busy_b=$(client_log_count b "$busy_re")
check "race: replug" plug_and_time "race replug"
check "race: one of the clients attaches" \
	wait_for 20 sh -c "grep -q 'attached=1' '${client_state[a]}' '${client_state[b]}'"
sleep 3
if client_attached a 1; then winner=a loser=b busy_before=$busy_b
else winner=b loser=a busy_before=$busy_a; fi
log "race: client $winner won"
check "race: only client $winner holds it" client_attached $loser 0
check "race: exactly one vhci port in use" used_ports_are 1
check "race: client $loser logged busy" client_logged $loser "$busy_re" $((busy_before + 1))
check "race: client $loser keeps running" client_alive $loser
check "race: client $winner stops cleanly" client_stop $winner
check "race: client $loser takes the device over" wait_for 30 client_attached $loser 1
check "race: one vhci port in use" wait_for 10 used_ports_are 1
check "race: device usable through $loser" usable
check "client $loser stops cleanly and detaches" client_stop $loser
check "all stopped: vhci ports free" wait_for 20 vhci_ports_free
check "all stopped: no stale port record" no_stale_records

# --- health -----------------------------------------------------------------------
check "server still running" kill -0 "$server_pid"
check "no sanitizer report in server or client logs" \
	sh -c "! grep -l 'Sanitizer\|runtime error' '$server_log' '$E2E_RESULTS'/client-*.log"
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
