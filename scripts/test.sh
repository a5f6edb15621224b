#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is
# missing, builds twice and runs every layer, ending with "N passed, N failed".
#
#   build-werror/  gcc, -Werror: the warnings gate; unit + integration tests
#   build-san/     clang, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer,
#                  unit + integration tests, fuzz targets, e2e scenarios
#   build-tsan/    clang, -Werror, ThreadSanitizer: integration tests
#
# Environment: FUZZ_SECONDS (default 20) per fuzz target; SUITES to run a
# subset, e.g. SUITES="unit integration".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --e2e

fuzz_seconds=${FUZZ_SECONDS:-20}

if [ ! -d build-werror ]; then
	CC=gcc meson setup build-werror -Dwerror=true -Dtests=true >/dev/null
fi
ninja -C build-werror

if [ ! -d build-san ]; then
	CC=clang meson setup build-san -Dwerror=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dfuzz=true -De2e=true >/dev/null
fi
meson configure build-san -Dfuzz_seconds="$fuzz_seconds"
ninja -C build-san

if [ ! -d build-tsan ]; then
	CC=clang meson setup build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false \
		>/dev/null
fi
ninja -C build-tsan

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

suite_args=()
for s in ${SUITES:-}; do suite_args+=(--suite "$s"); done

# Which suites run where: everything under ASan/UBSan; unit and integration
# also in the gcc build (other code generation, other timing); integration
# under ThreadSanitizer.
wants() {
	[ -z "${SUITES:-}" ] && return 0
	for s in $SUITES; do [ "$s" = "$1" ] && return 0; done
	return 1
}
gcc_args=()
wants unit && gcc_args+=(--suite unit)
wants integration && gcc_args+=(--suite integration)
# build-tsan's TSAN_OPTIONS (tests/tsan.supp) come from meson.build's
# default test setup.

rm -f tests/e2e/work/usbtest-table.md
rm -f build-werror/meson-logs/testlog.json build-tsan/meson-logs/testlog.json
status=0
logs=(build-san/meson-logs/testlog.json)
if [ ${#gcc_args[@]} -gt 0 ]; then
	meson test -C build-werror --print-errorlogs "${gcc_args[@]}" || status=$?
	logs+=(build-werror/meson-logs/testlog.json)
fi
if wants integration; then
	meson test -C build-tsan --print-errorlogs --suite integration || status=$?
	logs+=(build-tsan/meson-logs/testlog.json)
fi
meson test -C build-san --print-errorlogs "${suite_args[@]}" || status=$?

# The usbtest comparison table, when the e2e suite made one in this run.
if [ -f tests/e2e/work/usbtest-table.md ]; then
	echo "usbtest through USB/IP, kernel server vs ours:"
	cat tests/e2e/work/usbtest-table.md
fi

python3 scripts/summarize-tests.py "${logs[@]}" || status=1
exit $status
