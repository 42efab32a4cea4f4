#!/usr/bin/env bash
# What operator listings with random prefixes cost Redis, and what they do to the acquires running beside them, for one
# or more builds of the service.
#
#   LockService.Bench/listing-load.sh BUILD_DIR [BUILD_DIR...]
#
# Each BUILD_DIR is a published service (dotnet publish LockService.Api -c Release -o DIR). For each, a redis-server of
# its own on 127.0.0.1 gets LOCKS (100000) held locks, copied with DUMP/RESTORE from one lock the service took (so in
# its exact format). Then `cycles -c 4` (acquire+release on other keys) runs twice for SECONDS (20): alone, then with
# LISTINGS (200) requests of GET /admin/locks with a random prefix (matching nothing, the costliest kind) sent at an
# even pace over the window. Prints SCAN's calls and total usec from INFO commandstats over the listings, the listings'
# latency, and the cycles' acquire p50/p99 alone and beside the listings.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH:-$here/bin/Release/net10.0/LockService.Bench.dll}
[[ -f $bench ]] || { echo "no bench at $bench: dotnet build LockService.Bench -c Release" >&2; exit 2; }
locks=${LOCKS:-100000}
listings=${LISTINGS:-200}
seconds=${SECONDS_PER_RUN:-20}
work=$(mktemp -d /tmp/listing-load.XXXXXX)
# shellcheck source=processes.sh
source "$here/processes.sh"

# The p50 and p99 of the acquires in a cycles run's JSON line.
acquire_latency() {
    python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("acquire p50 %s ms, p99 %s ms, %s cycles/s" % (r["acquireP50Ms"], r["acquireP99Ms"], r["cyclesPerSec"]))' "$1"
}

for dir in "$@"; do
    dir=$(cd "$dir" && pwd)
    [[ -f $dir/LockService.Api.dll ]] || { echo "no LockService.Api.dll in $dir" >&2; exit 2; }
    redis_port=$(free_port)
    service_port=$(free_port)
    url=http://127.0.0.1:$service_port
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.$redis_port.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.2; done
    ASPNETCORE_ENVIRONMENT=Production Redis__ConnectionString=127.0.0.1:$redis_port \
        dotnet "$dir/LockService.Api.dll" --urls "$url" >"$work/service.$service_port.log" 2>&1 &
    service_pid=$!
    pids+=("$service_pid")
    for _ in $(seq 150); do curl -fs "$url/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done

    # One lock taken by the service, then its keys copied under LOCKS names, pipelined.
    curl -fs -X POST "$url/locks/held-probe?ttlMs=3600000&owner=listing-load" >/dev/null
    python3 - "$redis_port" "$locks" <<'PY'
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")

def command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out

def reply():
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        return None if n < 0 else f.read(n + 2)[:-2]
    if line[:1] == b"*":
        return [reply() for _ in range(int(line[1:]))]
    if line[:1] == b"-":
        raise SystemExit(line.decode())
    return line[1:].strip()

s.sendall(command("KEYS", "lock:{held-probe}*"))
keys = reply()
templates = []
for key in keys:
    s.sendall(command("DUMP", key) + command("PTTL", key))
    payload, ttl = reply(), int(reply())
    templates.append((key[len(b"lock:{held-probe}"):], payload, max(ttl, 0)))
for start in range(0, count, 5000):
    batch = b"".join(command("RESTORE", b"lock:{held-%06d}%s" % (i, suffix), ttl, payload, "REPLACE")
                     for i in range(start, min(start + 5000, count)) for suffix, payload, ttl in templates)
    s.sendall(batch)
    for _ in range((min(start + 5000, count) - start) * len(templates)):
        reply()
print(f"{count} locks of {len(templates)} keys each copied", file=sys.stderr)
PY

    dotnet "$bench" cycles --url "$url" -c 4 -d "$seconds" --warmup 2 --json-only >"$work/alone.json" 2>/dev/null

    dotnet "$bench" cycles --url "$url" -c 4 -d "$seconds" --warmup 2 --json-only >"$work/beside.json" 2>/dev/null &
    cycles_pid=$!
    pids+=("$cycles_pid")
    sleep 2
    redis-cli -p "$redis_port" config resetstat >/dev/null
    listing_pids=()
    pause=$(python3 -c "print($seconds / $listings)")
    for _ in $(seq "$listings"); do
        prefix=z$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 30 "$url/admin/locks?prefix=$prefix" >>"$work/listings.$service_port" &
        listing_pids+=("$!")
        sleep "$pause"
    done
    wait "${listing_pids[@]}"
    redis-cli -p "$redis_port" info commandstats | tr -d '\r' >"$work/stats.$redis_port"
    wait "$cycles_pid"

    echo "== $dir: $locks held locks, $listings listings with random prefixes over $seconds s"
    grep -E '^cmdstat_scan:' "$work/stats.$redis_port" || echo "cmdstat_scan: none"
    sort -n -k2 "$work/listings.$service_port" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
codes = {}
for code, _ in rows: codes[code] = codes.get(code, 0) + 1
times = sorted(float(t) * 1000 for _, t in rows)
print(f"listings: statuses {codes}, p50 {times[len(times) // 2]:.1f} ms, p99 {times[int(len(times) * 0.99) - 1]:.1f} ms, max {times[-1]:.1f} ms")'
    echo "cycles alone:          $(acquire_latency "$work/alone.json")"
    echo "cycles beside listings: $(acquire_latency "$work/beside.json")"
    kill "$service_pid"; wait "$service_pid" 2>/dev/null || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
done
rm -rf "$work"
