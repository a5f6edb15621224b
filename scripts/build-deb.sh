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
# Checks on what was built: the units come with debhelper's enable/start
# snippets (server) and the packaged configuration files parse.
for p in server client; do
	deb=$(ls "$work"/usbip-notify-${p}_*.deb)
	dpkg-deb -x "$deb" "$work/root"
	dpkg-deb -e "$deb" "$work/ctl-$p"
done
grep -q 'deb-systemd-helper' "$work/ctl-server/postinst"
grep -q 'usbip-notify-client.service' "$work/ctl-client/postinst"
"$work/root/usr/bin/usbip-notify-server" -c "$work/root/etc/usbip-notify/server.conf" \
	list --local --sim zero --control none >/dev/null
"$work/root/usr/bin/usbip-notify-client" -c "$work/root/etc/usbip-notify/client.conf" \
	status --control none --state-file /nonexistent --sysfs-root "$work" >/dev/null
echo "checked: unit snippets, configuration files"

mkdir -p "$out"
cp "$work"/*.deb "$out"/
ls -l "$out"/*.deb
