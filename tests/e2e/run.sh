#!/usr/bin/env bash
# Boots the Debian kernel in QEMU (TCG) and runs e2e scenarios inside, as root,
# against the real Linux USB/IP stack. One scenario per boot. See docs/e2e.md.
#
# Usage: tests/e2e/run.sh [--server kernel|ours] [--build DIR] [--timeout S]
#                         [--verbose] SCENARIO...
#   --server   the USB/IP server under test (default: ours)
#   --build    meson build dir holding src/server/usbip-notify-server and
#              tests/e2e/usbtest_run (usbtest_run is compiled here if absent)
#   --timeout  whole-boot limit in seconds (default: the scenario's
#              "# e2e-timeout: S" header line, else 300)
#   --verbose  print the scenario's full output, not only its check lines
# Exit: 0 all scenarios passed, 1 some failed, 77 cannot run here (skip).
# More scenario header lines:
#   "# e2e-qemu-args: ARGS"  extra QEMU arguments (split on spaces); @RUN_DIR@
#                            stands for the run's results directory on the host
#   "# e2e-host-check: CMD"  runs tests/e2e/CMD RUN_DIR on the host after QEMU
#                            exited; its output lines join the checks and a
#                            non-zero exit fails the scenario
#   "# e2e-init: systemd"    boots systemd as the guest's PID 1 and runs the
#                            scenario as a unit (guest/systemd-scenario.sh)
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$e2e_dir/../.." && pwd)
work_dir="$e2e_dir/work"

server=ours
build_dir=""
boot_timeout=""
verbose=0
scenarios=()

usage() {
	sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--server) server=${2:?}; shift 2 ;;
	--build) build_dir=$(cd "${2:?}" && pwd); shift 2 ;;
	--timeout) boot_timeout=${2:?}; shift 2 ;;
	--verbose) verbose=1; shift ;;
	-h|--help) usage ;;
	-*) echo "unknown option $1" >&2; usage ;;
	*) scenarios+=("$1"); shift ;;
	esac
done
[ ${#scenarios[@]} -gt 0 ] || usage
case "$server" in kernel|ours) ;; *) echo "--server must be kernel or ours" >&2; exit 2 ;; esac
[ -z "$boot_timeout" ] || [[ "$boot_timeout" =~ ^[0-9]+$ && "$boot_timeout" -ge 60 ]] ||
	{ echo "--timeout needs seconds (>= 60)" >&2; exit 2; }
for s in "${scenarios[@]}"; do
	[ -f "$e2e_dir/scenarios/$s.sh" ] || { echo "no scenario $s" >&2; exit 2; }
done

if [ -z "${E2E_NO_COLOR:-}" ] && [ -t 1 ]; then
	c_pass=$'\e[32m' c_fail=$'\e[31m' c_off=$'\e[0m'
else
	c_pass="" c_fail="" c_off=""
fi
note() { echo "e2e: $*"; }

# --- prerequisites -----------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
	# The guest reads the whole host root through 9p: only root sees it all.
	note "SKIP: must run as root"
	exit 77
fi

need_install=0
for cmd in qemu-system-x86_64 cpio usbip usbipd lsusb modprobe; do
	command -v "$cmd" >/dev/null 2>&1 || need_install=1
done
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx insmod || need_install=1
compgen -G "/boot/vmlinuz-*" >/dev/null || need_install=1
if [ "$need_install" -eq 1 ]; then
	note "installing missing packages"
	"$repo_dir/scripts/install-deps.sh" --e2e || { note "SKIP: cannot install packages"; exit 77; }
fi

# The newest kernel image that has its module tree installed.
kver=$(for img in /boot/vmlinuz-*; do
	v=${img#/boot/vmlinuz-}
	if [ -f "/lib/modules/$v/modules.dep" ]; then echo "$v"; fi
done | sort -V | tail -1)
[ -n "$kver" ] || { note "SKIP: no kernel with modules under /boot"; exit 77; }
kernel="/boot/vmlinuz-$kver"

mkdir -p "$work_dir"

# --- guest tools (usbtest_run, guestbench) ------------------------------------
# From the build dir when it has them, else compiled into work/bin; the guest
# finds guestbench next to usbtest_run.
usbtest_run=""
if [ -n "$build_dir" ] && [ -x "$build_dir/tests/e2e/usbtest_run" ] &&
	[ -x "$build_dir/tests/e2e/guestbench" ]; then
	usbtest_run="$build_dir/tests/e2e/usbtest_run"
else
	usbtest_run="$work_dir/bin/usbtest_run"
	mkdir -p "$work_dir/bin"
	for tool in usbtest_run guestbench; do
		src="$e2e_dir/tools/$tool.c"
		if [ ! -x "$work_dir/bin/$tool" ] || [ "$src" -nt "$work_dir/bin/$tool" ]; then
			cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -Wall -Wextra \
				-o "$work_dir/bin/$tool" "$src"
		fi
	done
fi

# --- initramfs -------------------------------------------------------------------
# Boot modules (virtio transport, 9p, overlay) with their dependencies in
# load order, as kmod resolves them from modules.dep.
boot_modules=(virtio_pci 9pnet_virtio 9p overlay)
mod_paths=$(modprobe -a --show-depends -S "$kver" "${boot_modules[@]}" |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }')

initramfs_key=$( {
	echo "$kver"
	echo "$mod_paths"
	cat "$e2e_dir/guest/init" "$e2e_dir/guest/modprobe" "$e2e_dir/run.sh"
	/bin/busybox 2>&1 | sed -n 1p # sed reads it all: no SIGPIPE under pipefail
} | sha256sum | cut -c1-16)
initramfs="$work_dir/initramfs-$kver-$initramfs_key.cpio"

build_initramfs() {
	local root="$work_dir/initramfs.tmp"
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,e2e,proc,sys,dev,tmp,results,lower,ovl,newroot}
	cp /bin/busybox "$root/bin/busybox"
	cp "$e2e_dir/guest/init" "$root/init"
	cp "$e2e_dir/guest/modprobe" "$root/sbin/modprobe"
	chmod 755 "$root/init" "$root/sbin/modprobe"
	: > "$root/e2e/modules.list"
	local m
	for m in $mod_paths; do
		mkdir -p "$root$(dirname "$m")"
		cp "$m" "$root$m"
		echo "$m" >> "$root/e2e/modules.list"
	done
	# A modules.dep limited to what we ship, for busybox modprobe before the
	# host root is mounted.
	local mdir="/lib/modules/$kver"
	for m in $mod_paths; do
		grep "^${m#"$mdir/"}:" "$mdir/modules.dep" || true
	done > "$root$mdir/modules.dep"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$initramfs.tmp"
	mv "$initramfs.tmp" "$initramfs"
	rm -rf "$root"
}

# One QEMU at a time on this machine: the cores are shared. Taken before the
# initramfs is (re)built, so a run never deletes one another run is about to
# boot.
exec 9> "$work_dir/qemu.lock"
flock 9

if [ ! -f "$initramfs" ]; then
	rm -f "$work_dir"/initramfs-*.cpio
	note "building initramfs for $kver"
	build_initramfs
fi

# --- one boot per scenario ------------------------------------------------------
# QEMU's -virtfs takes a comma-separated list: a comma in a path is doubled.
qemu_path() { printf '%s' "${1//,/,,}"; }

print_checks() {
	local checks=$1
	[ -f "$checks" ] || return 0
	while IFS= read -r line; do
		case "$line" in
		PASS:*) echo "  ${c_pass}${line}${c_off}" ;;
		FAIL:*|TIMEOUT:*) echo "  ${c_fail}${line}${c_off}" ;;
		*) echo "  $line" ;;
		esac
	done < "$checks"
}

# scenario_header SCENARIO NAME: the value of its first "# NAME: VALUE" line.
scenario_header() {
	sed -n "s/^# $2: *//p" "$e2e_dir/scenarios/$1.sh" | head -1
}

# Kernel trouble anywhere in the guest's log fails the scenario.
kernel_trouble() {
	local log=$1
	grep -E 'Oops|BUG:|WARNING:|general protection fault|Kernel panic|kernel BUG|Call Trace:|RIP: ' \
		"$log" 2>/dev/null | head -20
}

# boot_guest: one QEMU run of the prepared guest (run_scenario's locals),
# console to $console. Returns QEMU's status, or 200 when the guest printed
# no E2E-BOOTED within $boot_limit seconds (then QEMU is stopped), or 201
# when QEMU itself died of a signal before that (a TCG crash during the
# guest kernel's early boot, seen once in CI: exit 139).
boot_limit=${E2E_BOOT_LIMIT:-180}
boot_guest() {
	timeout -k 10 "$boot_timeout" qemu-system-x86_64 \
		-accel tcg -cpu max -m 1024 -smp 2 -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initramfs" \
		-append "console=ttyS0 panic=-1 log_buf_len=4M" \
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$(qemu_path "$run_dir"),mount_tag=results,security_model=none" \
		"${qemu_shares[@]}" -nic none "${qemu_extra[@]}" \
		< /dev/null > "$console" 2>&1 &
	local qpid=$! waited=0
	while kill -0 "$qpid" 2>/dev/null && ! grep -aq 'E2E-BOOTED' "$console"; do
		if [ "$waited" -ge "$boot_limit" ]; then
			kill -TERM "$qpid" 2>/dev/null
			wait "$qpid"
			return 200
		fi
		sleep 1
		waited=$((waited + 1))
	done
	local qrc=0
	wait "$qpid" || qrc=$?
	if [ "$qrc" -gt 128 ] && [ "$qrc" -lt 200 ] && ! grep -aq 'E2E-BOOTED' "$console"; then
		note "QEMU died (exit $qrc) before the guest reached init"
		return 201
	fi
	return "$qrc"
}

run_scenario() {
	local scen=$1
	local run_dir="$work_dir/runs/$scen-$server"
	local console="$run_dir/console.log"
	local t0 t1 rc booted done_at trouble status=0
	local boot_timeout=$boot_timeout
	if [ -z "$boot_timeout" ]; then
		boot_timeout=$(sed -n 's/^# e2e-timeout: *\([0-9][0-9]*\)$/\1/p' \
			"$e2e_dir/scenarios/$scen.sh" | head -1)
		boot_timeout=${boot_timeout:-300}
	fi
	# Extra devices a scenario needs (e.g. an emulated USB controller).
	local qemu_extra=() extra host_check
	extra=$(scenario_header "$scen" e2e-qemu-args)
	local qemu_run_dir
	qemu_run_dir=$(qemu_path "$run_dir")
	extra=${extra//@RUN_DIR@/"$qemu_run_dir"}
	read -r -a qemu_extra <<< "$extra"
	host_check=$(scenario_header "$scen" e2e-host-check)

	rm -rf "$run_dir"
	mkdir -p "$run_dir"
	# Settings for the guest, sourced by its /init (a POSIX shell).
	{
		local kv
		for kv in "E2E_SCENARIO=$scen" "E2E_SERVER=$server" "E2E_ROOT=$e2e_dir" \
			"E2E_BUILD=$build_dir" "E2E_USBTEST_RUN=$usbtest_run" \
			"E2E_OURS_CMD=${E2E_OURS_CMD:-}" \
			"E2E_USBTEST_CASES=${E2E_USBTEST_CASES:-}" \
			"E2E_USBTEST_ARGS=${E2E_USBTEST_ARGS:-}" \
			"E2E_BENCH_ROUNDS=${E2E_BENCH_ROUNDS:-}" "E2E_BENCH_PHASES=${E2E_BENCH_PHASES:-}" \
			"E2E_INIT=$(scenario_header "$scen" e2e-init)" \
			"E2E_GUEST_TIMEOUT=$((boot_timeout - 40))"; do
			printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
		done
	} > "$run_dir/env"

	# The checkout and the build dir get their own read-only 9p shares,
	# mounted at the same paths in the guest: the guest mounts a tmpfs over
	# /tmp (and /run), which would hide a checkout there (a fresh clone, a CI
	# workspace) from the host-root share.
	local qemu_shares=() share_list="" i=0 d
	for d in "$repo_dir" "$build_dir"; do
		[ -n "$d" ] || continue
		case "$d" in *[[:space:]]*)
			note "cannot share a path with blanks into the guest: $d"; return 1 ;;
		esac
		# A build dir inside the checkout is covered by the checkout's share.
		[ "$i" -gt 0 ] && [[ "$d/" == "$repo_dir/"* ]] && continue
		qemu_shares+=(-virtfs "local,path=$(qemu_path "$d"),mount_tag=e2eshare$i,security_model=none,readonly=on,multidevs=remap")
		share_list+="e2eshare$i:$d "
		i=$((i + 1))
	done
	echo "E2E_SHARES=$(printf '%q' "$share_list")" >> "$run_dir/env"

	note "scenario $scen (server: $server, kernel $kver)"
	t0=$(date +%s.%N)
	set +e
	# A guest kernel that hangs before init (seen once under heavy host
	# load, in early boot, before any of our code), or a QEMU that crashes
	# before it, is booted once more rather than failing the scenario.
	local attempt
	for attempt in 1 2; do
		boot_guest
		rc=$?
		[ "$rc" -eq 200 ] || [ "$rc" -eq 201 ] || break
		[ "$rc" -eq 201 ] || note "the guest did not reach init in ${boot_limit}s (attempt $attempt)"
	done
	set -e
	t1=$(date +%s.%N)

	local exit_line
	exit_line=$(grep -a -o 'E2E-EXIT-CODE: [0-9]*' "$console" | tail -1 || true)
	booted=$(grep -a -o 'E2E-BOOTED uptime=[0-9.]*' "$console" | head -1 | cut -d= -f2 || true)
	done_at=$(grep -a -o 'E2E-SCENARIO-DONE uptime=[0-9.]*' "$console" | head -1 | cut -d= -f2 || true)

	# After QEMU exited: files it wrote (e.g. an audio backend's) are complete.
	if [ -n "$host_check" ]; then
		local hc_args=()
		read -r -a hc_args <<< "$host_check"
		if ! timeout -k 5 120 "$e2e_dir/${hc_args[0]}" "${hc_args[@]:1}" "$run_dir" \
			>> "$run_dir/checks.log" 2> "$run_dir/host-check.log"; then
			note "host check failed: $host_check (stderr in $run_dir/host-check.log)"
			status=1
		fi
	fi
	print_checks "$run_dir/checks.log"
	if [ "$verbose" -eq 1 ] && [ -f "$run_dir/scenario.log" ]; then
		sed 's/^/  | /' "$run_dir/scenario.log"
	fi

	if [ -z "$exit_line" ]; then
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			note "no exit marker: whole boot timed out after ${boot_timeout}s"
		else
			note "no exit marker (qemu exit $rc)"
		fi
		status=1
	elif [ "${exit_line#E2E-EXIT-CODE: }" != 0 ]; then
		note "scenario exit code ${exit_line#E2E-EXIT-CODE: }"
		status=1
	fi
	trouble=$(kernel_trouble "$run_dir/dmesg.txt")
	[ -n "$trouble" ] || trouble=$(kernel_trouble "$console")
	if [ -n "$trouble" ]; then
		note "guest kernel reported trouble:"
		echo "$trouble" | sed 's/^/  ! /'
		status=1
	fi

	local timing
	timing=$(awk -v t0="$t0" -v t1="$t1" -v b="$booted" -v d="$done_at" 'BEGIN {
		s = sprintf("wall %.1fs", t1 - t0)
		if (b != "") s = s sprintf(", boot %.1fs", b)
		if (b != "" && d != "") s = s sprintf(", scenario %.1fs", d - b)
		print s }')
	if [ "$status" -eq 0 ]; then
		echo "${c_pass}PASS${c_off} $scen [$server] ($timing)"
	else
		note "console tail ($console):"
		tail -n 40 "$console" | sed 's/^/  > /'
		if [ -f "$run_dir/scenario.log" ] && [ "$verbose" -eq 0 ]; then
			note "scenario output tail ($run_dir/scenario.log):"
			tail -n 30 "$run_dir/scenario.log" | sed 's/^/  | /'
		fi
		echo "${c_fail}FAIL${c_off} $scen [$server] ($timing); logs kept in $run_dir"
	fi
	return "$status"
}

overall=0
for s in "${scenarios[@]}"; do
	run_scenario "$s" || overall=1
done
exit "$overall"
