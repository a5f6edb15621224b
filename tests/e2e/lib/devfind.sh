# Quick lookups of USB devices in sysfs; sourced inside the guest after
# common.sh. Under TCG every process costs tens of milliseconds, and
# usb_dev_by_id (gadget.sh) spends several per device, so polling with it
# takes seconds. These read only attributes that never take the device lock
# (idVendor, idProduct, busnum come from cached descriptors), with shell
# builtins, so no timeout process is needed.

# usb_find VID PID [vhci|local]: sysfs dirs of devices with VID:PID, like
# usb_dev_by_id. A bus is a vhci bus when its controller's platform device
# has vhci_hcd's "attach" attribute (usbN/.. resolves through the link).
usb_find() {
	local vid=${1#0x} pid=${2#0x} filter=${3:-} d v p bus is_vhci
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		read -r v < "$d/idVendor" 2>/dev/null || continue
		[ "$v" = "$vid" ] || continue
		read -r p < "$d/idProduct" 2>/dev/null || continue
		[ "$p" = "$pid" ] || continue
		read -r bus < "$d/busnum" 2>/dev/null || continue
		is_vhci=0
		[ -e "/sys/bus/usb/devices/usb$bus/../attach" ] && is_vhci=1
		case "$filter" in
		vhci) [ "$is_vhci" -eq 1 ] || continue ;;
		local) [ "$is_vhci" -eq 0 ] || continue ;;
		esac
		echo "$d"
	done
}

usb_found() { [ -n "$(usb_find "$@")" ]; }
usb_not_found() { [ -z "$(usb_find "$@")" ]; }

# usb_find_wait VID PID FILTER SECS: waits for one and prints its dir.
usb_find_wait() {
	local end=$((SECONDS + $4)) d
	while [ "$SECONDS" -le "$end" ]; do
		d=$(usb_find "$1" "$2" "$3")
		[ -n "$d" ] && { echo "${d%%$'\n'*}"; return 0; }
		sleep 0.2
	done
	return 1
}

# usb_busids_on_vhci: busids of every non-root device on vhci buses.
usb_busids_on_vhci() {
	local d bus
	for d in /sys/bus/usb/devices/[0-9]*-*; do
		[ -f "$d/busnum" ] || continue
		read -r bus < "$d/busnum" 2>/dev/null || continue
		[ -e "/sys/bus/usb/devices/usb$bus/../attach" ] && echo "${d##*/}"
	done
}
