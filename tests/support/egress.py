"""Egress test rig: the sender between a real nats-server and the simulator (real sockets).

The simulator's referee and the sender share one clock running ``RATE`` times faster than
real time (``ScaledClock``), so Twitch's 30 s windows pass in a fraction of a second while
every limit is judged exactly, by the same clock on both sides.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig

from ingress_egress.bus.egress_nats import NatsCommandSource
from ingress_egress.bus.egress_nats_results import NatsResultPublisher
from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.egress.helix_transport import HelixChatTransport
from ingress_egress.egress.irc_transport import IrcChatTransport
from ingress_egress.egress.ledger import Ledger
from ingress_egress.egress.ledger_nats import NatsLedger
from ingress_egress.egress.limits import SendLimiter
from ingress_egress.egress.result import iso_time
from ingress_egress.egress.sender import EgressSender, SenderSettings
from ingress_egress.egress.transport import ChatTransport, ScaledClock
from ingress_egress.protocol.endpoint import IrcEndpoint
from ingress_egress.retry import Backoff
from ingress_egress.simulator import BotAccount, ChatSimulator
from ingress_egress.sources.irc.transport import open_transport
from tests.support.waiting import eventually

PREFIX = "test."
COMMANDS = f"{PREFIX}internal.egress.v1"
FINALIZER = f"{PREFIX}internal.finalizer.v1"
DLQ = f"{PREFIX}internal.egress.dlq.v1"
FINALIZER_STREAM = "FINALIZER"
BOT = BotAccount("egressbot", "900001", "egress-token")
RATE = 20.0  # virtual seconds per real second


def rig_clock() -> ScaledClock:
    """The rig's clock, started a day in the past: running 20x, it stays behind the real
    one for over an hour, so times the NATS server stamps (a ledger read from a start time)
    are never in its future."""
    return ScaledClock(RATE, start=time.time() - 86_400.0)


def command(
    channel: str,
    text: str,
    clock: ScaledClock,
    *,
    command_id: str | None = None,
    reply_to: str | None = None,
    is_action: bool = False,
    channel_id: str | None = None,
    age_s: float = 0.0,
) -> dict[str, Any]:
    target: dict[str, Any] = {"platform": "twitch", "channel": channel}
    if channel_id is not None:
        target["channelId"] = channel_id
    payload: dict[str, Any] = {"text": text, "isAction": is_action}
    if reply_to is not None:
        payload["replyTo"] = reply_to
    return {
        "v": "1",
        "id": command_id or str(uuid.uuid4()),
        "correlationId": str(uuid.uuid4()),
        "traceId": uuid.uuid4().hex,
        "timestamp": iso_time(clock() - age_s),
        "type": "egress.chat.message.v1",
        "target": target,
        "payload": payload,
        "finalizationDestination": "internal.finalizer.v1",
    }


async def create_finalizer_stream(nc: Client) -> None:
    """As the platform's finalizer would."""
    await nc.jetstream().add_stream(StreamConfig(name=FINALIZER_STREAM, subjects=[FINALIZER]))


async def publish(nc: Client, *commands: dict[str, Any] | bytes) -> None:
    js = nc.jetstream()
    for body in commands:
        await js.publish(COMMANDS, body if isinstance(body, bytes) else orjson.dumps(body))


async def stored(nc: Client, stream: str, subject: str) -> list[dict[str, Any]]:
    """Every record ``stream`` holds on ``subject``, decoded, in order."""
    js = nc.jetstream()
    info = await js.stream_info(stream, subjects_filter=subject)
    total = (info.state.subjects or {}).get(subject, 0)
    if not total:
        return []
    sub = await js.pull_subscribe(
        subject, stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    out: list[dict[str, Any]] = []
    try:
        while len(out) < total:
            for msg in await sub.fetch(min(500, total - len(out)), timeout=5):
                out.append(orjson.loads(msg.data))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return out


async def results(nc: Client) -> list[dict[str, Any]]:
    return await stored(nc, FINALIZER_STREAM, FINALIZER)


def per_command(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(record["envelopeId"] for record in records)


@dataclass
class Rig:
    sim: ChatSimulator
    nc: Client
    sender: EgressSender
    clock: ScaledClock
    channels: ChannelStates
    limiter: SendLimiter
    extra: dict[str, Any] = field(default_factory=dict)

    def accepted(self, channel: str | None = None) -> list[Any]:
        return [
            s
            for s in self.sim.bot_sends
            if s.outcome == "accepted" and (channel is None or s.channel == channel)
        ]


TransportFactory = Callable[[ChatSimulator, ChannelStates, ScaledClock], ChatTransport]


def irc_transport(
    sim: ChatSimulator, channels: ChannelStates, clock: ScaledClock
) -> IrcChatTransport:
    async def token() -> str:
        return BOT.token

    return IrcChatTransport(
        IrcEndpoint("irc", "127.0.0.1", sim.port),
        BOT.login,
        token,
        channels,
        open_transport,
        clock=clock.sender_clock(),
        answer_timeout_s=5.0,
        join_timeout_s=5.0,
    )


@asynccontextmanager
async def egress_rig(
    nats_url: str,
    *,
    settings: SenderSettings | None = None,
    finalizer: bool = True,
    transport: TransportFactory | None = None,
    ledger: Ledger | None = None,
    sim_options: dict[str, Any] | None = None,
    ack_wait_s: float = 30.0,
    sim: ChatSimulator | None = None,
    clock: ScaledClock | None = None,
) -> AsyncIterator[Rig]:
    """The simulator, the sender (NATS source, results, KV ledger), an admin connection."""
    own_sim = sim is None
    clock = clock or rig_clock()
    if sim is None:
        sim = ChatSimulator(
            count=0, bots=[BOT], clock=clock.monotonic, lockout_s=3600.0, **(sim_options or {})
        )
        await sim.start()
    nc = await nats.connect(nats_url)
    if finalizer:
        with contextlib.suppress(nats.js.errors.BadRequestError):  # a second rig: exists
            await create_finalizer_stream(nc)
    channels = ChannelStates(BOT.login)
    limiter = SendLimiter()
    sender = EgressSender(
        NatsCommandSource(nats_url, prefix=PREFIX, ack_wait_s=ack_wait_s),
        NatsResultPublisher(nats_url, prefix=PREFIX),
        (transport or irc_transport)(sim, channels, clock),
        ledger or NatsLedger(nats_url, "test-egress-ledger"),
        channels,
        limiter,
        settings or SenderSettings(bus_prefix=PREFIX, identity=BOT.login, max_age_s=100_000.0),
        clock=clock.sender_clock(),
    )
    try:
        await sender.start()
        yield Rig(sim, nc, sender, clock, channels, limiter)
    finally:
        await sender.stop()
        await nc.close()
        if own_sim:
            await sim.stop()


def helix_transport(
    sim: ChatSimulator, channels: ChannelStates, clock: ScaledClock
) -> HelixChatTransport:
    """Helix against the simulator's mock; its point bucket runs on the rig's clock."""
    assert sim.helix is not None and sim.helix_url is not None
    sim.helix.clock = clock
    refreshed: list[str] = []

    async def token() -> str:
        return BOT.token

    async def refresh() -> str:
        refreshed.append(BOT.token)
        return BOT.token

    transport = HelixChatTransport(
        f"{sim.helix_url}/helix",
        f"{sim.helix_url}/oauth2",
        sim.helix_client_id,
        token,
        channels,
        refresh_token=refresh,
        clock=clock.sender_clock(),
    )
    transport.backoff = Backoff(0.01, 0.05)
    return transport


async def all_answered(rig: Rig, ids: list[str], timeout: float = 120.0) -> list[dict]:
    wanted = set(ids)

    async def done() -> bool:
        return wanted <= set(per_command(await results(rig.nc)))

    await eventually(done, timeout=timeout, what=f"results for {len(ids)} commands")
    return await results(rig.nc)
