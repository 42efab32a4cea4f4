#!/usr/bin/env bash
# Runs the README's first command, `docker compose up --build`, on a real Docker engine and
# checks through the published ports what a user would:
#   - default profile (:8080): health, acquire and release with curl, a lock that survives
#     `docker compose restart redis` (AOF), lockctl inside the container, the container's
#     user (app, 1654), /swagger and /ui;
#   - profile "scale" (nginx on :8081 in front of 3 replicas): a waiter handed the lock by a
#     release that another replica served, a lock held by a stream (Accept:
#     text/event-stream) and released when the stream closes, and no token in nginx's access
#     log (nor the service's) whatever the letter case of /locks and /semaphores paths;
#   - then `docker compose down -v`.
#
# On a machine without Docker it installs docker.io (and debootstrap) from Debian and starts
# dockerd (stopped again at exit). When an image the files name (redis:7.4, nginx:1.27-alpine,
# mcr.microsoft.com/dotnet/sdk:10.0 and aspnet:10.0) is not on the engine, and no image
# registry can be reached (as on CI), it builds a local stand-in under that exact name, so
# the real Dockerfile and docker-compose.yml run unchanged:
#   - a Debian bookworm root file system from debootstrap (docker import);
#   - sdk:10.0 / aspnet:10.0: this machine's .NET install, the user app (uid 1654, $APP_UID),
#     and for the SDK this machine's CA bundle and NuGet settings;
#   - redis:7.4: Debian's redis-server, with protected mode off as in the official image;
#   - nginx:1.27-alpine: Debian's nginx (1.22; deploy/nginx.conf needs nothing newer), its
#     logs on the container's stdout/stderr as in the official image.
# Stand-ins carry the label lockservice.standin=<hash of their inputs>: a second run reuses
# them, and a real image (no label) is never replaced. Pull the real images first
# (`docker compose --profile scale pull`) where a registry is reachable.
#
# The image build restores NuGet packages: it is run once with `docker build --network host`
# (the build's RUN steps then reach the package source the way this machine does), which
# fills the engine's build cache, so the compose build that follows is all cache hits.
#
# Prints one "smoke: ..." line per step; exits non-zero with "smoke: FAIL ..." at the first
# failed check. Usage, from the repo root, as root: bash deploy/smoke-test.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export COMPOSE_PROJECT_NAME=lockservice-smoke
# docker-compose 1.x: build through the engine's API (the classic builder, whose cache the
# --network host build fills), not through the docker CLI (whose BuildKit needs buildx).
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
api=http://127.0.0.1:8080
lb=http://127.0.0.1:8081

started=$(date +%s)
step() { echo "smoke: [$(( $(date +%s) - started ))s] $*"; }
reported=0
fail() { echo "smoke: FAIL $*" >&2; reported=1; exit 1; }

tmp=$(mktemp -d)
dockerd_pid=""
compose_up=0
bg_pids=()
cleanup() {
    local rc=$?
    set +e
    for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
    if [ "$compose_up" -eq 1 ]; then
        if [ "$rc" -ne 0 ]; then
            echo "smoke: last service logs:" >&2
            "${compose[@]}" --profile scale logs --no-color --tail 30 >&2 2>&1
        fi
        step "docker compose down -v"
        "${compose[@]}" --profile scale down -v --remove-orphans >"$tmp/down.log" 2>&1 \
            || { cat "$tmp/down.log" >&2; echo "smoke: FAIL docker compose down -v" >&2; rc=1; }
    fi
    if [ -n "$dockerd_pid" ]; then
        step "stopping the dockerd this script started (pid $dockerd_pid)"
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -rf "$tmp"
    [ "$rc" -eq 0 ] || [ "$reported" -eq 1 ] || echo "smoke: FAIL (a command exited $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Docker engine and compose ----------------------------------------------------------
need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    need_pkgs+=(docker-compose)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    step "installing ${need_pkgs[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >"$tmp/apt.log" 2>&1 \
        || { tail -n 20 "$tmp/apt.log" >&2; fail "apt-get install ${need_pkgs[*]}"; }
fi
command -v docker >/dev/null 2>&1 || fail "no docker client on PATH"

if ! docker info >/dev/null 2>&1; then
    step "starting dockerd (log: /var/log/lockservice-smoke-dockerd.log)"
    dockerd >/var/log/lockservice-smoke-dockerd.log 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { tail -n 20 /var/log/lockservice-smoke-dockerd.log >&2; fail "dockerd exited at start"; }
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { tail -n 20 /var/log/lockservice-smoke-dockerd.log >&2; fail "dockerd did not answer within 60 s"; }
fi
step "docker engine $(docker version -f '{{.Server.Version}}')"

# The README's `docker compose`; where the Compose v2 plugin is not installed (Debian
# bookworm has no package of it), Debian's docker-compose 1.29, which reads the same file.
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose -f docker-compose.yml)
else
    compose=(docker-compose -f docker-compose.yml)
fi
step "compose: ${compose[0]} $("${compose[@]:0:${#compose[@]}-2}" version --short 2>/dev/null || echo '?')"

for port in 8080 8081; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port is in use by another program: the compose file publishes it"
    fi
done

# ---- stand-ins for the base images --------------------------------------------------------
command -v dotnet >/dev/null 2>&1 || fail "no dotnet on PATH (its install is copied into the .NET stand-ins)"
dotnet_dir=$(dirname "$(readlink -f "$(command -v dotnet)")")
ca_bundle=/etc/ssl/certs/ca-certificates.crt
nuget_config="$HOME/.nuget/NuGet/NuGet.Config"
[ -f "$nuget_config" ] || nuget_config=""
# NuGet and .NET settings of this machine's environment (how its NuGet reaches its source).
nuget_env=$(env | grep -E '^(NUGET_[A-Z_]+|DOTNET_CLI_TELEMETRY_OPTOUT|DOTNET_NOLOGO)=' | sort || true)

mkdir -p "$tmp/standin"
# shellcheck disable=SC2054  # the commas are debootstrap's list of packages
debootstrap_args=(--variant=minbase --include=ca-certificates,libicu72 bookworm)
debootstrap_mirror=http://deb.debian.org/debian
echo "debootstrap ${debootstrap_args[*]} ROOT $debootstrap_mirror" >"$tmp/standin/base.recipe"
cat >"$tmp/standin/packages.Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
# No service may start while packages install (the build shares the host's network).
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools nginx >/dev/null && rm -rf /var/lib/apt/lists/*
EOF
cat >"$tmp/standin/redis.Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
# As the official image: protected mode off (a password-less Redis answers other containers),
# data in /data, run as the redis user.
RUN printf '#!/bin/sh\nif [ "$1" = redis-server ]; then shift; exec redis-server --protected-mode no "$@"; fi\nexec "$@"\n' \
      > /usr/local/bin/docker-entrypoint.sh && chmod 755 /usr/local/bin/docker-entrypoint.sh \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF
cat >"$tmp/standin/nginx.Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
# As the official image: only conf.d/ serves, logs go to the container's stdout/stderr.
RUN rm -f /etc/nginx/sites-enabled/default \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
cat >"$tmp/standin/aspnet.Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
COPY dotnet-runtime/ /usr/share/dotnet/
# As the official image: the unprivileged user app (uid 1654) in $APP_UID, port 8080.
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && groupadd -g 1654 app && useradd -u 1654 -g app -m -d /home/app -s /bin/sh app
ENV APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true
EOF
cat >"$tmp/standin/sdk.Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
COPY dotnet/ /usr/share/dotnet/
# This machine's CA bundle and NuGet settings, so that restore reaches the package source
# the way `dotnet restore` on this machine does.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY nuget/ /root/.nuget/NuGet/
COPY nuget.env /etc/lockservice-standin-nuget.env
ENV NUGET_CERT_REVOCATION_MODE=offline DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
    DOTNET_GENERATE_ASPNET_CERTIFICATE=false DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
EOF
# The hash of every input: the recipes, this script's stand-in version, the .NET install
# (its file list with sizes), the CA bundle, the NuGet settings.
standin_hash=$(
    {
        echo "standin-v1"
        cat "$tmp/standin/"*
        (cd "$dotnet_dir" && find . -type f -printf '%p %s\n' | sort)
        sha256sum "$ca_bundle" | cut -d' ' -f1
        [ -z "$nuget_config" ] || cat "$nuget_config"
        echo "$nuget_env"
    } | sha256sum | cut -c1-16
)
standin_label() { docker image inspect -f '{{index .Config.Labels "lockservice.standin"}}' "$1" 2>/dev/null || echo "absent"; }
# "build": no image of that name, or a stand-in from other inputs; "real": an image that is
# no stand-in (pulled); "cached": this stand-in.
standin_state() {
    local label
    label=$(standin_label "$1")
    case "$label" in
        absent) echo build ;;
        "$standin_hash") echo cached ;;
        ""|"<no value>") echo real ;;
        *) echo build ;;
    esac
}

base_image="lockservice-standin/bookworm:$standin_hash"
packages_image="lockservice-standin/packages:$standin_hash"
ensure_base() {
    if docker image inspect "$base_image" >/dev/null 2>&1; then return; fi
    step "stand-ins: debootstrap Debian bookworm (minbase) and docker import as $base_image"
    local root="$tmp/rootfs"
    debootstrap "${debootstrap_args[@]}" "$root" "$debootstrap_mirror" >"$tmp/debootstrap.log" 2>&1 \
        || { tail -n 20 "$tmp/debootstrap.log" >&2; fail "debootstrap bookworm"; }
    rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    # The engine sets /etc/hosts and /etc/resolv.conf of each container itself.
    : >"$root/etc/resolv.conf"
    tar -C "$root" -c . | docker import -c "LABEL lockservice.standin=$standin_hash" - "$base_image" >/dev/null \
        || fail "docker import of the bookworm root file system"
    rm -rf "$root"
}
# build_standin NAME RECIPE BASE [context files: SRC=DEST ...]
build_standin() {
    local name=$1 recipe=$2 base=$3
    shift 3
    local ctx="$tmp/ctx-$recipe"
    mkdir -p "$ctx"
    cp "$tmp/standin/$recipe.Dockerfile" "$ctx/Dockerfile"
    for pair in "$@"; do
        mkdir -p "$ctx/$(dirname "${pair#*=}")"
        cp -a "${pair%%=*}" "$ctx/${pair#*=}"
    done
    docker build --network host -q --build-arg "BASE=$base" --label "lockservice.standin=$standin_hash" \
        -t "$name" "$ctx" >"$tmp/build-$recipe.log" 2>&1 \
        || { tail -n 30 "$tmp/build-$recipe.log" >&2; fail "building the stand-in $name"; }
    rm -rf "$ctx"
}
ensure_packages() {
    docker image inspect "$packages_image" >/dev/null 2>&1 && return
    ensure_base
    step "stand-ins: Debian's redis-server and nginx into $packages_image"
    build_standin "$packages_image" packages "$base_image"
}

redis_state=$(standin_state redis:7.4)
nginx_state=$(standin_state nginx:1.27-alpine)
aspnet_state=$(standin_state mcr.microsoft.com/dotnet/aspnet:10.0)
sdk_state=$(standin_state mcr.microsoft.com/dotnet/sdk:10.0)
step "base images: redis:7.4 $redis_state, nginx:1.27-alpine $nginx_state, aspnet:10.0 $aspnet_state, sdk:10.0 $sdk_state (stand-in inputs $standin_hash)"
if [ "$redis_state" = build ]; then
    ensure_packages
    step "stand-ins: redis:7.4 (Debian's redis-server)"
    build_standin redis:7.4 redis "$packages_image"
fi
if [ "$nginx_state" = build ]; then
    ensure_packages
    step "stand-ins: nginx:1.27-alpine (Debian's nginx)"
    build_standin nginx:1.27-alpine nginx "$packages_image"
fi
if [ "$aspnet_state" = build ] || [ "$sdk_state" = build ]; then
    # The runtime image gets the .NET host and the shared frameworks only; the SDK all of it.
    [ -d "$dotnet_dir/shared/Microsoft.AspNetCore.App" ] || fail "no ASP.NET Core runtime in $dotnet_dir"
    ensure_base
    rt="$tmp/dotnet-runtime"
    mkdir -p "$rt/shared"
    cp -a "$dotnet_dir/dotnet" "$dotnet_dir/host" "$rt/"
    cp -a "$dotnet_dir/shared/Microsoft.NETCore.App" "$dotnet_dir/shared/Microsoft.AspNetCore.App" "$rt/shared/"
    step "stand-ins: mcr.microsoft.com/dotnet/aspnet:10.0 (.NET runtime from $dotnet_dir)"
    build_standin mcr.microsoft.com/dotnet/aspnet:10.0 aspnet "$base_image" "$rt=dotnet-runtime"
    rm -rf "$rt"
    aspnet_state=cached
fi
if [ "$sdk_state" = build ]; then
    [ "$aspnet_state" = cached ] || fail "the SDK stand-in builds on the aspnet stand-in, but aspnet:10.0 is a real image here"
    mkdir -p "$tmp/nuget"
    [ -z "$nuget_config" ] || cp "$nuget_config" "$tmp/nuget/NuGet.Config"
    echo "$nuget_env" >"$tmp/nuget.env"
    step "stand-ins: mcr.microsoft.com/dotnet/sdk:10.0 ($(dotnet --version) from $dotnet_dir, this machine's CA bundle and NuGet settings)"
    build_standin mcr.microsoft.com/dotnet/sdk:10.0 sdk mcr.microsoft.com/dotnet/aspnet:10.0 \
        "$dotnet_dir=dotnet" "$ca_bundle=ca-certificates.crt" "$tmp/nuget=nuget" "$tmp/nuget.env=nuget.env"
fi

# Stand-in bases from other inputs are no longer used by anything.
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' 'lockservice-standin/*'); do
    case "$old" in *":$standin_hash") ;; *) docker rmi "$old" >/dev/null 2>&1 || true ;; esac
done

# ---- the image ------------------------------------------------------------------------------
step "docker build --network host . (fills the build cache: NuGet restore needs the package source)"
docker build --network host -t lockservice-smoke/prebuild . >"$tmp/prebuild.log" 2>&1 \
    || { tail -n 40 "$tmp/prebuild.log" >&2; fail "docker build of the Dockerfile"; }

# ---- helpers ----------------------------------------------------------------------------------
# http METHOD URL [curl args...]: sets $status and $body.
http() {
    local method=$1 url=$2
    shift 2
    status=$(curl -s --path-as-is -o "$tmp/body" -w '%{http_code}' --max-time 30 -X "$method" "$@" "$url") || status="000"
    body=$(cat "$tmp/body" 2>/dev/null || true)
}
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# call WANT METHOD URL [curl args...]: http, and fail unless it answered WANT. The message
# shows the path with any token masked.
call() {
    local want=$1
    shift
    http "$@"
    [ "$status" = "$want" ] || fail "$1 $(sed -E 's#^http://[^/]+##; s#[0-9a-f]{32}#{token}#g' <<<"$2"): expected HTTP $want, got $status: $body"
}
# wait_healthy SERVICE COUNT SECONDS [PROFILE ARGS]
wait_healthy() {
    local service=$1 count=$2 seconds=$3
    shift 3
    local deadline=$(( $(date +%s) + seconds )) ids healthy
    while :; do
        ids=$("${compose[@]}" "$@" ps -q "$service" 2>/dev/null || true)
        healthy=0
        for id in $ids; do
            [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")" = healthy ] \
                && healthy=$((healthy + 1))
        done
        [ "$healthy" -ge "$count" ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || fail "$service: $healthy of $count containers healthy after ${seconds}s"
        sleep 1
    done
}
# until_status WANT SECONDS METHOD URL: repeats the request until it answers WANT.
until_status() {
    local want=$1 seconds=$2 method=$3 url=$4
    local deadline=$(( $(date +%s) + seconds ))
    while :; do
        http "$method" "$url"
        [ "$status" = "$want" ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
suffix="$$-$RANDOM"

# ---- default profile: the README's first command ----------------------------------------------
step "${compose[*]} up --build -d"
compose_up=1
"${compose[@]}" up --build -d >"$tmp/up.log" 2>&1 || { tail -n 40 "$tmp/up.log" >&2; fail "docker compose up --build -d"; }
wait_healthy redis 1 60
wait_healthy api 1 120
step "ok: redis and api healthy"

call 200 GET "$api/health/ready"
step "ok: GET $api/health/ready -> 200"

key="smoke-lock-$suffix"
call 201 POST "$api/locks/$key?ttlMs=60000"
token=$(json "$body" token)
fence=$(json "$body" fencingToken)
call 204 DELETE "$api/locks/$key/$token"
call 404 GET "$api/locks/$key"
step "ok: acquire (201, fencing token $fence) and release (204) with curl"

call 201 POST "$api/locks/$key?ttlMs=120000"
token=$(json "$body" token)
step "docker compose restart redis (a held lock must survive: AOF)"
"${compose[@]}" restart redis >"$tmp/restart.log" 2>&1 || { cat "$tmp/restart.log" >&2; fail "docker compose restart redis"; }
wait_healthy redis 1 60
until_status 200 30 GET "$api/locks/$key/$token" \
    || fail "the lock held before the Redis restart: GET /locks/$key/{token} answered $status: $body"
step "ok: the lock is still held by its token after the Redis restart"

lockctl_out=$("${compose[@]}" exec -T api lockctl inspect "$key" 2>&1) \
    || fail "lockctl inspect $key in the api container: $lockctl_out"
grep -q "$key" <<<"$lockctl_out" || fail "lockctl inspect $key did not name the key: $lockctl_out"
if grep -q "$token" <<<"$lockctl_out"; then fail "lockctl inspect printed the token"; fi
step "ok: lockctl inspect in the container: $(head -n 1 <<<"$lockctl_out")"
call 204 DELETE "$api/locks/$key/$token"
if "${compose[@]}" exec -T api lockctl inspect "$key" >/dev/null 2>&1; then
    fail "lockctl inspect $key exits 0 on a free lock (expected 1)"
fi
step "ok: released; lockctl inspect then exits non-zero (free)"

user=$("${compose[@]}" exec -T api id -un 2>&1 | tr -d '\r') || fail "id in the api container: $user"
uid=$("${compose[@]}" exec -T api id -u 2>&1 | tr -d '\r') || fail "id -u in the api container: $uid"
[ "$user" = app ] && [ "$uid" = 1654 ] || fail "the api container runs as $user ($uid), not app (1654)"
# PID 1 is the service (the image's ENTRYPOINT in exec form).
main_cmd=$("${compose[@]}" exec -T api cat /proc/1/cmdline 2>&1 | tr '\0' ' ') || fail "reading the api container's PID 1: $main_cmd"
main_uid=$("${compose[@]}" exec -T api awk '/^Uid:/ {print $2}' /proc/1/status 2>&1 | tr -d '\r') || fail "reading the api container's PID 1: $main_uid"
grep -q 'LockService.Api.dll' <<<"$main_cmd" || fail "the api container's PID 1 is not the service: $main_cmd"
[ "$main_uid" = 1654 ] || fail "the service process runs as uid '${main_uid:-?}', not 1654"
step "ok: the container's user is app (uid 1654), the service process too"

for path in /swagger /ui; do
    status=$(curl -s -L -o /dev/null -w '%{http_code}' --max-time 30 "$api$path") || status=000
    [ "$status" = 200 ] || fail "GET $path answered $status"
done
step "ok: /swagger and /ui answer 200"

# ---- profile "scale": 3 replicas behind nginx --------------------------------------------------
step "${compose[*]} --profile scale up --build -d"
"${compose[@]}" --profile scale up --build -d >"$tmp/up-scale.log" 2>&1 \
    || { tail -n 40 "$tmp/up-scale.log" >&2; fail "docker compose --profile scale up --build -d"; }
wait_healthy api-scaled 3 150 --profile scale
until_status 200 60 GET "$lb/health/ready" || fail "nginx on :8081 did not answer /health/ready with 200 (last: $status $body)"
step "ok: 3 api-scaled replicas healthy, nginx answers on :8081"
lb_id=$("${compose[@]}" --profile scale ps -q lb)
lb_log() { docker logs "$lb_id" 2>/dev/null; }
# The upstream address nginx logged for the request whose User-Agent is $1.
upstream_of() { lb_log | awk -F'"' -v ua="$1" '$(NF-1) == ua { split($(NF-2), a, " "); print a[4] }' | tail -n 1; }

tokens=()
handed=0
for try in $(seq 1 10); do
    key="smoke-handoff-$suffix-$try"
    call 201 POST "$lb/locks/$key?ttlMs=30000" -A "smoke-holder-$try"
    holder=$(json "$body" token)
    holder_fence=$(json "$body" fencingToken)
    tokens+=("$holder")
    curl -s -o "$tmp/waiter" -w '%{http_code}' --max-time 30 -X POST -A "smoke-waiter-$try" \
        "$lb/locks/$key?ttlMs=30000&waitMs=20000" >"$tmp/waiter.status" &
    waiter=$!
    bg_pids+=("$waiter")
    # The waiter must be waiting in a replica when the lock is released: give its request
    # time to arrive, then check that it has not been answered.
    sleep 1
    kill -0 "$waiter" 2>/dev/null || fail "the waiter for $key returned before the release: $(cat "$tmp/waiter.status") $(cat "$tmp/waiter")"
    released_at=$(date +%s%N)
    call 204 DELETE "$lb/locks/$key/$holder" -A "smoke-release-$try"
    wait "$waiter" || fail "the waiter's curl failed"
    handoff_ms=$(( ($(date +%s%N) - released_at) / 1000000 ))
    [ "$(cat "$tmp/waiter.status")" = 201 ] || fail "the waiter for $key got $(cat "$tmp/waiter.status"): $(cat "$tmp/waiter")"
    waiter_token=$(json "$(cat "$tmp/waiter")" token)
    tokens+=("$waiter_token")
    [ "$(json "$(cat "$tmp/waiter")" fencingToken)" -gt "$holder_fence" ] || fail "the waiter's fencing token did not increase"
    [ "$handoff_ms" -lt 2000 ] || fail "the waiter got the lock ${handoff_ms} ms after the release (expected milliseconds)"
    call 204 DELETE "$lb/locks/$key/$waiter_token"
    from=$(upstream_of "smoke-release-$try")
    to=$(upstream_of "smoke-waiter-$try")
    [ -n "$from" ] && [ -n "$to" ] || fail "nginx's access log has no upstream address for the hand-off requests"
    if [ "$from" != "$to" ]; then
        step "ok: hand-off across replicas: released through $from, the waiter on $to got it within ${handoff_ms} ms"
        handed=1
        break
    fi
done
[ "$handed" -eq 1 ] || fail "in 10 hand-offs the release and the waiter always went to the same replica: nginx does not balance"
replicas_seen=$(lb_log | awk -F'"' '{ split($(NF-2), a, " "); if (a[4] ~ /:8080/) print a[4] }' | sort -u | wc -l)
step "ok: nginx sent requests to $replicas_seen distinct replicas so far"

# nginx re-resolves the replicas without a reload: a fourth replica (a new address) gets
# requests within the resolver's valid=10s.
first_three=$("${compose[@]}" --profile scale ps -q api-scaled)
"${compose[@]}" --profile scale up -d --no-deps --no-recreate --scale api-scaled=4 api-scaled >"$tmp/scale4.log" 2>&1 \
    || { tail -n 20 "$tmp/scale4.log" >&2; fail "docker compose up --scale api-scaled=4"; }
wait_healthy api-scaled 4 150 --profile scale
new_ip=""
for id in $("${compose[@]}" --profile scale ps -q api-scaled); do
    grep -qF "$id" <<<"$first_three" || new_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
done
[ -n "$new_ip" ] || fail "no fourth replica after docker compose up --scale api-scaled=4"
! lb_log | grep -qF " $new_ip:8080 " || fail "nginx's log shows the new replica's address $new_ip before it existed"
deadline=$(( $(date +%s) + 30 ))
until lb_log | grep -qF " $new_ip:8080 "; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "nginx sent no request to the new replica $new_ip within 30 s of it being healthy"
    http GET "$lb/health/ready" -A smoke-resolve
    sleep 0.1
done
step "ok: nginx found the new replica $new_ip by itself (no reload) and sent it requests"

key="smoke-stream-$suffix"
curl -s -N --max-time 60 -X POST -H 'Accept: text/event-stream' "$lb/locks/$key?ttlMs=3000" >"$tmp/stream" &
stream=$!
bg_pids+=("$stream")
deadline=$(( $(date +%s) + 15 ))
until grep -q '^event: acquired' "$tmp/stream"; do
    kill -0 "$stream" 2>/dev/null || fail "the stream for $key ended before 'event: acquired': $(cat "$tmp/stream")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "no 'event: acquired' on the stream for $key within 15 s"
    sleep 0.1
done
stream_token=$(sed -n 's/^data: //p' "$tmp/stream" | head -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
tokens+=("$stream_token")
# Held for longer than its ttlMs: the stream renews it.
sleep 4
call 200 GET "$lb/locks/$key"
kill "$stream"
wait "$stream" 2>/dev/null || true
closed_at=$(date +%s%N)
until_status 404 5 GET "$lb/locks/$key" || fail "the stream's lock $key was still held 5 s after the stream closed"
step "ok: a stream-held lock lived past its ttlMs through nginx and was released $(( ($(date +%s%N) - closed_at) / 1000000 )) ms after the stream closed"

# Tokens in every letter case of the routes that carry them, and in a query string.
key="smoke-case-$suffix"
call 201 POST "$lb/locks/$key?ttlMs=30000"
t=$(json "$body" token); tokens+=("$t")
call 200 GET "$lb/Locks/$key/$t"
call 200 PATCH "$lb/LOCKS/$key/$t?ttlMs=30000"
http GET "$lb/locks/$key?token=$t"
call 204 DELETE "$lb/Locks/$key/$t"
skey="smoke-sem-$suffix"
call 201 POST "$lb/semaphores/$skey?limit=2&ttlMs=30000"
s1=$(json "$body" token); tokens+=("$s1")
call 201 POST "$lb/Semaphores/$skey?limit=2&ttlMs=30000"
s2=$(json "$body" token); tokens+=("$s2")
call 200 GET "$lb/Semaphores/$skey/$s1"
call 204 DELETE "$lb/semaphores/$skey/$s1"
call 204 DELETE "$lb/SEMAPHORES/$skey/$s2"
# Routes to come carry tokens in the same place; a token-shaped segment that no lease has.
fake=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'); tokens+=("$fake")
http GET "$lb/rwlocks/smoke-rw-$suffix/$fake"
http DELETE "$lb/Elections/smoke-el-$suffix/$fake"

log=$(lb_log)
leaked=0
for t in "${tokens[@]}"; do
    if grep -qF "$t" <<<"$log"; then
        echo "smoke: token in nginx's access log: $(grep -F "$t" <<<"$log" | sed "s/$t/<TOKEN>/g" | head -n 3)" >&2
        leaked=1
    fi
done
[ "$leaked" -eq 0 ] || fail "nginx's access log shows tokens (above, masked)"
# And the lines are there, redacted (so the log above was really being written).
for path in "DELETE /Locks/$key/REDACTED" "PATCH /LOCKS/$key/REDACTED?ttlMs=30000" "GET /locks/$key?REDACTED" \
    "DELETE /semaphores/$skey/REDACTED" "DELETE /SEMAPHORES/$skey/REDACTED" "GET /Semaphores/$skey/REDACTED"; do
    grep -qF "\"$path HTTP/1.1\"" <<<"$log" || fail "nginx's access log has no line \"$path HTTP/1.1\" (the request, redacted)"
done
step "ok: no token in nginx's access log (${#tokens[@]} tokens; /locks, /Locks, /LOCKS, /semaphores, /Semaphores, /SEMAPHORES, ?token=, /rwlocks, /Elections)"
service_log=$("${compose[@]}" --profile scale logs --no-color api api-scaled 2>&1)
for t in "${tokens[@]}"; do
    grep -qF "$t" <<<"$service_log" && fail "the service's log shows a token: $(grep -F "$t" <<<"$service_log" | sed "s/$t/<TOKEN>/g" | head -n 1)"
done
step "ok: no token in the service containers' logs"

step "all checks passed"
