#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Print the benchmark table from bench/run.sh's results file (lines
# "TARGET WORKLOAD IOPS BYTES_PER_S LAT_US") and the extra figures (lines
# "extra KEY VALUE").  Output is Markdown (readable on a terminal too).
import sys

rows = {}
extra = {}
targets = []
for line in open(sys.argv[1]):
    f = line.split()
    if not f:
        continue
    if f[0] == "extra":
        extra[f[1]] = " ".join(f[2:])
        continue
    t, w, iops, bw, lat = f[0], f[1], float(f[2]), float(f[3]), float(f[4])
    if t not in targets:
        targets.append(t)
    rows[(t, w)] = (iops, bw, lat)

workloads = [("randwrite-4k", "4 KiB random write", "iops"),
             ("randread-4k", "4 KiB random read", "iops"),
             ("write-1m", "1 MiB sequential write", "bw"),
             ("read-1m", "1 MiB sequential read", "bw")]


def fmt(v, kind):
    if v is None:
        return "-"
    return "%.0f" % v[0] if kind == "iops" else "%.0f" % (v[1] / 1e6)


def ratio(a, b, kind):
    if a is None or b is None:
        return "-"
    x, y = (a[0], b[0]) if kind == "iops" else (a[1], b[1])
    return "%.2fx" % (x / y) if y else "-"


peers = [p for p in ("qsd-raw", "qsd-qcow2", "nbdkit") if p in targets]
mine = [t for t in targets if t.startswith("berth")]
hdr = ["workload (unit)"] + targets
for m in mine:
    for p in peers:
        hdr.append("%s/%s" % (m, p))
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for w, desc, kind in workloads:
    if not any((t, w) in rows for t in targets):
        continue
    unit = "IOPS" if kind == "iops" else "MB/s"
    cells = ["%s (%s)" % (desc, unit)]
    cells += [fmt(rows.get((t, w)), kind) for t in targets]
    for m in mine:
        for p in peers:
            cells.append(ratio(rows.get((m, w)), rows.get((p, w)), kind))
    print("| " + " | ".join(cells) + " |")
print()
print("Mean completion latency (µs):")
print()
print("| workload | " + " | ".join(targets) + " |")
print("|" + "---|" * (len(targets) + 1))
for w, desc, kind in workloads:
    if any((t, w) in rows for t in targets):
        print("| %s | %s |" % (desc, " | ".join(
            "%.0f" % rows[(t, w)][2] if (t, w) in rows else "-" for t in targets)))
CPU = "server_CPU_us_per_request_"
cpu = {k[len(CPU):]: v for k, v in extra.items() if k.startswith(CPU)}
if cpu:
    print()
    print("Server CPU per request (µs, user + system; berthd including the txg "
          "sync after each write workload):")
    print()
    print("| workload | " + " | ".join(targets) + " |")
    print("|" + "---|" * (len(targets) + 1))
    for w, desc, kind in workloads:
        if any((t, w) in rows for t in targets):
            print("| %s | %s |" % (desc, " | ".join(
                cpu.get("%s_%s" % (t, w), "-") for t in targets)))
extra = {k: v for k, v in extra.items() if not k.startswith(CPU)}
if extra:
    print()
    for k, v in extra.items():
        print("- %s: %s" % (k.replace("_", " "), v))
