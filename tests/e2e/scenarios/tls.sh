#!/bin/bash
# e2e-timeout: 480
# tls: our server and our client daemon with TLS 1.3 and client
# certificates (made here with openssl), the importing side the stock
# vhci_hcd. One boot, two parts:
#   1. the tls module unavailable (the kernel's module loader pointed at
#      /bin/false): the daemon attaches gadget zero through its userspace
#      relay, the server serves through its own; usbtest case 1 passes.
#   2. the tls module loadable: attachments use kernel TLS on both ends
#      (logged, and /proc/net/tls_stat counts the sockets); usbtest cases
#      1, 2, 9, 27, 28 pass; a 16 MiB O_DIRECT write/read of a mass-storage
#      gadget has equal checksums; a capture of the loopback traffic on
#      port 3240 during all of it holds TLS records and none of the known
#      plaintext (gadget zero's device descriptor, its product string, the
#      marker written to the disk); no decrypt errors.
#   3. the same disk pass through kernel TLS without the capture, then
#      through a plaintext server and client: both times as INFO lines, with
#      the ratio (a TCG figure, never asserted).
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/blockdev.sh"

BUSID=1-1
NOTIFY_PORT=65432
CLIENT_BIN="$E2E_BUILD/src/client/usbip-notify-client"
PKI=/tmp/e2e-pki
client_log="$E2E_RESULTS/client.log"
client_pid=""
cap_pid=""
CAP=/tmp/e2e-cap.bin
SIZE_MB=16
BYTES=$((SIZE_MB * 1024 * 1024))
DATA=/tmp/e2e-data
BACK=/tmp/e2e-readback
IMG=/tmp/e2e-ms.img
orig_modprobe=$(cat /proc/sys/kernel/modprobe)

cleanup() {
	[ -n "$client_pid" ] && kill -TERM "$client_pid" 2>/dev/null
	[ -n "$cap_pid" ] && kill -TERM "$cap_pid" 2>/dev/null
	sleep 1
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove zero
	gadget_remove ms
	echo "$orig_modprobe" > /proc/sys/kernel/modprobe
}
trap cleanup EXIT

if [ "$E2E_SERVER" != ours ]; then
	record SKIP "TLS needs our server (E2E_SERVER=$E2E_SERVER)"
	e2e_finish
fi

info() { echo "INFO: $*" | tee -a "$E2E_CHECKS"; }

make_pki() {
	local ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
	mkdir -p "$PKI" && cd "$PKI" || return 1
	openssl req -x509 $ec -keyout ca.key -out ca.pem -subj /CN=e2e-ca -days 2 &&
	openssl req $ec -keyout server.key -out server.csr -subj /CN=e2e-server &&
	printf 'subjectAltName=IP:127.0.0.1\n' > server.ext &&
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem &&
	openssl req $ec -keyout client.key -out client.csr -subj /CN=bench1 &&
	printf 'subjectAltName=DNS:bench1\n' > client.ext &&
	openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile client.ext -out client.pem
	local rc=$?
	cd / || return 1
	return $rc
} > /dev/null 2>&1

tls_server_start() {
	local cmd="$E2E_BUILD/src/server/usbip-notify-server --listen 127.0.0.1 --port $USBIP_PORT"
	cmd+=" --notify-listen 127.0.0.1 --no-announce --control none"
	cmd+=" --tls-cert $PKI/server.pem --tls-key $PKI/server.key --tls-ca $PKI/ca.pem"
	log "starting: $cmd"
	$cmd > "$server_log" 2>&1 < /dev/null &
	server_pid=$!
	wait_for 20 tcp_listening "$USBIP_PORT" && wait_for 20 tcp_listening "$NOTIFY_PORT"
}

client_start() {
	echo "=== start" >> "$client_log"
	"$CLIENT_BIN" --server 127.0.0.1 --log-level debug --detach-on-exit --control none \
		--tls-cert "$PKI/client.pem" --tls-key "$PKI/client.key" --tls-ca "$PKI/ca.pem" \
		>> "$client_log" 2>&1 < /dev/null &
	client_pid=$!
}

client_stop() {
	kill -TERM "$client_pid" 2>/dev/null || return 1
	wait_for 15 proc_gone "$client_pid" || { kill -KILL "$client_pid"; return 1; }
	client_pid=""
	wait_for 20 vhci_ports_free
}

tls_loaded() { grep -q '^tls ' /proc/modules; }
tls_stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat 2>/dev/null; }
logged() { grep -qE "$2" "$1"; }
# count FILE REGEX
count() { grep -cE "$2" "$1"; }

# usbtest_cases CASES ITER: usbtest on the vhci copy of gadget zero.
usbtest_cases() {
	local copy node out
	copy=$(vhci_wait_dev 0525 a4a0 20) || return 1
	wait_for 20 usb_iface_driver_is "$copy" 0 usbtest || { log "usbtest did not bind"; return 1; }
	node=$(usb_devnode "$copy") || return 1
	out=$("$E2E_USBTEST_RUN" -c "$1" -i "$2" -l 1024 -v 512 -g 32 -t 60 -T 200 -k 1 "$node" 2>&1)
	log "usbtest_run $1 on $node: $(echo "$out" | tr '\n' ';')"
	grep -q '^SUMMARY .* fail=0 .*timeout=0' <<< "$out" &&
		[ "$(grep -c ': pass' <<< "$out")" -eq "$(tr ',' '\n' <<< "$1" | wc -l)" ]
}

# capture_lacks FILE HEX: the bytes are nowhere in FILE.
capture_lacks() {
	python3 -c 'import sys; sys.exit(bytes.fromhex(sys.argv[2]) in open(sys.argv[1], "rb").read())' "$1" "$2"
}
capture_has() { ! capture_lacks "$@"; }

log "client $CLIENT_BIN"
require "usbip-notify-client is built" test -x "$CLIENT_BIN"
require "usbtest_run available" test -x "$E2E_USBTEST_RUN"
require "certificates made with openssl" make_pki
require "dummy_hcd and libcomposite loaded" gadget_init
require "usbtest, usb-storage loaded" load_modules usbtest usb-storage sd_mod
require "gadget zero created" gadget_zero_create zero

# Nothing loads CPU-specific crypto modules in this guest (no udev); a real
# host has them, and kernel TLS picks the fastest gcm(aes) it finds.
modprobe aesni_intel 2>/dev/null
modprobe ghash_clmulni_intel 2>/dev/null
log "crypto modules: $(grep -oE '^(aesni_intel|ghash_clmulni_intel) ' /proc/modules | tr '\n' ' ')"

# --- 1. no tls module: the relays --------------------------------------------
echo /bin/false > /proc/sys/kernel/modprobe
check "tls module not loaded" eval '! tls_loaded'
require "our server listens with TLS" tls_server_start
client_start
require "plug gadget zero" gadget_plug zero dummy_udc.0
require "relay: attached" wait_for 40 usb_has_dev 0525 a4a0 vhci
check "relay: client logs the userspace relay" \
	wait_for 10 logged "$client_log" "attached $BUSID from 127.0.0.1 .*, userspace relay"
check "relay: server logs identity and its relay" \
	logged "$server_log" "imported $BUSID \\(TLS identity \"bench1\", userspace TLS relay\\)"
check "relay: device usable (usbtest case 1)" usbtest_cases 1 200
check "relay: still no tls module" eval '! tls_loaded'
check "relay: client stops and detaches" client_stop
check "relay: unplug" gadget_unplug zero
check "plaintext usbip is refused by the TLS-only server" \
	eval '! run_t 20 usbip list -r 127.0.0.1 2>/dev/null | grep -q "$BUSID:"'
check "server logged the plaintext refusal" \
	wait_for 10 logged "$server_log" "plaintext connection refused: this server requires TLS"

# --- 2. kernel TLS --------------------------------------------------------------
echo "$orig_modprobe" > /proc/sys/kernel/modprobe
python3 "$E2E_ROOT/tools/lo_capture.py" $USBIP_PORT "$CAP" > /tmp/e2e-cap.out 2>&1 &
cap_pid=$!
require "capture on lo started" wait_for 10 logged /tmp/e2e-cap.out capturing
require "replug gadget zero" gadget_plug zero dummy_udc.0
require "gadget zero enumerates locally" wait_for 20 usb_has_dev 0525 a4a0 local
desc=$(head -c 18 /sys/bus/usb/devices/$BUSID/descriptors | od -An -tx1 | tr -d ' \n')
log "device descriptor: $desc"
product=$(printf 'Gadget Zero' | python3 -c 'import sys; print(sys.stdin.read().encode("utf-16-le").hex())')
client_start
require "kTLS: attached" wait_for 40 usb_has_dev 0525 a4a0 vhci
check "kTLS: the kernel loaded the tls module" tls_loaded
check "kTLS: client logs kernel TLS" \
	wait_for 10 logged "$client_log" "attached $BUSID from 127.0.0.1 .*, kernel TLS"
check "kTLS: server logs kernel TLS" \
	logged "$server_log" "imported $BUSID \\(TLS identity \"bench1\", kernel TLS\\)"
log "tls_stat: $(tr -s ' \n' ' ' < /proc/net/tls_stat)"
check "kTLS: tls_stat counts 2 TX and 2 RX sockets (client, server)" \
	eval '[ "$(tls_stat TlsCurrTxSw)" -ge 2 ] && [ "$(tls_stat TlsCurrRxSw)" -ge 2 ]'
check "kTLS: usbtest cases 1, 2, 9, 27, 28" usbtest_cases 1,2,9,27,28 500
check "kTLS: client stops and detaches" client_stop
check "kTLS: unplug gadget zero" gadget_unplug zero

require "mass-storage gadget created (${SIZE_MB} MiB)" gadget_ms_create ms $SIZE_MB
require "plug mass storage" gadget_plug ms dummy_udc.0
client_start
copy=$(vhci_wait_dev 1d6b 0104 40)
require "kTLS: mass storage attached" test -n "$copy"
vdisk=$(usb_wait_blockdev "$copy" 60)
require "kTLS: vhci disk found" test -n "$vdisk"
marker="E2E-TLS-MARKER-$RANDOM$RANDOM-"
python3 -c 'import sys; m=(sys.argv[1]*64)[:64].encode(); open(sys.argv[2],"wb").write(m*(int(sys.argv[3])//64))' \
	"$marker" "$DATA" $BYTES
rw() {
	run_t 150 dd if="$DATA" of="$vdisk" bs=1M count=$SIZE_MB oflag=direct conv=fsync status=none &&
	run_t 150 dd if="$vdisk" of="$BACK" bs=1M count=$SIZE_MB iflag=direct status=none
}
t0=$(now_s)
check "kTLS: ${SIZE_MB} MiB O_DIRECT write and read" rw
ktls_s=$(elapsed_since "$t0")
info "kTLS mass storage: $SIZE_MB MiB written and read in $ktls_s s (TCG)"
same() { [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$(sha256sum < "$2" | cut -d' ' -f1)" ]; }
check "kTLS: read-back checksum equals the data" same "$DATA" "$BACK"
check "kTLS: the data reached the gadget's file" \
	eval '[ "$(head -c $BYTES "$IMG" | sha256sum)" = "$(sha256sum < "$DATA")" ]'
check "kTLS: client logs kernel TLS for the disk" \
	eval '[ "$(count "$client_log" ", kernel TLS")" -ge 2 ]'
check "kTLS: client stops and detaches" client_stop

kill -TERM "$cap_pid"
wait "$cap_pid"
cap_pid=""
log "capture: $(tail -1 /tmp/e2e-cap.out)"
check "capture saw the transfer (> $((2 * SIZE_MB)) MiB on port $USBIP_PORT)" \
	eval '[ "$(stat -c %s "$CAP")" -gt $((2 * BYTES)) ]'
check "capture holds TLS application records" capture_has "$CAP" 170303
check "capture: no device descriptor in the clear" capture_lacks "$CAP" "$desc"
check "capture: no product string in the clear" capture_lacks "$CAP" "$product"
check "capture: no disk marker in the clear" \
	capture_lacks "$CAP" "$(printf '%s' "$marker" | od -An -tx1 | tr -d ' \n')"
check "capture check works (the marker is in the data file)" \
	capture_has "$DATA" "$(printf '%s' "$marker" | od -An -tx1 | tr -d ' \n')"
log "tls_stat: $(tr -s ' \n' ' ' < /proc/net/tls_stat)"
check "kTLS: no decrypt errors" eval '[ "$(tls_stat TlsDecryptError)" = 0 ]'
log "gcm(aes) in use: $(awk '/^name/ { n = $3 } /^driver/ && n == "gcm(aes)" { print $3 }' /proc/crypto | tr '\n' ' ')"
check "kTLS: sockets were counted" eval '[ "$(tls_stat TlsTxSw)" -ge 4 ] && [ "$(tls_stat TlsRxSw)" -ge 4 ]'

check "server still running" kill -0 "$server_pid"

# --- 3. figures (never asserted): the disk pass again through kernel TLS with
# no capture running (the capture costs the guest's CPU), then in plaintext.
# disk_pass LABEL: attach, write and read $DATA, compare; sets pass_s.
disk_pass() {
	copy=$(vhci_wait_dev 1d6b 0104 40)
	require "$1: mass storage attached" test -n "$copy"
	vdisk=$(usb_wait_blockdev "$copy" 60)
	require "$1: vhci disk found" test -n "$vdisk"
	rm -f "$BACK"
	local t=$(now_s)
	check "$1: ${SIZE_MB} MiB O_DIRECT write and read" rw
	pass_s=$(elapsed_since "$t")
	check "$1: read-back checksum equals the data" same "$DATA" "$BACK"
	info "$1 mass storage: $SIZE_MB MiB written and read in $pass_s s (TCG)"
}
client_start
disk_pass "kTLS, no capture"
ktls_s=$pass_s
check "kTLS, no capture: client logs kernel TLS" \
	eval '[ "$(count "$client_log" ", kernel TLS")" -ge 3 ]'
check "kTLS, no capture: client stops and detaches" client_stop
server_stop $BUSID
plain_server_start() {
	local cmd="$E2E_BUILD/src/server/usbip-notify-server --listen 127.0.0.1 --port $USBIP_PORT"
	cmd+=" --notify-listen 127.0.0.1 --no-announce --control none"
	$cmd > "$E2E_RESULTS/server-plain.log" 2>&1 < /dev/null &
	server_pid=$!
	wait_for 20 tcp_listening "$USBIP_PORT" && wait_for 20 tcp_listening "$NOTIFY_PORT"
}
require "plaintext server started" plain_server_start
"$CLIENT_BIN" --server 127.0.0.1 --log-level debug --detach-on-exit --control none \
	>> "$client_log" 2>&1 < /dev/null &
client_pid=$!
disk_pass plaintext
plain_s=$pass_s
info "kernel TLS vs plaintext, same boot, one pass each: $(awk -v a="$ktls_s" -v b="$plain_s" \
	'BEGIN { printf "%.2f", b / a }')x the plaintext throughput (TCG: AES-GCM emulated; not asserted)"
check "plaintext: client stops and detaches" client_stop

check "no sanitizer report in the server or client logs" \
	sh -c "! grep -l 'Sanitizer\|runtime error' '$server_log' '$E2E_RESULTS/server-plain.log' '$client_log'"
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
