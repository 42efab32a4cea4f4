"""A cron job that must run on one machine at a time: every machine's crontab starts it, one of them does the work.

    */15 * * * * LOCKSERVICE_URL=http://locks:8080 python3 cron_job.py

The others find the lock held and exit at once (code 0: not an error, someone else is on it). With the seed's
interface this is ``with Lock("nightly-report", expires=60, timeout=0):``; the client below adds the fencing token.
"""

from __future__ import annotations

import sys
import time

from lockservice import LockLost, LockServiceClient, LockTimeout, Unavailable


def build_report(fencing_token: int) -> None:
    # Hand the fencing token to whatever the job writes to, so that a stale run (paused past its TTL) is refused there.
    print(f"building the report with fencing token {fencing_token}")
    time.sleep(2)


def main() -> int:
    with LockServiceClient() as client:
        try:
            with client.lock("nightly-report", ttl=60, wait=0, owner="cron_job.py") as lease:
                build_report(lease.fencing_token)
        except LockTimeout as held:
            print(f"another machine is building the report (its lock has {held.retry_after} s left)")
            return 0
        except LockLost as lost:
            print(f"the lock was lost while building the report ({lost.reason}); the report may be incomplete", file=sys.stderr)
            return 70
        except Unavailable as down:
            print(f"the lock service is unavailable: {down}", file=sys.stderr)
            return 69
    return 0


if __name__ == "__main__":
    sys.exit(main())
