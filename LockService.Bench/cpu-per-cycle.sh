#!/usr/bin/env bash
# CPU time the service spends per acquire+release cycle, two builds compared in alternating runs.
#
#   LockService.Bench/cpu-per-cycle.sh BEFORE_DIR AFTER_DIR [PAIRS]
#
# BEFORE_DIR and AFTER_DIR are published builds (dotnet publish LockService.Api -c Release -o DIR). Each gets its
# own redis-server (persistence off) and runs in Production, logging to a file. Each is first run SETTLE seconds
# (default 60) of `cycles` in 10 s runs, until its JIT is quiet: methods called once a second or once a connection
# reach tier 1 only after 30 calls (counted with DOTNET_JitDisasmSummary, one build under this load: 2,100 methods
# compiled in its second 10 s, 400 in the third, 90 in the fourth, 0-50 from the sixth on), and a build with more
# code would otherwise pay more of that one-time cost inside the first measured windows. Then PAIRS (default 5)
# pairs of runs alternate before, after. A run is `cycles -c 50 -d 8 --warmup 2`; the service's utime+stime
# (/proc/PID/stat) is read when its measured window opens and closes, and divided by the cycles the bench counted
# in that window; its redis-server's likewise (the work the scripts give Redis, printed beside it). CPU per cycle
# is far steadier than cycles/s on a shared machine, but both are printed. Environment: BENCH (the bench's dll),
# CONCURRENCY, DURATION, WARMUP, SETTLE, RATE (cycles/s of the measured runs, paced: both builds at the same load; 0,
# the default, runs closed loops), BEFORE_ENV and AFTER_ENV (NAME=VALUE ... set for that build's service
# only), PIN=1 to run each redis-server on CPU 1 and the services and the bench on CPU 0 (on a two-core machine:
# Redis's own work then no longer competes with the service for its core, which shows the service's own cost apart),
# and ALLOC=1 to also print the bytes each build allocated per cycle (the runtime's total-allocated counter, read from
# /metrics as the window opens and closes: two scrapes per window, a few KB against megabytes of cycles).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
pairs=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH:-$here/bin/Release/net10.0/LockService.Bench.dll}
concurrency=${CONCURRENCY:-50}
rate=${RATE:-0}
duration=${DURATION:-8}
warmup=${WARMUP:-2}
settle=${SETTLE:-60}
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

# Starts redis and the service of one build; prints "service_pid url redis_pid". Run in this shell (not in a subshell),
# so that the processes it starts are in pids and stopped at the end.
start_target() {
    local name=$1 dir=$2 redis_port service_port
    local -a extra_env
    read -r -a extra_env <<<"${3:-}"
    redis_port=$(free_port)
    "${redis_cpu[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/$name-redis.log" 2>&1 &
    local redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$redis_port" ping >/dev/null || { echo "$name: redis-server did not start on $redis_port" >&2; exit 2; }
    service_port=$(free_port)
    env "${extra_env[@]}" ASPNETCORE_ENVIRONMENT=Production Redis__ConnectionString=127.0.0.1:$redis_port \
        "${dotnet_cpu[@]}" dotnet "$dir/LockService.Api.dll" --urls "http://127.0.0.1:$service_port" >"$work/$name-service.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$service_port/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fs "http://127.0.0.1:$service_port/health/ready" >/dev/null || { echo "$name: the service is not ready; see $work/$name-service.log" >&2; exit 2; }
    echo "$pid http://127.0.0.1:$service_port $redis_pid"
}

# The bytes the service has allocated since it started (ALLOC=1).
allocated() {
    curl -fs "$1/metrics" | awk '/^system_runtime_dotnet_gc_heap_total_allocated /{printf "%d", $2}'
}

# One measured run; prints "us_per_cycle cycles_per_sec redis_us_per_cycle bytes_per_cycle" (bytes 0 without ALLOC=1).
measure() {
    local pid=$1 url=$2 redis_pid=$3 out=$work/run.json err=$work/run.err start end redis_start redis_end cycles
    : >"$err"
    "${dotnet_cpu[@]}" dotnet "$bench" cycles --url "$url" -c "$concurrency" -d "$duration" --warmup "$warmup" --rate "$rate" >"$out" 2>"$err" &
    local bench_pid=$!
    # The bench says "measuring" once its probe is done and its loops start; the window opens after the warm-up.
    for _ in $(seq 200); do grep -q measuring "$err" && break; sleep 0.05; done
    grep -q measuring "$err" || { echo "the bench did not start measuring: $(cat "$err")" >&2; exit 2; }
    sleep "$warmup"
    local alloc_start=0 alloc_end=0
    [[ ${ALLOC:-0} == 1 ]] && alloc_start=$(allocated "$url")
    start=$(cpu_ticks "$pid")
    redis_start=$(cpu_ticks "$redis_pid")
    sleep "$duration"
    end=$(cpu_ticks "$pid")
    redis_end=$(cpu_ticks "$redis_pid")
    [[ ${ALLOC:-0} == 1 ]] && alloc_end=$(allocated "$url")
    wait "$bench_pid"
    cycles=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["cycles"])' "$out")
    python3 -c 'import sys; t,c,d,hz,r,a=map(float,sys.argv[1:]); print(f"{t/hz/c*1e6:.1f} {c/d:.0f} {r/hz/c*1e6:.1f} {a/c:.0f}")' \
        $((end - start)) "$cycles" "$duration" "$ticks" $((redis_end - redis_start)) $((alloc_end - alloc_start))
}

start_target before "$before" "${BEFORE_ENV:-}" >"$work/before.target"
start_target after "$after" "${AFTER_ENV:-}" >"$work/after.target"
read -r before_pid before_url before_redis <"$work/before.target"
read -r after_pid after_url after_redis <"$work/after.target"
echo "before: $before (pid $before_pid, $before_url) ${BEFORE_ENV:-}"
echo "after:  $after (pid $after_pid, $after_url) ${AFTER_ENV:-}"
echo "logs in $work; settle ${settle}s each, then $pairs pairs of cycles -c $concurrency -d $duration --warmup $warmup --rate $rate; CLK_TCK $ticks"

for target in "$before_url" "$after_url"; do
    for _ in $(seq $(((settle + 9) / 10))); do
        "${dotnet_cpu[@]}" dotnet "$bench" cycles --url "$target" -c "$concurrency" -d 10 --warmup 0 --json-only >/dev/null 2>&1
    done
done

results=()
printf '%-5s %-7s %12s %10s %18s %12s\n' pair target 'us/cycle' 'cycles/s' 'redis us/cycle' 'bytes/cycle'
for pair in $(seq "$pairs"); do
    read -r b_us b_rate b_redis b_bytes < <(measure "$before_pid" "$before_url" "$before_redis")
    printf '%-5s %-7s %12s %10s %18s %12s\n' "$pair" before "$b_us" "$b_rate" "$b_redis" "$b_bytes"
    read -r a_us a_rate a_redis a_bytes < <(measure "$after_pid" "$after_url" "$after_redis")
    printf '%-5s %-7s %12s %10s %18s %12s\n' "$pair" after "$a_us" "$a_rate" "$a_redis" "$a_bytes"
    results+=("$b_us $b_rate $b_redis $a_us $a_rate $a_redis $b_bytes $a_bytes")
done

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
def spread(xs, digits):
    return "mean %.*f (min-max %.*f-%.*f)" % (digits, statistics.mean(xs), digits, min(xs), digits, max(xs))
for name, at in (("before", 0), ("after", 3)):
    cpu, cps, redis = (spread([r[at + i] for r in rows], d) for i, d in ((0, 1), (1, 0), (2, 1)))
    print(f"{name:7} us/cycle {cpu}, cycles/s {cps}, redis us/cycle {redis}")
def compare(label, at):
    ratios = [r[3 + at] / r[at] for r in rows]
    means = statistics.mean([r[3 + at] for r in rows]) / statistics.mean([r[at] for r in rows])
    pairs = " ".join("%.3f" % x for x in ratios)
    print(f"after/before {label}: {means:.3f} of the means; pair by pair {pairs} (median {statistics.median(ratios):.3f})")
compare("us/cycle", 0)
compare("redis us/cycle", 2)
if any(r[6] > 0 for r in rows):
    print("bytes/cycle before " + spread([r[6] for r in rows], 0) + ", after " + spread([r[7] for r in rows], 0))
'
