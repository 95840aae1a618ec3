#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The VM part of `make demo` (scripts/demo.sh calls it at its end, with its
# berthd still running): create a VM whose disk is a thin berth volume, boot
# a small guest (Debian cloud kernel + busybox initramfs, built from Debian
# packages by tests/guest/build-guest.sh) under berthd's supervision, show its
# serial console while it formats its disk (mke2fs), writes 64 MiB and
# deletes half of it again (discard gives that back to the pool), shut it down
# through the guest agent, and show the pool usage it caused.  Re-running it
# replaces the VM of the previous run.
#
#   BERTH_BUILD=DIR   build directory (default ./build)
#   DEMO_DIR=DIR      the demo's directory (default ./demo); berthd's socket is
#                     DIR/run/berthd.sock unless BERTH_SOCKET is set
#   DEMO_POOL=NAME    the pool (default demo)
#   DEMO_VMID=N       the VM's id (default 100)
#   DEMO_VM_BIOS=B    seabios (default: fastest under TCG) or ovmf (berth's
#                     default: UEFI, an efidisk volume; ~10 s more under TCG)
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
demo=${DEMO_DIR:-$top/demo}
export BERTH_SOCKET=${BERTH_SOCKET:-$demo/run/berthd.sock}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
pool=${DEMO_POOL:-demo}
vmid=${DEMO_VMID:-100}
bios=${DEMO_VM_BIOS:-seabios}
berth_bin=$build/src/cli/berth

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo-vm: %s\n' "$*" >&2; exit 1; }
berth() { "$berth_bin" "$@"; }
# the console as text: no CRs, no firmware escape sequences, no blank lines
console_text() { tr -d '\r' | sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g' | grep -av '^\s*$' | sed 's/^/  console| /'; }
show() { printf '\033[2m$ berth %s\033[0m\n' "$*"; berth "$@"; }

[ -x "$berth_bin" ] || die "no berth in $build (run 'make' first)"
berth pool status "$pool" >/dev/null || die "no pool '$pool' on the berthd at $BERTH_SOCKET (run scripts/demo.sh first)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (scripts/install-deps.sh installs it)"

say "building the small guest (Debian cloud kernel + busybox initramfs; cached after the first time)"
guest=$("$top/tests/guest/build-guest.sh") || die "tests/guest/build-guest.sh failed"
echo "guest: $guest/vmlinuz, $guest/initrd.img ($(du -h "$guest/initrd.img" | cut -f1))"

# a VM left by a previous run: stop it, destroy it with its volumes
if berth vm status "$vmid" >/dev/null 2>&1; then
  say "removing VM $vmid of a previous run"
  [ "$(berth -H vm list | awk -v id="$vmid" '$1 == id {print $3}')" = stopped ] || berth vm stop "$vmid"
  berth vm destroy --purge "$vmid" || die "cannot destroy the previous VM $vmid"
fi

say "pool '$pool' before the VM"
berth pool sync "$pool" >/dev/null
show pool list "$pool"

say "creating VM $vmid: 1 GiB thin disk on the pool, $bios, direct kernel boot of the guest"
show vm create "$vmid" --name demo-vm --memory 256 --bios "$bios" --scsi0 "$pool:1" \
  --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" \
  --append "console=ttyS0 quiet panic=-1 berth.script=demo-disk berth.agent=1 berth.stay=1" ||
  die "vm create failed"
show vm config "$vmid"
show vol list "$pool"

say "starting it and attaching to its serial console"
show vm start "$vmid" || die "vm start failed"
console_log=$(mktemp /tmp/berth-demo-console.XXXXXX)
trap 'rm -f "$console_log"; [ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null' EXIT
berth vm console "$vmid" </dev/null >"$console_log" 2>&1 &
cpid=$!
# show the console as it comes, until the guest says it is done
shown=0 ok=0
for _ in $(seq 1800); do
  total=$(wc -l <"$console_log")
  if [ "$total" -gt "$shown" ]; then
    sed -n "$((shown + 1)),${total}p" "$console_log" | console_text
    shown=$total
  fi
  grep -aq "BERTH-GUEST: demo disk written" "$console_log" && { ok=1; break; }
  grep -aq "BERTH-GUEST: done rc=[1-9]" "$console_log" && break
  kill -0 "$cpid" 2>/dev/null || break
  sleep 0.1
done
[ $ok = 1 ] || { show vm status "$vmid"; die "the guest did not finish writing its disk"; }

say "shutting it down (through the guest agent, stopped by force after 60 s)"
for _ in $(seq 100); do berth vm agent "$vmid" ping >/dev/null 2>&1 && break; sleep 0.2; done
show vm shutdown --timeout 60 "$vmid" || die "vm shutdown failed"
wait "$cpid" 2>/dev/null
cpid=
total=$(wc -l <"$console_log")
[ "$total" -gt "$shown" ] && sed -n "$((shown + 1)),${total}p" "$console_log" | console_text
show vm status "$vmid"

say "the pool usage it caused: the guest wrote 64 MiB and deleted 32 MiB of it"
berth pool sync "$pool" >/dev/null
berth pool sync "$pool" >/dev/null
show vol list "$pool"
show vol get used,logicalused,volsize "$pool/vm-$vmid-disk-0"
show pool status "$pool"
cat <<EOF

The VM stays defined (its disk holds the ext2 filesystem the guest made):
  BERTH_SOCKET=$BERTH_SOCKET $berth_bin vm list
  ... vm start $vmid; ... vm console $vmid   (Ctrl-] detaches)
  ... vm destroy --purge $vmid
EOF
