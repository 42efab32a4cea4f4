"""Python client for LockService: distributed locks, semaphores, read/write locks and leader elections over its HTTP
API, synchronous and asyncio.

    from lockservice import LockServiceClient

    with LockServiceClient() as client:
        with client.lock("nightly-report", ttl=30, wait=10) as lease:
            write_report(fencing_token=lease.fencing_token)

The seed's interface works unchanged: ``from lockservice import Lock, LockTimeout``.
"""

from ._async import (
    AsyncLeadershipHandle,
    AsyncLeaseContext,
    AsyncLockHandle,
    AsyncLockServiceClient,
    AsyncObservation,
    AsyncPermitHandle,
    AsyncRwLockHandle,
)
from ._seed import Lock
from ._sync import LeadershipHandle, LeaseContext, LockHandle, LockServiceClient, Observation, PermitHandle, RwLockHandle
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
from .models import (
    ElectionEvent,
    Leader,
    Leadership,
    Lease,
    LockInfo,
    Permit,
    PermitInfo,
    RwLease,
    RwLeaseInfo,
    RwLockInfo,
    SemaphoreInfo,
    Stats,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncLeadershipHandle",
    "AsyncLeaseContext",
    "AsyncLockHandle",
    "AsyncLockServiceClient",
    "AsyncObservation",
    "AsyncPermitHandle",
    "AsyncRwLockHandle",
    "ElectionEvent",
    "Forbidden",
    "InvalidRequest",
    "Leader",
    "Leadership",
    "LeadershipHandle",
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
    "Observation",
    "Permit",
    "PermitHandle",
    "PermitInfo",
    "RwLease",
    "RwLeaseInfo",
    "RwLockHandle",
    "RwLockInfo",
    "SemaphoreInfo",
    "Stats",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
]
