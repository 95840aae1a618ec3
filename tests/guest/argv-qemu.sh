#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Feeds the argv that src/vm builds to the real QEMU: for a few configs
# (OVMF + secure boot + TPM + agent + virtio-scsi-single + every disk bus +
# tap NIC; SeaBIOS + lsi + direct kernel boot) it starts qemu-storage-daemon
# as a stand-in for berthd's NBD socket (exports named POOL/VOL), swtpm,
# then `qemu-system-x86_64 <argv> -S` under TCG, and checks over QMP that
# QEMU accepted every option and sits in the prelaunch/paused state.
#
#   tests/guest/argv-qemu.sh BUILDDIR
# Exit 0 pass, 77 skip (no qemu / not root), 1 fail.
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tool="$build/tests/unit/test-vm-argv"
for t in qemu-system-x86_64 qemu-storage-daemon swtpm python3; do
  command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
[ -x "$tool" ] || { echo "SKIP: $tool not built"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (tap devices)"; exit 77; }

work=$(mktemp -d /tmp/berth-argv-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

nbd=$work/nbd.sock
args=(--nbd-server addr.type=unix,addr.path=$nbd)
i=0
for vol in vm-100-efidisk0 vm-100-tpmstate0 vm-100-disk-0 vm-100-disk-1 vm-100-disk-2 vm-100-disk-3; do
  if [ $vol = vm-100-efidisk0 ]; then
    cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd $work/$vol.img
  else
    truncate -s 64M $work/$vol.img
  fi
  args+=(--blockdev driver=file,node-name=n$i,filename=$work/$vol.img
         --export type=nbd,id=e$i,node-name=n$i,name=tank/$vol,writable=on)
  i=$((i+1))
done
qemu-storage-daemon "${args[@]}" >$work/qsd.log 2>&1 &
pids+=($!)
truncate -s 1M $work/cd.iso
# a real kernel for the direct-boot case (QEMU parses its header at start)
guest=${BERTH_GUEST_DIR:-/var/cache/berth-test-guest}
kernel=$(ls $guest/vmlinuz /boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$kernel" ] || { echo "SKIP: no kernel image (run tests/guest/build-guest.sh)"; exit 77; }
echo "initrd" >$work/initrd

qmp() { # socket command...
  python3 - "$@" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.1)
f = s.makefile('rw')
json.loads(f.readline())
def cmd(c):
    f.write(json.dumps({"execute": c}) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "return" in m or "error" in m:
            return m
f_ = cmd("qmp_capabilities")
for c in sys.argv[2:]:
    print(json.dumps(cmd(c)))
PY
}

fail=0
run_case() { # name config-text
  local name=$1 cfg=$work/$1.conf run=$work/run-$1
  mkdir -p $run
  printf '%s\n' "$2" >$cfg
  if [[ "$2" == *tpmstate0* ]]; then
    mkdir -p $work/tpm-$name
    swtpm socket --tpm2 --tpmstate dir=$work/tpm-$name --ctrl type=unixio,path=$run/swtpm.sock \
      --flags startup-clear >$work/swtpm-$name.log 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S $run/swtpm.sock ] && break; sleep 0.1; done
  fi
  mapfile -t argv < <("$tool" --print $cfg $run $nbd) || true
  if [ ${#argv[@]} -eq 0 ]; then echo "FAIL $name: no argv"; fail=1; return; fi
  echo "== $name: ${argv[*]} -S"
  "${argv[@]}" -S >$work/qemu-$name.log 2>&1 &
  local qpid=$!
  pids+=($qpid)
  local st
  st=$(qmp $run/qmp.sock query-status quit 2>&1 | head -1)
  wait $qpid; local rc=$?
  if [[ "$st" == *'"status": "prelaunch"'* ]] && [ $rc = 0 ]; then
    echo "PASS $name: QEMU accepted the argv ($st)"
  else
    echo "FAIL $name: status=$st rc=$rc"; cat $work/qemu-$name.log; fail=1
  fi
}

for _ in $(seq 50); do [ -S $nbd ] && break; sleep 0.1; done

run_case uefi "name: uefi-full
machine: q35
bios: ovmf
efidisk0: tank:vm-100-efidisk0,efitype=4m,pre-enrolled-keys=1
tpmstate0: tank:vm-100-tpmstate0,version=v2.0
scsihw: virtio-scsi-single
scsi0: tank:vm-100-disk-0,discard=on,iothread=1,ssd=1
scsi1: tank:vm-100-disk-1,cache=writethrough
virtio0: tank:vm-100-disk-2,iothread=1,discard=on
sata0: tank:vm-100-disk-3,cache=unsafe
ide2: $work/cd.iso,media=cdrom
ide0: none,media=cdrom
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,queues=2
net1: e1000=BC:24:11:00:00:02,bridge=vmbr0
agent: 1
cores: 2
sockets: 2
memory: 1024
numa: 1
cpu: host,flags=+aes
serial0: socket
vga: virtio
boot: order=scsi0;ide2;net0
smbios1: uuid=2d3f8a3c-1b52-4c3e-9a3e-0123456789ab
vmgenid: 8b5a0c7e-3f44-4b2a-9e8a-6d1c2b3a4f50
accel: tcg"

run_case seabios "name: bios-lsi
scsi0: tank:vm-100-disk-0
scsi8: tank:vm-100-disk-1
ide1: tank:vm-100-disk-2
net0: rtl8139=BC:24:11:00:00:09,bridge=br0
ostype: win11
vga: std,memory=64
tpmstate0: tank:vm-100-tpmstate0
kernel: $kernel
initrd: $work/initrd
append: console=ttyS0"

run_case plain-uefi "machine: q35
bios: ovmf
efidisk0: tank:vm-100-efidisk0,efitype=4m
scsihw: virtio-scsi-pci
scsi0: tank:vm-100-disk-0,discard=on
scsi3: tank:vm-100-disk-1,media=cdrom
vga: qxl
balloon: 512
memory: 1024"

[ $fail = 0 ] && echo "all argv cases accepted by $(qemu-system-x86_64 --version | head -1)"
exit $fail
