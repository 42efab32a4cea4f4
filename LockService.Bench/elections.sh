#!/usr/bin/env bash
# Elections measured on this machine: one redis-server and two service instances on free ports, then the bench's
# elections mode (proclaim -> observer latency across the two instances, hand-over after a leader's stream closes,
# RSS and idle CPU with OBSERVERS observe streams on one instance). Run from the repository root after a Release build:
#   bash LockService.Bench/elections.sh            OBSERVERS=10000 ROUNDS=200 IDLE=20 by default
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/processes.sh"
root=$(cd "$here/.." && pwd)
OBSERVERS=${OBSERVERS:-10000}
ROUNDS=${ROUNDS:-200}
IDLE=${IDLE:-20}

ulimit -n 65536 2>/dev/null || true
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
pids+=($!)
one=$(free_port)
two=$(free_port)
for port in "$one" "$two"; do
    Redis__ConnectionString="127.0.0.1:$redis_port" Serilog__MinimumLevel__Default=Warning \
        dotnet "$root/LockService.Api/bin/Release/net10.0/LockService.Api.dll" --urls "http://127.0.0.1:$port" >/dev/null 2>&1 &
    pids+=($!)
done
service_pid=${pids[1]}
for port in "$one" "$two"; do
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.2; done
done

dotnet "$root/LockService.Bench/bin/Release/net10.0/LockService.Bench.dll" elections \
    --url "http://127.0.0.1:$one" --url2 "http://127.0.0.1:$two" \
    --rounds "$ROUNDS" -c "$OBSERVERS" -d "$IDLE" --pid "$service_pid"
