#!/usr/bin/env bash
# Bytes the lease engine allocates per plain lock acquire+release cycle, for one or more checkouts of the repository.
#
#   LockService.Bench/engine-alloc.sh CHECKOUT [CHECKOUT...]
#
# Each CHECKOUT is a directory with the repository at some commit (git worktree add /tmp/old 15d2154). The program in
# engine-alloc/ is built against that checkout's LockService.Core (with the older LockEngine API when the checkout has
# no LeaseEngine) and run against a redis-server of its own: 5,000 cycles of warm-up, then five rounds of CYCLES
# (default 20,000) on one task, each printed as bytes per cycle (GC.GetTotalAllocatedBytes, precise). Allocation counts
# do not depend on the machine's load: two runs of one build agree to the byte.
set -euo pipefail
if [[ $# -lt 1 ]]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/engine-alloc.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
for checkout in "$@"; do
    checkout=$(cd "$checkout" && pwd)
    dir=$work/$(echo "$checkout" | tr '/' '_')
    mkdir -p "$dir"
    define=""
    [[ -f $checkout/LockService.Core/Leases/LeaseEngine.cs ]] || define="<DefineConstants>LOCK_ENGINE</DefineConstants>"
    cat >"$dir/engine-alloc.csproj" <<PROJECT
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable><ImplicitUsings>enable</ImplicitUsings>
    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>$define
  </PropertyGroup>
  <ItemGroup>
    <Compile Include="$here/engine-alloc/Program.cs" />
    <ProjectReference Include="$checkout/LockService.Core/LockService.Core.csproj" />
  </ItemGroup>
</Project>
PROJECT
    dotnet build "$dir/engine-alloc.csproj" -c Release -nologo -v q -o "$dir/out" >"$dir/build.log" 2>&1 || { cat "$dir/build.log" >&2; exit 1; }
    echo "$checkout: $(dotnet "$dir/out/engine-alloc.dll" "127.0.0.1:$port" "${CYCLES:-20000}" | tr '\n' ' ')bytes per cycle"
done
