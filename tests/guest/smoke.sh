#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boots the test guest (tests/guest/build-guest.sh) under TCG with SeaBIOS
# and direct kernel boot, serial console on stdio:
#   1. userspace marker within 30 s;
#   2. a virtio-scsi disk backed by a plain raw file: the guest writes a
#      4 MiB pattern to /dev/sda, discards 4-8 MiB, powers off; the host
#      checks the pattern byte for byte and that the discarded range reads
#      as zeros;
#   3. a second boot reads the pattern back from inside the guest.
# (Always TCG: /dev/kvm here may be a paravirtual KVM that hangs real kernels.)
# Exit 0 pass, 77 skip, 1 fail.
set -u
here=$(cd "$(dirname "$0")" && pwd)
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing"; exit 77; }
guest=$("$here/build-guest.sh") || { rc=$?; [ $rc = 77 ] && exit 77; echo "FAIL: build-guest"; exit 1; }
work=$(mktemp -d /tmp/berth-smoke-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0

boot() { # name timeout append [extra qemu args...]
  local name=$1 t=$2 append=$3; shift 3
  local start=$(date +%s.%N)
  timeout -k 5 "$t" qemu-system-x86_64 -nodefaults -no-user-config -machine pc,accel=tcg -cpu max \
    -m 256 -smp 1 -nographic -serial stdio -monitor none -no-reboot \
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
    -append "console=ttyS0 panic=-1 quiet $append" "$@" >"$work/$name.log" 2>&1
  local rc=$?
  echo "  [$name: qemu exit $rc after $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5)s]"
  return $rc
}
check() { # name grep-pattern what
  if grep -q "$2" "$work/$1.log"; then echo "PASS $3"; else
    echo "FAIL $3"; sed 's/^/    | /' "$work/$1.log" | tail -20; fail=1; fi
}

# 1. userspace within 30 s
boot hello 30 "berth.script=hello"
check hello "BERTH-GUEST: hello from userspace" "userspace marker within 30 s (TCG, SeaBIOS, direct kernel boot)"
check hello "BERTH-GUEST: done rc=0" "guest powered off by itself"

# 2. write a pattern to a virtio-scsi disk (raw file), discard a range
truncate -s 64M "$work/disk.raw"
head -c 16M /dev/urandom | dd of="$work/disk.raw" conv=notrunc 2>/dev/null  # non-zero before
disk=(-blockdev "driver=file,node-name=f0,filename=$work/disk.raw,discard=unmap"
      -blockdev "driver=raw,node-name=drive-scsi0,file=f0,discard=unmap"
      -device virtio-scsi-pci,id=virtioscsi0 -device "scsi-hd,bus=virtioscsi0.0,drive=drive-scsi0,id=scsi0")
boot write 90 "berth.script=write-pattern" "${disk[@]}"
check write "BERTH-GUEST: discarded 4M-8M" "guest wrote the pattern and discarded 4-8 MiB"
yes 'BERTH-PATTERN-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLM' | head -c 4194304 >"$work/expect"
if cmp -s -n 4194304 "$work/expect" "$work/disk.raw"; then echo "PASS host sees the exact 4 MiB pattern"; else
  echo "FAIL host pattern mismatch"; fail=1; fi
if cmp -s -n 4194304 -i 4194304:0 "$work/disk.raw" /dev/zero; then echo "PASS discarded range reads as zeros"; else
  echo "FAIL discarded range is not zero"; fail=1; fi
want=$(sha256sum "$work/expect" | cut -c1-64)
check write "wrote pattern sha256 $want" "guest's own checksum matches the host's"

# 3. read it back in a second boot
boot read 90 "berth.script=read-pattern" "${disk[@]}"
check read "read pattern sha256 $want" "second boot reads the pattern back"

exit $fail
