#!/bin/bash
# e2e-timeout: 1800
# bench: the guest benchmark behind bench/guest.sh. NOT a test and not in the
# e2e suite (meson lists scenarios by name): it prints figures, never judges
# speed. Checks here only say whether a step of the harness worked.
#
# One boot, E2E_BENCH_ROUNDS rounds (default 2). Each round runs three modes
# on the same dummy_hcd gadgets, in the order O K D on odd rounds and D K O on
# even ones (mirrored, so a linear drift of the machine cancels over two):
#   O  our usbip-notify-server, stock `usbip attach` onto vhci_hcd
#   K  the kernel's usbip-host + usbipd, stock `usbip attach`
#   D  direct: the gadget's own copy on the dummy_hcd bus, no USB/IP
#   T  mass storage only, right after O: our server and our client daemon
#      with TLS 1.3 on both ends (kernel TLS in this guest), attached by
#      `usbip-notify-client attach`; the report compares it with O
# Phases per round: mass storage (O_DIRECT seq write/read at 1 MiB and
# 64 KiB, 4 KiB random reads, attach -> first read, CPU and RSS), usbtest
# case times, hotplug (O: plug -> attached by our client daemon and its
# breakdown; O and K: unplug -> vhci port free), and when asked for, stages
# (after the mass-storage figures of O, T and K: one more 1 MiB-block write
# and read recorded by kprobes, and where each URB's time went,
# tests/e2e/tools/urb_stages.py).
# Raw figures go to $E2E_RESULTS/bench-raw.txt, one "ROUND MODE METRIC VALUE"
# per line; bench/guest_report.py turns them into the table.
. "$E2E_ROOT/lib/common.sh"
. "$E2E_ROOT/lib/gadget.sh"
. "$E2E_ROOT/lib/server.sh"
. "$E2E_ROOT/lib/client.sh"
. "$E2E_ROOT/lib/devfind.sh"
. "$E2E_ROOT/lib/blockdev.sh"

BUSID=1-1
ROUNDS=${E2E_BENCH_ROUNDS:-2}
# Phases to run (host environment E2E_BENCH_PHASES): storage, usbtest and
# hotplug by default; "stages" only when asked for (its kprobes stay armed
# for the rest of the boot, a cost on every URB of every mode).
PHASES=" ${E2E_BENCH_PHASES:-storage usbtest hotplug} "
GB="$(dirname "$E2E_USBTEST_RUN")/guestbench"
CLIENT_BIN="$E2E_BUILD/src/client/usbip-notify-client"
RAW="$E2E_RESULTS/bench-raw.txt"
MS_MB=48                      # the gadget's disk
XFER=$((32 * 1024 * 1024))    # bytes per sequential run
RAND_COUNT=1000               # 4 KiB random reads per run
UT_CASES=1,2,9,10,14,27,28
UT_ARGS=${E2E_USBTEST_ARGS:-"-i 1000 -l 1024 -v 512 -g 32"} # testusb's defaults
UDC=dummy_udc.0
CLK_TCK=$(getconf CLK_TCK)
CLIENT_STATE=/run/gb-client/state
client_pid=""

cleanup() {
	tls_client_stop
	[ -z "$client_pid" ] || kill -TERM "$client_pid" 2>/dev/null
	client_detach_all >/dev/null 2>&1
	E2E_SERVER=ours server_stop $BUSID
	E2E_SERVER=kernel server_stop $BUSID
	gadget_remove ms
	gadget_remove zero
}
trap cleanup EXIT

info() { echo "INFO: $*" | tee -a "$E2E_CHECKS"; }
raw() { echo "$*" >> "$RAW"; log "raw: $*"; }
miss() { info "round $1 mode $2: not measured: $3"; }
kv() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<< " $2"; }
mode_name() { case $1 in O) echo ours ;; K) echo kernel ;; D) echo direct ;; esac; }

# The daemons' stderr goes through "guestbench relay TAG FILE": into FILE and,
# line by line, into the kernel log as "gb-TAG: LINE", so their lines carry
# kernel timestamps next to the USB core's and vhci's own.

# --- process figures from /proc -------------------------------------------------
# cpu_ticks PID...: utime+stime summed over the PIDs (every thread of each).
cpu_ticks() {
	local p f sum=0
	for p in "$@"; do
		read -r -a f < "/proc/$p/stat" 2>/dev/null || continue
		# Fields after "(comm)"; comm has no blanks for the processes we read.
		sum=$((sum + f[13] + f[14]))
	done
	echo "$sum"
}
# pids_named COMM...: pids whose comm is one of COMM.
pids_named() {
	local p c n
	for p in /proc/[0-9]*; do
		read -r c < "$p/comm" 2>/dev/null || continue
		for n in "$@"; do
			[ "$c" = "$n" ] && echo "${p#/proc/}"
		done
	done
}
# status_kb PID FIELD: VmHWM / VmRSS in kB.
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }
# per_gib TICKS BYTES: CPU seconds per GiB moved.
per_gib() {
	awk -v t="$1" -v hz="$CLK_TCK" -v b="$2" 'BEGIN { printf "%.2f\n", t / hz / (b / 1073741824) }'
}

# --- servers ----------------------------------------------------------------------
ours_start() {
	local cmd
	cmd=$(ours_cmd)
	[ -x "${cmd%% *}" ] || { log "our server is not built: ${cmd%% *}"; return 1; }
	echo "=== start at $(cut -d' ' -f1 /proc/uptime)" >> "$server_log"
	# --detach-on-export: the drivers go at export, as `usbip bind` makes
	# them go for the kernel's server before its attach is timed.
	$cmd --detach-on-export > >("$GB" relay srv "$server_log") 2>&1 < /dev/null &
	server_pid=$!
	wait_for 20 tcp_listening "$USBIP_PORT"
}
# T: ours with TLS on both ports, certificates made at setup (make_pki).
PKI=/tmp/gb-pki
TLS_CONTROL=/run/gb-tls-client.sock
make_pki() {
	local ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
	mkdir -p "$PKI" && cd "$PKI" || return 1
	openssl req -x509 $ec -keyout ca.key -out ca.pem -subj /CN=gb-ca -days 2 &&
	openssl req $ec -keyout s.key -out s.csr -subj /CN=gb-server &&
	echo subjectAltName=IP:127.0.0.1 > s.ext &&
	openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile s.ext -out s.pem &&
	openssl req $ec -keyout c.key -out c.csr -subj /CN=gb-client &&
	openssl x509 -req -in c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out c.pem
	local rc=$?
	cd / || return 1
	return $rc
} > /dev/null 2>&1
tls_client_pid=""
# tls_client_start: our client daemon with TLS, attaching nothing by itself
# (a filter no device matches); `usbip-notify-client attach` attaches.
tls_client_start() {
	"$CLIENT_BIN" --server 127.0.0.1 --allow-busid 9-9 --control "$TLS_CONTROL" \
		--state-file /run/gb-tls-client.state --tls-cert "$PKI/c.pem" \
		--tls-key "$PKI/c.key" --tls-ca "$PKI/ca.pem" >> "$E2E_RESULTS/tls-client.log" 2>&1 &
	tls_client_pid=$!
	wait_for 20 grep -q 'state=subscribed' /run/gb-tls-client.state
}
tls_client_stop() {
	[ -n "$tls_client_pid" ] || return 0
	kill -TERM "$tls_client_pid" 2>/dev/null
	wait_for 15 proc_gone "$tls_client_pid" || kill -KILL "$tls_client_pid" 2>/dev/null
	tls_client_pid=""
}
# mode_server_start MODE: the server of MODE exports $BUSID (D: nothing).
mode_server_start() {
	case $1 in
	O) E2E_SERVER=ours; ours_start && wait_for 20 server_lists $BUSID ;;
	T) E2E_SERVER=ours
	   E2E_OURS_CMD="$(ours_cmd) --tls-cert $PKI/s.pem --tls-key $PKI/s.key --tls-ca $PKI/ca.pem" \
		ours_start && wait_for 20 tcp_listening 65432 && tls_client_start ;;
	K) E2E_SERVER=kernel; server_start $BUSID ;;
	D) return 0 ;;
	esac
}
mode_server_stop() {
	case $1 in
	O) E2E_SERVER=ours server_stop $BUSID ;;
	T) tls_client_stop; E2E_SERVER=ours server_stop $BUSID ;;
	K) E2E_SERVER=kernel server_stop $BUSID ;;
	esac
	return 0
}
detach_and_stop() {
	client_detach_all >/dev/null 2>&1
	wait_for 20 vhci_ports_free || log "vhci ports still busy"
	mode_server_stop "$1"
}

# ms_to_zero: unplugs the mass-storage gadget and plugs gadget zero.
ms_to_zero() {
	gadget_unplug ms
	wait_for 20 usb_not_found 1d6b 0104 local
	gadget_plug zero $UDC
}

# --- phase 1: mass storage ----------------------------------------------------
storage_mode() {
	local r=$1 m=$2 dev out t0 c0 c1 k0 k1 v0 v1 stub vh bytes bs what
	if [ "$m" = D ]; then
		dev=$(usb_wait_blockdev /sys/bus/usb/devices/$BUSID 60) || { miss "$r" D "local disk"; return 1; }
	else
		mode_server_start "$m" || { miss "$r" "$m" "server start"; mode_server_stop "$m"; return 1; }
		if [ "$m" = T ]; then
			attach_cmd=("$CLIENT_BIN" attach $BUSID --control "$TLS_CONTROL")
		else
			attach_cmd=(usbip attach -r 127.0.0.1 -b $BUSID)
		fi
		out=$(run_t 90 "$GB" attach-read 80 "${attach_cmd[@]}") ||
			{ miss "$r" "$m" "attach -> first read"; detach_and_stop "$m"; return 1; }
		log "$m: $out"
		dev=$(kv dev "$out")
		raw "$r $m attach_cmd_s $(kv cmd "$out")"
		raw "$r $m attach_disk_s $(kv disk "$out")"
		raw "$r $m attach_read_s $(kv read "$out")"
	fi
	log "round $r mode $m: disk $dev"
	stub=$(pids_named stub_rx stub_tx)
	vh=$(pids_named vhci_rx vhci_tx)
	# shellcheck disable=SC2086
	{ k0=$(cpu_ticks $stub); v0=$(cpu_ticks $vh); }
	[ "$m" = O ] || [ "$m" = T ] && c0=$(cpu_ticks "$server_pid")
	bytes=0
	for bs in 1048576 65536; do
		for what in write read; do
			out=$(run_t 200 "$GB" seq-$what "$dev" $bs $XFER) ||
				{ miss "$r" "$m" "seq $what bs=$bs"; continue; }
			raw "$r $m ${what}_${bs}_mbps $(kv mbps "$out")"
			bytes=$((bytes + XFER))
		done
	done
	out=$(run_t 200 "$GB" rand-read "$dev" $RAND_COUNT) && {
		raw "$r $m randread_4k_iops $(kv iops "$out")"
		bytes=$((bytes + RAND_COUNT * 4096))
	} || miss "$r" "$m" "random reads"
	# shellcheck disable=SC2086
	{ k1=$(cpu_ticks $stub); v1=$(cpu_ticks $vh); }
	case $m in
	O|T)
		c1=$(cpu_ticks "$server_pid")
		raw "$r $m server_cpu_s_per_gib $(per_gib $((c1 - c0)) $bytes)"
		raw "$r $m server_vmhwm_kb $(status_kb "$server_pid" VmHWM)"
		raw "$r $m server_vmrss_kb $(status_kb "$server_pid" VmRSS)"
		;;
	K)
		if [ -n "$stub" ]; then
			raw "$r K server_cpu_s_per_gib $(per_gib $((k1 - k0)) $bytes)"
		else
			miss "$r" K "stub_rx/stub_tx threads not found"
		fi
		local up
		up=$(pids_named usbipd | head -1)
		[ -z "$up" ] || {
			raw "$r K server_vmhwm_kb $(status_kb "$up" VmHWM)"
			raw "$r K server_vmrss_kb $(status_kb "$up" VmRSS)"
		}
		;;
	esac
	[ "$m" = D ] || [ -z "$vh" ] || raw "$r $m vhci_kthreads_cpu_s_per_gib $(per_gib $((v1 - v0)) $bytes)"
	[ "$m" = D ] || [[ $PHASES != *" stages "* ]] || stages_mode "$r" "$m" "$dev"
	[ "$m" = D ] || detach_and_stop "$m"
}

# --- phase: where an URB's time goes (after the storage figures) ---------------
TRACEFS=/sys/kernel/tracing
# stages_setup: the three kprobes urb_stages.py reads (its header says what
# each marks), armed once for the whole boot with the ring buffer off; a
# stage run only switches recording on and off. Turning the events
# themselves on and off patches kernel text (static calls, with IPIs to the
# other vCPU), and one of those patches hung this TCG guest for good (soft
# lockup in text_poke_bp) at about the 13th toggle. With the buffer off an
# URB costs every mode the same few probe hits.
# transfer_buffer_length sits at offset 128 of struct urb in this kernel
# (6.1); urb_stages.py tells data URBs from CBW/CSW by it.
stages_setup() {
	{ mountpoint -q $TRACEFS || mount -t tracefs nodev $TRACEFS; } &&
	echo 0 > $TRACEFS/tracing_on &&
	echo 0 > $TRACEFS/options/record-cmd &&
	echo 'p:vq vhci_urb_enqueue hcd=%di urb=%si len=+128(%si):u32' > $TRACEFS/kprobe_events &&
	echo 'p:dq dummy_urb_enqueue hcd=%di urb=%si' >> $TRACEFS/kprobe_events &&
	echo 'p:gb usb_hcd_giveback_urb hcd=%di urb=%si' >> $TRACEFS/kprobe_events &&
	echo 4096 > $TRACEFS/buffer_size_kb &&
	echo 1 > $TRACEFS/events/kprobes/enable
}
# stages_mode ROUND MODE DEV: one write and one read of $XFER in 1 MiB blocks,
# traced; the medians per URB class and stage become raw figures.
stages_mode() {
	local r=$1 m=$2 dev=$3 what f k v
	[ "$(cat $TRACEFS/events/kprobes/enable 2>/dev/null)" = 1 ] ||
		{ miss "$r" "$m" "URB stages (no kprobes)"; return 0; }
	for what in write read; do
		f="$E2E_RESULTS/stages-$r-$m-$what.trace"
		echo > $TRACEFS/trace
		echo 1 > $TRACEFS/tracing_on
		run_t 200 "$GB" seq-$what "$dev" 1048576 $XFER > /dev/null
		echo 0 > $TRACEFS/tracing_on
		cat $TRACEFS/trace > "$f"
		python3 "$E2E_ROOT/tools/urb_stages.py" "$f" > "$f.txt" ||
			{ miss "$r" "$m" "URB stages ($what): no complete URB in the trace"; continue; }
		while read -r k v; do
			# The server's stages, and the device's for the data URBs.
			case $k in data_fwd_us|data_dev_us|data_ret_us|small_fwd_us|small_ret_us)
				raw "$r $m stage_${what}_$k $v" ;;
			esac
		done < "$f.txt"
	done
}

# --- phase 2: usbtest -------------------------------------------------------------
usbtest_mode() {
	local r=$1 m=$2 dev node out n secs
	if [ "$m" = D ]; then
		dev=/sys/bus/usb/devices/$BUSID
	else
		mode_server_start "$m" || { miss "$r" "$m" "server start (usbtest)"; mode_server_stop "$m"; return 1; }
		client_attach 127.0.0.1 $BUSID || { miss "$r" "$m" "usbip attach (usbtest)"; detach_and_stop "$m"; return 1; }
		dev=$(vhci_wait_dev 0525 a4a0 30)
	fi
	if [ -z "$dev" ] || ! wait_for 30 usb_iface_driver_is "$dev" 0 usbtest; then
		miss "$r" "$m" "usbtest did not bind"
		[ "$m" = D ] || detach_and_stop "$m"
		return 1
	fi
	node=$(usb_devnode "$dev")
	# shellcheck disable=SC2086
	out=$("$E2E_USBTEST_RUN" -c $UT_CASES $UT_ARGS -t 90 -T 400 -k 1 "$node" 2>&1)
	log "round $r mode $m usbtest: $(tr '\n' ';' <<< "$out")"
	while read -r _ n res secs _; do
		n=${n%:}
		if [ "$res" = pass ]; then
			raw "$r $m usbtest_${n}_s ${secs#[}"
		else
			miss "$r" "$m" "usbtest case $n: $res"
		fi
	done < <(grep '^case ' <<< "$out")
	[ "$m" = D ] || detach_and_stop "$m"
}

# --- phase 3: hotplug -------------------------------------------------------------
# dm_after MARK REGEX: seconds from the kernel log line holding MARK to the
# first later line matching REGEX (kernel timestamps), or nothing.
dm_after() {
	awk -v mark="$1" -v re="$2" '
		function ts(l) { sub(/^\[ */, "", l); sub(/\].*/, "", l); return l + 0 }
		index($0, mark) { t0 = ts($0); after = 1; found = ""; next }
		after && found == "" && $0 ~ re { found = ts($0) - t0 }
		END { if (found != "") printf "%.3f\n", found }' "$DMESG_SNAP"
}
client_subscribed() { grep -q 'state=subscribed' "$CLIENT_STATE" 2>/dev/null; }
client_attached() { grep -q 'attached=1$' "$CLIENT_STATE" 2>/dev/null; }

hotplug_ours() {
	local r=$1 mark out secs t e name client_log="$E2E_RESULTS/client.log"
	gadget_unplug zero
	wait_for 20 usb_not_found 0525 a4a0 local
	ours_start || { miss "$r" O "server start (hotplug)"; return 1; }
	mkdir -p "${CLIENT_STATE%/*}"
	echo "=== round $r" >> "$client_log"
	"$CLIENT_BIN" --server 127.0.0.1 --detach-on-exit --state-file "$CLIENT_STATE" \
		> >("$GB" relay cli "$client_log") 2>&1 < /dev/null &
	client_pid=$!
	wait_for 20 client_subscribed || { miss "$r" O "client subscription"; return 1; }
	mark="gb-mark plug round $r $RANDOM"
	out=$(run_t 40 "$GB" plug "$GADGET_ROOT/zero/UDC" $UDC 30 "$mark") &&
		raw "$r O plug_port_in_use_s $(kv secs "$out")" || miss "$r" O "plug -> vhci port in use"
	wait_for 30 client_attached || miss "$r" O "client attached"
	wait_for 30 usb_found 0525 a4a0 vhci
	sleep 1
	raw "$r O client_vmhwm_kb $(status_kb "$client_pid" VmHWM)"
	raw "$r O client_vmrss_kb $(status_kb "$client_pid" VmRSS)"
	DMESG_SNAP=/tmp/gb-dmesg.txt
	dmesg > "$DMESG_SNAP"
	# Events after the UDC write, kernel timestamps (seconds from the write).
	for e in \
		"plug_enum_start_s|usb 1-1: new .*USB device number" \
		"plug_enum_done_s|usb 1-1: SerialNumber" \
		"plug_server_sees_s|gb-srv: .*device 1-1 .*(plugged|arrived)" \
		"plug_client_notified_s|gb-cli: .*: plugged 1-1" \
		"plug_server_imported_s|gb-srv: .*imported 1-1" \
		"plug_vhci_attach_written_s|vhci_hcd.*Device attached" \
		"plug_client_attached_s|gb-cli: .*attached 1-1 from" \
		"plug_copy_enumerated_s|usb ([2-9]|[1-9][0-9])-1: SerialNumber"; do
		t=$(dm_after "$mark" "${e#*|}")
		if [ -n "$t" ]; then raw "$r O ${e%%|*} $t"; else miss "$r" O "${e%%|*} (no log line)"; fi
	done
	# The client's own breakdown, when it logs one.
	t=$(grep -a "attach 1-1 timing:" "$client_log" | tail -1)
	if [ -n "$t" ]; then
		for name in connect import vhci total; do
			raw "$r O client_timing_${name}_ms $(kv $name "$t")"
		done
	fi
	mark="gb-mark unplug round $r $RANDOM"
	out=$(run_t 40 "$GB" plug "$GADGET_ROOT/zero/UDC" "" 30 "$mark") &&
		raw "$r O unplug_port_free_s $(kv secs "$out")" || miss "$r" O "unplug -> port free"
	dmesg > "$DMESG_SNAP"
	t=$(dm_after "$mark" "gb-srv: .*device 1-1 .*(unplugged|left|gone)")
	[ -z "$t" ] || raw "$r O unplug_server_sees_s $t"
	kill -TERM "$client_pid" 2>/dev/null
	wait_for 15 proc_gone "$client_pid"
	client_pid=""
	client_detach_all >/dev/null 2>&1
	E2E_SERVER=ours server_stop $BUSID
}

hotplug_kernel() {
	local r=$1 mark out
	gadget_plug zero $UDC 2>/dev/null
	wait_for 20 usb_found 0525 a4a0 local || { miss "$r" K "gadget replug"; return 1; }
	E2E_SERVER=kernel
	server_start $BUSID || { miss "$r" K "server start (hotplug)"; server_stop $BUSID; return 1; }
	client_attach 127.0.0.1 $BUSID && wait_for 30 usb_found 0525 a4a0 vhci ||
		{ miss "$r" K "attach (hotplug)"; detach_and_stop K; return 1; }
	sleep 1
	mark="gb-mark kernel unplug round $r $RANDOM"
	out=$(run_t 40 "$GB" plug "$GADGET_ROOT/zero/UDC" "" 30 "$mark") &&
		raw "$r K unplug_port_free_s $(kv secs "$out")" || miss "$r" K "unplug -> port free"
	client_detach_all >/dev/null 2>&1
	# The device is gone: forget the bind so usbip-host does not take it on replug.
	sysfs_write /sys/bus/usb/drivers/usbip-host/match_busid "del $BUSID" 2>/dev/null
	pkill_usbipd
}

# --- setup -------------------------------------------------------------------------
: > "$RAW"
log "bench: $ROUNDS rounds; guestbench $GB; server $(ours_cmd)"
# Userspace lines into /dev/kmsg are rate limited by default.
echo on > /proc/sys/kernel/printk_devkmsg
require "guestbench and usbtest_run available" test -x "$GB" -a -x "$E2E_USBTEST_RUN"
require "our client is built" test -x "$CLIENT_BIN"
# udev with no rules: enough for libusb's hotplug events (docs/e2e.md).
mkdir -p /run/gb-empty-rules
mount --bind /run/gb-empty-rules /usr/lib/udev/rules.d
mount --bind /run/gb-empty-rules /etc/udev/rules.d
require "systemd-udevd started (no rules)" /lib/systemd/systemd-udevd --daemon
require "modules loaded" eval 'gadget_init && load_modules usb-storage sd_mod usbtest vhci-hcd usbip-host'
require "mass-storage gadget created" gadget_ms_create ms $MS_MB
require "gadget zero created" gadget_zero_create zero
require "TLS certificates made (mode T)" make_pki
[[ $PHASES != *" stages "* ]] || check "kprobes for the URB stages set" stages_setup
# As on a real host (no udev here to load them): the CPU's AES-GCM for kernel TLS.
modprobe aesni_intel 2>/dev/null
modprobe ghash_clmulni_intel 2>/dev/null
{
	echo "# kernel $(uname -r); $(nproc) vCPUs; rounds $ROUNDS; seq $((XFER >> 20)) MiB per run;"
	echo "# random reads $RAND_COUNT x 4 KiB; usbtest cases $UT_CASES args $UT_ARGS; CLK_TCK $CLK_TCK"
} >> "$RAW"

for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then order="O K D"; else order="D K O"; fi
	log "=== round $r: $order"
	echo "# round $r order $order" >> "$RAW"
	gadget_unplug zero
	gadget_plug ms $UDC
	check "round $r: mass storage plugged" wait_for 20 usb_found 1d6b 0104 local
	if [[ $PHASES == *" storage "* ]]; then
		# T (ours with TLS) runs beside O in the mass-storage phase only.
		for m in $order; do
			storage_mode "$r" "$m"
			[ "$m" = O ] && storage_mode "$r" T
		done
	fi
	ms_to_zero
	check "round $r: gadget zero plugged" wait_for 20 usb_found 0525 a4a0 local
	if [[ $PHASES == *" usbtest "* ]]; then
		for m in $order; do usbtest_mode "$r" "$m"; done
	fi
	if [[ $PHASES == *" hotplug "* ]]; then
		for m in $order; do
			case $m in O) hotplug_ours "$r" ;; K) hotplug_kernel "$r" ;; esac
		done
	fi
	gadget_unplug zero
	record PASS "round $r done"
done
check "no kernel oops/BUG/WARNING" no_kernel_trouble
e2e_finish
