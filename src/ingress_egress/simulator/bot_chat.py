"""A bot's message through Twitch: judged by the rules, recorded, relayed to the channel.

Both ways in end here: an IRC PRIVMSG on a bot's connection and a Helix ``POST
/helix/chat/messages``. A taken message goes, as a normal PRIVMSG with its own ``id``, the
bot's ``user-id``, ``room-id`` and ``tmi-sent-ts``, to every connection joined to the channel
except the one that sent it (the bot's other connections get it too).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from ingress_egress.protocol.tags import format_tags
from ingress_egress.simulator.hub import CLOSE_ERRORS, SERVER, Connection, Hub, without_tags
from ingress_egress.simulator.rules import BotAccount, ChatRules, Decision, badges_for
from ingress_egress.simulator.traffic import EMOTE_IDS, room_id_for

# ChannelSettings field -> ROOMSTATE tag
_ROOM_TAGS = {
    "emote_only": "emote-only",
    "followers_only": "followers-only",
    "slow": "slow",
    "subs_only": "subs-only",
}


@dataclass(frozen=True)
class Sent:
    """The outcome of one bot message: the decision and, when taken, its message id."""

    decision: Decision
    id: str


def _emotes_tag(text: str) -> str:
    """Global emotes in ``text`` as Twitch tags them (code-point ranges, end inclusive)."""
    positions: dict[str, list[str]] = {}
    offset = 0
    for word in text.split(" "):
        emote_id = EMOTE_IDS.get(word)
        if emote_id is not None:
            positions.setdefault(emote_id, []).append(f"{offset}-{offset + len(word) - 1}")
        offset += len(word) + 1
    return "/".join(f"{eid}:{','.join(ranges)}" for eid, ranges in positions.items())


def role_tags(role: str) -> dict[str, str]:
    """``badges``, ``mod`` and ``user-type`` for the bot's role in a channel."""
    return {
        "badges": badges_for(role),
        "mod": "1" if role == "moderator" else "0",
        "user-type": "mod" if role == "moderator" else "",
    }


def userstate_line(
    nick: str, channel: str, role: str, *, tagged: bool, msg_id: str | None = None
) -> str:
    """USERSTATE for ``channel`` as Twitch sends it after JOIN (no ``id``) or after a taken
    PRIVMSG (``id`` = the message's id)."""
    roles = role_tags(role)
    tags = {
        "badge-info": "",
        "badges": roles["badges"],
        "color": "",
        "display-name": nick,
        "emote-sets": "0",
    }
    if msg_id is not None:
        tags["id"] = msg_id
    tags.update({"mod": roles["mod"], "subscriber": "0", "user-type": roles["user-type"]})
    if role == "vip":
        tags["vip"] = "1"
    prefix = f"{format_tags(tags)} " if tagged else ""
    return f"{prefix}:{SERVER} USERSTATE #{channel}"


def notice_line(channel: str, msg_id: str, text: str, *, tagged: bool) -> str:
    prefix = f"@msg-id={msg_id} " if tagged else ""
    return f"{prefix}:{SERVER} NOTICE #{channel} :{text}"


class BotChat:
    """Sends of logged-in bots (IRC) and Helix callers, through one ``ChatRules``."""

    def __init__(self, hub: Hub, rules: ChatRules) -> None:
        self.hub = hub
        self.rules = rules

    async def send(
        self,
        account: BotAccount,
        channel: str,
        text: str,
        *,
        via: str,
        origin: Connection | None = None,
        reply_to: str = "",
    ) -> Sent:
        """Judge, record and (when taken) relay one message; IRC answers go to ``origin``."""
        channel = channel.lstrip("#").lower()
        decision = self.rules.judge(account, channel, text)
        # Helix says "sent" (with an id) for a message a lockout then drops silently.
        silently_dropped = via == "helix" and decision.outcome == "ignored"
        msg_id = str(uuid.uuid4()) if decision.accepted or silently_dropped else ""
        self.rules.record(account, channel, text, decision, msg_id, via)
        if decision.accepted:
            line = self._privmsg_line(account, channel, decision, msg_id, reply_to)
            await self._relay(channel, line, origin)
        if origin is not None:
            await self._answer(origin, channel, decision, msg_id)
        self.hub.notify()
        return Sent(decision, msg_id)

    def _privmsg_line(
        self, account: BotAccount, channel: str, decision: Decision, msg_id: str, reply_to: str
    ) -> str:
        role = self.rules.settings(channel).role
        roles = role_tags(role)
        text = decision.text
        tags = {
            "badge-info": "",
            "badges": roles["badges"],
            "color": "",
            "display-name": account.login,
            "emotes": _emotes_tag(text),
            "first-msg": "0",
            "flags": "",
            "id": msg_id,
            "mod": roles["mod"],
        }
        if reply_to:
            tags["reply-parent-msg-id"] = reply_to
            tags["reply-thread-parent-msg-id"] = reply_to
        tags.update(
            {
                "returning-chatter": "0",
                "room-id": room_id_for(channel),
                "subscriber": "0",
                "tmi-sent-ts": str(time.time_ns() // 1_000_000),
                "turbo": "0",
                "user-id": account.user_id,
                "user-type": roles["user-type"],
            }
        )
        if role == "vip":
            tags["vip"] = "1"
        if decision.action:
            text = f"\x01ACTION {text}\x01"
        login = account.login
        return f"{format_tags(tags)} :{login}!{login}@{login}.{SERVER} PRIVMSG #{channel} :{text}"

    async def announce_modes(self, channel: str, changed: dict[str, object]) -> None:
        """A partial ROOMSTATE (``room-id`` and the modes that changed), as Twitch sends one
        when a channel's chat settings change; a role change alone announces nothing (the
        bot learns it from its next USERSTATE)."""
        tags = {"room-id": room_id_for(channel)}
        for name, tag in _ROOM_TAGS.items():
            if name in changed:
                value = changed[name]
                tags[tag] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        if len(tags) == 1:
            return
        line = f"{format_tags(tags)} :{SERVER} ROOMSTATE #{channel}"
        for client in sorted(self.hub.subs.get(channel, set()), key=lambda c: c.index):
            if client.receiving and client.commands:
                try:
                    await client.write([line if client.tags else without_tags(line)])
                except CLOSE_ERRORS:
                    self.hub.unsubscribe(client)
        self.hub.notify()

    async def _relay(self, channel: str, line: str, origin: Connection | None) -> None:
        for client in sorted(self.hub.subs.get(channel, set()), key=lambda c: c.index):
            if client is origin or not client.receiving:
                continue
            try:
                await client.write([line if client.tags else without_tags(line)])
            except CLOSE_ERRORS:
                self.hub.unsubscribe(client)

    async def _answer(
        self,
        origin: Connection,
        channel: str,
        decision: Decision,
        msg_id: str,
    ) -> None:
        tagged = origin.tags
        if decision.accepted:
            if origin.commands:
                role = self.rules.settings(channel).role
                line = userstate_line(origin.nick, channel, role, tagged=tagged, msg_id=msg_id)
                await origin.write([line])
        elif decision.notice is not None:
            await origin.write(
                [notice_line(channel, decision.outcome, decision.notice_text, tagged=tagged)]
            )
