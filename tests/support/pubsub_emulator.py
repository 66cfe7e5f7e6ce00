"""The real Pub/Sub emulator (Google Cloud CLI) for tests, plus a per-test harness.

``pubsub_emulator`` (session fixture) launches the emulator jar with ``java`` directly, so
the PID we stop is the JVM itself (``ServerProcess`` also puts it in its own process
group). ``pubsub`` (function fixture) points ``PUBSUB_EMULATOR_HOST`` at it and yields a
``PubSubHarness`` with a unique ``BUS_PREFIX``, hence a unique topic per test.

The fixtures are registered under those names by whichever module imports the functions
(tests/conftest.py, so that every test module can use them)::

    from tests.support.pubsub_emulator import pubsub_emulator_fixture, pubsub_fixture  # noqa: F401
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ingress_egress.config import Settings

from .gcloud import INSTALL_HINT, require_emulator
from .processes import ServerProcess, free_port
from .waiting import POLL_S

PROJECT = "ingress-egress-test"
EMULATOR_DIR = "pubsub-emulator"


@dataclass(frozen=True, slots=True)
class Received:
    """One message as a consumer sees it (same shape as the NATS harness's)."""

    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)


def emulator_argv(host: str, port: int) -> list[str]:
    """``java -jar .../cloud-pubsub-emulator-*-all.jar --host --port`` (skip/fail if absent)."""
    root = require_emulator(EMULATOR_DIR)
    jars = sorted((root / "lib").glob("cloud-pubsub-emulator-*.jar"))
    java = shutil.which("java")
    if jars and java:
        return [java, "-jar", str(jars[-1]), f"--host={host}", f"--port={port}"]
    script = root / "bin" / "cloud-pubsub-emulator"
    if script.exists():  # the script exec's java, in ServerProcess's own process group
        return [str(script), f"--host={host}", f"--port={port}"]
    reason = f"no Pub/Sub emulator jar under {root}: {INSTALL_HINT}"
    if os.environ.get("REQUIRE_EMULATORS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class PubSubEmulator:
    """One emulator process on 127.0.0.1 and a free port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / "pubsub-emulator.log"
        self.server = ServerProcess(emulator_argv("127.0.0.1", self.port), self.port, self.log_path)

    @property
    def host(self) -> str:
        """The value for ``PUBSUB_EMULATOR_HOST``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> PubSubEmulator:
        try:
            self.server.start(timeout)
        except Exception as error:
            raise RuntimeError(
                f"Pub/Sub emulator did not start: {error}\n{self.server.log_tail()}"
            ) from error
        return self

    def stop(self) -> None:
        self.server.stop()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the JVM: connections stay open but nothing answers (until SIGCONT)."""
        os.kill(self.server.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.server.pid, signal.SIGCONT)


@pytest.fixture(scope="session", name="pubsub_emulator")
def pubsub_emulator_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    emulator = PubSubEmulator(tmp_path_factory.mktemp("pubsub-emulator")).start()
    try:
        yield emulator
    finally:
        emulator.stop()


class PubSubHarness:
    """A unique topic (via a unique ``BUS_PREFIX``) and an ordered subscription on it.

    Blocking admin calls run in threads from the async methods; the sync methods are for
    set-up outside the event loop.
    """

    def __init__(self, emulator: PubSubEmulator, project: str = PROJECT) -> None:
        from google.cloud import pubsub_v1  # after PUBSUB_EMULATOR_HOST is set

        self.emulator = emulator
        self.project = project
        self.prefix = f"t{uuid.uuid4().hex[:12]}-"
        self.base_settings = Settings.defaults(
            message_bus_driver="pubsub",
            google_cloud_project=project,
            bus_prefix=self.prefix,
            pubsub_emulator_host=emulator.host,
        )
        self.topic_id = self.base_settings.bus.ingress_subject
        self.topic = f"projects/{project}/topics/{self.topic_id}"
        self.subscription = f"projects/{project}/subscriptions/{self.prefix}sub"
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self._buffer: list[Received] = []

    def settings(self, **overrides: Any) -> Settings:
        return self.base_settings.replace(**overrides)

    # -- topic / subscription ---------------------------------------------------------------

    def create_topic(self) -> None:
        self.publisher.create_topic(request={"name": self.topic})

    def delete_topic(self) -> None:
        self.publisher.delete_topic(request={"topic": self.topic})

    def topic_exists(self) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.publisher.get_topic(request={"topic": self.topic})
        except NotFound:
            return False
        return True

    def subscribe(self, name: str | None = None) -> str:
        """An ordered subscription on the topic; messages published before it are not seen."""
        if name is not None:
            self.subscription = f"projects/{self.project}/subscriptions/{name}"
        self.subscriber.create_subscription(
            request={
                "name": self.subscription,
                "topic": self.topic,
                "enable_message_ordering": True,
                "ack_deadline_seconds": 30,
            }
        )
        return self.subscription

    # -- receiving ------------------------------------------------------------------------

    async def received(self, n: int, timeout: float) -> list[Received]:
        """The next ``n`` messages in delivery order (fewer if ``timeout`` runs out)."""
        deadline = time.monotonic() + timeout
        while len(self._buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = await asyncio.to_thread(self._pull, min(remaining, 2.0))
            self._buffer.extend(batch)
            if not batch:  # the emulator answered at once with nothing: poll again
                await asyncio.sleep(POLL_S)
        taken, self._buffer = self._buffer[:n], self._buffer[n:]
        return taken

    def _pull(self, timeout: float) -> list[Received]:
        from google.api_core.exceptions import DeadlineExceeded

        try:
            response = self.subscriber.pull(
                request={"subscription": self.subscription, "max_messages": 1000},
                timeout=max(timeout, 0.1),
                retry=None,
            )
        except DeadlineExceeded:
            return []
        if not response.received_messages:
            return []
        self.subscriber.acknowledge(
            request={
                "subscription": self.subscription,
                "ack_ids": [m.ack_id for m in response.received_messages],
            }
        )
        return [
            Received(bytes(m.message.data), dict(m.message.attributes))
            for m in response.received_messages
        ]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.subscriber.delete_subscription(request={"subscription": self.subscription})
        with contextlib.suppress(Exception):
            self.delete_topic()
        with contextlib.suppress(Exception):
            self.subscriber.close()
        with contextlib.suppress(Exception):
            self.publisher.transport.close()


@pytest.fixture(name="pubsub")
def pubsub_fixture(
    pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PubSubHarness]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    harness = PubSubHarness(pubsub_emulator)
    try:
        yield harness
    finally:
        harness.close()
