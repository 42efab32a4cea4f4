#!/usr/bin/env bash
# CPU time the service spends per acquire+release cycle, two builds compared in alternating runs.
#
#   LockService.Bench/cpu-per-cycle.sh BEFORE_DIR AFTER_DIR [PAIRS]
#
# BEFORE_DIR and AFTER_DIR are published builds (dotnet publish LockService.Api -c Release -o DIR). Each gets its
# own redis-server (persistence off) and runs in Production, logging to a file. Each is warmed up by 10 s of
# `cycles` (JIT tiering); then PAIRS (default 5) pairs of runs alternate before, after. A run is `cycles -c 50
# -d 8 --warmup 2`; the service's utime+stime (/proc/PID/stat) is read when its measured window opens and closes,
# and divided by the cycles the bench counted in that window. CPU per cycle is far steadier than cycles/s on a
# shared machine, but both are printed. Environment: BENCH (the bench's dll), CONCURRENCY, DURATION, WARMUP, and
# PIN=1 to run each redis-server on CPU 1 and the services and the bench on CPU 0 (on a two-core machine: Redis's
# own work then no longer competes with the service for its core, which shows the service's own cost apart).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
pairs=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH:-$here/bin/Release/net10.0/LockService.Bench.dll}
concurrency=${CONCURRENCY:-50}
duration=${DURATION:-8}
warmup=${WARMUP:-2}
ticks=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/cpu-per-cycle.XXXXXX)
redis_cpu=()
dotnet_cpu=()
if [[ ${PIN:-0} == 1 ]]; then
    redis_cpu=(taskset -c 1)
    dotnet_cpu=(taskset -c 0)
fi

for dir in "$before" "$after"; do
    [[ -f $dir/LockService.Api.dll ]] || { echo "no LockService.Api.dll in $dir" >&2; exit 2; }
done
[[ -f $bench ]] || { echo "no bench at $bench: dotnet build LockService.Bench -c Release" >&2; exit 2; }

# shellcheck source=processes.sh
source "$here/processes.sh"

# utime + stime of a process, in clock ticks (fields 14 and 15; the command name, field 2, may hold spaces).
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    read -r -a fields <<<"$stat"
    echo $((fields[11] + fields[12]))
}

# Starts redis and the service of one build; prints "service_pid url". Run in this shell (not in a subshell),
# so that the processes it starts are in pids and stopped at the end.
start_target() {
    local name=$1 dir=$2 redis_port service_port
    redis_port=$(free_port)
    "${redis_cpu[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/$name-redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$redis_port" ping >/dev/null || { echo "$name: redis-server did not start on $redis_port" >&2; exit 2; }
    service_port=$(free_port)
    ASPNETCORE_ENVIRONMENT=Production Redis__ConnectionString=127.0.0.1:$redis_port \
        "${dotnet_cpu[@]}" dotnet "$dir/LockService.Api.dll" --urls "http://127.0.0.1:$service_port" >"$work/$name-service.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$service_port/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fs "http://127.0.0.1:$service_port/health/ready" >/dev/null || { echo "$name: the service is not ready; see $work/$name-service.log" >&2; exit 2; }
    echo "$pid http://127.0.0.1:$service_port"
}

# One measured run; prints "us_per_cycle cycles_per_sec".
measure() {
    local pid=$1 url=$2 out=$work/run.json err=$work/run.err start end cycles
    : >"$err"
    "${dotnet_cpu[@]}" dotnet "$bench" cycles --url "$url" -c "$concurrency" -d "$duration" --warmup "$warmup" >"$out" 2>"$err" &
    local bench_pid=$!
    # The bench says "measuring" once its probe is done and its loops start; the window opens after the warm-up.
    for _ in $(seq 200); do grep -q measuring "$err" && break; sleep 0.05; done
    grep -q measuring "$err" || { echo "the bench did not start measuring: $(cat "$err")" >&2; exit 2; }
    sleep "$warmup"
    start=$(cpu_ticks "$pid")
    sleep "$duration"
    end=$(cpu_ticks "$pid")
    wait "$bench_pid"
    cycles=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["cycles"])' "$out")
    python3 -c 'import sys; t,c,d,hz=map(float,sys.argv[1:]); print(f"{t/hz/c*1e6:.1f} {c/d:.0f}")' \
        $((end - start)) "$cycles" "$duration" "$ticks"
}

start_target before "$before" >"$work/before.target"
start_target after "$after" >"$work/after.target"
read -r before_pid before_url <"$work/before.target"
read -r after_pid after_url <"$work/after.target"
echo "before: $before (pid $before_pid, $before_url)"
echo "after:  $after (pid $after_pid, $after_url)"
echo "logs in $work; $pairs pairs of cycles -c $concurrency -d $duration --warmup $warmup; CLK_TCK $ticks"

for target in "$before_url" "$after_url"; do
    "${dotnet_cpu[@]}" dotnet "$bench" cycles --url "$target" -c "$concurrency" -d 10 --warmup 0 --json-only >/dev/null 2>&1
done

results=()
printf '%-5s %-7s %12s %10s\n' pair target 'us/cycle' 'cycles/s'
for pair in $(seq "$pairs"); do
    read -r b_us b_rate < <(measure "$before_pid" "$before_url")
    printf '%-5s %-7s %12s %10s\n' "$pair" before "$b_us" "$b_rate"
    read -r a_us a_rate < <(measure "$after_pid" "$after_url")
    printf '%-5s %-7s %12s %10s\n' "$pair" after "$a_us" "$a_rate"
    results+=("$b_us $b_rate $a_us $a_rate")
done

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
for name, us, rate in (("before", 0, 1), ("after", 2, 3)):
    cpu = [r[us] for r in rows]; cps = [r[rate] for r in rows]
    print(f"{name:7} us/cycle mean {statistics.mean(cpu):.1f} (min-max {min(cpu):.1f}-{max(cpu):.1f}), "
          f"cycles/s mean {statistics.mean(cps):.0f} (min-max {min(cps):.0f}-{max(cps):.0f})")
ratios = [r[2] / r[0] for r in rows]
means = statistics.mean([r[2] for r in rows]) / statistics.mean([r[0] for r in rows])
pairs = " ".join("%.3f" % x for x in ratios)
print(f"after/before us/cycle: {means:.3f} of the means; pair by pair {pairs} (median {statistics.median(ratios):.3f})")
'
