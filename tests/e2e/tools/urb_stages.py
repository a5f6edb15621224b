#!/usr/bin/env python3
"""Where one URB's time goes between vhci_hcd and the device, from an
ftrace of three kprobes (bench.sh's "stages" phase sets them):

  vq  vhci_urb_enqueue       the client's driver hands vhci an URB
  dq  dummy_urb_enqueue      the server under test submits it to the device
  gb  usb_hcd_giveback_urb   an URB ends, on either controller

With one URB at a time (usb-storage), each URB is a chain vq -> dq ->
gb(dummy) -> gb(vhci), and the next vq follows. Its stages:

  fwd  vq -> dq              vhci_tx, TCP, the server reading and submitting
  dev  dq -> gb(dummy)       the device (dummy_hcd and the gadget)
  ret  gb(dummy) -> gb(vhci) the server seeing the completion and replying,
                             TCP, vhci_rx
  cli  gb(vhci) -> next vq   the client's driver

fwd and ret are the server's (plus the network both servers share); dev
and cli are the same hardware and driver for every server. URBs are told
apart by their transfer_buffer_length (fetched by the vq probe): "data"
(more than 64 bytes: the disk's blocks) and "small" (a CBW or CSW).

Prints "CLASS_STAGE_us MEDIAN" lines (and "urbs N", "chains N"); exits 1
when the trace holds no complete chain.

Usage: urb_stages.py TRACE_FILE
"""
import re
import statistics
import sys

EVENT = re.compile(r"\s(\d+\.\d+): (vq|dq|gb): \([^)]*\) hcd=(0x[0-9a-f]+) urb=(0x[0-9a-f]+)"
                   r"(?: len=(\d+))?")
DATA_MIN = 65  # bytes: above any CBW (31) or CSW (13)


def parse(lines):
    events = []
    for line in lines:
        m = EVENT.search(line)
        if m:
            length = int(m.group(5)) if m.group(5) else None
            events.append((float(m.group(1)), m.group(2), m.group(3), m.group(4), length))
    return events


def chains(events):
    """Yields (length, fwd, dev, ret, cli or None) per complete chain."""
    vhci_hcds = {h for _, k, h, _, _ in events if k == "vq"}
    dummy_hcds = {h for _, k, h, _, _ in events if k == "dq"}
    cur = None  # [length, t_vq, vurb, t_dq, durb, t_dgb]
    done = None  # (length, fwd, dev, ret, t_vgb) waiting for the next vq
    for t, kind, hcd, urb, length in events:
        if kind == "vq":
            if done:
                yield done[:4] + (t - done[4],)
                done = None
            cur = [length, t, urb, None, None, None]
        elif kind == "dq" and cur and cur[3] is None:
            cur[3], cur[4] = t, urb
        elif kind == "gb" and cur and hcd in dummy_hcds and urb == cur[4]:
            cur[5] = t
        elif kind == "gb" and cur and hcd in vhci_hcds and urb == cur[2]:
            if cur[3] is not None and cur[5] is not None:
                done = (cur[0], cur[3] - cur[1], cur[5] - cur[3], t - cur[5], t)
            cur = None
    if done:
        yield done[:4] + (None,)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        events = parse(f)
    found = list(chains(events))
    print(f"urbs {sum(1 for e in events if e[1] == 'vq')}")
    print(f"chains {len(found)}")
    if not found:
        return 1
    for cls in ("data", "small"):
        mine = [c for c in found
                if c[0] is not None and (c[0] >= DATA_MIN) == (cls == "data")]
        for i, stage in enumerate(("fwd", "dev", "ret", "cli"), start=1):
            vals = [c[i] for c in mine if c[i] is not None]
            if vals:
                print(f"{cls}_{stage}_us {statistics.median(vals) * 1e6:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
