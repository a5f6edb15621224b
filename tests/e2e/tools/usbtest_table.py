#!/usr/bin/env python3
"""Merges two usbtest_run result files (kernel server, ours) into a Markdown
table. Exit 1 when ours failed or timed out on any case, or a file is
missing. Cases absent from the kernel file were skipped there on purpose
(they crash the kernel's server)."""
import re
import sys

NAMES = {
    0: "nop", 1: "bulk OUT", 2: "bulk IN", 3: "bulk OUT, varied sizes",
    4: "bulk IN, varied sizes", 5: "bulk OUT sglist", 6: "bulk IN sglist",
    7: "bulk OUT sglist, varied", 8: "bulk IN sglist, varied",
    9: "ch9 control subset", 10: "queued control calls", 11: "unlink reads",
    12: "unlink writes", 13: "halt set/clear", 14: "control OUT/IN loopback",
    15: "iso OUT", 16: "iso IN", 17: "bulk OUT, odd buffer",
    18: "bulk IN, odd buffer", 19: "bulk OUT, odd buffer, no DMA map",
    20: "bulk IN, odd buffer, no DMA map", 21: "control OUT/IN, odd buffer",
    22: "iso OUT, odd buffer", 23: "iso IN, odd buffer",
    24: "unlink from queue", 25: "interrupt OUT", 26: "interrupt IN",
    27: "bulk OUT throughput", 28: "bulk IN throughput", 29: "toggle sync",
}
LINE = re.compile(r"case (\d+): (\S+)(.*)")


def load(path):
    cases = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = LINE.match(line.strip())
                if m:
                    cases[int(m.group(1))] = (m.group(2), m.group(3).strip())
    except OSError as e:
        print(f"cannot read {path}: {e}", file=sys.stderr)
        return None
    return cases


def cell(result, skipped_note):
    if result is None:
        return skipped_note
    status, rest = result
    if status == "n/a":
        return "n/a (device)"
    return f"{status} {rest}".strip()


kernel, ours = load(sys.argv[1]), load(sys.argv[2])
if kernel is None or ours is None:
    sys.exit(1)
print("| case | what | kernel usbip-host | usbip-notify-server |")
print("|---|---|---|---|")
bad = []
for n in range(30):
    k, o = kernel.get(n), ours.get(n)
    print(f"| {n} | {NAMES[n]} | {cell(k, 'not run: crashes stub_rx')} | {cell(o, 'not run')} |")
    if o is None or o[0] not in ("pass", "n/a"):
        bad.append(n)
if bad:
    print(f"\nour server did not pass cases: {', '.join(map(str, bad))}")
sys.exit(1 if bad else 0)
