"""The asyncio client: the same operations as the synchronous one (``_wire``), driven over ``httpx.AsyncClient``, with
held leases kept by a task each."""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from types import TracebackType
from typing import Any, Awaitable, Callable, Generator, Generic, List, Mapping, Optional, Sequence, Type, TypeVar

import httpx

from . import _wire
from ._lease import HeldLease, HeldPermit
from .errors import LockLost, LockServiceError, NotHeld
from .models import Lease, LockInfo, Permit, PermitInfo, SemaphoreInfo, Stats

T = TypeVar("T")
H = TypeVar("H", bound="_AsyncHeld[Any]")
# Called once with the handle when the lease is lost; may be a coroutine function.
AsyncOnLost = Callable[[Any], object]

log = logging.getLogger("lockservice")


class _Stopped(Exception):
    """The holder released the lease (or closed the client): its keeper stops."""


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
             on_lost: Optional[AsyncOnLost] = None) -> AsyncLeaseContext[AsyncLockHandle]:
        """As :meth:`LockServiceClient.lock`, with ``async with``; ``lost`` is an :class:`asyncio.Event`."""
        async def acquire() -> AsyncLockHandle:
            grant = await self._run(_wire.acquire(_wire.LOCK, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold))
            return AsyncLockHandle(self, _wire.LOCK, grant, on_lost)
        return AsyncLeaseContext(acquire)

    def semaphore(self, key: str, limit: int, ttl: float = 30.0, wait: float = 0.0, owner: Optional[str] = None,
                  max_hold: Optional[float] = None, on_lost: Optional[AsyncOnLost] = None) -> AsyncLeaseContext[AsyncPermitHandle]:
        """As :meth:`LockServiceClient.semaphore`, with ``async with``."""
        async def acquire() -> AsyncPermitHandle:
            grant = await self._run(_wire.acquire(
                _wire.SEMAPHORE, key, ttl=ttl, wait=wait, owner=owner, max_hold=max_hold, extra=(("limit", str(limit)),)))
            return AsyncPermitHandle(self, _wire.SEMAPHORE, grant, on_lost)
        return AsyncLeaseContext(acquire)

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
        return await self._run(_wire.check(_wire.LOCK, key, token, wait))

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

    # -- operators --------------------------------------------------------------------------------------------------

    async def list_locks(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[LockInfo]:
        return await self._run(_wire.list_all(_wire.LOCK, prefix, page_size))

    async def list_semaphores(self, prefix: Optional[str] = None, page_size: Optional[int] = None) -> List[SemaphoreInfo]:
        return await self._run(_wire.list_all(_wire.SEMAPHORE, prefix, page_size))

    async def force_release(self, key: str) -> bool:
        return await self._run(_wire.force_release(_wire.LOCK, key))

    async def force_release_permit(self, key: str, slot: int) -> bool:
        return await self._run(_wire.force_release(_wire.SEMAPHORE, key, slot))

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
        """Sends what ``op`` yields until it returns; with ``stop``, gives up (``_Stopped``) as soon as it is set."""
        try:
            step = next(op)
            while True:
                outcome: _wire.Outcome = None
                if isinstance(step, _wire.Sleep):
                    if stop is None:
                        await asyncio.sleep(step.seconds)
                    else:
                        try:
                            await asyncio.wait_for(stop.wait(), step.seconds)
                        except asyncio.TimeoutError:
                            pass
                else:
                    outcome = await self._send(step)
                if stop is not None and stop.is_set():
                    raise _Stopped()
                step = op.send(outcome)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            op.close()

    async def _send(self, request: _wire.Request) -> _wire.Outcome:
        bound = _wire.read_timeout(request, self._timeout)
        try:
            response = await self._http.request(
                request.method, request.path, params=list(request.params) or None, headers=dict(request.headers) or None,
                timeout=httpx.Timeout(bound, connect=min(bound, self._timeout)))
        except httpx.TransportError as error:
            return _wire.failure(error, self.url)
        return _wire.Response(response.status_code, response.headers, response.content)


class _AsyncHeld(HeldLease[_wire.L]):
    """A held lease kept by a task (see ``_wire.keep``) until released, lost, or its client closed."""

    def __init__(self, client: AsyncLockServiceClient, kind: _wire.Kind[_wire.L], grant: _wire.Grant[_wire.L],
                 on_lost: Optional[AsyncOnLost]) -> None:
        super().__init__(kind, grant)
        self._client = client
        self._on_lost = on_lost
        #: Set when the lease is lost; ``await lost.wait()`` (for example in ``asyncio.wait``) to stop the work.
        self.lost = asyncio.Event()
        self._stop = asyncio.Event()
        client._held.add(self)
        self._keeper = asyncio.ensure_future(self._keep())

    async def release(self) -> None:
        """Releases the lease; :class:`LockLost` when it had been lost meanwhile. Later calls do nothing."""
        lost, released = self.lost_reason, self._released
        self._released = True
        self._stop.set()
        if released:
            return
        if lost is not None:
            raise LockLost(self.key, lost)
        try:
            await self._client._run(_wire.release(self._kind, self.key, self.token))
        except NotHeld as ended:
            await self._note_loss(ended.reason)
            raise LockLost(self.key, ended.reason) from None
        # The keeper is not waited for: the release answers its watch at once, and it stops when it sees _stop
        # (aclose() cancels one still running).

    async def __aenter__(self: H) -> H:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        try:
            await self.release()
        except LockLost:
            if exc_type is None:
                raise
        except LockServiceError as error:
            log.warning("lockservice: releasing %r failed (%s); it expires at its TTL", self.key, error)

    async def _keep(self) -> None:
        try:
            reason = await self._client._run(_wire.keep(self._kind, self._state), self._stop)
        except _Stopped:
            return
        except Exception:  # noqa: BLE001 - a keeper that dies must not leave its holder believing it holds the lease
            log.exception("lockservice: keeping %r failed", self.key)
            reason = "unknown"
        if not self._stop.is_set():
            await self._note_loss(reason)

    async def _note_loss(self, reason: str) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        self.lost.set()
        if self._on_lost is not None:
            try:
                result = self._on_lost(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - the loss stands whatever the callback does
                log.exception("lockservice: the on_lost callback of %r failed", self.key)

    async def _abandon(self) -> None:
        self._stop.set()
        self._keeper.cancel()
        await asyncio.gather(self._keeper, return_exceptions=True)


class AsyncLockHandle(_AsyncHeld[Lease]):
    """A held lock (see :meth:`AsyncLockServiceClient.lock`)."""


class AsyncPermitHandle(_AsyncHeld[Permit], HeldPermit):
    """A held permit of a semaphore (see :meth:`AsyncLockServiceClient.semaphore`)."""


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


__all__: Sequence[str] = ["AsyncLockServiceClient", "AsyncLockHandle", "AsyncPermitHandle", "AsyncLeaseContext"]
