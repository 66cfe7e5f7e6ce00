"""Egress through real ``ingress-egress serve`` processes: the simulator (its bot account,
the Helix mock that validates the bot's token), the environment that makes ``serve`` send,
and checks of what the simulator relayed against the results on the bus.

The service runs on real time, so the simulator's referee does too (no scaled clock).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ingress_egress.egress.transport import ScaledClock
from ingress_egress.simulator import BotAccount, ChatSimulator
from ingress_egress.simulator.rules import SendRecord
from tests.support.cluster import MemberProcess
from tests.support.egress import BOT, PREFIX
from tests.support.waiting import eventually

VERIFIED_BOT = BotAccount(BOT.login, BOT.user_id, BOT.token, verified=True)
VIEWER = BotAccount("someviewer", "900002", "viewer-token")  # another user in chat
REAL_TIME = ScaledClock(1.0)  # command timestamps on the service's clock
INVISIBLE = "\u034f"  # what the service adds to neutralise a command or a repeat


async def egress_simulator(*, verified: bool = False) -> ChatSimulator:
    """No chat of its own; the bot (and a viewer) may log in; Helix mock for /validate."""
    sim = ChatSimulator(
        count=0,
        bots=[VERIFIED_BOT if verified else BOT, VIEWER],
        lockout_s=3600.0,
        helix_port=0,
    )
    await sim.start()
    return sim


def egress_env(sim: ChatSimulator, read: Iterable[str] = ("quietroom",), **extra: str) -> dict:
    """What makes ``serve`` send as the bot over IRC (the token has user:write:chat but no
    client id is set, so ``auto`` is IRC) with commands from ``${BUS_PREFIX}``."""
    assert sim.helix_url is not None
    return {
        "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim.port}",
        "TWITCH_CHANNELS": ",".join(read),
        "TWITCH_BOT_USERNAME": BOT.login,
        "TWITCH_OAUTH_TOKEN": BOT.token,
        "TWITCH_OAUTH_URL": f"{sim.helix_url}/oauth2",
        "TWITCH_HELIX_URL": f"{sim.helix_url}/helix",
        "BUS_PREFIX": PREFIX,
        "IRC_RECONNECT_INITIAL_MS": "100",
        "IRC_RECONNECT_MAX_MS": "1000",
        "EGRESS_MAX_AGE_MS": "600000",  # bursts here take minutes; expiry is not tested
        **extra,
    }


def nats_env(nats_url: str) -> dict[str, str]:
    return {"MESSAGE_BUS_DRIVER": "nats", "NATS_URL": nats_url}


async def egress_block(member: MemberProcess) -> dict[str, Any]:
    debug = await member.debug()
    return {} if debug is None else debug.get("egress") or {}


async def until_sending(member: MemberProcess, timeout: float = 30.0) -> dict[str, Any]:
    """The egress block once the member sends (holds the lease, logged in as the bot)."""
    seen: list[dict[str, Any]] = [{}]

    async def sending() -> bool:
        assert member.proc is not None and member.proc.poll() is None, member.log_tail()
        seen[0] = await egress_block(member)
        transport = seen[0].get("transport") or {}
        return bool(seen[0].get("sending")) and bool(transport.get("connected", True))

    try:
        await eventually(sending, timeout, f"{member.name} sending", interval=0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}: {seen[0]}\n{member.log_tail()}") from None
    return seen[0]


def normalized(text: str) -> str:
    """A text as the service may legitimately change it: control characters to spaces,
    the invisible character it adds, whitespace (where long texts are split)."""
    return " ".join(text.replace(INVISIBLE, "").split())


def accepted(sim: ChatSimulator) -> list[SendRecord]:
    return [s for s in sim.bot_sends if s.outcome == "accepted"]


def texts_sent_twice(sim: ChatSimulator) -> dict[str, int]:
    counts = Counter(normalized(s.text) for s in accepted(sim))
    return {text: n for text, n in counts.items() if n > 1}


def check_sent_ids(
    sim: ChatSimulator, commands: list[dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    """Every ``sent`` result names the messages the simulator relayed for that very command,
    in order; every relayed message belongs to exactly one result."""
    relayed = {s.id: (n, s) for n, s in enumerate(accepted(sim))}
    by_id = {c["id"]: c for c in commands}
    claimed: Counter[str] = Counter()
    for record in records:
        ids = record["twitchMessageIds"]
        claimed.update(ids)
        if record["status"] != "sent":
            continue
        command = by_id[record["envelopeId"]]
        assert ids, record
        assert all(i in relayed for i in ids), f"ids the simulator never relayed: {record}"
        order = [relayed[i][0] for i in ids]
        assert order == sorted(order), f"parts out of order: {record}"
        parts = [relayed[i][1] for i in ids]
        assert {p.channel for p in parts} == {command["target"]["channel"]}, record
        joined = normalized(" ".join(p.text for p in parts))
        assert joined == normalized(command["payload"]["text"]), (record, joined)
    assert not [i for i, n in claimed.items() if n > 1], "one Twitch id in two results"


async def store_bot_token(client: Any, collection: str = "twitch_tokens") -> None:
    """The bot's grant in Firestore, as the operator stores it (tokens come from Firestore
    whenever GOOGLE_CLOUD_PROJECT is set)."""
    await (
        client.collection(collection)
        .document(BOT.login)
        .set(
            {
                "userId": BOT.user_id,
                "login": BOT.login,
                "accessToken": BOT.token,
                "refreshToken": "egress-refresh-token",
                "expiresAt": "2099-01-01T00:00:00Z",
                "scopes": list(BOT.scopes),
            }
        )
    )
