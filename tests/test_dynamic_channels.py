"""Channels added and removed at runtime: the admin route, SIGHUP and the channels file."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import ConfigError, Settings, channel_list, read_channels_file
from ingress_egress.simulator import ChatSimulator
from ingress_egress.sources.irc.channels_doc import ChannelsDocumentError, channels_from_document
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    firestore_emulator_fixture,
    firestore_env_fixture,
)
from tests.support.processes import free_port
from tests.support.service import eventually, running, settings_for

pytestmark = pytest.mark.timeout(120)
TOKEN = "admin_canary_0123456789abcdef"
BASE = Settings.defaults(message_bus_driver="memory", irc_connect_interval_ms=20)


def admin_client(port: int, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5)


async def test_admin_routes_are_disabled_without_a_token() -> None:
    async with ChatSimulator(count=0) as sim, running(settings_for(BASE, sim.port, ("one",))) as s:
        async with admin_client(s.http.port, token="anything") as client:
            for response in (
                await client.get("/_admin/channels"),
                await client.post("/_admin/channels", json={"add": ["two"]}),
            ):
                assert response.status_code == 403
                assert response.json() == {"status": "disabled"}
        assert s.state.reading == ("one",)


async def test_admin_route_adds_and_removes_channels_without_a_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with ChatSimulator(count=0) as sim:
        settings = settings_for(
            BASE, sim.port, ("one", "two"), admin_token=TOKEN, irc_channels_per_connection=2
        )
        async with running(settings, publisher=MemoryPublisher()) as s:
            await eventually(lambda: s.state.joined == {"one", "two"}, 10, "initial joins")
            port = s.http.port
            async with admin_client(port, token=None) as anonymous:
                assert (await anonymous.get("/_admin/channels")).status_code == 401
            async with admin_client(port, token="wrong") as wrong:
                response = await wrong.post("/_admin/channels", json={"add": ["x"]})
                assert response.status_code == 401
            async with admin_client(port) as client:
                listing = (await client.get("/_admin/channels")).json()
                assert listing == {
                    "wanted": ["one", "two"],
                    "joined": ["one", "two"],
                    "pending": [],
                    "failed": {},
                }
                bad = await client.post("/_admin/channels", json={"add": ["no spaces allowed"]})
                assert bad.status_code == 400 and "not a Twitch channel login" in bad.text
                assert (await client.post("/_admin/channels", content=b"{")).status_code == 400
                assert (await client.post("/_admin/channels", json=["x"])).status_code == 400

                response = await client.post(
                    "/_admin/channels", json={"add": ["#Three", "four", "one"], "remove": ["two"]}
                )
                assert response.status_code == 200
                assert response.json() == {
                    "added": ["three", "four"],
                    "removed": ["two"],
                    "wanted": ["one", "three", "four"],
                }
                await eventually(
                    lambda: s.state.joined == {"one", "three", "four"}, 10, "joined at runtime"
                )
                assert ("two" in [c for _, c in sim.parts]) and s.state.reconnects == 0
                # "one" had room for one more channel on its connection; "four" needed a new one.
                debug = (await client.get("/_debug/twitch")).json()
                assert sorted(c["channels"] for c in debug["connections"]) == [1, 2]
                assert (await client.get("/readyz")).status_code == 200
            sent_joins = [c for _, c in sim.joins]
            assert sent_joins.count("one") == 1  # already wanted: not joined twice
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_channels_file_is_read_and_errors_name_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "channels.txt"
    path.write_text("# the channels we read\nAlpha\n#beta, gamma\n\n")
    assert read_channels_file(str(path)) == ("alpha", "beta", "gamma")
    env = {"TWITCH_CHANNELS": "ignored", "TWITCH_CHANNELS_FILE": str(path)}
    assert Settings.from_env(env).twitch.channels == ("alpha", "beta", "gamma")
    assert channel_list({"TWITCH_CHANNELS": "x,y"}) == ("x", "y")
    path.write_text("ok\nnot a login!\n")
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert str(error.value).startswith("configuration error: TWITCH_CHANNELS_FILE:")
    with pytest.raises(ConfigError, match="TWITCH_CHANNELS_FILE: cannot read"):
        read_channels_file(str(tmp_path / "missing.txt"))


def test_admin_token_is_a_secret() -> None:
    settings = Settings.from_env({"ADMIN_TOKEN": TOKEN})
    assert settings.http.admin_token == TOKEN
    assert TOKEN not in repr(settings)
    assert settings.replace(admin_token="").http.admin_token == ""


async def test_sighup_rereads_the_channels_file(tmp_path: Path) -> None:
    channels_file = tmp_path / "channels.txt"
    channels_file.write_text("alpha\nbeta\n")
    async with ChatSimulator(count=0) as sim:
        port = free_port()
        env = {
            **os.environ,
            "MESSAGE_BUS_DRIVER": "stdout",
            "TWITCH_CHANNELS_FILE": str(channels_file),
            "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim.port}",
            "PORT": str(port),
            "HOST": "127.0.0.1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingress_egress", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def joined() -> list[str]:
                    try:
                        return (await client.get("/_debug/twitch")).json()["joinedChannels"]
                    except httpx.HTTPError:
                        return []

                async def wait_joined(expected: list[str]) -> None:
                    got: list[str] = []

                    async def done() -> bool:
                        got[:] = await joined()
                        return got == expected

                    try:
                        await eventually(done, 20, f"joined {expected}", interval=0.05)
                    except AssertionError:
                        raise AssertionError(f"joined {got}, want {expected}") from None

                await wait_joined(["alpha", "beta"])
                channels_file.write_text("beta\ngamma\n")
                proc.send_signal(signal.SIGHUP)
                await wait_joined(["beta", "gamma"])
                assert [c for _, c in sim.parts] == ["alpha"]
                # A broken file on SIGHUP keeps the current list and says why.
                channels_file.write_text("beta\nnot valid!\n")
                proc.send_signal(signal.SIGHUP)
                debug: dict = {}

                async def reload_failed() -> bool:
                    debug.update((await client.get("/_debug/twitch")).json())
                    error = debug["lastError"]
                    return bool(error) and error["code"] == "reload_failed"

                await eventually(reload_failed, 10, "reload_failed reported", interval=0.05)
                assert "TWITCH_CHANNELS_FILE" in debug["lastError"]["message"]
                assert debug["joinedChannels"] == ["beta", "gamma"]
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"channel list reloaded" in err


@pytest.mark.emulator
async def test_channels_follow_a_firestore_document(firestore_env: FirestoreEmulator) -> None:
    db = firestore_env.client()
    doc = db.document("ingress_config/channels")
    await doc.set({"channels": ["#One", "two"]})
    async with ChatSimulator(count=0) as sim:
        settings = settings_for(
            BASE,
            sim.port,
            ("zero",),
            google_cloud_project=firestore_env.project,
            twitch_channels_firestore_doc="ingress_config/channels",
            twitch_channels_firestore_poll_ms=100,
        )
        async with running(settings, publisher=MemoryPublisher()) as s:
            await eventually(lambda: s.state.joined == {"one", "two"}, 20, "document's list")
            assert s.state.reading == ("one", "two")
            assert [c for _, c in sim.parts] == ["zero"]

            await doc.set({"channels": ["two", "three"]})
            await eventually(lambda: s.state.joined == {"two", "three"}, 20, "document change")

            # A broken document is reported once and changes nothing.
            await doc.set({"channels": ["two", "not a login"]})
            await eventually(
                lambda: any(e["code"] == "channels_doc_invalid" for e in s.errors.entries),
                20,
                "invalid document reported",
            )
            channels_doc = s.channels_doc
            assert channels_doc is not None
            for _ in range(3):  # several more polls of the same broken document
                await channels_doc.poll_once()
            codes = [e["code"] for e in s.errors.entries]
            assert codes.count("channels_doc_invalid") == 1
            assert s.state.reading == ("two", "three")
            assert s.state.reconnects == 0
    assert [c for _, c in sim.joins].count("two") == 1  # never rejoined


def test_channels_document_shape() -> None:
    assert channels_from_document({"channels": ["#A", "b", "a"]}) == ("a", "b")
    for bad in (None, {}, {"channels": "a,b"}, {"channels": [1]}):
        with pytest.raises(ChannelsDocumentError):
            channels_from_document(bad)
    with pytest.raises(ConfigError, match="TWITCH_CHANNELS_FIRESTORE_DOC"):
        Settings.from_env({"TWITCH_CHANNELS_FIRESTORE_DOC": "just_a_collection"})
    env = {"TWITCH_CHANNELS_FIRESTORE_DOC": "/cfg/channels/"}
    assert Settings.from_env(env).twitch.channels_firestore_doc == "cfg/channels"
