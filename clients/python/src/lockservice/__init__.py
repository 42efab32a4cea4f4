"""Python client for LockService: distributed locks and semaphores over its HTTP API, synchronous and asyncio.

    from lockservice import LockServiceClient

    with LockServiceClient() as client:
        with client.lock("nightly-report", ttl=30, wait=10) as lease:
            write_report(fencing_token=lease.fencing_token)

The seed's interface works unchanged: ``from lockservice import Lock, LockTimeout``.
"""

from ._async import AsyncLeaseContext, AsyncLockHandle, AsyncLockServiceClient, AsyncPermitHandle
from ._seed import Lock
from ._sync import LeaseContext, LockHandle, LockServiceClient, PermitHandle
from .errors import (
    Forbidden,
    InvalidRequest,
    LockLost,
    LockServiceError,
    LockTimeout,
    NotHeld,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from .models import Lease, LockInfo, Permit, PermitInfo, SemaphoreInfo, Stats

__version__ = "0.1.0"

__all__ = [
    "AsyncLeaseContext",
    "AsyncLockHandle",
    "AsyncLockServiceClient",
    "AsyncPermitHandle",
    "Forbidden",
    "InvalidRequest",
    "Lease",
    "LeaseContext",
    "Lock",
    "LockHandle",
    "LockInfo",
    "LockLost",
    "LockServiceClient",
    "LockServiceError",
    "LockTimeout",
    "NotHeld",
    "Permit",
    "PermitHandle",
    "PermitInfo",
    "SemaphoreInfo",
    "Stats",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
]
