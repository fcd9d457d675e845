#!/usr/bin/python3
"""Print the Micro-benchmarks tables of docs/PERFORMANCE.md from criterion's results.

    /usr/bin/python3 benches/micro/report.py [CRITERION_DIR ...]   (default: target/criterion)

One pipeline iteration is a batch of 64 frames; the tables are per packet. With several
directories (copies of target/criterion after repeated runs), each case reports the lowest of
the runs' medians: on a shared machine, interference only ever adds time.
"""
import json
import os
import sys

roots = sys.argv[1:] or [os.path.join("target", "criterion")]
BATCH = 64  # frames per pipeline iteration (xvpc_benches::BATCH)
TARGETS = {"1000": 30.0, "1000000": 120.0}


def median_ns(*path):
    found = []
    for root in roots:
        try:
            with open(os.path.join(root, *path, "new", "estimates.json")) as f:
                found.append(json.load(f)["median"]["point_estimate"])
        except FileNotFoundError:
            pass
    if not found:
        raise FileNotFoundError(os.path.join(*path))
    return min(found)


print(f"{len(roots)} run(s); lowest median per case.")
print()
print("| case | frame | ns/packet | harness | pipeline ns/packet | target | met |")
print("|---|---|---|---|---|---|---|")
for name in ["egress_v4u_1000", "ingress_v4u_1000", "egress_v4u_1000000", "ingress_v4u_1000000",
             "egress_v6u_1000", "ingress_v6u_1000", "egress_v6u_zero_csum_1000", "ingress_v6u_zero_csum_1000"]:
    for size in ["64", "1400"]:
        try:
            total = median_ns("packet", name, size) / BATCH
            harness = median_ns("packet", "loop", size) / BATCH
        except FileNotFoundError:
            continue
        net = total - harness
        target = TARGETS[name.rsplit("_", 1)[1]]
        ok = "yes" if net <= target else f"no (+{net - target:.1f} ns)"
        print(f"| {name} | {size} B | {total:.1f} | {harness:.1f} | {net:.1f} | <= {target:.0f} | {ok} |")
print()
print("| table operation | time for 1,000,000 | per second |")
print("|---|---|---|")
for name in ["upsert_1M", "upsert_1M_presized", "compile_and_upsert_1M"]:
    try:
        t = median_ns("table", name)
    except FileNotFoundError:
        continue
    print(f"| {name} | {t / 1e6:.1f} ms | {1e6 / (t / 1e9) / 1e6:.2f} M/s |")
