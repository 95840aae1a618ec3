#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# UEFI (OVMF) + efidisk + TPM 2.0 (swtpm), TCG, direct kernel boot:
#  - `berth vm create --tpm` with the default bios (ovmf) creates
#    tank/vm-ID-efidisk0 (initialised from OVMF_VARS_4M.fd) and
#    tank/vm-ID-tpmstate0;
#  - boot 1: the guest sees UEFI and /dev/tpm0 (TPM 2.0) and writes a UEFI
#    variable (efivarfs); the efidisk volume now holds it;
#  - boot 2: the variable is still there (the efidisk persisted on the pool),
#    the TPM is there again; swtpm is gone after each stop.
. "$(dirname "$0")/functions.sh"
requires nbdcopy swtpm
requires_nbdpy
requires_vm
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -f $VARS ] || skip "no $VARS (install ovmf)"

ID=101
EFI=tank/vm-$ID-efidisk0
TPM=tank/vm-$ID-tpmstate0
start_berthd
mkpool tank 1G
val=berth-$$-$RANDOM

echo "== create (ovmf, efidisk0, tpmstate0)"
mapfile -t boot < <(guest_boot_opts efi-tpm berth.efivar=$val)
berth vm create $ID --name uefi --memory 512 --scsi0 tank:0.03125 --tpm "${boot[@]}" ||
  fail "vm create"
berth vm config $ID >"$T/conf" || fail "vm config"
cat "$T/conf"
grep -q "^bios: ovmf" "$T/conf" || fail "the default bios is not ovmf"
grep -q "^efidisk0: tank:vm-$ID-efidisk0" "$T/conf" || fail "no efidisk0 on tank"
grep -qE "^tpmstate0: tank:vm-$ID-tpmstate0.*version=v2.0" "$T/conf" || fail "no TPM 2.0 tpmstate0 on tank"
berth vol list tank
nbdcopy "$(berth vol uri $EFI)" "$T/efi0" || fail "read $EFI"
cmp -n "$(stat -c %s $VARS)" $VARS "$T/efi0" || fail "$EFI does not start as a copy of $VARS"

# has_efivar FILE: the variable's UTF-16 name is in the varstore image
has_efivar() {
  nbdpy -c 'import sys; sys.exit(0 if "BerthTest".encode("utf-16-le") in open(sys.argv[1], "rb").read() else 1)' "$1"
}
has_efivar "$T/efi0" && fail "the fresh efidisk already holds the test variable"

boot_once() { # N
  t0=$(date +%s.%N)
  berth vm start $ID 2>"$T/start$1.err" || { cat "$T/start$1.err"; fail "vm start ($1)"; }
  cat "$T/start$1.err"
  console_capture $ID "$T/con$1"
  wait_vm_status 240 $ID stopped
  echo "  boot $1 took $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
  wait_console 5 "$T/con$1" "BERTH-GUEST: done rc=0"
  grep -a "BERTH-GUEST" "$T/con$1" | sed 's/^/  | /'
  grep -aq "BERTH-GUEST: efi yes" "$T/con$1" || fail "boot $1: the guest does not see UEFI"
  grep -aq "BERTH-GUEST: tpm version 2" "$T/con$1" || fail "boot $1: the guest has no TPM 2.0 (/dev/tpm0)"
  grep -aq "/dev/tpm0" "$T/con$1" || fail "boot $1: no /dev/tpm0 in the guest"
  # stopping the VM stops its swtpm
  if pgrep -f "swtpm.*$RUN/" >/dev/null; then
    pgrep -fa "swtpm.*$RUN/"; fail "boot $1: swtpm still runs after the VM stopped"
  fi
}

echo "== boot 1: UEFI + TPM, write a UEFI variable"
boot_once 1
grep -aq "BERTH-GUEST: efivar set $val" "$T/con1" || fail "boot 1: the guest could not write the UEFI variable"
nbdcopy "$(berth vol uri $EFI)" "$T/efi1" || fail "read $EFI"
has_efivar "$T/efi1" || fail "the UEFI variable is not on the efidisk volume after boot 1"
nbdcopy "$(berth vol uri $TPM)" "$T/tpm1" || fail "read $TPM"
cmp -s "$T/tpm1" <(head -c "$(stat -c %s "$T/tpm1")" /dev/zero) && fail "the TPM state volume is still all zeros after boot 1"

echo "== boot 2: the variable survived"
mapfile -t boot < <(guest_boot_opts efi-tpm)
berth vm set $ID --append "${boot[-1]}" || fail "vm set --append"
boot_once 2
grep -aq "BERTH-GUEST: efivar $val" "$T/con2" || fail "boot 2: the UEFI variable written in boot 1 is gone"

berth vm destroy --purge $ID || fail "vm destroy --purge"
for v in $EFI $TPM tank/vm-$ID-disk-0; do
  berth vol get used $v >/dev/null 2>&1 && fail "$v survived destroy --purge"
done
berthd_alive
stop_berthd
echo PASS
