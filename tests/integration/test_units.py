#!/usr/bin/env python3
"""The systemd units pass `systemd-analyze verify`.

The units are made from their .in templates the way meson does (@bindir@),
pointing at a scratch directory holding the built binaries, so verify
checks that ExecStart= is executable; MANPATH names a scratch man8 with
our pages, so it checks Documentation=man:... too. Skipped (exit 77)
without systemd-analyze.

Usage: test_units.py SERVER_BINARY CLIENT_BINARY UNIT.in... PAGE.8...
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    if not shutil.which("systemd-analyze"):
        print("skipped: no systemd-analyze")
        sys.exit(77)
    args = [os.path.abspath(a) for a in sys.argv[1:]]
    binaries = args[:2]
    templates = [a for a in args[2:] if a.endswith(".in")]
    pages = [a for a in args[2:] if a.endswith(".8")]
    with tempfile.TemporaryDirectory(prefix="test_units.") as tmp:
        bindir = os.path.join(tmp, "bin")
        man8 = os.path.join(tmp, "man", "man8")
        os.makedirs(bindir)
        os.makedirs(man8)
        for b in binaries:
            os.symlink(b, os.path.join(bindir, os.path.basename(b)))
        for p in pages:
            shutil.copy(p, man8)
        units = []
        for t in templates:
            unit = os.path.join(tmp, os.path.basename(t)[:-len(".in")])
            with open(t) as f:
                text = f.read()
            left = re.findall(r"@[a-z_]+@", text.replace("@bindir@", ""))
            if left:
                print("FAIL: %s: substitutions this test does not know: %s" % (t, left))
                sys.exit(1)
            with open(unit, "w") as f:
                f.write(text.replace("@bindir@", bindir))
            units.append(unit)
        env = dict(os.environ, MANPATH=os.path.join(tmp, "man"))
        r = subprocess.run(["systemd-analyze", "verify", "--man=yes", *units],
                           capture_output=True, text=True, env=env, timeout=60)
        out = (r.stdout + r.stderr).strip()
        print(out or "verify: no findings for %s" % ", ".join(map(os.path.basename, units)))
        # verify reports some findings without failing: any output fails.
        sys.exit(1 if r.returncode != 0 or out else 0)


if __name__ == "__main__":
    main()
