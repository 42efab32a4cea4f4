"""The exceptions of the client: one per kind of answer a caller may want to treat apart.

Every exception is a :class:`LockServiceError` with the HTTP ``status`` (``None`` when the service was not reached),
the problem's stable ``code`` and its ``detail``, so that ``except LockServiceError`` catches everything the client
raises about the service.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from .models import Leader


class LockServiceError(Exception):
    """An error answer of the service (an RFC 9457 problem) or no answer at all."""

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        detail: Optional[str] = None,
        errors: Optional[Mapping[str, Sequence[str]]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        # The problem's ``errors`` member (400 invalid_parameter): messages keyed by parameter name.
        self.errors: Mapping[str, Sequence[str]] = dict(errors or {})
        # Seconds until trying again makes sense (Retry-After / retryAfterMs), when the service said.
        self.retry_after = retry_after


class LockTimeout(LockServiceError):
    """The lock was held (the semaphore full, another candidate leading) and the wait ran out. ``retry_after``: the
    holder's TTL left; ``leader``: for a campaign, the :class:`~lockservice.Leader` in the way (its term and value)."""

    def __init__(self, message: str, *, leader: Optional[Leader] = None, **problem: Any) -> None:
        super().__init__(message, **problem)
        self.leader = leader


class LockLost(LockServiceError):
    """A held lease ended without its holder releasing it; ``reason`` says why.

    Reasons are the service's (``forced``: an operator force-released it, ``expired``: its TTL or hold cap ran out,
    ``released``: someone released it with its token, ``unknown``) or the client's own ``unavailable``: the service
    could not be reached to renew it before the last expiry it granted.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"The lease of '{key}' was lost ({reason}).", code="lease_lost", detail=reason)
        self.key = key
        self.reason = reason


class NotHeld(LockServiceError):
    """404: this token does not hold the lock (the permit); ``reason`` says why, as :class:`LockLost` does."""

    def __init__(self, message: str, *, status: Optional[int] = 404, code: Optional[str] = None, detail: Optional[str] = None,
                 reason: str = "unknown") -> None:
        super().__init__(message, status=status, code=code, detail=detail)
        self.reason = reason


class Unavailable(LockServiceError):
    """503 (Redis unavailable), a gateway error, or the service could not be reached (``status`` None): retryable."""


class TooManyRequests(LockServiceError):
    """429: a rate limit, or too many requests waiting or watching on the instance; retry after ``retry_after``."""


class Unauthorized(LockServiceError):
    """401: no API key, or a wrong one."""


class Forbidden(LockServiceError):
    """403: the API key's role may not do this (operator calls need ``admin``), or force-release is off."""


class InvalidRequest(LockServiceError):
    """400, 413 or 415: bad input (a key, a token, a parameter; ``errors`` names each); nothing was changed."""
