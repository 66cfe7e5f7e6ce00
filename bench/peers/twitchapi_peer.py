"""twitchAPI's ``Chat`` as a peer, driven without editing it.

``Chat(connection_url=...)`` points it at the simulator; user auth is set with
``validate=False`` (no call to id.twitch.tv) and, instead of ``await Chat(...)`` (which asks
the Helix API for the bot's login), the public ``username`` attribute is set directly.
``Chat`` still validates the token before every login (``get_refreshed_user_auth_token``),
so its documented ``auth_base_url`` argument points at a stand-in validation endpoint on
loopback that answers like id.twitch.tv's ``/oauth2/validate``.
Chat runs its own thread and event loop; the handler only counts and records.

    python twitchapi_peer.py --url ws://127.0.0.1:80 --channels 10 --expected N --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

from recorder import Recorder, wait_polling
from twitchAPI.chat import Chat, ChatMessage
from twitchAPI.twitch import Twitch
from twitchAPI.type import AuthScope, ChatEvent

VALIDATE = {
    "client_id": "benchclient",
    "login": "benchbot",
    "scopes": ["chat:read"],
    "user_id": "4242",
    "expires_in": 5_000_000,
}


class _Validate(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(VALIDATE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def run(args: argparse.Namespace) -> None:
    rec = Recorder(args.expected, args.out)
    oauth = ThreadingHTTPServer(("127.0.0.1", 0), _Validate)
    threading.Thread(target=oauth.serve_forever, daemon=True).start()
    auth_url = f"http://127.0.0.1:{oauth.server_address[1]}/oauth2/"
    twitch = await Twitch("benchclient", authenticate_app=False, auth_base_url=auth_url)
    twitch.auto_refresh_auth = False  # no refresh token: nothing may call id.twitch.tv
    await twitch.set_user_authentication("benchtoken", [AuthScope.CHAT_READ], validate=False)
    chat = Chat(
        twitch, connection_url=args.url, initial_channel=[f"bench{i}" for i in range(args.channels)]
    )
    chat.username = "benchbot"

    async def on_message(msg: ChatMessage) -> None:
        # /me arrives unwrapped with is_me set; compared in wire form like the other peers
        text = f"\x01ACTION {msg.text}\x01" if msg.is_me else msg.text
        rec.record(msg.id, text, msg.sent_timestamp)

    chat.register_event(ChatEvent.MESSAGE, on_message)
    chat.start()
    await asyncio.to_thread(wait_polling, rec)
    rec.finish(version=version("twitchAPI"))
    chat.stop()
    await twitch.close()
    oauth.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
