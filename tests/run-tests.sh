#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The test runner behind `make check`.
#
#   tests/run-tests.sh [-j N] [--fuzz-seconds S] [--filter REGEX] BUILDDIR...
#
# For every build dir: runs its unit tests (BUILDDIR/tests/unit/test-*) and
# every functional script tests/func/t-*.sh with BERTH_BUILD=BUILDDIR; for a
# fuzzing build dir (one configured with -Dfuzzing=true), runs each fuzz
# target for S seconds over its corpus instead.  Exit status of a test: 0 pass,
# 77 skip, anything else fail.  Logs go to BUILDDIR/test-logs/.  The last line
# is "N passed, N failed[, N skipped]"; the exit status is 1 if any failed.
set -u
cd "$(dirname "$0")/.."
top=$PWD
jobs=2
fuzz_seconds=20
filter=.
builds=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j) jobs=$2; shift 2 ;;
    --fuzz-seconds) fuzz_seconds=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    -*) echo "run-tests: unknown option $1" >&2; exit 2 ;;
    *) builds+=("$1"); shift ;;
  esac
done
[ ${#builds[@]} -gt 0 ] || builds=(build)

list=$(mktemp)
trap 'rm -f "$list"' EXIT
for b in "${builds[@]}"; do
  [ -d "$b" ] || { echo "run-tests: no build dir $b" >&2; exit 2; }
  bdir=$(cd "$b" && pwd)
  mkdir -p "$bdir/test-logs"
  if python3 -c 'import json,sys; o=[x for x in json.load(open(sys.argv[1])) if x["name"]=="fuzzing"]; sys.exit(0 if o and o[0]["value"] else 1)' "$bdir/meson-info/intro-buildoptions.json"; then
    for f in "$bdir"/tests/fuzz/fuzz-*; do
      [ -x "$f" ] && [ -f "$f" ] || continue
      n=$(basename "$f")
      echo "$b/$n|fuzz|$f" >>"$list"
    done
    continue
  fi
  for t in "$bdir"/tests/unit/test-*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    echo "$b/$(basename "$t")|unit|$t" >>"$list"
  done
  for t in tests/func/t-*.sh; do
    [ -f "$t" ] || continue
    echo "$b/$(basename "$t" .sh)|func|$top/$t|$bdir" >>"$list"
  done
done

run_one() {
  IFS='|' read -r name kind path bdir <<<"$1"
  local b=${name%%/*} log
  log="$top/$b/test-logs/${name#*/}.log"
  local start=$(date +%s) rc
  case "$kind" in
    unit) timeout -k 10 600 "$path" >"$log" 2>&1; rc=$? ;;
    func) BERTH_BUILD="$bdir" BERTH_TOP="$top" timeout -k 10 1200 bash "$path" >"$log" 2>&1; rc=$? ;;
    fuzz)
      local corpus="$top/tests/fuzz/corpus/$(basename "$path")" work
      work=$(mktemp -d)
      [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
      timeout -k 10 $((FUZZ_SECONDS + 120)) "$path" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 "$work" >"$log" 2>&1; rc=$?
      rm -rf "$work" ;;
  esac
  local dur=$(( $(date +%s) - start ))
  case $rc in
    0) echo "PASS $name (${dur}s)" ;;
    77) echo "SKIP $name (${dur}s): $(grep -m1 -i 'skip' "$log" | head -c 200)" ;;
    *) echo "FAIL $name (${dur}s, exit $rc) log: $log"
       tail -n 30 "$log" | sed 's/^/    | /' ;;
  esac
}
export -f run_one
export top
export FUZZ_SECONDS=$fuzz_seconds

# The longest tests start first (measured on a slow 2-CPU host: each took
# 1-5 min), so that none of them is left running alone at the end.
slow='/(t-vdev-crash|t-mirror-fault|t-replicate|t-dtl-crash|t-resilver|t-crash|t-snap-crash|t-vm-lifecycle)\|'
{ grep -E "$slow" "$list"; grep -vE "$slow" "$list"; } >"$list.ordered"
mv "$list.ordered" "$list"
results=$(grep -E "$filter" "$list" | xargs -d '\n' -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} | tee /dev/stderr)
pass=$(grep -c '^PASS' <<<"$results")
fail=$(grep -c '^FAIL' <<<"$results")
skip=$(grep -c '^SKIP' <<<"$results")
echo
if [ "$fail" -gt 0 ]; then
  echo "Failed:"; grep '^FAIL' <<<"$results" | sed 's/ log:.*//; s/^/  /'
fi
if [ "$skip" -gt 0 ]; then
  echo "$pass passed, $fail failed, $skip skipped"
else
  echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
