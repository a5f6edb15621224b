#!/usr/bin/env python3
"""TLS on both ports (docs/security.md), against the real server with the sim
backend over loopback: a certificate handshake, device list, import and an
URB through TLS; per-client device rules; wrong CA, expired certificate,
plaintext and wrong PSK refused with a log line while the server keeps
serving; the notify channel through TLS, plaintext refused there too, and a
seed v1 notify client served under --tls-optional. Every certificate and key is made here, at test time, with the
openssl command (nothing secret is committed).

On a host without the kernel's tls module the server carries sessions through
its userspace relay, with it through kernel TLS: the log line of each import
says which, and the test accepts either but checks that it is named.

Also the client daemon's binary with certificates: an attach (into a fake vhci
sysfs) whose import the server logs with the client's identity, and a server
certificate that does not name the host refused by the client.

Usage: test_tls.py SERVER_BINARY CLIENT_BINARY
"""
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

SERVER = None
CLIENT = None
PSK = "bench1:00112233445566778899aabbccddeeff"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, the server's certificate (127.0.0.1), two clients, an expired
    client and a client of another CA."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem",
                "-subj", "/CN=" + ca, "-days", "2", cwd=d)

    def leaf(name, ca, san, days="2"):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=" + san + "\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
                ca + ".key", "-CAcreateserial", "-days", days, "-extfile", name + ".ext",
                "-out", name + ".pem", cwd=d)

    leaf("server", "ca", "IP:127.0.0.1,DNS:localhost")
    leaf("bench1", "ca", "DNS:bench1")
    leaf("bench2", "ca", "DNS:bench2")
    leaf("expired", "ca", "DNS:bench1", days="-1")
    leaf("stranger", "otherca", "DNS:bench1")
    with open(os.path.join(d, "psk"), "w") as f:
        f.write(PSK + "\n")
    with open(os.path.join(d, "wrongpsk"), "w") as f:
        f.write("bench1:ffeeddccbbaa99887766554433221100\n")


def op_header(code):
    return struct.pack(">HHI", 0x0111, code, 0)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class Server:
    def __init__(self, d, *extra, notify=False):
        self.log = open(os.path.join(d, "server%d.log" % id(self)), "w+")
        notify_args = (["--notify-listen", "127.0.0.1", "--notify-port", "0"] if notify
                       else ["--no-notify"])
        self.proc = subprocess.Popen(
            [SERVER, "-c", "/dev/null", "--sim", "zero,zero", "--listen", "127.0.0.1",
             "--port", "0", "--control", "none", "--no-announce", *notify_args, *extra],
            stderr=self.log)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            m = re.search(r"info: listening on port (\d+)", self.text())
            if m:
                self.port = int(m.group(1))
                n = re.search(r"notify: listening on port (\d+)", self.text())
                self.notify_port = int(n.group(1)) if n else None
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("server did not start:\n" + self.text())

    def text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def wait_log(self, pattern, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.text())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError("no log line /%s/ in:\n%s" % (pattern, self.text()))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        make_pki(cls.d)
        p = lambda n: os.path.join(cls.d, n)
        cls.srv = Server(cls.d, "--tls-cert", p("server.pem"), "--tls-key", p("server.key"),
                         "--tls-ca", p("ca.pem"), "--allow-client-device", "bench1=1-1",
                         "--allow-client-device", "bench2=1-2", notify=True)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.d, name)

    def connect(self, cert="bench1", ca="ca", port=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(self.path(ca + ".pem"))
        ctx.load_cert_chain(self.path(cert + ".pem"), self.path(cert + ".key"))
        raw = socket.create_connection(("127.0.0.1", port or self.srv.port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def devlist(self, cert):
        with self.connect(cert) as s:
            s.sendall(op_header(0x8005))
            hdr = recv_exact(s, 12)
            self.assertEqual(hdr[:4], b"\x01\x11\x00\x05")
            n = struct.unpack(">I", hdr[8:12])[0]
            busids = []
            for _ in range(n):
                rec = recv_exact(s, 312)
                busids.append(rec[256:288].rstrip(b"\0").decode())
                nif = rec[311]
                recv_exact(s, 4 * nif)
            return busids

    def import_(self, s, busid):
        s.sendall(op_header(0x8003) + busid.encode().ljust(32, b"\0"))
        hdr = recv_exact(s, 8)
        self.assertEqual(hdr[:4], b"\x01\x11\x00\x03")
        status = struct.unpack(">I", hdr[4:8])[0]
        if status == 0:
            rec = recv_exact(s, 312)
            self.assertEqual(rec[256:288].rstrip(b"\0").decode(), busid)
        return status

    def get_device_descriptor(self, s, devid):
        # CMD_SUBMIT, seqnum 1, direction IN, ep 0, GET_DESCRIPTOR(DEVICE) 18 bytes.
        setup = bytes([0x80, 6, 0, 1, 0, 0, 18, 0])
        s.sendall(struct.pack(">IIIII", 1, 1, devid, 1, 0) +
                  struct.pack(">IIiii", 0, 18, 0, 0, 0) + setup)
        ret = recv_exact(s, 48)
        cmd, seq = struct.unpack(">II", ret[:8])
        status, actual = struct.unpack(">iI", ret[20:28])
        self.assertEqual((cmd, seq, status, actual), (3, 1, 0, 18))
        return recv_exact(s, 18)

    def test_import_and_urb_through_tls(self):
        with self.connect("bench1") as s:
            self.assertEqual(s.version(), "TLSv1.3")
            self.assertEqual(self.import_(s, "1-1"), 0)
            desc = self.get_device_descriptor(s, 1 << 16 | 2)
            self.assertEqual(desc[:2], b"\x12\x01")
        m = self.srv.wait_log(r'imported 1-1 \(TLS identity "bench1", ([a-z ]+TLS[a-z ]*)\)')
        self.assertIn(m.group(1), ("kernel TLS", "userspace TLS relay"))

    def test_client_device_rules(self):
        self.assertEqual(self.devlist("bench1"), ["1-1"])
        self.assertEqual(self.devlist("bench2"), ["1-2"])
        with self.connect("bench1") as s:
            self.assertEqual(self.import_(s, "1-2"), 1)  # ST_NA
        self.srv.wait_log(r'import of 1-2 refused: no --allow-client-device rule for '
                          r'identity "bench1"')
        with self.connect("bench2") as s:
            self.assertEqual(self.import_(s, "1-2"), 0)

    def refused(self, cert, ca, pattern):
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            with self.connect(cert, ca) as s:
                # TLS 1.3: the client learns of a refused certificate on reading.
                s.sendall(op_header(0x8005))
                if not s.recv(12):
                    raise ConnectionError("closed")
        self.srv.wait_log(pattern)
        self.assertEqual(self.devlist("bench1"), ["1-1"])  # still serving

    def test_wrong_ca_refused(self):
        self.refused("stranger", "ca", r"TLS refused: .*certificate: unable to get local issuer")

    def test_expired_refused(self):
        self.refused("expired", "ca", r"TLS refused: .*certificate: certificate has expired")

    def test_server_of_another_ca_refused_by_client(self):
        with self.assertRaises(ssl.SSLError):
            self.connect("bench1", "otherca").close()

    def test_plaintext_refused(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
            s.sendall(op_header(0x8005))
            try:
                self.assertEqual(s.recv(12), b"")  # no reply: closed
            except ConnectionResetError:
                pass  # closed with our request unread
        self.srv.wait_log(r"plaintext connection refused: this server requires TLS")
        self.assertEqual(self.devlist("bench1"), ["1-1"])

    # ---- the notify port ----------------------------------------------------
    def notify_snapshot(self, cert):
        """The busids of a v2 subscriber's snapshot, through TLS (read up to
        snapshot-end, whose count must match)."""
        with self.connect(cert, port=self.srv.notify_port) as s:
            s.sendall(b"hello version=2\n")
            got = b""
            while b"snapshot-end" not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed early: %r" % got)
                got += chunk
            lines = got.decode().split("\n")
            busids = [re.search(r"busid=(\S+)", l).group(1) for l in lines
                      if l.startswith("device ")]
            end = [l for l in lines if l.startswith("snapshot-end")][0]
            self.assertEqual(end, "snapshot-end count=%d" % len(busids))
            return busids

    def test_notify_through_tls_with_client_rules(self):
        # Each client hears only of the devices its rules let it import.
        self.assertEqual(self.notify_snapshot("bench1"), ["1-1"])
        self.assertEqual(self.notify_snapshot("bench2"), ["1-2"])

    def test_notify_plaintext_refused(self):
        with socket.create_connection(("127.0.0.1", self.srv.notify_port), timeout=10) as s:
            s.sendall(b"Client hello")
            try:
                self.assertEqual(s.recv(64), b"")
            except ConnectionResetError:
                pass
        self.srv.wait_log(r"notify: 127\.0\.0\.1:\d+: plaintext connection refused: this server "
                          r"requires TLS")

    def test_notify_wrong_ca_refused(self):
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            with self.connect("stranger", port=self.srv.notify_port) as s:
                s.sendall(b"Client hello")
                if not s.recv(64):
                    raise ConnectionError("closed")
        self.srv.wait_log(r"notify: .*TLS refused: .*certificate: unable to get local issuer")


def fake_vhci(root):
    """A vhci_hcd sysfs directory the daemon accepts; attach writes land in a
    plain file (the session then ends: nobody holds the socket)."""
    hc = os.path.join(root, "devices", "platform", "vhci_hcd.0")
    os.makedirs(hc)
    for name, text in (("attach", ""), ("detach", ""), ("nports", "8\n")):
        with open(os.path.join(hc, name), "w") as f:
            f.write(text)
    with open(os.path.join(hc, "status"), "w") as f:
        f.write("hub port sta spd dev      sockfd local_busid\n")
        for i in range(8):
            f.write("%s  %04d 004 000 00000000 000000 0-0\n" % ("hs" if i < 4 else "ss", i))


class Daemon(unittest.TestCase):
    """The client binary with certificates: its handshake, its check of the
    server's name, and the server's log of its identity."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        make_pki(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_daemon(self, srv, until, cert="bench1"):
        root = tempfile.mkdtemp(dir=self.d)
        fake_vhci(root)
        p = lambda n: os.path.join(self.d, n)
        log = open(os.path.join(root, "client.log"), "w+")
        proc = subprocess.Popen(
            [CLIENT, "-c", "/dev/null", "--server", "127.0.0.1:%d" % srv.notify_port,
             "--usbip-port", str(srv.port), "--sysfs-root", root, "--run-dir",
             os.path.join(root, "run"), "--state-file", os.path.join(root, "state"),
             "--control", "none", "--tls-cert", p(cert + ".pem"), "--tls-key",
             p(cert + ".key"), "--tls-ca", p("ca.pem")], stderr=log)
        try:
            end = time.monotonic() + 15
            while time.monotonic() < end:
                with open(log.name) as f:
                    text = f.read()
                if re.search(until, text):
                    return text
                time.sleep(0.05)
            self.fail("no /%s/ in the client's log:\n%s" % (until, text))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()

    def test_attach_with_certificates(self):
        p = lambda n: os.path.join(self.d, n)
        srv = Server(self.d, "--tls-cert", p("server.pem"), "--tls-key", p("server.key"),
                     "--tls-ca", p("ca.pem"), notify=True)
        try:
            text = self.run_daemon(srv, r"attached 1-1 from 127\.0\.0\.1 .*, "
                                        r"(kernel TLS|userspace relay) \(server \"localhost\"\)")
            self.assertNotIn("TLS handshake failed", text)
            srv.wait_log(r'imported 1-1 \(TLS identity "bench1", (kernel TLS|userspace TLS relay)\)')
        finally:
            srv.stop()

    def test_server_certificate_must_name_the_host(self):
        # A certificate of the right CA, but for bench2, not 127.0.0.1.
        p = lambda n: os.path.join(self.d, n)
        srv = Server(self.d, "--tls-cert", p("bench2.pem"), "--tls-key", p("bench2.key"),
                     "--tls-ca", p("ca.pem"), notify=True)
        try:
            self.run_daemon(srv, r"notify channel: TLS handshake failed: certificate: "
                                 r"IP address mismatch")
        finally:
            srv.stop()


class Psk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        make_pki(cls.d)
        cls.srv = Server(cls.d, "--tls-psk-file", os.path.join(cls.d, "psk"))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.tmp.cleanup()

    def s_client(self, psk_line):
        ident, key = psk_line.split(":")
        return subprocess.run(
            ["openssl", "s_client", "-quiet", "-tls1_3", "-connect",
             "127.0.0.1:%d" % self.srv.port, "-psk_identity", ident, "-psk", key,
             "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
            input=op_header(0x8005), capture_output=True, timeout=20)

    def test_right_psk_lists(self):
        r = self.s_client(PSK)
        self.assertIn(b"\x01\x11\x00\x05", r.stdout)

    def test_wrong_psk_refused(self):
        r = self.s_client("bench1:ffeeddccbbaa99887766554433221100")
        self.assertNotIn(b"\x01\x11\x00\x05", r.stdout)
        self.srv.wait_log(r"TLS refused: TLS handshake failed")
        self.assertIn(b"\x01\x11\x00\x05", self.s_client(PSK).stdout)


class Optional(unittest.TestCase):
    def test_plaintext_allowed_with_tls_optional(self):
        with tempfile.TemporaryDirectory() as d:
            # A bad PSK file: the server says so and stops.
            r = subprocess.run([SERVER, "-c", "/dev/null", "--sim", "zero", "--port", "0",
                                "--no-notify", "--control", "none", "--no-announce",
                                "--tls-psk-file", "/dev/null"],
                               capture_output=True, text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not one line IDENTITY:HEXKEY", r.stderr)
            with open(os.path.join(d, "psk"), "w") as f:
                f.write(PSK + "\n")
            srv = Server(d, "--tls-psk-file", os.path.join(d, "psk"), "--tls-optional",
                         notify=True)
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                    s.sendall(op_header(0x8005))
                    self.assertEqual(recv_exact(s, 4), b"\x01\x11\x00\x05")
                # A seed (v1) notify client keeps working where TLS is optional.
                with socket.create_connection(("127.0.0.1", srv.notify_port), timeout=10) as s:
                    s.sendall(b"Client hello")
                    self.assertEqual(recv_exact(s, 13), b"1-1;PLUGGED;\n")
            finally:
                srv.stop()

    def test_config_file_keys_and_usage_errors(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "psk"), "w") as f:
                f.write(PSK + "\n")
            conf = os.path.join(d, "server.conf")
            with open(conf, "w") as f:
                f.write("tls-psk-file = %s\ntls-optional = yes\n" % os.path.join(d, "psk"))
            log = open(os.path.join(d, "log"), "w+")
            proc = subprocess.Popen([SERVER, "-c", conf, "--sim", "zero", "--listen",
                                     "127.0.0.1", "--port", "0", "--no-notify", "--control",
                                     "none", "--no-announce"], stderr=log)
            try:
                end = time.monotonic() + 20
                text = ""
                while time.monotonic() < end and "listening on port" not in text:
                    time.sleep(0.05)
                    with open(log.name) as f:
                        text = f.read()
                self.assertIn("TLS 1.3 on port 0 (pre-shared key); plaintext clients accepted "
                              "too (--tls-optional)", text)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
                log.close()
        base = [SERVER, "-c", "/dev/null", "--sim", "zero", "--port", "0"]
        for args, needle in [
            (["--allow-client-device", "bench1=1-1"], "--allow-client-device needs TLS"),
            (["--allow-client-device", "bench1"], "want IDENTITY=RULE"),
            (["--tls-cert", "x.pem"], "go together"),
            (["--tls-optional"], "needs TLS configured"),
        ]:
            r = subprocess.run(base + args, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, r.stderr, args)


if __name__ == "__main__":
    SERVER = sys.argv[1]
    CLIENT = sys.argv[2] if len(sys.argv) > 2 else None
    unittest.main(argv=[sys.argv[0], "-v"])
