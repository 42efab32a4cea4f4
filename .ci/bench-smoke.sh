#!/usr/bin/env bash
# Runs every mode of the load generator for a few seconds against a real service and Redis, so the
# generator never rots. Nothing here asserts a timing: the figures belong to the benchmark runs in docs/performance.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work=$(mktemp -d)
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api_pid=""
cleanup() {
    [ -z "$api_pid" ] || kill "$api_pid" 2>/dev/null || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize yes --logfile "$work/redis.log"
dotnet LockService.Api/bin/Release/net10.0/LockService.Api.dll --urls "http://127.0.0.1:$api_port" \
    --Redis:ConnectionString "127.0.0.1:$redis_port" >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$api_port/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

bench="dotnet LockService.Bench/bin/Release/net10.0/LockService.Bench.dll"
url="http://127.0.0.1:$api_port"
$bench cycles --url "$url" -c 8 -d 3 --warmup 1 --json-only
# Paced: never more cycles in the window than the schedule has slots up to its end (a slow machine makes fewer).
paced=$($bench cycles --url "$url" -c 8 -d 3 --warmup 1 --rate 100 --json-only | tail -n 1)
echo "$paced"
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["rate"] == 100 and 0 < r["cycles"] <= 400 else "paced cycles: %d at rate %d, expected 1..400 in 3 s after 1 s of warm-up" % (r["cycles"], r["rate"]))' "$paced"
$bench contended --url "$url" --redis "127.0.0.1:$redis_port" -c 8 -d 3 --warmup 1 --json-only
$bench handoff --url "$url" -n 20 --warmup 0 --json-only
$bench waiters --url "$url" -c 200 --keys 2 --pid "$api_pid" --settle-ms 300 --json-only
$bench watchloss --url "$url" -n 20 --warmup 0 --json-only
$bench streamhandoff --url "$url" -n 20 --warmup 0 --json-only
$bench streams --url "$url" -c 50 -d 3 --ttl-ms 3000 --pid "$api_pid" --json-only
$bench semaphores --url "$url" --redis "127.0.0.1:$redis_port" -c 8 -d 3 --warmup 1 --limit 3 --json-only
$bench handoff --url "$url" -n 20 --warmup 0 --limit 3 --json-only
echo "bench: smoke run of all modes passed"
