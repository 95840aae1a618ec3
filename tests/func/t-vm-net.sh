#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Networking: `berth net create BR --cidr 10.231.N.1/24` makes an isolated
# Linux bridge with that host address; a VM with `--net0 virtio,bridge=BR`
# gets a generated MAC (kept in its config) and a tap on the bridge; the
# guest configures its virtio-net NIC, pings the host's bridge address, and
# the host pings the guest back.  The bridge cannot be destroyed while the VM
# uses it; the tap is gone after the VM stops; `net destroy` removes the
# bridge from the host.  (Names are derived from the test's pid: bridges and
# taps are host-wide, and tests run in parallel.)
. "$(dirname "$0")/functions.sh"
requires ip
requires_vm
# the host's ping: iputils if installed, else busybox's (a test dependency)
if command -v ping >/dev/null; then hping() { ping "$@"; }
elif command -v busybox >/dev/null; then hping() { busybox ping "$@"; }
else skip "requires ping (iputils-ping or busybox)"; fi
[ "$(id -u)" = 0 ] || skip "needs root (bridges and tap devices)"

n=$(($$ % 250 + 1))
BR=bbr$$
BR=${BR:0:15}
ID=$((200000 + $$ % 700000))
TAP=tap${ID}i0
HOST=10.231.$n.1 GUESTIP=10.231.$n.2
ip -4 addr | grep -q " 10\.231\.$n\." && skip "10.231.$n.0/24 is already in use on this host"

start_berthd
add_cleanup "ip link del $BR"
add_cleanup "berth net destroy $BR"

echo "== net create / list"
berth net create $BR --cidr $HOST/24 || fail "net create"
berth net list | tee "$T/nets"
grep -E "^$BR +$HOST/24 " "$T/nets" >/dev/null || fail "net list does not show $BR with $HOST/24"
ip -4 addr show dev $BR | grep -q "inet $HOST/24" || fail "the host has no $HOST/24 on $BR"
expect_fail berth net create $BR
expect_fail berth net create "bad/name"

echo "== a VM on the bridge pings the host, the host pings it"
mapfile -t boot < <(guest_boot_opts net-ping berth.ip=$GUESTIP/24 berth.ping=$HOST berth.stay=1)
berth vm create $ID --name net --memory 256 --bios seabios --net0 virtio,bridge=$BR "${boot[@]}" ||
  fail "vm create"
berth vm config $ID | tee "$T/conf" | grep "^net0"
mac=$(sed -nE 's/^net0: virtio=([0-9A-Fa-f:]{17}),.*/\1/p' "$T/conf")
[ -n "$mac" ] || fail "net0 got no generated MAC: $(grep ^net0 "$T/conf")"
grep -q "bridge=$BR" "$T/conf" || fail "net0 lost its bridge"
berth vm start $ID 2>/dev/null || fail "vm start"
console_capture $ID "$T/con"
ip link show $TAP >/dev/null || fail "no tap $TAP on the host"
ip link show $TAP | grep -q "master $BR" || fail "$TAP is not on $BR"
berth net list | grep -E "^$BR " | grep -q "$TAP" || fail "net list does not show $TAP as a port"
wait_console 120 "$T/con" "BERTH-GUEST: ping $HOST (ok|failed)"
grep -a "BERTH-GUEST: eth0" "$T/con"
grep -aqi "BERTH-GUEST: eth0 $mac " "$T/con" || fail "the guest's MAC is not the one in the config ($mac)"
grep -aq "BERTH-GUEST: ping $HOST ok" "$T/con" || fail "the guest cannot ping the host's bridge address"
hping -c 2 -W 2 $GUESTIP || fail "the host cannot ping the guest at $GUESTIP"
expect_fail berth net destroy $BR

echo "== the MAC stays across restarts; the tap goes with the VM"
berth vm stop $ID || fail "vm stop"
ip link show $TAP >/dev/null 2>&1 && fail "$TAP still exists after the VM stopped"
berth vm config $ID | grep -qi "^net0: virtio=$mac," || fail "the MAC changed after a stop"

echo "== net destroy"
berth vm destroy $ID || fail "vm destroy"
berth net destroy $BR || fail "net destroy"
ip link show $BR >/dev/null 2>&1 && fail "bridge $BR still exists on the host"
berth net list | grep -q "^$BR " && fail "net list still shows $BR"
berthd_alive
stop_berthd
echo PASS
