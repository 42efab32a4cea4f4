"""The asyncio client against a real service: the same behaviours as the synchronous one, awaited."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, List, TypeVar

import httpx
import pytest

from lockservice import AsyncLockServiceClient, InvalidRequest, LockLost, LockTimeout, NotHeld, Unavailable

from .conftest import ADMIN_KEY, Service, free_port

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    """Runs one async test with a bound, so that a hang fails instead of blocking the session."""
    async def bounded() -> T:
        return await asyncio.wait_for(test(), timeout)
    return asyncio.run(bounded())


def admin(service: Service, **options: Any) -> AsyncLockServiceClient:
    return AsyncLockServiceClient(service.url, api_key=ADMIN_KEY, **options)


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        await asyncio.sleep(0.02)


def test_fifty_tasks_on_one_key_never_overlap_and_lose_no_update(service: Service, key: str) -> None:
    async def test() -> None:
        state = {"inside": 0, "most": 0, "count": 0}
        async with admin(service) as client:
            async def worker() -> None:
                for _ in range(3):
                    async with client.lock(key, ttl=10, wait=30):
                        state["inside"] += 1
                        state["most"] = max(state["most"], state["inside"])
                        value = state["count"]
                        await asyncio.sleep(0.001)  # yields to the other tasks: a lost update would show here
                        state["count"] = value + 1
                        state["inside"] -= 1
            await asyncio.gather(*(worker() for _ in range(50)))
        assert state == {"inside": 0, "most": 1, "count": 150}
    run(test, 120)


def test_a_waiting_acquire_is_one_request(service: Service, key: str) -> None:
    async def test() -> None:
        posts: List[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            if request.method == "POST":
                posts.append(request)

        async with admin(service) as holder_client, admin(service, event_hooks={"request": [record]}) as client:
            holder = await holder_client.lock(key, ttl=30)
            waiter = asyncio.ensure_future(client.lock(key, ttl=30, wait=20).acquire())
            await wait_for(lambda: _waiting(holder_client), 10, "the waiter waits in the service")
            await asyncio.sleep(1.0)  # a polling client would send more requests meanwhile
            released = time.monotonic()
            await holder.release()
            lease = await asyncio.wait_for(waiter, 10)
            assert time.monotonic() - released < 1.0
            await lease.release()
        assert len(posts) == 1
    run(test)


async def _waiting(client: AsyncLockServiceClient) -> bool:
    return (await client.stats()).waiting_requests >= 1


def test_force_release_inside_async_with_is_seen_within_a_second_and_raises_lock_lost(service: Service, key: str) -> None:
    async def test() -> None:
        seen: List[str] = []

        async def on_lost(lease: Any) -> None:
            seen.append(lease.lost_reason)

        async with admin(service) as client:
            with pytest.raises(LockLost) as raised:
                async with client.lock(key, ttl=30, on_lost=on_lost) as lease:
                    started = time.monotonic()
                    assert await client.force_release(key)
                    await asyncio.wait_for(lease.lost.wait(), 1.0)
                    assert time.monotonic() - started < 1.0
                    with pytest.raises(LockLost):
                        lease.ensure_held()
            assert raised.value.reason == "forced"
            assert seen == ["forced"]
    run(test)


def test_renewal_keeps_the_lock_across_three_ttls(service: Service, key: str) -> None:
    async def test() -> None:
        async with admin(service) as client, admin(service) as other:
            async with client.lock(key, ttl=2.0) as lease:
                deadline = time.monotonic() + 6.3
                while time.monotonic() < deadline:
                    with pytest.raises(LockTimeout):
                        await other.acquire(key, ttl=1.0)
                    await asyncio.sleep(0.25)
                assert not lease.lost.is_set()
                info = await other.inspect(key)
                assert info is not None and info.fencing_token == lease.fencing_token
            assert await other.inspect(key) is None
    run(test)


def test_semaphore_permits_and_plain_calls(service: Service, key: str) -> None:
    async def test() -> None:
        async with admin(service) as client:
            async with client.semaphore(key, 2, ttl=30) as first:
                permit = await client.acquire_permit(key, 2, ttl=30)
                assert {first.slot, permit.slot} == {0, 1}
                with pytest.raises(LockTimeout):
                    await client.acquire_permit(key, 2)
                await client.release_permit(key, permit.token)
                with pytest.raises(NotHeld) as raised:
                    await client.release_permit(key, permit.token)
                assert raised.value.reason == "released"
            assert await client.inspect_semaphore(key) is None
            lease = await client.acquire(key, ttl=5)
            assert (await client.extend(key, lease.token, ttl=10)).ttl == 10
            assert [info.key for info in await client.list_locks(prefix=key)] == [key]
            await client.release(key, lease.token)
    run(test)


def test_bad_input_and_a_service_that_is_down_raise_typed_errors(service: Service, key: str) -> None:
    async def test() -> None:
        async with admin(service) as client:
            with pytest.raises(InvalidRequest) as raised:
                await client.acquire(key, ttl=0.001)
            assert raised.value.code == "invalid_parameter" and "ttlMs" in raised.value.errors
        async with AsyncLockServiceClient(f"http://127.0.0.1:{free_port()}") as down:
            started = time.monotonic()
            with pytest.raises(Unavailable):
                async with down.lock(key, wait=10):
                    pytest.fail("acquired from nothing")
            assert time.monotonic() - started < 1.0
    run(test)


class Switchable(httpx.AsyncHTTPTransport):
    """A real transport that can be switched to 'the network is gone' (every request refused)."""

    down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("switched off by the test", request=request)
        return await super().handle_async_request(request)


def test_an_unreachable_service_counts_the_lease_lost_before_it_expires(service: Service, key: str) -> None:
    async def test() -> None:
        transport = Switchable()
        async with admin(service, transport=transport) as client, admin(service) as other:
            with pytest.raises(LockLost) as raised:
                async with client.lock(key, ttl=5.0) as lease:
                    transport.down = True
                    await asyncio.wait_for(lease.lost.wait(), 10)
                    assert await other.inspect(key) is not None  # stopped while the lock was still its own
            assert raised.value.reason == "unavailable"
    run(test)
