"""The ``ingress-egress`` command: serve (the service), normalize, simulate, demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingress-egress",
        description="Twitch chat -> platform Envelope -> internal.ingress.v1",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser(
        "serve", help="run the service (configured by environment variables; the default)"
    )

    normalize = commands.add_parser(
        "normalize", help="raw IRC lines (FILE or stdin) -> one JSON object per line on stdout"
    )
    normalize.add_argument("file", nargs="?", help="file of raw lines; '-' or omitted = stdin")
    normalize.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="TYPE",
        help="keep only this envelope type (message, notification, moderation, roomstate, or "
        "a full type name); repeatable. With a filter, error records go to stderr.",
    )
    normalize.add_argument(
        "--sent-time",
        action="store_true",
        help="stamp envelopes with the line's tmi-sent-ts instead of now (for backfills)",
    )
    normalize.add_argument(
        "--summary", action="store_true", help="print a JSON summary of counts to stderr"
    )

    from ingress_egress.simulator import cli as simulator_cli

    simulate = commands.add_parser("simulate", help="run the local Twitch chat simulator")
    simulator_cli.add_arguments(simulate)

    demo = commands.add_parser(
        "demo", help="a round trip: nats-server, simulator, the service as a bot, !ping answered"
    )
    demo.add_argument("--rate", type=float, default=5.0, help="simulated msg/s per channel")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port of the service")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "normalize":
        from ingress_egress.commands import normalize

        return normalize.main(args.file, args.types, args.sent_time, args.summary)
    if command == "simulate":
        from ingress_egress.simulator import cli as simulator_cli

        return simulator_cli.run(args)
    if command == "demo":
        from ingress_egress.commands import demo

        return demo.main(rate=args.rate, port=args.port)
    from ingress_egress.commands import serve

    return serve.main()


if __name__ == "__main__":
    sys.exit(main())
