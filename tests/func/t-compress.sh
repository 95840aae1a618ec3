#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Compression: compressible text is stored at a high ratio with lz4 and zstd
# (and zstd beats lz4), random data is stored raw (ratio ~1.00, kept raw by the
# 1/8 rule), compression=off stores everything at 1.00; the pool ratio and the
# pool file's allocated size follow; all data reads back byte-exact.
. "$(dirname "$0")/functions.sh"
requires nbdcopy cmp
requires_nbdpy

M=$((1 << 20))
start_berthd
mkpool tank 1G
mkdata "$T/text" 64 text
mkdata "$T/rand" 64 random
head -c $((4 * M)) "$T/text" >"$T/text4"   # zstd-19 is slow: a small sample

put() { # put VOL FILE
  nbdcopy --flush "$2" "$(uri "$1")" || fail "nbdcopy $2 -> $1"
}
check_back() { # check_back VOL FILE
  nbdcopy "$(uri "$1")" "$T/back" || fail "nbdcopy out of $1"
  cmp -n "$(stat -c %s "$2")" "$T/back" "$2" || fail "$1 does not read back as $2"
  rm -f "$T/back"
}

berth vol create -V 64M tank/lz >/dev/null || fail "vol create tank/lz"
berth vol create -V 64M -o compression=zstd tank/zs >/dev/null || fail "vol create -o compression=zstd"
berth vol create -V 64M -o compression=zstd-19 tank/zs19 >/dev/null || fail "vol create -o compression=zstd-19"
berth vol create -V 64M -o compression=off tank/off >/dev/null || fail "vol create -o compression=off"
berth vol create -V 64M tank/rnd >/dev/null || fail "vol create tank/rnd"
berth vol create -V 64M -o compression=zstd tank/zrnd >/dev/null || fail "vol create tank/zrnd"
f0=$(file_alloc "$T/tank.img")

put tank/lz "$T/text"; put tank/zs "$T/text"; put tank/zs19 "$T/text4"; put tank/off "$T/text"
put tank/rnd "$T/rand"; put tank/zrnd "$T/rand"
pool_sync tank 2

printf '%-10s %12s %12s %8s\n' VOL USED LOGICALUSED RATIO
for v in lz zs zs19 off rnd zrnd; do
  printf '%-10s %12s %12s %8s\n' "$v" "$(vol_prop tank/$v used)" "$(vol_prop tank/$v logicalused)" "$(vol_prop tank/$v compressratio)"
done
berth pool status tank

r_lz=$(vol_prop tank/lz compressratio) r_zs=$(vol_prop tank/zs compressratio) r_zs19=$(vol_prop tank/zs19 compressratio)
fcmp "$r_lz" '>=' 2 || fail "lz4 on text: compressratio $r_lz < 2"
fcmp "$r_zs" '>=' 2 || fail "zstd on text: compressratio $r_zs < 2"
fcmp "$r_zs" '>=' "$r_lz" || fail "zstd ($r_zs) compresses text worse than lz4 ($r_lz)"
fcmp "$r_zs19" '>=' "$r_zs" || fail "zstd-19 ($r_zs19) compresses text worse than zstd-3 ($r_zs)"
[ "$(vol_prop tank/lz used)" -le $((64 * M / 2)) ] || fail "lz4 text uses $(vol_prop tank/lz used) bytes for 64 MiB"
[ "$(vol_prop tank/lz logicalused)" -eq $((64 * M)) ] || fail "logicalused of tank/lz $(vol_prop tank/lz logicalused)"
for v in off rnd zrnd; do
  r=$(vol_prop tank/$v compressratio)
  fcmp "$r" '<=' 1.01 || fail "tank/$v: compressratio $r, want 1.00"
  fcmp "$r" '>=' 0.99 || fail "tank/$v: compressratio $r, want 1.00"
  [ "$(vol_prop tank/$v used)" -ge $((64 * M)) ] || fail "tank/$v uses only $(vol_prop tank/$v used) for 64 MiB stored raw"
  [ "$(vol_prop tank/$v used)" -le $((67 * M)) ] || fail "tank/$v uses $(vol_prop tank/$v used) for 64 MiB (overhead > 5%)"
done
pr=$(pool_field tank compressratio)
echo "pool compressratio $pr"
fcmp "$pr" '>' 1.3 || fail "pool compressratio $pr: 3 of 6 volumes hold highly compressible text"
# the pool file holds roughly the physical bytes: 3x64 MiB raw + compressed text
fa=$(( $(file_alloc "$T/tank.img") - f0 ))
echo "pool file grew by $fa bytes for $((6 * 64)) MiB written"
[ "$fa" -le $((3 * 64 * M + 3 * 32 * M + 16 * M)) ] || fail "the pool file grew by $fa bytes: compression did not save space"
[ "$fa" -ge $((3 * 64 * M)) ] || fail "the pool file grew by only $fa bytes for 192 MiB of incompressible data"

echo "== a volume that stored random data for a while still compresses text"
# the history (codec.c compress_block_hist) stops trying most blocks of
# tank/hist after its random data (64 MiB: ~700 blocks start the skipping);
# the text written next must be noticed within a few tries and compressed
# like tank/lz's, but for the blocks stored raw before the next try (the
# tries back off to 1 in COMP_PROBE_EVERY_MAX = 64 blocks: up to 1 MiB of
# 16K blocks, codec.h)
berth vol create -V 64M tank/hist >/dev/null || fail "vol create tank/hist"
put tank/hist "$T/rand"
pool_sync tank 2
put tank/hist "$T/text"
pool_sync tank 2
r_h=$(vol_prop tank/hist compressratio)
echo "tank/hist: text over random data: ratio $r_h (tank/lz $r_lz)"
fcmp "$r_h" '>=' "$(python3 -c "print(64 / (64 / $r_lz + 1.25))")" || fail "text after random data: ratio $r_h, tank/lz has $r_lz"
# interleaved runs of random data and text (1 MiB and 8 MiB: too short to
# start the skipping, which needs over 512 random blocks after text): every text
# run compressed
u_lz=$(vol_prop tank/lz used)
for run in 1 8; do
  for i in $(seq 0 $((2 * run)) 63); do
    dd if="$T/rand" of="$T/mix$run" bs=1M skip=$i seek=$i count=$run conv=notrunc status=none
    dd if="$T/text" of="$T/mix$run" bs=1M skip=$((i + run)) seek=$((i + run)) count=$run conv=notrunc status=none
  done
  berth vol create -V 64M tank/mix$run >/dev/null || fail "vol create tank/mix$run"
  put tank/mix$run "$T/mix$run"
  pool_sync tank 2
  u=$(vol_prop tank/mix$run used)
  echo "tank/mix$run: half random, half text in $run MiB runs: used $u (random half 32 MiB + text half; tank/lz $u_lz for all text)"
  [ "$u" -le $((32 * M + u_lz / 2 + M)) ] || fail "tank/mix$run uses $u: text runs after random runs were not compressed"
done
check_back tank/hist "$T/text"
check_back tank/mix1 "$T/mix1"
check_back tank/mix8 "$T/mix8"

echo "== every volume reads back exactly"
for v in lz zs off; do check_back tank/$v "$T/text"; done
check_back tank/zs19 "$T/text4"
for v in rnd zrnd; do check_back tank/$v "$T/rand"; done

echo "== changing compression affects new writes only, old data still reads"
berth vol set compression=off tank/lz || fail "set compression=off"
head -c $((16 * M)) "$T/text" >"$T/text16"
put tank/lz "$T/text16"
pool_sync tank 2
r=$(vol_prop tank/lz compressratio)
echo "tank/lz after rewriting 16 of 64 MiB uncompressed: ratio $r (was $r_lz)"
fcmp "$r" '<' "$r_lz" || fail "rewriting with compression=off did not lower the ratio ($r vs $r_lz)"
fcmp "$r" '>' 1.2 || fail "the 48 MiB still lz4-compressed no longer count: ratio $r"
check_back tank/lz "$T/text"

echo "== after a restart the ratios and data are unchanged"
stop_berthd
start_berthd
r2=$(vol_prop tank/zs compressratio)
fcmp "$r2" == "$r_zs" || fail "tank/zs ratio $r_zs became $r2 over a restart"
check_back tank/zs19 "$T/text4"
check_back tank/zrnd "$T/rand"

berth pool check tank || fail "pool check"
berthd_alive
stop_berthd
echo PASS
