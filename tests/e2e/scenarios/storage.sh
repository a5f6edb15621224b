#!/bin/bash
# e2e-timeout: 360
# storage: a mass-storage gadget backed by a tmpfs file. First 64 MiB of
# random data are written to and read back from its LOCAL disk (the
# dummy_hcd copy, before any export) with O_DIRECT; then the server under
# test exports it, `usbip attach` imports it, and the same 64 MiB (fresh
# random data) go through the vhci copy's disk: checksums must match, and the
# data must have reached the gadget's backing file. Throughputs and the ratio
# vhci/local are printed as INFO lines (TCG: ratios only, never asserted).
# Then a filesystem on the vhci disk: mkfs.ext4, mount, copy files, unmount,
# drop caches, mount again and compare, unmount, e2fsck clean.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"
. "$E2E_ROOT/lib/blockdev.sh"

BUSID=1-1
SIZE_MB=64
BYTES=$((SIZE_MB * 1024 * 1024))
IMG=/tmp/e2e-ms.img
DATA=/tmp/e2e-data
BACK=/tmp/e2e-readback
MNT=/tmp/e2e-mnt
FILES=/tmp/e2e-files

cleanup() {
	umount "$MNT" 2>/dev/null
	client_detach_all >/dev/null 2>&1
	server_stop $BUSID
	gadget_remove ms
	rm -f "$DATA" "$BACK"
}
trap cleanup EXIT

info() { echo "INFO: $*" | tee -a "$E2E_CHECKS"; }

# rw_pass LABEL DEV: writes $DATA to DEV and reads it back into $BACK, both
# O_DIRECT so every byte crosses the bus; sets W_MBS and R_MBS.
rw_pass() {
	local label=$1 dev=$2 t0 w r
	t0=$(now_s)
	run_t 150 dd if="$DATA" of="$dev" bs=1M count=$SIZE_MB oflag=direct conv=fsync status=none ||
		{ log "$label: write failed"; return 1; }
	w=$(elapsed_since "$t0")
	t0=$(now_s)
	run_t 150 dd if="$dev" of="$BACK" bs=1M count=$SIZE_MB iflag=direct status=none ||
		{ log "$label: read failed"; return 1; }
	r=$(elapsed_since "$t0")
	W_MBS=$(mb_per_s $BYTES "$w")
	R_MBS=$(mb_per_s $BYTES "$r")
	info "$label: write $SIZE_MB MiB in ${w}s = $W_MBS MB/s, read in ${r}s = $R_MBS MB/s"
}

gen_data() { run_t 60 head -c $BYTES /dev/urandom > "$DATA"; }
no_local_disk() { ! usb_blockdev "$local_dev" >/dev/null; }

same_sum() { [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$(sha256sum < "$2" | cut -d' ' -f1)" ]; }

# The first $SIZE_MB MiB of the gadget's backing file equal $DATA.
image_has_data() {
	[ "$(head -c $BYTES "$IMG" | sha256sum | cut -d' ' -f1)" = \
		"$(sha256sum < "$DATA" | cut -d' ' -f1)" ]
}

log "server under test: $E2E_SERVER"
require "dummy_hcd, libcomposite, usb-storage loaded" \
	eval 'gadget_init && load_modules usb-storage sd_mod ext4'
require "mass-storage gadget created (${SIZE_MB} MiB on tmpfs)" gadget_ms_create ms $SIZE_MB
require "gadget plugged" gadget_plug ms
require "gadget enumerates as $BUSID" wait_for 20 usb_found 1d6b 0104 local
local_dev=/sys/bus/usb/devices/$BUSID

# --- local baseline ------------------------------------------------------------
ldisk=$(usb_wait_blockdev "$local_dev" 30)
require "local disk of $BUSID found through sysfs" test -n "$ldisk"
log "local disk: $ldisk"
require "random data generated" gen_data
require "local write/read of $SIZE_MB MiB (O_DIRECT)" rw_pass "local $ldisk" "$ldisk"
LW=$W_MBS LR=$R_MBS
check "local read-back equals the data" same_sum "$DATA" "$BACK"
rm -f "$BACK"

# --- through the server under test -------------------------------------------
require "server exports $BUSID" server_start $BUSID
require "vhci-hcd loaded" client_init
require "usbip attach -b $BUSID" client_attach 127.0.0.1 $BUSID
copy=$(usb_find_wait 1d6b 0104 vhci 30)
require "attached copy appears on a vhci bus" test -n "$copy"
vdisk=$(usb_wait_blockdev "$copy" 60)
require "vhci disk found through sysfs" test -n "$vdisk"
log "attached copy: $copy, disk $vdisk"
check "usb-storage left the local copy" wait_for 10 no_local_disk

# Fresh data, so that a stale read of the local pass cannot pass.
require "fresh random data generated" gen_data
require "vhci write/read of $SIZE_MB MiB (O_DIRECT)" rw_pass "vhci $vdisk" "$vdisk"
check "vhci read-back equals the data" same_sum "$DATA" "$BACK"
check "the data reached the gadget's backing file" image_has_data
rm -f "$BACK"
# Our server keeps big transfer buffers in the device's own usbfs memory (no
# copy between it and the kernel per transfer): a mapping of the device's
# /dev/bus/usb file, held by the session's pool while it lasts.
usbfs_mapped() { grep -q ' /dev/bus/usb/[0-9]*/[0-9]*$' "/proc/$server_pid/maps"; }
[ "$E2E_SERVER" != ours ] || check "transfer buffers in usbfs memory (zero copy)" usbfs_mapped
info "throughput ratio vhci/local: write $(awk -v a="$W_MBS" -v b="$LW" 'BEGIN { printf "%.2f", a / b }')," \
	"read $(awk -v a="$R_MBS" -v b="$LR" 'BEGIN { printf "%.2f", a / b }') (server: $E2E_SERVER)"
rm -f "$DATA"

# --- a filesystem on the vhci disk ---------------------------------------------
mkdir -p "$MNT" "$FILES/sub/deeper"
for i in 1 2 3 4 5 6 7 8; do
	head -c $((i * 97 * 1024 + i * 13)) /dev/urandom > "$FILES/f$i"
done
head -c 3000000 /dev/urandom > "$FILES/sub/big"
head -c 1 /dev/urandom > "$FILES/sub/deeper/one"
: > "$FILES/sub/empty"
(cd "$FILES" && find . -type f -exec sha256sum {} + | sort -k2) > /tmp/e2e-files.sum

fs_matches() {
	(cd "$MNT/files" && find . -type f -exec sha256sum {} + | sort -k2) |
		cmp -s - /tmp/e2e-files.sum
}

require "mkfs.ext4 on $vdisk" run_t 60 mkfs.ext4 -F -q "$vdisk"
require "mount $vdisk" run_t 30 mount -t ext4 "$vdisk" "$MNT"
check "files copied" run_t 60 cp -a "$FILES" "$MNT/files"
check "sync" run_t 60 sync
check "umount" run_t 60 umount "$MNT"
sync
echo 3 > /proc/sys/vm/drop_caches
check "blockdev --flushbufs" blockdev --flushbufs "$vdisk"
require "mount again" run_t 30 mount -t ext4 -o ro "$vdisk" "$MNT"
check "files read back intact after remount" fs_matches
check "umount again" run_t 60 umount "$MNT"
check "e2fsck -fn clean" run_t 60 e2fsck -fn "$vdisk"

check "usbip detach" client_detach_all
check "detach frees the vhci port" wait_for 20 vhci_ports_free
check "attached copy is gone" wait_for 20 usb_not_found 1d6b 0104 vhci

# --- ours: drivers given back at detach, or taken at export -------------------
# By default our server takes usb-storage from the local copy at import and
# gives it back when the session ends; with --detach-on-export it takes it
# as soon as it exports the device (as `usbip bind` does) and gives it back
# when it stops. That second server also runs with --no-zero-copy.
has_local_disk() { usb_blockdev "$local_dev" >/dev/null; }
if [ "$E2E_SERVER" = ours ]; then
	check "the local disk is back after the session" wait_for 30 has_local_disk
	server_stop $BUSID
	E2E_OURS_CMD="$(ours_cmd) --detach-on-export --no-zero-copy"
	require "server exports $BUSID with --detach-on-export" server_start $BUSID
	check "--detach-on-export: usb-storage left before any import" wait_for 20 no_local_disk
	require "usbip attach -b $BUSID (drivers taken at export)" client_attach 127.0.0.1 $BUSID
	copy=$(usb_find_wait 1d6b 0104 vhci 30)
	vdisk=$(usb_wait_blockdev "$copy" 60)
	check "vhci disk readable (drivers taken at export)" \
		run_t 30 dd if="$vdisk" of=/dev/null bs=1M count=4 iflag=direct status=none
	check "--no-zero-copy: transfer buffers in ordinary memory" eval '! usbfs_mapped'
	check "usbip detach (drivers taken at export)" client_detach_all
	check "detach frees the vhci port again" wait_for 20 vhci_ports_free
	check "after the session the server takes usb-storage again" wait_for 20 no_local_disk
	server_stop $BUSID
	check "the server gives usb-storage back when it stops" wait_for 30 has_local_disk
fi
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
