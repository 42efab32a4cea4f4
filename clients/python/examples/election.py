"""One leader among many instances, and followers that always know which one it is.

    LOCKSERVICE_URL=http://locks:8080 python3 election.py lead host-a:8080     # on every instance that may lead
    LOCKSERVICE_URL=http://locks:8080 python3 election.py follow              # anywhere that needs to know

A candidate waits in the lock service until it leads (one request per wait, no polling), tells the followers its
address as the election's value, and works while it leads; when it loses the lead (an operator forced it out, the
service could not be reached to renew it) it stops at once and campaigns again. A follower prints each change: the
current leader first, then every new leader, new value, or that nobody leads, reconnecting by itself.
"""

from __future__ import annotations

import logging
import sys
import time

from lockservice import LockLost, LockServiceClient, Unavailable

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("election")
ELECTION = "report-scheduler"


def lead(client: LockServiceClient, address: str) -> None:
    while True:
        try:
            with client.campaign(ELECTION, value=address, ttl=15, wait=float("inf")) as leading:
                log.info("leading in term %d", leading.term)
                # Work in steps, each fenced by the term, until the lead is lost; lost.wait wakes at once on a loss.
                while not leading.lost.wait(5):
                    log.info("scheduling reports (term %d)", leading.term)
        except LockLost as lost:
            log.warning("lost the lead (%s); campaigning again", lost.reason)
        except Unavailable as down:
            log.warning("lock service unavailable (%s); campaigning again", down)
            # Between two campaigns against a service that is down, a pause; a lost lead campaigns again at once.
            time.sleep(1)


def follow(client: LockServiceClient) -> None:
    with client.observe(ELECTION) as events:
        for event in events:
            if event.leader is not None:
                log.info("leader: %s (term %d)", event.leader.value, event.leader.term)
            else:
                log.info("no leader")


def main() -> None:
    with LockServiceClient() as client:
        if len(sys.argv) == 3 and sys.argv[1] == "lead":
            lead(client, sys.argv[2])
        elif len(sys.argv) == 2 and sys.argv[1] == "follow":
            follow(client)
        else:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
