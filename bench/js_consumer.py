"""A JetStream consumer for the service's stream: the end of the service's latency path.

Subscribes (``--kind``: a plain or an ordered push consumer) to ``--subject`` on
``--stream``, notes the wall-clock receipt of each envelope and its ``payload.sentAt`` (the
simulator's ``tmi-sent-ts``), and stops after ``--expected`` chat messages or ``--idle``
seconds without one. Pairs (id, text) go to ``--out``, latencies (ms) to ``--out`` + ".lat";
prints ``ready`` once subscribed, then one JSON line of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from array import array
from datetime import datetime

import nats
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from peers.recorder import chat_pair


async def run(args: argparse.Namespace) -> None:
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    # Receipt times in an array and payloads (bytes) in a list: nothing per message for the
    # garbage collector to walk, so its pauses do not show up as latency.
    stamps = array("d")
    payloads: list[bytes] = []
    chat = 0
    done = asyncio.Event()

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        nonlocal chat
        stamps.append(time.time())
        payloads.append(msg.data)
        if b'"external.chat.message.v1"' in msg.data:
            chat += 1
            if chat >= args.expected:
                done.set()

    try:
        await js.stream_info(args.stream)
    except nats.js.errors.NotFoundError:
        # Created here (as the service would: same subject, 2-minute de-duplication window)
        # so the consumer is subscribed before the service starts publishing.
        await js.add_stream(name=args.stream, subjects=[args.subject], duplicate_window=120)
    if args.kind == "ordered":
        sub = await js.subscribe(args.subject, cb=on_msg, ordered_consumer=True, stream=args.stream)
    else:
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
        sub = await js.subscribe(
            args.subject, cb=on_msg, stream=args.stream, manual_ack=True, config=config
        )
    # A measuring instrument: no cyclic-GC pauses of its own counted as the service's
    # latency (nothing it allocates per message forms cycles; it runs for seconds).
    gc.freeze()
    gc.disable()
    print("ready", flush=True)
    seen, quiet = -1, 0
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), args.idle)
        except TimeoutError:
            quiet = quiet + 1 if chat == seen else 0
            # Stalled: nothing new for --idle seconds (thrice that before the first one, so a
            # slow service start is waited for, and a service that died is not waited for
            # forever).
            if quiet >= (1 if chat else 3):
                break
            seen = chat
    await sub.unsubscribe()
    await nc.close()
    lat: list[float] = []
    with open(args.out, "w", encoding="utf-8") as fh:  # noqa: ASYNC230 (after the run)
        for now, data in zip(stamps, payloads, strict=True):
            env = json.loads(data)
            pair = chat_pair(env)
            if pair is None:
                continue
            payload = env["payload"]
            fh.write(json.dumps(list(pair), ensure_ascii=False) + "\n")
            if payload.get("sentAt"):
                sent = datetime.fromisoformat(payload["sentAt"].replace("Z", "+00:00"))
                lat.append(now * 1000.0 - sent.timestamp() * 1000.0)
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as fh:  # noqa: ASYNC230
            pairs = zip(stamps, payloads, strict=True)
            json.dump([[now, json.loads(d)["payload"].get("sentAt")] for now, d in pairs], fh)
    with open(args.out + ".lat", "w", encoding="ascii") as fh:  # noqa: ASYNC230
        fh.write("\n".join(f"{x:.3f}" for x in lat))
    print(json.dumps({"count": chat}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--idle", type=float, default=8.0)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--kind",
        choices=("plain", "ordered"),
        default="plain",
        help="plain: push, AckPolicy none (paced latency); ordered: flow-controlled (draining "
        "a full stream without being cut off as a slow consumer)",
    )
    parser.add_argument("--trace", default=None, help="write [receipt, sentAt] per envelope")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
