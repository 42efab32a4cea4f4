"""The seed's ``Lock``, as a drop-in over the service: ``with Lock("my_lock", expires=60, timeout=10):``."""

from __future__ import annotations

import atexit
import threading
from types import TracebackType
from typing import Optional, Type

from ._sync import LockHandle, LockServiceClient
from .errors import LockServiceError

_shared: Optional[LockServiceClient] = None
_shared_guard = threading.Lock()


def _shared_client() -> LockServiceClient:
    """One client per process for every ``Lock`` made without ``client=`` (the service from ``LOCKSERVICE_URL``)."""
    global _shared
    with _shared_guard:
        if _shared is None:
            _shared = LockServiceClient()
            atexit.register(_shared.close)
        return _shared


class Lock:
    """A distributed lock with the seed's interface.

    ``expires``: the lock's TTL in seconds (renewed every ``expires``/3 while held, so a long critical section keeps
    it); ``timeout``: how many seconds to wait for it, in the service (0: do not wait). :class:`LockTimeout` when it
    could not be had; :class:`LockLost` on release (or leaving the ``with``) when it was lost meanwhile.
    """

    def __init__(self, key: str, expires: float = 60, timeout: float = 10, client: Optional[LockServiceClient] = None,
                 owner: Optional[str] = None) -> None:
        if expires <= 0:
            raise ValueError("expires must be positive (seconds)")
        if timeout < 0:
            raise ValueError("timeout must be 0 or more (seconds)")
        self.key = key
        self.expires = expires
        self.timeout = timeout
        self.owner = owner
        self._client = client
        self._handle: Optional[LockHandle] = None

    @property
    def handle(self) -> Optional[LockHandle]:
        """The held lock (``fencing_token``, ``lost``, ``ensure_held()``), or None when not held."""
        return self._handle

    def acquire(self) -> bool:
        """Acquires the lock, waiting up to ``timeout`` seconds in the service; True, or :class:`LockTimeout`."""
        if self._handle is not None:
            raise LockServiceError(f"Lock '{self.key}' is already held by this Lock object.")
        client = self._client or _shared_client()
        self._handle = client.lock(self.key, ttl=self.expires, wait=self.timeout, owner=self.owner).acquire()
        return True

    def release(self) -> None:
        """Releases the lock; :class:`LockLost` when it had been lost meanwhile."""
        handle, self._handle = self._handle, None
        if handle is None:
            raise LockServiceError(f"Lock '{self.key}' is not held by this Lock object.")
        handle.release()

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.__exit__(exc_type, exc, tb)
