#!/bin/bash
# Smoke: gadget zero exported by the server under test, attached through
# vhci_hcd with the stock `usbip attach`; lsusb shows 0525:a4a0 on the vhci
# bus; detach frees the port. Proves the harness end to end.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"

BUSID=1-1
trap 'client_detach_all >/dev/null 2>&1; server_stop $BUSID; gadget_remove zero' EXIT

log "server under test: $E2E_SERVER"
require "dummy_hcd and libcomposite loaded" gadget_init
require "gadget zero created" gadget_zero_create zero
require "gadget zero plugged" gadget_plug zero
require "gadget enumerates as $BUSID" wait_for 20 usb_has_dev 0525 a4a0 local
require "server exports $BUSID" server_start $BUSID
require "server lists $BUSID" server_lists $BUSID
require "vhci-hcd loaded" client_init
require "usbip attach -b $BUSID" client_attach 127.0.0.1 $BUSID

copy=$(vhci_wait_dev 0525 a4a0 30)
require "attached copy appears on a vhci bus" test -n "$copy"
log "attached copy: $copy ($(usb_devnode "$copy"))"
bus=$(sysfs_read "$copy/busnum")
listing=$(run_t 30 lsusb -s "$bus:")
log "lsusb -s $bus: $listing"
check "lsusb shows 0525:a4a0 on vhci bus $bus" grep -q 'ID 0525:a4a0' <<< "$listing"
check "device descriptor read through the server" \
	test "$(sysfs_read "$copy/product")" = "Gadget Zero"
check "one vhci port in use" test "$(vhci_used_ports | wc -l)" -eq 1

check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "no port listed by usbip port" test -z "$(vhci_used_ports)"
check "attached copy is gone" wait_for 20 usb_no_dev 0525 a4a0 vhci
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
