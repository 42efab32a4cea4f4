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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
DEFAULT_DLL = REPOSITORY / "LockService.Api" / "bin" / "Release" / "net10.0" / "LockService.Api.dll"
ADMIN_KEY = "python-tests-admin-key-0001"
CLIENT_KEY = "python-tests-client-key-0001"


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


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    dll = Path(os.environ.get("LOCKSERVICE_API_DLL", DEFAULT_DLL))
    if not dll.exists():
        pytest.fail(f"{dll} is missing: build the solution first (dotnet build LockService.sln -c Release)")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is not on PATH")
    directory = Path(tempfile.mkdtemp(prefix="lockservice-python-tests-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(directory / "redis.log")])
    api = None
    try:
        wait_until(lambda: _redis_answers(redis_port), 15, f"redis-server on port {redis_port} answers PING")
        port = free_port()
        environment = dict(
            os.environ,
            Redis__ConnectionString=f"127.0.0.1:{redis_port}",
            Auth__ApiKeys__0__Key=ADMIN_KEY, Auth__ApiKeys__0__Tenant="python", Auth__ApiKeys__0__Role="admin",
            Auth__ApiKeys__1__Key=CLIENT_KEY, Auth__ApiKeys__1__Tenant="python", Auth__ApiKeys__1__Role="client",
            DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1")
        environment.pop("LOCKSERVICE_URL", None)
        environment.pop("LOCKSERVICE_API_KEY", None)
        log = directory / "service.log"
        with open(log, "wb") as output:
            # Run from the build folder: the service reads its appsettings.json from its content root, the working folder.
            api = process = subprocess.Popen(
                ["dotnet", str(dll), "--urls", f"http://127.0.0.1:{port}"], cwd=str(dll.parent), env=environment,
                stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: process.poll() is not None or _ready(url), 60, f"the service on port {port} is ready (log: {log})")
        assert process.poll() is None, f"the service exited at start: {log.read_text()[-2000:]}"
        yield Service(url, redis_port, log)
    finally:
        if api is not None:
            _stop(api)
        _stop(redis)
        shutil.rmtree(directory, ignore_errors=True)


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
