"""An asyncio service that runs a singleton task (a scheduler) on one instance only, and takes it over when the
instance holding it goes away. Each instance waits in the lock service for the lock (one request per wait, no
polling); the holder runs the task until it exits or loses the lock, then everything starts again.

    LOCKSERVICE_URL=http://locks:8080 python3 asyncio_service.py
"""

from __future__ import annotations

import asyncio
import logging

from lockservice import AsyncLockServiceClient, LockLost, LockTimeout, Unavailable

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("service")


async def scheduler(fencing_token: int) -> None:
    while True:
        log.info("scheduling (fencing token %d)", fencing_token)
        await asyncio.sleep(5)


async def lead(client: AsyncLockServiceClient) -> None:
    async with client.lock("scheduler", ttl=15, wait=55, owner="asyncio_service") as lease:
        log.info("holding the scheduler lock")
        work = asyncio.ensure_future(scheduler(lease.fencing_token))
        lost = asyncio.ensure_future(lease.lost.wait())
        await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        work.cancel()  # the lock is gone: the task stops before anyone else may start it
        lost.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def main() -> None:
    async with AsyncLockServiceClient() as client:
        while True:
            try:
                await lead(client)
            except LockTimeout:
                continue  # another instance holds it: wait again (the next request waits in the service)
            except LockLost as lost:
                log.warning("lost the scheduler lock (%s)", lost.reason)
            except Unavailable as down:
                log.warning("lock service unavailable (%s); retrying in 1 s", down)
                await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
