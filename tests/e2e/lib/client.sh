# The client side: stock usbip attach/detach onto vhci_hcd; sourced inside the
# guest after common.sh and gadget.sh.

# client_init: loads vhci-hcd.
client_init() {
	load_modules vhci-hcd
}

# client_attach HOST BUSID: imports BUSID from HOST.
client_attach() {
	run_t 60 usbip attach -r "$1" -b "$2"
}

# vhci_wait_dev VID PID SECS: waits for the attached copy on a vhci bus and
# prints its sysfs dir.
vhci_wait_dev() {
	local end=$((SECONDS + $3)) d
	while [ "$SECONDS" -le "$end" ]; do
		d=$(usb_dev_by_id "$1" "$2" vhci | head -1)
		[ -n "$d" ] && { echo "$d"; return 0; }
		sleep 0.2
	done
	return 1
}

# vhci_used_ports: numbers of the vhci ports in use, from `usbip port`.
vhci_used_ports() {
	run_t 20 usbip port 2>/dev/null |
		sed -n 's/^Port \([0-9][0-9]*\): <Port in Use>.*/\1/p' | sed 's/^0*\([0-9]\)/\1/'
}

# vhci_status_busy: true while any vhci status line shows a port not free
# (status 004 = VDEV_ST_NULL means free).
vhci_status_busy() {
	local f
	for f in /sys/devices/platform/vhci_hcd.*/status*; do
		[ -e "$f" ] || continue
		sysfs_read "$f" | awk 'NR > 1 && $3 != "004" { busy = 1 } END { exit !busy }' &&
			return 0
	done
	return 1
}

vhci_ports_free() { ! vhci_status_busy; }

# client_detach_all: detaches every used vhci port.
client_detach_all() {
	local p rc=0
	for p in $(vhci_used_ports); do
		run_t 30 usbip detach -p "$p" || rc=1
	done
	return $rc
}
