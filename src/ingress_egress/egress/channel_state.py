"""What the sender learns about each channel it sends to, never what it is told to assume.

* **Privileged** (broadcaster, moderator or VIP: the higher limits, no per-channel spacing):
  from the latest USERSTATE for that channel on the bot's own connection (Twitch sends one
  after JOIN and after each PRIVMSG; ``mod=1`` or a ``broadcaster``/``moderator``/``vip``
  badge), or from a Helix refresh of the channels where the bot is privileged. The latest
  observation wins: a USERSTATE without the badges revokes the role for the very next
  message. A channel nobody has said anything about is not privileged; the bot's own
  channel always is.
* **Slow mode** from ROOMSTATE's ``slow`` (a partial ROOMSTATE leaves the rest unchanged),
  and the room id (Helix needs it as ``broadcaster_id``).
* **The last message** sent (text and time: repeats), the last send, the last result.

Only the bot's connection may feed USERSTATE here: an anonymous reader's describes
``justinfan``, not the bot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ingress_egress.egress.repeats import LastSent
from ingress_egress.twitch.messages import Roomstate, Userstate

PRIVILEGED_BADGES = ("broadcaster", "moderator", "vip")
PrivilegeSource = Literal["userstate", "helix", "own channel"]


@dataclass(slots=True)
class ChannelView:
    """One channel's learned state (read it; change it only through ``ChannelStates``)."""

    privileged: bool = False
    privilege_source: PrivilegeSource | None = None
    privilege_at: float = float("-inf")
    slow_s: int = 0
    room_id: str | None = None
    last_sent: LastSent | None = None
    last_result: str | None = None
    last_reason: str | None = None


class ChannelStates:
    """Every channel's ``ChannelView``, changed only through these methods."""

    def __init__(self, bot_login: str) -> None:
        self.bot_login = bot_login
        self._channels: dict[str, ChannelView] = {}
        self._helix_privileged: frozenset[str] = frozenset()
        self._helix_at = float("-inf")

    def view(self, channel: str) -> ChannelView:
        """The channel's state (a copy: changing it changes nothing here)."""
        state = self._channels.get(channel)
        if state is None:
            state = self._fresh(channel)
        return dataclasses.replace(state)

    def is_privileged(self, channel: str) -> bool:
        return self.view(channel).privileged

    def _state(self, channel: str) -> ChannelView:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = self._fresh(channel)
        return state

    def _fresh(self, channel: str) -> ChannelView:
        if channel == self.bot_login:
            return ChannelView(privileged=True, privilege_source="own channel")
        if self._helix_at > float("-inf"):
            held = channel in self._helix_privileged
            return ChannelView(
                privileged=held, privilege_source="helix", privilege_at=self._helix_at
            )
        return ChannelView()

    # -- what Twitch says -----------------------------------------------------------

    def learn_userstate(self, userstate: Userstate, at: float) -> None:
        """The bot's USERSTATE for a channel (GLOBALUSERSTATE is ignored)."""
        if userstate.is_global or not userstate.channel:
            return
        held = userstate.irc.tags.get("mod") == "1" or any(
            userstate.chatter.has_badge(badge) for badge in PRIVILEGED_BADGES
        )
        self._set_privilege(userstate.channel, held, "userstate", at)

    def learn_privileged_channels(self, channels: Iterable[str], at: float) -> None:
        """A Helix refresh: every channel where the bot is moderator or VIP, complete."""
        self._helix_privileged = frozenset(channels)
        self._helix_at = at
        for channel in self._channels:
            self._set_privilege(channel, channel in self._helix_privileged, "helix", at)

    def _set_privilege(self, channel: str, held: bool, source: PrivilegeSource, at: float) -> None:
        state = self._state(channel)
        if channel == self.bot_login or at < state.privilege_at:
            return  # the own channel stays privileged; an older observation loses
        state.privileged = held
        state.privilege_source = source
        state.privilege_at = at

    def learn_roomstate(self, roomstate: Roomstate) -> None:
        """A channel's ROOMSTATE, full or partial: slow mode and the room id."""
        state = self._state(roomstate.channel)
        slow = roomstate.settings.get("slowSeconds")
        if isinstance(slow, int):
            state.slow_s = max(0, slow)
        if roomstate.room_id:
            state.room_id = roomstate.room_id

    def learn_slow_mode(self, channel: str, slow_s: int) -> None:
        """Slow mode from elsewhere (Helix Get Chat Settings: ``slow_mode_wait_time``)."""
        self._state(channel).slow_s = max(0, slow_s)

    # -- what the bot did -------------------------------------------------------------

    def note_sent(self, channel: str, text: str, at: float) -> None:
        self._state(channel).last_sent = LastSent(text, at)

    def note_result(self, channel: str, status: str, reason: str | None) -> None:
        state = self._state(channel)
        state.last_result = status
        state.last_reason = reason

    def snapshot(self, iso: Callable[[float], Any] | None = None) -> dict[str, dict[str, Any]]:
        """Per channel, for ``/_debug/twitch`` (``iso``: epoch -> text; else epoch numbers)."""
        show: Callable[[float], Any] = iso or float
        return {
            channel: {
                "privileged": state.privileged,
                "privilegeSource": state.privilege_source,
                "slowSeconds": state.slow_s,
                "roomId": state.room_id,
                "lastSendAt": show(state.last_sent.at) if state.last_sent else None,
                "lastResult": state.last_result,
                "lastReason": state.last_reason,
            }
            for channel, state in sorted(self._channels.items())
        }
