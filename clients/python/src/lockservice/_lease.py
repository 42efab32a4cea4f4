"""What a held lease looks like to its holder, the same in the synchronous and the asyncio client.

The state changes of a held lease (a release, a loss, leaving a block) are made here once; each client's handle adds
only its waiting and I/O: the event it sets, the thread or task that keeps the lease, and how it runs an operation.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Generic, Iterator, Optional, Type

from . import _wire
from .errors import LockLost, LockServiceError, NotHeld
from .models import Leadership, Permit, RwLease

log = logging.getLogger("lockservice")
# Called once with the handle when the lease is lost; for the asyncio client it may be a coroutine function.
OnLost = Callable[[Any], object]


class HeldLease(Generic[_wire.L]):
    """A held lease: renewed every TTL/3 and watched in the background until released or lost.

    ``lost`` is set (and ``on_lost`` called once, with this handle) when the lease ends other than by this holder's
    release; ``lost_reason`` says why. Code that protects a resource should call :meth:`ensure_held` before each step
    and pass :attr:`fencing_token` to the resource.
    """

    def __init__(self, kind: _wire.Kind[_wire.L], grant: _wire.Grant[_wire.L], on_lost: Optional[OnLost]) -> None:
        self._kind = kind
        self._state = _wire.KeepState(grant.lease, grant.anchor)
        self._released = False
        self._on_lost = on_lost
        self.lost_reason: Optional[str] = None

    @property
    def lease(self) -> _wire.L:
        """The lease as last granted (the acquire, then each renewal)."""
        return self._state.lease

    @property
    def key(self) -> str:
        return self._state.lease.key

    @property
    def token(self) -> str:
        """The secret that proves ownership. Never log it."""
        return self._state.lease.token

    @property
    def fencing_token(self) -> int:
        """Pass it to the protected resource with every write: it can refuse one smaller than it has seen."""
        return self._state.lease.fencing_token

    @property
    def expires_at(self) -> datetime:
        """When the lease expires unless renewed, as last granted (informational: Redis's clock)."""
        return self._state.lease.expires_at

    @property
    def held(self) -> bool:
        """True until the lease is released or lost."""
        return not self._released and self.lost_reason is None

    def ensure_held(self) -> None:
        """Raises :class:`LockLost` (with the reason) when the lease was lost; call it before each protected step."""
        if self.lost_reason is not None:
            raise LockLost(self.key, self.lost_reason)

    def __repr__(self) -> str:
        state = "held" if self.held else f"lost ({self.lost_reason})" if self.lost_reason else "released"
        return f"<{type(self).__name__} key={self.key!r} fencing_token={self.fencing_token} {state}>"

    # -- the state changes both drivers share ------------------------------------------------------------------------

    def _begin_release(self) -> bool:
        """The holder releases: True when the service must be told (run :meth:`_release_op`), False when it was already
        released; :class:`LockLost` when the lease had been lost meanwhile. The keeper must stop in every case."""
        lost, released = self.lost_reason, self._released
        self._released = True
        if released:
            return False
        if lost is not None:
            raise LockLost(self.key, lost)
        return True

    def _release_op(self) -> _wire.Op[Optional[str]]:
        """The release request; returns the reason when the lease had ended before it reached the service (forced,
        expired), which the holder must hear of as a loss (:meth:`_lost_on_release`), else None."""
        try:
            yield from _wire.release(self._kind, self.key, self.token)
        except NotHeld as ended:
            return ended.reason
        return None

    def _raise_if_lost(self, reason: Optional[str]) -> None:
        """After the driver noted the loss a release (a proclaim) found, if any: raises it to the holder."""
        if reason is not None:
            raise LockLost(self.key, reason)

    def _keep_op(self) -> _wire.Op[str]:
        """Keeps the lease until it is lost and returns why; a keeper that fails returns ``unknown``, since it must
        not leave its holder believing it holds the lease."""
        try:
            return (yield from _wire.keep(self._kind, self._state))
        except Exception:  # noqa: BLE001 - see above
            log.exception("lockservice: keeping %r failed", self.key)
            return "unknown"

    def _record_loss(self, reason: str) -> bool:
        """Records a loss; True only the first time, when the driver sets ``lost`` and calls ``on_lost``."""
        if self.lost_reason is not None:
            return False
        self.lost_reason = reason
        return True

    @contextmanager
    def _calling_on_lost(self) -> Iterator[Optional[OnLost]]:
        """The ``on_lost`` callback to call (None without one): the loss stands whatever the callback does."""
        try:
            yield self._on_lost
        except Exception:  # noqa: BLE001 - see above
            log.exception("lockservice: the on_lost callback of %r failed", self.key)

    def _exit_failed(self, exc_type: Optional[Type[BaseException]], error: LockServiceError) -> None:
        """What leaving a block does when its release failed: a loss is raised unless the block raised already (its
        exception wins); with the service unreachable the lease expires at its TTL, nothing more an exit can do."""
        if isinstance(error, LockLost):
            if exc_type is None:
                raise error
            return
        log.warning("lockservice: releasing %r failed (%s); it expires at its TTL", self.key, error)


class HeldPermit(HeldLease[Permit]):
    """What a permit's handle adds to a lock's: its lane and the limit it was acquired with."""

    @property
    def slot(self) -> int:
        """The permit's lane, 0..limit-1; its fencing token increases per (key, slot)."""
        return self.lease.slot

    @property
    def limit(self) -> int:
        return self.lease.limit


class HeldRwLease(HeldLease[RwLease]):
    """What a read/write lease's handle adds to a lock's: its mode."""

    @property
    def mode(self) -> str:
        """``read`` (shared with other readers) or ``write`` (alone)."""
        return self.lease.mode


class HeldLeadership(HeldLease[Leadership]):
    """What a leader's handle adds to a lock's: its term, its value, and proclaiming a new value.

    The value is the one this leader last proclaimed (only its token can change it), kept apart from the lease as last
    granted, whose value a renewal that crossed a proclaim may still carry."""

    def __init__(self, kind: _wire.Kind[Leadership], grant: _wire.Grant[Leadership], on_lost: Optional[OnLost]) -> None:
        super().__init__(kind, grant, on_lost)
        self._value = grant.lease.value

    @property
    def name(self) -> str:
        """The election's name."""
        return self.key

    @property
    def term(self) -> int:
        """This leadership's term: its fencing token, strictly increasing per election name."""
        return self.fencing_token

    @property
    def value(self) -> str:
        """What this leader tells its followers (observers and ``leader()`` see it)."""
        return self._value

    def _proclaim_op(self, value: str) -> _wire.Op[Optional[str]]:
        """Sets the value (and extends the term, as every PATCH does); returns the reason when this token no longer
        leads, which the holder must hear of as a loss (:meth:`_raise_if_lost`), else None."""
        if not self.held:
            self.ensure_held()
            raise LockServiceError(f"The leadership of '{self.key}' was resigned; it cannot proclaim any more.")
        sent = time.monotonic()
        try:
            lease = yield from _wire.extend(self._kind, self.key, self.token, None, extra=(("value", value),))
        except NotHeld as ended:
            return ended.reason
        self._value = value
        self._state.granted(lease, sent)
        return None
