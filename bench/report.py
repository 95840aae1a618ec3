#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Print the benchmark table from bench/run.sh's results file (lines
# "TARGET WORKLOAD IOPS BYTES_PER_S LAT_US") and the extra figures (lines
# "extra KEY VALUE").  Output is Markdown (readable on a terminal too).
# With several rounds (run.sh --repeat), a line per round and figure: the
# tables show the median of each figure over the rounds (ratios are of the
# medians), and the number of rounds.
import statistics
import sys

samples = {}
extra = {}
xsamples = {}
targets = []
for line in open(sys.argv[1]):
    f = line.split()
    if not f:
        continue
    if f[0] == "extra":
        v = " ".join(f[2:])
        try:
            xsamples.setdefault(f[1], []).append(float(v))
        except ValueError:
            pass
        extra[f[1]] = v
        continue
    t, w, iops, bw, lat = f[0], f[1], float(f[2]), float(f[3]), float(f[4])
    if t not in targets:
        targets.append(t)
    samples.setdefault((t, w), []).append((iops, bw, lat))
rows = {k: tuple(statistics.median(x[i] for x in v) for i in range(3))
        for k, v in samples.items()}
rounds = max((len(v) for v in samples.values()), default=0)
for k, v in xsamples.items():
    if len(v) > 1:
        extra[k] = "%.2f" % statistics.median(v)
if rounds > 1:
    print("Medians of %d rounds (each round runs every target back to back)." % rounds)
    print()

workloads = [("randwrite-4k", "4 KiB random write", "iops"),
             ("randread-4k", "4 KiB random read", "iops"),
             ("write-1m", "1 MiB sequential write", "bw"),
             ("write-1m-durable", "1 MiB sequential write, durable (end_fsync, wall time)", "bw"),
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
GIB = "server_CPU_s_per_GiB_"
gib = {k[len(GIB):]: v for k, v in extra.items() if k.startswith(GIB)}
if gib:
    print()
    print("Server CPU time per GiB moved (s, user + system from /proc/PID/stat; "
          "the steadiest figure on a loaded machine):")
    print()
    hdr = ["workload"] + targets + ["%s/%s" % (m, p) for m in mine for p in peers]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for w, desc, kind in workloads:
        if any((t, w) in rows for t in targets):
            cells = [desc] + [gib.get("%s_%s" % (t, w), "-") for t in targets]
            for m in mine:
                for p in peers:
                    a, b = gib.get("%s_%s" % (m, w)), gib.get("%s_%s" % (p, w))
                    try:
                        cells.append("%.2fx" % (float(a) / float(b)))
                    except (TypeError, ValueError, ZeroDivisionError):
                        cells.append("-")
            print("| " + " | ".join(cells) + " |")
extra = {k: v for k, v in extra.items() if not k.startswith(CPU) and not k.startswith(GIB)}
if extra:
    print()
    for k, v in extra.items():
        print("- %s: %s" % (k.replace("_", " "), v))
