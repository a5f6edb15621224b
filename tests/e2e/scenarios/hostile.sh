#!/bin/bash
# e2e-timeout: 300
# Hostile input against a real gadget: tests/integration/test_hostile in its
# external mode attacks our server (libusb backend) exporting gadget zero on
# dummy_hcd, the same table of malformed USB/IP and notify messages as in the
# suite (what only the in-process sim can do is skipped and listed). After
# every case the server answered or closed just that connection, logged its
# one line, and a fresh import plus GET_DESCRIPTOR(device) = 0525:a4a0
# works. At the end the gadget is attached through vhci and enumerates: the
# device survived. One check per test of the program.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"

BUSID=1-1
NOTIFY_PORT=65432
TOKEN=s3cret # the program's TOKEN
HOSTILE="$E2E_BUILD/tests/integration/test_hostile"

server_log_clean() { ! grep -qE 'AddressSanitizer|runtime error:' "$server_log"; }

trap 'client_detach_all >/dev/null 2>&1; server_stop $BUSID; gadget_remove zero' EXIT

if [ "$E2E_SERVER" != ours ]; then
	record FAIL "hostile runs against our server only (--server ours)"
	e2e_finish
fi
require "test_hostile built" test -x "$HOSTILE"
require "dummy_hcd and libcomposite loaded" gadget_init
require "gadget zero created" gadget_zero_create zero
require "gadget zero plugged" gadget_plug zero
require "gadget enumerates as $BUSID" wait_for 20 usb_has_dev 0525 a4a0 local
# Info level (the cases' lines), the token the notify cases expect, imports
# without a notify subscription, as the in-process setup configures it.
E2E_OURS_CMD="$E2E_BUILD/src/server/usbip-notify-server --listen 127.0.0.1 --port $USBIP_PORT"
E2E_OURS_CMD+=" --notify-listen 127.0.0.1 --notify-port $NOTIFY_PORT --notify-token $TOKEN"
E2E_OURS_CMD+=" --no-import-auth --control none --no-announce --log-level info"
require "server exports $BUSID" server_start $BUSID
# usbfs counts every URB buffer of a process against 16 MiB by default, so the
# table's bulk IN of USBIP_MAX_TRANSFER_LENGTH (16 MiB) fails with -ENOMEM
# there; room for it, as a host exporting big transfers needs.
require "usbfs memory limit raised" sysfs_write /sys/module/usbcore/parameters/usbfs_memory_mb 64

out="$E2E_RESULTS/hostile.txt"
start=$SECONDS
HOSTILE_SERVER=127.0.0.1:$USBIP_PORT HOSTILE_NOTIFY_PORT=$NOTIFY_PORT \
	HOSTILE_SERVER_LOG="$server_log" run_t 200 "$HOSTILE" > "$out" 2>&1
rc=$?
log "test_hostile exit $rc after $((SECONDS - start)) s"
grep -v '^hostile: skipped' "$out"
grep '^hostile: skipped' "$out" | sed 's/^/  /' >> "$E2E_CHECKS"
grep -E '^hostile .*cases tried|^hostile: [0-9]+ cases skipped|^hostile slow' "$out" | tee -a "$E2E_CHECKS"
for t in test_op_requests test_urb_commands test_notify_hello; do
	if grep -q "^\[       OK \] $t\$" "$out"; then
		record PASS "hostile $t against gadget zero"
	else
		record FAIL "hostile $t against gadget zero: $(grep -m1 '^ERROR' "$out")"
	fi
done
check "test_hostile exit status 0" test "$rc" -eq 0
check "server still running" kill -0 "$server_pid"
check "server still lists $BUSID" server_lists $BUSID

# The device survived: the kernel's own client imports and enumerates it.
require "vhci-hcd loaded" client_init
check "usbip attach -b $BUSID" client_attach 127.0.0.1 $BUSID
copy=$(vhci_wait_dev 0525 a4a0 30)
check "attached copy enumerates on a vhci bus" test -n "$copy"
[ -n "$copy" ] && check "its product string read through the server" \
	test "$(sysfs_read "$copy/product")" = "Gadget Zero"
check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "no sanitizer report in the server log" server_log_clean
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
