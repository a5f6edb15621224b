#!/usr/bin/env python3
"""Test pattern for the iso e2e scenario (48 kHz, S16_LE, stereo).

  iso_pattern.py gen FRAMES FILE   raw pattern for aplay (in the guest)
  iso_pattern.py check RUN_DIR     host check after QEMU exited: looks for the
                                   pattern in RUN_DIR/audio-out.wav (QEMU's wav
                                   audio backend); FRAMES from RUN_DIR/iso-expect

Frame i carries its own number: left = i & 0xffff, right = (i >> 16) << 8 |
tag(i), tag a byte derived from i. Silence (0, 0) never matches (tag(0) != 0),
and a frame's number says where it belongs, so drops, repeats, reordering and
changed samples are all visible. Prints PASS/FAIL/INFO lines for checks.log.
"""
import os
import struct
import sys

RATE, CHANNELS, BITS = 48000, 2, 16
MIN_IN_ORDER = 0.90  # see tests/e2e/scenarios/iso.sh for why


def tag(i):
    return (i * 37 + 0xA5) & 0xFF


def frame(i):
    left = i & 0xFFFF
    right = ((i >> 16) & 0xFF) << 8 | tag(i)
    return struct.pack("<HH", left, right)


def gen(frames, path):
    with open(path, "wb") as f:
        f.write(b"".join(frame(i) for i in range(frames)))


def index_of(left, right):
    """The frame number a frame carries, or None if it is not a pattern frame."""
    i = (right >> 8) << 16 | left
    return i if (right & 0xFF) == tag(i) else None


def read_wav(path):
    """(format fields, PCM bytes, note). Reads the data chunk up to the end of
    the file: the sizes in the header are only right once QEMU closed it."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 12 or raw[0:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", raw, body)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("data chunk before fmt chunk")
            data = raw[body:]
            note = "header sizes final" if size == len(data) else \
                f"data size in header {size}, {len(data)} bytes in file"
            return fmt, data, note
        pos = body + size + (size & 1)
    raise ValueError("no data chunk")


def analyze(data, frames):
    """Counts over the output frames (see the PASS/FAIL lines in check())."""
    n = len(data) // 4
    st = dict(output=n, silent=0, pattern=0, foreign=0, in_order=0,
              backwards=0, repeats=0, first=None, last=None)
    seen = bytearray(frames)
    prev = None  # number of the previous output frame if it was a pattern frame
    highest = -1
    for left, right in struct.iter_unpack("<HH", data[:n * 4]):
        i = index_of(left, right)
        if i is None or i >= frames:
            st["silent" if left == 0 and right == 0 else "foreign"] += 1
            prev = None
            continue
        st["pattern"] += 1
        repeat = seen[i]
        st["repeats"] += repeat
        seen[i] = 1
        if i < highest:
            st["backwards"] += 1
        highest = max(highest, i)
        if not repeat and ((prev is not None and i == prev + 1) or (i == 0 and prev is None)):
            st["in_order"] += 1
        prev = i
        if st["first"] is None:
            st["first"] = i
        st["last"] = i
    st["distinct"] = sum(seen)
    return st


def check(run_dir):
    expect = os.path.join(run_dir, "iso-expect")
    wav = os.path.join(run_dir, "audio-out.wav")
    if not os.path.exists(expect):
        # The guest never got to play: its own checks already failed or skipped.
        print("SKIP: host wav check: the guest did not play the pattern")
        return 0
    with open(expect) as f:
        frames = int(f.read().split("=")[1])
    try:
        fmt, data, note = read_wav(wav)
    except (OSError, ValueError, struct.error) as e:
        print(f"FAIL: QEMU's wav file is readable ({e})")
        return 1
    tag_, ch, rate, _, _, bits = fmt
    ok = tag_ == 1 and ch == CHANNELS and rate == RATE and bits == BITS
    print(f"{'PASS' if ok else 'FAIL'}: wav format is PCM {CHANNELS} ch {RATE} Hz "
          f"{BITS} bit (got tag {tag_}, {ch} ch, {rate} Hz, {bits} bit; {note})")
    if not ok:
        return 1
    st = analyze(data, frames)
    print("INFO: wav: {output} frames out: {pattern} pattern ({distinct} distinct of "
          "{frames}, first {first}, last {last}), {in_order} in order, {silent} silent, "
          "{foreign} foreign, {repeats} repeated, {backwards} backwards".format(
              frames=frames, **st))
    rc = 0
    need = int(frames * MIN_IN_ORDER)
    verdicts = [
        (st["in_order"] >= need,
         f"pattern arrives in QEMU's wav file in order: {st['in_order']} of {frames} "
         f"frames (>= {MIN_IN_ORDER:.0%})"),
        (st["foreign"] == 0,
         f"no changed samples: {st['foreign']} frames neither pattern nor silence"),
        (st["repeats"] == 0 and st["backwards"] == 0,
         f"no repeated or reordered frames ({st['repeats']} repeated, "
         f"{st['backwards']} backwards)"),
    ]
    for good, text in verdicts:
        print(f"{'PASS' if good else 'FAIL'}: {text}")
        rc |= not good
    return rc


def main(argv):
    if len(argv) == 4 and argv[1] == "gen":
        gen(int(argv[2]), argv[3])
        return 0
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
