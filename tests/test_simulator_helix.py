"""The simulator's Helix mock and control endpoint, over real HTTP on 127.0.0.1.

Helix sends are judged by the same rules as IRC PRIVMSGs and relayed to the IRC readers of
the channel; the control endpoint is driven as a test would drive a simulator subprocess.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ingress_egress.protocol import parse_line
from ingress_egress.simulator import BotAccount, ChatSimulator, room_id_for
from tests.support.irc_client import IrcClient, banner_url, start_simulator_cli

pytestmark = pytest.mark.timeout(60)

BOT = BotAccount("bot", "555", "tok")
READER_ONLY = BotAccount("reader", "777", "rtok", scopes=("chat:read",))
CLIENT_ID = "test-client"
AUTH = {"Authorization": "Bearer tok", "Client-Id": CLIENT_ID}


@pytest.fixture
async def sim() -> AsyncIterator[ChatSimulator]:
    simulator = ChatSimulator(
        count=0,
        bots=[BOT, READER_ONLY],
        helix_port=0,
        control_port=0,
        helix_client_id=CLIENT_ID,
        helix_points_per_minute=30,
        clock=lambda: 1000.0,  # the referee's time stands still: no limit lapses mid-test
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def helix(sim: ChatSimulator) -> AsyncIterator[httpx.AsyncClient]:
    assert sim.helix_url is not None
    async with httpx.AsyncClient(base_url=sim.helix_url) as client:
        yield client


def message(text: str = "hello", channel: str = "chan") -> dict[str, Any]:
    return {"broadcaster_id": room_id_for(channel), "sender_id": BOT.user_id, "message": text}


async def send(helix: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await helix.post("/helix/chat/messages", json=body, headers=AUTH | headers)


async def test_validate_answers_the_tokens_identity(helix: httpx.AsyncClient) -> None:
    ok = await helix.get("/oauth2/validate", headers={"Authorization": "OAuth tok"})
    assert ok.status_code == 200
    body = ok.json()
    assert (body["login"], body["user_id"], body["client_id"]) == ("bot", "555", CLIENT_ID)
    assert "user:write:chat" in body["scopes"] and body["expires_in"] > 0
    bad = await helix.get("/oauth2/validate", headers={"Authorization": "OAuth nope"})
    assert bad.status_code == 401
    assert bad.json() == {"status": 401, "message": "invalid access token"}


async def test_a_taken_helix_message_reaches_the_irc_readers_with_its_id(
    sim: ChatSimulator, helix: httpx.AsyncClient
) -> None:
    viewer = await IrcClient.open(sim.port)
    await viewer.login()
    await viewer.join("chan")
    response = await send(helix, message("hi from helix") | {"reply_parent_message_id": "p-1"})
    assert response.status_code == 200
    (result,) = response.json()["data"]
    assert result["is_sent"] is True and result["drop_reason"] is None
    (line,) = await viewer.barrier()
    relayed = parse_line(line)
    assert relayed.params == ["#chan", "hi from helix"]
    assert relayed.tags["id"] == result["message_id"]
    assert relayed.tags["user-id"] == "555" and relayed.tags["reply-parent-msg-id"] == "p-1"
    record = sim.bot_sends[-1]
    assert (record.via, record.id, record.outcome) == ("helix", result["message_id"], "accepted")
    assert response.headers["Ratelimit-Limit"] == "30"
    viewer.close()


async def test_helix_drops_carry_the_same_reasons_as_irc(
    sim: ChatSimulator, helix: httpx.AsyncClient
) -> None:
    sim.set_channel("chan", banned=True)
    (result,) = (await send(helix, message())).json()["data"]
    assert result["is_sent"] is False and result["message_id"] == ""
    assert result["drop_reason"] == {
        "code": "msg_banned",
        "message": "You are permanently banned from talking in chan.",
    }
    sim.set_channel("chan", banned=False)
    assert (await send(helix, message("once"))).json()["data"][0]["is_sent"]
    (dup,) = (await send(helix, message("next"))).json()["data"]
    assert dup["drop_reason"]["code"] == "msg_ratelimit"  # the same rules engine as IRC


@pytest.mark.parametrize(
    ("body", "headers", "status", "text"),
    [
        (message(), {"Authorization": "Bearer nope"}, 401, "Invalid OAuth token"),
        (message(), {"Client-Id": "someone-else"}, 401, "Client ID and OAuth token do not match"),
        (message(), {"Authorization": "Bearer rtok"}, 401, "Missing scope: user:write:chat"),
        (
            message() | {"sender_id": "1"},
            {},
            401,
            "The sender_id must match the user ID in the access token.",
        ),
        (
            {"sender_id": "555", "message": "x"},
            {},
            400,
            'Missing required parameter "broadcaster_id"',
        ),
        (message(""), {}, 400, 'Missing required parameter "message"'),
        (message() | {"broadcaster_id": "1"}, {}, 400, "The broadcaster_id is not valid."),
        (message("x" * 501), {}, 422, "The message is too large."),
    ],
)
async def test_bad_requests_get_twitchs_errors(
    sim: ChatSimulator,
    helix: httpx.AsyncClient,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    text: str,
) -> None:
    sim.set_channel("chan")  # a channel the simulator knows, so its id resolves
    response = await send(helix, body, **headers)
    assert response.status_code == status
    assert response.json()["message"] == text and response.json()["status"] == status
    assert sim.bot_sends == []


async def test_an_empty_point_bucket_is_a_429_with_the_reset_time(
    sim: ChatSimulator, helix: httpx.AsyncClient
) -> None:
    sim.set_channel("chan", role="moderator")
    assert sim.helix is not None
    now = time.time()
    sim.helix.clock = lambda: now  # no point refills while the test runs
    statuses = [(await send(helix, message(f"m{i}"))).status_code for i in range(30)]
    assert statuses == [200] * 30
    limited = await send(helix, message("over"))
    assert limited.status_code == 429
    assert limited.headers["Ratelimit-Limit"] == "30"
    assert limited.headers["Ratelimit-Remaining"] == "0"
    assert int(limited.headers["Ratelimit-Reset"]) == int(now + 60) + 1  # full again
    assert len(sim.bot_sends) == 30


async def test_an_injected_500_has_an_empty_body_and_the_next_call_works(
    sim: ChatSimulator, helix: httpx.AsyncClient
) -> None:
    sim.set_channel("chan")
    assert sim.helix is not None
    sim.helix.fail_next(500)
    failed = await send(helix, message())
    assert (failed.status_code, failed.content) == (500, b"")
    assert (await send(helix, message())).status_code == 200


async def test_users_moderated_channels_vips_and_chat_settings(
    sim: ChatSimulator, helix: httpx.AsyncClient
) -> None:
    sim.set_channel("modded", role="moderator")
    sim.set_channel("vipped", role="vip", slow=30, followers_only=10)
    users = (await helix.get("/helix/users?login=somechan&login=bot", headers=AUTH)).json()
    assert [(u["login"], u["id"]) for u in users["data"]] == [
        ("somechan", room_id_for("somechan")),
        ("bot", "555"),
    ]
    moderated = await helix.get("/helix/moderation/channels?user_id=555", headers=AUTH)
    assert moderated.json()["data"] == [
        {
            "broadcaster_id": room_id_for("modded"),
            "broadcaster_login": "modded",
            "broadcaster_name": "modded",
        }
    ]
    vips = await helix.get(
        f"/helix/channels/vips?broadcaster_id={room_id_for('vipped')}&user_id=555", headers=AUTH
    )
    assert [v["user_id"] for v in vips.json()["data"]] == ["555"]
    settings = await helix.get(
        f"/helix/chat/settings?broadcaster_id={room_id_for('vipped')}", headers=AUTH
    )
    (data,) = settings.json()["data"]
    assert (data["slow_mode"], data["slow_mode_wait_time"]) == (True, 30)
    assert (data["follower_mode"], data["follower_mode_duration"]) == (True, 10)
    assert data["subscriber_mode"] is False and data["emote_mode"] is False


async def test_the_control_endpoint_changes_settings_and_shows_the_record(
    sim: ChatSimulator,
) -> None:
    assert sim.control_url is not None
    async with httpx.AsyncClient(base_url=sim.control_url) as control:
        changed = await control.put("/channels/chan", json={"role": "vip", "subs_only": True})
        assert changed.status_code == 200 and changed.json()["role"] == "vip"
        assert sim.channel_settings("chan").subs_only is True
        bad = await control.put("/channels/chan", json={"role": "king"})
        assert bad.status_code == 400 and "role" in bad.json()["error"]
        await control.put("/channels/chan", json={"role": "none"})
        await sim.send_as_bot("bot", "chan", "hi")
        record = (await control.get("/record")).json()
        assert [(s["channel"], s["outcome"]) for s in record["sends"]] == [("chan", "msg_subsonly")]
        assert record["breaches"] == record["commands"] == record["injections"] == []
        bots = (await control.get("/bots")).json()
        assert {"login": "bot", "user_id": "555", "verified": False} in bots
        assert "tok" not in str(bots)  # tokens are never shown
        assert (await control.delete("/record")).status_code == 204
        assert (await control.get("/record")).json()["sends"] == []


def test_a_simulator_subprocess_is_driven_through_its_control_endpoint() -> None:
    proc, banner, port = start_simulator_cli(
        "--count", "0", "--bot", "bot:555:tok", "--channel", "chan:role=moderator",
        "--control-port", "0", "--helix-port", "0",
    )  # fmt: skip
    try:
        control = banner_url(banner, "control")
        helix = banner_url(banner, "helix")
        assert httpx.get(f"{control}/channels/chan").json()["role"] == "moderator"
        assert httpx.put(f"{control}/channels/chan", json={"banned": True}).status_code == 200
        notice = asyncio.run(_bot_says(port, "chan", "hi"))
        assert notice.startswith("@msg-id=msg_banned :tmi.twitch.tv NOTICE #chan :")
        record = httpx.get(f"{control}/record").json()
        assert [(s["text"], s["outcome"], s["via"]) for s in record["sends"]] == [
            ("hi", "msg_banned", "irc")
        ]
        assert httpx.post(f"{control}/helix/fail", json={"status": 503}).status_code == 204
        failed = httpx.get(
            f"{helix}/helix/users", headers={**AUTH, "Client-Id": "simulator-client-id"}
        )
        assert failed.status_code == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _bot_says(port: int, channel: str, text: str) -> str:
    client = await IrcClient.open(port)
    await client.login_bot("bot", "tok")
    await client.send(f"PRIVMSG #{channel} :{text}")
    (line,) = await client.barrier()
    client.close()
    return line


async def test_during_a_lockout_helix_says_sent_but_nothing_reaches_chat(
    sim: ChatSimulator, helix: httpx.AsyncClient
) -> None:
    assert sim.helix is not None
    now = time.time()
    sim.helix.clock = lambda: now  # no point refills while the test runs
    viewer = await IrcClient.open(sim.port)
    await viewer.login()
    await viewer.join("watched")
    for i in range(20):
        await sim.send_as_bot("bot", f"c{i}", "hi")
    (result,) = (await send(helix, message("lost", "watched"))).json()["data"]
    assert result["is_sent"] is True and result["message_id"]  # what Twitch answers, too
    assert await viewer.barrier() == []
    assert [(b.channel, b.limit) for b in sim.breaches] == [("watched", "window_20")]
    assert sim.bot_sends[-1].outcome == "ignored"
    assert sim.control_url is not None
    async with httpx.AsyncClient(base_url=sim.control_url) as control:
        lockouts = (await control.get("/record")).json()["lockouts"]
        assert list(lockouts) == ["bot"] and lockouts["bot"] > 0
        assert (await control.post("/lockout/clear", json={"login": "bot"})).status_code == 204
        assert (await control.get("/record")).json()["lockouts"] == {}
        assert (await control.post("/helix/exhaust", json={"login": "bot"})).status_code == 204
    assert (await send(helix, message("x", "watched"))).status_code == 429
    viewer.close()
