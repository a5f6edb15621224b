#!/usr/bin/env python3
"""usbip-notify-server's command line, configuration file, `list`/`status`
(--json parsed here) and control socket, against the real binary with the
sim backend over loopback.

Usage: test_server_cli.py SERVER_BINARY
"""
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

SERVER = None


def run(*args, timeout=20):
    return subprocess.run([SERVER, *args], capture_output=True, text=True, timeout=timeout)


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def conf(self, text, name="server.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # ---- help and bad values --------------------------------------------
    def test_help_lists_every_option(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--config", "--listen", "--port", "--sim", "--allow", "--deny",
                    "--notify-port", "--control", "--json", "--local", "list", "status"):
            self.assertIn(opt, r.stdout)
        # Every long option the binary accepts is in its help text.
        man = os.path.join(os.path.dirname(__file__), "..", "..", "man",
                           "usbip-notify-server.8")
        with open(man) as f:
            mantext = f.read().replace("\\-", "-")
        for opt in set(re.findall(r"--[a-z][a-z-]+", r.stdout)):
            self.assertIn(opt, mantext, opt + " missing from the man page")

    def test_bad_values_exit_2_naming_the_value(self):
        cases = [
            (["--port", "70000"], "70000"),
            (["--port", "-1"], "-1"),
            (["--max-urbs", "0"], "max-urbs"),
            (["--rescan-ms", "abc"], "abc"),
            (["--allow", "xyz"], "xyz"),
            (["--allow-client", "10.0.0.0/33"], "10.0.0.0/33"),
            (["--sim", "one"], "one"),
            (["--control", "relative.sock"], "relative.sock"),
            (["--log-level", "loud"], "loud"),
            (["--notify-heartbeat", "0"], "notify-heartbeat"),
            (["--busy-poll", "100001"], "100001"),
            (["--busy-poll", "-5"], "-5"),
            (["--busy-poll", "automatic"], "automatic"),
        ]
        for args, needle in cases:
            r = run("-c", "/dev/null", *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, r.stderr, args)
            self.assertIn("--" + args[0].lstrip("-"), r.stderr, args)
        r = run("-c", "/dev/null", "frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("frobnicate", r.stderr)
        r = run("-c", "/dev/null", "--json")
        self.assertEqual(r.returncode, 2)

    # ---- configuration file ---------------------------------------------
    def test_config_errors_name_file_line_key(self):
        cases = [
            ("# c\nport = 3240\nbogus = 1\n", ":3: bogus: unknown key"),
            ("port = abc\n", ":1: port: bad value \"abc\""),
            ("\n\ndeny = nope\n", ":3: deny: bad value \"nope\""),
            ("no-notify = perhaps\n", ":1: no-notify: bad value \"perhaps\""),
            ("help = yes\n", ":1: help: unknown key"),
            ("port 3240\n", ":1: expected KEY = VALUE"),
        ]
        for text, needle in cases:
            path = self.conf(text)
            r = run("-c", path, "list", "--local", "--sim", "zero")
            self.assertEqual(r.returncode, 2, text)
            self.assertIn(path + needle, r.stderr, text)
        r = run("-c", os.path.join(self.dir, "missing.conf"), "list")
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.conf", r.stderr)

    def test_every_flag_is_a_key(self):
        opts = set(re.findall(r"--([a-z][a-z-]+)", run("--help").stdout))
        cli_only = {"help", "version", "config", "json", "local"}
        self.assertGreater(len(opts - cli_only), 20)
        for name in sorted(opts - cli_only):
            path = self.conf("%s = maybe-not-valid\n" % name)
            r = run("-c", path, "list", "--local", "--sim", "zero", "--control", "none")
            self.assertNotIn("unknown key", r.stderr, name)
        for name in sorted(cli_only):
            path = self.conf("%s = yes\n" % name)
            r = run("-c", path, "list", "--local", "--sim", "zero")
            self.assertEqual(r.returncode, 2, name)
            self.assertIn(":1: %s: unknown key" % name, r.stderr)

    def test_config_applies_and_flags_override(self):
        path = self.conf("# two devices, one denied\n"
                         "sim = zero,zero\n"
                         "deny = 1-2\n"
                         "control = none\n")
        r = run("-c", path, "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        for value in ("auto", "0", "1000"):
            r2 = run("-c", path, "list", "--json", "--busy-poll", value)
            self.assertEqual(r2.returncode, 0, value + ": " + r2.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["source"], "local")
        devs = {d["busid"]: d for d in doc["devices"]}
        self.assertEqual(sorted(devs), ["1-1", "1-2"])
        self.assertTrue(devs["1-1"]["exported"])
        self.assertEqual(devs["1-1"]["reason"], "offered")
        self.assertFalse(devs["1-2"]["exported"])
        self.assertEqual(devs["1-2"]["reason"], "deny")
        self.assertEqual(devs["1-2"]["rule"], "1-2")
        self.assertIsNone(devs["1-2"]["held"])
        # A flag overrides the file's single value; rules add up.
        r = run("-c", path, "list", "--json", "--sim", "zero,zero,zero", "--deny",
                "0525:a4a0:SIM0003")
        devs = {d["busid"]: d for d in json.loads(r.stdout)["devices"]}
        self.assertEqual(sorted(devs), ["1-1", "1-2", "1-3"])
        self.assertEqual([devs[b]["exported"] for b in ("1-1", "1-2", "1-3")],
                         [True, False, False])
        self.assertEqual(devs["1-3"]["rule"], "0525:a4a0:SIM0003")

    def test_list_json_fields_and_allow(self):
        r = run("-c", "/dev/null", "--control", "none", "list", "--json", "--sim", "zero,zero",
                "--allow", "0525:a4a0:SIM0001")
        self.assertEqual(r.returncode, 0, r.stderr)
        devs = json.loads(r.stdout)["devices"]
        self.assertEqual(len(devs), 2)
        d = devs[0]
        for k, v in (("busid", "1-1"), ("vid", "0525"), ("pid", "a4a0"), ("serial", "SIM0001"),
                     ("speed", "high"), ("exported", True), ("reason", "allow"),
                     ("rule", "0525:a4a0:SIM0001")):
            self.assertEqual(d[k], v, k)
        self.assertTrue(d["product"])
        self.assertTrue(d["manufacturer"])
        self.assertEqual(devs[1]["reason"], "no-allow-match")
        self.assertFalse(devs[1]["exported"])
        # Text output says the same in words.
        r = run("-c", "/dev/null", "--control", "none", "list", "--sim", "zero,zero",
                "--allow", "1-1")
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("BUSID"))
        self.assertIn("exported (allow 1-1)", lines[1])
        self.assertIn("hidden: no allow rule matches", lines[2])


class RunningServer(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.tmp.name, "run", "server.sock")
        self.log = open(os.path.join(self.tmp.name, "log"), "w+")
        conf = os.path.join(self.tmp.name, "server.conf")
        with open(conf, "w") as f:
            f.write("sim = zero,zero\nlisten = 127.0.0.1\nport = 0\n"
                    "notify-listen = 127.0.0.1\nnotify-port = 0\ndeny = 1-2\n"
                    "metrics = 127.0.0.1:0\nno-announce = yes\n"
                    "control = %s\n" % self.sock)
        self.proc = subprocess.Popen([SERVER, "-c", conf], stderr=self.log)
        wait_for(lambda: os.path.exists(self.sock) and "control socket" in self.logtext(),
                 what="the control socket")
        self.port = int(re.search(r"info: listening on port (\d+)", self.logtext()).group(1))
        self.metrics_port = int(re.search(r"metrics on .* \(port (\d+)\)",
                                          self.logtext()).group(1))

    def tearDown(self):
        self.proc.terminate()
        self.assertEqual(self.proc.wait(timeout=10), 0)
        self.assertFalse(os.path.exists(self.sock), "socket left behind")
        self.log.close()
        self.tmp.cleanup()

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def request(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(line)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def list_json(self):
        r = run("list", "--json", "--control", self.sock)
        self.assertEqual(r.returncode, 0, r.stderr)
        return {d["busid"]: d for d in json.loads(r.stdout)["devices"]}

    def import_device(self, busid):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(struct.pack(">HHI", 0x0111, 0x8003, 0) + busid.encode().ljust(32, b"\0"))
        hdr = b""
        while len(hdr) < 8:
            chunk = s.recv(8 - len(hdr))
            self.assertTrue(chunk, "server closed the import connection")
            hdr += chunk
        _, code, status = struct.unpack(">HHI", hdr)
        self.assertEqual((code, status), (0x0003, 0))
        return s

    def scrape(self, path="/metrics"):
        with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=5) as s:
            s.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.decode().partition("\r\n\r\n")
        return head.split("\r\n")[0], head, body

    def parse_metrics(self, body):
        samples, types = {}, {}
        for line in body.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                types[name] = kind
                continue
            if line.startswith("#") or not line:
                continue
            m = re.fullmatch(r'([a-z_]+)(\{busid="([0-9.-]+)"\})? (\d+)', line)
            self.assertIsNotNone(m, "bad sample line: " + line)
            name = m.group(1)
            self.assertIn(name, types, "sample before its TYPE: " + line)
            samples[(name, m.group(3))] = int(m.group(4))
        return samples, types

    def test_metrics(self):
        status, head, body = self.scrape()
        self.assertEqual(status, "HTTP/1.0 200 OK")
        self.assertIn("Content-Type: text/plain; version=0.0.4", head)
        samples, types = self.parse_metrics(body)
        self.assertEqual(samples[("usbip_notify_exported_devices", None)], 1)
        self.assertEqual(samples[("usbip_notify_sessions", None)], 0)
        self.assertEqual(samples[("usbip_notify_notify_subscribers", None)], 0)
        self.assertEqual(types["usbip_notify_device_urbs_total"], "counter")
        self.assertEqual(samples[("usbip_notify_device_urbs_total", "1-1")], 0)
        self.assertNotIn(("usbip_notify_device_urbs_total", "1-2"), samples)  # denied
        # A notify subscriber and an import show up in the gauges.
        with socket.create_connection(("127.0.0.1", self.notify_port()), timeout=5) as sub:
            sub.sendall(b"Client hello\n")
            conn = self.import_device("1-1")
            wait_for(lambda: self.parse_metrics(self.scrape()[2])[0][
                ("usbip_notify_notify_subscribers", None)] == 1, what="subscriber gauge")
            samples, _ = self.parse_metrics(self.scrape()[2])
            self.assertEqual(samples[("usbip_notify_sessions", None)], 1)
            self.assertEqual(samples[("usbip_notify_device_sessions_total", "1-1")], 1)
            # One GET_DESCRIPTOR(device) through the session is counted.
            record = b""
            while len(record) < 312:
                chunk = conn.recv(312 - len(record))
                self.assertTrue(chunk, "import reply cut short")
                record += chunk
            busnum, devnum = struct.unpack(">II", record[288:296])
            setup = bytes([0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 18, 0x00])
            conn.sendall(struct.pack(">IIIIIIIiIi", 1, 1, busnum << 16 | devnum, 1, 0,
                                     0x200, 18, 0, 0, 0) + setup)
            reply = b""
            while len(reply) < 48 + 18:
                chunk = conn.recv(48 + 18 - len(reply))
                self.assertTrue(chunk, "RET_SUBMIT cut short")
                reply += chunk
            command, seqnum = struct.unpack(">II", reply[:8])
            status, actual = struct.unpack(">iI", reply[20:28])
            self.assertEqual((command, seqnum, status, actual), (3, 1, 0, 18))
            samples, _ = self.parse_metrics(self.scrape()[2])
            self.assertEqual(samples[("usbip_notify_device_urbs_total", "1-1")], 1)
            self.assertEqual(samples[("usbip_notify_device_bytes_in_total", "1-1")], 18)
            self.assertEqual(samples[("usbip_notify_device_urb_errors_total", "1-1")], 0)
            conn.close()
        self.assertEqual(self.scrape("/nope")[0], "HTTP/1.0 404 Not Found")

    def notify_port(self):
        r = run("status", "--json", "--control", self.sock)
        return json.loads(r.stdout)["notify_port"]

    def test_socket_mode(self):
        mode = stat.S_IMODE(os.stat(self.sock).st_mode)
        self.assertEqual(mode, 0o660)
        self.assertTrue(stat.S_ISSOCK(os.stat(self.sock).st_mode))

    def test_list_shows_holder(self):
        devs = self.list_json()
        self.assertFalse(devs["1-1"]["held"])
        self.assertFalse(devs["1-2"]["exported"])
        conn = self.import_device("1-1")
        try:
            devs = self.list_json()
            self.assertTrue(devs["1-1"]["held"])
            self.assertTrue(devs["1-1"]["exported"])
            # Text form through the same socket.
            r = run("list", "--control", self.sock)
            self.assertRegex(r.stdout, r"1-1 .*held by")
        finally:
            conn.close()
        wait_for(lambda: not self.list_json()["1-1"]["held"], what="release after close")

    def test_status(self):
        r = run("status", "--json", "--control", self.sock)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)
        self.assertEqual(st["port"], self.port)
        self.assertEqual(st["backend"], "sim")
        self.assertEqual(st["exported"], 1)
        self.assertEqual(st["held"], 0)
        self.assertGreater(st["notify_port"], 0)
        r = run("status", "--control", self.sock)
        self.assertIn("1 device(s) exported, 0 held", r.stdout)

    def test_raw_requests(self):
        self.assertTrue(self.request(b"list --json\n").startswith("ok\n{"))
        self.assertTrue(self.request(b"frob\n").startswith("error unknown request"))
        self.assertTrue(self.request(b"list --yaml\n").startswith("error usage"))
        self.assertTrue(self.request(b"\n").startswith("error empty"))
        self.assertTrue(self.request(b"x" * 2000 + b"\n").startswith("error request too long"))
        # The daemon still answers after all that.
        self.assertTrue(self.request(b"status\n").startswith("ok\n"))

    def test_second_server_refuses_the_socket(self):
        conf = os.path.join(self.tmp.name, "two.conf")
        with open(conf, "w") as f:
            f.write("sim = zero\nlisten = 127.0.0.1\nport = 0\nno-notify = yes\n"
                    "control = %s\n" % self.sock)
        log2 = os.path.join(self.tmp.name, "log2")
        with open(log2, "w") as lf:
            p = subprocess.Popen([SERVER, "-c", conf], stderr=lf)
        try:
            def warned():
                with open(log2) as f:
                    return "another server is running" in f.read()
            wait_for(warned, what="the second server's warning")
        finally:
            p.terminate()
            p.wait(timeout=10)
        # The first server's socket survived.
        self.assertTrue(self.request(b"status\n").startswith("ok\n"))


if __name__ == "__main__":
    SERVER = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
