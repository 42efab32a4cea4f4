"""What the service answers, as immutable values. Times are seconds (floats) and timezone-aware datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Tuple


@dataclass(frozen=True)
class Lease:
    """A lock obtained by acquire (or renewed by extend): the body of a 201 and of extend's 200."""

    key: str
    #: The secret that proves ownership; needed for release, extend and check. Never log it.
    token: str
    #: Strictly increasing per key: pass it to the protected resource so that it can refuse stale writers.
    fencing_token: int
    #: The TTL granted, in seconds; authoritative (``expires_at`` is informational, from Redis's clock).
    ttl: float
    expires_at: datetime
    acquired_at: datetime
    #: The hold cap in seconds, or None without one.
    max_hold: Optional[float]
    owner: Optional[str]


@dataclass(frozen=True)
class Permit(Lease):
    """A permit of a counting semaphore: a lease with its slot (0..limit-1) and the limit it was acquired with.

    Its fencing token increases per (key, slot), so a resource with ``limit`` lanes can fence each lane.
    """

    slot: int = 0
    limit: int = 1


@dataclass(frozen=True)
class LockInfo:
    """A held lock as inspection, check and listing describe it: never with its token. ``ttl`` is what remains."""

    key: str
    fencing_token: int
    owner: Optional[str]
    ttl: float
    expires_at: datetime
    acquired_at: datetime
    max_hold: Optional[float]


@dataclass(frozen=True)
class PermitInfo(LockInfo):
    """A held permit as its check describes it: never with its token."""

    slot: int = 0
    limit: int = 1


@dataclass(frozen=True)
class SemaphoreInfo:
    """A semaphore as inspection and listing describe it: how many permits are held and by whom (at most 1000)."""

    key: str
    held: int
    permits: Tuple[PermitInfo, ...]
    #: True when more permits are held than listed.
    truncated: bool


@dataclass(frozen=True)
class Stats:
    """What one service instance is doing (``GET /admin/stats``): its waiting requests, watches and rates."""

    waiting_requests: int
    watches: int
    acquires_per_second: float
    releases_per_second: float
    forced_releases_per_second: float
    rate_window_seconds: float
