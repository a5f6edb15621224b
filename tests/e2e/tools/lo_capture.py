#!/usr/bin/env python3
"""Captures the TCP payload of one port on the loopback interface (AF_PACKET,
no tcpdump needed) into a file, until SIGTERM; used by the tls scenario to
show that no known plaintext crosses the wire. Each segment is seen twice on
lo (out and in); the file is the payloads one after another.

Usage: lo_capture.py PORT OUTFILE   (prints "bytes=N segments=M" at the end)
"""
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
stop = False


def on_term(signum, frame):
    global stop
    stop = True


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGTERM, on_term)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind(("lo", 0))
    s.settimeout(0.2)
    total = segments = 0
    with open(path, "wb") as out:
        print("capturing", flush=True)
        while not stop:
            try:
                frame = s.recv(65536 + 64)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6 or len(ip) < ihl + 20:
                continue
            iplen = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:iplen]
            sport, dport = struct.unpack(">HH", tcp[:4])
            if port not in (sport, dport):
                continue
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                out.write(payload)
                total += len(payload)
                segments += 1
    print("bytes=%d segments=%d" % (total, segments), flush=True)


if __name__ == "__main__":
    main()
