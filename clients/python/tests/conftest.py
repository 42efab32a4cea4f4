"""A real redis-server and a real LockService process for the test session (no mock of either).

The service is the one the solution's Release build produced (``dotnet build LockService.sln -c Release``); set
``LOCKSERVICE_API_DLL`` to test another build. API keys are on, so that the operator and auth paths are real too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import httpx
import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
DEFAULT_DLL = REPOSITORY / "LockService.Api" / "bin" / "Release" / "net10.0" / "LockService.Api.dll"
ADMIN_KEY = "python-tests-admin-key-0001"
CLIENT_KEY = "python-tests-client-key-0001"
OTHER_TENANT_KEY = "python-tests-admin-key-0002"


@dataclass(frozen=True)
class Service:
    url: str
    redis_port: int
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls ``condition`` every 20 ms until it holds; fails the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.02)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "health/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: "subprocess.Popen[bytes]") -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _dll() -> Path:
    dll = Path(os.environ.get("LOCKSERVICE_API_DLL", DEFAULT_DLL))
    if not dll.exists():
        pytest.fail(f"{dll} is missing: build the solution first (dotnet build LockService.sln -c Release)")
    return dll


@contextmanager
def _api(redis_port: int, directory: Path, name: str, port: Optional[int] = None, **settings: str) -> Iterator[Service]:
    """A LockService process on ``port`` (else a free one) over the given redis-server, with the test keys and
    ``settings``."""
    dll = _dll()
    port = port or free_port()
    environment = dict(
        os.environ,
        Redis__ConnectionString=f"127.0.0.1:{redis_port}",
        Auth__ApiKeys__0__Key=ADMIN_KEY, Auth__ApiKeys__0__Tenant="python", Auth__ApiKeys__0__Role="admin",
        Auth__ApiKeys__1__Key=CLIENT_KEY, Auth__ApiKeys__1__Tenant="python", Auth__ApiKeys__1__Role="client",
        Auth__ApiKeys__2__Key=OTHER_TENANT_KEY, Auth__ApiKeys__2__Tenant="python-other", Auth__ApiKeys__2__Role="admin",
        DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1", **settings)
    environment.pop("LOCKSERVICE_URL", None)
    environment.pop("LOCKSERVICE_API_KEY", None)
    log = directory / f"{name}.log"
    with open(log, "wb") as output:
        # Run from the build folder: the service reads its appsettings.json from its content root, the working folder.
        process = subprocess.Popen(
            ["dotnet", str(dll), "--urls", f"http://127.0.0.1:{port}"], cwd=str(dll.parent), env=environment,
            stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: process.poll() is not None or _ready(url), 60, f"the service on port {port} is ready (log: {log})")
        assert process.poll() is None, f"the service exited at start: {log.read_text()[-2000:]}"
        yield Service(url, redis_port, log)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Tuple[int, Path]]:
    """One redis-server for the session (its port and a scratch folder), shared by every service instance."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not on PATH")
    directory = Path(tempfile.mkdtemp(prefix="lockservice-python-tests-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [executable, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(directory / "redis.log")])
    try:
        wait_until(lambda: _redis_answers(redis_port), 15, f"redis-server on port {redis_port} answers PING")
        yield redis_port, directory
    finally:
        _stop(redis)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def service(redis_server: Tuple[int, Path]) -> Iterator[Service]:
    with _api(*redis_server, "service") as api:
        yield api


@pytest.fixture(scope="session")
def strict_service(redis_server: Tuple[int, Path]) -> Iterator[Service]:
    """A second instance over the same Redis, configured tighter than the defaults the client assumes: waits of at
    most 5 s (Locks:MaxWaitMs) and 4 requests a second per tenant. Started only by the tests that use it (pytest makes a
    session fixture on first use); ADMIN_KEY's and OTHER_TENANT_KEY's tenants are limited apart."""
    with _api(*redis_server, "strict-service", Locks__MaxWaitMs="5000", RateLimit__PermitsPerSecond="4") as api:
        yield api


@pytest.fixture
def env(service: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    """The service as the client's environment variables name it (LOCKSERVICE_URL, LOCKSERVICE_API_KEY)."""
    monkeypatch.setenv("LOCKSERVICE_URL", service.url)
    monkeypatch.setenv("LOCKSERVICE_API_KEY", ADMIN_KEY)
    return service


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A lock key unique to the test, so that tests never meet through a shared key."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80].strip("-")
    return f"py-{name}-{uuid.uuid4().hex[:12]}"
