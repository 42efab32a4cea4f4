#!/usr/bin/env bash
# The Python client's CI stage, with Debian's Python and Debian's packages only (nothing is downloaded from PyPI): the
# package installed into a venv as a user installs it, mypy over it, then pytest against the Release build of the
# service (the solution must be built first). Exits non-zero when mypy or a test fails.
#   ci.sh JUNIT_XML            run the stage, pytest's results written to JUNIT_XML
#   ci.sh counts JUNIT_XML     print "PASSED FAILED" from such a file ("0 1" when it is missing or unreadable)
set -euo pipefail
file=$(realpath -m "${!#}") # the last argument, resolved before leaving the caller's folder
cd "$(dirname "${BASH_SOURCE[0]}")"
python=/usr/bin/python3

if [ "${1:-}" = counts ]; then
    exec "$python" - "$file" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1)
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - failed - skipped, failed)
PY
fi

missing=()
for package in python3-httpx python3-pytest python3-mypy python3-venv python3-setuptools python3-pip; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "ci: installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A venv that sees Debian's httpx, pytest and mypy, so that pip installs only this package, from this folder.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install -q --no-index --no-deps --no-build-isolation .

rc=0
echo "ci: mypy (strict) over the Python client, its tests and examples"
"$work/venv/bin/python" -m mypy || rc=1
echo "ci: pytest (the Python client against a real service and redis-server)"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$file" || rc=1
exit "$rc"
