"""The synchronous client against a real service: what a Python holder of a lock or permit would notice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, List

import httpx
import pytest

from lockservice import (
    Forbidden,
    InvalidRequest,
    Lock,
    LockLost,
    LockServiceClient,
    LockTimeout,
    NotHeld,
    Unauthorized,
    Unavailable,
)

from .conftest import ADMIN_KEY, CLIENT_KEY, Service, free_port, wait_until


def admin(service: Service, **options: Any) -> LockServiceClient:
    return LockServiceClient(service.url, api_key=ADMIN_KEY, **options)


class Recorder:
    """An httpx event hook that records each request's method, path and Idempotency-Key."""

    def __init__(self) -> None:
        self.requests: List[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def count(self, method: str, path_start: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path.startswith(path_start))


SEED_WORKER = textwrap.dedent("""
    import os, sys, time
    from lockservice import Lock
    counter, marker, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for _ in range(rounds):
        with Lock(os.environ["TEST_KEY"], expires=10, timeout=30):
            # O_EXCL fails if another process is inside the critical section at the same time.
            inside = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            try:
                with open(counter) as f:
                    value = int(f.read())
                time.sleep(0.002)  # widen the window a lost update would need
                with open(counter, "w") as f:
                    f.write(str(value + 1))
            finally:
                os.close(inside)
                os.unlink(marker)
""")


def test_seed_lock_in_six_processes_never_overlaps_and_loses_no_update(env: Service, key: str, tmp_path: Path) -> None:
    counter, marker, rounds = tmp_path / "counter", tmp_path / "inside", 15
    counter.write_text("0")
    workers = [
        subprocess.Popen([sys.executable, "-c", SEED_WORKER, str(counter), str(marker), str(rounds)],
                         env={**__import__("os").environ, "TEST_KEY": key}, stderr=subprocess.PIPE)
        for _ in range(6)]
    for worker in workers:
        try:
            _, stderr = worker.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
        assert worker.returncode == 0, stderr.decode()[-2000:]
    assert int(counter.read_text()) == 6 * rounds


def test_seed_lock_with_timeout_0_raises_lock_timeout_at_once_while_held(env: Service, key: str) -> None:
    holder = Lock(key, expires=30, timeout=0)
    assert holder.acquire() is True
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as raised:
            with Lock(key, expires=30, timeout=0):
                pytest.fail("entered a held lock")
        assert time.monotonic() - started < 2
        assert raised.value.retry_after is not None and raised.value.retry_after > 0
    finally:
        holder.release()
    with Lock(key, expires=30, timeout=0) as again:
        assert again.handle is not None and again.handle.held


def test_seed_lock_waits_in_the_server_for_a_release(env: Service, key: str) -> None:
    holder = Lock(key, expires=30, timeout=0)
    holder.acquire()
    threading.Timer(0.3, holder.release).start()
    started = time.monotonic()
    with Lock(key, expires=30, timeout=10):
        waited = time.monotonic() - started
    assert 0.2 < waited < 5


def test_a_waiting_acquire_is_one_request(service: Service, key: str) -> None:
    recorder = Recorder()
    with admin(service) as holder_client, admin(service, event_hooks={"request": [recorder]}) as waiter_client:
        holder = holder_client.lock(key, ttl=30).acquire()
        got: List[float] = []

        def wait_for_it() -> None:
            with waiter_client.lock(key, ttl=30, wait=20):
                got.append(time.monotonic())

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        wait_until(lambda: holder_client.stats().waiting_requests >= 1, 10, "the waiter waits in the service")
        time.sleep(1.0)  # a polling client would send more requests meanwhile
        released = time.monotonic()
        holder.release()
        waiter.join(10)
        assert got, "the waiter did not get the lock"
        assert recorder.count("POST", "/locks/") == 1
        assert got[0] - released < 1.0


def test_a_short_critical_section_costs_one_acquire_and_one_release(service: Service, key: str) -> None:
    recorder = Recorder()
    with admin(service, event_hooks={"request": [recorder]}) as client:
        for _ in range(20):
            with client.lock(key, ttl=10):
                pass
    assert (recorder.count("POST", "/locks/"), recorder.count("DELETE", "/locks/")) == (20, 20)
    # The watch starts 0.1 s into a hold; only a thread stalled that long (a loaded machine) sends one.
    assert recorder.count("GET", "/locks/") <= 2


def test_force_release_inside_with_is_seen_within_a_second_and_raises_lock_lost(service: Service, key: str) -> None:
    seen: List[str] = []
    with admin(service) as client:
        with pytest.raises(LockLost) as raised:
            with client.lock(key, ttl=30, on_lost=lambda lease: seen.append(lease.lost_reason)) as lease:
                lease.ensure_held()
                started = time.monotonic()
                assert client.force_release(key) is True
                assert lease.lost.wait(1.0), "the loss was not seen within 1 s"
                assert time.monotonic() - started < 1.0
                assert lease.lost_reason == "forced"
                with pytest.raises(LockLost):
                    lease.ensure_held()
        assert raised.value.reason == "forced"
        assert seen == ["forced"]


def test_an_exception_in_the_block_wins_over_lock_lost(service: Service, key: str) -> None:
    with admin(service) as client:
        with pytest.raises(KeyError):
            with client.lock(key, ttl=30) as lease:
                client.force_release(key)
                assert lease.lost.wait(2)
                raise KeyError("the body's own failure")


def test_renewal_keeps_the_lock_across_three_ttls(service: Service, key: str) -> None:
    with admin(service) as client, admin(service) as other:
        # Renewed every 0.67 s; a renewal may be up to 1.1 s late (a loaded machine) before the lease counts as lost.
        with client.lock(key, ttl=2.0) as lease:
            first = lease.fencing_token
            deadline = time.monotonic() + 6.3
            while time.monotonic() < deadline:
                with pytest.raises(LockTimeout):
                    other.acquire(key, ttl=1.0)
                time.sleep(0.25)
            assert not lease.lost.is_set()
            info = other.inspect(key)
            assert info is not None and info.fencing_token == first
        assert other.inspect(key) is None


def test_hold_cap_ends_the_lease_with_reason_expired(service: Service, key: str) -> None:
    with admin(service) as client:
        with pytest.raises(LockLost) as raised:
            with client.lock(key, ttl=1.5, max_hold=2.0) as lease:
                assert lease.lost.wait(5)
                assert lease.lost_reason == "expired"
        assert raised.value.reason == "expired"


class Switchable(httpx.HTTPTransport):
    """A real transport that can be switched to 'the network is gone' (every request refused)."""

    down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("switched off by the test", request=request)
        return super().handle_request(request)


def test_an_unreachable_service_counts_the_lease_lost_before_it_expires(service: Service, key: str) -> None:
    transport = Switchable()
    with admin(service, transport=transport) as client, admin(service) as other:
        with pytest.raises(LockLost) as raised:
            # Declared lost 0.5 s (a tenth of the TTL) before the last granted expiry: time for the check below.
            with client.lock(key, ttl=5.0) as lease:
                transport.down = True
                assert lease.lost.wait(10)
                # The holder hears of it while the service still has the lock: it stops before anyone else can enter.
                assert other.inspect(key) is not None
                assert lease.lost_reason == "unavailable"
        assert raised.value.reason == "unavailable"


class LosesFirstResponse(httpx.HTTPTransport):
    """Sends the first request of a method to the service, then loses its answer, as a dropped connection would."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method
        self.lost: List[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == self.method and not self.lost:
            response.read()
            self.lost.append(response)
            raise httpx.ReadError("the test lost this response", request=request)
        return response


def test_a_retried_acquire_reuses_its_idempotency_key_and_gets_the_same_lease(service: Service, key: str) -> None:
    transport, recorder = LosesFirstResponse("POST"), Recorder()
    with admin(service, transport=transport, event_hooks={"request": [recorder]}) as client:
        lease = client.acquire(key, ttl=30)
        posts = [r for r in recorder.requests if r.method == "POST"]
        assert len(posts) == 2
        assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
        assert transport.lost[0].json()["token"] == lease.token
        client.release(key, lease.token)
        assert client.inspect(key) is None, "a second acquisition was left behind"


class DropsFirstRequest(httpx.HTTPTransport):
    """Fails the first request of a method before it reaches the service, as a connection dropped mid-write would."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method and not self.dropped:
            self.dropped += 1
            raise httpx.WriteError("the test dropped this request", request=request)
        return super().handle_request(request)


@pytest.mark.parametrize("transport", [DropsFirstRequest("DELETE"), LosesFirstResponse("DELETE")], ids=["request-lost", "answer-lost"])
def test_a_release_that_got_no_answer_is_sent_again(service: Service, key: str, transport: httpx.HTTPTransport) -> None:
    with admin(service, transport=transport) as client:
        lease = client.lock(key, ttl=30).acquire()
        lease.release()  # neither Unavailable nor LockLost: the retry released it, or found it released by the first
        assert lease.lost_reason is None
        assert client.inspect(key) is None, "the lock stays held until its TTL"


def test_plain_calls_and_not_held_reasons(service: Service, key: str) -> None:
    with admin(service) as client:
        lease = client.acquire(key, ttl=5, owner="py-test")
        info = client.check(key, lease.token)
        assert (info.fencing_token, info.owner) == (lease.fencing_token, "py-test")
        extended = client.extend(key, lease.token, ttl=20)
        assert extended.token == lease.token and extended.ttl == 20
        held = client.inspect(key)
        assert held is not None and held.key == key and 15 < held.ttl <= 20
        assert any(found.key == key for found in client.list_locks(prefix=key))
        client.release(key, lease.token)
        with pytest.raises(NotHeld) as raised:
            client.release(key, lease.token)
        assert raised.value.reason == "released" and raised.value.code == "lock_not_held"
        with pytest.raises(NotHeld):
            client.extend(key, lease.token)
        assert client.inspect(key) is None
        assert client.force_release(key) is False


def test_listing_follows_cursors_and_shows_each_lock_once(service: Service, key: str) -> None:
    with admin(service) as client:
        leases = [client.acquire(f"{key}-{i}", ttl=30, owner=f"owner-{i}") for i in range(3)]
        try:
            listed = client.list_locks(prefix=key, page_size=1)
            assert sorted((info.key, info.owner) for info in listed) == [(f"{key}-{i}", f"owner-{i}") for i in range(3)]
        finally:
            for lease in leases:
                client.release(lease.key, lease.token)
        assert client.list_locks(prefix=key) == []


def test_fencing_tokens_increase_over_acquisitions(service: Service, key: str) -> None:
    with admin(service) as client:
        tokens = []
        for _ in range(3):
            with client.lock(key, ttl=5) as lease:
                tokens.append(lease.fencing_token)
        assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_semaphore_admits_limit_holders_with_their_own_slots(service: Service, key: str) -> None:
    with admin(service) as client:
        with client.semaphore(key, 2, ttl=30) as first, client.semaphore(key, 2, ttl=30) as second:
            assert {first.slot, second.slot} == {0, 1} and first.limit == 2
            with pytest.raises(LockTimeout) as raised:
                client.semaphore(key, 2, ttl=30).acquire()
            assert raised.value.code == "semaphore_full"
            info = client.inspect_semaphore(key)
            assert info is not None and info.held == 2 and {p.slot for p in info.permits} == {0, 1}
            assert any(s.key == key for s in client.list_semaphores(prefix=key))
            assert client.check_permit(key, first.token).slot == first.slot
            assert client.force_release_permit(key, second.slot) is True
            assert second.lost.wait(1.0) and second.lost_reason == "forced"
            with client.semaphore(key, 2, ttl=30, wait=5) as third:
                assert third.slot == second.slot
            with pytest.raises(LockLost):
                second.release()
        assert client.inspect_semaphore(key) is None


def test_bad_input_raises_invalid_request_naming_the_cause(service: Service, key: str) -> None:
    with admin(service) as client:
        with pytest.raises(InvalidRequest) as bad_key:
            client.acquire("bad key/with spaces")
        assert bad_key.value.status == 400 and bad_key.value.code == "invalid_key"
        with pytest.raises(InvalidRequest) as bad_ttl:
            with client.lock(key, ttl=0.001):
                pytest.fail("acquired with a 1 ms TTL")
        assert bad_ttl.value.code == "invalid_parameter" and "ttlMs" in bad_ttl.value.errors
        with pytest.raises(InvalidRequest) as bad_token:
            client.release(key, "NOT-A-TOKEN")
        assert bad_token.value.code == "invalid_token"
        assert client.inspect(key) is None


def test_auth_errors_are_typed(service: Service, key: str) -> None:
    with LockServiceClient(service.url, api_key="not-a-key-of-this-service") as stranger:
        with pytest.raises(Unauthorized) as raised:
            stranger.acquire(key)
        assert raised.value.status == 401
    with LockServiceClient(service.url, api_key=CLIENT_KEY) as client:
        with client.lock(key, ttl=5):
            with pytest.raises(Forbidden):
                client.force_release(key)


def test_a_service_that_is_down_raises_unavailable_fast() -> None:
    with LockServiceClient(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            with client.lock("py-down", wait=10):
                pytest.fail("acquired from nothing")
        assert time.monotonic() - started < 1.0
        assert raised.value.status is None
