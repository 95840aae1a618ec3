#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad VM input is refused with a message naming what is wrong, and berthd
# keeps serving:
#  - CLI usage errors (exit 2): bad VMID, missing values and arguments,
#    unknown verbs and agent commands, bad --timeout;
#  - config errors from berthd (exit 1, the key named): memory, cores, unknown
#    key, bad disk spec, missing pool or volume, the same volume twice, bad and
#    duplicate MACs, bad bios, out-of-range VMID, taken VMID; a failed create
#    leaves no volume behind; vm set is checked the same way and changes
#    nothing on error;
#  - raw API: invalid JSON, wrong types;
#  - state errors: start twice, destroy while running, agent of a stopped VM;
#  - a VM whose QEMU cannot start (its kernel is gone) reports QEMU's own
#    error, stays startable once fixed, and berthd stays healthy.
. "$(dirname "$0")/functions.sh"
requires curl
requires_vm

# bad RC NEEDLE... -- CMD...: exit status RC and every NEEDLE in the message
bad() {
  local want=$1 needles=() out rc; shift
  while [ "$1" != -- ]; do needles+=("$1"); shift; done
  shift
  out=$("$@" 2>&1); rc=$?
  [ $rc -eq "$want" ] || fail "$*: exit $rc, want $want ($out)"
  local n
  for n in "${needles[@]}"; do
    [[ "${out,,}" == *"${n,,}"* ]] || fail "$*: the message does not name '$n': $out"
  done
  local cmd="${*:2}"
  echo "  ok ($rc): ${cmd:0:72} -> ${out%%$'\n'*}"
}

start_berthd
mkpool tank 512M
berth vol create -V 16M tank/shared >/dev/null || fail "vol create"
mapfile -t boot < <(guest_boot_opts hello)
base=(--memory 256 --bios seabios)

echo "== help"
berth vm --help | grep -q "shutdown \[--timeout S\] VMID" || fail "berth vm --help"
berth help vm | grep -q "console VMID" || fail "berth help vm"
berth vm create --help | grep -q -- "--KEY VALUE" || fail "berth vm create --help"
berth net --help | grep -q "create \[--cidr ADDR/LEN\] BRIDGE" || fail "berth net --help"
berth help net | grep -q "destroy BRIDGE" || fail "berth help net"
berth --help | grep -q "vm   create" || fail "berth --help lacks vm"

echo "== CLI usage errors (exit 2)"
bad 2 "VMID" "abc" -- berth vm create abc
bad 2 "VMID" "12x" -- berth vm start 12x
bad 2 "needs a VMID" -- berth vm create --memory 256
bad 2 "--memory" -- berth vm create 300 --memory
bad 2 "unknown vm command 'explode'" -- berth vm explode 300
bad 2 "exactly one VMID" -- berth vm start
bad 2 "exactly one VMID" -- berth vm stop 300 301
bad 2 "--timeout" "soon" -- berth vm shutdown --timeout soon 300
bad 2 "unknown agent command 'dance'" -- berth vm agent 300 dance
bad 2 "exec" -- berth vm agent 300 exec
bad 2 "--tpm" -- berth vm create 300 --tpm=yes
bad 2 "unknown option '-x'" -- berth vm create 300 -x
bad 2 "--memory" "twice" -- berth vm create 300 --memory 256 --memory 512
bad 2 "--KEY VALUE" -- berth vm set 300
bad 2 "unknown option '--purgeall'" -- berth vm destroy --purgeall 300
bad 2 "unknown net command 'explode'" -- berth net explode
bad 2 "BRIDGE" -- berth net create
bad 2 "--cidr" -- berth net create br0 --cidr

echo "== config errors (exit 1, the key named)"
bad 1 "vmid" -- berth vm create 5 "${base[@]}"
bad 1 "vmid" -- berth vm create 9999999999 "${base[@]}"
bad 1 "memory" "8" -- berth vm create 300 --memory 8 --bios seabios
bad 1 "memory" "lots" -- berth vm create 300 --memory lots --bios seabios
bad 1 "cores" "0" -- berth vm create 300 "${base[@]}" --cores 0
bad 1 "cores" "many" -- berth vm create 300 "${base[@]}" --cores many
bad 1 "colour" -- berth vm create 300 "${base[@]}" --colour red
bad 1 "scsi0" -- berth vm create 300 "${base[@]}" --scsi0 tank
bad 1 "scsi0" -- berth vm create 300 "${base[@]}" --scsi0 tank:-1
bad 1 "scsi0" "dicard" -- berth vm create 300 "${base[@]}" --scsi0 tank:0.01,dicard=on
bad 1 "scsi0" "nopool" -- berth vm create 300 "${base[@]}" --scsi0 nopool:1
bad 1 "scsi0" "novol" -- berth vm create 300 "${base[@]}" --scsi0 tank:novol
bad 1 "scsi99" -- berth vm create 300 "${base[@]}" --scsi99 tank:shared
bad 1 "shared" -- berth vm create 300 "${base[@]}" --scsi0 tank:shared --scsi1 tank:shared
bad 1 "net0" "mac" -- berth vm create 300 "${base[@]}" --net0 virtio=ZZ:24:11:00:00:01,bridge=vmbr0
bad 1 "net1" "BC:24:11:00:00:01" -- berth vm create 300 "${base[@]}" \
  --net0 virtio=BC:24:11:00:00:01,bridge=vmbr0 --net1 virtio=BC:24:11:00:00:01,bridge=vmbr0
bad 1 "net0" "nic9000" -- berth vm create 300 "${base[@]}" --net0 nic9000,bridge=vmbr0
bad 1 "bios" "uefi" -- berth vm create 300 --memory 256 --bios uefi
bad 1 "machine" -- berth vm create 300 "${base[@]}" --machine vax
bad 1 "accel" -- berth vm create 300 "${base[@]}" --accel warp
bad 1 "kernel" -- berth vm create 300 "${base[@]}" --kernel relative/vmlinuz-that-does-not-exist

echo "== a failed create leaves nothing behind"
bad 1 "scsi1" "nopool" -- berth vm create 300 "${base[@]}" --scsi0 tank:0.01 --scsi1 nopool:1
berth vol list tank | grep -q "vm-300" && { berth vol list tank; fail "a failed create left a volume"; }
expect_fail berth vm status 300
[ ! -e "$STATE/vm/300.conf" ] || fail "a failed create left $STATE/vm/300.conf"

echo "== vm set: checked, nothing changed on error"
berth vm create 300 "${base[@]}" --scsi0 tank:0.01 "${boot[@]}" || fail "vm create 300"
berth vm config 300 >"$T/conf0"
bad 1 "memory" -- berth vm set 300 --memory 3
bad 1 "colour" -- berth vm set 300 --colour blue
bad 1 "scsi1" "novol" -- berth vm set 300 --scsi1 tank:novol
bad 1 "net0" -- berth vm set 300 --net0 virtio=01:02:03:04:05:06:07,bridge=vmbr0
berth vm config 300 >"$T/conf1"
diff "$T/conf0" "$T/conf1" || fail "a refused vm set changed the config"
bad 1 "exists" -- berth vm create 300 "${base[@]}"
bad 1 "301" -- berth vm start 301
bad 1 "301" -- berth vm set 301 --memory 512
bad 1 "301" -- berth vm destroy 301

echo "== raw API"
st=$(api_status POST /vms '{"vmid": 302, "options": ')
[ "$st" = 400 ] || fail "invalid JSON: HTTP $st"
st=$(api_status POST /vms '{"vmid": "302"}')
[ "$st" = 400 ] || fail "vmid as a string: HTTP $st"
out=$(curl -s -X POST --unix-socket "$BERTH_SOCKET" -H 'Content-Type: application/json' \
  --data-binary '{"vmid": 302, "options": {"memory": 256}}' http://b/api/v1/vms)
echo "  $out"
[[ "$out" == *memory* ]] || fail "a non-string option value: the error does not name memory: $out"
st=$(api_status POST /vms/300/agent '{"command": "format-disk"}')
[ "${st:0:1}" = 4 ] || fail "unknown agent command: HTTP $st"
st=$(api_status PATCH /vms/300/config '{"set": {"memory": "512"}, "delete": "name"}')
[ "$st" = 400 ] || fail "delete as a string: HTTP $st"

echo "== state errors"
bad 1 "running" -- berth vm agent 300 ping
bad 1 "not running" -- berth vm console 300 </dev/null
berth vm start 300 2>/dev/null || fail "vm start 300"
bad 1 "" -- berth vm start 300
bad 1 "running" -- berth vm destroy 300
bad 1 "used" -- berth vol destroy -f tank/vm-300-disk-0
berth vm stop 300 || fail "vm stop 300"

echo "== QEMU cannot start: its own error is reported"
cp "$GUEST/vmlinuz" "$T/vmlinuz"
berth vm create 303 "${base[@]}" --kernel "$T/vmlinuz" --initrd "$GUEST/initrd.img" \
  --append "console=ttyS0 quiet berth.script=hello" || fail "vm create 303"
rm "$T/vmlinuz"
rc=0; out=$(berth vm start 303 2>&1) || rc=$?
echo "  start without its kernel: rc $rc: $out"
[ $rc = 1 ] || fail "vm start with a missing kernel: exit $rc"
[[ "$out" == *"$T/vmlinuz"* ]] || fail "the error does not name the kernel path: $out"
[[ "$out" == *qemu* || "$out" == *QEMU* ]] || fail "the error is not QEMU's: $out"
st=$(vm_field 303 status)
[ "$st" = stopped ] || [ "$st" = crashed ] || fail "status after a failed start: $st"
berth vm status 303 | tee "$T/status"
grep -q "$T/vmlinuz" "$T/status" || fail "vm status does not show QEMU's error"
vm_log 303 | grep -q "$T/vmlinuz" || fail "the VM log lacks QEMU's error"
# the same through berthd's validation of QEMU options it cannot check itself
if berth vm set 303 --kernel "$GUEST/vmlinuz" --cpu no-such-cpu-model 2>/dev/null; then
  rc=0; out=$(berth vm start 303 2>&1) || rc=$?
  echo "  start with cpu no-such-cpu-model: rc $rc: $out"
  [ $rc = 1 ] && [[ "$out" == *no-such-cpu-model* ]] || fail "bad CPU model: rc $rc, $out"
  berth vm set 303 --delete cpu || fail "vm set --delete cpu"
else
  echo "  (berthd refuses cpu: no-such-cpu-model itself)"
  berth vm set 303 --kernel "$GUEST/vmlinuz" || fail "vm set --kernel (fix)"
fi
berth vm start 303 2>/dev/null || fail "the fixed VM does not start"
berth vm stop 303 || fail "vm stop 303"

berthd_alive
berth vm list || fail "vm list"
berth vm destroy --purge 300 || fail "destroy 300"
berth vm destroy 303 || fail "destroy 303"
stop_berthd
echo PASS
