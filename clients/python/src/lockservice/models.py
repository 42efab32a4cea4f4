"""What the service answers, as immutable values. Times are seconds (floats) and timezone-aware datetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional, Tuple


@dataclass(frozen=True)
class Lease:
    """A lock obtained by acquire (or renewed by extend): the body of a 201 and of extend's 200."""

    key: str
    #: The secret that proves ownership; needed for release, extend and check. Never log it (``repr`` leaves it out).
    token: str = field(repr=False)
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
class RwLease(Lease):
    """A lease of a read/write lock: ``mode`` is ``read`` (shared with other readers) or ``write`` (alone).

    One fencing sequence per key covers both modes, so a writer's fencing token exceeds every earlier reader's.
    """

    mode: str = "read"


@dataclass(frozen=True)
class RwLeaseInfo(LockInfo):
    """A read/write lease as its check and an inspection's holder list describe it: never with its token."""

    mode: str = "read"


@dataclass(frozen=True)
class RwLockInfo:
    """A read/write lock as inspection and listing describe it: the mode held, its holders (at most 1000, those that
    expire first) and how many writers wait for it on any instance (readers queue behind them)."""

    key: str
    mode: str
    holders: Tuple[RwLeaseInfo, ...]
    writers_waiting: int
    #: True when more leases are held than listed.
    truncated: bool


@dataclass(frozen=True)
class Leadership(Lease):
    """A candidate's leadership of an election: a lease whose fencing token is the ``term`` (strictly increasing per
    election name) and that carries the ``value`` the leader tells its followers. ``key`` is the election's name."""

    value: str = ""

    @property
    def name(self) -> str:
        return self.key

    @property
    def term(self) -> int:
        return self.fencing_token


@dataclass(frozen=True)
class Leader:
    """Who leads an election, as anyone may see it (never the token): ``term`` and ``value``; ``ttl`` is what remained
    of the term, when the service answered, unless the leader renews it (as leaders do every TTL/3)."""

    name: str
    term: int
    value: str
    acquired_at: datetime
    expires_at: datetime
    ttl: float


@dataclass(frozen=True)
class ElectionEvent:
    """One state an observer is told: ``event`` is ``leader`` (``leader`` says who, with its term and value) or
    ``no-leader``. ``id`` names the state; two events of one id report the same state (the client never yields it twice
    in a row)."""

    event: str
    name: str
    id: str
    leader: Optional[Leader]

    @property
    def term(self) -> Optional[int]:
        return None if self.leader is None else self.leader.term

    @property
    def value(self) -> Optional[str]:
        return None if self.leader is None else self.leader.value


@dataclass(frozen=True)
class Stats:
    """What one service instance is doing (``GET /admin/stats``): its waiting requests, watches and rates."""

    waiting_requests: int
    watches: int
    acquires_per_second: float
    releases_per_second: float
    forced_releases_per_second: float
    rate_window_seconds: float
