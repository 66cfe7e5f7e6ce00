"""Twitch's rules for a bot that sends chat: one engine for IRC PRIVMSG and Helix sends.

The simulator is the referee, so the limits are Twitch's exactly, with no margin: a sender
that keeps its own margin never breaches here; one that does not, does. Every send is
recorded (``sends``), every breach too (``breaches``), and so are the things a sender must
never do: a chat-command attempt (``commands``) and a CR/LF smuggled into a PRIVMSG
(``injections``). Sources for each rule: docs/simulator.md, "Sending".

Nothing here runs unless a bot sends, so the chat firehose does not pay for it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ingress_egress.simulator.traffic import EMOTE_IDS, user_id_for

Role = Literal["broadcaster", "moderator", "vip", "none"]
ROLES: tuple[Role, ...] = ("broadcaster", "moderator", "vip", "none")
PRIVILEGED: frozenset[str] = frozenset({"broadcaster", "moderator", "vip"})

WINDOW_S = 30.0  # the rolling window of the per-user limits and of msg_duplicate
LIMIT = 20  # messages per window where the bot is not broadcaster, moderator or VIP
LIMIT_PRIVILEGED = 100  # where it is (those messages still count towards the 20)
LIMIT_VERIFIED = 7_500  # a verified bot, whatever the role
CHANNEL_INTERVAL_S = 1.0  # one message per second per channel when not privileged
MAX_CODE_POINTS = 500
DEFAULT_LOCKOUT_S = 1800.0  # Twitch: 30 minutes to an hour of being ignored after a breach

# Twitch strips U+E0000 (the old "make a repeat distinct" character), so it makes no text
# distinct; U+034F (combining grapheme joiner) survives and does.
_STRIPPED = str.maketrans("", "", "\U000e0000")
ACTION_PREFIX = "\x01ACTION "

Clock = Callable[[], float]


@dataclass(frozen=True)
class BotAccount:
    """A login the simulator knows: its token logs in over IRC and authorizes Helix calls."""

    login: str
    user_id: str
    token: str = field(repr=False)  # a secret: never in a repr, a log line or an answer
    verified: bool = False
    scopes: tuple[str, ...] = ("chat:read", "chat:edit", "user:write:chat", "user:bot")

    @classmethod
    def parse(cls, spec: str) -> BotAccount:
        """``login:userid:token`` or ``login:userid:token:verified`` (the CLI's ``--bot``)."""
        parts = spec.split(":")
        if len(parts) not in (3, 4) or not all(parts[:3]):
            raise ValueError(f"a bot is login:userid:token[:verified], got {spec!r}")
        if len(parts) == 4 and parts[3] not in ("verified", ""):
            raise ValueError(f"the fourth field of a bot can only be 'verified', got {parts[3]!r}")
        login = parts[0].lower()
        return cls(login, parts[1], parts[2], verified=len(parts) == 4 and bool(parts[3]))

    def public(self) -> dict[str, Any]:
        """What may be shown (control endpoint): everything but the token."""
        return {"login": self.login, "user_id": self.user_id, "verified": self.verified}


@dataclass
class ChannelSettings:
    """One channel as the bot sees it. ``followers_only``: minutes, -1 = off (the bot is
    taken not to follow, so any value >= 0 refuses it unless privileged)."""

    role: Role = "none"
    slow: int = 0
    followers_only: int = -1
    subs_only: bool = False
    emote_only: bool = False
    banned: bool = False
    suspended: bool = False

    @property
    def privileged(self) -> bool:
        return self.role in PRIVILEGED

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (field -> value), checked; ``ValueError`` names a bad one."""
        for name, value in changes.items():
            if name == "role":
                if value not in ROLES:
                    raise ValueError(f"role must be one of {', '.join(ROLES)}, got {value!r}")
            elif name in ("slow", "followers_only"):
                low = 0 if name == "slow" else -1
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            elif name in ("subs_only", "emote_only", "banned", "suspended"):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false, got {value!r}")
            else:
                raise ValueError(f"unknown channel setting {name!r}")
        for name, value in changes.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SendRecord:
    """One message a bot sent, as Twitch received it. ``outcome``: ``accepted``, a NOTICE
    msg-id (``msg_duplicate``, ...), ``ignored`` (lockout or a breach: dropped silently) or
    ``too_long`` (dropped silently). ``id`` is the message id when it was accepted."""

    at: float  # time.time()
    login: str
    channel: str
    text: str
    id: str
    outcome: str
    via: str  # "irc" or "helix"
    privileged: bool


@dataclass(frozen=True)
class Breach:
    at: float
    login: str
    channel: str
    limit: str  # "window_20", "window_100", "window_verified", "channel_1s", "slow"


@dataclass(frozen=True)
class CommandAttempt:
    at: float
    login: str
    channel: str
    text: str


@dataclass(frozen=True)
class Injection:
    """A line that arrived on a bot's connection right after a PRIVMSG without being one of
    the commands a sender needs: most likely a CR/LF smuggled into the text."""

    at: float
    login: str
    line: str


@dataclass(frozen=True)
class Decision:
    """What Twitch does with one message: relay it (``accepted``), answer a NOTICE
    (``notice`` = msg-id, ``notice_text``), or nothing at all (``ignored``/``too_long``)."""

    outcome: str
    text: str  # as relayed (U+E0000 stripped)
    action: bool
    privileged: bool
    notice_text: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"

    @property
    def notice(self) -> str | None:
        return self.outcome if self.notice_text else None


@dataclass
class _BotState:
    window: deque[float] = field(default_factory=deque)  # monotonic times of every send
    locked_until: float = 0.0
    last_taken: dict[str, tuple[float, str]] = field(default_factory=dict)  # channel -> (t, text)


def normalized(text: str) -> str:
    """The text as Twitch compares repeats: U+E0000 removed, surrounding whitespace too."""
    return text.translate(_STRIPPED).strip()


def is_command(text: str) -> bool:
    """A chat-command attempt: after leading whitespace the text starts with ``/`` or ``.``
    (``/me`` aside, which is an action)."""
    stripped = text.lstrip()
    return stripped[:1] in ("/", ".") and not _me_text(stripped)


def _me_text(stripped: str) -> str | None:
    for prefix in ("/me ", ".me "):
        if stripped.startswith(prefix):
            return stripped[len(prefix) :]
    return None


def as_action(text: str) -> tuple[str, bool]:
    """``(body, is_action)``: ``\\x01ACTION x\\x01`` and ``/me x`` are the action ``x``."""
    if text.startswith(ACTION_PREFIX) and text.endswith("\x01"):
        return text[len(ACTION_PREFIX) : -1], True
    me = _me_text(text.lstrip())
    if me is not None:
        return me, True
    return text, False


def emotes_only(text: str) -> bool:
    words = text.split()
    return bool(words) and all(word in EMOTE_IDS for word in words)


class ChatRules:
    """Accounts, per-channel settings, the limits and the record of every send.

    ``lockout_s``: how long a bot is silently ignored after breaching the 30 s limit (except
    where privileged). ``clock``: monotonic seconds (tests may pass a fake one); records carry
    wall-clock ``time.time()`` as well.
    """

    def __init__(
        self,
        accounts: Iterable[BotAccount] = (),
        *,
        lockout_s: float = DEFAULT_LOCKOUT_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self.accounts: dict[str, BotAccount] = {}
        for account in accounts:
            self.add_account(account)
        self.lockout_s = lockout_s
        self.clock = clock
        self.channels: dict[str, ChannelSettings] = {}
        self.sends: list[SendRecord] = []
        self.breaches: list[Breach] = []
        self.commands: list[CommandAttempt] = []
        self.injections: list[Injection] = []
        self._bots: dict[str, _BotState] = {}

    # -- accounts and channels -------------------------------------------------------------

    def add_account(self, account: BotAccount) -> None:
        self.accounts[account.login] = account

    def by_token(self, token: str) -> BotAccount | None:
        return next((a for a in self.accounts.values() if a.token == token), None)

    def account_for_login(self, login: str, token: str) -> BotAccount | None:
        """The account an IRC login with ``PASS oauth:<token>`` is; ``None`` when refused.
        With no accounts configured any token is taken (an open simulator, as before bots
        existed), as a non-verified bot with the simulator's user id for the login."""
        if not self.accounts:
            return BotAccount(login, user_id_for(login), token)
        account = self.accounts.get(login)
        return account if account is not None and account.token == token else None

    def settings(self, channel: str) -> ChannelSettings:
        key = channel.lstrip("#").lower()
        found = self.channels.get(key)
        if found is None:
            found = self.channels[key] = ChannelSettings()
        return found

    def set_channel(self, channel: str, **changes: Any) -> ChannelSettings:
        """Change a channel's settings (``role``, ``slow``, ...); applies to the next send."""
        settings = self.settings(channel)
        settings.update(changes)
        return settings

    def locked_until(self, login: str) -> float:
        """Monotonic time until which the bot is ignored (0 = not locked out)."""
        state = self._bots.get(login)
        return state.locked_until if state is not None else 0.0

    def clear_lockout(self, login: str | None = None) -> None:
        for name, state in self._bots.items():
            if login is None or name == login:
                state.locked_until = 0.0

    def reset_records(self) -> None:
        """Forget every record and window (between benchmark runs)."""
        self.sends.clear()
        self.breaches.clear()
        self.commands.clear()
        self.injections.clear()
        self._bots.clear()

    # -- the referee -----------------------------------------------------------------------

    def judge(self, account: BotAccount, channel: str, text: str) -> Decision:
        """Decide what Twitch does with ``text`` sent by ``account`` to ``channel`` now and
        count it in the bot's window (``record`` then keeps it, with its id)."""
        settings = self.settings(channel)
        body, action = as_action(text)
        body = body.translate(_STRIPPED)
        if is_command(text):
            self.commands.append(CommandAttempt(time.time(), account.login, channel, text))
        outcome, notice_text = self._outcome(account, settings, channel, body, text)
        return Decision(outcome, body, action, settings.privileged, notice_text)

    def _outcome(
        self, account: BotAccount, settings: ChannelSettings, channel: str, body: str, text: str
    ) -> tuple[str, str]:
        now = self.clock()
        state = self._bots.setdefault(account.login, _BotState())
        window = state.window
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        window.append(now)  # every message Twitch receives uses up budget, dropped or not
        if state.locked_until > now and not settings.privileged:
            return "ignored", ""
        breached = self._window_breach(account, settings, len(window) - 1)
        if breached:
            self.breaches.append(Breach(time.time(), account.login, channel, breached))
            state.locked_until = now + self.lockout_s
            return "ignored", ""
        if settings.suspended:
            return "msg_channel_suspended", "This channel does not exist or has been suspended."
        if settings.banned:
            return "msg_banned", f"You are permanently banned from talking in {channel}."
        if len(body) > MAX_CODE_POINTS:
            return "too_long", ""
        if is_command(text):
            command = text.lstrip().split(" ", 1)[0]
            return "unrecognized_cmd", f"Unrecognized command: {command}"
        if not settings.privileged:
            refused = self._channel_modes(settings, channel, body)
            refused = refused or self._channel_pace(account, state, settings, channel, body, now)
            if refused is not None:
                return refused
        state.last_taken[channel] = (now, normalized(body))
        return "accepted", ""

    @staticmethod
    def _window_breach(account: BotAccount, settings: ChannelSettings, before: int) -> str:
        """The limit this message breaks given ``before`` messages already in the window."""
        if account.verified:
            return "window_verified" if before >= LIMIT_VERIFIED else ""
        if settings.privileged:
            return "window_100" if before >= LIMIT_PRIVILEGED else ""
        return "window_20" if before >= LIMIT else ""

    @staticmethod
    def _channel_modes(
        settings: ChannelSettings, channel: str, body: str
    ) -> tuple[str, str] | None:
        """Followers-only, subscribers-only and emote-only (the bot follows no one, is
        nobody's subscriber)."""
        if settings.followers_only == 0:
            return (
                "msg_followersonly_zero",
                f"This room is in followers-only mode. Follow {channel} to join the community!",
            )
        if settings.followers_only > 0:
            return (
                "msg_followersonly",
                f"This room is in {settings.followers_only} minutes followers-only mode. "
                f"Follow {channel} to join the community!",
            )
        if settings.subs_only:
            return (
                "msg_subsonly",
                "This room is in subscribers-only mode. To talk, purchase a channel "
                f"subscription at https://www.twitch.tv/products/{channel}/ticket?ref="
                "subscriber_only_mode_chat.",
            )
        if settings.emote_only and not emotes_only(body):
            return (
                "msg_emoteonly",
                "This room is in emote-only mode. You can find your currently available "
                "emoticons using the smiley in the chat text area.",
            )
        return None

    def _channel_pace(
        self,
        account: BotAccount,
        state: _BotState,
        settings: ChannelSettings,
        channel: str,
        body: str,
        now: float,
    ) -> tuple[str, str] | None:
        """Slow mode, one message a second, and repeats, against the last taken message."""
        last = state.last_taken.get(channel)
        if last is None:
            return None
        since = now - last[0]
        if settings.slow and since < settings.slow:
            self.breaches.append(Breach(time.time(), account.login, channel, "slow"))
            wait = max(1, math.ceil(settings.slow - since))
            return (
                "msg_slowmode",
                "This room is in slow mode and you are sending messages too quickly. "
                f"You will be able to talk again in {wait} seconds.",
            )
        if since < CHANNEL_INTERVAL_S:
            self.breaches.append(Breach(time.time(), account.login, channel, "channel_1s"))
            return (
                "msg_ratelimit",
                "Your message was not sent because you are sending messages too quickly.",
            )
        if since < WINDOW_S and last[1] == normalized(body):
            return (
                "msg_duplicate",
                "Your message was not sent because it is identical to the previous one you "
                "sent, less than 30 seconds ago.",
            )
        return None

    def record(
        self,
        account: BotAccount,
        channel: str,
        text: str,
        decision: Decision,
        msg_id: str,
        via: str,
    ) -> SendRecord:
        rec = SendRecord(
            time.time(),
            account.login,
            channel,
            text,
            msg_id,
            decision.outcome,
            via,
            decision.privileged,
        )
        self.sends.append(rec)
        return rec

    def record_injection(self, login: str, line: str) -> None:
        self.injections.append(Injection(time.time(), login, line))

    # -- views -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every record as JSON-ready dicts (the control endpoint's ``GET /record``)."""
        return {
            "sends": [asdict(s) for s in self.sends],
            "breaches": [asdict(b) for b in self.breaches],
            "commands": [asdict(c) for c in self.commands],
            "injections": [asdict(i) for i in self.injections],
        }


def badges_for(role: str) -> str:
    """The ``badges`` tag a role shows (the bot is no subscriber)."""
    return {"broadcaster": "broadcaster/1", "moderator": "moderator/1", "vip": "vip/1"}.get(
        role, ""
    )
