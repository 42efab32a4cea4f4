#!/usr/bin/env bash
# Checks the deployment files (Dockerfile, .dockerignore, docker-compose.yml,
# deploy/nginx.conf) without a Docker engine:
#   - docker-compose (Debian's 1.29.x, installed if missing) validates the compose file,
#     with and without the "scale" profile;
#   - the Dockerfile's build stage is replayed on the host: its COPY steps from a copy
#     of the build context filtered by .dockerignore, then its `dotnet restore` and its
#     `dotnet publish` (the publish line is taken from the Dockerfile, with `-o /app`
#     pointed at a temp dir), and LockService.Api.dll must come out;
#   - greps for what the image must have (non-root USER, HEALTHCHECK, EXPOSE 8080, ...).
# Prints one "deploy: ok ..." line per check; exits non-zero at the first failure.
# Usage, from the repo root (run as root, non-interactive): bash .ci/check-deploy.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ok()   { echo "deploy: ok $*"; }
reported=0
fail() { echo "deploy: FAIL $*" >&2; reported=1; exit 1; }
# Any other command that fails (set -e) still gets a FAIL line.
on_exit() { local rc=$?; [ -z "${tmp:-}" ] || rm -rf "$tmp"; [ "$rc" -eq 0 ] || [ "$reported" -eq 1 ] || echo "deploy: FAIL (a command exited $rc)" >&2; }
trap on_exit EXIT

for f in Dockerfile .dockerignore docker-compose.yml deploy/nginx.conf; do
    [ -f "$f" ] || fail "missing $f"
done

# ---- docker-compose ------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
    echo "deploy: installing docker-compose (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # Without recommends: only the client is needed, not docker.io.
    apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
compose_version=$(docker-compose version --short 2>/dev/null || docker-compose --version)

docker-compose -f docker-compose.yml config -q \
    || fail "docker-compose config rejects docker-compose.yml"
ok "docker-compose config -q ($compose_version)"

compose_help=$(docker-compose --help 2>&1 || true)
if grep -q -- '--profile' <<< "$compose_help"; then
    docker-compose -f docker-compose.yml --profile scale config -q \
        || fail "docker-compose --profile scale config rejects docker-compose.yml"
    ok "docker-compose --profile scale config -q"
else
    echo "deploy: skip --profile scale (docker-compose $compose_version has no --profile)"
fi

# The resolved model (docker-compose 1.29 lists every service whatever the profile, so
# the profiles are checked here). python3 and its yaml module come with docker-compose.
docker-compose -f docker-compose.yml config > "${TMPDIR:-/tmp}/lockservice-compose.$$.yml"
summary=$(python3 - "${TMPDIR:-/tmp}/lockservice-compose.$$.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
s = doc["services"]
errors = []
def need(cond, msg):
    if not cond:
        errors.append(msg)
def ports(svc):
    out = []
    for p in svc.get("ports", []):
        out.append(f"{p['published']}:{p['target']}" if isinstance(p, dict) else str(p))
    return out
need(set(s) == {"redis", "api", "api-scaled", "lb"}, f"services are {sorted(s)}")
for name in ("redis", "api"):
    need(not s.get(name, {}).get("profiles"), f"{name} must be in no profile")
for name in ("api-scaled", "lb"):
    need(s.get(name, {}).get("profiles") == ["scale"], f"{name} must be in profile 'scale' only")
r = s.get("redis", {})
need("redis-server" in str(r.get("command")) and "appendonly" in str(r.get("command")), "redis must run with --appendonly yes")
need("redis-cli" in str(r.get("healthcheck", {}).get("test")), "redis needs a redis-cli ping healthcheck")
need(any(str(v).startswith("redis-data:/data") for v in r.get("volumes", [])), "redis needs volume redis-data:/data")
for name in ("api", "api-scaled"):
    a = s.get(name, {})
    need(a.get("build", {}).get("dockerfile") == "Dockerfile", f"{name} must build the Dockerfile")
    need(a.get("depends_on", {}).get("redis", {}).get("condition") == "service_healthy", f"{name} must wait for redis healthy")
    need(a.get("environment", {}).get("Redis__ConnectionString") == "redis:6379", f"{name} needs Redis__ConnectionString=redis:6379")
need(ports(s.get("api", {})) == ["8080:8080"], f"api ports are {ports(s.get('api', {}))}")
need(not ports(s.get("api-scaled", {})), "api-scaled must publish no host port")
need(s.get("api-scaled", {}).get("deploy", {}).get("replicas") == 3, "api-scaled needs deploy.replicas 3")
lb = s.get("lb", {})
need(ports(lb) == ["8081:80"], f"lb ports are {ports(lb)}")
need(any("deploy/nginx.conf:/etc/nginx/conf.d/default.conf" in str(v) for v in lb.get("volumes", [])), "lb must mount deploy/nginx.conf")
need("api-scaled" in lb.get("depends_on", {}), "lb must depend on api-scaled")
if errors:
    print("; ".join(errors))
    sys.exit(1)
print("redis, api (:8080); profile scale: api-scaled x3, lb (:8081)")
PY
) || { rm -f "${TMPDIR:-/tmp}/lockservice-compose.$$.yml"; fail "docker-compose.yml: $summary"; }
rm -f "${TMPDIR:-/tmp}/lockservice-compose.$$.yml"
ok "docker-compose.yml model: $summary"

# ---- Dockerfile and .dockerignore contents ---------------------------------------------
# The Dockerfile with continuation lines joined, comments dropped.
dockerfile=$(sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' Dockerfile | grep -Ev '^[[:space:]]*#')
df() { grep -E "$@" <<< "$dockerfile"; }
df -q '^FROM[[:space:]]+mcr\.microsoft\.com/dotnet/sdk:10\.0([[:space:]]|$)' \
    || fail "Dockerfile does not build FROM mcr.microsoft.com/dotnet/sdk:10.0"
df -q '^FROM[[:space:]]+mcr\.microsoft\.com/dotnet/aspnet:10\.0([[:space:]]|$)' \
    || fail "Dockerfile does not run FROM mcr.microsoft.com/dotnet/aspnet:10.0"
ok "Dockerfile: sdk:10.0 build stage, aspnet:10.0 runtime stage"

user_line=$(df '^USER[[:space:]]+' | tail -n 1 || true)
[ -n "$user_line" ] || fail "Dockerfile has no USER"
# shellcheck disable=SC2016  # a literal $APP_UID is what the Dockerfile should say
grep -Eq '^USER[[:space:]]+(\$APP_UID|\$\{APP_UID\}|app|1654)([[:space:]]|$)' <<< "$user_line" \
    || fail "Dockerfile's last USER is not the non-root app user: $user_line"
ok "Dockerfile: $user_line"

df -q '^HEALTHCHECK([[:space:]].*)?[[:space:]]CMD[[:space:]]+\["dotnet", *"LockService\.Api\.dll", *"--healthcheck"\]' \
    || fail "Dockerfile has no HEALTHCHECK running LockService.Api.dll --healthcheck"
ok "Dockerfile: HEALTHCHECK uses the built-in --healthcheck mode"

df -q '^EXPOSE[[:space:]]+8080([/[:space:]]|$)' || fail "Dockerfile has no EXPOSE 8080"
df -q '^ENV[[:space:]]+ASPNETCORE_URLS=http://\+:8080([[:space:]]|$)' \
    || fail "Dockerfile does not set ASPNETCORE_URLS=http://+:8080"
df -q '^ENTRYPOINT[[:space:]]+\["dotnet", *"LockService\.Api\.dll"\]' \
    || fail "Dockerfile's ENTRYPOINT is not [\"dotnet\", \"LockService.Api.dll\"]"
ok "Dockerfile: EXPOSE 8080, ASPNETCORE_URLS=http://+:8080, ENTRYPOINT dotnet LockService.Api.dll"

for d in bin obj; do
    grep -Eq "^(\*\*/)?$d/?[[:space:]]*$" .dockerignore || fail ".dockerignore does not exclude $d/"
done
ok ".dockerignore: excludes **/bin/ and **/obj/"

# The replicas are reached by name, re-resolved through Docker's DNS (see the top of nginx.conf).
# shellcheck disable=SC2016  # a literal $lockservice_upstream is what nginx.conf should say
grep -Eq '^[[:space:]]*set[[:space:]]+\$lockservice_upstream[[:space:]]+api-scaled:8080;' deploy/nginx.conf \
    || fail "deploy/nginx.conf does not proxy to api-scaled:8080"
grep -Eq '^[[:space:]]*resolver[[:space:]]+127\.0\.0\.11[[:space:]]' deploy/nginx.conf \
    || fail "deploy/nginx.conf does not re-resolve api-scaled through Docker's DNS (resolver 127.0.0.11)"
timeout_s=$(sed -nE 's/^[[:space:]]*proxy_read_timeout[[:space:]]+([0-9]+)s?;.*/\1/p' deploy/nginx.conf | head -n 1)
{ [ -n "$timeout_s" ] && [ "$timeout_s" -gt 60 ]; } \
    || fail "deploy/nginx.conf proxy_read_timeout must exceed the 60 s max wait (got '${timeout_s:-none}')"
ok "deploy/nginx.conf: api-scaled:8080 through resolver 127.0.0.11, proxy_read_timeout ${timeout_s}s"
# nginx's error log quotes raw request lines (tokens): only "crit" and above may be written.
error_level=$(sed -nE 's/^[[:space:]]*error_log[[:space:]]+[^[:space:];]+[[:space:]]+([a-z]+);.*/\1/p' deploy/nginx.conf | head -n 1)
case "$error_level" in
    crit|alert|emerg) ;;
    *) fail "deploy/nginx.conf must set error_log at crit or above (its error lines quote request paths, tokens included); got '${error_level:-none}'" ;;
esac
ok "deploy/nginx.conf: error_log at $error_level (no request line with a token)"

# ---- the Dockerfile's build stage, replayed on the host --------------------------------
publish_cmd=$(df '^RUN[[:space:]]+dotnet[[:space:]]+publish[[:space:]]' | head -n 1 | sed -E 's/^RUN[[:space:]]+//')
[ -n "$publish_cmd" ] || fail "Dockerfile has no 'RUN dotnet publish' line"
case "$publish_cmd" in
    "dotnet publish LockService.Api/LockService.Api.csproj -c Release "*"-o /app"*) ;;
    *) fail "Dockerfile's publish is not 'dotnet publish LockService.Api/LockService.Api.csproj -c Release ... -o /app': $publish_cmd" ;;
esac
ok "Dockerfile: publish command: $publish_cmd"

tmp=$(mktemp -d)
ctx="$tmp/context" work="$tmp/src" out="$tmp/app" log="$tmp/build.log"
mkdir -p "$ctx" "$work" "$out"

# The build context: the repo less what .dockerignore excludes. Patterns are turned into
# tar excludes: "**/x" matches at any depth, anything else from the context root.
excludes=()
while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%$'\r'}"
    line="$(echo "$line" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')"
    case "$line" in ''|'#'*) continue ;; '!'*) fail ".dockerignore exception '$line' is not supported by this check" ;; esac
    line="${line#/}"; line="${line%/}"
    if [[ "$line" == '**/'* ]]; then
        excludes+=(--no-anchored "--exclude=${line#\*\*/}")
    else
        excludes+=(--anchored "--exclude=./$line")
    fi
done < .dockerignore
tar -C . "${excludes[@]}" -cf - . | tar -C "$ctx" -xf -
[ -z "$(find "$ctx" \( -name bin -o -name obj \) -type d -print -quit)" ] \
    || fail ".dockerignore lets a bin/ or obj/ folder into the build context"
ok "build context: $(find "$ctx" -type f | wc -l) files after .dockerignore, no bin/ or obj/"

# Replay the build stage (from the first FROM to the next FROM): WORKDIR, COPY, RUN.
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
stage=$(awk '/^FROM[[:space:]]/{n++} n==1' <<< "$dockerfile" | grep -Ev '^[[:space:]]*$')
cwd="$work"
while IFS= read -r instr; do
    op=$(echo "$instr" | awk '{print toupper($1)}')
    args=$(echo "$instr" | sed -E 's/^[^[:space:]]+[[:space:]]+//')
    case "$op" in
        FROM|ENV|ARG|LABEL) ;;
        WORKDIR) cwd="$work"; mkdir -p "$cwd" ;;   # the one WORKDIR of the stage is the root
        COPY)
            case "$args" in --*) fail "COPY flags are not supported by this check: $instr" ;; esac
            read -r -a parts <<< "$args"
            dest="${parts[-1]}"; unset 'parts[-1]'
            case "$dest" in .|./) target="$cwd/" ;; /*) fail "absolute COPY destination not supported: $instr" ;; *) target="$cwd/$dest" ;; esac
            for src in "${parts[@]}"; do
                [ -e "$ctx/$src" ] || fail "COPY $src: not in the build context (.dockerignore?)"
                if [ "$src" = "." ] || [ "$src" = "./" ]; then
                    cp -a "$ctx/." "$cwd/"
                else
                    case "$target" in */) mkdir -p "$target" ;; *) mkdir -p "$(dirname "$target")" ;; esac
                    cp -a "$ctx/$src" "$target"
                fi
            done ;;
        RUN)
            cmd="${args//-o \/app/-o $out}"
            echo "deploy: running: $cmd (log: build.log)"
            if ! (cd "$cwd" && bash -c "$cmd") >>"$log" 2>&1; then
                tail -n 40 "$log" >&2
                fail "Dockerfile step failed: RUN $args"
            fi ;;
        *) fail "instruction not supported by this check in the build stage: $instr" ;;
    esac
done <<< "$stage"

[ -f "$out/LockService.Api.dll" ] || fail "publish produced no LockService.Api.dll"
[ -f "$out/lockctl/lockctl.dll" ] || fail "the Dockerfile's lockctl publish produced no lockctl.dll"
ok "Dockerfile build stage replayed: restore + '$publish_cmd' -> LockService.Api.dll"

echo "deploy: all checks passed"
