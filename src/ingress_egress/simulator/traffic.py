"""Realistic Twitch chat traffic: tagged PRIVMSG lines, fast enough to drive benchmarks.

Each channel gets a deterministic (given the seed and the channel name) pool of chatters and
a pool of message templates. A template is a fully tagged PRIVMSG line with two holes, the
``id`` and ``tmi-sent-ts`` tag values, so producing a line is one string format. Templates are
generated lazily the first time the sequence reaches them and then reused in a cycle; message
ids come from a per-generator random prefix plus a counter, so they are unique and look like
uuid4s (version nibble 4, variant 10xx).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import time
import uuid
from dataclasses import dataclass

from ingress_egress.protocol.tags import format_tags

# Twitch global emotes (name, id). Ids are Twitch's real ones.
EMOTES: tuple[tuple[str, str], ...] = (
    ("Kappa", "25"),
    ("PogChamp", "305954156"),
    ("LUL", "425618"),
    ("Kreygasm", "41"),
    ("4Head", "354"),
    ("BibleThump", "86"),
    ("ResidentSleeper", "245"),
    ("SeemsGood", "64138"),
    ("NotLikeThis", "58765"),
    ("DansGame", "33"),
    ("CoolStoryBob", "123171"),
    ("HeyGuys", "30259"),
    ("VoHiYo", "81274"),
    ("BabyRage", "22639"),
    ("WutFace", "28087"),
    ("SMOrc", "52"),
    ("FailFish", "360"),
    ("Jebaited", "114836"),
    ("MrDestructoid", "28"),
    ("BloodTrail", "69"),
    ("CoolCat", "58127"),
    ("PJSalt", "36"),
)
EMOTE_IDS: dict[str, str] = dict(EMOTES)

_DEFAULT_COLORS = (
    "#FF0000",
    "#0000FF",
    "#008000",
    "#B22222",
    "#FF7F50",
    "#9ACD32",
    "#FF4500",
    "#2E8B57",
    "#DAA520",
    "#D2691E",
    "#5F9EA0",
    "#1E90FF",
    "#FF69B4",
    "#8A2BE2",
    "#00FF7F",
)
_ADJECTIVES = (
    "sleepy", "happy", "dark", "pro", "salty", "lucky", "cosmic", "silent", "crazy", "tiny",
    "mega", "ultra", "lazy", "wild", "frosty", "spicy", "retro", "shadow", "golden", "turbo",
)  # fmt: skip
_NOUNS = (
    "otter", "gamer", "wolf", "ninja", "panda", "potato", "dragon", "pixel", "taco", "fox",
    "moose", "raven", "kiwi", "noodle", "goblin", "wizard", "bean", "yeti", "toast", "comet",
)  # fmt: skip
_LOCALIZED_NAMES = ("小明", "ゆうき", "김민준", "Дмитрий", "李华", "さくら")
_PHRASES = (
    "lol", "gg", "no way", "that was insane", "first time here", "what game is this",
    "W", "L", "chat is this real", "clip it", "HUH", "nice one", "is this live?",
    "hello from Brazil", "let's gooo", "how is he so good", "o7", "pog", "same",
    "can we get a hype train", "he's cooking", "unlucky", "that's crazy", "true",
    "where is the vod", "music?", "what's the song name", "ez", "hi chat", "monkaS",
    "just got here what did I miss", "mods?", "this run is clean", "no shot", "bro",
    "actually though", "respect", "good morning", "gn chat", "1", "2", "KEKW",
    "I was here", "best stream on twitch", "imagine", "rip", "yes", "no", "maybe",
)  # fmt: skip
_UNICODE_SNIPPETS = (
    "привет всем",
    "как дела?",
    "это было круто",
    "こんにちは",
    "草",
    "すごい！",  # noqa: RUF001 - a full-width mark, as Japanese chat writes it
    "你好",
    "哈哈哈哈",
    "加油",
    "안녕하세요",
    "café naïve résumé",
    "¿qué pasa?",
    "größte Spiel",
    "😂",
    "🔥🔥",
    "❤️",
    "👍🏽",
    "👨‍👩‍👧",
    "🎉",
    "💀",
    "🙏",
)
_ASTRAL_EMOJI = ("🎉", "😂", "🔥", "💀", "🙏", "🥳", "👀", "🤣")
_ODD_TEXT = (
    "a;b=c d\\e",
    "key=value;other=thing",
    "back\\slash and semi;colon",
    "check https://example.com/path?x=1&y=2",
    "@someone :colon at start",
    "spaced   out   words",
    "50% off; 100% fun \\o/",
)
_SUB_BADGE_TIERS = (0, 3, 6, 9, 12, 24, 36)
_OTHER_BADGES = ("premium/1", "glhf-pledge/1", "no_audio/1", "sub-gifter/5", "bits/1000")


def stable_number(text: str, low: int = 10_000_000, high: int = 999_999_999) -> int:
    """A number in ``[low, high]`` that depends only on ``text`` (stable across runs)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return low + int.from_bytes(digest, "big") % (high - low + 1)


@functools.lru_cache(maxsize=65536)
def room_id_for(channel: str) -> str:
    """The simulator's room id for a channel login (with or without ``#``)."""
    return str(stable_number("room:" + channel.lstrip("#").lower()))


def user_id_for(login: str) -> str:
    """The simulator's user id for a login; a channel's owner has the channel's room id."""
    return room_id_for(login)


@dataclass(slots=True)
class Chatter:
    login: str
    display_name: str
    user_id: str
    color: str
    badges: str
    badge_info: str
    mod: bool
    vip: bool
    subscriber: bool
    turbo: bool
    user_type: str


@dataclass(slots=True)
class Template:
    """A PRIVMSG line without CRLF: ``head + id + mid + tmi_sent_ts + tail``."""

    head: str
    mid: str
    tail: str
    text: str


_ID_HOLE = "\x00id\x00"
_TS_HOLE = "\x00ts\x00"


class _ChannelPool:
    __slots__ = ("channel", "chatters", "pos", "recent", "rng", "room_id", "templates")

    def __init__(self, seed: int, channel: str, room_id: str) -> None:
        self.channel = channel
        self.room_id = room_id
        self.rng = random.Random(f"{seed}:{channel}")
        self.templates: list[Template] = []
        self.pos = 0
        self.recent: list[tuple[str, Chatter, str]] = []  # (msg id, chatter, text)
        self.chatters = self._make_chatters()

    def _make_chatters(self, n: int = 150) -> list[Chatter]:
        rng = self.rng
        chatters = [self._chatter(self.channel, "broadcaster", rng)]
        seen = {self.channel}
        while len(chatters) < n:
            login = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}"
            if rng.random() < 0.7:
                login += str(rng.randrange(1, 9999))
            if login in seen:
                continue
            seen.add(login)
            role = rng.choices(
                ("moderator", "vip", "subscriber", "viewer"), weights=(5, 3, 40, 52)
            )[0]
            chatters.append(self._chatter(login, role, rng))
        return chatters

    @staticmethod
    def _chatter(login: str, role: str, rng: random.Random) -> Chatter:
        display = login
        style = rng.random()
        if style < 0.15:
            display = rng.choice(_LOCALIZED_NAMES)
        elif style < 0.55:
            display = "_".join(part.capitalize() for part in login.split("_"))
        elif style < 0.62:
            display = login.upper()
        color = "" if rng.random() < 0.2 else rng.choice(_DEFAULT_COLORS)
        if rng.random() < 0.3 and color:
            color = f"#{rng.randrange(0x1000000):06X}"
        subscriber = role in ("broadcaster", "subscriber") or (
            role in ("moderator", "vip") and rng.random() < 0.5
        )
        months = rng.randrange(1, 60) if subscriber else 0
        tier = max((t for t in _SUB_BADGE_TIERS if t <= months), default=0)
        badges: list[str] = []
        if role == "broadcaster":
            badges.append("broadcaster/1")
        elif role == "moderator":
            badges.append("moderator/1")
        elif role == "vip":
            badges.append("vip/1")
        if subscriber:
            badges.append(f"subscriber/{tier}")
        turbo = rng.random() < 0.03
        if turbo:
            badges.append("turbo/1")
        elif rng.random() < 0.25:
            badges.append(rng.choice(_OTHER_BADGES))
        return Chatter(
            login=login,
            display_name=display,
            user_id=user_id_for(login),
            color=color,
            badges=",".join(badges),
            badge_info=f"subscriber/{months}" if subscriber else "",
            mod=role == "moderator",
            vip=role == "vip",
            subscriber=subscriber,
            turbo=turbo,
            user_type="mod" if role == "moderator" else "",
        )

    # -- message bodies ---------------------------------------------------------------

    def _words(self, lo: int, hi: int) -> list[str]:
        return [self.rng.choice(_PHRASES) for _ in range(self.rng.randint(lo, hi))]

    def _with_emotes(self, unicode_first: bool) -> list[str]:
        rng = self.rng
        tokens: list[str] = []
        if unicode_first:
            tokens.append(rng.choice(_ASTRAL_EMOJI) * rng.randint(1, 3))
            tokens.append(rng.choice(_UNICODE_SNIPPETS))
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.55:
                tokens.append(rng.choice(EMOTES)[0])
            elif unicode_first and rng.random() < 0.5:
                tokens.append(rng.choice(_UNICODE_SNIPPETS))
            else:
                tokens.append(rng.choice(_PHRASES))
        if rng.random() < 0.2:  # emote spam
            name = rng.choice(EMOTES)[0]
            tokens.extend([name] * rng.randint(2, 5))
        return tokens

    def _body(self) -> tuple[str, list[str]]:
        """(kind, tokens): the message is ``" ".join(tokens)``; emote tokens are whole words."""
        rng = self.rng
        kind = rng.choices(
            ("plain", "emotes", "unicode", "action", "reply", "cheer", "odd"),
            weights=(38, 20, 13, 7, 10, 5, 7),
        )[0]
        if kind == "plain":
            return kind, self._words(1, 8)
        if kind == "emotes":
            return kind, self._with_emotes(unicode_first=False)
        if kind == "unicode":
            return kind, self._with_emotes(unicode_first=True)
        if kind == "action":
            return kind, self._with_emotes(unicode_first=rng.random() < 0.3)
        if kind == "reply":
            return kind, self._with_emotes(unicode_first=rng.random() < 0.2)
        if kind == "cheer":
            return kind, self._words(1, 4)
        return kind, [rng.choice(_ODD_TEXT)]

    # -- templates --------------------------------------------------------------------

    def make_template(self) -> Template:
        rng = self.rng
        chatter = rng.choice(self.chatters)
        kind, tokens = self._body()
        tags: dict[str, str] = {}
        extra: dict[str, str] = {}
        prefix = ""
        if kind == "reply" and self.recent:
            parent_id, parent, parent_text = rng.choice(self.recent)
            thread_id, thread_parent = parent_id, parent
            if rng.random() < 0.3:
                thread_id, thread_parent, _ = rng.choice(self.recent)
            extra.update(
                {
                    "reply-parent-display-name": parent.display_name,
                    "reply-parent-msg-body": parent_text,
                    "reply-parent-msg-id": parent_id,
                    "reply-parent-user-id": parent.user_id,
                    "reply-parent-user-login": parent.login,
                    "reply-thread-parent-display-name": thread_parent.display_name,
                    "reply-thread-parent-msg-id": thread_id,
                    "reply-thread-parent-user-id": thread_parent.user_id,
                    "reply-thread-parent-user-login": thread_parent.login,
                }
            )
            prefix = f"@{parent.display_name} "
        if kind == "cheer":
            parts = rng.choice(((100,), (50, 50), (1, 99), (100, 100), (500,)))
            extra["bits"] = str(sum(parts))
            cheer = [f"{rng.choice(('Cheer', 'cheer'))}{amount}" for amount in parts]
            tokens = [*cheer, *tokens] if rng.random() < 0.7 else [*tokens, *cheer]

        # Emote positions: code points, end inclusive, relative to the text the user typed
        # (for /me that is the text inside \x01ACTION ...\x01).
        body = prefix + " ".join(tokens)
        positions: dict[str, list[str]] = {}
        offset = len(prefix)
        for token in tokens:
            emote_id = EMOTE_IDS.get(token)
            if emote_id is not None:
                positions.setdefault(emote_id, []).append(f"{offset}-{offset + len(token) - 1}")
            offset += len(token) + 1
        emotes = "/".join(f"{eid}:{','.join(ranges)}" for eid, ranges in positions.items())
        text = f"\x01ACTION {body}\x01" if kind == "action" else body

        tags["badge-info"] = chatter.badge_info
        tags["badges"] = chatter.badges
        tags.update({k: v for k, v in extra.items() if k == "bits"})
        tags["client-nonce"] = f"{rng.getrandbits(128):032x}"
        tags["color"] = chatter.color
        tags["display-name"] = chatter.display_name
        tags["emotes"] = emotes
        tags["first-msg"] = "1" if rng.random() < 0.02 else "0"
        tags["flags"] = ""
        tags["id"] = _ID_HOLE
        tags["mod"] = "1" if chatter.mod else "0"
        tags.update({k: v for k, v in extra.items() if k.startswith("reply-")})
        tags["returning-chatter"] = "1" if rng.random() < 0.05 else "0"
        tags["room-id"] = self.room_id
        tags["subscriber"] = "1" if chatter.subscriber else "0"
        tags["tmi-sent-ts"] = _TS_HOLE
        tags["turbo"] = "1" if chatter.turbo else "0"
        tags["user-id"] = chatter.user_id
        tags["user-type"] = chatter.user_type
        if chatter.vip:
            tags["vip"] = "1"

        login = chatter.login
        line = (
            f"{format_tags(tags)} :{login}!{login}@{login}.tmi.twitch.tv "
            f"PRIVMSG #{self.channel} :{text}"
        )
        head, rest = line.split(_ID_HOLE, 1)
        mid, tail = rest.split(_TS_HOLE, 1)

        # Replies point at earlier messages of the pool by a stand-in id (the real id of a
        # message is only known when it is sent).
        stand_in_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.recent.append((stand_in_id, chatter, text))
        if len(self.recent) > 20:
            del self.recent[0]
        return Template(head, mid, tail, text)


class TrafficGenerator:
    """Deterministic (given ``seed``) Twitch PRIVMSG traffic; ids and timestamps are live.

    ``privmsg(channel)`` returns ``(line, message_id, text)`` where ``line`` has no CRLF and
    ``text`` is the PRIVMSG trailing parameter exactly as on the wire (``/me`` messages keep
    their ``\\x01ACTION ...\\x01`` wrapper).
    """

    def __init__(self, seed: int = 1, *, pool_size: int = 1024, max_templates: int = 8192) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self.seed = seed
        self.pool_size = pool_size
        # Building a template costs ~60 us; with many channels each channel's cycle gets
        # shorter (never below 64) so warming up all of them stays around a second.
        self.max_templates = max_templates
        self._pools: dict[str, _ChannelPool] = {}
        self._event_rngs: dict[str, random.Random] = {}
        raw = int.from_bytes(os.urandom(10), "big")
        a, b, c, d = raw >> 48, (raw >> 32) & 0xFFFF, (raw >> 20) & 0xFFF, (raw >> 8) & 0xFFF
        self._id_prefix = f"{a & 0xFFFFFFFF:08x}-{b:04x}-4{c:03x}-{8 | (raw & 3):x}{d:03x}-"
        self._counter = int.from_bytes(os.urandom(6), "big")

    def _pool(self, channel: str, room_id: str | None) -> _ChannelPool:
        key = channel.lstrip("#").lower()
        pool = self._pools.get(key)
        if pool is None:
            pool = _ChannelPool(self.seed, key, room_id or room_id_for(key))
            self._pools[key] = pool
        return pool

    def _cycle_length(self) -> int:
        share = self.max_templates // max(1, len(self._pools))
        return min(self.pool_size, max(64, share))

    def new_id(self) -> str:
        """A fresh message id (uuid4-shaped, unique within this generator)."""
        self._counter = (self._counter + 1) & 0xFFFFFFFFFFFF
        return f"{self._id_prefix}{self._counter:012x}"

    def warm(self, channel: str, room_id: str | None = None) -> None:
        """Build the channel's whole template cycle now (the sequence does not move)."""
        pool = self._pool(channel, room_id)
        while len(pool.templates) < self._cycle_length():
            pool.templates.append(pool.make_template())

    def templates(self, channel: str, n: int, room_id: str | None = None) -> list[Template]:
        """The next ``n`` templates of the channel's sequence (advances the sequence)."""
        pool = self._pool(channel, room_id)
        out: list[Template] = []
        templates, size = pool.templates, self._cycle_length()
        for _ in range(n):
            pos = pool.pos
            if pos >= len(templates):
                templates.append(pool.make_template())
            out.append(templates[pos])
            pool.pos = pos + 1 if pos + 1 < size else 0
        return out

    def messages(
        self, channel: str, n: int, room_id: str | None = None, ts_ms: int | None = None
    ) -> list[tuple[str, str, str]]:
        """The next ``n`` ``(line, message_id, text)`` for a channel, one timestamp for all."""
        ts = str(ts_ms if ts_ms is not None else time.time_ns() // 1_000_000)
        prefix = self._id_prefix
        counter = self._counter
        out = []
        for t in self.templates(channel, n, room_id):
            counter = (counter + 1) & 0xFFFFFFFFFFFF
            msg_id = f"{prefix}{counter:012x}"
            out.append((f"{t.head}{msg_id}{t.mid}{ts}{t.tail}", msg_id, t.text))
        self._counter = counter
        return out

    def privmsg(self, channel: str, room_id: str | None = None) -> tuple[str, str, str]:
        """The channel's next ``(line, message_id, text)``; ``line`` has no CRLF."""
        return self.messages(channel, 1, room_id)[0]

    # -- Twitch events (the simulator's live mode mixes them in) -----------------------

    def _event_chatter(self, channel: str) -> Chatter:
        # A separate stream of choices: events never shift the chat templates' sequence.
        pool = self._pool(channel, None)
        rng = self._event_rngs.setdefault(pool.channel, random.Random(f"{self.seed}:ev:{channel}"))
        return rng.choice(pool.chatters[1:] or pool.chatters)  # not the broadcaster

    def sub(self, channel: str, ts_ms: int) -> tuple[str, str]:
        """A USERNOTICE ``sub`` (Tier 1, first month) by one of the channel's chatters, in
        Twitch's tag set: ``(line, id)``."""
        key = channel.lstrip("#").lower()
        chatter = self._event_chatter(key)
        msg_id = self.new_id()
        tags = {
            "badge-info": "subscriber/1",
            "badges": "subscriber/0",
            "color": chatter.color,
            "display-name": chatter.display_name,
            "emotes": "",
            "flags": "",
            "id": msg_id,
            "login": chatter.login,
            "mod": "1" if chatter.mod else "0",
            "msg-id": "sub",
            "msg-param-cumulative-months": "1",
            "msg-param-months": "0",
            "msg-param-multimonth-duration": "1",
            "msg-param-multimonth-tenure": "0",
            "msg-param-should-share-streak": "0",
            "msg-param-sub-plan-name": f"Channel Subscription ({key})",
            "msg-param-sub-plan": "1000",
            "msg-param-was-gifted": "false",
            "room-id": room_id_for(key),
            "subscriber": "1",
            "system-msg": f"{chatter.display_name} subscribed at Tier 1.",
            "tmi-sent-ts": str(ts_ms),
            "user-id": chatter.user_id,
            "user-type": chatter.user_type,
        }
        return f"{format_tags(tags)} :tmi.twitch.tv USERNOTICE #{key}", msg_id

    def says(self, channel: str, text: str, ts_ms: int) -> tuple[str, str]:
        """A PRIVMSG of ``text`` (no emotes) by one of the channel's chatters: ``(line, id)``."""
        key = channel.lstrip("#").lower()
        chatter = self._event_chatter(key)
        msg_id = self.new_id()
        tags = {
            "badge-info": chatter.badge_info,
            "badges": chatter.badges,
            "color": chatter.color,
            "display-name": chatter.display_name,
            "emotes": "",
            "first-msg": "0",
            "flags": "",
            "id": msg_id,
            "mod": "1" if chatter.mod else "0",
            "returning-chatter": "0",
            "room-id": room_id_for(key),
            "subscriber": "1" if chatter.subscriber else "0",
            "tmi-sent-ts": str(ts_ms),
            "turbo": "1" if chatter.turbo else "0",
            "user-id": chatter.user_id,
            "user-type": chatter.user_type,
        }
        login = chatter.login
        return (
            f"{format_tags(tags)} :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{key} :{text}",
            msg_id,
        )

    def timeout(self, channel: str, ts_ms: int, seconds: int = 600) -> tuple[str, str]:
        """A CLEARCHAT timing out one of the channel's chatters: ``(line, target user id)``."""
        key = channel.lstrip("#").lower()
        chatter = self._event_chatter(key)
        tags = {
            "ban-duration": str(seconds),
            "room-id": room_id_for(key),
            "target-user-id": chatter.user_id,
            "tmi-sent-ts": str(ts_ms),
        }
        return (
            f"{format_tags(tags)} :tmi.twitch.tv CLEARCHAT #{key} :{chatter.login}",
            chatter.user_id,
        )


def clearmsg_line(channel: str, login: str, target_id: str, text: str, ts_ms: int) -> str:
    """A CLEARMSG as Twitch sends it: ``room-id`` present but empty."""
    tags = {"login": login, "room-id": "", "target-msg-id": target_id, "tmi-sent-ts": str(ts_ms)}
    return f"{format_tags(tags)} :tmi.twitch.tv CLEARMSG #{channel.lstrip('#').lower()} :{text}"
