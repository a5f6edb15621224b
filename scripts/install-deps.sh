#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need.
# Usage: scripts/install-deps.sh [--e2e | --deb]
#   --e2e adds the QEMU guest's packages, --deb what scripts/build-deb.sh needs
set -euo pipefail

pkgs=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev
      libusb-1.0-0-dev libcmocka-dev python3 usbip
      libavahi-client-dev
      # dns_sd.h over Avahi: the Bonjour implementation is built and tested here too
      libavahi-compat-libdnssd-dev
      # TLS (src/common/tls*.c); the openssl command makes the tests' certificates
      libssl-dev openssl
      # the DNS-SD test runs its own avahi-daemon and dbus-daemon in a
      # private network namespace (tests/integration/test_dnssd.py)
      avahi-daemon avahi-utils dbus iproute2 util-linux
      # the manual pages render (man -l) and the units pass systemd-analyze verify
      man-db systemd)
if [ "${1:-}" = "--deb" ]; then
	pkgs+=(debhelper dpkg-dev fakeroot)
fi
if [ "${1:-}" = "--e2e" ]; then
	pkgs+=(qemu-system-x86 linux-image-amd64 busybox-static cpio usbutils kmod
	       alsa-utils
	       # the deb scenario boots the host's systemd and udev in the guest and
	       # builds the packages (scripts/build-deb.sh)
	       udev debhelper dpkg-dev fakeroot)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
