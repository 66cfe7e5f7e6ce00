"""The project's chat simulator in its own process, recording what it sent.

Like ``ingress-egress simulate`` but with ``record=True``: once ``--count`` messages are out
it writes every ``[id, text]`` it sent (JSON lines, all channels) to ``--out`` and a
``.done`` marker beside it, then keeps serving until SIGTERM. Prints ``ready`` when it listens.

    python bench/sim_proc.py --port 6667 --ws-port 80 --count 200000 [--rate 5000] --out F
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
from pathlib import Path

from ingress_egress.simulator import ChatSimulator


async def serve(args: argparse.Namespace) -> None:
    sim = ChatSimulator(
        port=args.port,
        ws_port=args.ws_port,
        rate=args.rate or None,
        count=args.count,
        seed=args.seed,
        record=args.out is not None,
        prebuilt=not args.rate,  # drained: only write, so the simulator is not the ceiling
        # Paced: no template building on the traffic core mid-run (not for idle or drained
        # runs: 1,000 idle channels would wait ~4 s for theirs at the JOIN).
        warm_templates=bool(args.rate),
    )
    await sim.start()
    # A measuring instrument: its recording of what it sent grows by a tuple per message, and
    # cyclic-GC passes over it would stall sends (and count as the client's latency).
    gc.freeze()
    gc.disable()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {sim.port} {sim.ws_port}", flush=True)
    if args.count and args.out is not None:
        waiter = asyncio.ensure_future(sim.wait_sent(args.count, timeout=24 * 3600))
        done, _ = await asyncio.wait(
            {waiter, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED"
        )
        if waiter in done:
            out = Path(args.out)
            with out.open("w", encoding="utf-8") as fh:  # noqa: ASYNC230 (after the run)
                for pairs in sim.sent.values():
                    for pair in pairs:
                        fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
            out.with_suffix(".done").write_text(str(sim.sent_count))
        else:
            waiter.cancel()
    await stop.wait()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sim.stop(), 5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ws-port", type=int, default=None)
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
