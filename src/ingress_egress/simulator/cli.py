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
from ingress_egress.simulator.server import ChatSimulator


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


def build_simulator(args: argparse.Namespace) -> ChatSimulator:
    """The simulator the options describe; ``ValueError`` for options that do not combine."""
    if args.live and not args.rate:
        raise ValueError("--live needs --rate (chat is produced on the clock)")
    if args.live_events_every is not None and not args.live:
        raise ValueError("--live-events-every needs --live")
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
    return ChatSimulator(
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
    )


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
