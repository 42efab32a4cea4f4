#!/usr/bin/env bash
# Runs the README's first command, `docker compose up --build`, on a real Docker engine and
# checks through the published ports what a user would:
#   - default profile (:8080): health, acquire and release with curl, a lock that survives
#     `docker compose restart redis` (AOF), lockctl inside the container, the container's
#     user (app, 1654), /swagger and /ui;
#   - profile "scale" (nginx on :8081 in front of 3 replicas): a waiter handed the lock by a
#     release that another replica served, a replica added at run time, a lock held by a
#     stream (Accept: text/event-stream) and released when the stream closes, no token in
#     nginx's logs (access and error, with every replica stopped so that nginx fails to
#     reach one) nor the service's, whatever the letter case of /locks and /semaphores paths;
#   - then `docker compose down -v`.
#
# On a machine without Docker it installs docker.io (and debootstrap, curl, python3) from
# Debian and starts dockerd (stopped again at exit). An image the files name (redis:7.4,
# nginx:1.27-alpine, mcr.microsoft.com/dotnet/sdk:10.0 and aspnet:10.0) that is not on the
# engine is pulled (20 s at most); where that fails (no registry reachable, as on CI) the
# script builds a local stand-in, so the real Dockerfile and docker-compose.yml run unchanged:
#   - a Debian bookworm root file system from debootstrap (docker import);
#   - sdk:10.0 / aspnet:10.0: this machine's .NET install, the user app (uid 1654, $APP_UID),
#     and for the SDK this machine's CA bundle and NuGet package sources (never its NuGet
#     credentials nor its environment);
#   - redis:7.4: Debian's redis-server, with protected mode off as in the official image;
#   - nginx:1.27-alpine: Debian's nginx (1.22; deploy/nginx.conf needs 1.7.5), its logs on
#     the container's stdout/stderr as in the official image.
# Stand-ins are kept as lockservice-standin/KIND:<hash of their inputs>, which a second run
# reuses, and carry the label lockservice.standin. They are tagged with the real names only
# while the script runs: at exit those tags are removed, so a later `docker compose up`
# pulls the real images. A real image (no label) on the engine is used and never replaced.
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
standin_tags=()
cleanup() {
    local rc=$?
    set +e
    for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
    if [ "$compose_up" -eq 1 ]; then
        if [ "$rc" -ne 0 ]; then
            # Tokens masked: a failed check may be that nginx logged them.
            echo "smoke: last service logs (32-hex runs masked):" >&2
            "${compose[@]}" --profile scale logs --no-color --tail 30 2>&1 | sed -E 's/[0-9a-fA-F]{32}/<TOKEN>/g' >&2
        fi
        step "docker compose down -v"
        "${compose[@]}" --profile scale down -v --remove-orphans >"$tmp/down.log" 2>&1 \
            || { cat "$tmp/down.log" >&2; echo "smoke: FAIL docker compose down -v" >&2; rc=1; }
    fi
    # The real names go back to what they were (absent): only the private stand-in tags stay.
    for name in "${standin_tags[@]}"; do
        ! is_standin "$name" || docker rmi "$name" >/dev/null 2>&1 \
            || { echo "smoke: FAIL removing the stand-in tag $name" >&2; rc=1; }
    done
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
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
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

# ---- base images: the real ones, else stand-ins -----------------------------------------
command -v dotnet >/dev/null 2>&1 || fail "no dotnet on PATH (its install is copied into the .NET stand-ins)"
dotnet_dir=$(dirname "$(readlink -f "$(command -v dotnet)")")
ca_bundle=/etc/ssl/certs/ca-certificates.crt

mkdir -p "$tmp/standin"
# This machine's NuGet package sources (how its `dotnet restore` reaches them), and nothing
# else of its NuGet.Config: no packageSourceCredentials, apikeys or config (proxy password)
# section goes into an image layer, and a source URL with a user or password in it stops
# the script. No NUGET_* variable of this machine's environment is copied either.
nuget_config="$HOME/.nuget/NuGet/NuGet.Config"
if [ -f "$nuget_config" ]; then
    python3 - "$nuget_config" "$tmp/standin/NuGet.Config" <<'PY' || fail "reading the package sources of $nuget_config"
import sys
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit
sources = ET.parse(sys.argv[1]).getroot().find("packageSources")
out = ET.Element("configuration")
kept = ET.SubElement(out, "packageSources")
for entry in (list(sources) if sources is not None else []):
    if entry.tag == "clear":
        ET.SubElement(kept, "clear")
    elif entry.tag == "add":
        url = entry.get("value", "")
        if "@" in urlsplit(url).netloc:
            sys.exit(f"package source {entry.get('key')!r} has credentials in its URL: not copied into an image")
        ET.SubElement(kept, "add", {k: v for k, v in entry.attrib.items() if k in ("key", "value", "protocolVersion")})
ET.ElementTree(out).write(sys.argv[2], encoding="utf-8", xml_declaration=True)
PY
else
    printf '<?xml version="1.0" encoding="utf-8"?>\n<configuration />\n' >"$tmp/standin/NuGet.Config"
fi

# shellcheck disable=SC2054  # the commas are debootstrap's list of packages
debootstrap_args=(--variant=minbase --include=ca-certificates,libicu72 bookworm)
debootstrap_mirror=http://deb.debian.org/debian
echo "debootstrap ${debootstrap_args[*]} ROOT $debootstrap_mirror" >"$tmp/standin/base.recipe"
cat >"$tmp/standin/packages.Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
# No service may start while packages install (the build shares the host's network).
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools nginx >/dev/null && rm -rf /var/lib/apt/lists/*
DOCKERFILE
cat >"$tmp/standin/redis.Dockerfile" <<'DOCKERFILE'
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
DOCKERFILE
cat >"$tmp/standin/nginx.Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
# As the official image: only conf.d/ serves, logs go to the container's stdout/stderr.
RUN rm -f /etc/nginx/sites-enabled/default \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
DOCKERFILE
cat >"$tmp/standin/aspnet.Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
COPY dotnet-runtime/ /usr/share/dotnet/
# As the official image: the unprivileged user app (uid 1654) in $APP_UID, port 8080.
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && groupadd -g 1654 app && useradd -u 1654 -g app -m -d /home/app -s /bin/sh app
ENV APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true
DOCKERFILE
cat >"$tmp/standin/sdk.Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
COPY dotnet/ /usr/share/dotnet/
# This machine's CA bundle and package sources (no credentials), so that restore reaches
# the package source the way `dotnet restore` on this machine does.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY NuGet.Config /root/.nuget/NuGet/NuGet.Config
ENV NUGET_CERT_REVOCATION_MODE=offline DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
    DOTNET_GENERATE_ASPNET_CERTIFICATE=false DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
DOCKERFILE
# The hash of every input: the recipes and package sources, this script's stand-in version,
# the .NET install (its file list with sizes), the CA bundle.
standin_hash=$(
    {
        echo "standin-v2"
        cat "$tmp/standin/"*
        (cd "$dotnet_dir" && find . -type f -printf '%p %s\n' | sort)
        sha256sum "$ca_bundle" | cut -d' ' -f1
    } | sha256sum | cut -c1-16
)
# The image's lockservice.standin label, "" or "<no value>" for a real image, "absent" when
# there is no such image (for which `docker image inspect -f` still prints an empty line).
standin_label() {
    local label
    label=$(docker image inspect -f '{{index .Config.Labels "lockservice.standin"}}' "$1" 2>/dev/null) || label=absent
    echo "$label"
}
is_standin() { case "$(standin_label "$1")" in absent|""|"<no value>") return 1 ;; esac; }

# Stand-ins live under private names (lockservice-standin/KIND:HASH), the cache that a
# warm run reuses. While the script runs, each one it needs is also tagged with the real
# name that the Dockerfile and compose file use; that tag is removed at exit, so a later
# `docker compose up` never runs a stand-in unknowingly.
base_image="lockservice-standin/bookworm:$standin_hash"
packages_image="lockservice-standin/packages:$standin_hash"
standin_ref() { echo "lockservice-standin/$1:$standin_hash"; }
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
# ensure_standin KIND: the stand-in KIND (redis, nginx, aspnet, sdk) under its private name.
ensure_standin() {
    local kind=$1 ref
    ref=$(standin_ref "$kind")
    docker image inspect "$ref" >/dev/null 2>&1 && return
    case "$kind" in
        redis|nginx)
            ensure_packages
            step "stand-ins: $ref (Debian's $kind)"
            build_standin "$ref" "$kind" "$packages_image" ;;
        aspnet)
            # The runtime image gets the .NET host and the shared frameworks only; the SDK all of it.
            [ -d "$dotnet_dir/shared/Microsoft.AspNetCore.App" ] || fail "no ASP.NET Core runtime in $dotnet_dir"
            ensure_base
            local rt="$tmp/dotnet-runtime"
            mkdir -p "$rt/shared"
            cp -a "$dotnet_dir/dotnet" "$dotnet_dir/host" "$rt/"
            cp -a "$dotnet_dir/shared/Microsoft.NETCore.App" "$dotnet_dir/shared/Microsoft.AspNetCore.App" "$rt/shared/"
            step "stand-ins: $ref (.NET runtime from $dotnet_dir)"
            build_standin "$ref" aspnet "$base_image" "$rt=dotnet-runtime"
            rm -rf "$rt" ;;
        sdk)
            ensure_standin aspnet
            step "stand-ins: $ref ($(dotnet --version) from $dotnet_dir, this machine's CA bundle and package sources)"
            build_standin "$ref" sdk "$(standin_ref aspnet)" \
                "$dotnet_dir=dotnet" "$ca_bundle=ca-certificates.crt" "$tmp/standin/NuGet.Config=NuGet.Config" ;;
    esac
}

kinds=(redis nginx aspnet sdk)
declare -A real_name=([redis]=redis:7.4 [nginx]=nginx:1.27-alpine
    [aspnet]=mcr.microsoft.com/dotnet/aspnet:10.0 [sdk]=mcr.microsoft.com/dotnet/sdk:10.0)
declare -A pulls=()
for kind in "${kinds[@]}"; do
    name=${real_name[$kind]}
    # A stand-in under the real name: left by a run killed before its cleanup.
    if is_standin "$name"; then
        docker rmi "$name" >/dev/null 2>&1 || true
        ! is_standin "$name" || fail "cannot remove the stand-in tagged $name"
    fi
    if [ "$(standin_label "$name")" = absent ]; then
        # All pulls at once, each bounded: where no registry answers, this costs 20 s at most.
        timeout 20 docker pull -q "$name" >"$tmp/pull-$kind.log" 2>&1 &
        pulls[$kind]=$!
    fi
done
states=()
for kind in "${kinds[@]}"; do
    name=${real_name[$kind]}
    if [ -z "${pulls[$kind]:-}" ]; then
        states+=("$name present")
    elif wait "${pulls[$kind]}"; then
        states+=("$name pulled")
    else
        ensure_standin "$kind"
        docker tag "$(standin_ref "$kind")" "$name"
        standin_tags+=("$name")
        [ -n "${pull_error:-}" ] || pull_error="docker pull $name: $(tail -n 1 "$tmp/pull-$kind.log")"
        states+=("$name stand-in")
    fi
done
[ -z "${pull_error:-}" ] || step "$pull_error"
step "base images: $(printf '%s; ' "${states[@]}")stand-in inputs $standin_hash"

# Stand-ins from other inputs are no longer used by anything.
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' 'lockservice-standin/*'); do
    case "$old" in *":$standin_hash") ;; *) docker rmi "$old" >/dev/null 2>&1 || true ;; esac
done
# Nor are untagged images built on them (build stages of earlier runs: they inherit the
# label); those built on the current stand-ins are the build cache a warm run reuses.
docker image prune -f --filter label=lockservice.standin --filter "label!=lockservice.standin=$standin_hash" >/dev/null 2>&1 || true

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
{ [ "$user" = app ] && [ "$uid" = 1654 ]; } || fail "the api container runs as $user ($uid), not app (1654)"
# PID 1 is the service (the image's ENTRYPOINT in exec form).
main_cmd=$("${compose[@]}" exec -T api cat /proc/1/cmdline 2>&1 | tr '\0' ' ') || fail "reading the api container's PID 1: $main_cmd"
# shellcheck disable=SC2016  # $2 is awk's
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
# nginx's access log (the container's stdout), and all it logged (stdout and stderr, where
# its error log goes). Captured whole, then searched: `docker logs | grep -q` would fail
# under pipefail when grep stops reading at its match and docker logs gets SIGPIPE.
lb_access_log() { docker logs "$lb_id" 2>/dev/null; }
lb_all_logs() { docker logs "$lb_id" 2>&1; }
# The upstream address nginx logged for the request whose User-Agent is $1.
upstream_of() {
    local log
    log=$(lb_access_log)
    awk -F'"' -v ua="$1" '$(NF-1) == ua { split($(NF-2), a, " "); print a[4] }' <<<"$log" | tail -n 1
}
# The number of requests waiting in the api-scaled replicas (GET /admin/stats of each, at
# its address on the compose network, which the host reaches).
waiting_in_replicas() {
    local id ip total=0 n
    for id in $("${compose[@]}" --profile scale ps -q api-scaled); do
        ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
        n=$(curl -s --max-time 5 "http://$ip:8080/admin/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["waitingRequests"])' 2>/dev/null) || n=0
        total=$((total + n))
    done
    echo "$total"
}

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
    # The waiter must be waiting in a replica when the lock is released, or the release
    # would hand nothing over.
    deadline=$(( $(date +%s) + 15 ))
    until [ "$(waiting_in_replicas)" -ge 1 ]; do
        kill -0 "$waiter" 2>/dev/null || fail "the waiter for $key returned before the release: $(cat "$tmp/waiter.status") $(cat "$tmp/waiter")"
        [ "$(date +%s)" -lt "$deadline" ] || fail "no replica counted the waiter for $key in /admin/stats waitingRequests within 15 s"
        sleep 0.1
    done
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
    { [ -n "$from" ] && [ -n "$to" ]; } || fail "nginx's access log has no upstream address for the hand-off requests"
    if [ "$from" != "$to" ]; then
        step "ok: hand-off across replicas: released through $from, the waiter on $to got it within ${handoff_ms} ms"
        handed=1
        break
    fi
done
[ "$handed" -eq 1 ] || fail "in 10 hand-offs the release and the waiter always went to the same replica: nginx does not balance"
replicas_seen=$(lb_access_log | awk -F'"' '{ split($(NF-2), a, " "); if (a[4] ~ /:8080/) print a[4] }' | sort -u | wc -l)
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
log=$(lb_access_log)
! grep -qF " $new_ip:8080 " <<<"$log" || fail "nginx's log shows the new replica's address $new_ip before it existed"
deadline=$(( $(date +%s) + 30 ))
until log=$(lb_access_log) && grep -qF " $new_ip:8080 " <<<"$log"; do
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

service_log=$("${compose[@]}" --profile scale logs --no-color api api-scaled 2>&1)
for t in "${tokens[@]}"; do
    if grep -qF "$t" <<<"$service_log"; then
        fail "the service's log shows a token: $(grep -F "$t" <<<"$service_log" | sed "s/$t/<TOKEN>/g" | head -n 1)"
    fi
done
step "ok: no token in the service containers' logs"

# nginx's error log quotes the request line when it fails to reach a replica (as while one
# restarts): with every replica stopped, releases through nginx fail that way.
step "docker compose stop api-scaled (every replica: nginx cannot reach one)"
"${compose[@]}" --profile scale stop api-scaled >"$tmp/stop.log" 2>&1 || { cat "$tmp/stop.log" >&2; fail "docker compose stop api-scaled"; }
down_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'); tokens+=("$down_token")
dkey="smoke-down-$suffix"
for path in "/locks/$dkey/$down_token" "/Semaphores/$dkey/$down_token"; do
    call 503 DELETE "$lb$path"
    grep -qF '"upstream_unavailable"' <<<"$body" || fail "DELETE ${path%/*}/{token} with no replica: not nginx's upstream_unavailable: $body"
done
step "ok: with no replica up, nginx answers releases 503 upstream_unavailable"

log=$(lb_all_logs)
leaked=0
for t in "${tokens[@]}"; do
    if grep -qF "$t" <<<"$log"; then
        echo "smoke: token in nginx's log: $(grep -F "$t" <<<"$log" | sed "s/$t/<TOKEN>/g" | head -n 3)" >&2
        leaked=1
    fi
done
[ "$leaked" -eq 0 ] || fail "nginx's log (stdout and stderr) shows tokens (above, masked)"
# And the lines are there, redacted (so the log above was really being written).
for line in "DELETE /Locks/$key/REDACTED HTTP/1.1\" 204" "PATCH /LOCKS/$key/REDACTED?ttlMs=30000 HTTP/1.1\" 200" \
    "GET /locks/$key?REDACTED HTTP/1.1\"" "GET /Semaphores/$skey/REDACTED HTTP/1.1\" 200" \
    "DELETE /semaphores/$skey/REDACTED HTTP/1.1\" 204" "DELETE /SEMAPHORES/$skey/REDACTED HTTP/1.1\" 204" \
    "DELETE /locks/$dkey/REDACTED HTTP/1.1\" 503" "DELETE /Semaphores/$dkey/REDACTED HTTP/1.1\" 503"; do
    grep -qF "\"$line" <<<"$log" || fail "nginx's access log has no line \"$line (the request, redacted)"
done
step "ok: no token in nginx's logs (${#tokens[@]} tokens; /locks, /Locks, /LOCKS, /semaphores, /Semaphores, /SEMAPHORES, ?token=, /rwlocks, /Elections; releases that failed to reach a replica)"

step "all checks passed"
