"""How fast one Python process locks through the client, next to the same requests sent with plain httpx.

    python3 bench/bench.py --url http://127.0.0.1:8080 --seconds 5

Phases (each bounded by --seconds): sync acquire+release cycles in one thread, with ``client.lock()`` (renewed and
watched in the background), with the plain calls, and with plain httpx; the same with asyncio and 50 tasks (each on
its own key); then the hand-off latency from a release to a Python waiter that waits in the service, and from a
leader's proclaim to a Python observer of the election. Local use only (a service on 127.0.0.1 with authentication
off); nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
import uuid
from typing import Awaitable, Callable, Dict, List, Tuple

import httpx

from lockservice import AsyncLockServiceClient, LockServiceClient


# Each result is (cycles per second, this process's CPU microseconds per cycle). On a shared machine the rate follows
# the service's share of the CPU; the CPU per cycle is what the client itself costs.
Result = Tuple[float, float]


def rate(cycle: Callable[[int], None], seconds: float) -> Result:
    done, started, cpu = 0, time.monotonic(), time.process_time()
    while time.monotonic() - started < seconds:
        cycle(done)
        done += 1
    return done / (time.monotonic() - started), (time.process_time() - cpu) * 1e6 / max(done, 1)


async def rate_async(cycle: Callable[[str], Awaitable[None]], seconds: float, tasks: int) -> Result:
    counts = [0] * tasks
    stop = time.monotonic() + seconds

    async def run(index: int) -> None:
        key = f"bench-async-{uuid.uuid4().hex[:8]}-{index}"
        while time.monotonic() < stop:
            await cycle(key)
            counts[index] += 1

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(run(i) for i in range(tasks)))
    done = sum(counts)
    return done / (time.monotonic() - started), (time.process_time() - cpu) * 1e6 / max(done, 1)


def sync_phases(url: str, seconds: float) -> Dict[str, Result]:
    key = f"bench-sync-{uuid.uuid4().hex[:8]}"
    results: Dict[str, Result] = {}
    with LockServiceClient(url) as client:
        def held(_: int) -> None:
            with client.lock(key, ttl=10):
                pass

        def plain(_: int) -> None:
            client.release(key, client.acquire(key, ttl=10).token)

        def read(_: int) -> None:
            with client.read_lock(key, ttl=10):
                pass

        results["client.lock() (renewed and watched)"] = rate(held, seconds)
        results["client.read_lock() (renewed and watched)"] = rate(read, seconds)
        results["client.acquire() + release()"] = rate(plain, seconds)
    with httpx.Client(base_url=url) as http:
        def raw(_: int) -> None:
            token = http.post(f"locks/{key}", params={"ttlMs": "10000"}).json()["token"]
            http.delete(f"locks/{key}/{token}")

        def raw_idempotent(_: int) -> None:
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            token = http.post(f"locks/{key}", params={"ttlMs": "10000"}, headers=headers).json()["token"]
            http.delete(f"locks/{key}/{token}")

        results["plain httpx POST + DELETE"] = rate(raw, seconds)
        # What the client sends: every acquire carries an Idempotency-Key (so that a lost answer can be retried).
        results["plain httpx, with an Idempotency-Key"] = rate(raw_idempotent, seconds)
    return results


async def async_phases(url: str, seconds: float, tasks: int) -> Dict[str, Result]:
    results: Dict[str, Result] = {}
    async with AsyncLockServiceClient(url) as client:
        async def held(key: str) -> None:
            async with client.lock(key, ttl=10):
                pass

        async def plain(key: str) -> None:
            await client.release(key, (await client.acquire(key, ttl=10)).token)

        results[f"client.lock(), {tasks} tasks"] = await rate_async(held, seconds, tasks)
        results[f"client.acquire() + release(), {tasks} tasks"] = await rate_async(plain, seconds, tasks)
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=None, max_keepalive_connections=200)) as http:
        async def raw(key: str) -> None:
            token = (await http.post(f"locks/{key}", params={"ttlMs": "10000"})).json()["token"]
            await http.delete(f"locks/{key}/{token}")

        results[f"plain httpx POST + DELETE, {tasks} tasks"] = await rate_async(raw, seconds, tasks)
    return results


def hand_off(url: str, rounds: int) -> List[float]:
    """Milliseconds from just before a release is sent to a waiting Python holder's acquire returning."""
    key = f"bench-handoff-{uuid.uuid4().hex[:8]}"
    latencies: List[float] = []
    with LockServiceClient(url) as holder_client, LockServiceClient(url) as waiter_client:
        for _ in range(rounds):
            holder = holder_client.acquire(key, ttl=10)
            got: List[float] = []

            def wait() -> None:
                lease = waiter_client.acquire(key, ttl=10, wait=10)
                got.append(time.perf_counter())
                waiter_client.release(key, lease.token)

            waiter = threading.Thread(target=wait)
            waiter.start()
            deadline = time.monotonic() + 5
            while holder_client.stats().waiting_requests < 1 and time.monotonic() < deadline:
                time.sleep(0.002)
            released = time.perf_counter()
            holder_client.release(key, holder.token)
            waiter.join(10)
            if got:
                latencies.append((got[0] - released) * 1000)
    return latencies


def proclaim_to_observer(url: str, rounds: int) -> List[float]:
    """Milliseconds from just before a leader's proclaim is sent to a Python observer yielding the new value."""
    name = f"bench-observe-{uuid.uuid4().hex[:8]}"
    seen: Dict[str, float] = {}
    with LockServiceClient(url) as leader_client, LockServiceClient(url) as observer_client:
        with leader_client.campaign(name, value="start", ttl=30) as leading:
            observation = observer_client.observe(name)

            def follow() -> None:
                with observation:
                    for event in observation:
                        seen[event.value or ""] = time.perf_counter()
                        if event.value == str(rounds - 1):
                            return

            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            deadline = time.monotonic() + 5
            while "start" not in seen and time.monotonic() < deadline:
                time.sleep(0.002)
            sent: Dict[str, float] = {}
            for index in range(rounds):
                value = str(index)
                sent[value] = time.perf_counter()
                leading.proclaim(value)
                # One change at a time: the service may report changes a few ms apart as one state.
                deadline = time.monotonic() + 2
                while value not in seen and time.monotonic() < deadline:
                    time.sleep(0.0005)
            follower.join(5)
    return [(seen[v] - sent[v]) * 1000 for v in sent if v in seen]


def percentiles(latencies: List[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080/")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--handoffs", type=int, default=200)
    parser.add_argument("--proclaims", type=int, default=200)
    options = parser.parse_args()
    url = options.url if options.url.endswith("/") else options.url + "/"
    for name, (value, cpu) in sync_phases(url, options.seconds).items():
        print(f"sync   {name:<45} {value:8.0f} cycles/s {cpu:8.0f} us CPU/cycle")
    for name, (value, cpu) in asyncio.run(async_phases(url, options.seconds, options.tasks)).items():
        print(f"async  {name:<45} {value:8.0f} cycles/s {cpu:8.0f} us CPU/cycle")
    latencies = hand_off(url, options.handoffs)
    if latencies:
        print(f"hand-off release -> Python waiter: {percentiles(latencies)} ({len(latencies)} hand-offs)")
    observed = proclaim_to_observer(url, options.proclaims)
    if observed:
        print(f"proclaim -> Python observer: {percentiles(observed)} ({len(observed)} of {options.proclaims} seen)")


if __name__ == "__main__":
    main()
