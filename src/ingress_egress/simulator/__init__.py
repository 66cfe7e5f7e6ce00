"""Local Twitch chat simulator: a TMI-compatible IRC server (TCP and WebSocket) for tests,
demos and benchmarks, which also takes a bot's messages (IRC and a Helix mock) and referees
them by Twitch's rules. See docs/simulator.md."""

from ingress_egress.simulator.bot_chat import Sent
from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.live import LiveMessage
from ingress_egress.simulator.rules import (
    BotAccount,
    Breach,
    ChannelSettings,
    ChatRules,
    CommandAttempt,
    Injection,
    SendRecord,
)
from ingress_egress.simulator.server import ChatSimulator
from ingress_egress.simulator.session import CAPABILITIES
from ingress_egress.simulator.traffic import EMOTES, TrafficGenerator, room_id_for, user_id_for

__all__ = [
    "CAPABILITIES",
    "EMOTES",
    "BotAccount",
    "Breach",
    "ChannelSettings",
    "ChatRules",
    "ChatSimulator",
    "CommandAttempt",
    "Faults",
    "Injection",
    "LiveMessage",
    "SendRecord",
    "Sent",
    "TrafficGenerator",
    "room_id_for",
    "user_id_for",
]
