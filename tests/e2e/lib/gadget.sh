# Gadgets through configfs on dummy_hcd; sourced inside the guest after
# common.sh. The device side is dummy_udc.N, the host side is the dummy bus:
# a plugged gadget enumerates there as busid 1-1 (high speed).

GADGET_ROOT=/sys/kernel/config/usb_gadget

# gadget_init [NUM_UDC]: loads dummy_hcd (NUM_UDC controllers) and libcomposite.
gadget_init() {
	local num=${1:-1}
	load_modules configfs || return 1
	if ! grep -q ' /sys/kernel/config configfs' /proc/mounts; then
		mount -t configfs configfs /sys/kernel/config || return 1
	fi
	run_t 60 modprobe dummy_hcd num="$num" || return 1
	load_modules libcomposite || return 1
	wait_for 10 test -e /sys/class/udc/dummy_udc.0
}

# First UDC that no gadget uses yet.
gadget_free_udc() {
	local path udc used g
	for path in /sys/class/udc/*; do
		[ -e "$path" ] || continue
		udc=${path##*/}
		used=0
		for g in "$GADGET_ROOT"/*/UDC; do
			[ -e "$g" ] || continue
			[ "$(sysfs_read "$g")" = "$udc" ] && used=1
		done
		[ "$used" -eq 0 ] && { echo "$udc"; return 0; }
	done
	return 1
}

# _gadget_new NAME VID PID PRODUCT: the device part of a gadget.
_gadget_new() {
	local g="$GADGET_ROOT/$1"
	mkdir "$g" || return 1
	echo "$2" > "$g/idVendor"
	echo "$3" > "$g/idProduct"
	echo 0x0100 > "$g/bcdDevice"
	echo 0x0200 > "$g/bcdUSB"
	mkdir -p "$g/strings/0x409"
	echo "usbip-notify e2e" > "$g/strings/0x409/manufacturer"
	echo "$4" > "$g/strings/0x409/product"
	echo "e2e-$1-0001" > "$g/strings/0x409/serialnumber"
}

# _gadget_config NAME N LABEL FUNCTION...: config c.N with the functions.
_gadget_config() {
	local g="$GADGET_ROOT/$1" n=$2 label=$3 f
	shift 3
	mkdir -p "$g/configs/c.$n/strings/0x409" || return 1
	echo "$label" > "$g/configs/c.$n/strings/0x409/configuration"
	echo 120 > "$g/configs/c.$n/MaxPower"
	for f in "$@"; do
		ln -s "$g/functions/$f" "$g/configs/c.$n/" || return 1
	done
}

# gadget_zero_create NAME: the gadget-zero equivalent that usbtest binds to:
# 0525:a4a0, config 1 = SourceSink, config 2 = Loopback.
gadget_zero_create() {
	local g="$GADGET_ROOT/$1"
	load_modules usb_f_ss_lb || return 1
	_gadget_new "$1" 0x0525 0xa4a0 "Gadget Zero" || return 1
	echo 0xff > "$g/bDeviceClass"
	mkdir "$g/functions/SourceSink.0" "$g/functions/Loopback.0" || return 1
	_gadget_config "$1" 1 "source/sink" SourceSink.0 || return 1
	_gadget_config "$1" 2 "loopback" Loopback.0
}

# gadget_ms_create NAME SIZE_MB [DIR]: mass storage backed by a file on
# tmpfs, DIR/e2e-NAME.img (default /tmp, which the guest limits to 256 MiB:
# a larger disk goes to /dev/shm).
gadget_ms_create() {
	local g="$GADGET_ROOT/$1" img="${3:-/tmp}/e2e-$1.img"
	load_modules usb_f_mass_storage || return 1
	truncate -s "${2}M" "$img" || return 1
	_gadget_new "$1" 0x1d6b 0x0104 "E2E Mass Storage" || return 1
	mkdir "$g/functions/mass_storage.0" || return 1
	echo 1 > "$g/functions/mass_storage.0/stall"
	echo 0 > "$g/functions/mass_storage.0/lun.0/removable"
	echo "$img" > "$g/functions/mass_storage.0/lun.0/file"
	_gadget_config "$1" 1 "mass storage" mass_storage.0
}

# gadget_acm_create NAME: CDC-ACM serial.
gadget_acm_create() {
	local g="$GADGET_ROOT/$1"
	load_modules usb_f_acm || return 1
	_gadget_new "$1" 0x1d6b 0x0104 "E2E CDC-ACM" || return 1
	mkdir "$g/functions/acm.GS0" || return 1
	_gadget_config "$1" 1 "acm" acm.GS0
}

# gadget_hid_create NAME: a boot keyboard (8-byte reports).
gadget_hid_create() {
	local g="$GADGET_ROOT/$1" f
	load_modules usb_f_hid || return 1
	_gadget_new "$1" 0x1d6b 0x0104 "E2E HID keyboard" || return 1
	f="$g/functions/hid.usb0"
	mkdir "$f" || return 1
	echo 1 > "$f/protocol"
	echo 1 > "$f/subclass"
	echo 8 > "$f/report_length"
	# Standard boot keyboard report descriptor (HID 1.11, appendix B.1).
	printf '%b' '\x05\x01\x09\x06\xa1\x01\x05\x07\x19\xe0\x29\xe7\x15\x00\x25\x01' \
		'\x75\x01\x95\x08\x81\x02\x95\x01\x75\x08\x81\x03\x95\x05\x75\x01' \
		'\x05\x08\x19\x01\x29\x05\x91\x02\x95\x01\x75\x03\x91\x03\x95\x06' \
		'\x75\x08\x15\x00\x25\x65\x05\x07\x19\x00\x29\x65\x81\x00\xc0' \
		> "$f/report_desc" || return 1
	_gadget_config "$1" 1 "hid" hid.usb0
}

# gadget_plug NAME [UDC]: connects the gadget (the hotplug "insert").
gadget_plug() {
	local udc=${2:-}
	[ -n "$udc" ] || udc=$(gadget_free_udc) || return 1
	sysfs_write "$GADGET_ROOT/$1/UDC" "$udc"
}

# gadget_unplug NAME: disconnects the gadget (the hotplug "remove").
gadget_unplug() {
	[ -n "$(sysfs_read "$GADGET_ROOT/$1/UDC")" ] || return 0
	sysfs_write "$GADGET_ROOT/$1/UDC" ""
}

# gadget_remove NAME: unplugs and tears the gadget down.
gadget_remove() {
	local g="$GADGET_ROOT/$1" c
	[ -d "$g" ] || return 0
	gadget_unplug "$1"
	for c in "$g"/configs/*; do
		[ -d "$c" ] || continue
		find "$c" -maxdepth 1 -type l -exec rm {} \;
		rmdir "$c/strings/0x409" 2>/dev/null
		rmdir "$c"
	done
	rmdir "$g"/functions/* 2>/dev/null
	rmdir "$g/strings/0x409" 2>/dev/null
	rmdir "$g"
}

# usb_dev_by_id VID PID [BUS_FILTER]: sysfs dirs of devices with that VID:PID.
# BUS_FILTER is "vhci" (only buses of vhci_hcd), "local" (all other buses) or
# empty (any).
usb_dev_by_id() {
	local vid=${1#0x} pid=${2#0x} filter=${3:-} d bus hcd
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		[ "$(sysfs_read "$d/idVendor")" = "$vid" ] || continue
		[ "$(sysfs_read "$d/idProduct")" = "$pid" ] || continue
		bus=$(sysfs_read "$d/busnum") || continue
		hcd=$(readlink -f "/sys/bus/usb/devices/usb$bus/..")
		case "$filter" in
		vhci) [[ "$hcd" == *vhci_hcd* ]] || continue ;;
		local) [[ "$hcd" != *vhci_hcd* ]] || continue ;;
		esac
		echo "$d"
	done
}

# usb_has_dev VID PID [BUS_FILTER] / usb_no_dev ...: predicates for wait_for.
usb_has_dev() { [ -n "$(usb_dev_by_id "$@")" ]; }
usb_no_dev() { [ -z "$(usb_dev_by_id "$@")" ]; }

# usb_devnode SYSFS_DIR: /dev/bus/usb/BBB/DDD of a device.
usb_devnode() {
	local bus dev
	bus=$(sysfs_read "$1/busnum") || return 1
	dev=$(sysfs_read "$1/devnum") || return 1
	printf '/dev/bus/usb/%03d/%03d\n' "$bus" "$dev"
}

# usb_iface_driver SYSFS_DIR IFACE: the driver bound to interface IFACE of the
# active configuration, or nothing.
usb_iface_driver() {
	local cfg intf
	cfg=$(sysfs_read "$1/bConfigurationValue") || return 1
	intf="$1:$cfg.$2"
	[ -e "$intf/driver" ] || return 1
	basename "$(readlink -f "$intf/driver")"
}

# usb_iface_driver_is SYSFS_DIR IFACE DRIVER: a predicate for wait_for.
usb_iface_driver_is() {
	[ "$(usb_iface_driver "$1" "$2")" = "$3" ]
}
