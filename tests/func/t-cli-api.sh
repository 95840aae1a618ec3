#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The REST API with curl: bad bodies (invalid JSON, wrong types, missing and
# unknown fields, huge), unknown paths and methods, bad names and queries,
# the debug endpoint only with --test; every refusal is a JSON error with a
# fitting status and code, and berthd keeps serving.
. "$(dirname "$0")/functions.sh"
requires curl

# expect_api STATUS CODE NEEDLE METHOD PATH [BODY]
expect_api() {
  local want=$1 code=$2 needle=$3 m=$4 p=$5 body=${6-} out status
  local args=(-s -o "$T/resp" -w '%{http_code}' -X "$m" --unix-socket "$BERTH_SOCKET")
  [ $# -ge 6 ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  status=$(curl "${args[@]}" "http://b/api/v1$p")
  out=$(cat "$T/resp")
  [ "$status" = "$want" ] || fail "$m $p ${body:0:80}: HTTP $status, want $want: $out"
  [ "$(jfield code <"$T/resp")" = "$code" ] || fail "$m $p: code is not $code: $out"
  [[ "$out" == *"$needle"* ]] || fail "$m $p: message lacks '$needle': $out"
  echo "  ok $status $m $p ${body:0:50} -> $(jfield message <"$T/resp")"
}

start_berthd
mkpool tank 256M
berth vol create -V 64M tank/v >/dev/null || fail "vol create"

echo "== bodies"
expect_api 400 invalid "invalid JSON" POST /pools '{"name":'
expect_api 400 invalid "must be a JSON object" POST /pools '[1]'
expect_api 400 invalid "missing required field 'name'" POST /pools '{"vdevs":["/tmp/x"]}'
expect_api 400 invalid "missing required field 'vdevs'" POST /pools '{"name":"x"}'
expect_api 400 invalid "field 'name': expected a string" POST /pools '{"name":1,"vdevs":["/tmp/x"]}'
expect_api 400 invalid "unknown field 'sise'" POST /pools '{"name":"x","vdevs":["/tmp/x"],"sise":"1G"}'
expect_api 400 invalid "must be absolute" POST /pools '{"name":"x","vdevs":["x.img"]}'
expect_api 400 invalid "field 'size'" POST /pools '{"name":"x","vdevs":["/tmp/x"],"size":"lots"}'
expect_api 400 out_of_range "field 'ashift'" POST /pools '{"name":"x","vdevs":["/tmp/x"],"ashift":99}'
expect_api 400 invalid "field 'autotrim'" POST /pools '{"name":"x","vdevs":["/tmp/x"],"autotrim":"yes"}'
expect_api 400 invalid "compression" POST /pools "{\"name\":\"x\",\"vdevs\":[\"$T/x.img\"],\"size\":\"64M\",\"compression\":\"gzip\"}"
expect_api 400 invalid "duplicate" POST /pools '{"name":"x","name":"y","vdevs":["/tmp/x"]}'
expect_api 400 invalid "missing required field 'size'" POST /pools/tank/volumes '{"name":"w"}'
expect_api 400 invalid "field 'size'" POST /pools/tank/volumes '{"name":"w","size":[1]}'
expect_api 400 invalid "unknown property 'colour'" POST /pools/tank/volumes '{"name":"w","size":"1M","properties":{"colour":"red"}}'
expect_api 400 invalid "property 'used' is read-only" PATCH /pools/tank/volumes/v '{"properties":{"used":1}}'
expect_api 400 invalid "properties.readonly" PATCH /pools/tank/volumes/v '{"properties":{"readonly":"perhaps"}}'
expect_api 400 invalid "missing required field 'properties'" PATCH /pools/tank '{}'
expect_api 400 invalid "takes none" POST /pools/tank/sync '{"now":true}'
expect_api 400 invalid "field 'force'" POST /pools/tank/export '{"force":"yes"}'
head -c 100000 /dev/zero | tr '\0' ' ' >"$T/huge"
status=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST --unix-socket "$BERTH_SOCKET" --data-binary @"$T/huge" http://b/api/v1/pools)
[ "$status" = 413 ] && [ "$(jfield code <"$T/resp")" = too_large ] || fail "huge body: HTTP $status $(cat "$T/resp")"
echo "  ok 413 huge body"
status=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST --unix-socket "$BERTH_SOCKET" -H 'Transfer-Encoding: chunked' --data-binary @"$T/huge" http://b/api/v1/pools)
[ "$status" = 413 ] || fail "huge chunked body: HTTP $status $(cat "$T/resp")"
echo "  ok 413 huge chunked body"

echo "== paths, methods, names, queries"
expect_api 404 not_found "no such path" GET /nothing
expect_api 404 not_found "no such pool 'ghost'" GET /pools/ghost
expect_api 404 not_found "" GET /pools/tank/volumes/ghost
expect_api 405 method_not_allowed "allowed: GET, POST" PUT /pools
expect_api 405 method_not_allowed "" GET /pools/tank/trim
expect_api 400 invalid "pool name" GET '/pools/bad%20name'
expect_api 400 name_too_long "longer than 63" GET "/pools/$(printf 'a%.0s' $(seq 80))"
expect_api 400 invalid "unknown query parameter 'forse'" DELETE '/pools/tank/volumes/v?forse=1'
expect_api 400 invalid "query parameter 'force'" DELETE '/pools/tank/volumes/v?force=perhaps'
expect_api 400 invalid "absolute" GET '/pools/importable?dir=relative'
allow=$(curl -s -D - -o /dev/null -X PUT --unix-socket "$BERTH_SOCKET" http://b/api/v1/pools | tr -d '\r' | sed -n 's/^Allow: //Ip')
[ "$allow" = "GET, POST" ] || fail "405 Allow header: '$allow'"

echo "== semantic errors"
expect_api 409 exists "already exists" POST /pools "{\"name\":\"tank\",\"vdevs\":[\"$T/t2.img\"],\"size\":\"64M\"}"
expect_api 409 exists "" POST /pools/tank/volumes '{"name":"v","size":"1M"}'
expect_api 409 exists "already imported" POST /pools/import '{"name":"tank"}'
expect_api 400 invalid "'name' or 'vdevs'" POST /pools/import '{}'
api POST /pools/tank/volumes '{"name":"w","size":1048576,"volblocksize":"4K","properties":{"compression":"off","readonly":false}}' >/dev/null || fail "vol create via API"
[ "$(api_status POST /pools/tank/volumes '{"name":"w2","size":"1M"}')" = 201 ] || fail "create should answer 201"
[ "$(api GET /pools/tank/volumes/w | jfield volblocksize)" = 4096 ] || fail "volblocksize 4K via API"
[ "$(api GET /pools/tank/volumes/w | jfield compression)" = off ] || fail "compression off via API"

echo "== success shapes"
api GET /version | jfield version >/dev/null || fail "/version"
[ "$(api GET /health | jfield status)" = ok ] || fail "/health"
[ "$(api GET /health | jfield test_mode)" = on ] || fail "/health test_mode"
api GET /pools | jfield vdevs >/dev/null || fail "GET /pools"
api GET /volumes | jfield uri >/dev/null || fail "GET /volumes"
[ "$(api POST /pools/tank/check | jfield consistent)" = on ] || fail "check"
api POST /pools/tank/debug '{"knob":"fail_reads=off"}' >/dev/null || fail "debug knob in test mode"
expect_api 400 invalid "" POST /pools/tank/debug '{"knob":"no_such_knob=1"}'
berthd_alive
stop_berthd

echo "== debug refused without --test"
"$BERTHD_BIN" --state-dir "$STATE" --run-dir "$RUN" >>"$T/berthd.log" 2>&1 &
BERTHD_PID=$!
wait_until 10 curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health || fail "berthd (no --test) did not start"
expect_api 403 permission_denied "--test" POST /pools/tank/debug '{"knob":"fail_reads=on"}'
[ "$(api GET /health | jfield test_mode)" = off ] || fail "/health test_mode off"
expect_fail berth pool debug tank fail_reads=on
stop_berthd
echo PASS
