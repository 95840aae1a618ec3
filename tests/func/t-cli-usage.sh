#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# berth CLI usage handling: --help for every group, exit 2 naming the unknown
# command/option or missing argument, exit 3 with a clear message when berthd
# is unreachable, BERTH_SOCKET and --socket.
. "$(dirname "$0")/functions.sh"


echo "== help"
berth --help | grep -q "pool create" || fail "berth --help lacks the command list"
berth pool --help | grep -q "import \[-d DIR\]" || fail "berth pool --help"
berth vol --help | grep -q "resize \[--force\]" || fail "berth vol --help"
berth pool create --help | grep -q "ashift" || fail "berth pool create --help"
berth help vol | grep -q "uri" || fail "berth help vol"
berth --version | grep -q "^berth " || fail "berth --version"

echo "== usage errors: exit 2, named"
rc_of 2 "unknown command 'frobnicate'" berth frobnicate
rc_of 2 "unknown option '--bogus'" berth --bogus pool list
rc_of 2 "unknown pool command 'explode'" berth pool explode
rc_of 2 "unknown vol command 'shrink'" berth vol shrink
rc_of 2 "unknown option '-x'" berth pool create -x tank /tmp/x
rc_of 2 "unknown option '--colour'" berth vol list --colour
rc_of 2 "needs an argument" berth vol create -V
rc_of 2 "needs -V SIZE" berth vol create tank/v
rc_of 2 "expected POOL/VOLUME" berth vol create -V 1G justaname
rc_of 2 "expected POOL/VOLUME" berth vol get all a/b/c
rc_of 2 "unknown pool property 'colour'" berth pool create -o colour=red t /tmp/t.img
rc_of 2 "bad value 'maybe' for autotrim" berth pool create -o autotrim=maybe t /tmp/t.img
rc_of 2 "bad value '8x' for ashift" berth pool create -o ashift=8x t /tmp/t.img
rc_of 2 "needs NAME and VDEV" berth pool create onlyname
rc_of 2 "unknown volume property 'colour'" berth vol get colour t/v
rc_of 2 "expected PROP=VALUE" berth vol set compression t/v
rc_of 2 "has no option -f" berth pool trim -f tank
rc_of 2 "needs exactly one NAME" berth pool destroy
rc_of 2 "needs NAME and KNOB" berth pool debug tank
berth >/dev/null 2>&1; [ $? -eq 2 ] || fail "berth without a command should exit 2"

echo "== unreachable: exit 3"
rc_of 3 "cannot connect to berthd at $T/nope.sock: is berthd running?" berth --socket "$T/nope.sock" pool list
BERTH_SOCKET=$T/env.sock rc_of 3 "$T/env.sock" berth vol list
: >"$T/notasocket"
rc_of 3 "cannot connect" berth --socket "$T/notasocket" pool status

echo "== with a daemon: --socket beats the environment"
start_berthd
good=$BERTH_SOCKET
BERTH_SOCKET=$T/nope.sock berth --socket "$good" pool list >/dev/null || fail "--socket should override BERTH_SOCKET"
BERTH_SOCKET=$T/nope.sock rc_of 3 "cannot connect" berth pool list
berth version | grep -q "^berthd " || fail "berth version should ask berthd"
rc_of 1 "no such pool 'ghost'" berth pool status ghost
rc_of 1 "no such pool 'ghost'" berth vol list ghost
stop_berthd
echo PASS
