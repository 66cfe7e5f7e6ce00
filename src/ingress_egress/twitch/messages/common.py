"""Tag decoders shared by several Twitch commands: badges, emotes, colours, timestamps."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage, IrcParseError

Badge = tuple[str, str]  # (name, version), e.g. ("subscriber", "12")


@dataclass(slots=True, frozen=True)
class EmoteRange:
    """An emote occurrence: ``text[start:end + 1]`` in Unicode code points (end inclusive)."""

    id: str
    start: int
    end: int


_CACHE_LIMIT = 4096
_badge_cache: dict[str, tuple[Badge, ...]] = {}


def parse_badges(value: str) -> tuple[Badge, ...]:
    """``"subscriber/12,premium/1"`` -> ``(("subscriber", "12"), ("premium", "1"))``.

    Chat repeats a few badge sets endlessly, so results are memoized (bounded).
    """
    badges = _badge_cache.get(value)
    if badges is None:
        badges = tuple(
            (name, version)
            for name, _, version in (item.partition("/") for item in value.split(","))
            if name
        )
        if len(_badge_cache) >= _CACHE_LIMIT:
            _badge_cache.clear()
        _badge_cache[value] = badges
    return badges


def parse_emotes(value: str) -> list[EmoteRange]:
    """``"25:0-4,12-16/1902:6-10"`` -> ranges sorted by position; malformed parts are skipped."""
    if not value:
        return []
    ranges = []
    for group in value.split("/"):
        emote_id, _, spans = group.partition(":")
        for span in spans.split(","):
            start, dash, end = span.partition("-")
            if dash and start.isdigit() and end.isdigit():
                try:
                    ranges.append(EmoteRange(emote_id, int(start), int(end)))
                except ValueError:  # isdigit() digits int() refuses ("²"), or > 4300 digits
                    continue
    ranges.sort(key=_start)
    return ranges


def _start(emote: EmoteRange) -> int:
    return emote.start


def emotes_within(text: str, emotes: list[EmoteRange]) -> list[tuple[EmoteRange, str]]:
    """Pair each range with its text. Python ``str`` indexes code points, as Twitch counts.

    A range that starts past the text is dropped; one that runs past its end keeps the part
    that exists (Twitch sometimes sends such ranges; see tests/fixtures samples).
    """
    size = len(text)
    out = []
    for emote in emotes:
        if emote.start < size and emote.start <= emote.end:
            out.append((emote, text[emote.start : emote.end + 1]))
    return out


_COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")


_color_cache: dict[str, str] = {}


def parse_color(value: str) -> str:
    """``"#1e90ff"`` -> ``"#1E90FF"``; empty or malformed -> ``""`` (no colour chosen).

    Memoized (bounded) like badges: a channel's chatters keep their colours.
    """
    color = _color_cache.get(value)
    if color is None:
        color = value.upper() if len(value) == 7 and _COLOR_RE.match(value) else ""
        if len(_color_cache) >= _CACHE_LIMIT:
            _color_cache.clear()
        _color_cache[value] = color
    return color


# The envelope carries numbers as JSON integers, which must fit a signed 64-bit integer (the
# C writer and orjson both refuse more; JavaScript consumers lose precision long before).
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def parse_int(value: str | None, tag: str = "number") -> int | None:
    """A numeric tag: absent, empty or malformed -> None; beyond 64 bits -> IrcParseError
    (the line becomes an error record: no envelope could carry it, and guessing a value,
    say "no ban-duration" for a too-large one, would turn a timeout into a ban)."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    if not INT64_MIN <= number <= INT64_MAX:
        raise IrcParseError(f"{tag}: number beyond 64 bits")
    return number


def event_channel(msg: IrcMessage) -> str:
    """The channel of an event that becomes an envelope: one without a channel cannot be
    routed (the envelope schema requires ``source.channel``), so it is an error record."""
    channel = channel_of(msg.params[0] if msg.params else "")
    if not channel:
        raise IrcParseError(f"{msg.command} without a channel", msg.raw, msg.tags)
    return channel


def channel_of(param: str) -> str:
    """``"#Foo"`` -> ``"foo"``."""
    return param[1:].lower() if param.startswith("#") else param.lower()


def split_action(text: str) -> tuple[str, bool]:
    """``"\\x01ACTION waves\\x01"`` -> ``("waves", True)``: the ``/me`` form of a message."""
    if text.startswith("\x01ACTION") and (len(text) == 7 or text[7] in " \x01"):
        return text[8:].removesuffix("\x01"), True
    return text, False


# A cheer is a whole whitespace-delimited token: a name, then its trailing decimal digits.
# Same result as finditer(r"(?<!\S)(\S+?)(\d+)(?!\S)") over the text, found per token
# (str.split() splits on exactly the characters \s matches): only tokens that end in a
# digit reach the regex, so ordinary words cost one test.
_CHEER_TOKEN_RE = re.compile(r"(\S+?)(\d+)")

# Twitch's global cheermote prefixes (Helix "Get Cheermotes", type global_first_party /
# global_third_party). Channels may add their own; callers can pass a longer tuple.
GLOBAL_CHEERMOTES = (
    "cheer", "doodlecheer", "biblethump", "cheerwhal", "corgo", "uni", "showlove", "party",
    "seemsgood", "pride", "kappa", "frankerz", "heyguys", "dansgame", "elegiggle", "trihard",
    "kreygasm", "4head", "swiftrage", "notlikethis", "failfish", "vohiyo", "pjsalt",
    "mrdestructoid", "bday", "ripcheer", "shamrock", "bitboss", "streamlabs", "muxy",
    "holidaycheer", "goal", "anon", "charity",
)  # fmt: skip


Cheers = tuple[str, int, int, int]


@dataclass(slots=True, frozen=True)
class Cheer:
    name: str
    amount: int
    position: int  # code-point index of the cheer's first character
    length: int


_GLOBAL_KNOWN = frozenset(prefix.lower() for prefix in GLOBAL_CHEERMOTES)


def find_cheers(text: str, prefixes: tuple[str, ...] = GLOBAL_CHEERMOTES) -> list[Cheer]:
    """Cheermotes (``cheer100``) in a message that carried bits, positions in code points."""
    known = (
        _GLOBAL_KNOWN if prefixes is GLOBAL_CHEERMOTES else {prefix.lower() for prefix in prefixes}
    )
    return [Cheer(*span) for span in cheer_spans(text, known)]


def _cheer_amount(digits: str) -> int | None:
    """No cheer is worth more than 64 bits: a token with a larger amount is just text (and
    int() would refuse past 4300 digits)."""
    if len(digits) > 4000:
        return None
    amount = int(digits)
    return amount if amount <= INT64_MAX else None


def cheer_spans(text: str, known: frozenset[str] | set[str] = _GLOBAL_KNOWN) -> list[Cheers]:
    """``find_cheers`` as ``(name, amount, position, length)`` tuples (no Cheer objects)."""
    spans = []
    end = 0
    for word in text.split():
        start = text.find(word, end)  # the token itself: only whitespace lies in between
        end = start + len(word)
        if word[-1].isdecimal():
            match = _CHEER_TOKEN_RE.fullmatch(word)
            if match is not None:
                name, digits = match.groups()
                amount = _cheer_amount(digits) if name.lower() in known else None
                if amount is not None:
                    spans.append((name, amount, start, len(word)))
    return spans
