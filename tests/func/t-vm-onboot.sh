#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `onboot: 1` (Proxmox's "start at boot"): berthd starts such VMs once per host
# boot.  A host reboot is simulated by removing <run>/vm/onboot.bootid (the run
# dir is a tmpfs in production, emptied by a reboot):
#  - after a "reboot", the onboot VM is running, the other VM is not;
#  - a plain berthd restart in the same boot does not start a VM the user
#    stopped on purpose.
. "$(dirname "$0")/functions.sh"
requires_vm

start_berthd
mkpool tank 256M
mapfile -t boot < <(guest_boot_opts hello berth.stay=1)
berth vm create 110 --name auto --memory 256 --bios seabios --onboot 1 "${boot[@]}" ||
  fail "vm create 110"
berth vm create 111 --name manual --memory 256 --bios seabios "${boot[@]}" || fail "vm create 111"
berth vm config 110 | grep -q '^onboot: 1' || fail "onboot not in the config of 110"
[ -f "$RUN/vm/onboot.bootid" ] || fail "berthd did not record this boot's autostart"

echo "== host reboot: onboot VMs start"
stop_berthd
rm -f "$RUN/vm/onboot.bootid"
start_berthd
wait_vm_status 30 110 running
s=$(vm_field 111 status); [ "$s" = stopped ] || fail "VM 111 (no onboot) is $s"
grep -q "onboot: started 1" "$T/berthd.log" || fail "berthd did not log the autostart"

echo "== berthd restart in the same boot: a stopped onboot VM stays stopped"
berth vm stop 110 || fail "vm stop 110"
wait_vm_status 30 110 stopped
stop_berthd
start_berthd
sleep 1
s=$(vm_field 110 status); [ "$s" = stopped ] || fail "VM 110 was started again by a plain restart ($s)"

stop_berthd
echo PASS
