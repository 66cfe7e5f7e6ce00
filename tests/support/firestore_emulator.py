"""The real Cloud Firestore emulator for tests, plus a cuttable TCP proxy in front of it.

Fixtures (import them into a test module, or load this module as a plugin with
``pytest_plugins = ["tests.support.firestore_emulator"]`` in the root conftest):

* ``firestore_emulator`` (session): one emulator process for the whole run, started from the
  Google Cloud CLI's jar on 127.0.0.1 and a free port, stopped by PID at the end. Skips locally
  / fails under ``REQUIRE_EMULATORS=1`` when the CLI or Java is missing.
* ``firestore_env`` (function): wipes the emulator's documents and points
  ``FIRESTORE_EMULATOR_HOST`` / ``GOOGLE_CLOUD_PROJECT`` at it for this test.

The jar has no ``Main-Class`` in its manifest, so it is started with
``java -cp <jar> com.google.cloud.datastore.emulator.firestore.CloudFirestore start
--host=127.0.0.1 --port=N`` (what the CLI's ``cloud_firestore_emulator`` script runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.cloud.firestore import AsyncClient

from tests.support.gcloud import require_emulator
from tests.support.processes import ServerProcess, free_port
from tests.support.waiting import wait_until

EMULATOR_JAR = "cloud-firestore-emulator/cloud-firestore-emulator.jar"
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
PROJECT = "demo-ingress-egress"


@dataclass
class FirestoreEmulator:
    host: str
    port: int
    project: str
    process: ServerProcess

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host_port}"

    def clear(self) -> None:
        """Delete every document in the project's default database."""
        response = httpx.delete(
            f"{self.base_url}/emulator/v1/projects/{self.project}/databases/(default)/documents",
            timeout=10,
        )
        response.raise_for_status()

    def client(self) -> AsyncClient:
        return firestore_client(self.host_port, self.project)


def firestore_client(host_port: str, project: str = PROJECT) -> AsyncClient:
    """An ``AsyncClient`` for the emulator at ``host_port`` whatever the environment says
    (the client reads ``FIRESTORE_EMULATOR_HOST`` once, when it is constructed)."""
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host_port
    try:
        return AsyncClient(project=project)
    finally:
        if previous is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


def start_emulator(log_dir: os.PathLike[str] | str, project: str = PROJECT) -> FirestoreEmulator:
    jar = require_emulator(EMULATOR_JAR)
    java = shutil.which("java") or "java"
    port = free_port()
    argv = [
        java,
        "-Duser.language=en",
        "-cp",
        str(jar),
        MAIN_CLASS,
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    process = ServerProcess(argv, port, Path(log_dir) / "firestore-emulator.log").start(60)
    emulator = FirestoreEmulator("127.0.0.1", port, project, process)

    def answers() -> bool:  # the port opens a moment before the HTTP API answers
        try:
            return httpx.get(emulator.base_url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, 30, "the Firestore emulator's HTTP API", interval=0.1)
    except TimeoutError:
        tail = process.log_tail()
        process.stop()
        raise RuntimeError(f"the Firestore emulator did not come up:\n{tail}") from None
    return emulator


_shared: FirestoreEmulator | None = None
_users = 0


@pytest.fixture(scope="session", name="firestore_emulator")
def firestore_emulator_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FirestoreEmulator]:
    """One emulator per test session (shared even if several modules import this fixture)."""
    global _shared, _users
    if _shared is None:
        _shared = start_emulator(tmp_path_factory.mktemp("firestore-emulator"))
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0 and _shared is not None:
            _shared.process.stop()
            _shared = None


@pytest.fixture(name="firestore_env")
def firestore_env_fixture(
    firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> FirestoreEmulator:
    """A clean emulator database, with the environment pointing the client at it."""
    firestore_emulator.clear()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host_port)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", firestore_emulator.project)
    return firestore_emulator


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target until ``cut()``: then the connections drop and
    nothing listens on the port any more ("Firestore unreachable")."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def resume(self) -> TcpProxy:
        """Listen again on the same port after ``cut()`` ("Firestore is back")."""
        if self._server is None:
            await self.start()
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)
        self._tasks.difference_update(pipes)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)

    async def close(self) -> None:
        await self.cut()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
