"""The ceiling: a bare asyncio reader of CRLF lines over TCP, counting PRIVMSGs.

No parsing on the hot path: it keeps the lines and their receipt time and pulls ids,
texts and ``tmi-sent-ts`` out after the run, to feed the same integrity and latency check.

    python bare_reader.py --port P --channels 10 --expected N --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import time

from recorder import Recorder


def fields(line: bytes) -> tuple[str, str, str]:
    text = line.decode("utf-8", "replace")
    tags, _, rest = text.partition(" ")
    msg_id = sent = ""
    for tag in tags[1:].split(";"):
        key, _, value = tag.partition("=")
        if key == "id":
            msg_id = value
        elif key == "tmi-sent-ts":
            sent = value
    return msg_id, rest.partition(" :")[2], sent


async def run(args: argparse.Namespace) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port, limit=1 << 20)
    joins = ",".join(f"#bench{i}" for i in range(args.channels))
    writer.write(
        b"CAP REQ :twitch.tv/tags twitch.tv/commands\r\nNICK justinfan4242\r\n"
        + f"JOIN {joins}\r\n".encode()
    )
    rec = Recorder(args.expected, args.out)
    chunks: list[tuple[float, list[bytes]]] = []
    count = 0
    tail = b""
    first = last = cpu0 = 0.0
    while count < args.expected:
        try:
            data = await asyncio.wait_for(reader.read(1 << 18), rec.idle_s)
        except TimeoutError:
            break
        if not data:
            break
        now = time.time()
        lines = (tail + data).split(b"\r\n")
        tail = lines.pop()
        n = 0
        for line in lines:
            if b" PRIVMSG #" in line:
                n += 1
            elif line.startswith(b"PING"):
                writer.write(b"PONG :tmi.twitch.tv\r\n")
        if n:
            if not count:
                first, cpu0 = now, time.process_time()
            count += n
            last = now
            chunks.append((now, lines))
    cpu = time.process_time() - cpu0
    for now, lines in chunks:
        for line in lines:
            if b" PRIVMSG #" in line:
                msg_id, text, sent = fields(line)
                rec.pairs.append((msg_id, text))
                if sent:
                    rec.latencies.append(now * 1000.0 - float(sent))
    rec.count, rec.first, rec.last = count, first, last
    rec.cpu0 = time.process_time() - cpu
    rec.finish(transport="tcp")
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
