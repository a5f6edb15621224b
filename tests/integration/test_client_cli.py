#!/usr/bin/env python3
"""usbip-notify-client's command line and configuration file, through the
real binary: help, bad values (exit 2, naming the value, or file, line and
key), and the control commands when no daemon answers.

Usage: test_client_cli.py CLIENT_BINARY
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

CLIENT = None


def run(*args):
    return subprocess.run([CLIENT, *args], capture_output=True, text=True, timeout=20)


class ClientCli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def conf(self, text):
        path = os.path.join(self.tmp.name, "client.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_help_matches_man_page(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        opts = set(re.findall(r"--[a-z][a-z-]+", r.stdout))
        for o in ("--config", "--server", "--control", "--json", "--allow"):
            self.assertIn(o, opts)
        man = os.path.join(os.path.dirname(__file__), "..", "..", "man",
                           "usbip-notify-client.8")
        with open(man) as f:
            mantext = f.read().replace("\\-", "-")
        for o in opts:
            self.assertIn(o, mantext, o + " missing from the man page")

    def test_bad_values(self):
        cases = [
            (["--usbip-port", "99999"], "99999"),
            (["--protocol", "v9"], "v9"),
            (["--allow", "zz:zz"], "zz:zz"),
            (["--control", "x.sock"], "x.sock"),
            (["--log-level", "chatty"], "chatty"),
        ]
        for args, needle in cases:
            r = run("-c", "/dev/null", "--server", "127.0.0.1", *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, r.stderr, args)
            self.assertIn(args[0], r.stderr, args)
        r = run("-c", "/dev/null")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no --server", r.stderr)
        r = run("-c", "/dev/null", "attach", "not-a-busid!")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not-a-busid!", r.stderr)
        r = run("-c", "/dev/null", "launch")
        self.assertEqual(r.returncode, 2)

    def test_config_errors(self):
        cases = [
            ("server = 127.0.0.1\nprotocol = v3\n", ":2: protocol: bad value \"v3\""),
            ("sever = 127.0.0.1\n", ":1: sever: unknown key"),
            ("json = yes\n", ":1: json: unknown key"),
            ("dry-run = sometimes\n", ":1: dry-run: bad value \"sometimes\""),
            ("server\n", ":1: expected KEY = VALUE"),
        ]
        for text, needle in cases:
            path = self.conf(text)
            r = run("-c", path, "--dry-run")
            self.assertEqual(r.returncode, 2, text)
            self.assertIn(path + needle, r.stderr, text)

    def test_every_flag_is_a_key(self):
        opts = set(re.findall(r"--([a-z][a-z-]+)", run("--help").stdout))
        cli_only = {"help", "config", "json"}
        for name in sorted(opts - cli_only):
            path = self.conf("%s = maybe-not-valid\n" % name)
            r = run("-c", path, "status", "--control", "none", "--state-file",
                    os.path.join(self.tmp.name, "s"), "--sysfs-root", self.tmp.name)
            self.assertNotIn("unknown key", r.stderr, name)
        for name in sorted(cli_only):
            path = self.conf("%s = yes\n" % name)
            r = run("-c", path, "status", "--control", "none")
            self.assertEqual(r.returncode, 2, name)
            self.assertIn(":1: %s: unknown key" % name, r.stderr)

    def test_config_servers_add_up_with_flags(self):
        # 17 servers in all is one too many: the file's and the flags' count together.
        path = self.conf("".join("server = 10.0.0.%d\n" % i for i in range(1, 17)))
        r = run("-c", path, "--server", "10.0.1.1", "status", "--control", "none")
        self.assertEqual(r.returncode, 2)
        self.assertIn("too many servers", r.stderr)

    def test_control_commands_without_daemon(self):
        sock = os.path.join(self.tmp.name, "none.sock")
        for cmd in (["attach", "1-1"], ["detach", "1-1"], ["hold", "1-1"], ["release", "1-1"]):
            r = run("-c", "/dev/null", "--control", sock, *cmd)
            self.assertEqual(r.returncode, 1, cmd)
            self.assertIn("no daemon answers on " + sock, r.stderr)
        r = run("-c", "/dev/null", "--control", sock, "status", "--json")
        self.assertEqual(r.returncode, 1)
        r = run("-c", "/dev/null", "--control", sock, "status",
                "--state-file", os.path.join(self.tmp.name, "nostate"),
                "--sysfs-root", self.tmp.name)
        self.assertEqual(r.returncode, 0)
        self.assertIn("no daemon answers", r.stdout)


if __name__ == "__main__":
    CLIENT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
