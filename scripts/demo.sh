#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make demo`: start berthd with its state under ./demo/, create a file-backed
# pool `demo` and a thin volume `demo/disk0`, put an ext4 filesystem full of
# compressible files on it through a real NBD client (nbdfuse + loop mount, or
# mkfs.ext4 -d + qemu-img convert when FUSE or loop devices are not usable),
# show the pool and the volume, and leave berthd running with instructions.
# Re-running it stops the previous demo berthd and starts over from scratch.
#
#   BERTH_BUILD=DIR   build directory (default ./build)
#   DEMO_DIR=DIR      where the demo lives (default ./demo)
#   DEMO_POOL_SIZE, DEMO_VOL_SIZE   (default 4G, 2G)
#   DEMO_SRC=DIR      files to copy into the filesystem (default /usr/share/doc)
#   DEMO_NO_FUSE=1    skip nbdfuse + loop mount, use mkfs.ext4 -d + qemu-img convert
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
demo=${DEMO_DIR:-$top/demo}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
state=$demo/state
run=$demo/run
pool_size=${DEMO_POOL_SIZE:-4G}
vol_size=${DEMO_VOL_SIZE:-2G}
src=${DEMO_SRC:-/usr/share/doc}
berthd_bin=$build/src/daemon/berthd
berth_bin=$build/src/cli/berth
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export BERTH_SOCKET=$run/berthd.sock

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
berth() { "$berth_bin" "$@"; }

[ -x "$berthd_bin" ] && [ -x "$berth_bin" ] || die "no berthd/berth in $build (run 'make' first)"

fuse_mnt=$demo/fuse
fs_mnt=$demo/mnt
cleanup_mounts() {
  mountpoint -q "$fs_mnt" 2>/dev/null && { umount "$fs_mnt" 2>/dev/null || umount -l "$fs_mnt"; }
  if mountpoint -q "$fuse_mnt" 2>/dev/null || grep -q " $fuse_mnt fuse" /proc/mounts 2>/dev/null; then
    fusermount3 -u "$fuse_mnt" 2>/dev/null || fusermount -u "$fuse_mnt" 2>/dev/null || umount -l "$fuse_mnt"
  fi
  return 0
}
trap cleanup_mounts EXIT

# ---- stop a previous demo berthd (only ours: its pid file and command line) ----
stop_previous() {
  local pid
  [ -f "$demo/berthd.pid" ] || return 0
  pid=$(cat "$demo/berthd.pid")
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
     tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "berthd.*--state-dir $state"; then
    say "stopping the previous demo berthd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "berthd $pid did not stop in 10 s; killing it"; kill -KILL "$pid"; sleep 0.2; }
  fi
  rm -f "$demo/berthd.pid"
}
cleanup_mounts
stop_previous
rm -rf "$state" "$run" "$demo/demo.img" "$demo/fs.img" "$fuse_mnt" "$fs_mnt"
mkdir -p "$state" "$run"

# ---- berthd ----
say "starting berthd (state $state, run dir $run)"
setsid "$berthd_bin" --state-dir "$state" --run-dir "$run" >"$demo/berthd.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$demo/berthd.pid"
for _ in $(seq 200); do
  [ -S "$BERTH_SOCKET" ] && curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$demo/berthd.log"; die "berthd exited at start (log above)"; }
  sleep 0.05
done
curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null || die "berthd did not answer in 10 s (log: $demo/berthd.log)"

# ---- pool and volume ----
say "berth pool create -o size=$pool_size demo $demo/demo.img"
berth pool create -o size="$pool_size" demo "$demo/demo.img" || die "pool create failed"
say "berth vol create -V $vol_size demo/disk0     (thin, 16K blocks, lz4)"
berth vol create -V "$vol_size" demo/disk0 || die "vol create failed"
uri=$(berth vol uri demo/disk0) || die "vol uri failed"
echo "    $uri"

# ---- a filesystem through a real client ----
via=
if [ "${DEMO_NO_FUSE:-0}" != 1 ] && [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v nbdfuse >/dev/null && command -v fusermount3 >/dev/null; then
  say "nbdfuse $fuse_mnt $uri   (the volume as a file), mkfs.ext4, mount -o loop, copy $src"
  mkdir -p "$fuse_mnt" "$fs_mnt"
  nbdfuse -P "$demo/nbdfuse.pid" "$fuse_mnt" "$uri" >"$demo/nbdfuse.log" 2>&1 &
  fpid=$!
  for _ in $(seq 100); do [ -s "$demo/nbdfuse.pid" ] && break; kill -0 $fpid 2>/dev/null || break; sleep 0.1; done
  if [ -s "$demo/nbdfuse.pid" ] && [ -e "$fuse_mnt/nbd" ] &&
     mkfs.ext4 -q -F -L demo -E nodiscard "$fuse_mnt/nbd" &&
     mount -o loop,discard "$fuse_mnt/nbd" "$fs_mnt"; then
    cp -a "$src" "$fs_mnt/" 2>/dev/null || cp -r "$src" "$fs_mnt/" || die "copying $src failed"
    sync -f "$fs_mnt"
    files=$(find "$fs_mnt" -type f | wc -l)
    used=$(df -h --output=used "$fs_mnt" | tail -1 | tr -d ' ')
    umount "$fs_mnt" || die "umount $fs_mnt failed"
    fusermount3 -u "$fuse_mnt" || die "fusermount3 -u $fuse_mnt failed"
    wait $fpid 2>/dev/null
    via="nbdfuse + mkfs.ext4 + loop mount"
  else
    echo "    nbdfuse or the loop mount did not work here (see $demo/nbdfuse.log); using the fallback"
    cleanup_mounts
    wait $fpid 2>/dev/null
  fi
  rm -f "$demo/nbdfuse.pid"
fi
if [ -z "$via" ]; then
  say "mkfs.ext4 -d $src into a sparse image, then qemu-img convert it into the volume"
  truncate -s "$vol_size" "$demo/fs.img"
  mkfs.ext4 -q -F -L demo -d "$src" "$demo/fs.img" || die "mkfs.ext4 -d failed"
  files=$(find "$src" -type f 2>/dev/null | wc -l)
  used=$(du -sh "$src" 2>/dev/null | cut -f1)
  qemu-img convert -n -f raw -O raw "$demo/fs.img" "$uri" || die "qemu-img convert into $uri failed"
  rm -f "$demo/fs.img"
  via="mkfs.ext4 -d + qemu-img convert"
fi
echo "    $files files ($used) written via $via"
berth pool sync demo >/dev/null 2>&1 || true

# ---- show it ----
say "berth pool status demo"
berth pool status demo
echo
say "berth vol list"
berth vol list
echo
say "berth vol get all demo/disk0"
berth vol get all demo/disk0
echo
fsz=$(stat -c %s "$demo/demo.img") fal=$(( $(stat -c %b "$demo/demo.img") * $(stat -c %B "$demo/demo.img") ))
printf 'The pool file %s is %s bytes long and takes %s MiB on the host disk (thin + compressed).\n' \
  "$demo/demo.img" "$fsz" "$((fal >> 20))"

sock=$run/nbd.sock
cat <<EOF

berthd is running (pid $pid); its log is $demo/berthd.log.
  export BERTH_SOCKET=$BERTH_SOCKET    # so that 'berth' finds this berthd
  export PATH=$build/src/cli:\$PATH

Look at the disk:
  nbdinfo "$uri"
  nbdinfo --map "$uri"          # data vs holes
  qemu-img info "$uri"

Mount the filesystem (as root):
  nbdfuse $fuse_mnt "$uri" &
  mkdir -p /mnt/demo && mount -o loop $fuse_mnt/nbd /mnt/demo
  ...  umount /mnt/demo && fusermount3 -u $fuse_mnt

Copy a disk image in or out:
  qemu-img convert -n -O raw disk.qcow2 "$uri"
  qemu-img convert -O qcow2 "$uri" backup.qcow2

Attach it to a VM:
  qemu-system-x86_64 -m 1G \\
    -blockdev driver=nbd,server.type=unix,server.path=$sock,export=demo/disk0,discard=unmap,node-name=disk0 \\
    -device virtio-blk-pci,drive=disk0 ...

More:
  berth vol create -V 10G demo/disk1;  berth pool status demo;  berth pool trim demo

Stop it:
  kill $pid        # or run 'make demo' again: it stops this berthd and starts over
EOF
