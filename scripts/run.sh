#!/usr/bin/env bash
# Builds the server and runs it. With no arguments it exports the simulated
# gadget-zero device (no USB hardware needed); any arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ ! -d build ]; then
	meson setup build -Dtests=false >/dev/null
fi
ninja -C build >/dev/null
[ $# -gt 0 ] || set -- --sim zero
exec build/src/server/usbip-notify-server "$@"
