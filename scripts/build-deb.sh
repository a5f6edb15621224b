#!/usr/bin/env bash
# Builds the Debian packages (usbip-notify-server, usbip-notify-client) from
# the committed tree, in a scratch copy so that neither this tree nor its
# parent directory gets build products, and puts the .deb files in
# OUT (default: build-deb/ here).
# Usage: scripts/build-deb.sh [OUT]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/build-deb}
"$here/scripts/install-deps.sh" --deb

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git -C "$here" archive HEAD | tar -x -C "$work/src"
(cd "$work/src" && dpkg-buildpackage -us -uc -b -j2)
mkdir -p "$out"
cp "$work"/*.deb "$out"/
ls -l "$out"/*.deb
