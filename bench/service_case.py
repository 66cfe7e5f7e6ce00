"""One ingress-egress case in a process of its own (clean CPU and peak-RSS figures).

* ``--mode drain``: receive ``--expected`` messages as fast as the simulator sends them
  (``bench_service.measure``); with the memory bus the envelopes are checked against what
  the simulator sent (ids, texts) after the clock stops.
* ``--mode paced``: the same, at the simulator's fixed rate; with the memory bus the
  latency is the simulator's ``tmi-sent-ts`` -> the bus's ``send`` (with NATS a separate
  JetStream consumer measures it, see js_consumer.py).
* ``--mode idle``: join ``--channels`` channels with no traffic, then report RSS.

Prints one JSON line; pairs (id, text) go to ``--out`` for the integrity check.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_service import measure
from ingress_egress.bus.base import SendResult
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings, parse_irc_url, pure_python
from ingress_egress.envelope import OutboundMessage
from ingress_egress.service import Service
from peers.recorder import chat_pair, peak_rss_mb


class StampingMemory(MemoryPublisher):
    """The memory bus, noting when each envelope reached it (paced) or only its chat id.

    Drained, keeping 200k envelopes would dominate the peak RSS, so only the Twitch id of
    each chat message is kept (the integrity check is then by id; the NATS case checks
    texts at full speed, the paced case here too).
    """

    def __init__(self, paced: bool) -> None:
        super().__init__(keep=None if paced else 0)
        self.paced = paced
        self.stamps: list[float] = []
        self.ids: list[str] = []

    async def send_many(self, messages: Sequence[OutboundMessage]) -> SendResult:
        if self.paced:
            now = time.time()
            self.stamps += [now] * len(messages)
        else:
            chat = "external.chat.message.v1"
            self.ids += [m.dedup_id for m in messages if m.type == chat]
        return await super().send_many(messages)


def settings_for(args: argparse.Namespace, channels: tuple[str, ...]) -> Settings:
    return Settings.from_env({}).replace(
        ingress_egress_pure_python=pure_python(os.environ),
        message_bus_driver=args.driver,
        nats_url=args.nats_url,
        nats_stream=args.stream,
        bus_prefix=args.prefix,
        twitch_irc_url=parse_irc_url(args.url),
        twitch_channels=channels,
        host="127.0.0.1",
        port=0,
        queue_max_messages=max(100_000, args.expected),
        publish_max_in_flight=4096,
        spool_dir=args.spool_dir,
        # 1,000 JOINs at Twitch's default 20 per 10 s over connections opened every 2 s take
        # minutes; a verified bot may send 2,000 per 10 s, which the idle case assumes, and
        # the pool may open its connections back to back here.
        twitch_join_rate_limit=2000,
        irc_connect_interval_ms=50,
    )


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    channels = tuple(f"idle{i}" for i in range(args.channels))
    service = Service(settings_for(args, channels))
    t0 = time.perf_counter()
    await service.start()
    while service.view.readiness():
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"not ready: {service.view.readiness()[:3]}")
        await asyncio.sleep(0.01)
    ready_s = time.perf_counter() - t0
    await asyncio.sleep(args.settle)
    gc.collect()
    result = {
        "channels": len(service.state.joined) if hasattr(service.state, "joined") else None,
        "ready_after_start_s": round(ready_s, 3),
        "rss_mb": rss_mb(),
        "rss_peak_mb": peak_rss_mb(),
    }
    await service.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("drain", "paced", "idle"), required=True)
    parser.add_argument("--driver", default="memory")
    parser.add_argument("--url", required=True)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="BENCH")
    parser.add_argument("--prefix", default="bench.")
    parser.add_argument("--expected", type=int, default=0)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--spool-dir", default="", help="spool directory (default: no spool)")
    args = parser.parse_args()
    if args.mode == "idle":
        print(json.dumps(asyncio.run(idle(args))), flush=True)
        return
    publisher = StampingMemory(args.mode == "paced") if args.driver == "memory" else None
    kept: list[bytes] = []

    def keep(service: Service) -> None:
        if isinstance(service.publisher, MemoryPublisher):
            kept.extend(m.data for m in service.publisher.messages)

    channels = tuple(f"bench{i}" for i in range(10))
    result = asyncio.run(
        measure(settings_for(args, channels), args.expected, publisher=publisher, before_stop=keep)
    )
    result["rss_peak_mb"] = peak_rss_mb()
    result["cpu_s"] = round(result["cpu_s_per_100k"] * result["messages"] / 100_000, 4)
    if publisher is not None and publisher.ids and args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps([i, None]) + "\n" for i in publisher.ids)
    if kept and args.out:
        lat: list[float] = []
        stamps = publisher.stamps if publisher is not None else []
        with open(args.out, "w", encoding="utf-8") as fh:
            for i, data in enumerate(kept):
                env = json.loads(data)
                pair = chat_pair(env)
                if pair is None:
                    continue
                payload = env["payload"]
                fh.write(json.dumps(list(pair), ensure_ascii=False) + "\n")
                if args.mode == "paced" and payload.get("sentAt") and i < len(stamps):
                    sent = datetime_ms(payload["sentAt"])
                    lat.append(stamps[i] * 1000.0 - sent)
        Path(args.out + ".lat").write_text("\n".join(f"{x:.3f}" for x in lat))
    print(json.dumps(result), flush=True)


def datetime_ms(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000.0


if __name__ == "__main__":
    main()
