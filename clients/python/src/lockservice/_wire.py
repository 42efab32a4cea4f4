"""The HTTP contract, written once for both clients, without any I/O ("sans-IO").

Every operation is a generator: it yields a :class:`Request` (or a :class:`Sleep`), receives what came of it (a
:class:`Response`, or a :class:`Failure` when the service could not be reached), and returns the decoded result or
raises a typed exception. The synchronous and the asyncio clients are only drivers that send what an operation yields
(``_sync.py``, ``_async.py``), so request building, retries, problem parsing and decoding cannot drift between them.

Adding a kind of lease (read/write locks, elections) means: a :class:`Kind` (its routes, codes and decoders), and, when
its acquire takes more parameters (``mode``, ``value``), passing them as ``extra``. The acquire, release, extend,
check, keep (renew and watch) and listing operations below serve every kind unchanged.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Generator, Generic, List, Mapping, Optional, Tuple, TypeVar, Union
from urllib.parse import quote

import httpx

from .errors import (
    Forbidden,
    InvalidRequest,
    LockServiceError,
    LockTimeout,
    NotHeld,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from .models import Lease, LockInfo, Permit, PermitInfo, SemaphoreInfo, Stats

T = TypeVar("T")
L = TypeVar("L", bound=Lease)

# The service's default Locks:MaxWaitMs. A longer wait is asked for in pieces of this size, each one request that waits
# in the server, so that a caller may wait longer than one request can without the client ever polling.
MAX_WAIT_PER_REQUEST = 60.0
# A watch is one long request; it stays well under the service's MaxWaitMs and the usual proxy idle timeouts.
MAX_WATCH_WAIT = 25.0
# Retries of an acquire whose response was lost (the request was sent): enough to ride out a dropped keep-alive
# connection or an instance restarting behind a load balancer, few enough that a dead service is reported quickly.
ACQUIRE_RETRIES = 3
MAX_RETRY_DELAY = 1.0
MIN_RETRY_DELAY = 0.02
# A held lease starts watching this long after it was granted, so that a short critical section (the common case of
# a cron job's or a counter's lock) costs no watch request at all: a loss in that time is seen at most this much later.
FIRST_WATCH_DELAY = 0.1


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``path`` is relative to the service's URL (so a service behind a path prefix works)."""

    method: str
    path: str
    params: Tuple[Tuple[str, str], ...] = ()
    headers: Tuple[Tuple[str, str], ...] = ()
    #: Seconds the service may hold the request before answering (waitMs), added to the read timeout.
    wait: float = 0.0
    #: A bound on the whole request, replacing the client's timeout (a renewal must not outlive the lease).
    timeout: Optional[float] = None


@dataclass(frozen=True)
class Sleep:
    """Wait this long before the next step (a driver may cut it short when the lease is being released)."""

    seconds: float


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Failure:
    """No answer: ``sent`` is False when the request surely never reached the service (the connection was refused)."""

    error: Unavailable
    sent: bool


Step = Union[Request, Sleep]
Outcome = Union[Response, Failure, None]
Op = Generator[Step, Outcome, T]


def failure(error: Exception, url: str) -> Failure:
    """What a transport exception of httpx means for a retry: whether the request may have reached the service."""
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure(Unavailable(f"The lock service at {url} could not be reached: {error!r}"), sent=False)
    if isinstance(error, httpx.TimeoutException):
        return Failure(Unavailable(f"The lock service at {url} did not answer in time: {error!r}"), sent=True)
    return Failure(Unavailable(f"The connection to the lock service at {url} failed: {error!r}"), sent=True)


# ---------------------------------------------------------------------------------------------------------------------
# Decoding


_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")


def parse_time(text: str) -> datetime:
    """An ISO-8601 time as .NET writes it (up to 7 fractional digits, ``Z`` or an offset), on Python 3.9 too."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not an ISO-8601 time: {text!r}")
    whole, fraction, zone = match.groups()
    parsed = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    if fraction:
        parsed = parsed.replace(microsecond=int((fraction + "000000")[:6]))
    if zone in (None, "Z"):
        return parsed.replace(tzinfo=timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return parsed.replace(tzinfo=timezone(sign * offset))


def _seconds(ms: Any) -> Optional[float]:
    return None if ms is None else int(ms) / 1000.0


def decode_lease(body: Mapping[str, Any]) -> Lease:
    return Lease(
        key=str(body["key"]), token=str(body["token"]), fencing_token=int(body["fencingToken"]), ttl=int(body["ttlMs"]) / 1000.0,
        expires_at=parse_time(body["expiresAt"]), acquired_at=parse_time(body["acquiredAt"]),
        max_hold=_seconds(body.get("maxHoldMs")), owner=body.get("owner"))


def decode_permit(body: Mapping[str, Any]) -> Permit:
    fields: Dict[str, Any] = dict(decode_lease(body).__dict__, slot=int(body["slot"]), limit=int(body["limit"]))
    return Permit(**fields)


def decode_lock_info(body: Mapping[str, Any]) -> LockInfo:
    return LockInfo(
        key=str(body["key"]), fencing_token=int(body["fencingToken"]), owner=body.get("owner"), ttl=int(body["ttlMs"]) / 1000.0,
        expires_at=parse_time(body["expiresAt"]), acquired_at=parse_time(body["acquiredAt"]), max_hold=_seconds(body.get("maxHoldMs")))


def decode_permit_info(body: Mapping[str, Any], key: Optional[str] = None) -> PermitInfo:
    # Inspection lists permits without the semaphore's key (it is the parent's); a check's body carries it.
    info = decode_lock_info({**body, "key": body.get("key", key)})
    fields: Dict[str, Any] = dict(info.__dict__, slot=int(body["slot"]), limit=int(body["limit"]))
    return PermitInfo(**fields)


def decode_semaphore_info(body: Mapping[str, Any]) -> SemaphoreInfo:
    key = str(body["key"])
    return SemaphoreInfo(
        key=key, held=int(body["held"]), permits=tuple(decode_permit_info(p, key) for p in body.get("permits") or ()),
        truncated=bool(body.get("truncated", False)))


def decode_stats(body: Mapping[str, Any]) -> Stats:
    return Stats(
        waiting_requests=int(body["waitingRequests"]), watches=int(body["watches"]),
        acquires_per_second=float(body["acquiresPerSecond"]), releases_per_second=float(body["releasesPerSecond"]),
        forced_releases_per_second=float(body["forcedReleasesPerSecond"]), rate_window_seconds=float(body["rateWindowSeconds"]))


@dataclass(frozen=True)
class Kind(Generic[L]):
    """What a lease is of: its routes, its problem codes and how its bodies decode. One instance per kind."""

    noun: str
    route: str
    held_code: str  # the 409 of an acquire whose wait ran out
    not_held_code: str  # the 404 (with reason) of a token that does not hold it
    empty_code: str  # the 404 of an inspection when nothing is held
    admin_route: str
    list_member: str
    decode_lease: Callable[[Mapping[str, Any]], L]
    decode_info: Callable[[Mapping[str, Any]], LockInfo]
    decode_inspect: Callable[[Mapping[str, Any]], Any]

    # The key and token are escaped so that no value can change the route: a bad one is the service's 400.
    def path(self, key: str, token: Optional[str] = None) -> str:
        base = f"{self.route}/{quote(key, safe='')}"
        return base if token is None else f"{base}/{quote(token, safe='')}"


LOCK: Kind[Lease] = Kind(
    noun="lock", route="locks", held_code="lock_held", not_held_code="lock_not_held", empty_code="lock_not_held",
    admin_route="admin/locks", list_member="locks", decode_lease=decode_lease, decode_info=decode_lock_info,
    decode_inspect=decode_lock_info)

SEMAPHORE: Kind[Permit] = Kind(
    noun="semaphore", route="semaphores", held_code="semaphore_full", not_held_code="permit_not_held", empty_code="semaphore_empty",
    admin_route="admin/semaphores", list_member="semaphores", decode_lease=decode_permit, decode_info=decode_permit_info,
    decode_inspect=decode_semaphore_info)


# ---------------------------------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem answer, read leniently: a proxy's HTML 502 is a problem too, with its status alone."""

    status: int
    code: Optional[str] = None
    title: Optional[str] = None
    detail: Optional[str] = None
    reason: Optional[str] = None
    retry_after: Optional[float] = None
    errors: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def message(self) -> str:
        line = f"{self.status} {self.code or 'error'}: {self.detail or self.title or 'no detail'}"
        if self.errors:
            line += " (" + "; ".join(f"{name}: {' '.join(texts)}" for name, texts in self.errors.items()) + ")"
        return line

    def error(self) -> LockServiceError:
        arguments: Dict[str, Any] = dict(
            status=self.status, code=self.code, detail=self.detail, errors=self.errors, retry_after=self.retry_after)
        if self.status in (400, 413, 415):
            return InvalidRequest(self.message, **arguments)
        if self.status == 401:
            return Unauthorized(self.message, **arguments)
        if self.status == 403:
            return Forbidden(self.message, **arguments)
        if self.status == 409:
            return LockTimeout(self.message, **arguments)
        if self.status == 429:
            return TooManyRequests(self.message, **arguments)
        if self.status in (502, 503, 504):
            return Unavailable(self.message, **arguments)
        return LockServiceError(self.message, **arguments)


def parse_problem(response: Response) -> Problem:
    retry_after: Optional[float] = None
    header = response.headers.get("retry-after")
    if header is not None and header.strip().isdigit():
        retry_after = float(header.strip())
    try:
        body = json.loads(response.body) if response.body else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Problem(response.status, retry_after=retry_after)

    def text(name: str) -> Optional[str]:
        value = body.get(name)
        return value if isinstance(value, str) else None

    if isinstance(body.get("retryAfterMs"), int):
        retry_after = body["retryAfterMs"] / 1000.0
    errors: Dict[str, List[str]] = {}
    if isinstance(body.get("errors"), dict):
        for name, value in body["errors"].items():
            errors[str(name)] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return Problem(response.status, text("code"), text("title"), text("detail"), text("reason"), retry_after, errors)


def _json(response: Response) -> Dict[str, Any]:
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LockServiceError(f"{response.status}: the service answered with a body that is not a JSON object.", status=response.status)
    return body


def _not_held(response: Response, code: str) -> NotHeld:
    """The :class:`NotHeld` of a 404 with ``code``; any other answer raises its own error."""
    problem = parse_problem(response)
    if response.status != 404 or problem.code != code:
        raise problem.error()
    return NotHeld(problem.message, code=problem.code, detail=problem.detail, reason=problem.reason or "unknown")


def _exchange(request: Request) -> Generator[Step, Outcome, Response]:
    outcome = yield request
    if isinstance(outcome, Failure):
        raise outcome.error
    assert isinstance(outcome, Response)
    return outcome


# ---------------------------------------------------------------------------------------------------------------------
# Operations


def ms(seconds: float) -> str:
    """Seconds as the contract's whole milliseconds, rounded up so that a wait or TTL is never shorter than asked."""
    return str(max(0, math.ceil(seconds * 1000 - 1e-9)))


def _params(**values: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    return tuple((name, value) for name, value in values.items() if value is not None)


def retry_delay(asked: Optional[float], default: float) -> float:
    return min(MAX_RETRY_DELAY, max(MIN_RETRY_DELAY, asked if asked is not None else default))


@dataclass(frozen=True)
class Grant(Generic[L]):
    """An acquired lease and the monotonic time from which its TTL is counted safely (see :func:`acquire`)."""

    lease: L
    anchor: float


def acquire(
    kind: Kind[L], key: str, *, ttl: Optional[float], wait: float, owner: Optional[str], max_hold: Optional[float],
    idempotency_key: Optional[str] = None, extra: Tuple[Tuple[str, str], ...] = (),
    clock: Callable[[], float] = time.monotonic,
) -> Op[Grant[L]]:
    """Acquire, waiting in the server (never polling): one request per acquisition unless a response is lost.

    A request that may have reached the service and got no answer is sent again with the same Idempotency-Key, so a
    lease it obtained is handed back (the contract's replay) instead of a second acquisition being made.
    """
    idempotency_key = idempotency_key or secrets.token_hex(16)
    started = clock()
    failures = 0
    while True:
        remaining = max(0.0, wait - (clock() - started))
        piece = min(remaining, MAX_WAIT_PER_REQUEST)
        params = extra + _params(
            ttlMs=None if ttl is None else ms(ttl), waitMs=ms(piece) if piece > 0 else None, owner=owner,
            maxHoldMs=None if max_hold is None else ms(max_hold))
        sent = clock()
        outcome = yield Request("POST", kind.path(key), params, (("Idempotency-Key", idempotency_key),), wait=piece)
        if isinstance(outcome, Failure):
            failures += 1
            if not outcome.sent or failures > ACQUIRE_RETRIES:
                raise outcome.error
            yield Sleep(retry_delay(None, 0.05 * 2 ** failures))
            continue
        assert isinstance(outcome, Response)
        if outcome.status == 201:
            # The TTL runs from the grant, some time between sending and now. Without a wait that is close to
            # sending (the safe end); after a wait it is close to now, and the lease's margin covers the response's
            # transit. The first renewal (at a third of the TTL) measures from its own sending again.
            return Grant(kind.decode_lease(_json(outcome)), sent if piece == 0 else clock())
        problem = parse_problem(outcome)
        if outcome.status == 409 and problem.code == kind.held_code:
            if wait - (clock() - started) > 0.001:
                continue  # one piece of a long wait ran out: the next request waits for the rest
            raise LockTimeout(
                f"{kind.noun.capitalize()} '{key}' is held by others and the wait ran out.",
                status=409, code=problem.code, detail=problem.detail, retry_after=problem.retry_after)
        raise problem.error()


def release(kind: Kind[Any], key: str, token: str) -> Op[None]:
    """Releases; a release whose answer was lost is sent once more (else the lock would stay held until its TTL), and
    that retry's ``404 released`` then means the first one did it."""
    request = Request("DELETE", kind.path(key, token))
    outcome = yield request
    retried = isinstance(outcome, Failure) and outcome.sent
    if retried:
        yield Sleep(retry_delay(None, 0.05))
        outcome = yield request
    if isinstance(outcome, Failure):
        raise outcome.error
    assert isinstance(outcome, Response)
    if outcome.status == 204:
        return
    ended = _not_held(outcome, kind.not_held_code)
    if not (retried and ended.reason == "released"):
        raise ended


def extend(kind: Kind[L], key: str, token: str, ttl: Optional[float], timeout: Optional[float] = None) -> Op[L]:
    response = yield from _exchange(
        Request("PATCH", kind.path(key, token), _params(ttlMs=None if ttl is None else ms(ttl)), timeout=timeout))
    if response.status != 200:
        raise _not_held(response, kind.not_held_code)
    return kind.decode_lease(_json(response))


def check(kind: Kind[Any], key: str, token: str, wait: float = 0.0, timeout: Optional[float] = None) -> Op[LockInfo]:
    """Whether the token holds it (its description), or :class:`NotHeld` with the reason; ``wait`` > 0 watches."""
    params = _params(waitMs=ms(wait) if wait > 0 else None)
    response = yield from _exchange(Request("GET", kind.path(key, token), params, wait=wait, timeout=timeout))
    if response.status != 200:
        raise _not_held(response, kind.not_held_code)
    return kind.decode_info(_json(response))


def inspect(kind: Kind[Any], key: str) -> Op[Any]:
    response = yield from _exchange(Request("GET", kind.path(key)))
    if response.status == 200:
        return kind.decode_inspect(_json(response))
    _not_held(response, kind.empty_code)
    return None


def list_all(kind: Kind[Any], prefix: Optional[str], page_size: Optional[int]) -> Op[List[Any]]:
    """Every entry of the operator listing, following cursors; each key once (the contract lets pages repeat one)."""
    entries: Dict[str, Any] = {}
    cursor: Optional[str] = None
    while True:
        params = _params(prefix=prefix or None, limit=None if page_size is None else str(page_size), cursor=cursor)
        response = yield from _exchange(Request("GET", kind.admin_route, params))
        if response.status != 200:
            raise parse_problem(response).error()
        page = _json(response)
        for item in page.get(kind.list_member) or ():
            entries.setdefault(str(item["key"]), kind.decode_inspect(item))
        cursor = page.get("cursor")
        if not cursor:
            return list(entries.values())


def force_release(kind: Kind[Any], key: str, slot: Optional[int] = None) -> Op[bool]:
    path = f"{kind.admin_route}/{quote(key, safe='')}" + ("" if slot is None else f"/{int(slot)}")
    response = yield from _exchange(Request("DELETE", path))
    if response.status == 204:
        return True
    _not_held(response, kind.not_held_code)
    return False


def stats() -> Op[Stats]:
    response = yield from _exchange(Request("GET", "admin/stats"))
    if response.status != 200:
        raise parse_problem(response).error()
    return decode_stats(_json(response))


# ---------------------------------------------------------------------------------------------------------------------
# Keeping a lease: renew every TTL/3, watch in between


class KeepState(Generic[L]):
    """What a held lease's keeper knows: the lease as last granted and when it must be counted lost."""

    def __init__(self, lease: L, anchor: float) -> None:
        self.lease = lease
        self.interval = max(0.001, lease.ttl / 3)
        self.next_renewal = anchor + self.interval
        self.deadline = anchor
        self.granted(lease, anchor)

    def granted(self, lease: L, anchor: float) -> None:
        """A grant counted from ``anchor`` (before its request left): the lease is safe until just before its TTL."""
        self.lease = lease
        # The margin covers timer lateness and the holder's own reaction time: a tenth of the TTL, at most a second.
        self.deadline = anchor + lease.ttl - min(1.0, lease.ttl / 10)
        self.next_renewal = anchor + min(self.interval, lease.ttl / 3)

    def deadline_reason(self) -> str:
        # At the hold cap's end the lease expired by design; otherwise the service could not be reached to renew it.
        lease = self.lease
        if lease.max_hold is not None and lease.acquired_at + timedelta(seconds=lease.max_hold) <= lease.expires_at + timedelta(milliseconds=1):
            return "expired"
        return "unavailable"


def keep(kind: Kind[L], state: KeepState[L], clock: Callable[[], float] = time.monotonic) -> Op[str]:
    """Keeps a lease until it is lost, and returns why (a driver stops it earlier when the holder releases).

    One loop does both jobs: it watches the lease (a GET that the service answers at once when the token stops holding
    it) until the next renewal is due, then renews it (PATCH). So a holder has one request in flight at a time, sees a
    loss within the service's watch latency (from FIRST_WATCH_DELAY on), and renews every TTL/3. When the service
    cannot be reached, it retries quickly until the last granted expiry's deadline and then reports ``unavailable``
    while the lease is still its own.
    """
    key, token = state.lease.key, state.lease.token
    watch_again_at = clock() + FIRST_WATCH_DELAY
    longest_watch = MAX_WATCH_WAIT
    while True:
        now = clock()
        if now >= state.deadline:
            return state.deadline_reason()
        left = state.deadline - now
        until_renewal = state.next_renewal - now
        if until_renewal > 0.005:
            if now < watch_again_at:
                yield Sleep(min(until_renewal, watch_again_at - now, left))
                continue
            wait = min(until_renewal, longest_watch)
            try:
                yield from check(kind, key, token, wait, timeout=min(left, wait + max(1.0, state.interval)))
            except NotHeld as ended:
                return ended.reason
            except InvalidRequest as error:
                if "waitMs" not in error.errors or longest_watch <= 1.0:
                    raise
                longest_watch /= 2  # a service configured with a Locks:MaxWaitMs below MAX_WATCH_WAIT
            except LockServiceError as error:
                # 429 (the instance watches too many), 503, the service gone: renewals still guard the lease.
                watch_again_at = clock() + retry_delay(error.retry_after, state.interval / 4)
            continue
        sent = clock()
        try:
            lease = yield from extend(kind, key, token, None, timeout=max(0.05, min(left, max(1.0, state.interval))))
        except NotHeld as ended:
            return ended.reason
        except LockServiceError as error:
            state.next_renewal = clock() + retry_delay(error.retry_after, state.interval / 4)
            continue
        state.granted(lease, sent)


def http_options(url: Optional[str], api_key: Optional[str], timeout: float,
                 event_hooks: Optional[Mapping[str, List[Callable[..., Any]]]]) -> Tuple[str, Dict[str, Any]]:
    """The service's URL and the options of either httpx client: the contract's defaults from the environment."""
    chosen = url or os.environ.get("LOCKSERVICE_URL") or "http://localhost:8080"
    chosen = chosen if chosen.endswith("/") else chosen + "/"
    api_key = api_key if api_key is not None else os.environ.get("LOCKSERVICE_API_KEY")
    headers = {"User-Agent": "lockservice-python/0.1"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    # Every held lease keeps one watch open, so the pool keeps as many connections alive as it may need.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    return chosen, dict(base_url=chosen, headers=headers, timeout=timeout, event_hooks=dict(event_hooks or {}), limits=limits)


def read_timeout(request: Request, timeout: float) -> float:
    """The bound of one request: its own, else the client's plus the time the service may hold it (a wait)."""
    return request.timeout if request.timeout is not None else timeout + request.wait
