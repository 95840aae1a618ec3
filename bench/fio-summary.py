#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Turn fio --output-format=json results into one line: "IOPS BYTES_PER_S LAT_US".
# Usage: fio-summary.py FILE read|write [WALL_SECONDS]
# With WALL_SECONDS, the byte rate is all bytes moved / WALL_SECONDS (the
# wall time of the whole job, e.g. including an --end_fsync flush) and IOPS
# likewise; the latency stays fio's.
import json
import sys

path, direction = sys.argv[1], sys.argv[2]
text = open(path).read()
# fio may print notes before the JSON object
d = json.loads(text[text.index("{"):])
wall = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
iops = bw = lat = 0.0
for j in d["jobs"]:
    s = j[direction]
    if wall > 0:
        iops += s["total_ios"] / wall
        bw += s["io_bytes"] / wall
    else:
        iops += s["iops"]
        bw += s["bw_bytes"]
    lat = max(lat, s.get("clat_ns", {}).get("mean", 0.0) / 1000.0)
if d["jobs"][0].get("error"):
    sys.exit("fio job error %d" % d["jobs"][0]["error"])
print("%.0f %.0f %.1f" % (iops, bw, lat))
