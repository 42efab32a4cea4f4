"""The synchronous client: a driver for the operations of ``_wire`` over ``httpx.Client``, and held leases kept by a
background thread each."""

from __future__ import annotations

import socket
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Callable, Generator, Generic, Iterator, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import httpx

from . import _wire
from ._lease import HeldLease, HeldLeadership, HeldPermit, HeldRwLease, OnLost
from .errors import LockServiceError
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

T = TypeVar("T")
H = TypeVar("H", bound="_Held[Any]")


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

    def rwlock(self, key: str, mode: _wire.Mode, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
               max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> LeaseContext[RwLockHandle]:
        """A lease of the read/write lock ``key`` in ``mode`` (``read``: shared with other readers, granted while no
        writer holds or waits; ``write``: alone), held as :meth:`lock` holds a lock; the handle has its ``mode``."""
        return LeaseContext(lambda: RwLockHandle(self, _wire.RWLOCK, self._run(_wire.acquire(
            _wire.RWLOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, extra=_wire.mode_param(mode))), on_lost))

    def read_lock(self, key: str, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                  max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> LeaseContext[RwLockHandle]:
        """``rwlock(key, "read", ...)``."""
        return self.rwlock(key, "read", ttl, wait, owner, max_hold, on_lost)

    def write_lock(self, key: str, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                   max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> LeaseContext[RwLockHandle]:
        """``rwlock(key, "write", ...)``."""
        return self.rwlock(key, "write", ttl, wait, owner, max_hold, on_lost)

    def campaign(self, name: str, value: str = "", ttl: float = 30.0, wait: float = 0.0, max_hold: Optional[float] = None,
                 on_lost: Optional[OnLost] = None) -> LeaseContext[LeadershipHandle]:
        """Leadership of election ``name``, held as :meth:`lock` holds a lock: entering campaigns (waiting in the
        server up to ``wait`` seconds, ``float("inf")`` for ever; else :class:`LockTimeout` with the ``leader`` in the
        way), the block leads while it runs (renewed, watched: ``lost`` and ``on_lost`` as for a lock), and leaving
        resigns. The handle has ``term``, ``value`` and ``proclaim(value)``."""
        return LeaseContext(lambda: LeadershipHandle(self, _wire.ELECTION, self._run(_wire.acquire(
            _wire.ELECTION, name, ttl=ttl, wait=wait, owner=None, max_hold=max_hold, extra=_wire.value_param(value))), on_lost))

    def leader(self, name: str) -> Optional[Leader]:
        """Who leads election ``name`` now (term, value, never the token), or None when nobody does."""
        found: Optional[Leader] = self._run(_wire.inspect(_wire.ELECTION, name))
        return found

    def observe(self, name: str) -> Observation:
        """The leadership states of election ``name`` as they change: the current one first, then one per change (a
        new term, a proclaimed value, no leader) made on any instance. Iterate it (``for event in ...``); it reconnects
        by itself and never yields the state it yielded last again. Close it (or use ``with``) to stop."""
        return Observation(self, _wire.observe(name))

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
        info: LockInfo = self._run(_wire.check(_wire.LOCK, key, token, wait))
        return info

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

    def acquire_rwlock(self, key: str, mode: _wire.Mode, ttl: Optional[float] = None, wait: float = 0.0, owner: Optional[str] = None,
                       max_hold: Optional[float] = None, idempotency_key: Optional[str] = None) -> RwLease:
        return self._run(_wire.acquire(
            _wire.RWLOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, idempotency_key=idempotency_key,
            extra=_wire.mode_param(mode))).lease

    def release_rwlock(self, key: str, token: str) -> None:
        self._run(_wire.release(_wire.RWLOCK, key, token))

    def extend_rwlock(self, key: str, token: str, ttl: Optional[float] = None) -> RwLease:
        return self._run(_wire.extend(_wire.RWLOCK, key, token, ttl))

    def check_rwlock(self, key: str, token: str, wait: float = 0.0) -> RwLeaseInfo:
        info: RwLeaseInfo = self._run(_wire.check(_wire.RWLOCK, key, token, wait))
        return info

    def inspect_rwlock(self, key: str) -> Optional[RwLockInfo]:
        """The mode held, the holders and the writers waiting, or None when nobody holds ``key``."""
        found: Optional[RwLockInfo] = self._run(_wire.inspect(_wire.RWLOCK, key))
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

    def list_rwlocks(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[RwLockInfo]:
        return self._run(_wire.list_all(_wire.RWLOCK, prefix, page_size))

    def force_release_rwlock(self, key: str, fencing_token: Optional[int] = None) -> bool:
        """Releases every lease of ``key``, or only the one with ``fencing_token``; False when there was none."""
        return self._run(_wire.force_release(_wire.RWLOCK, key, fencing_token=fencing_token))

    def list_elections(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[Leader]:
        """The elections that have a leader, each with its leader (never a token)."""
        return self._run(_wire.list_all(_wire.ELECTION, prefix, page_size))

    def force_resign(self, name: str) -> bool:
        """Forces the leader of ``name`` out (admin): a waiting candidate leads, the leader hears ``forced``; False
        when nobody led."""
        return self._run(_wire.force_release(_wire.ELECTION, name))

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
        """Sends what ``op`` yields until it returns; with ``stop``, gives up (``Stopped``) as soon as it is set."""
        run = _wire.Running(op, None if stop is None else stop.is_set)
        for step in run:
            if isinstance(step, _wire.Request):
                run.outcome = self._send(step)
            elif stop is None:
                time.sleep(step.seconds)
            else:
                stop.wait(step.seconds)
        return run.result

    def _send(self, request: _wire.Request) -> _wire.Outcome:
        try:
            response = self._http.request(**_wire.http_arguments(request, self._timeout))
        except httpx.TransportError as error:
            return _wire.failure(error, self.url)
        return _wire.Response(response.status_code, response.headers, response.content)


class _Held(HeldLease[_wire.L]):
    """A held lease kept by a daemon thread (see ``_wire.keep``) until released, lost, or its client closed."""

    def __init__(self, client: LockServiceClient, kind: _wire.Kind[_wire.L], grant: _wire.Grant[_wire.L],
                 on_lost: Optional[OnLost]) -> None:
        super().__init__(kind, grant, on_lost)
        self._client = client
        #: Set when the lease is lost; wait on it, or poll ``lost.is_set()``, to stop the work it protects.
        self.lost = threading.Event()
        self._stop = threading.Event()
        # The keeper thread and the holder's thread change the lease's state; this orders them.
        self._guard = threading.Lock()
        client._held.add(self)
        self._keeper = threading.Thread(target=self._keep, name=f"lockservice-keep-{self.key}", daemon=True)
        self._keeper.start()

    def release(self) -> None:
        """Releases the lease; :class:`LockLost` when it had been lost meanwhile. Later calls do nothing."""
        with self._guard:
            self._stop.set()
            if not self._begin_release():
                return
        # The keeper is not waited for: the release answers its watch at once, and it stops when it sees _stop.
        self._ended(self._client._run(self._release_op()))

    def _ended(self, reason: Optional[str]) -> None:
        """A request of the holder's found the lease lost (``reason``): noted as the keeper notes a loss, then raised."""
        if reason is not None:
            self._note_loss(reason)
        self._raise_if_lost(reason)

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        try:
            self.release()
        except LockServiceError as error:
            self._exit_failed(exc_type, error)

    def _keep(self) -> None:
        try:
            reason = self._client._run(self._keep_op(), self._stop)
        except _wire.Stopped:
            return
        with self._guard:
            if self._stop.is_set():
                return  # released (or abandoned) meanwhile: whatever the keeper saw is the release
        self._note_loss(reason)

    def _note_loss(self, reason: str) -> None:
        with self._guard:
            if not self._record_loss(reason):
                return
            self.lost.set()
        with self._calling_on_lost() as on_lost:
            if on_lost is not None:
                on_lost(self)

    def _abandon(self) -> None:
        self._stop.set()


class LockHandle(_Held[Lease]):
    """A held lock (see :meth:`LockServiceClient.lock`)."""


class PermitHandle(_Held[Permit], HeldPermit):
    """A held permit of a semaphore (see :meth:`LockServiceClient.semaphore`)."""


class RwLockHandle(_Held[RwLease], HeldRwLease):
    """A held read or write lease (see :meth:`LockServiceClient.rwlock`)."""


class LeadershipHandle(_Held[Leadership], HeldLeadership):
    """A held leadership (see :meth:`LockServiceClient.campaign`)."""

    def proclaim(self, value: str) -> None:
        """Tells the followers a new value (observers see it); :class:`LockLost` when this candidate no longer leads."""
        self._ended(self._client._run(self._proclaim_op(value)))

    def resign(self) -> None:
        """Stops leading now (a waiting candidate leads within milliseconds); as :meth:`release`."""
        self.release()


class Observation:
    """The events of an observed election (see :meth:`LockServiceClient.observe`): an iterator that blocks until the
    next change; ``close()`` (or leaving ``with``) ends its stream, also from another thread while it waits."""

    def __init__(self, client: LockServiceClient, op: _wire.StreamOp) -> None:
        self._client = client
        self._stop = threading.Event()
        self._response: Optional[httpx.Response] = None
        self._events = self._drive(op)

    def __iter__(self) -> Iterator[ElectionEvent]:
        return self

    def __next__(self) -> ElectionEvent:
        return next(self._events)

    def close(self) -> None:
        """Ends the observation: an iteration running on another thread stops at once (its loop ends)."""
        self._stop.set()
        try:
            self._events.close()
        except ValueError:
            # Iterating on another thread now, most likely blocked in a read of the stream: closing a socket does not
            # wake a read blocked on it, shutting it down does (else the read ends at its timeout, OBSERVE_SILENCE).
            _interrupt(self._response)

    def __enter__(self) -> Observation:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def _drive(self, op: _wire.StreamOp) -> Generator[ElectionEvent, None, None]:
        """Sends what ``op`` yields: requests (an event stream left open for its reads), sleeps, reads, and events;
        returns at the first step after :meth:`close`."""
        chunks: Optional[Iterator[bytes]] = None
        run = _wire.Running(op, self._stop.is_set)
        try:
            for step in run:
                if isinstance(step, _wire.Emit):
                    yield step.event
                elif isinstance(step, _wire.Sleep):
                    self._stop.wait(step.seconds)
                elif isinstance(step, _wire.Read):
                    run.outcome = self._read(chunks)
                else:
                    if self._response is not None:
                        self._response.close()
                    self._response, chunks, run.outcome = self._open(step)
        except _wire.Stopped:
            return
        finally:
            if self._response is not None:
                self._response.close()

    def _open(self, request: _wire.Request) -> Tuple[Optional[httpx.Response], Optional[Iterator[bytes]], _wire.Outcome]:
        http = self._client._http
        try:
            response = http.send(http.build_request(**_wire.http_arguments(request, self._client._timeout)), stream=True)
            if response.status_code != 200:
                response.read()
                response.close()
                return None, None, _wire.Response(response.status_code, response.headers, response.content)
        except httpx.TransportError as error:
            return None, None, _wire.failure(error, self._client.url)
        return response, response.iter_bytes(), _wire.Response(200, response.headers, b"")

    def _read(self, chunks: Optional[Iterator[bytes]]) -> _wire.StreamOutcome:
        try:
            return _wire.Chunk(next(chunks, b"") if chunks is not None else b"")
        except httpx.TransportError as error:
            return _wire.failure(error, self._client.url)


def _interrupt(response: Optional[httpx.Response]) -> None:
    """Ends a read blocked on ``response``'s connection now, where httpx tells its socket (httpcore 0.16 and later)."""
    stream = None if response is None else response.extensions.get("network_stream")
    connection = None if stream is None else stream.get_extra_info("socket")
    if isinstance(connection, socket.socket):
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the read has ended


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


__all__: Sequence[str] = [
    "LockServiceClient", "LockHandle", "PermitHandle", "RwLockHandle", "LeadershipHandle", "LeaseContext", "Observation"]
