"""Typed Twitch message -> Envelope (a plain dict, ready for JSON).

The contract fields (docs/envelope.md, docs/schemas/) are always present; additions live in
``payload`` only. Control lines (PING, JOIN, numerics, WHISPER, ...) yield ``None``.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from ingress_egress.envelope.ids import MAX_EPOCH_MS, IdSource, IsoClock, RandomIds, stable_uuid
from ingress_egress.envelope.types import MESSAGE, MODERATION, NOTIFICATION, ROOMSTATE
from ingress_egress.protocol import escape_tag_value
from ingress_egress.twitch.messages import (
    Chatter,
    Clearchat,
    Clearmsg,
    EmoteRange,
    Privmsg,
    Roomstate,
    TwitchMessage,
    Usernotice,
)
from ingress_egress.twitch.messages.common import cheer_spans, emotes_within

Envelope = dict[str, Any]
FINALIZER = "internal.finalizer.v1"
NO_USER = {"id": "", "name": "", "displayName": "", "profileImageUrl": "", "role": ""}
# The bot's own user id, when set: ASCII digits (what Twitch's user ids are), so the C direct
# path can compare it with the raw tag (sources/irc/codec/native.py) as Python compares strs.
MAX_USER_ID_CHARS = 32
# A ROOMSTATE without tmi-sent-ts (every one Twitch sends) is keyed by its receipt time rounded
# down to this window, so two readers of one change publish one id (docs/envelope.md, "Ids").
ROOMSTATE_WINDOW_MS = 5000


class EnvelopeBuilder:
    def __init__(
        self,
        *,
        transport: str = "irc",
        clock: Callable[[], float] = time.time,
        ids: IdSource | None = None,
        roomstate_window_ms: int | None = ROOMSTATE_WINDOW_MS,
    ) -> None:
        """``ids``: where random envelope ids and trace ids come from when ``build`` is not
        given its own (a ``RandomIds`` stream by default). ``roomstate_window_ms=None``: a
        ROOMSTATE without tmi-sent-ts gets a random id (``normalize``: a backfill read in
        seconds would otherwise merge a day's repeats)."""
        if roomstate_window_ms is not None and roomstate_window_ms < 1:
            raise ValueError("roomstate_window_ms must be >= 1 or None")
        self.transport = transport
        self.roomstate_window_ms = roomstate_window_ms
        self._clock = clock
        self._ids: IdSource = ids or RandomIds()
        self._received = IsoClock()
        self._sent = IsoClock()
        self._self_user_id: str | None = None
        self._builders: dict[type, Callable[[Any, str, IdSource], Envelope]] = {
            Privmsg: self._message,
            Usernotice: self._notification,
            Clearchat: self._clearchat,
            Clearmsg: self._clearmsg,
            Roomstate: self._roomstate,
        }

    @property
    def self_user_id(self) -> str | None:
        """The bot's own user id (None: nobody is self); see ``set_self_user_id``."""
        return self._self_user_id

    def set_self_user_id(self, user_id: str | None) -> None:
        """From now on a chat message whose ``user-id`` is ``user_id`` is the bot's own:
        its envelope carries ``payload.isSelf: true`` (docs/envelope.md). Learned at run
        time (after the token is validated); None or "" = nobody. An IRC source sets it
        through its codec (``IrcCodec.set_self_user_id``), which the C direct path must
        follow too. Raises ValueError for an id that is not 1-32 ASCII digits."""
        if not user_id:
            self._self_user_id = None
            return
        if not (len(user_id) <= MAX_USER_ID_CHARS and user_id.isascii() and user_id.isdigit()):
            raise ValueError(f"a Twitch user id is 1-{MAX_USER_ID_CHARS} ASCII digits")
        self._self_user_id = user_id

    def build(
        self,
        message: TwitchMessage,
        received_at: float | None = None,
        *,
        ids: IdSource | None = None,
    ) -> Envelope | None:
        """The envelope for an event, or ``None`` for a line that is not published.

        ``ids``: this envelope's random id (when the event has no stable key) and trace id
        come from it instead of the builder's own stream (an IRC line's ``LineIds``).
        """
        build = self._builders.get(type(message))
        if build is None:
            return None
        stamp = self._received.format(self._clock() if received_at is None else received_at)
        return build(message, stamp, self._ids if ids is None else ids)

    # -- the common frame -------------------------------------------------------------

    def _frame(
        self,
        kind: str,
        stamp: str,
        ids: IdSource,
        dedup_key: str,
        channel: str,
        room_id: str,
        user: dict,
    ) -> Envelope:
        envelope_id = stable_uuid(dedup_key) if dedup_key else ids.uuid4()
        return {
            "v": "1",
            "id": envelope_id,
            "correlationId": envelope_id,
            "traceId": ids.trace_id(),
            "timestamp": stamp,
            "type": kind,
            "source": {"platform": "twitch", "channel": channel, "channelId": room_id or None},
            "user": user,
            "routingSlip": [],
            "finalizationDestination": FINALIZER,
        }

    def _sent_at(self, millis: int | None) -> str | None:
        if millis is None or not 0 <= millis <= MAX_EPOCH_MS:
            return None
        return self._sent.format_ms(millis)

    # -- one method per event type ------------------------------------------------------

    def _message(self, msg: Privmsg, stamp: str, ids: IdSource) -> Envelope:
        # The hottest builder: the frame is inlined (same keys, same order as _frame) and each
        # field read once. The C direct path in _native/_speedups.c writes the same JSON from
        # the raw line; tests/fuzz and the differential tests hold the two equal.
        chatter = msg.chatter
        message_id = msg.message_id
        text = msg.text
        badges = chatter.badges
        envelope_id = stable_uuid(f"twitch:{message_id}") if message_id else ids.uuid4()
        reply = msg.reply
        shared = msg.shared_source
        envelope: Envelope = {
            "v": "1",
            "id": envelope_id,
            "correlationId": envelope_id,
            "traceId": ids.trace_id(),
            "timestamp": stamp,
            "type": MESSAGE,
            "source": {
                "platform": "twitch",
                "channel": msg.channel,
                "channelId": msg.room_id or None,
            },
            "user": {
                "id": chatter.user_id,
                "name": chatter.login,
                "displayName": chatter.display_name,
                "profileImageUrl": "",
                "role": "",
            },
            "routingSlip": [],
            "finalizationDestination": FINALIZER,
            "payload": {
                "text": text,
                "messageId": message_id,
                "badges": [name for name, _ in badges],
                "isMod": msg.is_mod,
                "isSubscriber": msg.is_subscriber,
                "color": chatter.color,
                "emotes": _emotes(text, msg.emotes),
                "raw": {"tags": msg.irc.tags},
                "isAction": msg.is_action,
                "bits": msg.bits,
                "cheers": _cheers(text) if msg.bits else [],
                "badgeInfo": dict(chatter.badge_info),
                "badgeVersions": dict(badges),
                "isVip": chatter.has_badge("vip"),
                "isBroadcaster": chatter.has_badge("broadcaster"),
                "firstMessage": msg.first_message,
                "returningChatter": msg.returning_chatter,
                "customRewardId": msg.custom_reward_id or None,
                "messageKind": msg.message_kind or None,
                "reply": None
                if reply is None
                else {
                    "parentMessageId": reply.message_id,
                    "parentUserId": reply.user_id,
                    "parentUserLogin": reply.user_login,
                    "parentDisplayName": reply.display_name,
                    "parentText": reply.text,
                    "threadParentMessageId": reply.thread_message_id or None,
                    "threadParentUserLogin": reply.thread_user_login or None,
                },
                "sharedChat": None
                if shared is None
                else {
                    "sourceRoomId": shared.room_id,
                    "sourceMessageId": shared.message_id,
                },
                "sentAt": self._sent_at(msg.sent_at_ms),
                "transport": self.transport,
            },
        }
        if chatter.user_id == self._self_user_id:  # never equal while it is None
            # Present only on the bot's own messages: every other envelope stays as it was.
            envelope["payload"]["isSelf"] = True
        return envelope

    def _notification(self, msg: Usernotice, stamp: str, ids: IdSource) -> Envelope:
        chatter = msg.chatter
        envelope = self._frame(
            NOTIFICATION,
            stamp,
            ids,
            _twitch_key(msg.message_id),
            msg.channel,
            msg.room_id,
            _user(chatter),
        )
        envelope["payload"] = {
            "noticeType": msg.notice_type,
            "systemMessage": msg.system_message,
            "text": msg.text,
            "params": msg.params,
            "messageId": msg.message_id,
            "badges": [name for name, _ in chatter.badges],
            "badgeInfo": dict(chatter.badge_info),
            "badgeVersions": dict(chatter.badges),
            "isMod": msg.is_mod,
            "isSubscriber": msg.is_subscriber,
            "color": chatter.color,
            "emotes": _emotes(msg.text, msg.emotes),
            "sentAt": self._sent_at(msg.sent_at_ms),
            "transport": self.transport,
            "raw": {"tags": msg.irc.tags},
        }
        return envelope

    def _clearchat(self, msg: Clearchat, stamp: str, ids: IdSource) -> Envelope:
        target = msg.target_user_id or msg.target_login
        key = _event_key("clearchat", _scope(msg.room_id, msg.channel), msg.sent_at_ms, target)
        return self._moderation(
            msg,
            stamp,
            ids,
            key,
            action=msg.action,
            target_user_id=msg.target_user_id or None,
            target_login=msg.target_login or None,
            duration=msg.duration_seconds,
            target_message_id=None,
            text=None,
        )

    def _clearmsg(self, msg: Clearmsg, stamp: str, ids: IdSource) -> Envelope:
        # Twitch sends CLEARMSG with an empty room-id: the channel then scopes the key.
        scope = _scope(msg.room_id, msg.channel)
        key = _event_key("clearmsg", scope, msg.sent_at_ms, msg.target_message_id)
        return self._moderation(
            msg,
            stamp,
            ids,
            key,
            action="delete",
            target_user_id=None,
            target_login=msg.target_login or None,
            duration=None,
            target_message_id=msg.target_message_id or None,
            text=msg.text,
        )

    def _moderation(
        self,
        msg: Clearchat | Clearmsg,
        stamp: str,
        ids: IdSource,
        key: str,
        *,
        action: str,
        target_user_id: str | None,
        target_login: str | None,
        duration: int | None,
        target_message_id: str | None,
        text: str | None,
    ) -> Envelope:
        envelope = self._frame(MODERATION, stamp, ids, key, msg.channel, msg.room_id, dict(NO_USER))
        envelope["payload"] = {
            "action": action,
            "targetUserId": target_user_id,
            "targetLogin": target_login,
            "durationSeconds": duration,
            "targetMessageId": target_message_id,
            "text": text,
            "messageId": key or None,
            "sentAt": self._sent_at(msg.sent_at_ms),
            "transport": self.transport,
            "raw": {"tags": msg.irc.tags},
        }
        return envelope

    def _roomstate(self, msg: Roomstate, stamp: str, ids: IdSource) -> Envelope:
        key = _roomstate_key(msg, stamp, self.roomstate_window_ms)
        envelope = self._frame(ROOMSTATE, stamp, ids, key, msg.channel, msg.room_id, dict(NO_USER))
        envelope["payload"] = {
            **msg.settings,
            "transport": self.transport,
            "raw": {"tags": msg.irc.tags},
        }
        return envelope


def _twitch_key(message_id: str) -> str:
    return f"twitch:{message_id}" if message_id else ""


def _scope(room_id: str, channel: str) -> str:
    """The room id, else ``#`` + the channel login (never mistaken for a numeric id)."""
    return room_id or (f"#{channel}" if channel else "")


def _event_key(kind: str, scope: str, sent_at_ms: int | None, target: str) -> str:
    """Events without a Twitch id: a key stable across duplicate deliveries of one line.
    ``scope`` comes from ``_scope``."""
    if not scope or sent_at_ms is None:
        return ""
    return f"twitch:{kind}:{scope}:{sent_at_ms}:{target}"


def _roomstate_key(msg: Roomstate, stamp: str, window_ms: int | None) -> str:
    """Room, Twitch's send time (else ``~`` + the receipt time rounded down to the window)
    and the line's settings, sorted: two readers' copies of one change share the key."""
    tags = msg.irc.tags
    sent = tags.get("tmi-sent-ts", "")
    if not (sent.isascii() and sent.isdigit()):
        received = None if window_ms is None else _stamp_ms(stamp)
        if window_ms is None or received is None:
            return ""
        sent = f"~{received - received % window_ms}"
    settings = ";".join(
        f"{key}={escape_tag_value(tags[key])}"
        for key in sorted(tags)
        if key not in ("room-id", "tmi-sent-ts")
    )
    return f"twitch:roomstate:{_scope(msg.room_id, msg.channel)}:{sent}:{settings}"


def _stamp_ms(stamp: str) -> int | None:
    """``2026-12-04T17:05:12.345Z`` (an envelope timestamp) -> epoch milliseconds; None for
    a stamp of another shape (a receipt time before year 1000 or after 9999)."""
    try:
        seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        return seconds * 1000 + int(stamp[20:23])
    except ValueError:
        return None


def _user(chatter: Chatter) -> dict[str, str]:
    return {
        "id": chatter.user_id,
        "name": chatter.login,
        "displayName": chatter.display_name,
        "profileImageUrl": "",
        "role": "",
    }


def _emotes(text: str, emotes: list[EmoteRange]) -> list[dict[str, Any]]:
    if not emotes:
        return []
    return [
        {"id": emote.id, "start": emote.start, "end": emote.start + len(name) - 1, "name": name}
        for emote, name in emotes_within(text, emotes)
    ]


def _cheers(text: str) -> list[dict[str, Any]]:
    # find_cheers(text) without building Cheer objects on the way.
    return [
        {"prefix": name, "amount": amount, "start": position, "end": position + length - 1}
        for name, amount, position, length in cheer_spans(text)
    ]
