"""What every Python peer's no-op handler does: count, keep (id, text) and the latency.

Standard library only (it runs in the peers' venv and in the project's). At the end it
writes the pairs as JSON lines to ``out``, latencies (ms, float, one a line) to
``out + ".lat"`` and prints one JSON line of figures on stdout.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


def chat_pair(envelope: dict) -> tuple[str, str] | None:
    """A chat-message envelope as the (id, wire text) pair the simulator recorded, with
    ``/me`` put back in its wire form; None for other envelope types."""
    if envelope.get("type") != "external.chat.message.v1":
        return None
    payload = envelope["payload"]
    text = payload["text"]
    if payload.get("isAction"):
        text = f"\x01ACTION {text}\x01"
    return payload["messageId"], text


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Recorder:
    def __init__(self, expected: int, out: str, idle_s: float = 5.0) -> None:
        self.expected = expected
        self.out = out
        self.idle_s = idle_s
        self.count = 0
        self.pairs: list[tuple[str, str]] = []
        self.latencies: list[float] = []
        self.first = 0.0
        self.last = 0.0
        self.cpu0 = 0.0
        self.done = asyncio.Event()
        self.started = time.time()

    def record(self, msg_id: str, text: str, sent_ts: object) -> None:
        now = time.time()
        if not self.count:
            self.first = now
            self.cpu0 = time.process_time()
        self.count += 1
        self.last = now
        self.pairs.append((msg_id, text))
        try:
            self.latencies.append(now * 1000.0 - float(sent_ts))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
        if self.count >= self.expected:
            self.done.set()

    async def wait(self, start_timeout: float = 60.0) -> None:
        """Until every expected message arrived, or ``idle_s`` passed with none."""
        deadline = time.monotonic() + start_timeout
        seen = -1
        while not self.done.is_set():
            try:
                await asyncio.wait_for(self.done.wait(), self.idle_s if self.count else 1.0)
            except TimeoutError:
                if self.count and self.count == seen:
                    break
                if not self.count and time.monotonic() > deadline:
                    break
                seen = self.count

    def finish(self, **extra: object) -> None:
        cpu = time.process_time() - self.cpu0 if self.count else 0.0
        with open(self.out, "w", encoding="utf-8") as fh:
            for pair in self.pairs:
                fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
        with open(self.out + ".lat", "w", encoding="ascii") as fh:
            fh.write("\n".join(f"{x:.3f}" for x in self.latencies))
        stats = {
            "count": self.count,
            "wall_s": round(self.last - self.first, 4),
            "cpu_s": round(cpu, 4),
            "rss_peak_mb": peak_rss_mb(),
            **extra,
        }
        print(json.dumps(stats), flush=True)
        sys.stdout.flush()


def wait_polling(rec: Recorder, start_timeout: float = 60.0) -> None:
    """``Recorder.wait`` for peers whose handler runs on a thread of their own."""
    deadline = time.monotonic() + start_timeout
    seen, since = -1, time.monotonic()
    while rec.count < rec.expected:
        time.sleep(0.02)
        if rec.count != seen:
            seen, since = rec.count, time.monotonic()
        else:
            now = time.monotonic()
            if now - since > rec.idle_s if rec.count else now > deadline:
                break
