#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Turn fio --output-format=json results into one line: "IOPS BYTES_PER_S LAT_US".
# Usage: fio-summary.py FILE read|write
import json
import sys

path, direction = sys.argv[1], sys.argv[2]
text = open(path).read()
# fio may print notes before the JSON object
d = json.loads(text[text.index("{"):])
iops = bw = lat = 0.0
for j in d["jobs"]:
    s = j[direction]
    iops += s["iops"]
    bw += s["bw_bytes"]
    lat = max(lat, s.get("clat_ns", {}).get("mean", 0.0) / 1000.0)
if d["jobs"][0].get("error"):
    sys.exit("fio job error %d" % d["jobs"][0]["error"])
print("%.0f %.0f %.1f" % (iops, bw, lat))
