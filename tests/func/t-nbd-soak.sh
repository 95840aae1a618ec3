#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A soak of the NBD request path: several fio jobs (one connection each) with
# deep queues of mixed random reads and writes of 4K..256K — the sizes that
# NBD workers take in runs of quick requests (server.c) and the sizes that
# go alone, whole-block payloads received into block buffers and unaligned
# ones — verified with crc32c, while a `berth pool sync` loop forces txgs.
# Every fio is bounded by `timeout`: a lost request or reply (the client
# waits for ever) fails the test instead of hanging the suite.
# SOAK_SECONDS per round (default 15, 300 with BERTH_LONG=1), 2 rounds.
. "$(dirname "$0")/functions.sh"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"
SECS=${SOAK_SECONDS:-$([ "${BERTH_LONG:-0}" = 1 ] && echo 300 || echo 15)}

start_berthd
mkpool tank 2G
berth vol create -V 512M tank/s >/dev/null || fail "vol create tank/s"

( while sleep 0.7; do berth pool sync tank >/dev/null 2>&1 || exit 0; done ) &
syncer=$!
add_cleanup "kill $syncer"

for round in 1 2; do
  echo "== round $round: 3 connections, iodepth 32, randrw 4k-256k, ${SECS}s, verified"
  if ! (cd "$T" && timeout $((SECS + 120)) fio --name="soak$round" --ioengine=nbd --uri="$(uri tank/s)" \
      --rw=randrw --rwmixread=40 --bsrange=4k-256k --bs_unaligned=0 --iodepth=32 --numjobs=3 \
      --size=128M --offset_increment=160M --time_based --runtime="$SECS" \
      --verify=crc32c --verify_backlog=512 --verify_fatal=1 --verify_state_save=0 \
      --group_reporting --output-format=terse --terse-version=3) >"$T/fio-$round.out" 2>&1; then
    tail -20 "$T/fio-$round.out"
    fail "round $round: fio failed or timed out (exit status above; 124 = a request never answered)"
  fi
  grep -qiE 'verify: bad|crc32c: verify failed|bad magic' "$T/fio-$round.out" &&
    { tail -20 "$T/fio-$round.out"; fail "round $round: verify errors"; }
  grep '^3;' "$T/fio-$round.out" | awk -F';' '{printf "  write %s IOPS, read %s IOPS\n", $49, $8}' | tail -1
done
kill $syncer 2>/dev/null
wait $syncer 2>/dev/null

berthd_alive
berth pool check tank || fail "pool check"
echo "ok: no request lost, all data verified"
