#!/usr/bin/env python3
"""tests/e2e/tools/urb_stages.py on hand-made traces: the stages of each
URB chain, data and small URBs apart, and a trace without a chain."""
import os
import subprocess
import sys
import tempfile

TOOL = sys.argv[1]
VHCI, DUMMY = "0xffff0001", "0xffff0002"


def ev(t, kind, hcd, urb, length=None):
    extra = f" len={length}" if length is not None else ""
    return (f"  usb-storage-99  [001] d..1.  {t:.6f}: {kind}: "
            f"({kind}+0x0/0x10) hcd={hcd} urb={urb}{extra}\n")


def chain(t, vurb, durb, length, fwd, dev, ret):
    """One URB's four events from time t (seconds); returns them and its end."""
    lines = [ev(t, "vq", VHCI, vurb, length),
             ev(t + fwd, "dq", DUMMY, durb),
             # a root hub's own URB ends meanwhile: not part of the chain
             ev(t + fwd + dev / 2, "gb", VHCI, "0xdead"),
             ev(t + fwd + dev, "gb", DUMMY, durb),
             ev(t + fwd + dev + ret, "gb", VHCI, vurb)]
    return lines, t + fwd + dev + ret


def run(lines):
    with tempfile.NamedTemporaryFile("w", suffix=".trace", delete=False) as f:
        f.write("# tracer: nop\n")
        f.writelines(lines)
    try:
        p = subprocess.run([sys.executable, TOOL, f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    return p.returncode, dict(l.split() for l in p.stdout.splitlines())


def main():
    lines, t = [], 100.0
    # CBW, data, CSW, three times; the client takes 50 us before each next URB.
    for i in range(3):
        for length, fwd, dev, ret in ((31, 200e-6, 300e-6, 400e-6),
                                      (122880, (600 + i * 100) * 1e-6, 1500e-6, 250e-6),
                                      (13, 220e-6, 310e-6, 410e-6)):
            more, t = chain(t, f"0xa{i}{length}", f"0xb{i}{length}", length, fwd, dev, ret)
            lines += more
            t += 50e-6
    rc, out = run(lines)
    want = {"urbs": "9", "chains": "9", "data_fwd_us": "700", "data_dev_us": "1500",
            "data_ret_us": "250", "data_cli_us": "50", "small_fwd_us": "210",
            "small_dev_us": "305", "small_ret_us": "405", "small_cli_us": "50"}
    ok = rc == 0 and all(out.get(k) == v for k, v in want.items())
    if not ok:
        print(f"stages: rc {rc}, got {out}, want {want}")
        return 1

    # An URB the server never submitted (no dq): no chain, exit 1.
    rc, out = run([ev(1.0, "vq", VHCI, "0x1", 31), ev(1.5, "gb", VHCI, "0x1")])
    if rc != 1 or out.get("chains") != "0":
        print(f"no chain: rc {rc}, got {out}")
        return 1
    print("urb_stages: 2 cases passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
