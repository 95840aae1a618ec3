#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM snapshots, rollback and clones (SeaBIOS + direct kernel boot, TCG, the
# guest driven through its agent):
#  - the guest makes an ext2 filesystem on its disk and writes "first" to a
#    file WITHOUT syncing; `vm snapshot` freezes the guest (the answer says
#    frozen, one filesystem), which flushes it; the guest is thawed after;
#  - the guest overwrites the file with "second" (synced); rollback of the
#    running VM is refused naming the reason; after a stop, `vm rollback`
#    brings "first" back (second boot), and the config's vmgenid changes;
#  - a linked clone of the snapshot boots and sees "first"; the snapshot
#    cannot be destroyed while the clone lives; a snapshot of the paused
#    clone is crash-consistent with a warning;
#  - a full clone (default) is independent: after the linked clone, the
#    snapshot and the source VM with its volumes are destroyed, it still
#    boots and reads "first"; it got new MACs and a new SMBIOS UUID;
#  - a snapshot while the guest agent does not answer is crash-consistent,
#    with a warning;
#  - an existing NEWID is refused; destroy --purge leaves no volumes.
. "$(dirname "$0")/functions.sh"
requires_vm

ID=110 LC=111 FC=112
start_berthd
mkpool tank 1G
mapfile -t boot < <(guest_boot_opts wait-agent berth.agent=1)

# gx VMID SHELL-CODE: run it in the guest through the agent, print its stdout
gx() { berth vm agent --timeout 60 "$1" exec -- /bin/sh -c "$2"; }

boot_agent() { # VMID CONSOLE-FILE
  berth vm start "$1" || fail "vm start $1"
  console_capture "$1" "$2"
  wait_console 120 "$2" "BERTH-GUEST: agent started"
  wait_until 60 berth vm agent "$1" ping || { vm_log "$1" | tail; fail "VM $1: the agent does not answer"; }
}

read_file() { gx "$1" 'mkdir -p /mnt && mount /dev/sda /mnt && cat /mnt/f'; }

echo "== VM $ID: filesystem, unsynced write, snapshot with freeze"
berth vm create $ID --name snap --memory 256 --bios seabios --scsi0 tank:0.0625 \
  "${boot[@]}" || fail "vm create"
berth vm config $ID >"$T/conf0"
cat "$T/conf0"
uuid0=$(sed -n 's/^smbios1: uuid=//p' "$T/conf0")
[ -n "$uuid0" ] || fail "the VM has no SMBIOS UUID"
echo "== API errors"
for c in "POST /vms/$ID/snapshots {\"name\":\"a/b\"} 400" "POST /vms/$ID/snapshots {\"name\":\"PENDING\"} 400" \
         "DELETE /vms/$ID/snapshots/nope - 404" "POST /vms/$ID/rollback {\"snapshot\":\"nope\"} 404" \
         "POST /vms/$ID/clone {\"newid\":5} 400" "POST /vms/999/snapshots {\"name\":\"x\"} 404"; do
  set -- $c
  body=$3; [ "$body" = - ] && body=
  got=$(api_status "$1" "$2" "$body")
  echo "  $1 $2 $body -> $got"
  [ "$got" = "$4" ] || { api "$1" "$2" "$body"; fail "$1 $2 $body: status $got, want $4"; }
done
boot_agent $ID "$T/con1"
gx $ID 'mke2fs -F /dev/sda >/dev/null 2>&1 && mkdir -p /mnt && mount /dev/sda /mnt && echo first >/mnt/f && echo ok' |
  grep -q ok || fail "the guest could not make and mount its filesystem"
berth --json vm snapshot $ID s1 >"$T/snap.json" || fail "vm snapshot"
cat "$T/snap.json"
[ "$(jfield frozen <"$T/snap.json")" = on ] || fail "the snapshot of a VM with its agent was not frozen"
[ "$(jfield frozen_filesystems <"$T/snap.json")" -ge 1 ] || fail "no filesystem was frozen"
grep -q '"warning"' "$T/snap.json" && fail "a frozen snapshot has a warning"
[ "$(berth vm agent $ID fsfreeze-status)" = thawed ] || fail "the guest was not thawed after the snapshot"
berth vm snapshot list $ID | tee "$T/list"
grep -qE "^s1 +.* yes$" "$T/list" || fail "vm snapshot list does not show s1 frozen"
api GET /pools/tank/snapshots | grep -q "vm-$ID-disk-0@s1" || fail "no volume snapshot tank/vm-$ID-disk-0@s1"
expect_fail berth vm snapshot $ID s1

echo "== overwrite, rollback refused while running, stop, rollback"
gx $ID 'echo second >/mnt/f && sync && cat /mnt/f' | grep -q second || fail "overwrite in the guest"
out=$(berth vm rollback $ID s1 2>&1) && fail "rollback of a running VM succeeded"
echo "  refused: $out"
[[ "$out" == *running* && "$out" == *stop* ]] || fail "the refusal does not say the VM runs: $out"
berth vm stop $ID || fail "vm stop"
wait_vm_status 30 $ID stopped
genid0=$(berth vm config $ID | sed -n 's/^vmgenid: //p')
berth vm rollback $ID s1 || fail "vm rollback"
genid1=$(berth vm config $ID | sed -n 's/^vmgenid: //p')
[ -n "$genid1" ] && [ "$genid1" != "$genid0" ] || fail "vmgenid did not change on rollback ($genid0 -> $genid1)"
boot_agent $ID "$T/con2"
got=$(read_file $ID) || fail "read the file after rollback"
echo "  after rollback: $got"
[ "$got" = first ] || fail "after rollback the file holds '$got', want 'first'"
berth vm stop $ID || fail "vm stop"
wait_vm_status 30 $ID stopped

echo "== linked clone of s1"
expect_fail berth vm clone $ID $ID
berth vm clone --linked --snapshot s1 --name linked $ID $LC || fail "vm clone --linked"
berth vm config $LC | tee "$T/conf-lc" | grep -q "^scsi0: tank:vm-$LC-disk-0" || fail "the linked clone's disk is not vm-$LC-disk-0"
grep -q "^name: linked" "$T/conf-lc" || fail "the clone's name is not 'linked'"
expect_fail berth vm clone $ID $LC
boot_agent $LC "$T/con3"
got=$(read_file $LC) || fail "read the file in the linked clone"
echo "  linked clone reads: $got"
[ "$got" = first ] || fail "the linked clone reads '$got', want 'first'"
out=$(berth vm snapshot destroy $ID s1 2>&1) && fail "destroyed a snapshot that a linked clone uses"
echo "  refused: $out"
berth vm suspend $LC || fail "vm suspend"
berth --json vm snapshot $LC p1 >"$T/p1.json" 2>&1 || fail "snapshot of a paused VM"
grep -q '"frozen": false' "$T/p1.json" && grep -q crash-consistent "$T/p1.json" ||
  { cat "$T/p1.json"; fail "a paused VM's snapshot does not warn that it is crash-consistent"; }
out=$(berth vm snapshot $LC p2 2>&1) || fail "snapshot p2"
echo "  $out"
[[ "$out" == *"warning: "*crash-consistent* ]] || fail "the CLI does not print the warning"
berth vm stop $LC || fail "vm stop $LC"
wait_vm_status 30 $LC stopped

echo "== full clone"
# a NIC in the config only (its bridge does not exist; removed before a boot)
berth vm set $ID --net0 virtio=BC:24:11:00:00:01,bridge=vmbr9 >/dev/null || fail "vm set net0"
berth vm clone $ID $FC || fail "vm clone (full)"
berth vm config $FC | tee "$T/conf-fc"
grep -q "^scsi0: tank:vm-$FC-disk-0" "$T/conf-fc" || fail "the full clone's disk is not vm-$FC-disk-0"
grep -q "^name: copy-of-snap" "$T/conf-fc" || fail "the full clone is not named copy-of-snap"
grep -qi "BC:24:11:00:00:01" "$T/conf-fc" && fail "the full clone kept the source's MAC"
grep -q "^net0: virtio=BC:24:11:" "$T/conf-fc" || fail "the full clone has no new MAC"
grep -q "$uuid0" "$T/conf-fc" && fail "the full clone kept the SMBIOS UUID"
grep -q "^smbios1: uuid=" "$T/conf-fc" || fail "the full clone lost smbios1"
berth vm snapshot list $ID | grep -q "clone-$FC" && fail "the full clone's temporary snapshot is still listed"
berth vm set $FC --delete net0 >/dev/null || fail "vm set $FC --delete net0"
berth vm snapshot list $FC | grep -q "no snapshots" || fail "the clone inherited snapshot records"

echo "== the full clone outlives its source"
berth vm destroy --purge $LC || fail "vm destroy --purge $LC"
berth vm snapshot destroy $ID s1 || fail "vm snapshot destroy (after the linked clone went)"
berth vm snapshot list $ID | grep -q "^s1 " && fail "s1 still listed after destroy"
berth vm destroy --purge $ID || fail "vm destroy --purge $ID"
berth vol list tank | grep -E "vm-($ID|$LC)-" && fail "volumes of destroyed VMs remain"
boot_agent $FC "$T/con4"
got=$(read_file $FC) || fail "read the file in the full clone"
echo "  full clone reads: $got"
[ "$got" = first ] || fail "the full clone reads '$got', want 'first'"
echo "== an agent that does not answer: crash-consistent, with a warning"
# the exec's status is never answered: the agent it kills was to send it
berth vm agent --timeout 3 $FC exec -- /bin/sh -c 'kill $(pidof qemu-ga)' >/dev/null 2>&1
berth --json vm snapshot $FC f1 >"$T/f1.json" || fail "snapshot without an answering agent"
cat "$T/f1.json"
grep -q '"frozen": false' "$T/f1.json" && grep -q 'crash-consistent' "$T/f1.json" ||
  fail "no crash-consistent warning when the agent does not answer"
berth vm stop $FC || fail "vm stop $FC"
wait_vm_status 30 $FC stopped
berth vm destroy --purge $FC || fail "vm destroy --purge $FC"
berthd_alive
berth pool check tank || fail "pool check"
stop_berthd
echo PASS
