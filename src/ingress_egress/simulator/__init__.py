"""Local Twitch chat simulator: a TMI-compatible IRC server (TCP and WebSocket) for tests,
demos and benchmarks. See docs/simulator.md."""

from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.server import CAPABILITIES, ChatSimulator, LiveMessage
from ingress_egress.simulator.traffic import EMOTES, TrafficGenerator, room_id_for, user_id_for

__all__ = [
    "CAPABILITIES",
    "EMOTES",
    "ChatSimulator",
    "Faults",
    "LiveMessage",
    "TrafficGenerator",
    "room_id_for",
    "user_id_for",
]
