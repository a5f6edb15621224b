#!/bin/bash
# The e2e scenario under systemd ("# e2e-init: systemd", see guest/init):
# run by the unit e2e-scenario.service once systemd (PID 1) has reached
# basic.target. Does what guest/init does for the other scenarios: the
# markers on the console, the scenario under the guest timeout, dmesg and
# the exit code into the results share, then powers off.
set -u
. /e2e-results/env
uptime_s() { cut -d' ' -f1 /proc/uptime; }

echo "E2E-BOOTED uptime=$(uptime_s)" > /dev/console
limit=${E2E_GUEST_TIMEOUT:-240}
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root TERM=dumb \
	E2E_ROOT="$E2E_ROOT" E2E_SERVER="$E2E_SERVER" E2E_BUILD="$E2E_BUILD" \
	E2E_USBTEST_RUN="$E2E_USBTEST_RUN" E2E_RESULTS=/e2e-results \
	E2E_SCENARIO="$E2E_SCENARIO" \
	timeout -k 5 "$limit" /bin/bash "$E2E_ROOT/scenarios/$E2E_SCENARIO.sh" \
	> /e2e-results/scenario.log 2>&1 < /dev/null
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "TIMEOUT: scenario killed after ${limit}s" >> /e2e-results/checks.log
fi
echo "E2E-SCENARIO-DONE uptime=$(uptime_s)" > /dev/console
journalctl -b --no-pager > /e2e-results/journal.txt 2>&1
dmesg > /e2e-results/dmesg.txt 2>/dev/null
echo "$rc" > /e2e-results/exit-code
echo "E2E-EXIT-CODE: $rc" > /dev/console
sync
# Straight off, as guest/init does: the results share is written through.
echo o > /proc/sysrq-trigger
sleep 5
echo b > /proc/sysrq-trigger
