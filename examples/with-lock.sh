#!/usr/bin/env bash
# Usage: with-lock KEY COMMAND...   runs COMMAND while a stream holds KEY; exit 75 if the lock could not be had,
# 70 if it was lost (COMMAND is stopped), else COMMAND's own exit code.
key=$1; shift
url=${LOCKSERVICE_URL:-http://localhost:8080}
exec 3< <(exec curl -sfN -X POST -H "Accept: text/event-stream" "$url/locks/$key?ttlMs=15000&waitMs=60000")
stream=$!
read -r line <&3 || { echo "could not get lock $key" >&2; exit 75; }   # event: acquired
"$@" 3<&- & job=$!
( while read -r line; do [[ $line == "event: lost" ]] && break; done ) <&3 & watcher=$!
exec 3<&-
wait -n -p finished "$job" "$watcher"; status=$?
kill "$stream" 2>/dev/null                     # closing the stream releases the lock at once
if [[ $finished == "$job" ]]; then
    kill "$watcher" 2>/dev/null; exit "$status"
fi
echo "lock $key lost: stopping the job" >&2    # the stream said lost, or ended
kill -TERM "$job"; wait "$job"; exit 70
