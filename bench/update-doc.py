#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Put a bench/run.sh result into docs/PERFORMANCE.md, between the markers
# "<!-- bench:begin -->" and "<!-- bench:end -->".
# Usage: update-doc.py DOC COMMAND DATE RESULT.md
import sys

doc, cmd, date, res = sys.argv[1:5]
text = open(doc).read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
i, j = text.index(begin) + len(begin), text.index(end)
body = open(res).read().split("\n", 2)[2]   # drop the "command:" line and blank
new = "\n\nProduced on %s by:\n\n```sh\n%s\n```\n\n%s\n" % (date, cmd, body.strip())
open(doc, "w").write(text[:i] + new + text[j:])
