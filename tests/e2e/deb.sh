#!/usr/bin/env bash
# The Debian package test: builds the packages from the committed tree
# (scripts/build-deb.sh) into BUILD/deb, then boots the `deb` scenario,
# which installs them under systemd in the guest and starts their units.
# Usage: tests/e2e/deb.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: deb.sh BUILD_DIR}" && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: must run as root"
	exit 77
fi
rm -rf "$build/deb"
"$here/../../scripts/build-deb.sh" "$build/deb"
exec "$here/run.sh" --server ours --build "$build" deb
