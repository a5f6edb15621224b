#!/bin/bash
# e2e-timeout: 600
# usbtest: gadget zero exported by the server under test and attached through
# vhci_hcd; the kernel's usbtest driver binds to the attached copy and our
# usbtest_run drives its cases 0-29 through USBDEVFS_IOCTL. One check per case:
# pass, fail (errno), timeout, skip (after two timeouts in a row the device
# is stuck and the rest are not run); cases the device cannot do (iso/interrupt on
# dummy_hcd, EOPNOTSUPP) are SKIP. A crashed or hung case fails that case
# only: the scenario still detaches, collects and powers off.
#
# Knobs (host environment of run.sh): E2E_USBTEST_CASES (default 0-29),
# E2E_USBTEST_ARGS (default below: TCG-sized iterations).
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"

BUSID=1-1
CASES=${E2E_USBTEST_CASES:-0-29}
# testusb's shape: 1000 iterations of 1024 bytes, vary 512, 32-entry sglists.
ARGS=${E2E_USBTEST_ARGS:--i 1000 -l 1024 -v 512 -g 32}
CASE_TIMEOUT=60 # a quiet TCG guest needs at most ~20 s (case 11); room for a loaded host
BUDGET=420

trap 'client_detach_all >/dev/null 2>&1; server_stop $BUSID; gadget_remove zero' EXIT

log "server under test: $E2E_SERVER; cases $CASES; args $ARGS"
require "usbtest_run available" test -x "$E2E_USBTEST_RUN"
require "dummy_hcd and libcomposite loaded" gadget_init
require "gadget zero created" gadget_zero_create zero
require "gadget zero plugged" gadget_plug zero
require "gadget enumerates as $BUSID" wait_for 20 usb_has_dev 0525 a4a0 local
require "server exports $BUSID" server_start $BUSID
require "usbtest and vhci-hcd loaded" load_modules usbtest vhci-hcd
require "usbip attach -b $BUSID" client_attach 127.0.0.1 $BUSID

copy=$(vhci_wait_dev 0525 a4a0 30)
require "attached copy appears on a vhci bus" test -n "$copy"
require "usbtest binds to the attached copy" \
	wait_for 30 usb_iface_driver_is "$copy" 0 usbtest
node=$(usb_devnode "$copy")
log "attached copy: $copy ($node)"

out="$E2E_RESULTS/usbtest.txt"
start=$SECONDS
# shellcheck disable=SC2086  # ARGS is a list of options
"$E2E_USBTEST_RUN" -c "$CASES" $ARGS -t "$CASE_TIMEOUT" -T "$BUDGET" -k 2 "$node" > "$out" 2>&1
log "usbtest_run exit $? after $((SECONDS - start)) s"
cat "$out"

while read -r _ num result rest; do
	num=${num%:}
	case "$result" in
	pass) record PASS "usbtest case $num $rest" ;;
	n/a) record SKIP "usbtest case $num (not applicable to this device)" ;;
	*) record FAIL "usbtest case $num: $result $rest" ;;
	esac
done < <(grep '^case ' "$out")
check "usbtest_run summary present" grep -q '^SUMMARY ' "$out"
grep '^SUMMARY ' "$out" | tee -a "$E2E_CHECKS"

check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
