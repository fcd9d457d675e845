#!/usr/bin/python3
"""Checks that every frame of a pcap carries the generator's marker ("XVPG") at a byte offset.

usage: pcap_marker.py FILE OFFSET   (exit 0: all frames marked; 1: some not, or no frames)
Used by scripts/bench.sh's correctness check; plain pcap (tcpdump -w), any link type with
Ethernet framing.
"""
import struct
import sys

MAGIC = b"XVPG"


def frames(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            return
        magic = struct.unpack("<I", hdr[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, incl, _ = struct.unpack(endian + "IIII", rec)
            yield f.read(incl)


def main():
    path, off = sys.argv[1], int(sys.argv[2])
    n = bad = 0
    for fr in frames(path):
        n += 1
        if fr[off:off + 4] != MAGIC:
            bad += 1
            if bad == 1:
                print(f"pcap_marker: frame {n} has {fr[off:off + 4].hex()} at {off}, "
                      f"not {MAGIC.hex()}: {fr[:off + 16].hex()}")
    if n == 0:
        print("pcap_marker: no frames")
        return 1
    if bad:
        print(f"pcap_marker: {bad} of {n} frames without the marker at {off}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
