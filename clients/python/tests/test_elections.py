"""Leader elections through the Python client against a real service: campaigning, leading, and following who leads."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import httpx
import pytest

from lockservice import (
    AsyncLockServiceClient,
    ElectionEvent,
    LeadershipHandle,
    LockLost,
    LockServiceClient,
    LockTimeout,
    Observation,
    Unauthorized,
)

from .conftest import ADMIN_KEY, Service, _api, free_port, wait_until
from .test_async import run


def admin(service: Service, **options: Any) -> LockServiceClient:
    return LockServiceClient(service.url, api_key=ADMIN_KEY, **options)


def ended(events: List[ElectionEvent]) -> bool:
    """A follower's stop rule: no leader again after a leader (the tests end each election so)."""
    return len(events) > 1 and events[-1].event == "no-leader" and any(e.event == "leader" for e in events)


class Follower:
    """Observes an election on a thread of its own and keeps every event it is given, as a follower process would,
    until ``until(events)`` holds; then it leaves the loop, which closes the observation's stream."""

    def __init__(self, observation: Observation, until: Callable[[List[ElectionEvent]], bool] = ended) -> None:
        self.observation = observation
        self.events: List[ElectionEvent] = []
        self.error: Optional[BaseException] = None
        self._until = until
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            with self.observation:
                for event in self.observation:
                    self.events.append(event)
                    if self._until(self.events):
                        break
        except BaseException as error:  # noqa: BLE001 - asserted by the tests
            self.error = error

    def last(self) -> Optional[ElectionEvent]:
        return self.events[-1] if self.events else None

    def wait_for(self, what: str, condition: Callable[[ElectionEvent], bool], timeout: float = 5.0) -> None:
        wait_until(lambda: bool(self.events) and condition(self.events[-1]), timeout, what)

    def finish(self) -> List[ElectionEvent]:
        """The events, once the follower stopped by its rule."""
        self._thread.join(10)
        assert not self._thread.is_alive(), f"the follower did not stop: {self.events}"
        assert self.error is None, self.error
        return list(self.events)


def no_duplicates_in_a_row(events: List[ElectionEvent]) -> bool:
    return all(a.id != b.id for a, b in zip(events, events[1:]))


def test_a_campaign_leads_a_second_candidate_sees_the_leader_and_leaving_resigns(service: Service, key: str) -> None:
    with admin(service) as client:
        assert client.leader(key) is None
        with client.campaign(key, value="host-a:8080", ttl=30) as leading:
            assert (leading.name, leading.value, leading.term) == (key, "host-a:8080", leading.fencing_token)
            leader = client.leader(key)
            assert leader is not None and (leader.term, leader.value) == (leading.term, "host-a:8080") and leader.ttl > 25
            with pytest.raises(LockTimeout) as refused:
                client.campaign(key, value="host-b:8080").acquire()
            assert refused.value.code == "election_led"
            in_way = refused.value.leader
            assert in_way is not None and (in_way.name, in_way.term, in_way.value) == (key, leading.term, "host-a:8080")
            assert refused.value.retry_after is not None and 25 < in_way.ttl <= 30
            leading.proclaim("")  # an empty value clears it
            cleared = client.leader(key)
            assert leading.value == "" and cleared is not None and cleared.value == ""
            assert [(e.name, e.term) for e in client.list_elections(prefix=key)] == [(key, leading.term)]
        assert client.leader(key) is None


def test_a_waiting_candidate_leads_within_milliseconds_of_a_resignation_with_a_higher_term(service: Service, key: str) -> None:
    with admin(service) as client:
        first = client.campaign(key, value="a", ttl=30).acquire()
        got: List[LeadershipHandle] = []
        waiting = threading.Thread(target=lambda: got.append(client.campaign(key, value="b", ttl=30, wait=20).acquire()))
        waiting.start()
        wait_until(lambda: client.stats().waiting_requests >= 1, 10, "the candidate waits in the service")
        resigned = time.monotonic()
        first.resign()
        waiting.join(10)
        assert got, "the waiting candidate did not lead"
        assert time.monotonic() - resigned < 5.0  # immediate in the service; room for a loaded machine
        second = got[0]
        assert second.term > first.term and second.value == "b"
        second.resign()
        second.resign()  # a second resignation does nothing
        assert client.leader(key) is None


def test_observers_see_the_current_state_first_then_each_leader_proclaim_and_no_leader(service: Service, key: str) -> None:
    with admin(service) as client, admin(service) as watcher:
        follower = Follower(watcher.observe(key))
        follower.wait_for("the current state (no leader) comes first", lambda e: e.event == "no-leader")
        with client.campaign(key, value="v1", ttl=30) as leading:
            follower.wait_for("the new leader is seen", lambda e: e.event == "leader" and e.term == leading.term)
            changed = time.monotonic()
            leading.proclaim("v2")
            assert leading.value == "v2"
            follower.wait_for("the proclaimed value is seen", lambda e: e.value == "v2")
            # The service tells observers within 100 ms; 2 s of room for a loaded machine.
            assert time.monotonic() - changed < 2.0
            leader = client.leader(key)
            assert leader is not None and leader.value == "v2"
        follower.wait_for("no leader is seen after the resignation", lambda e: e.event == "no-leader")
        events = follower.finish()
    assert [e.event for e in events] == ["no-leader", "leader", "leader", "no-leader"]
    assert [e.value for e in events[1:3]] == ["v1", "v2"] and events[1].term == events[2].term
    assert no_duplicates_in_a_row(events)


class BreaksStreams(httpx.HTTPTransport):
    """A real transport that breaks each event stream after its first event (as a dropped connection would), records
    the Last-Event-ID of every observe request, and can drop that header (a client that forgot it would be told the
    current state again)."""

    def __init__(self, drop_last_event_id: bool = False) -> None:
        super().__init__()
        self.drop_last_event_id = drop_last_event_id
        self.last_event_ids: List[Optional[str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("accept") != "text/event-stream":
            return super().handle_request(request)
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if self.drop_last_event_id and "last-event-id" in request.headers:
            del request.headers["last-event-id"]
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers, stream=BreakAfterFirstEvent(response.stream),
                              extensions=response.extensions, request=request)


class BreakAfterFirstEvent(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        seen = b""
        for chunk in self.inner:
            yield chunk
            seen += chunk
            if b"\nid:" in seen and seen.endswith(b"\n\n"):
                raise httpx.ReadError("the test broke this stream")

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("drop", [False, True], ids=["with-last-event-id", "server-resends-the-state"])
def test_an_observer_reconnects_with_last_event_id_and_never_yields_a_state_twice(service: Service, key: str, drop: bool) -> None:
    # Each stream breaks after its first event. Told the last state (Last-Event-ID), the service sends nothing on the
    # new stream until the next change; not told it, it sends the current state again, which the client must drop (and
    # back off, up to 5 s, from a stream that gives nothing new: hence the longer waits below).
    transport = BreaksStreams(drop_last_event_id=drop)
    patience = 15.0 if drop else 5.0
    with admin(service) as client, admin(service, transport=transport) as watcher:
        follower = Follower(watcher.observe(key))
        follower.wait_for("the current state comes first", lambda e: e.event == "no-leader")
        wait_until(lambda: len(transport.last_event_ids) >= 2, 10, "the observer reconnects by itself")
        with client.campaign(key, value="x", ttl=30) as leading:
            follower.wait_for("the leader is seen across broken streams", lambda e: e.term == leading.term, patience)
            leading.proclaim("y")
            follower.wait_for("the proclaimed value is seen across broken streams", lambda e: e.value == "y", patience)
        follower.wait_for("no leader is seen across broken streams", lambda e: e.event == "no-leader", patience)
        events = follower.finish()
    # Every state once, in order, however often the stream broke and the service sent a state again.
    assert [(e.event, e.value) for e in events] == [("no-leader", None), ("leader", "x"), ("leader", "y"), ("no-leader", None)]
    ids = [e.id for e in events]
    assert transport.last_event_ids[:2] == [None, "none"]
    if not drop:
        assert transport.last_event_ids == [None] + ids[:-1]


class LaggingReplica(httpx.HTTPTransport):
    """A real transport that, once told to, breaks the event stream after its next event and starts the next stream
    with an older leader event it saw before (its bytes as the service sent them), as an answer from a replica that
    lags behind would."""

    def __init__(self) -> None:
        super().__init__()
        self.first_leader_event: Optional[bytes] = None
        self.break_after_next_event = False
        self.replay = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.headers.get("accept") != "text/event-stream":
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        replay, self.replay = self.replay, False
        return httpx.Response(response.status_code, headers=response.headers, stream=Lagging(self, response.stream, replay),
                              extensions=response.extensions, request=request)


class Lagging(httpx.SyncByteStream):
    def __init__(self, transport: LaggingReplica, inner: httpx.SyncByteStream, replay: bool) -> None:
        self.transport, self.inner, self.replay = transport, inner, replay

    def __iter__(self) -> Iterator[bytes]:
        if self.replay and self.transport.first_leader_event is not None:
            yield self.transport.first_leader_event
        for chunk in self.inner:
            for block in chunk.split(b"\n\n"):
                if block.startswith(b"event: leader") and self.transport.first_leader_event is None:
                    self.transport.first_leader_event = block + b"\n\n"
            yield chunk
            if self.transport.break_after_next_event and b"event: " in chunk:
                self.transport.break_after_next_event, self.transport.replay = False, True
                raise httpx.ReadError("the test broke this stream")

    def close(self) -> None:
        self.inner.close()


def test_an_observer_never_goes_back_to_an_older_term(service: Service, key: str) -> None:
    transport = LaggingReplica()
    with admin(service) as client, admin(service, transport=transport) as watcher:
        follower = Follower(watcher.observe(key), until=lambda events: len(events) >= 5)
        follower.wait_for("the current state comes first", lambda e: e.event == "no-leader")
        with client.campaign(key, value="old", ttl=30) as first:
            follower.wait_for("the first leader is seen", lambda e: e.term == first.term)
        follower.wait_for("no leader is seen", lambda e: e.event == "no-leader")
        transport.break_after_next_event = True
        with client.campaign(key, value="new", ttl=30) as second:
            follower.wait_for("the second leader is seen", lambda e: e.term == second.term)
            # The next stream starts with the first leader's event again: the observer must not report it.
            wait_until(lambda: not transport.replay and transport.break_after_next_event is False, 5, "the stream broke")
            time.sleep(0.3)
        events = follower.finish()
    assert [(e.event, e.value) for e in events] == [
        ("no-leader", None), ("leader", "old"), ("no-leader", None), ("leader", "new"), ("no-leader", None)]


def test_observers_converge_on_the_last_of_a_burst_of_proclaims(service: Service, key: str) -> None:
    with admin(service) as client, admin(service) as watcher:
        follower = Follower(watcher.observe(key))
        with client.campaign(key, value="0", ttl=30) as leading:
            for value in range(1, 30):
                leading.proclaim(str(value))
            follower.wait_for("the last value is the last event", lambda e: e.value == "29", timeout=5.0)
            time.sleep(0.3)
            last = follower.last()
            assert last is not None and last.value == "29", "an observer was left on a stale value"
        events = follower.finish()
    values = [int(e.value) for e in events if e.value is not None]
    assert values == sorted(values), "an older value came after a newer one"
    assert no_duplicates_in_a_row(events)


def test_a_forced_leader_hears_forced_and_raises_lock_lost_and_the_waiting_candidate_leads(service: Service, key: str) -> None:
    seen: List[str] = []
    with admin(service) as client, admin(service) as other:
        with pytest.raises(LockLost) as raised:
            with client.campaign(key, value="a", ttl=30, on_lost=lambda lead: seen.append(lead.lost_reason)) as leading:
                successor: List[LeadershipHandle] = []
                waiting = threading.Thread(target=lambda: successor.append(other.campaign(key, value="b", ttl=30, wait=20).acquire()))
                waiting.start()
                wait_until(lambda: client.stats().waiting_requests >= 1, 10, "the candidate waits in the service")
                assert client.force_resign(key) is True
                forced = time.monotonic()
                assert leading.lost.wait(5.0)
                assert time.monotonic() - forced < 1.0, "the loss was not seen within 1 s"
                with pytest.raises(LockLost):
                    leading.proclaim("still me")
                waiting.join(10)
                assert successor and successor[0].term > leading.term
        assert raised.value.reason == "forced" and seen == ["forced"]
        successor[0].resign()
        assert client.force_resign(key) is False


def test_async_campaign_proclaim_and_observe(service: Service, key: str) -> None:
    async def test() -> None:
        async with AsyncLockServiceClient(service.url, api_key=ADMIN_KEY) as client:
            events: List[ElectionEvent] = []
            async with client.observe(key) as observation:
                async def follow() -> None:
                    async for event in observation:
                        events.append(event)
                follower = asyncio.ensure_future(follow())

                async def seen(condition: Callable[[ElectionEvent], bool]) -> None:
                    deadline = time.monotonic() + 5
                    while not (events and condition(events[-1])):
                        assert time.monotonic() < deadline, f"not seen: {events}"
                        await asyncio.sleep(0.02)

                await seen(lambda e: e.event == "no-leader")
                async with client.campaign(key, value="a", ttl=30) as leading:
                    await seen(lambda e: e.term == leading.term and e.value == "a")
                    await leading.proclaim("b")
                    await seen(lambda e: e.value == "b")
                    leader = await client.leader(key)
                    assert leader is not None and leader.value == "b"
                    with pytest.raises(LockTimeout) as refused:
                        await client.campaign(key).acquire()
                    assert refused.value.leader is not None and refused.value.leader.value == "b"
                await seen(lambda e: e.event == "no-leader")
                # Closed from this task while the follower's task waits for the next event: its loop ends at once.
                await observation.aclose()
                await asyncio.wait_for(follower, 1.0)
            assert [(e.event, e.value) for e in events] == [("no-leader", None), ("leader", "a"), ("leader", "b"), ("no-leader", None)]
            assert await client.leader(key) is None
    run(test)


def test_an_observer_rides_out_a_service_that_is_down_and_an_instance_that_restarts(
        service: Service, redis_server: Tuple[int, Path], key: str) -> None:
    port = free_port()
    with LockServiceClient(f"http://127.0.0.1:{port}/", api_key=ADMIN_KEY) as watcher, admin(service) as client:
        follower = Follower(watcher.observe(key))
        time.sleep(1.0)  # nothing listens on the port yet: the observer keeps trying, it does not give up
        assert follower.error is None and not follower.events
        with _api(*redis_server, "observed-instance", port=port):
            follower.wait_for("the current state once the instance is up", lambda e: e.event == "no-leader", 15)
        # The instance stopped and ended the stream; a new one on the same address is found again by itself.
        with _api(*redis_server, "observed-instance-again", port=port):
            with client.campaign(key, value="after", ttl=30) as leading:
                follower.wait_for("the leader after the restart", lambda e: e.term == leading.term, 15)
            follower.wait_for("no leader again", lambda e: e.event == "no-leader", 5)
            events = follower.finish()
    assert [(e.event, e.value) for e in events] == [("no-leader", None), ("leader", "after"), ("no-leader", None)]


def test_closing_an_observation_from_another_thread_ends_its_loop_at_once(service: Service, key: str) -> None:
    with admin(service) as watcher:
        follower = Follower(watcher.observe(key), until=lambda events: False)
        follower.wait_for("the current state", lambda e: e.event == "no-leader")
        time.sleep(0.2)  # the follower is blocked reading the stream, waiting for a change
        closed = time.monotonic()
        follower.observation.close()
        events = follower.finish()
        assert time.monotonic() - closed < 2.0, "the loop went on waiting after close()"  # at once; room for a loaded machine
    assert [e.event for e in events] == ["no-leader"]


def test_observing_with_a_wrong_api_key_raises_unauthorized_instead_of_retrying(service: Service, key: str) -> None:
    with LockServiceClient(service.url, api_key="not-a-key-of-this-service") as stranger:
        started = time.monotonic()
        with pytest.raises(Unauthorized):
            next(iter(stranger.observe(key)))
        assert time.monotonic() - started < 2.0
