#!/usr/bin/python3
"""Print the Micro-benchmarks tables of docs/PERFORMANCE.md from criterion's results.

    /usr/bin/python3 benches/micro/report.py [$CARGO_TARGET_DIR]   (default: target)
"""
import json
import os
import sys

root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "target", "criterion")


def median_ns(*path):
    with open(os.path.join(root, *path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


TARGETS = {"1000": 30.0, "1000000": 120.0}
print("| case | frame | ns/packet (incl. copy) | copy baseline | pipeline ns/packet | pipeline / copy | target | met |")
print("|---|---|---|---|---|---|---|---|")
for name in ["egress_v4u_1000", "ingress_v4u_1000", "egress_v4u_1000000", "ingress_v4u_1000000",
             "egress_v6u_1000", "ingress_v6u_1000"]:
    for size in ["64", "1400"]:
        try:
            total = median_ns("packet", name, size)
            copy = median_ns("packet", "copy", size)
        except FileNotFoundError:
            continue
        net = total - copy
        target = TARGETS[name.rsplit("_", 1)[1]]
        ok = "yes" if net <= target else f"no (+{net - target:.1f} ns)"
        print(f"| {name} | {size} B | {total:.1f} | {copy:.1f} | {net:.1f} | {net / copy:.1f}x | "
              f"<= {target:.0f} | {ok} |")
print()
print("| table operation | time for 1,000,000 | per second |")
print("|---|---|---|")
for name in ["upsert_1M", "compile_and_upsert_1M"]:
    try:
        t = median_ns("table", name)
    except FileNotFoundError:
        continue
    print(f"| {name} | {t / 1e6:.1f} ms | {1e6 / (t / 1e9) / 1e6:.2f} M/s |")
