#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lazy autotrim and crashes.  Freed space is punched by the pool's trim thread
# after the pool idles (5 s without data txgs) or after a few more data txgs;
# the queue of what is still to punch lives only in memory.  Each round
# overwrites 96 MiB of a volume with new random data (freeing the old copy),
# flushes, waits a different time (before, around and after the idle punch
# starts) and kills berthd with SIGKILL; after the restart the volume must
# hold exactly the last flushed data and `berth pool check` must pass.  At
# the end `berth pool trim` must give back what the lost queue still held,
# and a discard must be punched lazily by the running daemon.  (The reuse of
# unpunched space and a stopped pass are unit-tested in test-alloc.)
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires_nbdpy

M=$((1 << 20))
start_berthd --log-level debug
mkpool tank 1G
img=$T/tank.img
berth vol create -V 128M tank/v >/dev/null || fail "vol create"
head -c $((96 * M)) /dev/urandom >"$T/data"
nbdcopy --flush "$T/data" "$(uri tank/v)" || fail "first copy"
pool_sync tank

for round in 1 2 3; do
  case $round in 1) wait=0.5 ;; 2) wait=5.2 ;; 3) wait=6.5 ;; esac
  head -c $((96 * M)) /dev/urandom >"$T/data"
  nbdcopy --flush "$T/data" "$(uri tank/v)" || fail "round $round: nbdcopy"
  pool_sync tank # the old copy's frees become reusable and queued for trim
  sleep "$wait"
  echo "round $round: kill after ${wait} s ($(grep -c 'autotrim discarded' "$T/berthd.log") trim passes so far)"
  kill_berthd
  start_berthd --log-level debug
  nbdcopy "$(uri tank/v)" "$T/back" || fail "round $round: read back"
  cmp -n $((96 * M)) "$T/back" "$T/data" || fail "round $round: data after the restart differs"
  berth pool check tank || fail "round $round: pool check"
  fa=$(file_alloc "$img")
  echo "  after the restart: file allocated $fa"
  # killed before any punch could run: the queue is gone, both copies' space
  # is still allocated in the file, and nothing else is lost
  [ $round != 1 ] || [ "$fa" -ge $((180 * M)) ] || fail "round 1: only $fa bytes allocated: punched before the kill?"
done

echo "== berth pool trim gets back what the lost queues held"
f1=$(file_alloc "$img")
t=$(berth pool trim tank) || fail "pool trim"
f2=$(file_alloc "$img")
echo "pool trim: $t; file allocated $f1 -> $f2"
[ "$f2" -le $((96 * M + 24 * M)) ] || fail "after pool trim the file still has $f2 bytes allocated"
nbdcopy "$(uri tank/v)" "$T/back" || fail "read back"
cmp -n $((96 * M)) "$T/back" "$T/data" || fail "data after pool trim differs"

echo "== a discard is punched lazily by the running daemon"
PATH=/usr/bin:/bin nbdsh -u "$(uri tank/v)" -c 'h.trim(96 << 20, 0); h.flush()' || fail "trim"
for i in $(seq 150); do
  f3=$(file_alloc "$img")
  [ "$f3" -le $((24 * M)) ] && break
  pool_sync tank
  sleep 0.1
done
echo "after the discard: file allocated $f3 (after $i polls)"
[ "$f3" -le $((24 * M)) ] || fail "the discarded 96 MiB were not punched: $f3 bytes allocated"
grep -q 'autotrim discarded' "$T/berthd.log" || fail "no autotrim pass in the log"

berthd_alive
berth pool check tank || fail "pool check"
stop_berthd
echo PASS
