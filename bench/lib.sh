# shellcheck shell=bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What the benchmark scripts share; each sources it right after its header
# comment (`. "$(dirname "$0")/lib.sh"`), before it parses its options:
#  - strict mode, the repository as the working directory, $top, $build
#    (BERTH_BUILD, default ./build), $dir (BENCH_DIR, default
#    /var/tmp/berth-bench), $cmdline (how the script was called), PATH with
#    the sbin directories;
#  - bench_help (the header comment), bench_bad_option, bench_skip (exit 77),
#    bench_die (exit 1), bench_needs (tools, fio's nbd engine, the build,
#    root), log, berth (the build's CLI), drop_caches, bench_cold_ok,
#    bench_fill (a sequential prefill with fio), ratio;
#  - bench_workdir: $W, removed at exit; the exit cleanup (EXIT trap) stops
#    berthd, detaches the loop devices, removes the cgroups and $W, after
#    running what the script registered with bench_at_exit;
#  - bench_start_berthd / bench_stop_berthd: a private berthd on $W (optionally
#    inside a cgroup from its first instruction, so all its threads);
#  - modelled independent devices: bench_blkio_group (a cgroup v1 blkio group),
#    bench_loop (a file on a loop device with direct I/O), bench_throttle (a
#    per-device limit of the group), bench_group_stat (per-device counters),
#    bench_loops_free;
#  - bench_report: print the result table ($W/table.md) and keep a copy in
#    $dir/results.
set -u
set -o pipefail
cmdline="bench/$(basename "$0") $*"
bench_name=$(basename "$0" .sh)
cd "$(dirname "$0")/.." || exit 1
top=$PWD
build=${BERTH_BUILD:-$top/build}
dir=${BENCH_DIR:-/var/tmp/berth-bench}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# the script's header comment, from its second line to the line sourcing this
bench_help() { sed -n '2,/^\. .*lib\.sh"$/p' "$0" | sed '$d; /^# shellcheck /d; s/^# \{0,1\}//'; exit 0; }
bench_bad_option() { echo "$bench_name: unknown option $1 (see --help)" >&2; exit 2; }
bench_skip() { echo "$bench_name: skipped: $*" >&2; exit 77; }
bench_die() { echo "$bench_name: $*" >&2; exit 1; }
log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }
berth() { "$build/src/cli/berth" "$@"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# can the page cache be dropped (cold-cache figures)?
bench_cold_ok() { [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; }
# bench_fill URI SIZE [FIO_OPTION...]: write the first SIZE of an NBD export
# once, 1 MiB sequential writes at iodepth 16 (fio's incompressible
# buffers); fio's output is shown only if it fails
bench_fill() {
  local uri=$1 fsize=$2
  shift 2
  fio --name=prefill --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=16 --size="$fsize" "$@" \
    >"$W/prefill.out" 2>&1 || { cat "$W/prefill.out" >&2; bench_die "fio prefill of $uri failed"; }
}
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.2fx' % (a / b) if b else 'n/a')" "$1" "$2"; }

# bench_needs WHAT...: skip (exit 77) unless each is there: a command name,
# `fio-nbd` (fio with its nbd engine), `root`, `loop` (loop devices can be
# made here: containers often have none); `build` fails (exit 1) without
# the build's berthd and berth.
bench_needs() {
  local c l probe
  for c in "$@"; do
    case $c in
      fio-nbd)
        command -v fio >/dev/null || bench_skip "fio is not installed"
        fio --enghelp 2>/dev/null | grep -qw nbd || bench_skip "this fio has no nbd engine" ;;
      build)
        [ -x "$build/src/daemon/berthd" ] && [ -x "$build/src/cli/berth" ] ||
          bench_die "no berthd/berth in $build (make)" ;;
      root) [ "$(id -u)" = 0 ] || bench_skip "needs root" ;;
      loop)
        command -v losetup >/dev/null && command -v lsblk >/dev/null || bench_skip "no losetup/lsblk"
        [ -e /dev/loop-control ] || bench_skip "no loop devices (/dev/loop-control)"
        probe=$(mktemp "${TMPDIR:-/tmp}/berth-bench-probe.XXXXXX") || exit 1
        truncate -s 16M "$probe"
        l=$(losetup -f --show --direct-io=on "$probe" 2>/dev/null) || { rm -f "$probe"; bench_skip "cannot create loop devices"; }
        losetup -d "$l"
        rm -f "$probe" ;;
      *) command -v "$c" >/dev/null || bench_skip "$c is not installed" ;;
    esac
  done
}

# ---- the work directory and the exit cleanup ----
W=
berthd_pid=
loops=()
cgroups=()
bench_exit_cmds=()
# bench_at_exit CMD: run CMD (eval) at exit, before berthd is stopped; the
# last registered runs first
bench_at_exit() { bench_exit_cmds+=("$*"); }
bench_cleanup() {
  local i l c
  for ((i = ${#bench_exit_cmds[@]} - 1; i >= 0; i--)); do eval "${bench_exit_cmds[i]}"; done
  bench_stop_berthd
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  for c in "${cgroups[@]}"; do rmdir "$c" 2>/dev/null; done
  [ -n "$W" ] && rm -rf "$W"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_workdir() {
  mkdir -p "$dir" || exit 1
  W=$(mktemp -d "$dir/$bench_name.XXXXXX") || exit 1
}

# ---- berthd ----
# bench_start_berthd [--cgroup DIR] [BERTHD_OPTION...]: berthd with its state
# and run directories in $W (BERTH_SOCKET exported, log $W/berthd.log),
# inside cgroup DIR from its start if given; returns once it answers.
bench_start_berthd() {
  local cg=
  if [ "${1:-}" = --cgroup ]; then
    cg=$2
    shift 2
  fi
  export BERTH_SOCKET=$W/run/berthd.sock
  ( [ -n "$cg" ] && echo $BASHPID >"$cg/cgroup.procs"
    exec "$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" "$@" ) >"$W/berthd.log" 2>&1 &
  berthd_pid=$!
  for _ in $(seq 200); do
    curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && break
    kill -0 "$berthd_pid" 2>/dev/null || { cat "$W/berthd.log" >&2; berthd_pid=; bench_die "berthd died"; }
    sleep 0.05
  done
  curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 ||
    bench_die "berthd did not answer in 10 s"
  [ -z "$cg" ] || grep -q "^$berthd_pid\$" "$cg/cgroup.procs" || bench_die "berthd is not in $cg"
}
bench_stop_berthd() {
  [ -n "$berthd_pid" ] || return 0
  kill "$berthd_pid" 2>/dev/null
  wait "$berthd_pid" 2>/dev/null
  berthd_pid=
}

# ---- modelled independent devices: loop devices, cgroup v1 blkio limits ----
blkio_cg=
# bench_blkio_group: a cgroup v1 blkio group for berthd ($blkio_cg), removed
# at exit; skips without blkio throttling
bench_blkio_group() {
  local root=/sys/fs/cgroup/blkio
  [ -f $root/blkio.throttle.write_bps_device ] || bench_skip "no cgroup v1 blkio throttling"
  blkio_cg=$root/berth-$bench_name-$$
  mkdir "$blkio_cg" || { blkio_cg=; bench_skip "cannot create a blkio cgroup"; }
  cgroups+=("$blkio_cg")
}
mm() { lsblk -dno MAJ:MIN "$1" | tr -d ' '; }
# bench_loop FILE BYTES: a sparse FILE of BYTES on a loop device with direct
# I/O; sets LOOP and adds it to loops (detached at exit).  Not in $(...): the
# subshell would lose it.
bench_loop() {
  truncate -s "$2" "$1" || exit 1
  LOOP=$(losetup -f --show --direct-io=on "$1") || bench_die "cannot put $1 on a loop device"
  loops+=("$LOOP")
}
# bench_throttle DEV KIND LIMIT: limit berthd's group on DEV, KIND one of
# read_iops, write_iops, read_bps, write_bps
bench_throttle() {
  echo "$(mm "$1") $3" >"$blkio_cg/blkio.throttle.$2_device" || bench_die "cannot limit $2 of $1"
}
# bench_group_stat FILE OP: the group's counter OP (Read, Write) in
# blkio.throttle.FILE (io_serviced, io_service_bytes) for each loop device
bench_group_stat() {
  local l out=
  for l in "${loops[@]}"; do
    out+="$(awk -v d="$(mm "$l")" -v op="$2" '$1 == d && $2 == op {print $3}' "$blkio_cg/blkio.throttle.$1") "
  done
  echo "$out"
}
# bench_loops_free: lift the group's limits on the loop devices, detach them
bench_loops_free() {
  local l k
  for l in "${loops[@]}"; do
    if [ -n "$blkio_cg" ]; then
      for k in read_iops write_iops read_bps write_bps; do
        echo "$(mm "$l") 0" >"$blkio_cg/blkio.throttle.${k}_device" 2>/dev/null
      done
    fi
    losetup -d "$l"
  done
  loops=()
}

# bench_report: print how the script was called and $W/table.md, and keep a
# copy in $dir/results/NAME-DATE.md
bench_report() {
  echo
  echo "command: $cmdline"
  echo
  cat "$W/table.md"
  mkdir -p "$dir/results"
  cp "$W/table.md" "$dir/results/$bench_name-$(date +%Y%m%d-%H%M%S).md"
}
