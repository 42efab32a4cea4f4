#!/usr/bin/env bash
# Redis's own work per acquire+release cycle, in CPU instructions, for one or more builds of the service.
#
#   LockService.Bench/redis-work-per-cycle.sh BUILD_DIR [BUILD_DIR...]
#
# Each BUILD_DIR is a published service (dotnet publish LockService.Api -c Release -o DIR). For each, a redis-server
# runs under valgrind's callgrind, counting only the instructions spent inside EVALSHA/EVAL (the lock scripts and the
# commands they run); the service runs against it with `cycles -c 4 -d 20` of load, and the count is divided by the
# cycles the bench counted (warm-up included, as callgrind counts it). Instruction counts do not depend on the load
# of a shared machine, unlike times: two runs of one build agree within a few percent. Needs valgrind
# (apt-get install valgrind); Redis runs about 50 times slower under it, which is why the load is light.
# WHOLE=1 counts all that redis-server does instead (reading and answering commands, key expiry, its start and
# idle time), divided the same way.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH:-$here/bin/Release/net10.0/LockService.Bench.dll}
[[ -f $bench ]] || { echo "no bench at $bench: dotnet build LockService.Bench -c Release" >&2; exit 2; }
work=$(mktemp -d /tmp/redis-work.XXXXXX)
collect=(--collect-atstart=no --toggle-collect=evalShaCommand --toggle-collect=evalCommand)
scope="in Redis's scripts"
if [[ ${WHOLE:-0} == 1 ]]; then
    collect=(--collect-atstart=yes)
    scope="in all of redis-server (start, network, expiry, idle included)"
fi
# shellcheck source=processes.sh
source "$here/processes.sh"

for dir in "$@"; do
    dir=$(cd "$dir" && pwd)
    [[ -f $dir/LockService.Api.dll ]] || { echo "no LockService.Api.dll in $dir" >&2; exit 2; }
    redis_port=$(free_port)
    service_port=$(free_port)
    out=$work/callgrind.$redis_port
    valgrind --tool=callgrind "${collect[@]}" \
        --callgrind-out-file="$out" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        >"$work/redis.$redis_port.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.2; done
    ASPNETCORE_ENVIRONMENT=Production Redis__ConnectionString=127.0.0.1:$redis_port Redis__TimeoutMs=10000 \
        dotnet "$dir/LockService.Api.dll" --urls "http://127.0.0.1:$service_port" >"$work/service.$service_port.log" 2>&1 &
    service_pid=$!
    pids+=("$service_pid")
    for _ in $(seq 150); do curl -fs "http://127.0.0.1:$service_port/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
    dotnet "$bench" cycles --url "http://127.0.0.1:$service_port" -c 4 -d 20 --warmup 0 --json-only >"$work/bench.json" 2>/dev/null
    kill "$service_pid"; wait "$service_pid" 2>/dev/null || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    wait "$redis_pid" 2>/dev/null || true
    python3 - "$out" "$work/bench.json" "$dir" "$scope" <<'PY'
import json, re, sys
instructions = int(re.search(r'^(?:summary|totals): (\d+)', open(sys.argv[1]).read(), re.M).group(1))
report = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
# The probe (one acquire, inspect and release) and the cycles in flight at the window's edges are not counted:
# a few cycles in thousands.
cycles = report["cycles"]
print(f"{sys.argv[3]}: {instructions / cycles:,.0f} instructions {sys.argv[4]} per acquire+release cycle ({cycles} cycles)")
PY
done
