#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio over NBD (--ioengine=nbd) with --verify=crc32c: random 4K and sequential
# 1M writes from several jobs (one NBD connection each) on distinct regions,
# verified by reading back; then a verify-only pass on a fresh connection after
# a berthd restart (the data survived a clean shutdown).  Random 4K writes
# into blocks that only the disk holds (the pool file dropped from the page
# cache): the NBD reader's tries would block, and the workers write them.
. "$(dirname "$0")/functions.sh"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"

start_berthd
mkpool tank 2G
berth vol create -V 256M tank/r >/dev/null || fail "vol create tank/r"
berth vol create -V 256M -b 64K tank/s >/dev/null || fail "vol create tank/s"

# fio_run NAME ARGS...: run one fio job group, fail with its output on error
fio_run() {
  local name=$1; shift
  echo "== fio $name"
  # run in $T, and no verify state files (fio drops local-*-verify.state in the cwd)
  if ! (cd "$T" && fio --name="$name" --ioengine=nbd --output-format=terse --terse-version=3 \
      --group_reporting --verify_fatal=1 --verify_state_save=0 "$@") >"$T/fio-$name.out" 2>&1; then
    cat "$T/fio-$name.out"; fail "fio $name failed"
  fi
  grep -qiE 'verify: bad|crc32c: verify failed|bad magic' "$T/fio-$name.out" && { cat "$T/fio-$name.out"; fail "fio $name: verify errors"; }
  grep '^3;' "$T/fio-$name.out" | awk -F';' '{printf "  %s: write %s KiB/s %s IOPS, read %s KiB/s %s IOPS\n", $3, $48, $49, $7, $8}' | tail -1
}

# random 4K writes, 3 jobs on distinct 64 MiB regions, verify after
fio_run rand4k --uri="$(uri tank/r)" --rw=randwrite --bs=4k --iodepth=16 --numjobs=3 \
  --size=64M --offset_increment=64M --verify=crc32c --do_verify=1
# random 4K with a verify backlog (reads interleaved with the writes)
fio_run rand4k-backlog --uri="$(uri tank/r)" --rw=randwrite --bs=4k --iodepth=8 --numjobs=2 \
  --size=32M --offset=192M --offset_increment=32M --verify=crc32c --verify_backlog=256
# sequential 1M writes, 2 jobs, verify after
fio_run seq1m --uri="$(uri tank/s)" --rw=write --bs=1M --iodepth=4 --numjobs=2 \
  --size=128M --offset_increment=128M --verify=crc32c --do_verify=1
# mixed block sizes, unaligned to the volblocksize
fio_run mixed --uri="$(uri tank/s)" --rw=randwrite --bsrange=4k-192k --bs_unaligned=0 --iodepth=8 --numjobs=2 \
  --size=16M --offset=0 --offset_increment=64M --verify=crc32c --do_verify=1

echo "== random 4K writes into blocks only the disk holds"
drop_cache() {
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)  # only clean pages can be dropped
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$T/tank.img" || fail "cannot drop the page cache"
}
# a restart empties the block cache; then the page cache goes too
stop_berthd
start_berthd
drop_cache
fio_run rand4k-cold --uri="$(uri tank/r)" --rw=randwrite --bs=4k --iodepth=16 --numjobs=2 \
  --size=32M --offset_increment=64M --verify=crc32c --do_verify=1

echo "== restart berthd, verify the last writes again"
stop_berthd
start_berthd
fio_run seq1m-reverify --uri="$(uri tank/s)" --rw=write --bs=1M --iodepth=4 --numjobs=2 \
  --size=16M --offset=200M --offset_increment=16M --verify=crc32c --do_verify=1
stop_berthd
start_berthd
fio_run seq1m-readonly-verify --uri="$(uri tank/s)" --rw=read --bs=1M --iodepth=4 --numjobs=2 \
  --size=16M --offset=200M --offset_increment=16M --verify=crc32c --verify_only=1 --do_verify=1

berthd_alive
berth pool check tank || fail "pool check"

echo "== memory: reads stay within the block cache limit (berthd --cache-size 32M)"
if ldd "$BERTHD_BIN" 2>/dev/null | grep -E 'libasan|libubsan' >/dev/null; then
  echo "  skipped under sanitizers (their shadow memory and quarantine dominate RSS)"
else
  stop_berthd
  start_berthd --cache-size 32M
  rss0=$(awk '/VmRSS/ {print $2}' "/proc/$BERTHD_PID/status")
  fio_run mem-read --uri="$(uri tank/s)" --rw=randread --bs=64k --iodepth=16 --numjobs=2 --size=128M --offset_increment=128M
  fio_run mem-read4k --uri="$(uri tank/r)" --rw=randread --bs=4k --iodepth=16 --size=192M --io_size=64M
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$BERTHD_PID/status")
  echo "  RSS at start $((rss0 / 1024)) MiB, peak after 448 MiB of reads $((hwm / 1024)) MiB"
  [ $((hwm - rss0)) -le $((32 * 1024 + 96 * 1024)) ] ||
    fail "reading grew berthd by $(((hwm - rss0) / 1024)) MiB with a 32 MiB cache (allowed: cache + 96 MiB)"
  echo "== memory: writes stay within the memory limit too (berthd --cache-size 128M: cache, dirty data, NBD buffers)"
  stop_berthd
  start_berthd --cache-size 128M
  rss0=$(awk '/VmRSS/ {print $2}' "/proc/$BERTHD_PID/status")
  fio_run mem-write1m --uri="$(uri tank/s)" --rw=write --bs=1M --iodepth=16 --numjobs=2 --size=128M --offset_increment=128M
  fio_run mem-write4k --uri="$(uri tank/r)" --rw=randwrite --bs=4k --iodepth=16 --numjobs=2 --size=128M --offset_increment=128M --io_size=64M
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$BERTHD_PID/status")
  echo "  RSS at start $((rss0 / 1024)) MiB, peak after 384 MiB of writes $((hwm / 1024)) MiB"
  # the limit bounds the whole process (bs_memory_limit keeps room for
  # berthd's own overhead and malloc's slack; txgs trim the slack)
  [ "$hwm" -le $((128 * 1024)) ] ||
    fail "berthd's peak RSS was $((hwm / 1024)) MiB with a 128 MiB limit (allowed: the limit)"
fi

echo "== overwrite pressure: a volume of half the pool's size, rewritten whole 3 times"
# copy-on-write needs room for the new blocks while the old ones are still
# referenced (deferred frees): the engine must throttle writers (or at worst
# return ENOSPC), never fault the pool
berth pool create -o size=512M small "$T/small.img" >/dev/null || fail "pool create small"
berth vol create -V 240M small/v >/dev/null || fail "vol create small/v"
fio_run ow-prefill --uri="$(uri small/v)" --rw=write --bs=1M --iodepth=16 --size=240M
fio_run ow-rand --uri="$(uri small/v)" --rw=randwrite --bs=4k --iodepth=16 --size=64M
for i in 1 2 3; do
  fio_run ow-seq$i --uri="$(uri small/v)" --rw=write --bs=1M --iodepth=16 --size=240M --verify=crc32c --do_verify=1
  [ "$(pool_field small state)" = ONLINE ] || { berth pool status small; fail "pool small is $(pool_field small state) after overwrite $i"; }
done
berth pool check small || fail "pool check small"

stop_berthd
echo PASS
