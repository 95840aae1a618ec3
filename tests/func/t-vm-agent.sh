#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The QEMU guest agent (qemu-ga in the test guest, `agent: 1`, the default):
#  - `berth vm agent ID ping` answers once qemu-ga runs; info gives its version;
#  - exec returns the command's stdout, stderr and exit status (a failing
#    command makes `berth vm agent` exit 1 naming the status);
#  - fsfreeze-status answers;
#  - `berth vm shutdown` goes through the agent (method "agent", not forced,
#    last_exit.reason "shutdown (agent)", the guest's own poweroff on the
#    console), well before its timeout;
#  - the agent of a stopped VM is refused with a clear message.
. "$(dirname "$0")/functions.sh"
requires_vm

ID=102
start_berthd
mkpool tank 256M
mapfile -t boot < <(guest_boot_opts wait-agent berth.agent=1)
berth vm create $ID --name agent --memory 256 --bios seabios "${boot[@]}" || fail "vm create"
berth vm config $ID | grep -q "^agent: 1" || fail "agent is not enabled by default"

berth vm start $ID || fail "vm start"
console_capture $ID "$T/con"
wait_console 120 "$T/con" "BERTH-GUEST: agent started"
wait_until 60 berth vm agent $ID ping || {
  berth vm agent $ID ping; vm_log $ID | tail -20; fail "the agent does not answer ping"
}

echo "== ping, info"
out=$(berth vm agent $ID ping) || fail "agent ping"
echo "  $out"
[[ "$out" == *answered* ]] || fail "agent ping printed '$out'"
out=$(berth vm agent $ID info) || fail "agent info"
echo "  $out"
[[ "$out" =~ [0-9]+\.[0-9]+ ]] || fail "agent info shows no version: $out"
berth --json vm agent $ID info | grep -q '"version"' || fail "agent info --json has no version"

echo "== exec"
out=$(berth vm agent $ID exec -- /bin/sh -c 'echo hello from $(uname -s); echo oops >&2' 2>"$T/err") ||
  { cat "$T/err"; fail "agent exec"; }
echo "  stdout: $out  stderr: $(cat "$T/err")"
[ "$out" = "hello from Linux" ] || fail "exec stdout is '$out'"
grep -q oops "$T/err" || fail "exec stderr not shown"
rc=0; out=$(berth vm agent $ID exec -- /bin/sh -c 'exit 3' 2>&1) || rc=$?
echo "  exit 3 -> rc $rc: $out"
[ $rc = 1 ] && [[ "$out" == *"status 3"* ]] || fail "a failing guest command: rc $rc, '$out'"
berth --json vm agent $ID exec -- /bin/cat /proc/version >"$T/exec.json" || fail "exec --json"
grep -q '"exitcode": 0' "$T/exec.json" || { cat "$T/exec.json"; fail "exec --json lacks exitcode 0"; }
grep -q 'Linux version' "$T/exec.json" || fail "exec --json lacks the output"

echo "== fsfreeze-status"
out=$(berth vm agent $ID fsfreeze-status) || fail "agent fsfreeze-status"
echo "  $out"
[ "$out" = thawed ] || fail "fsfreeze-status is '$out', want thawed"

echo "== shutdown through the agent"
t0=$(date +%s)
berth vm shutdown --timeout 60 $ID >"$T/sd" || fail "vm shutdown"
t1=$(date +%s)
cat "$T/sd"
grep -q "(agent)" "$T/sd" || fail "shutdown did not go through the agent: $(cat "$T/sd")"
[ $((t1 - t0)) -lt 50 ] || fail "shutdown took $((t1 - t0)) s (timeout 60): not the agent?"
wait_vm_status 30 $ID stopped
reason=$(vm_field $ID reason)
echo "  last exit: $reason"
[[ "$reason" == *agent* ]] || fail "last_exit.reason '$reason' does not say agent"
[[ "$reason" == *forced* ]] && fail "the agent shutdown was forced: $reason"
vm_log $ID | grep -qi agent || { vm_log $ID | tail; fail "the VM log does not mention the agent"; }

echo "== agent of a stopped VM"
expect_fail berth vm agent $ID ping
out=$(berth vm agent $ID ping 2>&1)
[[ "$out" == *running* ]] || fail "the refusal does not say the VM is not running: $out"
berthd_alive
stop_berthd
echo PASS
