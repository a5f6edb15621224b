#!/usr/bin/env python3
"""DNS-SD through a real avahi-daemon: the server's announcement, and the
client daemon's --discover following servers as they come and go.

Runs itself inside a fresh network and mount namespace (unshare -n -m):
there lo is the only interface, with multicast turned on (avahi ignores
interfaces without it), /run is a private tmpfs, and a private dbus-daemon
carries avahi's bus, so nothing on the host is touched or seen. Needs root,
unshare, ip, dbus-daemon, avahi-daemon and avahi-browse; otherwise, or when
the server was built without Avahi, it is skipped (exit 77).

Usage: test_dnssd.py SERVER_BINARY CLIENT_BINARY
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SERVER = None
CLIENT = None
ENV = None
TMP = None

DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/> <allow own="*"/>
    <allow send_type="method_call"/> <allow send_type="signal"/>
    <allow send_type="method_return"/> <allow send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="signal"/>
    <allow receive_type="method_return"/> <allow receive_type="error"/>
  </policy>
</busconfig>
"""

AVAHI_CONF = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
[publish]
publish-hinfo=no
publish-workstation=no
"""


def wait_for(pred, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def browse():
    """{name: (port, {txt key: value})} of the _usbip._tcp services now."""
    r = subprocess.run(["avahi-browse", "-rtp", "_usbip._tcp"], env=ENV,
                       capture_output=True, text=True, timeout=20)
    found = {}
    for line in r.stdout.splitlines():
        f = line.split(";")
        if f[0] != "=" or len(f) < 10:
            continue
        name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), f[3])
        txt = dict(t.strip('"').split("=", 1) for t in re.findall(r'"[^"]*"', f[9]) if "=" in t)
        found[name] = (int(f[8]), txt)
    return found


class Announce(unittest.TestCase):
    def start_server(self, *args):
        log = open(os.path.join(TMP, "server%d.log" % len(self.procs)), "w+")
        self.addCleanup(log.close)
        p = subprocess.Popen([SERVER, "-c", "/dev/null", "--sim", "zero", "--port", "0",
                              "--notify-port", "0", "--control", "none", *args],
                             stderr=log, env=ENV)
        self.procs.append(p)

        def ports():
            log.flush()
            with open(log.name) as f:
                text = f.read()
            u = re.search(r"info: listening on port (\d+)", text)
            n = re.search(r"notify: listening on port (\d+)", text)
            return (int(u.group(1)), int(n.group(1))) if u and n else None
        return p, wait_for(ports, what="the server's ports")

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)

    def test_announce_collision_withdraw(self):
        p1, (usbip1, notify1) = self.start_server("--announce-name", "lab bench")
        svc = wait_for(lambda: browse().get("lab bench"), what="the announcement")
        self.assertEqual(svc[0], usbip1)
        self.assertEqual(svc[1].get("notify"), str(notify1))
        self.assertEqual(svc[1].get("tls"), "0")
        self.assertEqual(svc[1].get("txtvers"), "1")

        # Same name again: the second server takes another one.
        p2, (usbip2, _) = self.start_server("--announce-name", "lab bench")
        seen = wait_for(lambda: [n for n, s in browse().items() if s[0] == usbip2],
                        what="the second announcement")
        self.assertNotEqual(seen[0], "lab bench")
        self.assertTrue(seen[0].startswith("lab bench"))

        # A server that stops withdraws its name.
        p1.terminate()
        self.assertEqual(p1.wait(timeout=10), 0)
        wait_for(lambda: "lab bench" not in browse(), what="the withdrawal")

    def test_no_announce_and_default_name(self):
        _, (usbip, _) = self.start_server("--no-announce")
        _, (usbip_d, _) = self.start_server()
        found = wait_for(lambda: [n for n, s in browse().items() if s[0] == usbip_d],
                         what="the default-named announcement")
        self.assertTrue(found[0].startswith("usbip-notify on "), found)
        time.sleep(1)
        self.assertFalse([n for n, s in browse().items() if s[0] == usbip])


class Discover(unittest.TestCase):
    def setUp(self):
        self.procs = []
        self.sock = os.path.join(TMP, "client.sock")

    def tearDown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)

    def spawn(self, argv, logname):
        log = open(os.path.join(TMP, logname), "w")
        self.addCleanup(log.close)
        p = subprocess.Popen(argv, stderr=log, env=ENV)
        self.procs.append(p)
        return p

    def server(self, name, logname):
        return self.spawn([SERVER, "-c", "/dev/null", "--sim", "zero,zero", "--port", "0",
                           "--notify-port", "0", "--control", "none",
                           "--announce-name", name], logname)

    def status(self):
        r = subprocess.run([CLIENT, "-c", "/dev/null", "status", "--json", "--control",
                            self.sock], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            return None
        import json
        return {s["name"]: s for s in json.loads(r.stdout)["servers"]}

    def test_follow_servers_as_they_come_and_go(self):
        a = self.server("bench A", "a.log")
        self.server("other desk", "other.log")
        self.spawn([CLIENT, "-c", "/dev/null", "--discover", "--discover-name", "bench*",
                    "--dry-run", "--control", self.sock,
                    "--state-file", os.path.join(TMP, "state"), "--sysfs-root", TMP],
                   "client.log")

        def subscribed(name, n_att):
            st = self.status() or {}
            s = st.get(name)
            return s if s and s["state"] == "subscribed" and len(s["attachments"]) == n_att \
                else None
        s = wait_for(lambda: subscribed("bench A", 2), what="bench A followed")
        self.assertEqual(s["host"], "127.0.0.1")
        self.assertEqual(sorted(x["busid"] for x in s["attachments"]), ["1-1", "1-2"])
        time.sleep(1)
        self.assertEqual(sorted(self.status()), ["bench A"])  # "other desk" filtered out

        # The server goes: its announcement goes, the client drops it.
        a.terminate()
        a.wait(timeout=10)
        wait_for(lambda: self.status() is not None and "bench A" not in self.status(),
                 what="bench A dropped")
        # It comes back (new ports): followed again.
        self.server("bench A", "a2.log")
        wait_for(lambda: subscribed("bench A", 2), what="bench A followed again")


def dump_logs():
    """The daemons' logs, before their directory goes: a failure's cause
    (a sanitizer's report, say) is often only there."""
    for name in sorted(os.listdir(TMP)):
        if name.endswith(".log"):
            with open(os.path.join(TMP, name), errors="replace") as f:
                lines = f.readlines()
            print("--- %s (last %d of %d lines)" % (name, min(len(lines), 60), len(lines)))
            sys.stdout.writelines(lines[-60:])


def inside():
    global ENV, TMP
    TMP = tempfile.mkdtemp(prefix="test_dnssd.")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "multicast", "on"], check=True)
    with open(os.path.join(TMP, "dbus.conf"), "w") as f:
        f.write(DBUS_CONF % TMP)
    with open(os.path.join(TMP, "avahi.conf"), "w") as f:
        f.write(AVAHI_CONF)
    ENV = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=%s/bus" % TMP)
    dbus = subprocess.Popen(["dbus-daemon", "--nofork",
                             "--config-file=" + os.path.join(TMP, "dbus.conf")])
    wait_for(lambda: os.path.exists(os.path.join(TMP, "bus")), what="dbus")
    avahi = subprocess.Popen(["avahi-daemon", "-f", os.path.join(TMP, "avahi.conf"),
                              "--no-chroot", "--no-drop-root", "--no-rlimits", "-s"],
                             env=ENV, stderr=subprocess.DEVNULL)
    wait_for(lambda: subprocess.run(["avahi-browse", "-at"], env=ENV, capture_output=True,
                                    timeout=10).returncode == 0, what="avahi-daemon")
    ok = False
    try:
        prog = unittest.main(argv=[sys.argv[0]], verbosity=2, exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        if not ok:
            dump_logs()
        avahi.send_signal(signal.SIGTERM)
        avahi.wait(timeout=10)
        dbus.terminate()
        dbus.wait(timeout=10)
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(0 if ok else 1)


def main():
    global SERVER
    global CLIENT
    SERVER = os.path.abspath(sys.argv[1])
    CLIENT = os.path.abspath(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] == "--inside":
        inside()
        return
    missing = [t for t in ("unshare", "ip", "dbus-daemon", "avahi-daemon", "avahi-browse")
               if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        print("skipped: needs root and " + (", ".join(missing) or "nothing else"))
        sys.exit(77)
    # A build without Avahi has the options but announces nothing.
    probe = subprocess.run(["ldd", SERVER], capture_output=True, text=True)
    if "avahi-client" not in probe.stdout:
        print("skipped: server built without Avahi")
        sys.exit(77)
    # The namespace: lo only, a private /run for avahi's pid file and socket.
    cmd = ["unshare", "-n", "-m", "sh", "-c",
           'mount -t tmpfs tmpfs /run && exec "$0" "$@"', sys.executable,
           os.path.abspath(__file__), SERVER, CLIENT, "--inside"]
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
