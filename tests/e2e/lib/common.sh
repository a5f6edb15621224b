# Common helpers for e2e scenarios; sourced inside the guest (bash, as root).
# Every step that can hang runs under a timeout: a USB device whose lock is
# held by a stuck request blocks even plain sysfs reads of it.
#
# Environment set by the guest init: E2E_ROOT (tests/e2e), E2E_SERVER
# (kernel|ours), E2E_BUILD (meson build dir or empty), E2E_USBTEST_RUN,
# E2E_RESULTS (writable results dir), E2E_SCENARIO.

: "${E2E_RESULTS:=/tmp/e2e-results}"
mkdir -p "$E2E_RESULTS"
E2E_CHECKS="$E2E_RESULTS/checks.log"
e2e_failures=0

log() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }

# record PASS|FAIL|SKIP TEXT: one check result; run.sh prints these lines.
# SKIP (not applicable here) does not fail the scenario.
record() {
	local verdict=$1; shift
	echo "$verdict: $*" | tee -a "$E2E_CHECKS"
	[ "$verdict" != FAIL ] || e2e_failures=$((e2e_failures + 1))
}

# check NAME CMD...: runs CMD and records PASS or FAIL under NAME.
check() {
	local name=$1; shift
	if "$@"; then
		record PASS "$name"
	else
		record FAIL "$name"
		return 1
	fi
}

# A fatal step: records FAIL and ends the scenario (after cleanup traps).
require() {
	local name=$1; shift
	check "$name" "$@" || e2e_finish
}

# Ends the scenario with status 0 only when every check passed.
e2e_finish() {
	if [ "$e2e_failures" -eq 0 ]; then
		log "all checks passed"
		exit 0
	fi
	log "$e2e_failures check(s) failed"
	exit 1
}

# run_t SECS CMD...: CMD under a timeout (KILL 2 s after TERM).
run_t() {
	local secs=$1; shift
	timeout -k 2 "$secs" "$@"
}

# Reads a small sysfs/configfs file without hanging on a locked device.
sysfs_read() {
	timeout -k 1 3 cat "$1" 2>/dev/null
}

# Writes a value to a sysfs/configfs file, under a timeout.
sysfs_write() {
	local path=$1 value=$2
	timeout -k 1 10 sh -c 'printf "%s\n" "$1" > "$2"' _ "$value" "$path"
}

# wait_for SECS CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
	local secs=$1; shift
	local end=$((SECONDS + secs))
	while [ "$SECONDS" -lt "$end" ]; do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

# Loads modules, each under a timeout.
load_modules() {
	local m
	for m in "$@"; do
		run_t 60 modprobe "$m" || { log "modprobe $m failed"; return 1; }
	done
}

# True when something listens on TCP PORT (IPv4 or IPv6), from /proc/net.
tcp_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	grep -qE "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:0000 0A " \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Kernel trouble so far (oops, BUG, WARNING): prints the lines, true if any.
kernel_trouble() {
	dmesg | grep -E 'Oops|BUG:|WARNING:|general protection fault|kernel BUG'
}
no_kernel_trouble() { ! kernel_trouble; }
