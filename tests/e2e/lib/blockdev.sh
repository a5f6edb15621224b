# Block devices of USB mass storage, found through sysfs; sourced inside the
# guest after common.sh. usb-storage waits (delay_use) before it scans, so
# callers poll with wait_for.

# usb_blockdev SYSFS_DIR: /dev/sdX of the SCSI disk behind the USB device at
# SYSFS_DIR (its interfaces' SCSI host), once the disk has a capacity.
usb_blockdev() {
	local b size
	for b in "$1"/*:*/host*/target*/*:*:*:*/block/*; do
		[ -e "$b" ] || continue
		read -r size < "$b/size" 2>/dev/null || continue
		[ "$size" -gt 0 ] 2>/dev/null || continue
		[ -b "/dev/${b##*/}" ] || continue
		echo "/dev/${b##*/}"
		return 0
	done
	return 1
}

# usb_wait_blockdev SYSFS_DIR SECS: waits for usb_blockdev and prints it.
usb_wait_blockdev() {
	local end=$((SECONDS + $2))
	while [ "$SECONDS" -le "$end" ]; do
		usb_blockdev "$1" && return 0
		sleep 0.3
	done
	return 1
}

# now_s: wall clock in seconds with nanoseconds (nothing changes it in the guest).
now_s() { date +%s.%N; }

# mb_per_s BYTES SECS: throughput in MB/s (10^6 bytes), two decimals.
mb_per_s() {
	awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.001; printf "%.2f\n", b / s / 1e6 }'
}

# elapsed_since T0: seconds since T0 (from now_s), three decimals.
elapsed_since() {
	awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.3f\n", b - a }'
}
