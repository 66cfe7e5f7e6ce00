"""Pins: every name of a third-party library that the code uses although it is not that
library's public API. An upgrade that renames or reshapes one fails here, naming it, rather
than quietly in production. (TwitchIO's are pinned in tests/test_eventsub_adapter.py.)

* nats-py: the client's write buffer and its flusher (bus/nats.py ``NATS_PY_PRIVATE_NAMES``);
* uvicorn: H11Protocol's and Server's internals (http/server.py ``UVICORN_*``), and that the
  names our subclass adds shadow none of uvicorn's;
* google-cloud-firestore: the GAPIC client whose channel credentials/firestore_provider.py
  closes (``_close_firestore_client``: no public API closes it).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from importlib.metadata import version

import nats
import pytest
import uvicorn
from google.cloud.firestore import AsyncClient
from nats.aio.client import Client
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from ingress_egress.bus.nats import NATS_PY_PRIVATE_NAMES
from ingress_egress.http.server import (
    PROTOCOL_ADDS,
    UVICORN_PROTOCOL_USES,
    UVICORN_SERVER_OVERRIDES,
    UVICORN_SERVER_USES,
)
from tests.support.nats import NatsServer
from tests.support.processes import free_port

NATS_PY = f"nats-py {version('nats-py')}"
UVICORN = f"uvicorn {version('uvicorn')}"
FIRESTORE = f"google-cloud-firestore {version('google-cloud-firestore')}"


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_server.url)
    try:
        yield nc
    finally:
        await nc.close()


async def test_nats_py_has_the_write_buffer_the_driver_fills(client: Client) -> None:
    for name in NATS_PY_PRIVATE_NAMES:
        assert hasattr(client, name), f"{NATS_PY} has no Client.{name} (bus/nats.py uses it)"
    assert isinstance(client._pending, list), f"{NATS_PY}: Client._pending is not a list"
    assert isinstance(client._pending_data_size, int), f"{NATS_PY}: _pending_data_size"
    assert isinstance(client._max_pending_size, int), f"{NATS_PY}: _max_pending_size"
    assert client._max_pending_size > 0, f"{NATS_PY}: no pending-size limit"
    assert isinstance(client._flush_queue, asyncio.Queue), f"{NATS_PY}: _flush_queue"
    flush = inspect.signature(client._flush_pending).parameters
    assert "force_flush" in flush, f"{NATS_PY}: Client._flush_pending(force_flush=...) is gone"
    assert {"out_msgs", "out_bytes"} <= set(client.stats), f"{NATS_PY}: Client.stats keys"


async def test_a_frame_in_the_write_buffer_is_published_when_the_flusher_wakes(
    client: Client, nats_server: NatsServer
) -> None:
    """What ``NatsPublisher._hand_over`` does, step by step, reaches a subscriber."""
    reader = await nats.connect(nats_server.url)
    try:
        subscription = await reader.subscribe("pins.frames")
        await reader.flush()
        frame = b"PUB pins.frames 5\r\nhello\r\n"
        client._pending.append(frame)
        client._pending_data_size += len(frame)
        client._flush_queue.put_nowait(asyncio.get_running_loop().create_future())
        message = await subscription.next_msg(timeout=5)
        assert message.data == b"hello", f"{NATS_PY}: a frame in _pending was not sent"
        await client._flush_pending(force_flush=True)
        assert client._pending == [], f"{NATS_PY}: _flush_pending left frames in _pending"
        assert client._pending_data_size == 0, f"{NATS_PY}: _pending_data_size not reset"
    finally:
        await reader.close()


def loaded_config() -> uvicorn.Config:
    config = uvicorn.Config(Starlette(), lifespan="off", loop="none", log_config=None)
    config.load()
    return config


async def test_uvicorn_h11_protocol_has_what_the_bounded_protocol_uses() -> None:
    protocol = H11Protocol(config=loaded_config(), server_state=ServerState(), app_state={})
    set_on_connection = inspect.getsource(H11Protocol.connection_made)
    for name in UVICORN_PROTOCOL_USES:
        found = hasattr(protocol, name) or f"self.{name} = " in set_on_connection
        assert found, f"{UVICORN} has no H11Protocol.{name} (http/server.py uses it)"
    assert isinstance(protocol.connections, set), f"{UVICORN}: H11Protocol.connections"
    assert protocol.connections is protocol.server_state.connections, (
        f"{UVICORN}: H11Protocol.connections is no longer the server's set"
    )


async def test_the_bounded_protocol_shadows_nothing_of_uvicorn() -> None:
    protocol = H11Protocol(config=loaded_config(), server_state=ServerState(), app_state={})
    taken = [name for name in PROTOCOL_ADDS if hasattr(H11Protocol, name) or name in vars(protocol)]
    assert taken == [], f"{UVICORN}'s H11Protocol now has {taken}: rename ours"


def test_uvicorn_server_has_what_the_embedded_server_uses() -> None:
    server = uvicorn.Server(loaded_config())
    startup = inspect.getsource(uvicorn.Server.startup)
    for name in UVICORN_SERVER_USES:
        found = hasattr(server, name) or f"self.{name}" in startup
        assert found, f"{UVICORN} has no Server.{name} (http/server.py uses it)"
    assert "sockets" in inspect.signature(uvicorn.Server.serve).parameters, (
        f"{UVICORN}: Server.serve(sockets=...) is gone"
    )
    for name in UVICORN_SERVER_OVERRIDES:
        assert callable(getattr(uvicorn.Server, name, None)), (
            f"{UVICORN} has no Server.{name}: http/server.py's override would do nothing"
        )
    assert "self.capture_signals()" in inspect.getsource(uvicorn.Server.serve), (
        f"{UVICORN}: Server.serve no longer calls capture_signals (the signals would be its)"
    )
    assert "http_protocol_class(" in startup, (
        f"{UVICORN}: Server.startup no longer makes protocols from the configured class"
    )


async def test_the_firestore_client_keeps_its_gapic_client_where_it_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An emulator address that nothing answers: the channel is made, never used.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    client = AsyncClient(project="pins")
    assert hasattr(client, "_firestore_api_internal"), (
        f"{FIRESTORE} has no AsyncClient._firestore_api_internal (the provider closes it)"
    )
    assert client._firestore_api_internal is None, f"{FIRESTORE}: the GAPIC client is not lazy"
    api = client._firestore_api  # made on first use, as by the provider's first request
    assert client._firestore_api_internal is api, (
        f"{FIRESTORE}: the GAPIC client is no longer kept in _firestore_api_internal"
    )
    assert callable(getattr(api.transport, "close", None)), f"{FIRESTORE}: no transport.close"
    closed = api.transport.close()
    if inspect.isawaitable(closed):  # the provider takes either
        await closed
