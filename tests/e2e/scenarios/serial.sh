#!/bin/bash
# e2e-timeout: 240
# serial: a CDC-ACM gadget exported by the server under test and attached
# through vhci_hcd; cdc_acm binds to the attached copy (/dev/ttyACMn, found
# through sysfs). Both ttys in raw mode (no echo, no translation, no flow
# control); random data host -> gadget (/dev/ttyGSn), gadget -> host, both
# at once, and a round trip through an echo on the gadget side: every byte
# arrives intact (checksums).
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"

BUSID=1-1
N=49152        # bytes each way: a few KB, many bulk packets and tty buffers
D=/tmp/e2e-serial
XFER_TIMEOUT=60
holders=()

cleanup() {
	local p
	for p in "${holders[@]}"; do kill "$p" 2>/dev/null; done
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove acm
}
trap cleanup EXIT

# acm_tty SYSFS_DIR: /dev/ttyACMn of cdc_acm bound to the device.
acm_tty() {
	local t
	for t in "$1"/*:*/tty/ttyACM*; do
		[ -e "$t" ] || continue
		[ -c "/dev/${t##*/}" ] || continue
		echo "/dev/${t##*/}"
		return 0
	done
	return 1
}

has_acm_tty() { acm_tty "$1" > /dev/null; }

# raw_tty DEV: keeps DEV open (a holder that never reads, so the settings
# and the line discipline's buffer live for the whole test) and sets raw mode.
raw_tty() {
	# shellcheck disable=SC2217  # the redirection only holds the tty open
	sleep 1000 < "$1" &
	holders+=("$!")
	run_t 10 stty -F "$1" raw -echo -echoe -echok -echonl -echoctl -echoke \
		-ixon -ixoff -crtscts clocal
}

# xfer FROM_DEV TO_DEV SRC DST: copies SRC into FROM_DEV while reading
# exactly the same number of bytes from TO_DEV into DST.
xfer() {
	local from=$1 to=$2 src=$3 dst=$4 n reader rc=0
	n=$(stat -c %s "$src")
	timeout -k 2 $XFER_TIMEOUT head -c "$n" "$to" > "$dst" &
	reader=$!
	sleep 0.3
	run_t $XFER_TIMEOUT dd if="$src" of="$from" bs=4096 status=none || rc=1
	wait "$reader" || rc=1
	return $rc
}

same_sum() { [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$(sha256sum < "$2" | cut -d' ' -f1)" ]; }

mkdir -p "$D"
log "server under test: $E2E_SERVER"
require "dummy_hcd, libcomposite, cdc_acm loaded" eval 'gadget_init && load_modules cdc_acm'
require "CDC-ACM gadget created" gadget_acm_create acm
port_num=$(sysfs_read "$GADGET_ROOT/acm/functions/acm.GS0/port_num")
gs=/dev/ttyGS$port_num
require "gadget plugged" gadget_plug acm
require "gadget enumerates as $BUSID" wait_for 20 usb_found 1d6b 0104 local
require "gadget tty $gs exists" wait_for 10 test -c "$gs"
require "server exports $BUSID" server_start $BUSID
require "vhci-hcd loaded" client_init
require "usbip attach -b $BUSID" client_attach 127.0.0.1 $BUSID
copy=$(usb_find_wait 1d6b 0104 vhci 30)
require "attached copy appears on a vhci bus" test -n "$copy"
require "cdc_acm binds to the attached copy" wait_for 30 has_acm_tty "$copy"
acm=$(acm_tty "$copy")
log "attached copy: $copy, tty $acm; gadget tty $gs"

require "raw mode on $acm" raw_tty "$acm"
require "raw mode on $gs" raw_tty "$gs"

head -c $N /dev/urandom > "$D/up"
head -c $N /dev/urandom > "$D/down"
t0=$SECONDS
check "host -> gadget: $N bytes transferred" xfer "$acm" "$gs" "$D/up" "$D/up.rx"
check "host -> gadget: data intact" same_sum "$D/up" "$D/up.rx"
check "gadget -> host: $N bytes transferred" xfer "$gs" "$acm" "$D/down" "$D/down.rx"
check "gadget -> host: data intact" same_sum "$D/down" "$D/down.rx"

# Both directions at once.
head -c $((N / 2)) /dev/urandom > "$D/a"
head -c $((N / 2)) /dev/urandom > "$D/b"
xfer "$acm" "$gs" "$D/a" "$D/a.rx" & pa=$!
xfer "$gs" "$acm" "$D/b" "$D/b.rx" & pb=$!
check "full duplex: host -> gadget transferred" wait $pa
check "full duplex: gadget -> host transferred" wait $pb
check "full duplex: host -> gadget intact" same_sum "$D/a" "$D/a.rx"
check "full duplex: gadget -> host intact" same_sum "$D/b" "$D/b.rx"

# Round trip: the gadget side echoes everything back.
timeout -k 2 $XFER_TIMEOUT cat "$gs" > "$gs" & echo_pid=$!
holders+=("$echo_pid")
head -c $((N / 2)) /dev/urandom > "$D/rt"
check "round trip: host -> gadget -> host transferred" xfer "$acm" "$acm" "$D/rt" "$D/rt.rx"
check "round trip: data intact" same_sum "$D/rt" "$D/rt.rx"
kill "$echo_pid" 2>/dev/null
log "transfers took $((SECONDS - t0)) s"

for p in "${holders[@]}"; do kill "$p" 2>/dev/null; done
holders=()
check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "attached copy is gone" wait_for 20 usb_not_found 1d6b 0104 vhci
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
