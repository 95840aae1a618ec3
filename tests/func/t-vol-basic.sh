#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Volumes: create (thin by default, --thick, -b 4K..128K, bad sizes and names
# rejected), list, get all / get one, set compression / refreservation and
# read-only properties refused, resize (grow; shrink only with --force, and
# shrunk data never comes back), destroy (frees space), uri.
. "$(dirname "$0")/functions.sh"
requires qemu-io nbdinfo nbdcopy
requires_nbdpy

start_berthd
mkpool tank 1G
M=$((1 << 20))

echo "== create: thin by default"
berth vol create -V 256M tank/v || fail "vol create tank/v"
[ "$(vol_prop tank/v volsize)" -eq $((256 * M)) ] || fail "volsize $(vol_prop tank/v volsize)"
[ "$(vol_prop tank/v volblocksize)" -eq 16384 ] || fail "default volblocksize $(vol_prop tank/v volblocksize), want 16K"
[ "$(vol_prop tank/v refreservation)" -eq 0 ] || fail "a thin volume has refreservation $(vol_prop tank/v refreservation)"
[ "$(vol_prop tank/v used)" -lt $M ] || fail "an empty thin volume uses $(vol_prop tank/v used) bytes"
[ "$(vol_prop tank/v logicalused)" -eq 0 ] || fail "an empty volume has logicalused $(vol_prop tank/v logicalused)"
[ "$(vol_prop tank/v compression)" = lz4 ] || fail "compression $(vol_prop tank/v compression), want lz4"
[ "$(vol_prop tank/v checksum)" = xxh3 ] || fail "checksum $(vol_prop tank/v checksum), want xxh3"
[ "$(nbdinfo --size "$(uri tank/v)")" -eq $((256 * M)) ] || fail "NBD size of tank/v"

echo "== volblocksize 4K..128K"
for b in 4K 8K 32K 64K 128K; do
  berth vol create -b $b -V 32M tank/b$b >/dev/null || fail "vol create -b $b"
  want=$(( ${b%K} * 1024 ))
  [ "$(vol_prop tank/b$b volblocksize)" -eq $want ] || fail "volblocksize of tank/b$b is $(vol_prop tank/b$b volblocksize)"
  qemu-io -f raw "$(uri tank/b$b)" -c 'write -P 0x42 12288 40000' -c 'read -P 0x42 12288 40000' -c 'read -P 0 0 12288' \
    -c 'write -P 0x43 31M 1M' -c 'read -P 0x43 31M 1M' >/dev/null || fail "I/O on volblocksize $b"
done

echo "== bad input"
expect_fail berth vol create -b 2K -V 32M tank/bad
expect_fail berth vol create -b 256K -V 32M tank/bad
expect_fail berth vol create -b 12K -V 32M tank/bad
expect_fail berth vol create -V 0 tank/bad
expect_fail berth vol create -V abc tank/bad
expect_fail berth vol create -V -5M tank/bad
expect_fail berth vol create -V 12Q tank/bad
expect_fail berth vol create tank/bad                    # no -V
expect_fail berth vol create -V 32M tank/v               # exists
expect_fail berth vol create -V 32M nopool/x
expect_fail berth vol create -V 32M "tank/a b"
expect_fail berth vol create -V 32M tank/
expect_fail berth vol create -V 32M tank
expect_fail berth vol create -V 32M tank/x/y
expect_fail berth vol create -o compression=gzip -V 32M tank/bad
expect_fail berth vol create -o nosuchprop=1 -V 32M tank/bad
berth vol list | grep -q 'tank/bad' && fail "a refused create left tank/bad behind"
out=$(berth vol create -V 12Q tank/bad 2>&1); echo "$out" | grep -q 12Q || fail "error for -V 12Q does not name the bad size: $out"

echo "== --thick reserves volsize"
free0=$(pool_field tank free)
berth vol create --thick -V 128M tank/thick >/dev/null || fail "vol create --thick"
[ "$(vol_prop tank/thick refreservation)" -ge $((128 * M)) ] || fail "thick refreservation $(vol_prop tank/thick refreservation)"
[ "$(vol_prop tank/thick used)" -ge $((128 * M)) ] || fail "thick used $(vol_prop tank/thick used)"

echo "== list"
berth vol list >"$T/list" || fail "vol list"
cat "$T/list"
for v in tank/v tank/b4K tank/b128K tank/thick; do grep -q "$v" "$T/list" || fail "vol list lacks $v"; done
berth vol list tank | grep -q tank/v || fail "vol list tank lacks tank/v"
expect_fail berth vol list nopool

echo "== get all / get one"
berth vol get all tank/v >"$T/all" || fail "vol get all"
cat "$T/all"
for p in volsize volblocksize compression checksum used referenced logicalused compressratio refreservation; do
  grep -qw "$p" "$T/all" || fail "vol get all lacks $p"
done
berth vol get volsize tank/v >"$T/one" || fail "vol get volsize"
grep -qE '256M|268435456' "$T/one" || fail "vol get volsize: $(cat "$T/one")"
expect_fail berth vol get nosuchprop tank/v
expect_fail berth vol get volsize tank/nosuchvol

echo "== set"
berth vol set compression=zstd tank/v || fail "set compression=zstd"
[[ "$(vol_prop tank/v compression)" == zstd* ]] || fail "compression after set: $(vol_prop tank/v compression)"
berth vol set compression=zstd-9 tank/v || fail "set compression=zstd-9"
[ "$(vol_prop tank/v compression)" = zstd-9 ] || fail "compression after set zstd-9: $(vol_prop tank/v compression)"
berth vol set compression=off tank/v || fail "set compression=off"
[ "$(vol_prop tank/v compression)" = off ] || fail "compression after set off: $(vol_prop tank/v compression)"
berth vol set compression=lz4 tank/v || fail "set compression=lz4"
berth vol set checksum=sha256 tank/v || fail "set checksum=sha256"
[ "$(vol_prop tank/v checksum)" = sha256 ] || fail "checksum after set: $(vol_prop tank/v checksum)"
berth vol set refreservation=64M tank/v || fail "set refreservation=64M"
[ "$(vol_prop tank/v refreservation)" -eq $((64 * M)) ] || fail "refreservation $(vol_prop tank/v refreservation)"
[ "$(vol_prop tank/v used)" -ge $((64 * M)) ] || fail "used $(vol_prop tank/v used) below the refreservation"
berth vol set refreservation=none tank/v || fail "set refreservation=none"
[ "$(vol_prop tank/v refreservation)" -eq 0 ] || fail "refreservation after none: $(vol_prop tank/v refreservation)"
for bad in compression=gzip checksum=md5 refreservation=lots used=5 volblocksize=4K logicalused=0 nosuchprop=1; do
  out=$(berth vol set "$bad" tank/v 2>&1) && fail "vol set $bad was accepted"
  echo "  refused $bad: $out"
  echo "$out" | grep -q "${bad%%=*}" || echo "$out" | grep -q "${bad#*=}" || fail "error for $bad names neither property nor value: $out"
done
expect_fail berth vol set compression=lz4 tank/nosuchvol

echo "== readonly=on refuses writes, keeps reads"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x44 0 64k' >/dev/null || fail "write before readonly"
berth vol set readonly=on tank/v || fail "set readonly=on"
[ "$(vol_prop tank/v readonly)" = on ] || fail "readonly is $(vol_prop tank/v readonly) after set on"
nbdinfo --json "$(uri tank/v)" | grep -q '"is_read_only": true' || fail "NBD does not advertise a read-only volume as read-only"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x45 0 64k' >/dev/null 2>&1 && fail "a write to a readonly volume succeeded"
PATH=/usr/bin:/bin nbdsh -u "$(uri tank/v)" -c '
try:
    h.pwrite(bytes(4096), 0)
    raise SystemExit("write accepted on a read-only export")
except nbd.Error as e:
    print("  write refused:", e)
h.set_strict_mode(0)    # send the write anyway: the server itself must refuse it
try:
    h.pwrite(bytes(4096), 0)
    raise SystemExit("the server accepted a write on a read-only export")
except nbd.Error as e:
    print("  server refused:", e)
assert h.pread(65536, 0) == b"\x44" * 65536' || fail "readonly volume: reads or refusal wrong"
berth vol set readonly=off tank/v || fail "set readonly=off"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x45 0 64k' -c 'read -P 0x45 0 64k' >/dev/null || fail "write after readonly=off"

echo "== resize: grow, shrink only with --force, shrunk data does not come back"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x11 0 1M' -c 'write -P 0x22 200M 1M' -c flush >/dev/null || fail "write before resize"
berth vol resize tank/v 512M || fail "resize grow"
[ "$(vol_prop tank/v volsize)" -eq $((512 * M)) ] || fail "volsize after grow $(vol_prop tank/v volsize)"
[ "$(nbdinfo --size "$(uri tank/v)")" -eq $((512 * M)) ] || fail "NBD size after grow"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x33 400M 1M' -c 'read -P 0x33 400M 1M' -c 'read -P 0x22 200M 1M' -c 'read -P 0 256M 1M' >/dev/null ||
  fail "I/O after grow"
expect_fail berth vol resize tank/v 128M
[ "$(vol_prop tank/v volsize)" -eq $((512 * M)) ] || fail "refused shrink changed volsize"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x22 200M 1M' -c 'read -P 0x33 400M 1M' >/dev/null || fail "refused shrink lost data"
berth vol resize --force tank/v 128M || fail "resize --force shrink"
[ "$(vol_prop tank/v volsize)" -eq $((128 * M)) ] || fail "volsize after shrink $(vol_prop tank/v volsize)"
[ "$(nbdinfo --size "$(uri tank/v)")" -eq $((128 * M)) ] || fail "NBD size after shrink"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x11 0 1M' >/dev/null || fail "data below the new end lost by shrink"
qemu-io -f raw "$(uri tank/v)" -c 'read 200M 4k' 2>&1 | grep -q 'read 4096/4096' && fail "read past the shrunk end succeeded"
berth vol resize tank/v 512M || fail "grow back"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0 128M 384M' >/dev/null || fail "data past a shrink came back after growing again"
echo "== shrink under a connected client: its I/O past the new end is refused, nothing comes back"
berth vol create -V 64M tank/live >/dev/null || fail "vol create tank/live"
nbdpy - "$(uri tank/live)" "$BERTH_BIN" <<'EOF' || fail "shrinking under a connected client misbehaved"
import nbd, subprocess, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.set_strict_mode(0)   # the client keeps the old size
h.pwrite(b"\x11" * 65536, 48 << 20); h.flush()
r = subprocess.run([sys.argv[2], "vol", "resize", "--force", "tank/live", "32M"], capture_output=True, text=True)
assert r.returncode == 0, "resize --force with a client connected: %s" % r.stderr
for what, fn in (("write past the new end", lambda: h.pwrite(b"\x22" * 4096, 40 << 20)),
                 ("read past the new end", lambda: h.pread(4096, 48 << 20))):
    try:
        fn()
        raise SystemExit("the old connection could still " + what)
    except nbd.Error as e:
        print("  refused %s: %s" % (what, e))
assert h.pread(4096, 0) == bytes(4096)
h.shutdown()
r = subprocess.run([sys.argv[2], "vol", "resize", "tank/live", "64M"], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.get_size() == 64 << 20
assert h.pread(65536, 48 << 20) == bytes(65536), "data past a shrink came back"
assert h.pread(4096, 40 << 20) == bytes(4096), "a refused write landed"
EOF
expect_fail berth vol resize tank/v 0
expect_fail berth vol resize tank/v lots
expect_fail berth vol resize tank/nosuchvol 1G

echo "== destroy frees space"
berth vol create -V 64M tank/d >/dev/null || fail "vol create tank/d"
head -c $((48 * M)) /dev/urandom >"$T/rand"
nbdcopy --flush "$T/rand" "$(uri tank/d)" || fail "nbdcopy into tank/d"
pool_sync tank 2
a1=$(pool_field tank allocated)
[ "$(vol_prop tank/d used)" -ge $((47 * M)) ] || fail "48 MiB of random data uses only $(vol_prop tank/d used)"
berth vol destroy tank/d || fail "vol destroy tank/d"
berth vol list | grep -q 'tank/d\b' && fail "tank/d still listed"
expect_fail berth vol get used tank/d
nbdinfo "$(uri tank/d)" >/dev/null 2>&1 && fail "tank/d still served over NBD"
ok=0
for i in $(seq 10); do
  pool_sync tank
  a2=$(pool_field tank allocated)
  [ $((a1 - a2)) -ge $((44 * M)) ] && { ok=1; break; }
done
[ $ok = 1 ] || fail "destroying 48 MiB freed only $((a1 - a2)) bytes (allocated $a1 -> $a2)"
expect_fail berth vol destroy tank/d
berth vol destroy tank/thick || fail "destroy thick"
[ "$(pool_field tank free)" -ge $((free0 - 16 * M)) ] || fail "free space not back after destroying thick: $(pool_field tank free) < $free0"

echo "== uri"
u=$(berth vol uri tank/v) || fail "vol uri"
echo "$u"
[ "$u" = "$(uri tank/v)" ] || [ "$u" = "nbd+unix:///tank/v?socket=$(readlink -f "$NBD_SOCK")" ] || fail "vol uri printed '$u', want $(uri tank/v)"
[ "$(nbdinfo --size "$u")" -eq $((512 * M)) ] || fail "the uri does not reach tank/v"
expect_fail berth vol uri tank/nosuchvol

berthd_alive
stop_berthd
echo PASS
