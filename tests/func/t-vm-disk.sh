#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A VM's disk is a berth volume (SeaBIOS + direct kernel boot, TCG):
#  - `berth vm create --scsi0 tank:0.0625` allocates tank/vm-ID-disk-0 with
#    discard=on; the host fills its first 16 MiB with random data over NBD;
#  - boot 1: the guest writes a 4 MiB pattern to /dev/sda (virtio-scsi),
#    blkdiscard's 4-8 MiB and powers off (QEMU exits, status stopped);
#  - the host reads the volume over NBD: the exact pattern at 0-4 MiB, a hole
#    at 4-8 MiB (nbdinfo --map), the random data untouched at 8-16 MiB; the
#    volume's `used` and the pool's `allocated` dropped (berth pool sync);
#  - boot 2: the guest reads the pattern back (same sha256);
#  - destroy --purge removes the VM and its volume.
. "$(dirname "$0")/functions.sh"
requires nbdinfo nbdcopy
requires_nbdpy
requires_vm

M=$((1 << 20))
ID=100
VOL=tank/vm-$ID-disk-0
start_berthd
mkpool tank 1G

echo "== create"
mapfile -t boot < <(guest_boot_opts write-pattern)
berth vm create $ID --name disk-test --memory 256 --bios seabios --scsi0 tank:0.0625 \
  "${boot[@]}" || fail "vm create"
berth vm config $ID >"$T/conf" || fail "vm config"
cat "$T/conf"
grep -qE "^scsi0: tank:vm-$ID-disk-0,.*discard=on" "$T/conf" || fail "scsi0 is not tank:vm-$ID-disk-0 with discard=on"
grep -q "^bios: seabios" "$T/conf" || fail "bios is not seabios"
! grep -q "^efidisk0" "$T/conf" || fail "a SeaBIOS VM got an efidisk0"
[ "$(vol_prop $VOL volsize)" -eq $((64 * M)) ] || fail "volsize of $VOL is $(vol_prop $VOL volsize), want 64 MiB"
berth vm list | grep -E "^$ID +disk-test +stopped" || { berth vm list; fail "vm list does not show VM $ID stopped"; }

U=$(berth vol uri $VOL) || fail "vol uri"
head -c $((16 * M)) /dev/urandom >"$T/rand"
nbdcopy --flush "$T/rand" "$U" || fail "prefill over NBD"
pool_sync tank 2
u0=$(vol_prop $VOL used) a0=$(pool_field tank allocated)
echo "before boot: volume used $u0, pool allocated $a0"

echo "== boot 1: write the pattern, discard 4-8 MiB"
t0=$(date +%s.%N)
berth vm start $ID || fail "vm start"
console_capture $ID "$T/con1"
wait_vm_status 180 $ID stopped
echo "  boot 1 took $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
wait_console 5 "$T/con1" "BERTH-GUEST: done rc=0"
sed 's/^/  | /' "$T/con1" | grep -a BERTH-GUEST
grep -aq "BERTH-GUEST: discarded 4M-8M" "$T/con1" || fail "the guest did not discard 4-8 MiB (no discard on its disk?)"
reason=$(vm_field $ID reason)
echo "  last exit: $reason"
[[ "$reason" == *"guest shutdown"* ]] || fail "last_exit.reason is '$reason', want 'guest shutdown'"

echo "== host: pattern, hole, untouched data"
yes 'BERTH-PATTERN-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLM' | head -c $((4 * M)) >"$T/expect"
nbdcopy "$U" "$T/back" || fail "read the volume back over NBD"
cmp -n $((4 * M)) "$T/expect" "$T/back" || fail "the pattern on $VOL differs from what the guest wrote"
cmp -n $((4 * M)) -i $((4 * M)):0 "$T/back" /dev/zero || fail "the discarded 4-8 MiB does not read as zeros"
cmp -n $((8 * M)) -i $((8 * M)):$((8 * M)) "$T/back" "$T/rand" || fail "8-16 MiB (not touched by the guest) changed"
want=$(sha256sum "$T/expect" | cut -c1-64)
grep -aq "wrote pattern sha256 $want" "$T/con1" || fail "the guest's sha256 of the pattern is not the host's ($want)"
nbdinfo --map "$U" >"$T/map" || fail "nbdinfo --map"
cat "$T/map"
nbdpy - "$T/map" <<'PY' || fail "the discarded 4-8 MiB is not a hole"
import sys
ext = [tuple(int(x) for x in l.split()[:3]) for l in open(sys.argv[1])]
def covered(s, e, want):
    return sum(max(0, min(o + l, e) - max(o, s)) for o, l, t in ext if bool(t & 1) == want)
M = 1 << 20
assert covered(4 * M, 8 * M, True) == 4 * M, "4-8 MiB: only %d bytes are holes" % covered(4 * M, 8 * M, True)
assert covered(8 * M, 16 * M, False) == 8 * M, "8-16 MiB should still be data"
print("4-8 MiB is a hole, 8-16 MiB is data")
PY

echo "== space went back"
for i in $(seq 20); do
  pool_sync tank
  u1=$(vol_prop $VOL used) a1=$(pool_field tank allocated)
  [ "$u1" -le $((u0 - 3 * M)) ] && [ "$a1" -le $((a0 - 3 * M)) ] && break
  sleep 0.2
done
echo "after boot: volume used $u0 -> $u1, pool allocated $a0 -> $a1"
[ "$u1" -le $((u0 - 3 * M)) ] || fail "volume used did not drop by the discarded 4 MiB: $u0 -> $u1"
[ "$a1" -le $((a0 - 3 * M)) ] || fail "pool allocated did not drop by the discarded 4 MiB: $a0 -> $a1"

echo "== boot 2: read the pattern back"
mapfile -t boot < <(guest_boot_opts read-pattern)
berth vm set $ID --append "${boot[-1]}" || fail "vm set --append"
berth vm config $ID | grep -q "berth.script=read-pattern" || fail "vm set did not change append"
berth vm start $ID || fail "vm start (2)"
console_capture $ID "$T/con2"
wait_vm_status 180 $ID stopped
wait_console 5 "$T/con2" "BERTH-GUEST: done rc=0"
grep -a "read pattern" "$T/con2"
grep -aq "read pattern sha256 $want" "$T/con2" || fail "boot 2 does not read the pattern back"

echo "== destroy --purge"
berth vm destroy --purge $ID || fail "vm destroy --purge"
expect_fail berth vm status $ID
expect_fail berth vol get used $VOL
berth vm list | grep -q "^$ID " && fail "VM $ID still listed"
berthd_alive
berth pool check tank || fail "pool check"
stop_berthd
echo PASS
