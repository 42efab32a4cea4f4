"""The HTTP contract, written once for both clients, without any I/O ("sans-IO").

Every operation is a generator: it yields a :class:`Request` (or a :class:`Sleep`), receives what came of it (a
:class:`Response`, or a :class:`Failure` when the service could not be reached), and returns the decoded result or
raises a typed exception. The synchronous and the asyncio clients are only drivers that send what an operation yields
(``_sync.py``, ``_async.py``), so request building, retries, problem parsing and decoding cannot drift between them.

A kind of lease (lock, semaphore, read/write lock, election) is a :class:`Kind` (its routes, codes and decoders); the
parameters only some kinds take (``limit``, ``mode``, ``value``) are passed as ``extra``. The acquire, release, extend,
check, keep (renew and watch) and listing operations below serve every kind unchanged. Observing an election (an
event stream that the operation reconnects by itself) uses two more steps, :class:`Read` and :class:`Emit`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Generator, Generic, Iterator, List, Literal, Mapping, Optional, Tuple, TypeVar, Union
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
L = TypeVar("L", bound=Lease)
log = logging.getLogger("lockservice")

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


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        # The path of a held lease's request carries its token.
        return f"Request({self.method} {redact(self.path)!r}, params={self.params!r}, wait={self.wait}, timeout={self.timeout})"


@dataclass(frozen=True)
class Sleep:
    """Wait this long before the next step (a driver may cut it short when the lease is being released)."""

    seconds: float


@dataclass(frozen=True)
class Read:
    """Read what comes next from the open event stream: the driver answers with a :class:`Chunk`, or a :class:`Failure`
    when the connection broke or stayed silent past the request's timeout."""


@dataclass(frozen=True)
class Emit:
    """Hand ``event`` to the caller of an iterating operation (observe); the driver answers with nothing."""

    event: ElectionEvent


@dataclass(frozen=True)
class Chunk:
    """Bytes read from an open event stream; empty when the service ended it."""

    data: bytes


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
# An operation that reads an event stream and hands events to its caller as it goes (observe).
StreamStep = Union[Request, Sleep, Read, Emit]
StreamOutcome = Union[Response, Failure, Chunk, None]
StreamOp = Generator[StreamStep, StreamOutcome, None]
S = TypeVar("S")


class Stopped(Exception):
    """The holder released the lease (or closed the client): its keeper stops (raised by :class:`Running`)."""


class Running(Generic[S, T]):
    """An operation as a driver runs it: iterate over its steps and set :attr:`outcome` for each (a request's
    :class:`Response` or :class:`Failure`, a :class:`Read`'s :class:`Chunk`; nothing after a :class:`Sleep` or an
    :class:`Emit`); :attr:`result` holds what it returned. With ``stopped``, the iteration raises :class:`Stopped` after
    the first step at whose end it says True."""

    def __init__(self, op: Generator[S, Any, T], stopped: Optional[Callable[[], bool]] = None) -> None:
        self._op = op
        self._stopped = stopped
        self.outcome: StreamOutcome = None

    def __iter__(self) -> Iterator[S]:
        try:
            step = next(self._op)
            while True:
                self.outcome = None
                yield step
                if self._stopped is not None and self._stopped():
                    raise Stopped()
                step = self._op.send(self.outcome)
        except StopIteration as done:
            self.result: T = done.value
        finally:
            self._op.close()


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


def decode_rw_lease(body: Mapping[str, Any]) -> RwLease:
    return RwLease(**dict(decode_lease(body).__dict__, mode=str(body["mode"])))


def decode_rw_info(body: Mapping[str, Any], key: Optional[str] = None) -> RwLeaseInfo:
    # As for permits: an inspection's holders come without the key (it is the parent's); a check's body carries it.
    info = decode_lock_info({**body, "key": body.get("key", key)})
    return RwLeaseInfo(**dict(info.__dict__, mode=str(body["mode"])))


def decode_rwlock_info(body: Mapping[str, Any]) -> RwLockInfo:
    key = str(body["key"])
    return RwLockInfo(
        key=key, mode=str(body["mode"]), holders=tuple(decode_rw_info(h, key) for h in body.get("holders") or ()),
        writers_waiting=int(body.get("writersWaiting") or 0), truncated=bool(body.get("truncated", False)))


def decode_leadership(body: Mapping[str, Any]) -> Leadership:
    # An election's lease names its election ``name`` and its fencing token ``term``; it has no owner.
    return Leadership(
        key=str(body["name"]), token=str(body["token"]), fencing_token=int(body["term"]), ttl=int(body["ttlMs"]) / 1000.0,
        expires_at=parse_time(body["expiresAt"]), acquired_at=parse_time(body["acquiredAt"]),
        max_hold=_seconds(body.get("maxHoldMs")), owner=None, value=str(body.get("value") or ""))


def decode_leader(body: Mapping[str, Any], name: Optional[str] = None) -> Leader:
    return Leader(
        name=str(body.get("name", name)), term=int(body["term"]), value=str(body.get("value") or ""),
        acquired_at=parse_time(body["acquiredAt"]), expires_at=parse_time(body["expiresAt"]), ttl=int(body["ttlMs"]) / 1000.0)


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
    decode_info: Callable[[Mapping[str, Any]], Any]  # a check's 200
    decode_inspect: Callable[[Mapping[str, Any]], Any]
    #: The member that names an entry of the operator listing (elections are named, not keyed).
    name_member: str = "key"
    #: The 404 of a force-release that found nothing to force, when it is not ``not_held_code``.
    force_absent_code: Optional[str] = None
    #: What a 409 says about the holder in the way, beyond ``retryAfterMs`` (an election's leader), from its members.
    decode_conflict: Optional[Callable[[str, Mapping[str, Any]], Any]] = None

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

RWLOCK: Kind[RwLease] = Kind(
    noun="read/write lock", route="rwlocks", held_code="rwlock_held", not_held_code="rwlock_not_held", empty_code="rwlock_free",
    admin_route="admin/rwlocks", list_member="rwlocks", decode_lease=decode_rw_lease, decode_info=decode_rw_info,
    decode_inspect=decode_rwlock_info)


def _leader_in_way(name: str, members: Mapping[str, Any]) -> Optional[Leader]:
    # A 409 election_led's ``leader`` has no name (the election asked for) nor TTL (the problem's retryAfterMs).
    leader = members.get("leader")
    if not isinstance(leader, dict):
        return None
    return decode_leader({"name": name, "ttlMs": members.get("retryAfterMs") or 0, **leader})


ELECTION: Kind[Leadership] = Kind(
    noun="election", route="elections", held_code="election_led", not_held_code="not_leader", empty_code="no_leader",
    admin_route="admin/elections", list_member="elections", decode_lease=decode_leadership, decode_info=decode_leader,
    decode_inspect=decode_leader, name_member="name", force_absent_code="no_leader", decode_conflict=_leader_in_way)


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
    #: The problem's whole body, for the members only some answers carry (an election's ``leader``).
    members: Mapping[str, Any] = field(default_factory=dict)

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
    return Problem(response.status, text("code"), text("title"), text("detail"), text("reason"), retry_after, errors, body)


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


# A read/write lease's mode: the service refuses anything else (400 naming ``mode``).
Mode = Literal["read", "write"]


def mode_param(mode: Mode) -> Tuple[Tuple[str, str], ...]:
    return (("mode", mode),)


def value_param(value: str) -> Tuple[Tuple[str, str], ...]:
    """A campaign's value; the empty default is left out (a proclaim sends even an empty one: it clears the value)."""
    return (("value", value),) if value else ()


def _params(**values: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    return tuple((name, value) for name, value in values.items() if value is not None)


def retry_delay(asked: Optional[float], default: float) -> float:
    return min(MAX_RETRY_DELAY, max(MIN_RETRY_DELAY, asked if asked is not None else default))


class WaitLimit:
    """The longest wait one request may ask for. It starts at what the service allows by default and is halved when a
    service configured with a lower ``Locks:MaxWaitMs`` refuses a wait (400 naming ``waitMs``), down to one second."""

    def __init__(self, longest: float) -> None:
        self.longest = longest

    def piece(self, remaining: float) -> float:
        return min(remaining, self.longest)

    def refused(self, asked: float, errors: Mapping[str, Any]) -> bool:
        """Whether a 400 with ``errors`` for a wait of ``asked`` seconds is worth asking again with half as long."""
        if "waitMs" not in errors or asked <= 1.0:
            return False
        self.longest = max(1.0, min(self.longest, asked) / 2)
        return True


# Retries of one listing page the rate limit refused, each after the Retry-After it gives (at most the second bound).
LIST_RETRIES = 5
MAX_LIST_RETRY_DELAY = 5.0


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
    limit = WaitLimit(MAX_WAIT_PER_REQUEST)
    while True:
        remaining = max(0.0, wait - (clock() - started))
        piece = limit.piece(remaining)
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
            # sending (the safe end). After a wait it is close to now: the service does not say how long the request
            # waited (acquiredAt is Redis's clock, not this machine's monotonic one; the Date header has whole
            # seconds), and counting from sending would count the wait against the TTL (a wait longer than the TTL
            # would make the lease count as lost on arrival). So the anchor is the arrival, and the lease's margin
            # (KeepState.granted) covers the response's transit; the first renewal, at a third of the TTL, measures
            # from its own sending again.
            return Grant(kind.decode_lease(_json(outcome)), sent if piece == 0 else clock())
        problem = parse_problem(outcome)
        if outcome.status == 409 and problem.code == kind.held_code:
            if wait - (clock() - started) > 0.001:
                continue  # one piece of a long wait ran out: the next request waits for the rest
            raise LockTimeout(
                f"{kind.noun.capitalize()} '{key}' is held by others and the wait ran out.",
                status=409, code=problem.code, detail=problem.detail, retry_after=problem.retry_after,
                leader=None if kind.decode_conflict is None else kind.decode_conflict(key, problem.members))
        if outcome.status == 400 and limit.refused(piece, problem.errors):
            continue
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


def extend(kind: Kind[L], key: str, token: str, ttl: Optional[float], timeout: Optional[float] = None,
           extra: Tuple[Tuple[str, str], ...] = ()) -> Op[L]:
    """Extends (an election's proclaim too: ``extra`` then carries the ``value``); :class:`NotHeld` with the reason."""
    response = yield from _exchange(
        Request("PATCH", kind.path(key, token), extra + _params(ttlMs=None if ttl is None else ms(ttl)), timeout=timeout))
    if response.status != 200:
        raise _not_held(response, kind.not_held_code)
    return kind.decode_lease(_json(response))


def check(kind: Kind[Any], key: str, token: str, wait: float = 0.0, timeout: Optional[float] = None) -> Op[Any]:
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
    refused = 0
    while True:
        params = _params(prefix=prefix or None, limit=None if page_size is None else str(page_size), cursor=cursor)
        response = yield from _exchange(Request("GET", kind.admin_route, params))
        if response.status == 429 and refused < LIST_RETRIES:
            # A long walk meets the tenant's rate limit; the same cursor is asked again when the limit allows it.
            refused += 1
            asked = parse_problem(response).retry_after
            yield Sleep(min(MAX_LIST_RETRY_DELAY, max(MIN_RETRY_DELAY, asked if asked is not None else 1.0)))
            continue
        if response.status != 200:
            raise parse_problem(response).error()
        refused = 0
        page = _json(response)
        for item in page.get(kind.list_member) or ():
            entries.setdefault(str(item[kind.name_member]), kind.decode_inspect(item))
        cursor = page.get("cursor")
        if not cursor:
            return list(entries.values())


def force_release(kind: Kind[Any], key: str, slot: Optional[int] = None, fencing_token: Optional[int] = None) -> Op[bool]:
    """An operator's force-release: a semaphore's ``slot``, or the one read/write lease with ``fencing_token``."""
    path = f"{kind.admin_route}/{quote(key, safe='')}" + ("" if slot is None else f"/{int(slot)}")
    params = _params(fencingToken=None if fencing_token is None else str(int(fencing_token)))
    response = yield from _exchange(Request("DELETE", path, params))
    if response.status == 204:
        return True
    _not_held(response, kind.force_absent_code or kind.not_held_code)
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
        self.anchor = -math.inf
        self.granted(lease, anchor)

    def granted(self, lease: L, anchor: float) -> None:
        """A grant counted from ``anchor`` (before its request left): the lease is safe until just before its TTL.

        A grant whose request left before the last one counted is ignored: the holder's own extend (an election's
        proclaim) may cross the keeper's renewal, and the later-sent one's deadline holds for both."""
        if anchor < self.anchor:
            return
        self.anchor = anchor
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
    limit = WaitLimit(MAX_WATCH_WAIT)
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
            wait = limit.piece(until_renewal)
            try:
                yield from check(kind, key, token, wait, timeout=min(left, wait + max(1.0, state.interval)))
            except NotHeld as ended:
                return ended.reason
            except InvalidRequest as error:
                if not limit.refused(wait, error.errors):
                    raise
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


# ---------------------------------------------------------------------------------------------------------------------
# Observing an election: an event stream, reconnected by the operation itself

# The service sends a comment at least every 15 s; a stream silent for twice that is taken as a dead connection (a
# proxy or a network that dropped it without a word) and opened again.
OBSERVE_SILENCE = 35.0
# Reconnection delays: the first one short (an instance that stopped ends its streams; another one answers at once),
# then doubling up to a bound that keeps a follower of a service that is down from hammering it.
MIN_OBSERVE_DELAY = 0.05
MAX_OBSERVE_DELAY = 5.0
# A stream that lived this long, or reported a state, counts as a success: the next reconnection starts short again.
HEALTHY_STREAM = 1.0


class EventStreamParser:
    """Server-Sent Events from bytes as they arrive (a line or an event may span reads): the events, each as its
    ``event`` name, its ``id`` (the last one the stream set) and its ``data``; comments are dropped."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: List[str] = []
        self.last_id: Optional[str] = None

    def feed(self, data: bytes) -> List[Tuple[str, Optional[str], str]]:
        events: List[Tuple[str, Optional[str], str]] = []
        self._buffer += data
        *lines, self._buffer = re.split(b"\r\n|\n|\r(?!\\Z)", self._buffer)
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line:
                if self._data or self._event:
                    events.append((self._event or "message", self.last_id, "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
            elif name == "id" and "\0" not in value:
                self.last_id = value
        return events


def decode_event(name: str, event: str, event_id: Optional[str], data: str) -> Optional[ElectionEvent]:
    """An observer's event (``leader`` or ``no-leader``), or None for a kind of event this client does not know."""
    if event not in ("leader", "no-leader"):
        return None
    body = json.loads(data) if data else {}
    leader = decode_leader(body, name) if event == "leader" else None
    return ElectionEvent(event=event, name=str(body.get("name", name)), id=event_id or "", leader=leader)


class ObserveState:
    """What an observer remembers across reconnections: the last state it handed out (its id, sent back as
    ``Last-Event-ID``) and the highest term it reported, so that it never hands out a state it already reported last,
    nor a leader older than one it reported (terms only increase: a lower one is stale, from a lagging answer)."""

    def __init__(self) -> None:
        self.last_id: Optional[str] = None
        self.top_term = 0

    def fresh(self, event: ElectionEvent) -> bool:
        if event.id and event.id == self.last_id:
            return False
        if event.leader is not None and event.leader.term < self.top_term:
            return False
        self.last_id = event.id or None
        if event.leader is not None:
            self.top_term = event.leader.term
        return True


def observe(name: str, clock: Callable[[], float] = time.monotonic) -> StreamOp:
    """Observes election ``name`` for ever: emits its current state, then each change (:class:`Emit`), reconnecting
    after a broken or silent stream, a 503 or a 429 with ``Last-Event-ID``, so that the service sends the current state
    again only when it differs from the last one emitted. Raises only what retrying cannot mend (401, 403, 400)."""
    state = ObserveState()
    delay = MIN_OBSERVE_DELAY
    failing = False
    while True:
        headers: Tuple[Tuple[str, str], ...] = (("Accept", "text/event-stream"),)
        if state.last_id is not None:
            headers += (("Last-Event-ID", state.last_id),)
        opened = clock()
        outcome = yield Request("GET", ELECTION.path(name), headers=headers, timeout=OBSERVE_SILENCE)
        problem: Optional[LockServiceError] = None
        asked: Optional[float] = None
        if isinstance(outcome, Failure):
            problem = outcome.error
        elif isinstance(outcome, Response) and outcome.status == 200 and "text/event-stream" in outcome.headers.get("content-type", ""):
            if failing:
                log.info("lockservice: observing election %r again", name)
            failing = False
            parser = EventStreamParser()
            healthy = False
            while True:
                chunk = yield Read()
                if not isinstance(chunk, Chunk) or not chunk.data:
                    break  # the service ended the stream (an instance stopping), or the connection broke
                for event, event_id, data in parser.feed(chunk.data):
                    decoded = decode_event(name, event, event_id, data)
                    if decoded is not None and state.fresh(decoded):
                        healthy = True
                        yield Emit(decoded)
            if healthy or clock() - opened >= HEALTHY_STREAM:
                delay = MIN_OBSERVE_DELAY
        elif isinstance(outcome, Response):
            found = parse_problem(outcome)
            if outcome.status == 200 or outcome.status in (429, 502, 503, 504):
                # A 200 that is not a stream is a proxy's page; the others heal by themselves.
                problem, asked = found.error(), found.retry_after
            else:
                raise found.error()
        if problem is not None and not failing:
            failing = True
            log.warning("lockservice: observing election %r failed (%s); reconnecting", name, problem)
        yield Sleep(min(MAX_OBSERVE_DELAY, max(delay, asked or 0.0)))
        delay = min(MAX_OBSERVE_DELAY, delay * 2)


# The routes whose third segment is a token ({route}/{key}/{token}), and query parameters that may hold one. Every
# kind's route is listed, so a request of any kind is masked in logs.
_TOKEN_ROUTES = ("locks", "semaphores", "rwlocks", "elections")
_TOKEN_IN_PATH = re.compile(r"((?:^|/)(?:%s)/[^/?#\s\"']+/)[^?#\s\"']+" % "|".join(_TOKEN_ROUTES))
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&#\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every lease token in a URL or path replaced by ``***``."""
    return _TOKEN_IN_QUERY.sub(r"\1***", _TOKEN_IN_PATH.sub(r"\1***", text))


class RedactTokens(logging.Filter):
    """Masks lease tokens in the records of httpx and httpcore: httpx 0.24 and later log every request at INFO with its
    URL (``HTTP Request: DELETE http://host/locks/k/<token> ...``), so an application's INFO log would hold tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_REDACT = RedactTokens()
# A filter on a logger applies to the records logged on it, not to its children's, so each logger that may write a URL
# gets it: httpx logs on "httpx" (before 0.24 on "httpx._client"), httpcore on its module loggers.
_LOGGERS = ("httpx", "httpx._client", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.socks")


def redact_http_logs() -> None:
    """Installs the token filter on the HTTP libraries' loggers (once; a client calls it when it is made)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


def http_options(url: Optional[str], api_key: Optional[str], timeout: float,
                 event_hooks: Optional[Mapping[str, List[Callable[..., Any]]]]) -> Tuple[str, Dict[str, Any]]:
    """The service's URL and the options of either httpx client: the contract's defaults from the environment."""
    redact_http_logs()
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


def http_arguments(request: Request, timeout: float) -> Dict[str, Any]:
    """The arguments of either httpx client's ``request`` for ``request``, under a client whose timeout is ``timeout``."""
    bound = read_timeout(request, timeout)
    return dict(
        method=request.method, url=request.path, params=list(request.params) or None, headers=dict(request.headers) or None,
        timeout=httpx.Timeout(bound, connect=min(bound, timeout)))
