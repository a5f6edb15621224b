#!/usr/bin/env bash
# The guest benchmark: one QEMU/TCG boot, our server (O) vs the kernel's
# usbip-host + usbipd (K) vs direct access to the same dummy_hcd gadget (D),
# in alternating rounds. Prints figures and ratios; never pass/fail on speed.
# See docs/performance.md.
#
# Usage: bench/guest.sh [--build DIR] [--rounds N] [--out FILE] [--ours-args ARGS]
#   --build   meson build dir (default: build-rel; configure it with
#             meson setup build-rel --buildtype=release)
#   --rounds  rounds of O, K, D (default 2; order mirrored every other round)
#   --out     where the results table is written too (default:
#             tests/e2e/work/bench-guest-DATE.md)
#   --ours-args  options for our server besides its address and port
#             (default "": its defaults, busy polling learnt; e.g.
#             "--busy-poll 1000" for a fixed window); the
#             benchmark adds --detach-on-export as the counterpart of
#             `usbip bind`
# Exit: 0 figures printed, 1 the harness failed (a step or the boot), 2 usage,
# 77 cannot run here (not root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build="$repo/build-rel"
rounds=2
out=""
ours_args=""

usage() { sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=${2:?}; shift 2 ;;
	--rounds) rounds=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--ours-args) ours_args=${2?}; shift 2 ;;
	-h|--help) usage ;;
	*) echo "unknown argument $1" >&2; usage ;;
	esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a positive number" >&2; exit 2; }
[ -d "$build" ] || {
	echo "no build dir $build: meson setup build-rel --buildtype=release -Dtests=true" >&2
	exit 2
}
build=$(cd "$build" && pwd)

buildtype=$(python3 -c 'import json, sys
opts = json.load(open(sys.argv[1]))
print(next((o["value"] for o in opts if o["name"] == "buildtype"), "?"))' \
	"$build/meson-info/intro-buildoptions.json" 2>/dev/null || echo "?")
[ "$buildtype" = release ] ||
	echo "bench: note: $build is a '$buildtype' build; figures are meant for --buildtype=release" >&2

# What the guest runs: our server and client, and the guest tools (compiled by
# run.sh into tests/e2e/work/bin when the build dir has no tests).
targets=(src/server/usbip-notify-server src/client/usbip-notify-client)
# A build of an older tree (a "before" run) may lack guestbench: run.sh
# compiles both tools itself then.
if ninja -C "$build" -t targets all 2>/dev/null | grep '^tests/e2e/guestbench:' >/dev/null; then
	targets+=(tests/e2e/usbtest_run tests/e2e/guestbench)
fi
ninja -C "$build" "${targets[@]}" >/dev/null

mkdir -p "$repo/tests/e2e/work"
stamp=$(date -u +%Y%m%d-%H%M%S)
[ -n "$out" ] || out="$repo/tests/e2e/work/bench-guest-$stamp.md"
run_dir="$repo/tests/e2e/work/runs/bench-ours"
commit=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)

# The host's load while the guest runs: these machines are shared, and other
# work on them moves TCG figures a lot.
load_log="$repo/tests/e2e/work/bench-hostload.txt"
: > "$load_log"
( while :; do cut -d' ' -f1 /proc/loadavg >> "$load_log"; sleep 15; done ) &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

# The guest sees the build dir at the same path.
[ -n "${E2E_OURS_CMD:-}" ] ||
	export E2E_OURS_CMD="$build/src/server/usbip-notify-server --listen 127.0.0.1 --port 3240 $ours_args"

status=0
E2E_BENCH_ROUNDS=$rounds "$repo/tests/e2e/run.sh" --server ours --build "$build" \
	--timeout $((240 + rounds * 720)) bench || status=$?
kill "$sampler" 2>/dev/null || true
load=$(awk '{ s += $1; n++; if (n == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
	END { if (n) printf "host load average (1 min, every 15 s): min %.1f, mean %.1f, max %.1f on %d cores", lo, s / n, hi, c }' \
	c="$(nproc)" "$load_log")
[ "$status" -ne 77 ] || exit 77

[ -s "$run_dir/bench-raw.txt" ] || {
	echo "bench: no figures (see $run_dir)" >&2
	exit 1
}
python3 "$here/guest_report.py" "$run_dir/bench-raw.txt" \
	--meta "date $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit; build $build ($buildtype); QEMU TCG guest; $load; ours: ${E2E_OURS_CMD#"$build/"} --detach-on-export" \
	> "$out"
cat "$out"
echo
echo "bench: results in $out (raw: $run_dir/bench-raw.txt)"
[ "$status" -eq 0 ] || echo "bench: the harness reported a failure (exit $status): some figures may be missing"
exit $((status == 0 ? 0 : 1))
