#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crash consistency of changes to the vdev tree: `berth pool attach`, `detach`,
# `replace` (a healthy mirror member: attach, resilver, detach; a raidz
# member, present or gone: at once) and `pool add` (a single device, a
# mirror).  For each operation and each crash point
# of its sequence of durable writes (the state machine at the top of
# src/store/vdev_replace.c; test knob `berth pool debug POOL crash_at=POINT[:N]`,
# which SIGKILLs berthd there, label copies torn or not), on a fresh pool whose
# volume holds 8 MiB written and flushed before the operation:
#   - berthd is restarted and imports the pool by itself (no --rewind);
#   - the layout (pool status: tops and devices) is the old or the new one,
#     every device present and none UNAVAIL;
#   - the volume reads back byte-exact (nbdcopy + cmp);
#   - the operation, run again if the old layout came back (without -f),
#     completes: resilver done, the final layout, byte-exact again, and
#     `berth pool check` finds the pool consistent.
# label_power:N is a power cut in the N-th phase of a label write (copies 0
# and 2, flush, 1 and 3, flush: 2 phases per device): both copies of that
# phase torn, the others untouched (label_power:1 of attach: the new
# device's first label cut, copies 0 and 2 torn, 1 and 3 without a label).
# Also: a device whose labels are all damaged, given with the others
# (berthd's restart): a mirror member imports DEGRADED, shown under its path
# as UNAVAIL "corrupted data" (status and --json; a member really absent, as
# missing-GUID "cannot open"), `online` refused while damaged and taken once
# its labels are mended (resilvered), then replaced by its path, two
# raidz1 members refuse the pool naming both, a single device refuses it.
# Also: a device left labelled by a change that never committed, beside the
# change made instead, imports from the directory (the leftover ignored); a
# plain commit on a raidz1 cut after its first member's uberblock imports.
# BERTH_VDEV_CRASH=REGEX runs only the cases whose "OP POINT" matches.  In a
# sanitizer build every other crash point runs (the normal build runs all;
# BERTH_LONG=1 runs all everywhere): each case restarts an ASan berthd, and
# the whole matrix took 5.4 min there on a slow host, the longest test of
# `make check`.
. "$(dirname "$0")/functions.sh"
requires nbdcopy cmp
requires_nbdpy

M=$((1 << 20))
ONLY=${BERTH_VDEV_CRASH:-}
mkdir -p "$T/d"
mkdata "$T/v.data" 8 random

# "NTOPS: dev dev ..." (sorted basenames) and the devices' states
layout() {
  berth --json pool status "$1" | nbdpy -c '
import json, os, sys
d = json.load(sys.stdin)
name = lambda p: "missing" if p.startswith("missing-") else os.path.basename(p)
print("%d: %s" % (len(d.get("tops", [])) or 1, " ".join(sorted(name(v["path"]) for v in d["vdevs"]))))'
}
bad_devices() {
  berth --json pool status "$1" | nbdpy -c '
import json, sys
d = json.load(sys.stdin)
ok = lambda v: v["state"] == "ONLINE" or (sys.argv[1] == "1" and v["path"].startswith("missing-"))
print(" ".join("%s=%s" % (v["path"], v["state"]) for v in d["vdevs"] if not ok(v)))' "${2:-0}"
}
scan_busy() {
  berth --json pool status "$1" | nbdpy -c '
import json, sys
d = json.load(sys.stdin)
s = d.get("scan") or {}
busy = s.get("state") == "scanning" or any(v.get("resilvering") or v.get("replacing") for v in d["vdevs"])
sys.exit(0 if busy else 1)'
}
scan_idle() { ! scan_busy "$1"; }
# "STATE REASON" of the device at path $2
dev_json() {
  berth --json pool status "$1" | nbdpy -c '
import json, sys
for v in json.load(sys.stdin)["vdevs"]:
    if v["path"] == sys.argv[1]:
        print(v["state"], v.get("reason", ""))' "$2"
}
layout_is() { [ "$(layout "$1")" = "$2" ]; }
berthd_dead() { ! kill -0 "$BERTHD_PID" 2>/dev/null; }

check_data() {
  rm -f "$T/out.data"
  nbdcopy "$(uri cr/v)" "$T/out.data" || fail "$1: cannot read cr/v"
  cmp -n $((8 * M)) "$T/v.data" "$T/out.data" || fail "$1: cr/v differs from what was written"
}

# Each setup_OP makes pool cr, sets OLD / NEW (/ MID) / FINAL layouts and the
# command CMD (run again while the old layout is in force).
fresh() {
  berth pool destroy -f cr >/dev/null 2>&1
  rm -rf "$T/d" && mkdir -p "$T/d"
  A=$T/d/a.img B=$T/d/b.img C=$T/d/c.img D=$T/d/d.img
}
fill() {
  berth vol create -V 16M cr/v >/dev/null || fail "vol create cr/v"
  nbdcopy --flush "$T/v.data" "$(uri cr/v)" || fail "fill cr/v"
  pool_sync cr 2 || fail "pool sync cr"
}
setup_attach() {
  fresh
  berth pool create -o size=80M cr "$A" >/dev/null || fail "create cr"
  fill
  OLD="1: a.img" NEW="1: a.img b.img" MID=- FINAL=$NEW
  CMD=(berth pool attach cr "$A" "$B")
}
setup_detach() {
  fresh
  berth pool create -o size=80M cr mirror "$A" "$B" >/dev/null || fail "create cr"
  fill
  OLD="1: a.img b.img" NEW="1: a.img" MID=- FINAL=$NEW
  CMD=(berth pool detach cr "$B")
}
setup_mreplace() {
  fresh
  berth pool create -o size=80M cr mirror "$A" "$B" >/dev/null || fail "create cr"
  fill
  OLD="1: a.img b.img" MID="1: a.img b.img c.img" NEW="1: a.img c.img" FINAL=$NEW
  CMD=(berth pool replace cr "$B" "$C")
}
setup_zreplace() {
  fresh
  berth pool create -o size=80M cr raidz1 "$A" "$B" "$C" >/dev/null || fail "create cr"
  fill
  OLD="1: a.img b.img c.img" NEW="1: a.img b.img d.img" MID=- FINAL=$NEW
  CMD=(berth pool replace cr "$C" "$D")
}
setup_zdead() {
  fresh
  berth pool create -o size=80M cr raidz1 "$A" "$B" "$C" >/dev/null || fail "create cr"
  fill
  berth pool export cr >/dev/null || fail "export cr"
  rm -f "$C"
  berth pool import -d "$T/d" cr >/dev/null || fail "import cr without C"
  [ "$(pool_field cr state)" = DEGRADED ] || fail "cr is not DEGRADED without C"
  # really absent: missing-GUID, "cannot open"
  local gone
  gone=$(berth --json pool status cr | nbdpy -c '
import json, sys
print(" ".join("%s=%s/%s" % (v["path"][:8], v["state"], v.get("reason", ""))
               for v in json.load(sys.stdin)["vdevs"] if v["state"] != "ONLINE"))')
  [ "$gone" = "missing-=UNAVAIL/cannot open" ] || fail "zdead: C shown as $gone"
  OLD="1: a.img b.img missing" NEW="1: a.img b.img d.img" MID=- FINAL=$NEW
  CMD=(berth pool replace cr 2 "$D") # the missing member by its index
}
setup_madd() {
  fresh
  berth pool create -o size=80M cr mirror "$A" "$B" >/dev/null || fail "create cr"
  fill
  truncate -s 80M "$C" "$D"
  OLD="1: a.img b.img" NEW="2: a.img b.img c.img d.img" MID=- FINAL=$NEW
  CMD=(berth pool add cr mirror "$C" "$D")
}
setup_add() {
  fresh
  berth pool create -o size=80M cr "$A" >/dev/null || fail "create cr"
  fill
  truncate -s 80M "$B"
  OLD="1: a.img" NEW="2: a.img b.img" MID=- FINAL=$NEW
  CMD=(berth pool add cr "$B")
}

NCASES=0 NSEEN=0 NSKIP=0 SAMPLE=
[ "${BERTH_LONG:-0}" = 1 ] || ! sanitized_build || SAMPLE=1
run_case() {
  local op=$1 point=$2 what="$1 $2"
  [ -z "$ONLY" ] || [[ "$what" =~ $ONLY ]] || return 0
  NSEEN=$((NSEEN + 1))
  [ -z "$SAMPLE" ] || [ $((NSEEN % 2)) = 1 ] || { NSKIP=$((NSKIP + 1)); return 0; }
  NCASES=$((NCASES + 1))
  "setup_$op"
  berth pool debug cr "crash_at=$point" >/dev/null || fail "$what: debug crash_at=$point"
  "${CMD[@]}" >/dev/null 2>&1
  # a replace of a healthy member returns after its attach; its detach (by
  # the scan thread, after the resilver) crashes later
  wait_until 60 berthd_dead 2>/dev/null || fail "$what: berthd did not reach the crash point"
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=
  check_sanitizer_log
  grep -q "crash point ${point%%:*} reached" "$T/berthd.log" || fail "$what: berthd died elsewhere"
  start_berthd
  local st lay bad
  st=$(pool_field cr state)
  [ "$st" != UNAVAIL ] || { berth pool status cr; fail "$what: the pool did not import"; }
  lay=$(layout cr)
  [ "$lay" = "$OLD" ] || [ "$lay" = "$NEW" ] || [ "$lay" = "$MID" ] ||
    fail "$what: layout '$lay' is neither the old '$OLD' nor the new '$NEW'"
  bad=$(bad_devices cr "$([ "$lay" = "$OLD" ] && echo 1)")
  [ -z "$bad" ] || fail "$what: devices not ONLINE after the import: $bad (layout $lay)"
  # DEGRADED while a member that joined is resilvered (checked ONLINE below)
  [ "$st" = ONLINE ] || [ "$st" = DEGRADED ] || fail "$what: pool state $st"
  check_data "$what (after the crash)"
  local which=new
  [ "$lay" = "$OLD" ] && which=old
  [ "$lay" = "$MID" ] && which=mid
  if [ "$which" = old ]; then
    "${CMD[@]}" >"$T/again.out" 2>&1 ||
      { cat "$T/again.out"; fail "$what: ${CMD[*]} again (without -f) failed"; }
  fi
  wait_until 60 scan_idle cr || fail "$what: the resilver did not finish"
  wait_until 30 layout_is cr "$FINAL" ||
    fail "$what: layout '$(layout cr)', want '$FINAL' after the operation completed"
  bad=$(bad_devices cr)
  [ -z "$bad" ] || fail "$what: devices not ONLINE at the end: $bad"
  st=$(pool_field cr state)
  [ "$st" = ONLINE ] || fail "$what: pool state $st at the end"
  check_data "$what (completed)"
  berth --json pool check cr | grep -q '"consistent": *true' || fail "$what: pool check"
  # (sampled after the import: a resilver may have completed a replace)
  printf '  %-32s found the %s layout (%s), data intact, completed\n' "$what:" "$which" "$lay"
}

start_berthd

echo "== attach (a single device becomes a mirror)"
for pt in new_wiped label_torn:1 label_copy:2 tree_labels:1 label_torn:5 label_copy:6 \
          tree_written ub_leaf:1 commit_ub tree_committed label_copy:9 \
          label_power:1 label_power:2 label_power:4; do
  run_case attach "$pt"
done
echo "== detach (a mirror member leaves)"
for pt in label_torn:1 label_copy:2 tree_written commit_ub tree_committed tree_forgotten \
          label_power:1; do
  run_case detach "$pt"
done
echo "== replace of a healthy mirror member (attach, resilver, detach)"
for pt in new_wiped label_copy:4 label_copy:6 tree_labels:2 tree_written tree_committed \
          tree_written:2 commit_ub:2 tree_committed:2 tree_forgotten; do
  run_case mreplace "$pt"
done
echo "== replace of a raidz1 member"
for pt in new_wiped label_copy:4 label_torn:5 label_copy:8 tree_written ub_leaf:1 ub_leaf:2 commit_ub \
          tree_committed tree_forgotten; do
  run_case zreplace "$pt"
done
echo "== replace of a raidz1 member that is gone (the pool DEGRADED)"
for pt in new_wiped label_copy:4 label_copy:8 tree_written ub_leaf:1 tree_committed; do
  run_case zdead "$pt"
done
echo "== pool add (a second top-level vdev)"
for pt in add_labels add_map label_copy:6 add_old_labels commit_ub add_committed label_power:1; do
  run_case add "$pt"
done
echo "== pool add of a mirror to a mirror"
for pt in add_labels add_old_labels ub_leaf:1 ub_leaf:2 ub_leaf:3 add_committed; do
  run_case madd "$pt"
done
# every copy of the label header of $1 damaged (its checksum fails)
damage_labels() {
  local sz=$(( $(stat -c %s "$1") / (256 * 1024) * (256 * 1024) )) off
  for off in 0 $((256 * 1024)) $((sz - 512 * 1024)) $((sz - 256 * 1024)); do
    printf 'damaged!damaged!' | dd of="$1" bs=1 seek=$((off + 64)) conv=notrunc status=none ||
      fail "damage $1"
  done
}
# undo damage_labels: the pool name $2 (NUL padded) at offset 64 of each copy
restore_labels() {
  local sz=$(( $(stat -c %s "$1") / (256 * 1024) * (256 * 1024) )) off
  for off in 0 $((256 * 1024)) $((sz - 512 * 1024)) $((sz - 256 * 1024)); do
    { printf '%s' "$2"; head -c $((16 - ${#2})) /dev/zero; } |
      dd of="$1" bs=1 seek=$((off + 64)) conv=notrunc status=none || fail "restore $1"
  done
}
damaged_case() {
  [ -z "$ONLY" ] || [[ "damaged" =~ $ONLY ]] || return 0
  NCASES=$((NCASES + 1))
  echo "== a device whose four label copies are damaged"
  setup_mreplace
  stop_berthd
  damage_labels "$B"
  start_berthd
  [ "$(pool_field cr state)" = DEGRADED ] ||
    { berth pool status cr; fail "damaged: mirror not DEGRADED"; }
  # shown under its own path, UNAVAIL with "corrupted data" (not missing-GUID)
  [ "$(layout cr)" = "1: a.img b.img" ] || fail "damaged: layout $(layout cr)"
  [ "$(dev_json cr "$B")" = "UNAVAIL corrupted data" ] ||
    fail "damaged: $B is '$(dev_json cr "$B")' in status --json"
  berth pool status cr | grep -qE "^[[:space:]]+$B +UNAVAIL +0 +0 +0  corrupted data$" ||
    { berth pool status cr; fail "damaged: status does not show $B UNAVAIL, corrupted data"; }
  grep -q "no valid label on $B" "$T/berthd.log" || fail "damaged: the log does not name $B"
  rc_of 1 "damaged berth label" berth pool online cr "$B"
  check_data "damaged"
  # its labels mended (the 16 bytes put back: the pool name "cr"), `online` by
  # that path opens it again; it is resilvered for what it missed
  restore_labels "$B" cr
  berth pool online cr "$B" >/dev/null || fail "damaged: online $B once its labels are whole"
  wait_until 60 scan_idle cr || fail "damaged: the resilver of $B did not finish"
  [ "$(dev_json cr "$B")" = "ONLINE " ] && [ "$(pool_field cr state)" = ONLINE ] ||
    fail "damaged: $B '$(dev_json cr "$B")', pool $(pool_field cr state) after online"
  check_data "damaged (back online)"
  berth pool replace cr "$B" "$C" >/dev/null || fail "damaged: replace the damaged member by its path"
  wait_until 60 scan_idle cr || fail "damaged: the resilver did not finish"
  wait_until 30 layout_is cr "1: a.img c.img" || fail "damaged: layout $(layout cr) at the end"
  [ "$(pool_field cr state)" = ONLINE ] || fail "damaged: not ONLINE at the end"
  check_data "damaged (replaced)"
  # damaged again: replaced in place by the same device (as `zpool replace
  # POOL DEV` after a disk's labels were clobbered)
  stop_berthd
  damage_labels "$C"
  start_berthd
  [ "$(dev_json cr "$C")" = "UNAVAIL corrupted data" ] || fail "damaged: $C '$(dev_json cr "$C")'"
  berth pool replace cr "$C" "$C" >/dev/null || fail "damaged: replace $C by itself"
  wait_until 60 scan_idle cr || fail "damaged: the resilver of $C in place did not finish"
  wait_until 30 layout_is cr "1: a.img c.img" || fail "damaged: layout $(layout cr) after in place"
  [ "$(pool_field cr state)" = ONLINE ] && [ "$(dev_json cr "$C")" = "ONLINE " ] ||
    fail "damaged: $C '$(dev_json cr "$C")', pool $(pool_field cr state) after in place"
  check_data "damaged (replaced in place)"
  echo "  mirror member: imported DEGRADED, shown as $B UNAVAIL corrupted data, online refused;"
  echo "  mended: online, resilvered; data intact, replaced by its path, ONLINE;"
  echo "  damaged again: replaced in place by the same device, ONLINE"
  setup_zreplace
  stop_berthd
  damage_labels "$B"
  damage_labels "$C"
  start_berthd
  local out
  out=$(berth pool status cr 2>&1)
  [ "$(pool_field cr state)" = UNAVAIL ] ||
    { echo "$out"; fail "damaged: raidz1 without 2 imported"; }
  grep -q "no valid label on $B, $C" <<<"$out" || { echo "$out"; fail "damaged: raidz1 error"; }
  echo "  two raidz1 members: refused ($(grep -o 'no valid label on [^)]*)' <<<"$out" | head -1))"
  berth pool export cr >/dev/null || fail "damaged: forget the UNAVAIL raidz1"
  fresh
  berth pool create -o size=80M cr "$A" >/dev/null || fail "create cr"
  stop_berthd
  damage_labels "$A"
  start_berthd
  out=$(berth pool status cr 2>&1)
  [ "$(pool_field cr state)" = UNAVAIL ] && grep -q "damaged berth label" <<<"$out" ||
    { echo "$out"; fail "damaged: single device"; }
  echo "  single device: refused (damaged berth label)"
  berth pool export cr >/dev/null || fail "damaged: forget the UNAVAIL pool"
}
damaged_case

leftover_case() {
  [ -z "$ONLY" ] || [[ "leftover" =~ $ONLY ]] || return 0
  NCASES=$((NCASES + 1))
  echo "== a leftover of a change that never committed, beside the change made instead"
  setup_attach
  berth pool debug cr "crash_at=label_copy:2" >/dev/null || fail "leftover: debug"
  "${CMD[@]}" >/dev/null 2>&1
  wait_until 60 berthd_dead 2>/dev/null || fail "leftover: berthd did not reach the crash point"
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=
  start_berthd
  [ "$(layout cr)" = "$OLD" ] || fail "leftover: layout $(layout cr) after the crash"
  # C instead of B: its labels may take the config txg B's label names
  berth pool attach cr "$A" "$C" >/dev/null || fail "leftover: attach C"
  wait_until 60 scan_idle cr || fail "leftover: the resilver did not finish"
  berth pool export cr >/dev/null || fail "leftover: export"
  berth pool import -d "$T/d" cr >/dev/null || fail "leftover: import -d with the leftover B"
  [ "$(layout cr)" = "1: a.img c.img" ] || fail "leftover: layout $(layout cr)"
  check_data "leftover"
  echo "  imported from the directory (B ignored): $(layout cr), data intact"
}
leftover_case

# Not a tree change: a plain commit on a raidz1 whose uberblock reached one
# member of three (the others one txg behind) imports, with what was flushed.
ztxg_case() {
  [ -z "$ONLY" ] || [[ "ztxg" =~ $ONLY ]] || return 0
  NCASES=$((NCASES + 1))
  echo "== a plain commit on a raidz1 cut after the first member's uberblock"
  setup_zreplace
  berth pool debug cr "crash_at=any_ub_leaf:1" >/dev/null || fail "ztxg: debug"
  nbdcopy --flush "$T/v.data" "$(uri cr/v)" >/dev/null 2>&1 &
  wait_until 60 berthd_dead 2>/dev/null || fail "ztxg: berthd did not reach the crash point"
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=
  wait
  start_berthd
  local st
  st=$(pool_field cr state)
  [ "$st" = ONLINE ] || [ "$st" = DEGRADED ] || { berth pool status cr; fail "ztxg: pool $st"; }
  check_data "ztxg"
  wait_until 60 scan_idle cr || fail "ztxg: the resilver did not finish"
  [ "$(pool_field cr state)" = ONLINE ] || fail "ztxg: not ONLINE at the end"
  berth --json pool check cr | grep -q '"consistent": *true' || fail "ztxg: pool check"
  echo "  imported ($st), data intact, ONLINE"
}
ztxg_case
[ "$NCASES" -gt 0 ] || fail "no case matched '$ONLY'"
berth pool destroy -f cr >/dev/null
stop_berthd
if [ "$NSKIP" -gt 0 ]; then
  echo "PASS ($NCASES cases; $NSKIP of the $NSEEN crash points left to BERTH_LONG=1 in a sanitizer build)"
else
  echo "PASS ($NCASES cases)"
fi
