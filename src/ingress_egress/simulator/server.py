"""A local Twitch chat (TMI) server: the composition of its parts and its public state.

``ChatSimulator``'s ``IrcListener`` (listener.py) accepts TCP (and optionally WebSocket)
connections and gives each an ``IrcSession`` (session.py: login, CAP, JOIN/PART, PING,
PRIVMSG). Chat comes from one
producer task: the ``Firehose`` (firehose.py: generated or replayed chat for whoever joined,
the benchmarks' path) or, with ``live_channels``, the ``LiveStream`` (live.py: chat on the
clock, heard or not). Bots that log in with a known token may send; ``ChatRules`` (rules.py)
referees every send, IRC or Helix (helix.py), and ``BotChat`` (bot_chat.py) relays what is
taken. The control endpoint (control.py) changes channel settings and reads the records from
outside the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ingress_egress.simulator.bot_chat import BotChat, Sent
from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.firehose import Firehose
from ingress_egress.simulator.hub import ChatLog, Hub
from ingress_egress.simulator.listener import IrcListener
from ingress_egress.simulator.live import LiveMessage, LiveStream
from ingress_egress.simulator.rules import (
    DEFAULT_LOCKOUT_S,
    BotAccount,
    Breach,
    ChannelSettings,
    ChatRules,
    CommandAttempt,
    Injection,
    SendRecord,
)
from ingress_egress.simulator.session import SessionContext, SessionRecords
from ingress_egress.simulator.traffic import TrafficGenerator, room_id_for

if TYPE_CHECKING:
    from ingress_egress.simulator.helix import HelixMock
    from ingress_egress.simulator.http_server import EmbeddedHttp

__all__ = ["ChatSimulator", "LiveMessage"]


class ChatSimulator:
    """A TMI-compatible IRC server with a configurable chat firehose and fault switches.

    ``sent[channel]`` lists ``(message_id, text)`` of every chat line written to at least one
    client socket, in send order; ``sent_count`` counts them. A message that no client could
    take (its only recipient reached a fault budget) is kept and sent to the next client that
    joins its channel, so a reconnecting client gets the remainder of the stream.

    For benchmarks: ``prebuilt=True`` (a ``count`` at full speed, generated chat) generates
    and encodes the whole stream when chat first has a listener and then only writes it, so
    the simulator's Python does not cap what a client can drain (``tmi-sent-ts`` is then the
    build time). ``warm_templates=True`` builds a channel's chat templates (~60 us each) when
    it is first joined rather than while its first messages are due, so that work does not
    share a core with what is measured during the first seconds.

    Sending: ``bots`` are the accounts that may log in with ``PASS oauth:<token>`` (with none
    configured any ``oauth:`` token is taken); ``set_channel`` sets the bot's role and the
    channel's modes; ``bot_sends``, ``breaches``, ``command_attempts`` and ``injections`` are
    the referee's records. ``control_port`` / ``helix_port`` (``None`` = off, 0 = a free
    port) start the control endpoint and the Helix mock. ``clock`` (monotonic seconds) is
    the referee's: a test may pass a fake one to step through the limits.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int | None = None,
        rate: float | None = None,
        count: int | None = None,
        replay_lines: Sequence[str] | None = None,
        faults: Faults | None = None,
        seed: int = 1,
        record: bool = True,
        *,
        ping_interval: float | None = 60.0,
        batch_size: int = 512,
        pool_size: int = 1024,
        prebuilt: bool = False,
        warm_templates: bool = False,
        live_channels: Sequence[str] = (),
        live_events_every: int | None = None,
        viewer_pings_every: int | None = None,
        bots: Iterable[BotAccount] = (),
        lockout_s: float = DEFAULT_LOCKOUT_S,
        control_port: int | None = None,
        helix_port: int | None = None,
        helix_client_id: str = "simulator-client-id",
        helix_points_per_minute: int = 800,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live_channels = tuple(dict.fromkeys(c.lstrip("#").lower() for c in live_channels))
        _check_options(
            batch_size=batch_size,
            live=bool(self.live_channels),
            rate=rate,
            replay=replay_lines is not None,
            prebuilt=prebuilt,
            live_events_every=live_events_every,
            viewer_pings_every=viewer_pings_every,
        )
        self.live_events_every = live_events_every
        self.viewer_pings_every = viewer_pings_every
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.rate = rate if rate else None
        self.count = count
        self.faults = faults if faults is not None else Faults()
        self.seed = seed
        self.batch_size = batch_size
        self.warm_templates = warm_templates
        self.generator = TrafficGenerator(seed, pool_size=pool_size)
        self.control_port = control_port
        self.helix_port = helix_port
        self.helix_client_id = helix_client_id
        self.helix_points_per_minute = helix_points_per_minute

        self._hub = Hub()
        self._log = ChatLog(record)
        self._records = SessionRecords()
        self.rules = ChatRules(bots, lockout_s=lockout_s, clock=clock)
        self._bots = BotChat(self._hub, self.rules)
        self._sessions = SessionContext(
            self._hub, self.faults, self._records, self._bots, self._on_first_join
        )
        self._firehose = Firehose(
            self._hub,
            self._log,
            self.generator,
            self.faults,
            self._spawn,
            rate=self.rate,
            count=count,
            batch_size=batch_size,
            prebuilt=prebuilt and count is not None and not rate and replay_lines is None,
            replay_lines=replay_lines,
            viewer_pings_every=viewer_pings_every,
        )
        self._live: LiveStream | None = None
        if self.live_channels:
            assert self.rate is not None  # checked above
            self._live = LiveStream(
                self._hub,
                self._log,
                self.generator,
                self.live_channels,
                rate=self.rate,
                count=count,
                batch_size=batch_size,
                events_every=live_events_every,
                viewer_pings_every=viewer_pings_every,
            )
        self._listener = IrcListener(self._hub, self._sessions, self.faults)
        self._listener.ping_interval = ping_interval
        self._emitter: asyncio.Task[None] | None = None
        self._aux: set[asyncio.Task[None]] = set()
        self._http: list[EmbeddedHttp] = []  # the control and Helix servers while running
        self.helix: HelixMock | None = None  # the Helix mock, once started with helix_port

    # -- public state -------------------------------------------------------------------

    @property
    def ping_interval(self) -> float | None:
        """Seconds between the server's PINGs to each connection (``None``/0 = never)."""
        return self._listener.ping_interval

    @ping_interval.setter
    def ping_interval(self, seconds: float | None) -> None:
        self._listener.ping_interval = seconds

    @property
    def prebuilt(self) -> bool:
        return self._firehose.prebuilt

    @property
    def record(self) -> bool:
        return self._log.record

    @property
    def sent(self) -> dict[str, list[tuple[str, str]]]:
        return self._log.sent

    @property
    def sent_count(self) -> int:
        return self._log.count

    @property
    def joins(self) -> list[tuple[int, str]]:
        return self._records.joins

    @property
    def parts(self) -> list[tuple[int, str]]:
        return self._records.parts

    @property
    def logins(self) -> list[str]:
        return self._records.logins

    @property
    def pongs(self) -> list[tuple[int, str]]:
        return self._records.pongs

    @property
    def privmsgs(self) -> list[tuple[int, str, str]]:
        """``(connection index, channel, text)`` of every PRIVMSG a logged-in user sent."""
        return self._records.privmsgs

    @property
    def connections(self) -> int:
        return len(self._hub.clients)

    @property
    def connections_made(self) -> int:
        """Connections accepted so far: the next one's index (as in ``joins``/``parts``)."""
        return self._hub.next_index

    @property
    def finished(self) -> bool:
        """Whether ``count`` messages (or the whole replay) have been sent; in live mode,
        whether ``count`` have been produced, heard or not."""
        if self._live is not None:
            return self._live.finished
        return self._firehose.finished

    @property
    def live_log(self) -> list[LiveMessage]:
        """Every live message produced (``record=True``), heard or not."""
        return self._live.entries if self._live is not None else []

    @property
    def live_count(self) -> int:
        """Messages the live stream produced (heard or not)."""
        return self._live.produced if self._live is not None else 0

    @property
    def unheard_count(self) -> int:
        """Live messages written to no connection: lost, as they would be on Twitch."""
        return self._live.unheard_count if self._live is not None else 0

    def unheard(self) -> list[LiveMessage]:
        """The recorded live messages nobody received (``record=True``)."""
        return [m for m in self.live_log if m.receivers == 0]

    def stop_live(self) -> None:
        """Stop the live stream for good (``pause()`` stops it until ``resume()``)."""
        if self._live is not None:
            self._live.stopped = True
        self._hub.notify()

    def pause(self) -> None:
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        self._firehose.paused = paused
        if self._live is not None:
            self._live.paused = paused
        self._hub.notify()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
    ) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the state changes."""
        hub = self._hub
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await hub.changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"condition not met within {timeout}s (sent_count={self.sent_count}, "
                f"connections={self.connections})"
            ) from None

    async def wait_sent(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``sent_count >= n``; raises ``TimeoutError`` otherwise."""
        await self.wait_until(lambda: self.sent_count >= n, timeout)
        return True

    # -- sending: the bot side -------------------------------------------------------------

    def add_bot(self, account: BotAccount) -> None:
        """Let ``account`` log in (IRC) and call Helix with its token."""
        self.rules.add_account(account)

    def set_channel(self, channel: str, **settings: Any) -> ChannelSettings:
        """Change the bot's role (``role="moderator"``) or the channel's modes (``slow=30``,
        ``followers_only=10``, ``subs_only``, ``emote_only``, ``banned``, ``suspended``);
        the next send sees the change, and a change of mode is announced to the channel's
        connections with a ROOMSTATE, as Twitch does. ``ValueError`` for a bad setting."""
        channel = channel.lstrip("#").lower()
        before = self.rules.settings(channel).as_dict()
        after = self.rules.set_channel(channel, **settings)
        changed = {k: v for k, v in after.as_dict().items() if before[k] != v}
        if changed and self._hub.subs.get(channel):  # someone to tell (so the loop runs)
            self._spawn(
                self._bots.announce_modes(channel, changed), f"chat-simulator-room-{channel}"
            )
        return after

    def channel_settings(self, channel: str) -> ChannelSettings:
        return self.rules.settings(channel)

    @property
    def bot_sends(self) -> list[SendRecord]:
        """Every message a bot sent (IRC or Helix), with its outcome, in arrival order."""
        return self.rules.sends

    @property
    def breaches(self) -> list[Breach]:
        return self.rules.breaches

    @property
    def command_attempts(self) -> list[CommandAttempt]:
        return self.rules.commands

    @property
    def injections(self) -> list[Injection]:
        return self.rules.injections

    async def send_as_bot(self, login: str, channel: str, text: str) -> Sent:
        """Send as a configured bot without a connection (as Helix does): judged, recorded
        and relayed exactly like a PRIVMSG."""
        account = self.rules.accounts.get(login.lower())
        if account is None:
            raise KeyError(f"no bot account {login!r}")
        return await self._bots.send(account, channel, text, via="api")

    @property
    def control_url(self) -> str | None:
        return f"http://{self.host}:{self.control_port}" if self._running("control") else None

    @property
    def helix_url(self) -> str | None:
        return f"http://{self.host}:{self.helix_port}" if self._running("helix") else None

    def _running(self, name: str) -> bool:
        return any(server.name == f"chat-simulator-{name}" for server in self._http)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._firehose.stopping = False
        if self._live is not None:
            self._live.stopping = False
        # Faults may have been replaced since construction: every part uses the current one.
        self._listener.faults = self._sessions.faults = self._firehose.faults = self.faults
        self.port, self.ws_port = await self._listener.start(self.host, self.port, self.ws_port)
        await self._start_http()
        emit = self._live.run() if self._live is not None else self._firehose.run()
        self._emitter = asyncio.create_task(emit, name="chat-simulator-emitter")

    async def _start_http(self) -> None:
        if self.helix_port is None and self.control_port is None:
            return
        # Imported only when asked for: Starlette and uvicorn would weigh on every simulator
        # (start-up, and a heap the firehose's garbage collections would walk).
        from ingress_egress.simulator.control import control_app
        from ingress_egress.simulator.helix import HelixMock
        from ingress_egress.simulator.http_server import EmbeddedHttp

        if self.helix_port is not None:
            self.helix = HelixMock(
                self.rules,
                self._bots,
                client_id=self.helix_client_id,
                points_per_minute=self.helix_points_per_minute,
                known_channels=self._known_channels,
            )
            helix = EmbeddedHttp(
                self.helix.app(), self.host, self.helix_port, "chat-simulator-helix"
            )
            self.helix_port = await helix.start()
            self._http.append(helix)
        if self.control_port is not None:
            app = control_app(self.rules, self.set_channel, lambda: self.helix)
            control = EmbeddedHttp(app, self.host, self.control_port, "chat-simulator-control")
            self.control_port = await control.start()
            self._http.append(control)

    def _known_channels(self) -> tuple[str, ...]:
        return (*self._hub.subs, *self.live_channels)

    async def stop(self) -> None:
        """Close the listeners and every client connection; cancel all simulator tasks."""
        self._firehose.stopping = True
        if self._live is not None:
            self._live.stopping = True
        self._hub.notify()
        self._listener.close()
        for server in self._http:
            await server.stop()
        self._http.clear()
        tasks = [t for t in (self._emitter, *self._aux) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._listener.disconnect_all()
        self._emitter = None

    async def __aenter__(self) -> ChatSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connections ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)

    def _on_first_join(self, channel: str) -> None:
        if self.warm_templates:
            self.generator.warm(channel, room_id_for(channel))


def _check_options(
    *,
    batch_size: int,
    live: bool,
    rate: float | None,
    replay: bool,
    prebuilt: bool,
    live_events_every: int | None,
    viewer_pings_every: int | None,
) -> None:
    """``ValueError`` for options that are out of range or do not combine."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if live and (not rate or rate <= 0):
        raise ValueError("live_channels needs a rate > 0 (chat is produced on the clock)")
    if live and (replay or prebuilt):
        raise ValueError("live_channels cannot be combined with replay_lines or prebuilt")
    for name, every in (
        ("live_events_every", live_events_every),
        ("viewer_pings_every", viewer_pings_every),
    ):
        if every is not None and every < 1:
            raise ValueError(f"{name} must be >= 1")
