#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds berth's test guest from Debian packages, at test/demo time, into a
# cache directory (default /var/cache/berth-test-guest, or $BERTH_GUEST_DIR):
#
#   vmlinuz      the Debian cloud kernel (linux-image-cloud-amd64's versioned
#                dependency, downloaded with apt-get download)
#   initrd.img   a gzip'd newc cpio: busybox-static, the kernel modules a
#                virtio guest needs (decompressed if shipped as .ko.xz/.ko.zst),
#                qemu-ga with the shared libraries ldd finds for it, and /init
#
# /init loads the modules, mounts proc/sys/dev, prints "BERTH-GUEST: up",
# starts qemu-ga in the background if the kernel command line has
# berth.agent=1, runs /scripts/NAME for berth.script=NAME (scripts baked in
# below: hello, write-pattern, read-pattern, tpm, wait-agent, ticker,
# net-ping, efi-tpm, demo-disk; one can also be read from the first 4 KiB of
# /dev/vdb with berth.script=vdb), prints "BERTH-GUEST: done rc=N" and powers off.
#
#   tests/guest/build-guest.sh [--force]     prints the cache dir on success
set -euo pipefail
dir=${BERTH_GUEST_DIR:-/var/cache/berth-test-guest}
force=${1:-}
self_sum=$(sha256sum "$0" | cut -c1-16)
if [ "$force" != --force ] && [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$self_sum" ] &&
   [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
  echo "$dir"; exit 0
fi
for t in apt-get apt-cache dpkg-deb busybox gzip ldd; do
  command -v $t >/dev/null || { echo "build-guest: $t is missing" >&2; exit 77; }
done
mkdir -p "$dir"
# tests run in parallel: one builds, the others wait and take its result
exec 9>"$dir/.lock"
flock 9
if [ "$force" != --force ] && [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$self_sum" ] &&
   [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
  echo "$dir"; exit 0
fi
work=$(mktemp -d /tmp/berth-guest-XXXXXX)
chmod 755 "$work"   # apt-get download runs as _apt
trap 'rm -rf "$work"' EXIT
cd "$work"

# linux-image-cloud-amd64 is a metapackage: its dependency is the real kernel
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$kpkg" ]; then   # no package lists yet on a fresh machine
  apt-get update -qq >/dev/null 2>&1 || true
  kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$kpkg" ] || { echo "build-guest: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
apt-get download -q "$kpkg" qemu-guest-agent >apt.log 2>&1 || { cat apt.log >&2; exit 1; }
dpkg-deb -x "$(ls ${kpkg}_*.deb)" k
dpkg-deb -x "$(ls qemu-guest-agent_*.deb)" q
kver=$(ls k/lib/modules)
cp k/boot/vmlinuz-"$kver" vmlinuz

root=$work/root
mkdir -p $root/{bin,sbin,dev,proc,sys,tmp,etc,scripts,lib/modules,lib64,usr/lib,run,var/run}
cp "$(command -v busybox)" $root/bin/busybox
file_static() { ! ldd "$1" >/dev/null 2>&1; }
file_static $root/bin/busybox || { echo "build-guest: busybox is not static (install busybox-static)" >&2; exit 1; }

# modules: the wanted ones plus what they depend on (read from each .ko's
# .modinfo "depends="; the package has no modules.dep), dependencies first
want="virtio_pci virtio_scsi sd_mod virtio_blk virtio_net virtio_console virtio_balloon tpm_tis tpm_crb"
: >$root/etc/modules-order
declare -A done_mod=()
add_mod() {
  local m=$1 f
  [ -n "${done_mod[$m]:-}" ] && return 0
  done_mod[$m]=1
  f=$(find k/lib/modules/$kver -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -1)
  if [ -z "$f" ]; then
    m2=${m//_/[-_]}
    if grep -q "/$m2.ko" k/lib/modules/$kver/modules.builtin; then return 0; fi  # built in
    echo "build-guest: module $m neither a module nor built in" >&2; exit 1
  fi
  case "$f" in
    *.xz) xz -dc "$f" >$root/lib/modules/$m.ko ;;
    *.zst) zstd -qdc "$f" >$root/lib/modules/$m.ko ;;
    *) cp "$f" $root/lib/modules/$m.ko ;;
  esac
  local deps
  deps=$(tr '\0' '\n' <$root/lib/modules/$m.ko | grep -a '^depends=' | head -1 | cut -d= -f2 | tr ',' ' ')
  for d in $deps; do add_mod "$d"; done
  echo "$m" >>$root/etc/modules-order
}
for m in $want; do add_mod "$m"; done
# efivarfs is loaded by the efi-tpm script only (insmod fails without UEFI)
mkdir -p $root/lib/modules/extra
f=$(find k/lib/modules/$kver -name "efivarfs.ko*" | head -1)
case "$f" in
  "") ;;  # built in
  *.xz) xz -dc "$f" >$root/lib/modules/extra/efivarfs.ko ;;
  *.zst) zstd -qdc "$f" >$root/lib/modules/extra/efivarfs.ko ;;
  *) cp "$f" $root/lib/modules/extra/efivarfs.ko ;;
esac

# qemu-ga and its libraries (the host's, same Debian release)
cp q/usr/sbin/qemu-ga $root/sbin/qemu-ga
ldd q/usr/sbin/qemu-ga | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp -L /lib64/ld-linux-x86-64.so.2 $root/lib64/
# qemu-ga's guest-shutdown runs /sbin/shutdown -P +0 ...
printf '#!/bin/sh\nsync\nexec poweroff -f\n' >$root/sbin/shutdown
chmod +x $root/sbin/shutdown

cat >$root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
for m in $(cat /etc/modules-order); do insmod /lib/modules/$m.ko 2>/tmp/insmod.err || echo "BERTH-GUEST: insmod $m: $(cat /tmp/insmod.err)"; done
arg() { for w in $(cat /proc/cmdline); do case $w in "$1"=*) echo "${w#*=}";; esac; done; }
sleep 1   # let the disks settle (scsi scan is asynchronous)
echo "BERTH-GUEST: up $(uname -r)"
if [ "$(arg berth.agent)" = 1 ]; then
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
    qemu-ga -m virtio-serial -p /dev/$(basename $p) -t /run >/tmp/qga.log 2>&1 &
    echo "BERTH-GUEST: agent started on /dev/$(basename $p)"
  done
fi
s=$(arg berth.script)
rc=0
if [ "$s" = vdb ]; then
  head -c 4096 /dev/vdb | tr -d '\000' >/tmp/script.sh; sh /tmp/script.sh; rc=$?
elif [ -n "$s" ] && [ -f /scripts/$s ]; then
  sh /scripts/$s; rc=$?
elif [ -n "$s" ]; then
  echo "BERTH-GUEST: no script $s"; rc=127
fi
echo "BERTH-GUEST: done rc=$rc"
[ "$(arg berth.stay)" = 1 ] && while :; do sleep 3600; done
sync
poweroff -f
INIT
chmod +x $root/init

cat >$root/scripts/hello <<'S'
echo "BERTH-GUEST: hello from userspace"
S
# 4 MiB pattern at the start of the first SCSI disk, then discard 4-8 MiB
cat >$root/scripts/write-pattern <<'S'
dev=/dev/sda
[ -b $dev ] || { echo "BERTH-GUEST: no $dev"; exit 1; }
yes 'BERTH-PATTERN-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLM' | head -c 4194304 | dd of=$dev bs=1M conv=fsync 2>/dev/null
echo "BERTH-GUEST: wrote pattern sha256 $(head -c 4194304 $dev | sha256sum | cut -c1-64)"
if [ "$(cat /sys/block/sda/queue/discard_max_bytes)" != 0 ]; then
  blkdiscard -o 4194304 -l 4194304 $dev && echo "BERTH-GUEST: discarded 4M-8M"
else
  echo "BERTH-GUEST: disk has no discard"
fi
sync
S
cat >$root/scripts/read-pattern <<'S'
echo "BERTH-GUEST: read pattern sha256 $(head -c 4194304 /dev/sda | sha256sum | cut -c1-64)"
S
cat >$root/scripts/tpm <<'S'
ls -l /dev/tpm* 2>&1
echo "BERTH-GUEST: tpm version $(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)"
S
cat >$root/scripts/wait-agent <<'S'
echo "BERTH-GUEST: waiting for the host to shut me down through the agent"
while :; do sleep 1; done
S
# the scripts below read their parameters from the kernel command line
cat >$root/etc/arg.sh <<'S'
arg() { for w in $(cat /proc/cmdline); do case $w in "$1"=*) echo "${w#*=}";; esac; done; }
S
# prints a numbered tick every second (lifecycle tests: pause, reset, reattach)
cat >$root/scripts/ticker <<'S'
i=0
while :; do echo "BERTH-GUEST: tick $i"; i=$((i + 1)); sleep 1; done
S
# berth.ip=ADDR/LEN on eth0, then ping berth.ping=PEER (up to 30 tries)
cat >$root/scripts/net-ping <<'S'
. /etc/arg.sh
ip=$(arg berth.ip) peer=$(arg berth.ping)
ip link set lo up; ip link set eth0 up && ip addr add "$ip" dev eth0 || exit 1
echo "BERTH-GUEST: eth0 $(cat /sys/class/net/eth0/address) $ip"
i=0
while [ $i -lt 30 ]; do
  if ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then
    echo "BERTH-GUEST: ping $peer ok"; ping -c 2 "$peer"; exit 0
  fi
  i=$((i + 1))
done
echo "BERTH-GUEST: ping $peer failed"; exit 1
S
# UEFI + TPM: report both; keep a UEFI variable across boots (written when
# berth.efivar=VALUE is given and the variable does not exist yet)
cat >$root/scripts/efi-tpm <<'S'
. /etc/arg.sh
echo "BERTH-GUEST: efi $([ -d /sys/firmware/efi ] && echo yes || echo no)"
ls -l /dev/tpm* 2>&1
echo "BERTH-GUEST: tpm version $(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)"
[ -f /lib/modules/extra/efivarfs.ko ] && insmod /lib/modules/extra/efivarfs.ko
mount -t efivarfs efivarfs /sys/firmware/efi/efivars || { echo "BERTH-GUEST: no efivarfs"; exit 1; }
v=/sys/firmware/efi/efivars/BerthTest-5b0f3e62-8f0e-4c55-9a4c-1f2e3d4c5b6a
if [ -f $v ]; then
  echo "BERTH-GUEST: efivar $(tail -c +5 $v)"
elif [ -n "$(arg berth.efivar)" ]; then
  printf '\007\000\000\000%s' "$(arg berth.efivar)" >/tmp/efivar
  dd if=/tmp/efivar of=$v bs=4096 2>/dev/null && echo "BERTH-GUEST: efivar set $(arg berth.efivar)"
else
  echo "BERTH-GUEST: efivar none"
fi
S
# the demo: ext2 on /dev/sda, 32 MiB kept, 32 MiB written, deleted and trimmed
cat >$root/scripts/demo-disk <<'S'
dev=/dev/sda
[ -b $dev ] || { echo "BERTH-GUEST: no $dev"; exit 1; }
echo "guest: $dev is $(($(cat /sys/block/sda/size) / 2048)) MiB, discard up to $(cat /sys/block/sda/queue/discard_max_bytes) bytes"
echo "guest: mke2fs $dev"
mke2fs -F -b 4096 -L berth-demo $dev 2>&1 | sed "s/^/guest: /" || exit 1
mkdir -p /mnt && mount -o discard $dev /mnt || exit 1
echo "guest: writing 32 MiB of random data to /mnt/keep.bin"
dd if=/dev/urandom of=/mnt/keep.bin bs=1M count=32 2>/dev/null
echo "guest: $(sha256sum /mnt/keep.bin)"
echo "guest: writing 32 MiB more to /mnt/scratch.bin, then deleting it (discard frees it)"
dd if=/dev/urandom of=/mnt/scratch.bin bs=1M count=32 conv=fsync 2>/dev/null
rm /mnt/scratch.bin
sync
fstrim -v /mnt | sed "s/^/guest: /"
df -h /mnt | sed 's/^/guest: /'
umount /mnt
echo "BERTH-GUEST: demo disk written"
S

(cd $root && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >initrd.img
cp vmlinuz "$dir/vmlinuz.new" && mv "$dir/vmlinuz.new" "$dir/vmlinuz"
cp initrd.img "$dir/initrd.img.new" && mv "$dir/initrd.img.new" "$dir/initrd.img"
echo "$kpkg" >"$dir/kernel-package"
echo "$self_sum" >"$dir/stamp"
echo "$dir"
