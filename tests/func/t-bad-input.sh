#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad input everywhere, and berthd keeps serving:
#  - NBD: malformed handshakes and options, half-sent and stalled connections,
#    bad requests (out of range, misaligned, unknown command, bad flags,
#    oversize, bad magic) over a raw socket: NBD error replies where the
#    protocol allows, a dropped connection where it does not;
#  - CLI: unknown options and commands, missing arguments, bad sizes;
#  - API: invalid JSON, wrong types, unknown fields, oversize bodies.
. "$(dirname "$0")/functions.sh"
requires curl qemu-io nbdinfo
requires_nbdpy

start_berthd
mkpool tank 1G
berth vol create -V 64M tank/v >/dev/null || fail "vol create"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x5c 0 1M' >/dev/null || fail "initial write"

echo "== NBD: raw protocol abuse"
nbdpy - "$NBD_SOCK" tank/v <<'EOF' || fail "NBD bad-input checks failed (see above)"
import errno, os, socket, struct, sys, time
path, export = sys.argv[1], sys.argv[2].encode()
NBDMAGIC, IHAVEOPT, REPMAGIC = 0x4e42444d41474943, 0x49484156454F5054, 0x3e889045565a9
REQMAGIC, SIMPLEMAGIC = 0x25609513, 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO, OPT_SR = 1, 2, 3, 6, 7, 8
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
ERR = 1 << 31
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_ZERO, CMD_BS = range(8)
problems = []
def problem(msg):
    print("PROBLEM: " + msg); problems.append(msg)

def recvall(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b

def connect(flags=1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    magic, opt, hflags = struct.unpack(">QQH", recvall(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting %x %x" % (magic, opt)
    assert hflags & 1, "server does not offer fixed newstyle"
    if flags is not None:
        s.sendall(struct.pack(">I", flags))
    return s

def send_opt(s, opt, data=b"", length=None):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data) if length is None else length) + data)

def read_rep(s):
    magic, opt, typ, ln = struct.unpack(">QIII", recvall(s, 20))
    assert magic == REPMAGIC, "bad option reply magic %x" % magic
    assert ln <= 1 << 20, "option reply length %d" % ln
    return opt, typ, recvall(s, ln)

def is_closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

def works(s):   # OPT_LIST answers: the option haggling is still in sync
    send_opt(s, OPT_LIST)
    names = []
    while True:
        opt, typ, data = read_rep(s)
        if typ == REP_ACK:
            return names
        if typ != REP_SERVER:
            print("   OPT_LIST reply type %x" % typ)
            return []
        n = struct.unpack(">I", data[:4])[0]
        names.append(data[4:4 + n])

def go(s, name=export):
    send_opt(s, OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 1) + struct.pack(">H", 3))
    info = {}
    while True:
        opt, typ, data = read_rep(s)
        if typ == REP_ACK:
            return info
        if typ & ERR:
            return typ
        if typ == REP_INFO:
            it = struct.unpack(">H", data[:2])[0]
            if it == 0:
                info["size"], info["flags"] = struct.unpack(">QH", data[2:12])
            elif it == 3:
                info["min"], info["pref"], info["max"] = struct.unpack(">III", data[2:14])

def check(name, cond, msg):
    print(("ok   " if cond else "FAIL ") + name)
    if not cond:
        problem(name + ": " + msg)

# --- handshake ---
s = connect(flags=0x80000001)
check("unknown client flags: connection dropped", is_closed(s), "server kept a connection with unknown client flags")
s = connect()
s.sendall(struct.pack(">QII", 0xdeadbeefcafef00d, OPT_LIST, 0))
check("bad option magic: connection dropped", is_closed(s), "server kept going after a bad option magic")
s = connect()
send_opt(s, 0x7777, b"hello")
opt, typ, _ = read_rep(s)
check("unknown option: ERR_UNSUP", typ == ERR + 1 and opt == 0x7777, "reply type %x for opt %x" % (typ, opt))
check("  ... and the connection still works", export in works(s), "OPT_LIST after an unknown option")
send_opt(s, OPT_LIST, b"junk")
opt, typ, _ = read_rep(s)
check("OPT_LIST with payload: error", typ & ERR != 0, "reply type %x" % typ)
r = go(s, b"nosuchpool/nosuchvol")
check("OPT_GO unknown export: ERR_UNKNOWN", r == ERR + 6, "got %r" % (r,))
send_opt(s, OPT_GO, struct.pack(">I", 1000) + b"tank")
opt, typ, _ = read_rep(s)
check("OPT_GO name length beyond payload: ERR_INVALID", typ == ERR + 3, "reply type %x" % typ)
send_opt(s, OPT_GO, struct.pack(">I", len(export)) + export + struct.pack(">H", 500) + b"\0\0")
opt, typ, _ = read_rep(s)
check("OPT_GO info count beyond payload: ERR_INVALID", typ == ERR + 3, "reply type %x" % typ)
send_opt(s, OPT_SR, b"xx")
opt, typ, _ = read_rep(s)
check("OPT_STRUCTURED_REPLY with payload: error", typ & ERR != 0, "reply type %x" % typ)
check("  ... still in sync", export in works(s), "OPT_LIST after bad options")
send_opt(s, OPT_LIST, length=0x7ffffff0)
try:
    opt, typ, _ = read_rep(s)
    ok = typ & ERR != 0
    msg = "reply type %x" % typ
except (EOFError, ConnectionResetError):
    ok, msg = True, ""
except socket.timeout:
    ok, msg = False, "no reply and no close within 10 s: the server is waiting for a 2 GiB option"
check("oversized option length: error reply or dropped", ok, msg)
s.close()
s = connect()
send_opt(s, OPT_EXPORT_NAME, b"nosuch/export")
check("OPT_EXPORT_NAME unknown: connection dropped", is_closed(s), "server kept the connection")
s = connect()
send_opt(s, OPT_ABORT)
try:
    opt, typ, _ = read_rep(s)
    ack = typ == REP_ACK
except (EOFError, ConnectionResetError):
    ack = True
check("OPT_ABORT: ack and/or close", ack and is_closed(s), "no clean abort")

# half-sent and stalled connections
for i in range(40):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path)
    if i % 4 == 1: s.recv(18)
    if i % 4 == 2: recvall(s, 18); s.sendall(b"\0\0")
    if i % 4 == 3: recvall(s, 18); s.sendall(struct.pack(">I", 1) + struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"abc")
    s.close()
stalled = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(16)]
for x in stalled:
    x.connect(path)

# --- transmission ---
s = connect()
info = go(s)
assert isinstance(info, dict) and "size" in info, "OPT_GO %s failed: %r" % (export, info)
size = info["size"]
print("export %s: size %d, block sizes %s" % (export.decode(), size, (info.get("min"), info.get("pref"), info.get("max"))))
h = [100]
def req(typ, off, ln, flags=0, data=b"", magic=REQMAGIC):
    h[0] += 1
    s.sendall(struct.pack(">IHHQQI", magic, flags, typ, h[0], off, ln) + data)
    return h[0]
def reply(handle, readlen=0):
    magic, err, hd = struct.unpack(">IIQ", recvall(s, 16))
    assert magic == SIMPLEMAGIC, "reply magic %x" % magic
    assert hd == handle, "reply handle %d for request %d" % (hd, handle)
    data = recvall(s, readlen) if err == 0 and readlen else b""
    return err, data
def alive():
    err, d = reply(req(CMD_READ, 0, 4096), 4096)
    return err == 0 and d == b"\x5c" * 4096

err, d = reply(req(CMD_READ, 0, 4096), 4096)
check("valid read", err == 0 and d == b"\x5c" * 4096, "err %d" % err)
err, _ = reply(req(CMD_READ, size, 4096), 4096)
check("read past the end: EINVAL", err == errno.EINVAL, "err %d" % err)
err, _ = reply(req(CMD_READ, (1 << 64) - 4096, 8192), 8192)
check("read with offset+length overflow: error", err != 0, "err %d" % err)
err, _ = reply(req(CMD_WRITE, size - 2048, 4096, data=bytes(4096)))
check("write across the end: error (ENOSPC or EINVAL)", err in (errno.ENOSPC, errno.EINVAL), "err %d" % err)
err, _ = reply(req(CMD_TRIM, size, 1 << 20))
check("trim past the end: error", err != 0, "err %d" % err)
err, d = reply(req(CMD_READ, 1, 100), 100)
check("misaligned read: EINVAL or correct data", err == errno.EINVAL or (err == 0 and d == b"\x5c" * 100), "err %d" % err)
err, _ = reply(req(42, 0, 4096))
check("unknown command: EINVAL", err == errno.EINVAL, "err %d" % err)
err, _ = reply(req(CMD_READ, 0, 4096, flags=0x8000), 4096)
check("unknown command flag: EINVAL", err == errno.EINVAL, "err %d" % err)
err, _ = reply(req(CMD_BS, 0, 4096))
check("block status without a meta context: EINVAL", err == errno.EINVAL, "err %d" % err)
err, _ = reply(req(CMD_READ, 0, 0), 0)
check("zero-length read: EINVAL or ok", err in (0, errno.EINVAL), "err %d" % err)
check("connection still serves after bad requests", alive(), "valid read failed")
mx = info.get("max", 32 << 20)
if mx < 0xfffffff0:
    hd = req(CMD_READ, 0, min(mx * 2, 0x7ffffff0))
    try:
        err, _ = reply(hd)
        ok, msg = err != 0, "a read of twice the maximum block size succeeded"
    except (EOFError, ConnectionResetError):
        ok, msg = True, ""
    except socket.timeout:
        ok, msg = False, "no reply within 10 s"
    check("read above the maximum block size: error or dropped", ok, msg)
    s.close()
    s = connect(); go(s)
req(CMD_WRITE, 0, 0x7ffffff0)        # 2 GiB write header, no payload
try:
    magic, err, hd = struct.unpack(">IIQ", recvall(s, 16))
    ok, msg = err != 0, "err %d" % err
except (EOFError, ConnectionResetError):
    ok, msg = True, ""
except socket.timeout:
    ok, msg = False, "no reply and no close within 10 s: the server waits for a 2 GiB payload"
check("oversize write (2 GiB header): error or dropped", ok, msg)
s.close()
s = connect(); go(s)
req(CMD_READ, 0, 4096, magic=0x12345678)
check("bad request magic: connection dropped", is_closed(s), "server kept the connection")
s = connect(); go(s)
req(CMD_DISC, 0, 0)
check("NBD_CMD_DISC: connection closed", is_closed(s), "not closed")
for x in stalled:
    x.close()
sys.exit(1 if problems else 0)
EOF
nbdinfo "$(uri tank/v)" >/dev/null || fail "nbdinfo after the raw protocol abuse"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x5c 0 1M' >/dev/null || fail "data after the raw protocol abuse"
berthd_alive

echo "== CLI: bad options and arguments"
# cli_bad DESC WORD ARGS...: must exit 1 or 2 with a message that contains WORD
cli_bad() {
  local word=$1 out rc; shift
  out=$("$BERTH_BIN" "$@" 2>&1); rc=$?
  echo "  berth $* -> $rc: $(echo "$out" | head -2 | tr '\n' ' ' | head -c 200)"
  [ $rc -eq 1 ] || [ $rc -eq 2 ] || fail "berth $*: exit code $rc, want 1 or 2"
  [ -z "$word" ] || echo "$out" | grep -qi -- "$word" || fail "berth $*: the message does not name '$word': $out"
}
cli_bad --bogus --bogus pool list
cli_bad nosuchcmd nosuchcmd
cli_bad nosuchverb pool nosuchverb
cli_bad "" pool create
cli_bad "" pool create onlyname
cli_bad "" vol create tank/x
cli_bad 10X vol create -V 10X tank/x
cli_bad -1G vol create -V -1G tank/x
cli_bad volblocksize vol create -b 3K -V 1G tank/x
cli_bad ashift pool create -o ashift=abc p "$T/p.img"
cli_bad nosuch pool create -o nosuch=1 p "$T/p.img"
cli_bad "" vol set novalue tank/v
cli_bad nosuchprop vol get nosuchprop tank/v
cli_bad "" vol resize tank/v
cli_bad --frobnicate vol list --frobnicate
out=$("$BERTH_BIN" --socket "$T/nonexistent.sock" pool list 2>&1); rc=$?
[ $rc -ne 0 ] || fail "berth with a bad --socket succeeded"
echo "$out" | grep -qiE 'nonexistent\.sock|connect|berthd' || fail "unclear error for a bad socket: $out"
"$BERTH_BIN" vol list >/dev/null || fail "berth vol list after the bad CLI calls"

echo "== API: bad bodies"
# api_bad METHOD PATH BODY WANT_STATUS [WORD]: the status and a JSON error naming WORD
api_bad() {
  local m=$1 p=$2 body=$3 want=$4 word=${5:-} resp st
  resp=$(curl -s --max-time 20 -w '\n%{http_code}' -X "$m" --unix-socket "$BERTH_SOCKET" \
    -H 'Content-Type: application/json' --data-binary "$body" "http://b/api/v1$p")
  st=${resp##*$'\n'}
  resp=${resp%$'\n'*}
  echo "  $m $p $(echo "$body" | head -c 60) -> $st $(echo "$resp" | head -c 160)"
  [[ "$st" == $want ]] || fail "$m $p: HTTP $st, want $want"
  nbdpy -c 'import json,sys; e=json.loads(sys.argv[1])["error"]; assert isinstance(e["code"], str) and e["code"] and isinstance(e["message"], str) and e["message"]' "$resp" ||
    fail "$m $p: the error body is not {\"error\":{\"code\",\"message\"}}: $resp"
  # a string match, not `echo | grep -q`: under pipefail grep's early exit can fail the pipe
  [ -z "$word" ] || [[ "${resp,,}" == *"${word,,}"* ]] || fail "$m $p: the message does not name '$word'"
}
api_bad POST /pools '{' 400
api_bad POST /pools '[]' 400
api_bad POST /pools '"tank"' 400
api_bad POST /pools '{"name":5,"vdevs":["/tmp/x.img"]}' 400 name
api_bad POST /pools '{"name":"x","vdevs":"/tmp/x.img"}' 400 vdevs
api_bad POST /pools '{"name":"x","vdevs":["/tmp/x.img"],"sise":"1G"}' 400 sise
api_bad POST /pools '{"name":"x","vdevs":["relative.img"],"size":"1G"}' 400
api_bad POST /pools '{"name":"x","vdevs":["/tmp/x.img"],"size":"1G","ashift":"twelve"}' 400 ashift
api_bad POST /pools '{"vdevs":["/tmp/x.img"]}' 400 name
api_bad POST /pools/tank/volumes '{"name":"v2","size":"lots"}' 400 size
api_bad POST /pools/tank/volumes '{"name":"v2","size":-5}' 400 size
api_bad POST /pools/tank/volumes '{"name":"v2"}' 400 size
api_bad POST /pools/tank/volumes '{"name":"v2","size":"1G","volblocksize":"3K"}' 4?? volblocksize
api_bad POST /pools/tank/volumes '{"name":"a\u0000b","size":"1G"}' 400
api_bad POST /pools/tank/volumes '{"name":"v2","size":"1G","properties":{"compression":7}}' 400 compression
api_bad POST /pools/tank/volumes '{"name":"v2","size":"1G","properties":"lz4"}' 400 properties
api_bad PATCH /pools/tank/volumes/v '{"properties":{"used":5}}' 400 used
api_bad PATCH /pools/tank/volumes/v '{"properties":{"compression":"gzip"}}' 400 gzip
api_bad POST /pools/tank/volumes/v/resize '{"size":true}' 400 size
api_bad POST /pools/nosuch/volumes '{"name":"v2","size":"1G"}' 404
api_bad GET /nosuch/route '' 404
api_bad DELETE /health '' 405
api_bad DELETE '/pools/tank/volumes/v?bogus=1' '' 400 bogus
api_bad POST /pools/tank/debug '{"knob":"nosuchknob=1"}' 400
api_bad POST /pools "$(printf '%0100000d' 0)" 413
api_bad POST /pools "$(printf '[%.0s' $(seq 20000))" 4??
berth vol list | grep -q tank/v2 && fail "a bad API body created tank/v2"

echo "== berthd is healthy after all that"
berthd_alive
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x5d 1M 1M' -c 'read -P 0x5d 1M 1M' -c 'read -P 0x5c 0 1M' >/dev/null || fail "I/O after the bad input"
berth pool status tank >/dev/null || fail "pool status after the bad input"
stop_berthd
echo PASS
