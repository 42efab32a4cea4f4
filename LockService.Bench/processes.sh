# Sourced by the measuring scripts next to it: the processes they start (in `pids`) are stopped when they exit,
# and ports are picked free.

pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# A port nothing listens on (the machine is shared: fixed ports collide with other people's servers).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
