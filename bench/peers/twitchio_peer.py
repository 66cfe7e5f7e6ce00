"""TwitchIO 2.10 (the last TwitchIO with IRC) as a peer, driven without editing it.

Its IRC host is the module constant ``twitchio.websocket.HOST`` (pointed at the simulator);
its start-up token validation (a call to id.twitch.tv) is replaced offline on the client's
HTTP object with a stand-in returning a fixed login. The handler only counts and records.

    python twitchio_peer.py --url ws://127.0.0.1:80 --channels 10 --expected N --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
from importlib.metadata import version

import aiohttp
import twitchio
import twitchio.websocket
from recorder import Recorder


async def run(args: argparse.Namespace) -> None:
    twitchio.websocket.HOST = args.url
    rec = Recorder(args.expected, args.out)

    class Peer(twitchio.Client):
        async def event_message(self, message: twitchio.Message) -> None:
            if message.echo:
                return
            tags = message.tags or {}
            rec.record(message.id, message.content, tags.get("tmi-sent-ts"))

        async def event_error(self, error: Exception, data: str | None = None) -> None:
            rec.errors.append(repr(error)[:200])

    rec.errors = []  # type: ignore[attr-defined]
    client = Peer(token="benchtoken", initial_channels=[f"bench{i}" for i in range(args.channels)])

    async def offline_validate(*, token: str | None = None) -> dict[str, object]:
        client._http.nick = "benchbot"
        if client._http.session is None:  # what the real validate() would have opened
            client._http.session = aiohttp.ClientSession()
        return {"login": "benchbot", "user_id": "4242", "client_id": "bench", "scopes": []}

    client._http.validate = offline_validate  # type: ignore[method-assign]
    await client.connect()
    await rec.wait()
    rec.finish(version=version("twitchio"), errors=rec.errors[:5])  # type: ignore[attr-defined]
    await asyncio.wait_for(client.close(), 5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
