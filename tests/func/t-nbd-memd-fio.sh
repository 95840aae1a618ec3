#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio through its libnbd engine against nbd-memd: several jobs writing and
# verifying (crc32c) at queue depth, over the unix socket and over TCP, each
# job on its own connection and region; then a mixed random workload.
. "$(dirname "$0")/functions.sh"
requires fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio lacks the nbd engine"
MEMD=$BERTH_BUILD/src/nbd/nbd-memd
[ -x "$MEMD" ] || skip "no $MEMD"
S=$T/nbd.sock
"$MEMD" --socket "$S" --tcp 127.0.0.1:0 --port-file "$T/port" --export v:256M \
  >"$T/memd.log" 2>&1 &
MEMD_PID=$!
add_cleanup "kill -KILL $MEMD_PID"
for _ in $(seq 100); do [ -S "$S" ] && [ -s "$T/port" ] && break; sleep 0.05; done
[ -S "$S" ] || fail "nbd-memd did not start"
PORT=$(cat "$T/port")
cd "$T"   # fio drops verify state files in the working directory

run_fio() {
  local uri=$1; shift
  fio --name=job --ioengine=nbd --uri="$uri" --size=64M --offset_increment=64M \
    --numjobs=4 --group_reporting "$@" --output="$T/fio.out" || { cat "$T/fio.out"; fail "fio $*"; }
  grep -E "IOPS|err=" "$T/fio.out" | head -3
  grep -qE "err= *[1-9]" "$T/fio.out" && fail "fio reported errors"
  return 0
}
run_fio "nbd+unix:///v?socket=$S" --rw=randwrite --bs=4k --iodepth=16 --verify=crc32c \
  --verify_fatal=1 --do_verify=1
run_fio "nbd://127.0.0.1:$PORT/v" --rw=write --bs=64k --iodepth=8 --verify=crc32c \
  --verify_fatal=1 --do_verify=1
# data written over TCP is what the unix socket reads back
run_fio "nbd+unix:///v?socket=$S" --rw=write --bs=64k --iodepth=8 --verify=crc32c \
  --verify_only=1 --verify_fatal=1
run_fio "nbd+unix:///v?socket=$S" --rw=randrw --bsrange=512-128k --iodepth=32 \
  --time_based --runtime=3

kill -TERM $MEMD_PID; rc=0; wait $MEMD_PID || rc=$?
grep -E "Sanitizer|runtime error" "$T/memd.log" && fail "sanitizer report"
[ $rc = 0 ] || fail "nbd-memd exit status $rc"
exit 0
