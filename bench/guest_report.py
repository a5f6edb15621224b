#!/usr/bin/env python3
"""Turns the guest benchmark's raw figures (bench-raw.txt, lines
"ROUND MODE METRIC VALUE", written by tests/e2e/scenarios/bench.sh) into a
Markdown table: the median over rounds per mode, the ratios ours/kernel and
ours/direct of those, the range of the per-round ours/kernel ratios, and
every round's own figure. Figures only, no verdict.

Usage: guest_report.py RAW_FILE [--meta TEXT]
"""
import argparse
import statistics
import sys
from collections import defaultdict

MODES = [("O", "ours"), ("K", "kernel"), ("D", "direct")]
# Mass storage only: ours with TLS on both ends (kernel TLS in the guest).
TLS_MODE = ("T", "ours+TLS")

# metric, label, better ("hi", "lo" or "" when neither)
ROWS = [
    ("read_1048576_mbps", "seq read, 1 MiB blocks, O_DIRECT (MB/s)", "hi"),
    ("write_1048576_mbps", "seq write, 1 MiB blocks, O_DIRECT (MB/s)", "hi"),
    ("read_65536_mbps", "seq read, 64 KiB blocks, O_DIRECT (MB/s)", "hi"),
    ("write_65536_mbps", "seq write, 64 KiB blocks, O_DIRECT (MB/s)", "hi"),
    ("randread_4k_iops", "random read, 4 KiB, one at a time (IOPS)", "hi"),
    ("usbtest_1_s", "usbtest 1 bulk OUT (s)", "lo"),
    ("usbtest_2_s", "usbtest 2 bulk IN (s)", "lo"),
    ("usbtest_27_s", "usbtest 27 bulk OUT throughput (s)", "lo"),
    ("usbtest_28_s", "usbtest 28 bulk IN throughput (s)", "lo"),
    ("usbtest_9_s", "usbtest 9 ch9 control (s)", "lo"),
    ("usbtest_10_s", "usbtest 10 queued control (s)", "lo"),
    ("usbtest_14_s", "usbtest 14 control OUT/IN (s)", "lo"),
    ("attach_read_s", "usbip attach -> first read of /dev/sdX (s)", "lo"),
    ("attach_cmd_s", "  of which: usbip attach command returned (s)", "lo"),
    ("attach_disk_s", "  of which: disk with capacity in /sys/block (s)", "lo"),
    ("stage_write_data_fwd_us", "URB stage, writes: 120 KiB URB, vhci -> device (µs, median)", "lo"),
    ("stage_write_data_dev_us", "URB stage, writes: 120 KiB URB, at the device (µs, median)", ""),
    ("stage_write_data_ret_us", "URB stage, writes: 120 KiB URB, device -> vhci (µs, median)", "lo"),
    ("stage_write_small_fwd_us", "URB stage, writes: CBW/CSW, vhci -> device (µs, median)", "lo"),
    ("stage_write_small_ret_us", "URB stage, writes: CBW/CSW, device -> vhci (µs, median)", "lo"),
    ("stage_read_data_fwd_us", "URB stage, reads: 120 KiB URB, vhci -> device (µs, median)", "lo"),
    ("stage_read_data_dev_us", "URB stage, reads: 120 KiB URB, at the device (µs, median)", ""),
    ("stage_read_data_ret_us", "URB stage, reads: 120 KiB URB, device -> vhci (µs, median)", "lo"),
    ("stage_read_small_fwd_us", "URB stage, reads: CBW/CSW, vhci -> device (µs, median)", "lo"),
    ("stage_read_small_ret_us", "URB stage, reads: CBW/CSW, device -> vhci (µs, median)", "lo"),
    ("server_cpu_s_per_gib", "server CPU per GiB moved (s; K: stub_rx+stub_tx)", "lo"),
    ("vhci_kthreads_cpu_s_per_gib", "client vhci_rx+vhci_tx CPU per GiB (s)", "lo"),
    ("server_vmhwm_kb", "server VmHWM (KiB; K: usbipd only)", "lo"),
    ("server_vmrss_kb", "server VmRSS (KiB; K: usbipd only)", "lo"),
    ("client_vmhwm_kb", "client daemon VmHWM (KiB)", "lo"),
    ("client_vmrss_kb", "client daemon VmRSS (KiB)", "lo"),
    ("plug_port_in_use_s", "plug -> vhci port in use, our client daemon (s)", "lo"),
    ("plug_enum_start_s", "  UDC write -> dummy_hcd starts enumerating (s)", ""),
    ("plug_enum_done_s", "  -> device's own enumeration done (SerialNumber line) (s)", ""),
    ("plug_server_sees_s", "  -> server sees the device (its log line) (s)", ""),
    ("plug_client_notified_s", "  -> client got the notify line (its log line) (s)", ""),
    ("plug_server_imported_s", "  -> server served the import (its log line) (s)", ""),
    ("plug_vhci_attach_written_s", "  -> vhci attach written (vhci 'Device attached') (s)", ""),
    ("plug_client_attached_s", "  -> client logs attached (s)", ""),
    ("plug_copy_enumerated_s", "  -> copy enumerated on vhci (SerialNumber line) (s)", ""),
    ("client_timing_connect_ms", "client timing: connect (ms)", ""),
    ("client_timing_import_ms", "client timing: import (ms)", ""),
    ("client_timing_vhci_ms", "client timing: vhci (ms)", ""),
    ("client_timing_total_ms", "client timing: total (ms)", ""),
    ("unplug_port_free_s", "unplug (idle) -> vhci port free (s)", "lo"),
    ("unplug_server_sees_s", "  unplug -> our server logs it (s)", ""),
]


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


def round_ratios(per_mode, a, b):
    """min-max of a/b over the rounds that have both."""
    ra, rb = per_mode.get(a, {}), per_mode.get(b, {})
    vals = [ra[r] / rb[r] for r in ra if r in rb and rb[r]]
    if len(vals) < 2:
        return "–"
    return f"{min(vals):.2f}–{max(vals):.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    data = defaultdict(lambda: defaultdict(dict))  # metric -> mode -> round -> value
    comments = []
    rounds = set()
    with open(args.raw, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                comments.append(line[1:].strip())
                continue
            parts = line.split()
            if len(parts) != 4:
                continue
            r, mode, metric, value = parts
            try:
                data[metric][mode][int(r)] = float(value)
                rounds.add(int(r))
            except ValueError:
                continue

    print("# Guest benchmark: usbip-notify-server (ours) vs usbip-host (kernel) vs direct")
    print()
    if args.meta:
        print(f"- {args.meta}")
    for c in comments:
        print(f"- {c}")
    print("- Figures are medians over the rounds. Ratios are ours/kernel and ours/direct of")
    print("  those figures (and the range of ours/kernel taken round by round): for MB/s and IOPS (↑) above 1 means ours is faster; for times,")
    print("  CPU and memory (↓) below 1 means ours is faster or smaller.")
    print("  TCG makes absolute speeds meaningless: read the ratios.")
    print()
    print("| figure | | ours | kernel | direct | ours/kernel | per round | ours/direct |")
    print("|---|---|---|---|---|---|---|---|")
    known = set()
    for metric, label, better in ROWS:
        known.add(metric)
        if metric not in data:
            continue
        means = {}
        for m, _ in MODES:
            vals = list(data[metric].get(m, {}).values())
            means[m] = statistics.median(vals) if vals else None
        arrow = {"hi": "↑", "lo": "↓"}.get(better, "")
        print(f"| {label} | {arrow} | {fmt(means['O'])} | {fmt(means['K'])} | {fmt(means['D'])} "
              f"| {ratio(means['O'], means['K'])} | {round_ratios(data[metric], 'O', 'K')} "
              f"| {ratio(means['O'], means['D'])} |")
    extra = sorted(set(data) - known)
    for metric in extra:
        vals = {m: list(data[metric].get(m, {}).values()) for m, _ in MODES}
        means = {m: (statistics.median(v) if v else None) for m, v in vals.items()}
        print(f"| {metric} | | {fmt(means['O'])} | {fmt(means['K'])} | {fmt(means['D'])} "
              f"| {ratio(means['O'], means['K'])} | {round_ratios(data[metric], 'O', 'K')} "
              f"| {ratio(means['O'], means['D'])} |")

    tls_metrics = [m for m, _, _ in ROWS if "T" in data.get(m, {})] + \
        [m for m in extra if "T" in data[m]]
    if tls_metrics:
        print()
        print("## TLS (ours with TLS 1.3 on both ends vs ours in plaintext, same rounds)")
        print()
        print("| figure | | ours | ours+TLS | TLS/plaintext | per round |")
        print("|---|---|---|---|---|---|")
        labels = {m: (label, better) for m, label, better in ROWS}
        for metric in tls_metrics:
            label, better = labels.get(metric, (metric, ""))
            med = {m: (statistics.median(list(data[metric][m].values()))
                       if data[metric].get(m) else None) for m in ("O", "T")}
            arrow = {"hi": "↑", "lo": "↓"}.get(better, "")
            print(f"| {label} | {arrow} | {fmt(med['O'])} | {fmt(med['T'])} "
                  f"| {ratio(med['T'], med['O'])} | {round_ratios(data[metric], 'T', 'O')} |")

    print()
    print("## Per round")
    print()
    rs = sorted(rounds)
    modes = MODES + ([TLS_MODE] if tls_metrics else [])
    head = " | ".join(f"{name} r{r}" for _, name in modes for r in rs)
    print(f"| figure | {head} |")
    print("|---|" + "---|" * (len(modes) * len(rs)))
    for metric in [m for m, _, _ in ROWS if m in data] + extra:
        cells = " | ".join(fmt(data[metric].get(m, {}).get(r)) for m, _ in modes for r in rs)
        print(f"| {metric} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
