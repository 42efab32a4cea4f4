"""What a held lease looks like to its holder, the same in the synchronous and the asyncio client."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Optional

from . import _wire
from .errors import LockLost
from .models import Permit


class HeldLease(Generic[_wire.L]):
    """A held lease: renewed every TTL/3 and watched in the background until released or lost.

    ``lost`` is set (and ``on_lost`` called once, with this handle) when the lease ends other than by this holder's
    release; ``lost_reason`` says why. Code that protects a resource should call :meth:`ensure_held` before each step
    and pass :attr:`fencing_token` to the resource.
    """

    def __init__(self, kind: _wire.Kind[_wire.L], grant: _wire.Grant[_wire.L]) -> None:
        self._kind = kind
        self._state = _wire.KeepState(grant.lease, grant.anchor)
        self._released = False
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


class HeldPermit(HeldLease[Permit]):
    """What a permit's handle adds to a lock's: its lane and the limit it was acquired with."""

    @property
    def slot(self) -> int:
        """The permit's lane, 0..limit-1; its fencing token increases per (key, slot)."""
        return self.lease.slot

    @property
    def limit(self) -> int:
        return self.lease.limit
