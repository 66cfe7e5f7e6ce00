"""``ingress-egress simulate``: run the local Twitch chat simulator until Ctrl-C / SIGTERM.

The project CLI calls ``add_arguments(parser)`` and ``run(args)``; ``python -m
ingress_egress.simulator`` runs the same thing standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.rules import DEFAULT_LOCKOUT_S, BotAccount, ChannelSettings
from ingress_egress.simulator.server import ChatSimulator

# With --live, a viewer says !ping every this many chat messages unless told otherwise (the
# default stream, which benchmarks use, has none unless asked).
DEFAULT_VIEWER_PINGS_EVERY = 50


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _channel_list(text: str) -> tuple[str, ...]:
    channels = tuple(c.strip().lstrip("#").lower() for c in text.split(",") if c.strip())
    if not channels:
        raise argparse.ArgumentTypeError("needs at least one channel")
    return channels


def _bot(text: str) -> BotAccount:
    try:
        return BotAccount.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _channel_settings(text: str) -> tuple[str, dict[str, object]]:
    """``forsen:role=moderator,slow=3,subs_only=true`` -> ``("forsen", {...})``, checked."""
    channel, _, spec = text.partition(":")
    channel = channel.strip().lstrip("#").lower()
    changes: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        key = key.strip().replace("-", "_")
        if key in ("slow", "followers_only"):
            changes[key] = int(value) if value.strip().lstrip("-").isdigit() else value
        elif key == "role":
            changes[key] = value.strip()
        else:
            changes[key] = {"true": True, "1": True, "false": False, "0": False}.get(
                value.strip().lower(), value
            )
    if not channel or not changes:
        raise argparse.ArgumentTypeError("expected CHANNEL:key=value[,key=value...]")
    try:
        ChannelSettings().update(changes)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return channel, changes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=_non_negative_int, default=6667, help="IRC/TCP port (0 = pick a free one)"
    )
    parser.add_argument(
        "--ws-port",
        type=_non_negative_int,
        default=None,
        help="also serve IRC over WebSocket on this port (0 = pick a free one)",
    )
    parser.add_argument(
        "--rate",
        type=_non_negative_float,
        default=None,
        metavar="MSGS_PER_S",
        help="chat messages per second over all channels (omit or 0 = as fast as possible)",
    )
    parser.add_argument(
        "--count", type=_non_negative_int, default=None, help="stop after N messages in total"
    )
    parser.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="FILE",
        help="send these raw IRC lines (one a line) instead of generated chat",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for generated chat")
    parser.add_argument(
        "--prebuilt",
        action="store_true",
        help="with --count and no --rate: generate the whole stream before sending it, so "
        "the simulator only writes (benchmarks); tmi-sent-ts is then the build time",
    )
    parser.add_argument(
        "--live",
        type=_channel_list,
        default=(),
        metavar="CH1,CH2,...",
        help="live mode: chat for exactly these channels, produced on the clock at --rate "
        "whether or not anyone joined (what nobody was joined for is lost, as on Twitch)",
    )
    parser.add_argument(
        "--live-events-every",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --live: every Nth message is, in turn, a USERNOTICE sub, a CLEARCHAT "
        "timeout and a CLEARMSG",
    )
    parser.add_argument(
        "--viewer-pings-every",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="every Nth generated chat message is a viewer saying !ping (0 = never; default: "
        f"{DEFAULT_VIEWER_PINGS_EVERY} with --live, never otherwise)",
    )
    parser.add_argument(
        "--ping-interval",
        type=_non_negative_float,
        default=60.0,
        help="seconds between the server's PINGs (default 60; 0 = never)",
    )
    faults = parser.add_argument_group("fault switches")
    faults.add_argument(
        "--reconnect-after",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="send RECONNECT after N messages on a connection, then close it",
    )
    faults.add_argument(
        "--drop-after",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="close the TCP connection without goodbye after N messages",
    )
    faults.add_argument(
        "--reconnect-overlap",
        action="store_true",
        help="after RECONNECT keep sending chat until the connection closes (as Twitch does)",
    )
    faults.add_argument("--no-pong", action="store_true", help="stop answering PING")
    faults.add_argument(
        "--reject-login", action="store_true", help="fail every login with NOTICE + close"
    )
    faults.add_argument(
        "--join-limit",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="disconnect a login that sends more than N JOINs within 10 s",
    )
    faults.add_argument(
        "--suspended",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="answer JOINs to this channel with msg_channel_suspended (repeatable)",
    )

    sending = parser.add_argument_group("sending (bots, Helix mock, control endpoint)")
    sending.add_argument(
        "--bot",
        type=_bot,
        action="append",
        default=[],
        metavar="LOGIN:USERID:TOKEN[:verified]",
        help="a bot account that may log in with PASS oauth:TOKEN and call Helix with TOKEN "
        "(repeatable; with none, any oauth: token logs in)",
    )
    sending.add_argument(
        "--channel",
        type=_channel_settings,
        action="append",
        default=[],
        metavar="CHANNEL:KEY=VALUE,...",
        help="the bot's role and the channel's modes, e.g. forsen:role=moderator,slow=3 "
        "(keys: role, slow, followers_only, subs_only, emote_only, banned, suspended)",
    )
    sending.add_argument(
        "--lockout",
        type=_non_negative_float,
        default=DEFAULT_LOCKOUT_S,
        metavar="SECONDS",
        help="how long a bot is ignored after breaching the 30 s limit (default 1800)",
    )
    sending.add_argument(
        "--control-port",
        type=_non_negative_int,
        default=None,
        help="serve the control endpoint (JSON) on this port (0 = pick a free one)",
    )
    sending.add_argument(
        "--helix-port",
        type=_non_negative_int,
        default=None,
        help="serve the Helix mock and /oauth2/validate on this port (0 = pick a free one)",
    )
    sending.add_argument(
        "--helix-client-id",
        default="simulator-client-id",
        help="the Client-Id the Helix mock expects",
    )
    sending.add_argument(
        "--helix-points",
        type=_positive_int,
        default=800,
        metavar="N",
        help="the Helix point bucket per token, refilled per minute (default 800)",
    )


def build_simulator(args: argparse.Namespace) -> ChatSimulator:
    """The simulator the options describe; ``ValueError`` for options that do not combine."""
    if args.live and not args.rate:
        raise ValueError("--live needs --rate (chat is produced on the clock)")
    if args.live_events_every is not None and not args.live:
        raise ValueError("--live-events-every needs --live")
    ping_every = args.viewer_pings_every
    if args.live and ping_every is None:
        ping_every = DEFAULT_VIEWER_PINGS_EVERY
    replay_lines = None
    if args.replay is not None:
        text = args.replay.read_text(encoding="utf-8")
        replay_lines = [line for line in text.splitlines() if line.strip()]
    faults = Faults(
        reconnect_after=args.reconnect_after,
        drop_after=args.drop_after,
        reconnect_overlap=args.reconnect_overlap,
        no_pong=args.no_pong,
        reject_login=args.reject_login,
        join_limit_per_10s=args.join_limit,
        suspended_channels={c.lstrip("#").lower() for c in args.suspended},
    )
    sim = ChatSimulator(
        host=args.host,
        port=args.port,
        ws_port=args.ws_port,
        rate=args.rate or None,
        count=args.count,
        prebuilt=args.prebuilt,
        replay_lines=replay_lines,
        faults=faults,
        seed=args.seed,
        record=False,  # a long-running simulator must not keep every message in memory
        ping_interval=args.ping_interval or None,
        live_channels=args.live,
        live_events_every=args.live_events_every,
        viewer_pings_every=ping_every or None,
        bots=args.bot,
        lockout_s=args.lockout,
        control_port=args.control_port,
        helix_port=args.helix_port,
        helix_client_id=args.helix_client_id,
        helix_points_per_minute=args.helix_points,
    )
    for channel, changes in args.channel:
        sim.set_channel(channel, **changes)
    return sim


async def _serve(args: argparse.Namespace) -> None:
    sim = build_simulator(args)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    where = f"irc://{sim.host}:{sim.port}"
    if sim.live_channels:
        where += f" (live: {len(sim.live_channels)} channels at {sim.rate:g} msg/s)"
    if sim.ws_port is not None:
        where += f" ws://{sim.host}:{sim.ws_port}/"
    if sim.helix_url is not None:
        where += f" helix={sim.helix_url}"
    if sim.control_url is not None:
        where += f" control={sim.control_url}"
    print(f"twitch chat simulator listening on {where}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()
        if sim.live_channels:
            print(
                f"live: {sim.live_count} produced, {sim.unheard_count} heard by nobody",
                file=sys.stderr,
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM; returns the process exit code."""
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:  # e.g. the port is taken, --live without --rate
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ingress-egress simulate", description="Local Twitch chat (TMI) simulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
