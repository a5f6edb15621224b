#!/bin/bash
# e2e-init: systemd
# e2e-timeout: 420
# The Debian packages (scripts/build-deb.sh, into $E2E_BUILD/deb by
# tests/e2e/deb.sh) install on a system run by systemd, and their units
# start: the server unit (enabled and started by the package) is active,
# runs as its own user and answers `usbip-notify-server list` / `status`
# through its control socket with a gadget plugged in; the client unit,
# given a server in client.conf, starts (loading vhci-hcd itself),
# subscribes and attaches the gadget through vhci_hcd; removing the
# packages stops both.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"

BUSID=1-1
DEB_DIR="$E2E_BUILD/deb"
trap 'systemctl stop usbip-notify-client usbip-notify-server >/dev/null 2>&1;
	gadget_remove zero' EXIT

unit_active() { [ "$(systemctl is-active "$1")" = active ]; }
unit_state() { systemctl show -p ActiveState,SubState,MainPID,Result "$1" | tr '\n' ' '; }
SOCK=/run/usbip-notify/server.sock
# --control given: the running server answers, or list fails (no local
# enumeration in its place).
server_list() { usbip-notify-server list --control "$SOCK" "$@"; }
server_list_has() { server_list 2>/dev/null | grep -q "^ *$1 "; }
client_attached() {
	usbip-notify-client status --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(a["busid"] == sys.argv[1] and a["vhci_port"] >= 0
                  for s in d["servers"] for a in s["attachments"]) else 1)' "$1"
}

log "systemd $(systemctl --version | head -1), state $(systemctl is-system-running)"
require "packages built ($DEB_DIR)" compgen -G "$DEB_DIR/usbip-notify-server_*.deb"
require "dummy_hcd and libcomposite loaded" gadget_init
require "gadget zero created" gadget_zero_create zero
require "gadget zero plugged" gadget_plug zero
require "gadget enumerates as $BUSID" wait_for 20 usb_has_dev 0525 a4a0 local

# The host root is a container image whose policy-rc.d forbids starting
# services at install; a real system has none (removed from the overlay).
if [ -e /usr/sbin/policy-rc.d ]; then
	log "removing the image's /usr/sbin/policy-rc.d (exit $(/usr/sbin/policy-rc.d x start; echo $?))"
	rm -f /usr/sbin/policy-rc.d
fi
log "dpkg -i $(cd "$DEB_DIR" && echo *.deb)"
require "dpkg -i both packages" run_t 180 dpkg -i "$DEB_DIR"/usbip-notify-server_*.deb \
	"$DEB_DIR"/usbip-notify-client_*.deb
check "service user usbip-notify made" getent passwd usbip-notify
check "server unit enabled" systemctl -q is-enabled usbip-notify-server
check "server unit active" wait_for 30 unit_active usbip-notify-server
log "server: $(unit_state usbip-notify-server)"
check "server runs as usbip-notify" test "$(ps -o user= -p "$(systemctl show -p MainPID \
	--value usbip-notify-server)")" = usbip-notify
check "control socket $SOCK" test -S "$SOCK"
check "USB/IP port 3240 listening" wait_for 20 tcp_listening 3240
# udev (started by systemd) gave the device node the service's group, so
# the sandboxed server can open it.
node=$(usb_devnode "$(usb_dev_by_id 0525 a4a0 local | head -1)")
log "device node $node: $(stat -c '%U:%G %a' "$node" 2>&1)"
check "udev rule: $node group usbip-notify" test "$(stat -c %G "$node")" = usbip-notify
check "list (control socket) shows $BUSID" wait_for 20 server_list_has "$BUSID"
listing=$(server_list 2>&1)
log "usbip-notify-server list:"$'\n'"$listing"
check "list: $BUSID is exported" grep -qE "^ *$BUSID .*exported" <<< "$listing"
check "list --json: from the running server, $BUSID exported" sh -c \
	"usbip-notify-server list --json --control $SOCK | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d[\"source\"] != \"local\" and any(x[\"busid\"] == \"$BUSID\" and x[\"exported\"]
                                                for x in d[\"devices\"]) else 1)'"
status=$(usbip-notify-server status --control "$SOCK" 2>&1)
log "usbip-notify-server status:"$'\n'"$status"
check "status --json answers through the socket" sh -c \
	"usbip-notify-server status --json --control $SOCK | python3 -m json.tool >/dev/null"
check "stock usbip list -r sees $BUSID" sh -c "usbip list -r 127.0.0.1 | grep -q ' $BUSID:'"

check "client unit installed, not enabled" sh -c \
	'! systemctl -q is-enabled usbip-notify-client'
printf 'server = 127.0.0.1\n' > /etc/usbip-notify/client.conf
check "modules-load.d names vhci-hcd (for boot)" \
	grep -qx vhci-hcd /usr/lib/modules-load.d/usbip-notify-client.conf
check "vhci-hcd not loaded before the client starts" test ! -d /sys/devices/platform/vhci_hcd.0
check "client unit starts" systemctl start usbip-notify-client
check "the unit loaded vhci-hcd" test -d /sys/devices/platform/vhci_hcd.0
check "client unit active" wait_for 20 unit_active usbip-notify-client
check "client control socket /run/usbip-notify-client/client.sock" \
	wait_for 10 test -S /run/usbip-notify-client/client.sock
log "client: $(unit_state usbip-notify-client)"
check "client attaches $BUSID (status through its socket)" wait_for 60 client_attached "$BUSID"
log "usbip-notify-client status:"$'\n'"$(usbip-notify-client status 2>&1)"
check "the attached copy appears on a vhci bus" wait_for 30 usb_has_dev 0525 a4a0 vhci
check "server list: $BUSID held by the client" sh -c \
	"usbip-notify-server list --control $SOCK | grep -E '^ *$BUSID ' | grep -q 'held by 127.0.0.1'"

check "dpkg -r stops and removes both" run_t 120 dpkg -r usbip-notify-client usbip-notify-server
check "server unit gone" sh -c '! systemctl -q is-active usbip-notify-server'
check "client unit gone" sh -c '! systemctl -q is-active usbip-notify-client'
check "vhci port freed" wait_for 30 usb_no_dev 0525 a4a0 vhci
log "journal of the units:"$'\n'"$(journalctl -b --no-pager -u usbip-notify-server \
	-u usbip-notify-client 2>&1 | tail -40)"
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
