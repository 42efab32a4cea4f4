"""Read/write locks through the Python client against a real service: what a reader or a writer would notice."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, List, Tuple

import pytest

from lockservice import AsyncLockServiceClient, InvalidRequest, LockLost, LockServiceClient, LockTimeout, NotHeld, RwLockHandle

from .conftest import ADMIN_KEY, Service, wait_until
from .test_async import run


def admin(service: Service) -> LockServiceClient:
    return LockServiceClient(service.url, api_key=ADMIN_KEY)


def test_readers_share_and_a_writer_gets_the_lock_when_the_last_reader_leaves(service: Service, key: str) -> None:
    with admin(service) as client:
        first = client.read_lock(key, ttl=30).acquire()
        second = client.rwlock(key, "read", ttl=30).acquire()
        assert (first.mode, second.mode) == ("read", "read")
        writer, got = waiting_writer(client, key)
        first.release()
        time.sleep(0.3)
        assert not got, "a writer got in beside a reader"
        released = time.monotonic()
        second.release()
        writer.join(10)
        assert got, "the writer did not get the lock"
        # The service hands the lock over at once; 5 s of room for a loaded machine, as the lock tests give.
        assert time.monotonic() - released < 5.0
        lease = got[0]
        assert lease.mode == "write"
        # One fencing sequence for both modes: the writer's token exceeds every earlier reader's.
        assert lease.fencing_token > max(first.fencing_token, second.fencing_token)
        info = client.inspect_rwlock(key)
        assert info is not None and info.mode == "write" and [h.fencing_token for h in info.holders] == [lease.fencing_token]
        lease.release()
        assert client.inspect_rwlock(key) is None


def waiting_writer(client: LockServiceClient, key: str) -> Tuple[threading.Thread, List[RwLockHandle]]:
    """A writer that waits (up to 20 s) on a thread of its own, once the service counts it among the writers waiting;
    the list gets its handle when it has the lock."""
    got: List[RwLockHandle] = []
    writer = threading.Thread(target=lambda: got.append(client.write_lock(key, ttl=30, wait=20).acquire()))
    writer.start()

    def writers_waiting() -> int:
        info = client.inspect_rwlock(key)
        return 0 if info is None else info.writers_waiting

    wait_until(lambda: writers_waiting() == 1, 10, "the writer waits in the service")
    return writer, got


def test_a_waiting_writer_goes_before_new_readers_and_a_writer_excludes_them(service: Service, key: str) -> None:
    with admin(service) as client:
        reader = client.read_lock(key, ttl=30).acquire()
        writer, got = waiting_writer(client, key)
        with pytest.raises(LockTimeout) as refused:
            client.read_lock(key, ttl=30).acquire()
        assert refused.value.code == "rwlock_held" and refused.value.retry_after is not None
        reader.release()
        writer.join(10)
        assert got and got[0].mode == "write"
        with pytest.raises(LockTimeout):
            client.read_lock(key, ttl=30, wait=0.2).acquire()
        got[0].release()
        with client.read_lock(key, ttl=30) as again:
            assert again.held


def test_mixed_readers_and_writers_never_overlap_a_writer_and_lose_no_update(service: Service, key: str) -> None:
    guard = threading.Lock()
    state: Dict[str, int] = {"readers": 0, "writers": 0, "most_readers": 0, "overlaps": 0, "count": 0, "reads": 0}
    errors: List[BaseException] = []

    def write(client: LockServiceClient) -> None:
        with client.write_lock(key, ttl=10, wait=30):
            with guard:
                state["writers"] += 1
                state["overlaps"] += state["writers"] > 1 or state["readers"] > 0
            value = state["count"]
            time.sleep(0.002)  # a lost update, or a reader beside the writer, would show in this window
            state["count"] = value + 1
            with guard:
                state["writers"] -= 1

    def read(client: LockServiceClient) -> None:
        with client.read_lock(key, ttl=10, wait=30):
            with guard:
                state["readers"] += 1
                state["most_readers"] = max(state["most_readers"], state["readers"])
                state["overlaps"] += state["writers"] > 0
            time.sleep(0.005)
            with guard:
                state["readers"] -= 1
                state["reads"] += 1

    def worker(index: int) -> None:
        try:
            with admin(service) as client:
                for round_ in range(8):
                    (write if (index + round_) % 3 == 0 else read)(client)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    writes = sum(1 for i in range(8) for r in range(8) if (i + r) % 3 == 0)
    assert (state["overlaps"], state["count"], state["reads"]) == (0, writes, 64 - writes)
    assert state["most_readers"] > 1, "readers never shared the lock, so this test tested little"


def test_force_release_of_one_reader_by_fencing_token_leaves_the_other(service: Service, key: str) -> None:
    with admin(service) as client:
        with pytest.raises(LockLost) as raised:
            with client.read_lock(key, ttl=30) as forced, client.read_lock(key, ttl=30) as kept:
                assert client.force_release_rwlock(key, fencing_token=forced.fencing_token) is True
                released = time.monotonic()
                assert forced.lost.wait(5.0), "the loss was not seen at all"
                assert time.monotonic() - released < 1.0, "the loss was not seen within 1 s"
                assert forced.lost_reason == "forced" and kept.held
                info = client.inspect_rwlock(key)
                assert info is not None and [h.fencing_token for h in info.holders] == [kept.fencing_token]
        assert raised.value.reason == "forced"
        assert client.inspect_rwlock(key) is None
        assert client.force_release_rwlock(key) is False


def test_a_read_lease_is_renewed_across_three_ttls(service: Service, key: str) -> None:
    with admin(service) as client, admin(service) as other:
        with client.read_lock(key, ttl=2.0) as lease:
            deadline = time.monotonic() + 6.3
            while time.monotonic() < deadline:
                with pytest.raises(LockTimeout):
                    other.acquire_rwlock(key, "write", ttl=1.0)
                time.sleep(0.25)
            assert not lease.lost.is_set()
        assert other.inspect_rwlock(key) is None


def test_plain_rwlock_calls_listing_and_bad_mode(service: Service, key: str) -> None:
    with admin(service) as client:
        lease = client.acquire_rwlock(key, "read", ttl=5, owner="py-reader")
        assert lease.mode == "read" and lease.owner == "py-reader"
        checked = client.check_rwlock(key, lease.token)
        assert (checked.key, checked.mode, checked.fencing_token) == (key, "read", lease.fencing_token)
        assert client.extend_rwlock(key, lease.token, ttl=20).ttl == 20
        listed = client.list_rwlocks(prefix=key)
        assert [(i.key, i.mode, i.holders[0].owner) for i in listed] == [(key, "read", "py-reader")]
        client.release_rwlock(key, lease.token)
        with pytest.raises(NotHeld) as raised:
            client.release_rwlock(key, lease.token)
        assert (raised.value.code, raised.value.reason) == ("rwlock_not_held", "released")
        bad_mode: Any = "upgrade"
        with pytest.raises(InvalidRequest) as invalid:
            client.acquire_rwlock(key, bad_mode)
        assert "mode" in invalid.value.errors
        assert client.inspect_rwlock(key) is None


def test_async_readers_share_a_writer_waits_and_a_forced_writer_raises_lock_lost(service: Service, key: str) -> None:
    async def test() -> None:
        async with AsyncLockServiceClient(service.url, api_key=ADMIN_KEY) as client:
            async with client.read_lock(key, ttl=30) as first, client.rwlock(key, "read", ttl=30) as second:
                writer = asyncio.ensure_future(client.write_lock(key, ttl=30, wait=20).acquire())
                await asyncio.sleep(0.3)
                assert not writer.done(), "a writer got in beside readers"
                assert first.held and second.held
            lease = await asyncio.wait_for(writer, 10)
            assert lease.mode == "write" and lease.fencing_token > second.fencing_token
            with pytest.raises(LockLost) as raised:
                async with lease:
                    assert await client.force_release_rwlock(key)
                    await asyncio.wait_for(lease.lost.wait(), 5)
            assert raised.value.reason == "forced"
            assert await client.inspect_rwlock(key) is None
    run(test)
