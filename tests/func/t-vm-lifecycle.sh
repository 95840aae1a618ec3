#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM lifecycle under berthd's supervision (SeaBIOS, TCG, the guest prints a
# numbered tick every second on its serial console):
#  - start: running, a pid, qmp_status, the accelerator and why;
#  - suspend: paused, the ticks stop; resume: they go on;
#  - reset: same QEMU process, the guest boots again;
#  - stop: QEMU gone, last_exit "stopped";
#  - `berth vm console` on a pty: raw mode, Ctrl-C goes to the guest, Ctrl-]
#    detaches, and the terminal is restored;
#  - shutdown --timeout 5 of a guest that ignores ACPI: stopped by force
#    after the timeout;
#  - kill -9 of berthd while the VM runs: QEMU keeps running, a new berthd
#    reattaches and controls it (suspend, resume, stop);
#  - kill -9 of QEMU: noticed, shown by `berth vm status` (crashed, signal 9),
#    and the VM starts again.
. "$(dirname "$0")/functions.sh"
requires_vm

ID=103
start_berthd
mkpool tank 256M
mapfile -t boot < <(guest_boot_opts ticker)
berth vm create $ID --name life --memory 256 --bios seabios "${boot[@]}" || fail "vm create"
ticks() { grep -ac "BERTH-GUEST: tick" "$1"; }
pid_alive() { kill -0 "$1" 2>/dev/null; }

echo "== status of a stopped VM"
berth vm status $ID || fail "vm status (stopped)"
[ "$(vm_field $ID status)" = stopped ] || fail "a new VM is not stopped"
expect_fail berth vm suspend $ID
expect_fail berth vm reset $ID

echo "== start"
berth vm start $ID 2>"$T/start.err" || { cat "$T/start.err"; fail "vm start"; }
cat "$T/start.err"
console_capture $ID "$T/con"
wait_vm_status 10 $ID running
qpid=$(vm_field $ID pid)
pid_alive "$qpid" || fail "VM pid '$qpid' is not a live process"
berth vm status $ID | tee "$T/status"
grep -q "^accelerator: \(kvm\|tcg\)" "$T/status" || fail "vm status does not show the accelerator"
if [ "$(vm_field $ID accel)" = tcg ]; then
  grep -q "^accelerator: tcg (.*emulation" "$T/status" || fail "TCG is not said plainly in vm status"
  [ -n "$(vm_field $ID accel_reason)" ] || fail "no accel_reason under TCG"
  grep -qi "warning" "$T/start.err" || fail "vm start under TCG printed no warning"
fi
[ "$(vm_field $ID qmp_status)" = running ] || fail "qmp_status is $(vm_field $ID qmp_status)"
berth vm list | grep -E "^$ID +life +running" || { berth vm list; fail "vm list does not show VM $ID running"; }
expect_fail berth vm start $ID
wait_console 120 "$T/con" "BERTH-GUEST: tick 2"

echo "== suspend / resume"
berth vm suspend $ID || fail "vm suspend"
[ "$(vm_field $ID status)" = paused ] || fail "status after suspend: $(vm_field $ID status)"
[ "$(vm_field $ID qmp_status)" = paused ] || fail "qmp_status after suspend: $(vm_field $ID qmp_status)"
sleep 0.5; n1=$(ticks "$T/con"); sleep 3; n2=$(ticks "$T/con")
echo "  ticks while paused: $n1 -> $n2"
[ "$n2" -eq "$n1" ] || fail "the guest kept running while paused ($n1 -> $n2 ticks)"
berth vm resume $ID || fail "vm resume"
[ "$(vm_field $ID status)" = running ] || fail "status after resume: $(vm_field $ID status)"
wait_console 20 "$T/con" "BERTH-GUEST: tick $((n2 + 1))"

echo "== reset"
berth vm reset $ID || fail "vm reset"
wait_vm_status 10 $ID running
[ "$(vm_field $ID pid)" = "$qpid" ] || fail "reset changed the QEMU process"
for i in $(seq 1200); do [ "$(grep -ac 'BERTH-GUEST: up' "$T/con")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -ac 'BERTH-GUEST: up' "$T/con")" -ge 2 ] || fail "the guest did not boot again after reset"

echo "== stop"
berth vm stop $ID || fail "vm stop"
[ "$(vm_field $ID status)" = stopped ] || fail "status after stop: $(vm_field $ID status)"
wait_until 10 eval "! kill -0 $qpid" || fail "QEMU $qpid still runs after stop"
reason=$(vm_field $ID reason)
echo "  last exit: $reason"
[[ "$reason" == stopped* ]] || fail "last_exit.reason after stop is '$reason'"
berth vm stop $ID >/dev/null || fail "stop of a stopped VM should be a no-op"

echo "== interactive console on a terminal: raw mode, Ctrl-] detaches, terminal restored"
berth vm start $ID 2>/dev/null || fail "vm start (2)"
nbdpy - "$BERTH_BIN" $ID <<'PY' || fail "interactive console (see above)"
import os, pty, select, sys, time
berth, vmid = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", 'stty sane; "$0" vm console "$1"; echo "RC=$?"; stty -a', berth, vmid])
out = b""
def pump(want, secs):
    global out
    end = time.time() + secs
    while want not in out and time.time() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return want in out
got_tick = pump(b"BERTH-GUEST: tick", 120)
os.write(fd, b"\x03")  # Ctrl-C goes to the guest in raw mode, it must not end the console
time.sleep(0.5)
os.write(fd, b"\x1d")  # Ctrl-]
pump(b"RC=", 15)
pump(b"icanon", 5)
os.waitpid(pid, 0)
text = out.decode(errors="replace")
print("\n".join("  pty| " + l for l in text.replace("\r", "").splitlines() if "tick" in l or "RC=" in l or "etach" in l or "onnected" in l))
after = text.split("RC=", 1)[1] if "RC=" in text else ""
assert got_tick, "no guest output on the interactive console"
assert "Connected to the serial console" in text, "no banner"
assert "[detached]" in text, "Ctrl-] did not detach"
assert after.startswith("0"), "berth vm console did not exit 0 after the detach"
assert " icanon" in after and " echo" in after, "the terminal was left in raw mode: " + after[:300]
print("  interactive console ok; terminal restored")
PY

echo "== shutdown with a timeout, guest ignores ACPI"
t0=$(date +%s.%N)
berth vm shutdown --timeout 5 $ID >"$T/sd" || fail "vm shutdown --timeout 5"
dt=$(echo "$(date +%s.%N) - $t0" | bc)
cat "$T/sd"
echo "  shutdown took $dt s"
grep -q "stopped by force" "$T/sd" || fail "shutdown did not say it was forced"
fcmp "$dt" ">=" 4.5 || fail "shutdown forced after $dt s, before the 5 s timeout"
fcmp "$dt" "<" 30 || fail "shutdown --timeout 5 took $dt s"
[ "$(vm_field $ID status)" = stopped ] || fail "status after forced shutdown: $(vm_field $ID status)"
reason=$(vm_field $ID reason)
echo "  last exit: $reason"
[[ "$reason" == *forced* ]] || fail "last_exit.reason after a forced shutdown is '$reason'"

echo "== kill -9 berthd while the VM runs"
berth vm start $ID 2>/dev/null || fail "vm start (3)"
console_capture $ID "$T/con3"
wait_console 120 "$T/con3" "BERTH-GUEST: tick 1"
qpid=$(vm_field $ID pid)
kill_berthd
sleep 1
pid_alive "$qpid" || fail "QEMU died with berthd"
n1=$(ticks "$T/con3")
start_berthd
wait_vm_status 20 $ID running
[ "$(vm_field $ID pid)" = "$qpid" ] || fail "after the restart berthd shows pid $(vm_field $ID pid), QEMU is $qpid"
wait_until 20 eval '[ $(ticks "$T/con3") -gt $n1 ]' || fail "the guest stopped ticking across the berthd restart"
berth vm suspend $ID || fail "suspend after reattach"
[ "$(vm_field $ID status)" = paused ] || fail "status after suspend (reattached): $(vm_field $ID status)"
berth vm resume $ID || fail "resume after reattach"
[ "$(vm_field $ID status)" = running ] || fail "status after resume (reattached): $(vm_field $ID status)"
berth vm stop $ID || fail "stop after reattach"
wait_until 10 eval "! kill -0 $qpid" || fail "QEMU $qpid still runs after stop (reattached)"
[ "$(vm_field $ID status)" = stopped ] || fail "status after stop (reattached): $(vm_field $ID status)"

echo "== kill -9 QEMU"
berth vm start $ID 2>/dev/null || fail "vm start (4)"
qpid=$(vm_field $ID pid)
kill -KILL "$qpid"
wait_vm_status 20 $ID crashed
berth vm status $ID | tee "$T/status"
grep -q "signal 9" "$T/status" || fail "vm status does not show that QEMU was killed by signal 9"
[ "$(vm_field $ID signal)" = 9 ] || fail "last_exit.signal is $(vm_field $ID signal)"
berth vm list | grep -E "^$ID +life +crashed" || fail "vm list does not show the crash"
berth vm start $ID 2>/dev/null || fail "a crashed VM does not start again"
wait_vm_status 10 $ID running
berth vm stop $ID || fail "vm stop (end)"

berthd_alive
stop_berthd
echo PASS
