#!/usr/bin/env bash
# The benchmarks, on a release build: prints figures and ratios, asserts nothing.
#
#   scripts/bench.sh [--in-process-only | --guest-only] [-- GUEST ARGS...]
#
# 1. build-rel/bench/bench_server: the server + sim backend over loopback TCP,
#    side by side with raw loopback TCP and with the sim alone (bench/bench_server.c).
#    BENCH_SECONDS (default 1) sets its measured window per run; BENCH_ARGS adds
#    flags, e.g. BENCH_ARGS='-c "bulk OUT"'.
# 2. bench/guest.sh, when it exists: the QEMU guest comparison (ours vs the
#    kernel's usbip-host vs direct access). Arguments after "--" go to it.
set -euo pipefail
cd "$(dirname "$0")/.."

in_process=1
guest=1
guest_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--in-process-only) guest=0 ;;
	--guest-only) in_process=0 ;;
	--) shift; guest_args=("$@"); break ;;
	-h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

scripts/install-deps.sh

if [ ! -d build-rel ]; then
	CC=${CC:-gcc} meson setup build-rel --buildtype=release -Dtests=true >/dev/null
fi
ninja -C build-rel bench/bench_server >/dev/null

if [ "$in_process" = 1 ]; then
	echo "== in-process: build-rel/bench/bench_server (release build)"
	eval "build-rel/bench/bench_server ${BENCH_ARGS:-}"
fi

# Hook for the guest benchmark (another piece of work): run it if present.
if [ "$guest" = 1 ]; then
	if [ -x bench/guest.sh ] || [ -f bench/guest.sh ]; then
		echo
		echo "== guest: bench/guest.sh ${guest_args[*]:-}"
		bash bench/guest.sh "${guest_args[@]}"
	else
		echo
		echo "== guest: bench/guest.sh not present yet; skipped"
	fi
fi
