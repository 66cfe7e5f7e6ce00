"""A bare IRC client for the simulator's tests: raw lines over a real socket."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable

READ_TIMEOUT = 10.0
CAPS = "twitch.tv/tags twitch.tv/commands"


class IrcClient:
    """A bare asyncio IRC client that returns raw lines, checking they end with CRLF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> IrcClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, *lines: str) -> None:
        await self.send_raw("".join(f"{line}\r\n" for line in lines).encode())

    async def recv(self) -> str:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\n"), READ_TIMEOUT)
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2].decode()

    async def recv_n(self, n: int) -> list[str]:
        return [await self.recv() for _ in range(n)]

    async def recv_until(self, predicate: Callable[[str], bool]) -> list[str]:
        """Lines up to and including the first one matching ``predicate``."""
        out: list[str] = []
        while True:
            line = await self.recv()
            out.append(line)
            if predicate(line):
                return out

    async def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        return await asyncio.wait_for(self.reader.read(), READ_TIMEOUT)

    async def login(self, nick: str = "justinfan123", caps: str | None = CAPS) -> None:
        if caps is not None:
            await self.send(f"CAP REQ :{caps}")
            assert (await self.recv()).startswith(":tmi.twitch.tv CAP * ACK :")
        await self.send("PASS SCHMOOPIIE", f"NICK {nick}")
        assert (await self.recv_until(lambda line: " 376 " in line))[-1].endswith(":>")

    async def login_bot(self, nick: str, token: str, caps: str | None = CAPS) -> list[str]:
        """Log in as a bot with ``PASS oauth:<token>``; the lines after the CAP ACK up to
        the welcome's end (and GLOBALUSERSTATE, which tagged logins get)."""
        if caps is not None:
            await self.send(f"CAP REQ :{caps}")
            assert (await self.recv()).startswith(":tmi.twitch.tv CAP * ACK :")
        await self.send(f"PASS oauth:{token}", f"NICK {nick}")
        done = (lambda line: "GLOBALUSERSTATE" in line) if caps else (lambda line: " 376 " in line)
        return await self.recv_until(done)

    async def join(self, *channels: str) -> None:
        await self.send("JOIN " + ",".join(f"#{c}" for c in channels))
        for channel in channels:
            await self.recv_until(lambda line, c=channel: line.endswith(f"ROOMSTATE #{c}"))

    async def barrier(self, token: str = "barrier") -> list[str]:
        """Lines the server sent before answering a PING (nothing is lost or reordered)."""
        await self.send(f"PING :{token}")
        lines = await self.recv_until(lambda line: line.startswith(":tmi.twitch.tv PONG"))
        assert lines[-1] == f":tmi.twitch.tv PONG tmi.twitch.tv :{token}"
        return lines[:-1]

    def close(self) -> None:
        self.writer.close()


def read_from_cli(port: int, channel: str, n: int) -> list[str]:
    """Log in to a simulator started from the command line, join ``channel`` and return the
    next ``n`` lines (whatever they are)."""

    async def talk() -> list[str]:
        client = await IrcClient.open(port)
        await client.login()
        await client.join(channel)
        lines = await client.recv_n(n)
        client.close()
        return lines

    return asyncio.run(talk())


def banner_url(banner: str, name: str) -> str:
    """The ``name=http://...`` address a simulator's banner names (``helix``, ``control``)."""
    match = re.search(rf"{name}=(http://\S+)", banner)
    if match is None:
        raise AssertionError(f"no {name} address in the banner: {banner!r}")
    return match.group(1)


def start_simulator_cli(*args: str) -> tuple[subprocess.Popen[bytes], str, int]:
    """``python -m ingress_egress.simulator --port 0 ARGS`` in its own session: the process,
    its banner line and the port the banner names. The caller stops it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingress_egress.simulator", "--port", "0", *args],
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline().decode()
    match = re.search(r"irc://127\.0\.0\.1:(\d+)", banner)
    if match is None:
        proc.kill()
        raise AssertionError(f"no listening banner: {banner!r}")
    return proc, banner, int(match.group(1))
