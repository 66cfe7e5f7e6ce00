"""The TwitchIO attributes the adapter overrides exist in the pinned version, and the small
pieces around them (endpoints, de-duplication, timestamps) behave."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
import twitchio
from twitchio import client as tio_client
from twitchio import http as tio_http
from twitchio.eventsub import websockets as tio_websockets

from ingress_egress.sources.eventsub import adapter
from ingress_egress.sources.eventsub.mapping import EventMapper, UnknownEvent, timestamp_ms


def test_the_pinned_version_is_installed() -> None:
    assert version("twitchio").startswith("3.3."), "pyproject pins twitchio==3.3.*"


@pytest.mark.parametrize(
    ("owner", "name"), adapter.PINNED_ATTRIBUTES, ids=lambda x: x if isinstance(x, str) else ""
)
def test_every_overridden_attribute_exists(owner: object, name: str) -> None:
    assert hasattr(owner, name), f"twitchio {twitchio.__version__} has no {owner}.{name}"


async def test_every_instance_attribute_used_exists() -> None:
    on_client, on_http = adapter.PINNED_INSTANCE_ATTRIBUTES
    client = adapter.ChatClient(
        client_id="cid",
        bot_id="1",
        handler=None,
        load_token=None,  # type: ignore[arg-type]
    )
    try:
        for name in on_client:
            assert hasattr(client, name), name
        for name in on_http:
            assert hasattr(client._http, name), name
    finally:
        await client.close(save_tokens=False)


def test_twitchio_reads_its_endpoints_where_the_adapter_writes_them() -> None:
    # The URL and the websocket class are looked up by these module-level names at call time.
    assert "WSS" in inspect.getsource(tio_websockets.Websocket.connect)
    assert "Websocket(" in inspect.getsource(twitchio.Client.subscribe_websocket)
    assert "ID_BASE" in inspect.getsource(tio_http.Route.build_url)
    assert "BASE" in inspect.getsource(tio_http.Route.build_url)


def test_configure_endpoints_points_twitchio_at_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tio_websockets, "WSS", tio_websockets.WSS)
    monkeypatch.setattr(tio_http.Route, "BASE", tio_http.Route.BASE)
    monkeypatch.setattr(tio_http.Route, "ID_BASE", tio_http.Route.ID_BASE)
    monkeypatch.setattr(tio_client, "Websocket", tio_client.Websocket)
    adapter.configure_endpoints(
        ws_url="ws://127.0.0.1:9/ws",
        helix_url="http://127.0.0.1:9/helix/",
        oauth_url="http://127.0.0.1:9/oauth2",
    )
    assert tio_websockets.WSS == "ws://127.0.0.1:9/ws"
    assert tio_http.Route("GET", "users", params={"login": "a"}).url == (
        "http://127.0.0.1:9/helix/users?login=a"
    )
    assert tio_http.Route("GET", "/oauth2/validate", use_id=True).url == (
        "http://127.0.0.1:9/oauth2/validate"
    )
    assert tio_client.Websocket is adapter.ChatWebsocket
    with pytest.raises(ValueError, match="oauth2"):
        adapter.configure_endpoints(ws_url="ws://x/ws", helix_url="http://x", oauth_url="http://x")


def test_timestamps_with_nanoseconds() -> None:
    assert timestamp_ms("2023-07-19T14:56:51.634234626Z") == 1689778611634
    assert timestamp_ms("2023-07-19T14:56:51Z") == 1689778611000
    assert timestamp_ms("not a time") is None
    assert timestamp_ms(None) is None


def test_an_unknown_event_type_is_refused_clearly() -> None:
    with pytest.raises(UnknownEvent, match=r"channel\.follow"):
        EventMapper().to_message("channel.follow", {"broadcaster_user_id": "1"}, None)


def test_remembered_texts_are_bounded() -> None:
    mapper = EventMapper(remember=2)
    room = {"broadcaster_user_id": "1", "broadcaster_user_login": "a"}
    for n in range(3):
        event = {**room, "message_id": f"m{n}", "message": {"text": f"t{n}", "fragments": []}}
        mapper.to_message("channel.chat.message", event, None)
    deleted = {**room, "message_id": "m0", "target_user_login": "x"}
    assert mapper.to_message("channel.chat.message_delete", deleted, None).text == ""
    deleted["message_id"] = "m2"
    assert mapper.to_message("channel.chat.message_delete", deleted, None).text == "t2"
