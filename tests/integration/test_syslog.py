#!/usr/bin/env python3
"""--syslog: both daemons' log lines reach syslog(3), one datagram per
event, with the right facility, priority and ident, naming the device and
the peer; nothing is left on stderr.

glibc's syslog(3) always writes to /dev/log, so the daemons run inside a
private mount namespace (unshare -m) whose /dev is a tmpfs holding links
to the real /dev's nodes and, as /dev/log, a link to this test's own
AF_UNIX datagram socket: nothing on the host is touched, and no syslog
daemon is needed. Needs root and unshare; otherwise skipped (exit 77).

Usage: test_syslog.py SERVER_BINARY CLIENT_BINARY
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

LOG_DAEMON = 3
LOG_INFO = 6

# In the namespace: the real /dev under $1/olddev, a tmpfs /dev of links
# to it, /dev/log -> the test's socket; then the command.
NS_SETUP = r'''
set -e
mkdir -p "$1/olddev"
mount --make-rprivate /
mount --rbind /dev "$1/olddev"
mount -t tmpfs tmpfs /dev
for f in "$1"/olddev/*; do ln -s "$f" "/dev/${f##*/}"; done
ln -s "$1/log" /dev/log
shift
exec "$@"
'''

# <PRI>Mmm dd hh:mm:ss IDENT[PID]: MESSAGE
RECORD = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d ([\w-]+)\[(\d+)\]: (.*)$")


def main():
    server, client = (os.path.abspath(a) for a in sys.argv[1:3])
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("skipped: needs root and unshare")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="test_syslog.")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(tmp, "log"))
    sock.settimeout(0.2)
    procs = []
    records = []
    failures = []

    def spawn(name, argv):
        err = open(os.path.join(tmp, name + ".stderr"), "w+")
        p = subprocess.Popen(["unshare", "-m", "sh", "-c", NS_SETUP, "sh", tmp, *argv],
                             stderr=err, stdout=subprocess.DEVNULL)
        procs.append((p, err))
        return p

    def wait_for(pred, what, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data = sock.recv(4096)
                records.append(data.decode("utf-8", "replace"))
            except socket.timeout:
                pass
            v = pred()
            if v:
                return v
            for p, _ in procs:
                if p.poll() is not None:
                    raise AssertionError("a daemon exited (%d) waiting for %s"
                                         % (p.returncode, what))
        raise AssertionError("timed out waiting for " + what)

    def find(ident, pattern):
        for r in records:
            m = RECORD.match(r)
            if m and m.group(2) == ident and re.search(pattern, m.group(4)):
                return m
        return None

    def check(cond, msg):
        print(("ok: " if cond else "FAIL: ") + msg)
        if not cond:
            failures.append(msg)

    try:
        spawn("server", [server, "-c", "/dev/null", "--syslog", "--sim", "zero",
                         "--listen", "127.0.0.1", "--notify-listen", "127.0.0.1",
                         "--port", "0", "--notify-port", "0", "--control", "none",
                         "--no-announce"])
        m = wait_for(lambda: find("usbip-notify-server", r"^notify: listening on port \d+"),
                     "the server's notify port")
        notify = re.search(r"port (\d+)", m.group(4)).group(1)
        m_usbip = wait_for(lambda: find("usbip-notify-server", r"^listening on port \d+"),
                           "the server's USB/IP port")
        usbip = re.search(r"port (\d+)", m_usbip.group(4)).group(1)
        check(int(m.group(1)) == LOG_DAEMON * 8 + LOG_INFO,
              "facility daemon, priority info (<%s>)" % m.group(1))
        check(m.group(3) == str(procs[0][0].pid), "ident carries the server's pid")

        spawn("client", [client, "-c", "/dev/null", "--syslog", "--dry-run",
                         "--server", "127.0.0.1:" + notify, "--usbip-port", usbip,
                         "--control", "none", "--state-file", os.path.join(tmp, "state"),
                         "--sysfs-root", tmp])
        # One event each side, naming device and peer.
        s = wait_for(lambda: find("usbip-notify-server",
                                  r"^notify: 127\.0\.0\.1:\d+ subscribed"),
                     "the server's subscription line")
        c = wait_for(lambda: find("usbip-notify-client",
                                  r"^dry run: would import 1-1 from 127\.0\.0\.1:%s" % usbip),
                     "the client's import line")
        check(s is not None and c is not None, "server and client events: " +
              s.group(4) + " / " + c.group(4))
        check(all("usbip-notify info:" not in r for r in records),
              "no stderr-style prefix in syslog records")
        check(all(r.count("\n") <= 1 for r in records), "one line per record")
    finally:
        for p, _ in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
        for i, (p, err) in enumerate(procs):
            err.seek(0)
            text = err.read()
            check(text == "", "%s stderr empty%s" % (("server", "client")[i],
                                                      "" if not text else ": " + text))
            err.close()
        sock.close()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
