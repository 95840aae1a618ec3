#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install the Debian packages berth needs to build, test, benchmark and run
# its demo.  Only missing packages are installed, so a second run is quick.
set -euo pipefail

pkgs=(
  # build
  gcc make meson ninja-build pkg-config clang libclang-rt-14-dev
  liblz4-dev libzstd-dev libxxhash-dev libssl-dev libjansson-dev
  libmicrohttpd-dev libcurl4-openssl-dev libargon2-dev
  # real clients and peers used by tests, the demo and benchmarks
  qemu-utils qemu-system-x86 qemu-system-common nbdkit libnbd-bin python3-libnbd
  fio e2fsprogs fuse3 util-linux curl procps psmisc kmod
  busybox-static socat iputils-ping iproute2 swtpm swtpm-tools ovmf
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "berth: missing Debian packages: ${missing[*]}" >&2
  echo "berth: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "berth: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
