#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbd-memd driven by libnbd (nbdsh/python): every command and flag with
# libnbd's strict mode on (the server advertises what it accepts), the
# structured read reply (holes as holes, DF), block status (REQ_ONE), then
# strict mode off to send what a broken client would and check each NBD
# error the server answers -- the connection must stay usable after each.
. "$(dirname "$0")/functions.sh"
export PATH=/usr/bin:/bin   # the distribution's python3 with python3-libnbd
requires nbdsh python3
python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"
MEMD=$BERTH_BUILD/src/nbd/nbd-memd
[ -x "$MEMD" ] || skip "no $MEMD"
S=$T/nbd.sock
"$MEMD" --socket "$S" --export d:16M --export r:1M:ro --export a:1M:bs=512 \
  >"$T/memd.log" 2>&1 &
MEMD_PID=$!
add_cleanup "kill -KILL $MEMD_PID"
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
[ -S "$S" ] || fail "nbd-memd did not start"

SOCK=$S python3 - <<'PY' || fail "nbdsh checks"
import errno, os, nbd
S = os.environ["SOCK"]
def conn(name, strict=True):
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.set_strict_mode(nbd.STRICT_MASK if strict else 0)
    h.connect_uri("nbd+unix:///%s?socket=%s" % (name, S))
    return h
def expect(err, fn, *a):
    try:
        fn(*a)
    except nbd.Error as e:
        # python3-libnbd gives the symbolic name ("EINVAL")
        assert e.errno in (err, errno.errorcode[err]), "%s%r: errno %s, wanted %s" % (fn.__name__, a, e.errno, err)
        return
    raise AssertionError("%s%r succeeded" % (fn.__name__, a))

h = conn("d")
assert h.get_size() == 16 << 20
assert h.can_meta_context("base:allocation")
assert h.get_structured_replies_negotiated()
h.pwrite(b"\xab" * 65536, 65536, nbd.CMD_FLAG_FUA)
assert h.pread(65536, 65536) == b"\xab" * 65536
h.flush()
h.cache(1 << 20, 0)
h.zero(4096, 65536, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)
h.zero(4096, 69632, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(8192, 65536) == bytes(8192)
h.trim(4096, 126976)

# structured read of [0, 192K): hole 64K, data 64K-8K.., hole after
chunks = []
def chunk(buf, off, status, err):
    chunks.append((off, len(buf), status))
    return 0
h.pread_structured(196608, 0, chunk)
assert chunks[0] == (0, 65536, nbd.READ_HOLE), chunks
assert any(c[2] == nbd.READ_DATA for c in chunks), chunks
assert sum(c[1] for c in chunks) == 196608
chunks.clear()
h.pread_structured(196608, 0, chunk, nbd.CMD_FLAG_DF)
assert chunks == [(0, 196608, nbd.READ_DATA)], chunks

ext = []
def bs(ctx, off, entries, err):
    ext.extend(entries)
    return 0
h.block_status(16 << 20, 0, bs)
assert ext[0:2] == [65536, 3], ext
assert sum(ext[0::2]) == 16 << 20, ext
ext.clear()
h.block_status(16 << 20, 0, bs, nbd.CMD_FLAG_REQ_ONE)
assert len(ext) == 2, ext

# many requests in flight, replies matched out of order
cookies = [h.aio_pwrite(bytes([i]) * 4096, i * 4096) for i in range(64)]
while h.aio_in_flight() > 0:
    h.poll(-1)
assert all(h.aio_command_completed(c) for c in cookies)
for i in range(64):
    assert h.pread(4096, i * 4096) == bytes([i]) * 4096
h.shutdown()

# strict mode off: the server must answer broken requests itself
h = conn("d", strict=False)
expect(errno.EINVAL, h.pread, 4096, 16 << 20)             # past the end
expect(errno.EINVAL, h.pread, 8192, (16 << 20) - 4096)    # straddling the end
expect(errno.ENOSPC, h.pwrite, b"x" * 4096, 16 << 20)     # write past the end
expect(errno.ENOSPC, h.trim, 4096, 16 << 20)
expect(errno.EINVAL, h.pread, 0, 0)                       # zero length
expect(errno.EINVAL, h.pread, 512, 0, nbd.CMD_FLAG_REQ_ONE)  # flag of another command
expect(errno.EINVAL, h.block_status, 4096, 16 << 20, bs)
expect(errno.EOVERFLOW, h.pread, (32 << 20) + 4096, 0)    # above max block size
assert h.pread(4096, 81920) == bytes([20]) * 4096            # still usable
h.shutdown()

h = conn("r", strict=False)
assert h.is_read_only()
expect(errno.EPERM, h.pwrite, b"x" * 512, 0)
expect(errno.EPERM, h.trim, 512, 0)
expect(errno.EPERM, h.zero, 512, 0)
assert h.pread(512, 0) == bytes(512)
h.shutdown()

h = conn("a", strict=False)
assert h.get_block_size(nbd.SIZE_MINIMUM) == 512
expect(errno.EINVAL, h.pread, 512, 100)                   # unaligned offset
expect(errno.EINVAL, h.pwrite, b"x" * 100, 0)             # unaligned length
h.pwrite(b"y" * 512, 512)
assert h.pread(1024, 0) == bytes(512) + b"y" * 512
h.shutdown()

# a server without meta context negotiated refuses BLOCK_STATUS
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri("nbd+unix:///d?socket=%s" % S)
expect(errno.EINVAL, h.block_status, 4096, 0, bs)
h.shutdown()
print("nbdsh checks passed")
PY

# nbdsh itself, the way a user would poke at it
nbdsh -u "nbd+unix:///d?socket=$S" -c 'assert h.pread(4, 4096 * 20) == b"\x14" * 4' || fail "nbdsh -c"

kill -TERM $MEMD_PID; rc=0; wait $MEMD_PID || rc=$?
grep -E "Sanitizer|runtime error" "$T/memd.log" && fail "sanitizer report"
[ $rc = 0 ] || fail "nbd-memd exit status $rc"
exit 0
