"""A worker that must stop the moment it loses its lock (an operator force-released it, or the service became
unreachable for longer than the lock's TTL): it checks the lease before each unit of work, and ``lost`` wakes it
from its pauses at once.

    LOCKSERVICE_URL=http://locks:8080 python3 worker.py
"""

from __future__ import annotations

import logging
import sys

from lockservice import LockHandle, LockLost, LockServiceClient

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("worker")


def process(batch: int, fencing_token: int) -> None:
    log.info("processing batch %d (fencing token %d)", batch, fencing_token)


def on_lost(lease: LockHandle) -> None:
    # Runs on the client's background thread as soon as the loss is known: a place to raise an alarm.
    log.warning("lost the lock %s (%s): stopping", lease.key, lease.lost_reason)


def main() -> int:
    with LockServiceClient() as client:
        try:
            # Wait up to a minute for the previous worker to finish; renewed every 10 s while held.
            with client.lock("queue-consumer", ttl=30, wait=60, on_lost=on_lost) as lease:
                for batch in range(1_000_000):
                    lease.ensure_held()  # raises LockLost: never start a batch without the lock
                    process(batch, lease.fencing_token)
                    if lease.lost.wait(1.0):  # the pause between batches ends early on a loss
                        break
        except LockLost as lost:
            log.error("stopped: the lock was lost (%s)", lost.reason)
            return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
