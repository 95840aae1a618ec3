#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Autotrim waits while a pool is read.  Freed space is punched from the pool
# file lazily; the pass that takes everything runs once the pool is idle, and
# a pool being read is not idle: punching scattered runs takes the file's
# invalidate lock under the readers and splits its page-cache folios (txg.c,
# TRIM_READ_MAX_NS).  So: discard 64 MiB, read the volume without a pause for
# 10 s and see the pool file keep its size; stop reading and see it shrink
# within seconds.
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires_nbdpy

M=$((1 << 20))
start_berthd --log-level debug
mkpool tank 1G
img=$T/tank.img
berth vol create -V 128M tank/v >/dev/null || fail "vol create"
U=$(uri tank/v)
head -c $((96 * M)) /dev/urandom >"$T/data"
nbdcopy --flush "$T/data" "$U" || fail "write 96 MiB"
pool_sync tank 2
f1=$(file_alloc "$img")
echo "written: pool file allocated $f1"

start=$(date +%s.%N)
# one reader, back to back, for 10 s (the last 32 MiB keep their data)
(
  end=$(($(date +%s) + 10))
  while [ "$(date +%s)" -lt "$end" ]; do
    nbdcopy "$U" "$T/back" || exit 1
  done
) &
reader=$!
sleep 1
PATH=/usr/bin:/bin nbdsh -u "$U" -c 'h.trim(64 << 20, 0); h.flush()' || fail "discard 64 MiB"
pool_sync tank 4 # the frees are released and queued for autotrim
min=$f1
while kill -0 $reader 2>/dev/null; do
  f=$(file_alloc "$img")
  [ "$f" -lt "$min" ] && min=$f
  sleep 0.5
done
wait $reader || fail "the reader failed"
cmp -n $((32 * M)) -i $((64 * M)) "$T/back" "$T/data" || fail "the data after the discarded range changed"
echo "while reading for $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s: smallest pool file allocation $min"
[ "$min" -ge $((f1 - 8 * M)) ] || fail "autotrim punched $(((f1 - min) / M)) MiB while the volume was being read"

i=0
while [ "$(file_alloc "$img")" -gt $((f1 - 56 * M)) ]; do
  i=$((i + 1))
  [ $i -le 150 ] || fail "the pool file did not shrink after the reads stopped: $(file_alloc "$img")"
  sleep 0.1
done
echo "after the reads stopped: pool file allocated $(file_alloc "$img") after $((i / 10)).$((i % 10)) s"
grep -q "autotrim discarded" "$T/berthd.log" || fail "no autotrim pass in the log"
berth pool check tank || fail "pool check"
echo "ok"
