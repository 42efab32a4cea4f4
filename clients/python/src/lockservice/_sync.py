"""The synchronous client: a driver for the operations of ``_wire`` over ``httpx.Client``, and held leases kept by a
background thread each."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Callable, Generic, List, Mapping, Optional, Sequence, Type, TypeVar

import httpx

from . import _wire
from ._lease import HeldLease, HeldPermit
from .errors import LockLost, LockServiceError, NotHeld
from .models import Lease, LockInfo, Permit, PermitInfo, SemaphoreInfo, Stats

T = TypeVar("T")
H = TypeVar("H", bound="_Held[Any]")
OnLost = Callable[[Any], object]

log = logging.getLogger("lockservice")


class _Stopped(Exception):
    """The holder released the lease (or closed the client): its keeper stops."""


class LockServiceClient:
    """The LockService HTTP API, synchronous. Thread-safe; use one per process and close it (or use ``with``).

    ``url`` defaults to ``LOCKSERVICE_URL``, then ``http://localhost:8080``; ``api_key`` to ``LOCKSERVICE_API_KEY``.
    ``timeout`` (seconds) bounds each request; waiting requests get their wait on top of it.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: float = 10.0,
        *,
        event_hooks: Optional[Mapping[str, List[Callable[..., Any]]]] = None,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.url, options = _wire.http_options(url, api_key, timeout, event_hooks)
        self._timeout = timeout
        self._http = httpx.Client(transport=transport, **options)
        self._held: "weakref.WeakSet[_Held[Any]]" = weakref.WeakSet()

    # -- leases held in the background ------------------------------------------------------------------------------

    def lock(self, key: str, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None, max_hold: Optional[float] = None,
             on_lost: Optional[OnLost] = None) -> LeaseContext[LockHandle]:
        """A lock to hold in a ``with`` block: acquired on entry (waiting in the server up to ``wait`` seconds; else
        :class:`LockTimeout`), renewed every ``ttl``/3 and watched while the block runs, released on exit. After a
        loss, ``lost`` is set, ``on_lost(handle)`` is called, and leaving the block raises :class:`LockLost`."""
        return LeaseContext(lambda: LockHandle(
            self, _wire.LOCK, self._run(_wire.acquire(_wire.LOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold)), on_lost))

    def semaphore(self, key: str, limit: int, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                  max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> LeaseContext[PermitHandle]:
        """A permit of the counting semaphore ``key`` (at most ``limit`` holders at once), held as :meth:`lock` holds a
        lock; the handle has the permit's ``slot``."""
        return LeaseContext(lambda: PermitHandle(self, _wire.SEMAPHORE, self._run(_wire.acquire(
            _wire.SEMAPHORE, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, extra=(("limit", str(limit)),))), on_lost))

    # -- plain calls ------------------------------------------------------------------------------------------------

    def acquire(self, key: str, ttl: Optional[float] = None, wait: float = 0.0, owner: Optional[str] = None,
                max_hold: Optional[float] = None, idempotency_key: Optional[str] = None) -> Lease:
        """One acquisition, nothing kept in the background: renew it with :meth:`extend`, end it with :meth:`release`."""
        return self._run(_wire.acquire(
            _wire.LOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, idempotency_key=idempotency_key)).lease

    def release(self, key: str, token: str) -> None:
        """Releases the lock ``token`` holds; :class:`NotHeld` (with the reason) when it does not hold it."""
        self._run(_wire.release(_wire.LOCK, key, token))

    def extend(self, key: str, token: str, ttl: Optional[float] = None) -> Lease:
        """Sets the lock's remaining TTL to ``ttl`` seconds (default: the TTL it was acquired with)."""
        return self._run(_wire.extend(_wire.LOCK, key, token, ttl))

    def inspect(self, key: str) -> Optional[LockInfo]:
        """Who holds ``key``, or None when it is free."""
        found: Optional[LockInfo] = self._run(_wire.inspect(_wire.LOCK, key))
        return found

    def check(self, key: str, token: str, wait: float = 0.0) -> LockInfo:
        """The lock while ``token`` holds it, else :class:`NotHeld`; with ``wait`` > 0, answered as soon as it ends."""
        return self._run(_wire.check(_wire.LOCK, key, token, wait))

    def acquire_permit(self, key: str, limit: int, ttl: Optional[float] = None, wait: float = 0.0, owner: Optional[str] = None,
                       max_hold: Optional[float] = None, idempotency_key: Optional[str] = None) -> Permit:
        return self._run(_wire.acquire(
            _wire.SEMAPHORE, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, idempotency_key=idempotency_key,
            extra=(("limit", str(limit)),))).lease

    def release_permit(self, key: str, token: str) -> None:
        self._run(_wire.release(_wire.SEMAPHORE, key, token))

    def extend_permit(self, key: str, token: str, ttl: Optional[float] = None) -> Permit:
        return self._run(_wire.extend(_wire.SEMAPHORE, key, token, ttl))

    def check_permit(self, key: str, token: str, wait: float = 0.0) -> PermitInfo:
        info = self._run(_wire.check(_wire.SEMAPHORE, key, token, wait))
        assert isinstance(info, PermitInfo)
        return info

    def inspect_semaphore(self, key: str) -> Optional[SemaphoreInfo]:
        found: Optional[SemaphoreInfo] = self._run(_wire.inspect(_wire.SEMAPHORE, key))
        return found

    # -- operators --------------------------------------------------------------------------------------------------

    def list_locks(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[LockInfo]:
        """Every held lock whose key starts with ``prefix``, following the listing's cursors, each key once."""
        return self._run(_wire.list_all(_wire.LOCK, prefix, page_size))

    def list_semaphores(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[SemaphoreInfo]:
        return self._run(_wire.list_all(_wire.SEMAPHORE, prefix, page_size))

    def force_release(self, key: str) -> bool:
        """Releases ``key`` whoever holds it (admin); False when it was free. Its holder's next watch says ``forced``."""
        return self._run(_wire.force_release(_wire.LOCK, key))

    def force_release_permit(self, key: str, slot: int) -> bool:
        return self._run(_wire.force_release(_wire.SEMAPHORE, key, slot))

    def stats(self) -> Stats:
        """This instance's waiting requests, watches and rates (the dashboard's numbers)."""
        return self._run(_wire.stats())

    # -- lifetime ---------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stops keeping the leases still held (they expire at their TTL) and closes the connections."""
        for held in list(self._held):
            held._abandon()
        self._http.close()

    def __enter__(self) -> LockServiceClient:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    # -- the driver -------------------------------------------------------------------------------------------------

    def _run(self, op: _wire.Op[T], stop: Optional[threading.Event] = None) -> T:
        """Sends what ``op`` yields until it returns; with ``stop``, gives up (``_Stopped``) as soon as it is set."""
        try:
            step = next(op)
            while True:
                outcome: _wire.Outcome = None
                if isinstance(step, _wire.Sleep):
                    if stop is None:
                        time.sleep(step.seconds)
                    else:
                        stop.wait(step.seconds)
                else:
                    outcome = self._send(step)
                if stop is not None and stop.is_set():
                    raise _Stopped()
                step = op.send(outcome)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            op.close()

    def _send(self, request: _wire.Request) -> _wire.Outcome:
        bound = _wire.read_timeout(request, self._timeout)
        try:
            response = self._http.request(
                request.method, request.path, params=list(request.params) or None, headers=dict(request.headers) or None,
                timeout=httpx.Timeout(bound, connect=min(bound, self._timeout)))
        except httpx.TransportError as error:
            return _wire.failure(error, self.url)
        return _wire.Response(response.status_code, response.headers, response.content)


class _Held(HeldLease[_wire.L]):
    """A held lease kept by a daemon thread (see ``_wire.keep``) until released, lost, or its client closed."""

    def __init__(self, client: LockServiceClient, kind: _wire.Kind[_wire.L], grant: _wire.Grant[_wire.L],
                 on_lost: Optional[OnLost]) -> None:
        super().__init__(kind, grant)
        self._client = client
        self._on_lost = on_lost
        #: Set when the lease is lost; wait on it, or poll ``lost.is_set()``, to stop the work it protects.
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._guard = threading.Lock()
        client._held.add(self)
        self._keeper = threading.Thread(target=self._keep, name=f"lockservice-keep-{self.key}", daemon=True)
        self._keeper.start()

    def release(self) -> None:
        """Releases the lease; :class:`LockLost` when it had been lost meanwhile. Later calls do nothing."""
        with self._guard:
            lost, released = self.lost_reason, self._released
            self._released = True
            self._stop.set()
        if released:
            return
        if lost is not None:
            raise LockLost(self.key, lost)
        try:
            self._client._run(_wire.release(self._kind, self.key, self.token))
        except NotHeld as ended:
            # Lost before the release reached the service (forced, expired): the holder must hear of it.
            self._note_loss(ended.reason)
            raise LockLost(self.key, ended.reason) from None
        # The keeper is not waited for: the release answers its watch at once, and it stops when it sees _stop.

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        try:
            self.release()
        except LockLost:
            if exc_type is None:
                raise
        except LockServiceError as error:
            # The service unreachable at the end: the lease expires at its TTL; nothing more a block's exit can do.
            log.warning("lockservice: releasing %r failed (%s); it expires at its TTL", self.key, error)

    def _keep(self) -> None:
        try:
            reason = self._client._run(_wire.keep(self._kind, self._state), self._stop)
        except _Stopped:
            return
        except Exception:  # noqa: BLE001 - a keeper that dies must not leave its holder believing it holds the lease
            log.exception("lockservice: keeping %r failed", self.key)
            reason = "unknown"
        with self._guard:
            if self._stop.is_set():
                return
        self._note_loss(reason)

    def _note_loss(self, reason: str) -> None:
        with self._guard:
            if self.lost_reason is not None:
                return
            self.lost_reason = reason
            self.lost.set()
        if self._on_lost is not None:
            try:
                self._on_lost(self)
            except Exception:  # noqa: BLE001 - the loss stands whatever the callback does
                log.exception("lockservice: the on_lost callback of %r failed", self.key)

    def _abandon(self) -> None:
        self._stop.set()


class LockHandle(_Held[Lease]):
    """A held lock (see :meth:`LockServiceClient.lock`)."""


class PermitHandle(_Held[Permit], HeldPermit):
    """A held permit of a semaphore (see :meth:`LockServiceClient.semaphore`)."""


class LeaseContext(Generic[H]):
    """What :meth:`LockServiceClient.lock` returns: ``with`` it, or call :meth:`acquire` and release the handle."""

    def __init__(self, acquire: Callable[[], H]) -> None:
        self._acquire = acquire
        self._handle: Optional[H] = None

    def acquire(self) -> H:
        """Acquires (waiting in the server as asked) and returns the held handle; the caller releases it."""
        return self._acquire()

    def __enter__(self) -> H:
        self._handle = self._acquire()
        return self._handle

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.__exit__(exc_type, exc, tb)


__all__: Sequence[str] = ["LockServiceClient", "LockHandle", "PermitHandle", "LeaseContext"]
