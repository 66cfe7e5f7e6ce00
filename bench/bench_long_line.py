"""How the IRC transport copes with one endless line: CPU, wall time and peak RSS to read a
line of N MB (sent in 64 KiB writes over loopback, in this process) followed by a PING.

Lines over the 32 KiB limit are discarded as they arrive, so the cost grows linearly with N
and memory stays flat (before the limit, the partial line was re-concatenated on every
read: quadratic, and held whole).

    .venv/bin/python bench/bench_long_line.py [--mb 10 40]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from ingress_egress.config import parse_irc_url
from ingress_egress.sources.irc.transport import TransportClosed, open_transport

WRITE = 1 << 16


async def one_line(megabytes: int) -> dict[str, float]:
    chunk = b"z" * WRITE

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"PING :before\r\n")
        for _ in range(megabytes * (1 << 20) // WRITE):
            writer.write(chunk)
            await writer.drain()
        writer.write(b"\r\nPING :after\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = await open_transport(parse_irc_url(f"irc://127.0.0.1:{port}"))
    lines: list[str] = []
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        while True:
            lines += await transport.read_lines()
    except TransportClosed:
        pass
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    server.close()
    await server.wait_closed()
    assert lines[0] == "PING :before" and lines[-1] == "PING :after", lines[:3]
    return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "lines": len(lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[10, 40])
    args = parser.parse_args()
    for megabytes in args.mb:
        result = asyncio.run(one_line(megabytes))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{megabytes:>4} MB line: {result['cpu_s']:.2f} CPU-s, {result['wall_s']:.2f} s wall, "
            f"{result['lines']} lines kept, peak RSS so far {peak:.0f} MB"
        )


if __name__ == "__main__":
    main()
