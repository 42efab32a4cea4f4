"""The asyncio client: the same operations as the synchronous one (``_wire``), driven over ``httpx.AsyncClient``, with
held leases kept by a task each."""

from __future__ import annotations

import asyncio
import inspect
import weakref
from types import TracebackType
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Generic, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

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
H = TypeVar("H", bound="_AsyncHeld[Any]")


class AsyncLockServiceClient:
    """The LockService HTTP API for asyncio, with the same calls as :class:`LockServiceClient` (awaited).

    ``url`` defaults to ``LOCKSERVICE_URL``, then ``http://localhost:8080``; ``api_key`` to ``LOCKSERVICE_API_KEY``.
    Use one per event loop and close it (``await client.aclose()`` or ``async with``).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: float = 10.0,
        *,
        event_hooks: Optional[Mapping[str, List[Callable[..., Any]]]] = None,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self.url, options = _wire.http_options(url, api_key, timeout, event_hooks)
        self._timeout = timeout
        self._http = httpx.AsyncClient(transport=transport, **options)
        self._held: "weakref.WeakSet[_AsyncHeld[Any]]" = weakref.WeakSet()

    # -- leases held in the background ------------------------------------------------------------------------------

    def lock(self, key: str, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None, max_hold: Optional[float] = None,
             on_lost: Optional[OnLost] = None) -> AsyncLeaseContext[AsyncLockHandle]:
        """As :meth:`LockServiceClient.lock`, with ``async with``; ``lost`` is an :class:`asyncio.Event`."""
        async def acquire() -> AsyncLockHandle:
            grant = await self._run(_wire.acquire(_wire.LOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold))
            return AsyncLockHandle(self, _wire.LOCK, grant, on_lost)
        return AsyncLeaseContext(acquire)

    def semaphore(self, key: str, limit: int, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                  max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> AsyncLeaseContext[AsyncPermitHandle]:
        """As :meth:`LockServiceClient.semaphore`, with ``async with``."""
        async def acquire() -> AsyncPermitHandle:
            grant = await self._run(_wire.acquire(
                _wire.SEMAPHORE, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, extra=(("limit", str(limit)),)))
            return AsyncPermitHandle(self, _wire.SEMAPHORE, grant, on_lost)
        return AsyncLeaseContext(acquire)

    def rwlock(self, key: str, mode: _wire.Mode, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
               max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> AsyncLeaseContext[AsyncRwLockHandle]:
        """As :meth:`LockServiceClient.rwlock`, with ``async with``."""
        async def acquire() -> AsyncRwLockHandle:
            grant = await self._run(_wire.acquire(
                _wire.RWLOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, extra=_wire.mode_param(mode)))
            return AsyncRwLockHandle(self, _wire.RWLOCK, grant, on_lost)
        return AsyncLeaseContext(acquire)

    def read_lock(self, key: str, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                  max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> AsyncLeaseContext[AsyncRwLockHandle]:
        return self.rwlock(key, "read", ttl, wait, owner, max_hold, on_lost)

    def write_lock(self, key: str, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                   max_hold: Optional[float] = None, on_lost: Optional[OnLost] = None) -> AsyncLeaseContext[AsyncRwLockHandle]:
        return self.rwlock(key, "write", ttl, wait, owner, max_hold, on_lost)

    def campaign(self, name: str, value: str = "", ttl: float = 30.0, wait: float = 0.0, max_hold: Optional[float] = None,
                 on_lost: Optional[OnLost] = None) -> AsyncLeaseContext[AsyncLeadershipHandle]:
        """As :meth:`LockServiceClient.campaign`, with ``async with``."""
        async def acquire() -> AsyncLeadershipHandle:
            grant = await self._run(_wire.acquire(
                _wire.ELECTION, name, ttl=ttl, wait=wait, owner=None, max_hold=max_hold, extra=_wire.value_param(value)))
            return AsyncLeadershipHandle(self, _wire.ELECTION, grant, on_lost)
        return AsyncLeaseContext(acquire)

    async def leader(self, name: str) -> Optional[Leader]:
        found: Optional[Leader] = await self._run(_wire.inspect(_wire.ELECTION, name))
        return found

    def observe(self, name: str) -> AsyncObservation:
        """As :meth:`LockServiceClient.observe`: ``async for event in client.observe(name)``; ``aclose()`` ends it."""
        return AsyncObservation(self, _wire.observe(name))

    # -- plain calls (see LockServiceClient) ------------------------------------------------------------------------

    async def acquire(self, key: str, ttl: Optional[float] = None, wait: float = 0.0, owner: Optional[str] = None,
                      max_hold: Optional[float] = None, idempotency_key: Optional[str] = None) -> Lease:
        grant = await self._run(_wire.acquire(
            _wire.LOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, idempotency_key=idempotency_key))
        return grant.lease

    async def release(self, key: str, token: str) -> None:
        await self._run(_wire.release(_wire.LOCK, key, token))

    async def extend(self, key: str, token: str, ttl: Optional[float] = None) -> Lease:
        return await self._run(_wire.extend(_wire.LOCK, key, token, ttl))

    async def inspect(self, key: str) -> Optional[LockInfo]:
        found: Optional[LockInfo] = await self._run(_wire.inspect(_wire.LOCK, key))
        return found

    async def check(self, key: str, token: str, wait: float = 0.0) -> LockInfo:
        info: LockInfo = await self._run(_wire.check(_wire.LOCK, key, token, wait))
        return info

    async def acquire_permit(self, key: str, limit: int, ttl: Optional[float] = None, wait: float = 0.0, owner: Optional[str] = None,
                             max_hold: Optional[float] = None, idempotency_key: Optional[str] = None) -> Permit:
        grant = await self._run(_wire.acquire(
            _wire.SEMAPHORE, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, idempotency_key=idempotency_key,
            extra=(("limit", str(limit)),)))
        return grant.lease

    async def release_permit(self, key: str, token: str) -> None:
        await self._run(_wire.release(_wire.SEMAPHORE, key, token))

    async def extend_permit(self, key: str, token: str, ttl: Optional[float] = None) -> Permit:
        return await self._run(_wire.extend(_wire.SEMAPHORE, key, token, ttl))

    async def check_permit(self, key: str, token: str, wait: float = 0.0) -> PermitInfo:
        info = await self._run(_wire.check(_wire.SEMAPHORE, key, token, wait))
        assert isinstance(info, PermitInfo)
        return info

    async def inspect_semaphore(self, key: str) -> Optional[SemaphoreInfo]:
        found: Optional[SemaphoreInfo] = await self._run(_wire.inspect(_wire.SEMAPHORE, key))
        return found

    async def acquire_rwlock(self, key: str, mode: _wire.Mode, ttl: Optional[float] = None, wait: float = 0.0,
                             owner: Optional[str] = None, max_hold: Optional[float] = None,
                             idempotency_key: Optional[str] = None) -> RwLease:
        grant = await self._run(_wire.acquire(
            _wire.RWLOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, idempotency_key=idempotency_key,
            extra=_wire.mode_param(mode)))
        return grant.lease

    async def release_rwlock(self, key: str, token: str) -> None:
        await self._run(_wire.release(_wire.RWLOCK, key, token))

    async def extend_rwlock(self, key: str, token: str, ttl: Optional[float] = None) -> RwLease:
        return await self._run(_wire.extend(_wire.RWLOCK, key, token, ttl))

    async def check_rwlock(self, key: str, token: str, wait: float = 0.0) -> RwLeaseInfo:
        info: RwLeaseInfo = await self._run(_wire.check(_wire.RWLOCK, key, token, wait))
        return info

    async def inspect_rwlock(self, key: str) -> Optional[RwLockInfo]:
        found: Optional[RwLockInfo] = await self._run(_wire.inspect(_wire.RWLOCK, key))
        return found

    # -- operators --------------------------------------------------------------------------------------------------

    async def list_locks(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[LockInfo]:
        return await self._run(_wire.list_all(_wire.LOCK, prefix, page_size))

    async def list_semaphores(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[SemaphoreInfo]:
        return await self._run(_wire.list_all(_wire.SEMAPHORE, prefix, page_size))

    async def force_release(self, key: str) -> bool:
        return await self._run(_wire.force_release(_wire.LOCK, key))

    async def force_release_permit(self, key: str, slot: int) -> bool:
        return await self._run(_wire.force_release(_wire.SEMAPHORE, key, slot))

    async def list_rwlocks(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[RwLockInfo]:
        return await self._run(_wire.list_all(_wire.RWLOCK, prefix, page_size))

    async def force_release_rwlock(self, key: str, fencing_token: Optional[int] = None) -> bool:
        return await self._run(_wire.force_release(_wire.RWLOCK, key, fencing_token=fencing_token))

    async def list_elections(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[Leader]:
        return await self._run(_wire.list_all(_wire.ELECTION, prefix, page_size))

    async def force_resign(self, name: str) -> bool:
        return await self._run(_wire.force_release(_wire.ELECTION, name))

    async def stats(self) -> Stats:
        return await self._run(_wire.stats())

    # -- lifetime ---------------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stops keeping the leases still held (they expire at their TTL) and closes the connections."""
        for held in list(self._held):
            await held._abandon()
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLockServiceClient:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.aclose()

    # -- the driver -------------------------------------------------------------------------------------------------

    async def _run(self, op: _wire.Op[T], stop: Optional[asyncio.Event] = None) -> T:
        """Sends what ``op`` yields until it returns; with ``stop``, gives up (``Stopped``) as soon as it is set."""
        run = _wire.Running(op, None if stop is None else stop.is_set)
        for step in run:
            if isinstance(step, _wire.Request):
                run.outcome = await self._send(step)
            elif stop is None:
                await asyncio.sleep(step.seconds)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), step.seconds)
                except asyncio.TimeoutError:
                    pass
        return run.result

    async def _send(self, request: _wire.Request) -> _wire.Outcome:
        try:
            response = await self._http.request(**_wire.http_arguments(request, self._timeout))
        except httpx.TransportError as error:
            return _wire.failure(error, self.url)
        return _wire.Response(response.status_code, response.headers, response.content)


class _AsyncHeld(HeldLease[_wire.L]):
    """A held lease kept by a task (see ``_wire.keep``) until released, lost, or its client closed."""

    def __init__(self, client: AsyncLockServiceClient, kind: _wire.Kind[_wire.L], grant: _wire.Grant[_wire.L],
                 on_lost: Optional[OnLost]) -> None:
        super().__init__(kind, grant, on_lost)
        self._client = client
        #: Set when the lease is lost; ``await lost.wait()`` (for example in ``asyncio.wait``) to stop the work.
        self.lost = asyncio.Event()
        self._stop = asyncio.Event()
        client._held.add(self)
        self._keeper = asyncio.ensure_future(self._keep())

    async def release(self) -> None:
        """Releases the lease; :class:`LockLost` when it had been lost meanwhile. Later calls do nothing."""
        self._stop.set()
        if not self._begin_release():
            return
        # The keeper is not waited for: the release answers its watch at once, and it stops when it sees _stop
        # (aclose() cancels one still running).
        await self._ended(await self._client._run(self._release_op()))

    async def _ended(self, reason: Optional[str]) -> None:
        """A request of the holder's found the lease lost (``reason``): noted as the keeper notes a loss, then raised."""
        if reason is not None:
            await self._note_loss(reason)
        self._raise_if_lost(reason)

    async def __aenter__(self: H) -> H:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        try:
            await self.release()
        except LockServiceError as error:
            self._exit_failed(exc_type, error)

    async def _keep(self) -> None:
        try:
            reason = await self._client._run(self._keep_op(), self._stop)
        except _wire.Stopped:
            return
        if not self._stop.is_set():  # else released (or abandoned) meanwhile: whatever the keeper saw is the release
            await self._note_loss(reason)

    async def _note_loss(self, reason: str) -> None:
        if not self._record_loss(reason):
            return
        self.lost.set()
        with self._calling_on_lost() as on_lost:
            result = None if on_lost is None else on_lost(self)
            if inspect.isawaitable(result):
                await result

    async def _abandon(self) -> None:
        self._stop.set()
        self._keeper.cancel()
        await asyncio.gather(self._keeper, return_exceptions=True)


class AsyncLockHandle(_AsyncHeld[Lease]):
    """A held lock (see :meth:`AsyncLockServiceClient.lock`)."""


class AsyncPermitHandle(_AsyncHeld[Permit], HeldPermit):
    """A held permit of a semaphore (see :meth:`AsyncLockServiceClient.semaphore`)."""


class AsyncRwLockHandle(_AsyncHeld[RwLease], HeldRwLease):
    """A held read or write lease (see :meth:`AsyncLockServiceClient.rwlock`)."""


class AsyncLeadershipHandle(_AsyncHeld[Leadership], HeldLeadership):
    """A held leadership (see :meth:`AsyncLockServiceClient.campaign`)."""

    async def proclaim(self, value: str) -> None:
        """As :meth:`LeadershipHandle.proclaim`."""
        await self._ended(await self._client._run(self._proclaim_op(value)))

    async def resign(self) -> None:
        await self.release()


class AsyncObservation:
    """The events of an observed election (see :meth:`AsyncLockServiceClient.observe`): an async iterator;
    ``await aclose()`` (or leaving ``async with``) ends its stream, also while another task waits on it."""

    def __init__(self, client: AsyncLockServiceClient, op: _wire.StreamOp) -> None:
        self._client = client
        self._stopped = False
        # Made by the iteration, in its event loop (an asyncio.Event made outside one binds to another on 3.9).
        self._stop: Optional[asyncio.Event] = None
        self._response: Optional[httpx.Response] = None
        self._events = self._drive(op)

    def __aiter__(self) -> AsyncIterator[ElectionEvent]:
        return self

    async def __anext__(self) -> ElectionEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Ends the observation: an iteration waiting in another task stops at once (its loop ends)."""
        self._stopped = True
        if self._stop is not None:
            self._stop.set()
        try:
            await self._events.aclose()
        except RuntimeError:
            # Another task is iterating, waiting for the stream: closing the response ends that read at once.
            if self._response is not None:
                await self._response.aclose()

    async def __aenter__(self) -> AsyncObservation:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.aclose()

    async def _drive(self, op: _wire.StreamOp) -> AsyncGenerator[ElectionEvent, None]:
        """Sends what ``op`` yields: requests (an event stream left open for its reads), sleeps, reads, and events;
        returns at the first step after :meth:`aclose`."""
        chunks: Optional[AsyncIterator[bytes]] = None
        stop = self._stop = asyncio.Event()
        run = _wire.Running(op, lambda: self._stopped)
        try:
            for step in run:
                if isinstance(step, _wire.Emit):
                    yield step.event
                elif isinstance(step, _wire.Sleep):
                    try:
                        await asyncio.wait_for(stop.wait(), step.seconds)
                    except asyncio.TimeoutError:
                        pass
                elif isinstance(step, _wire.Read):
                    run.outcome = await self._read(chunks)
                else:
                    if self._response is not None:
                        await self._response.aclose()
                    self._response, chunks, run.outcome = await self._open(step)
        except _wire.Stopped:
            return
        finally:
            if self._response is not None:
                await self._response.aclose()

    async def _open(self, request: _wire.Request) -> Tuple[Optional[httpx.Response], Optional[AsyncIterator[bytes]], _wire.Outcome]:
        http = self._client._http
        try:
            response = await http.send(http.build_request(**_wire.http_arguments(request, self._client._timeout)), stream=True)
            if response.status_code != 200:
                await response.aread()
                await response.aclose()
                return None, None, _wire.Response(response.status_code, response.headers, response.content)
        except httpx.TransportError as error:
            return None, None, _wire.failure(error, self._client.url)
        return response, response.aiter_bytes(), _wire.Response(200, response.headers, b"")

    async def _read(self, chunks: Optional[AsyncIterator[bytes]]) -> _wire.StreamOutcome:
        try:
            return _wire.Chunk(await chunks.__anext__() if chunks is not None else b"")
        except StopAsyncIteration:
            return _wire.Chunk(b"")
        except httpx.TransportError as error:
            return _wire.failure(error, self._client.url)


class AsyncLeaseContext(Generic[H]):
    """What :meth:`AsyncLockServiceClient.lock` returns: ``async with`` it, or ``await`` it for the held handle."""

    def __init__(self, acquire: Callable[[], Awaitable[H]]) -> None:
        self._acquire = acquire
        self._handle: Optional[H] = None

    async def acquire(self) -> H:
        """Acquires (waiting in the server as asked) and returns the held handle; the caller releases it."""
        return await self._acquire()

    def __await__(self) -> Generator[Any, None, H]:
        return self._acquire().__await__()

    async def __aenter__(self) -> H:
        self._handle = await self._acquire()
        return self._handle

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            await handle.__aexit__(exc_type, exc, tb)


__all__: Sequence[str] = [
    "AsyncLockServiceClient", "AsyncLockHandle", "AsyncPermitHandle", "AsyncRwLockHandle", "AsyncLeadershipHandle",
    "AsyncLeaseContext", "AsyncObservation"]
