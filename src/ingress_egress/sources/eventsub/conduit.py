"""EventSub conduits over Helix: the app token, the conduit, its shards, its subscriptions.

Plain HTTP (httpx) rather than TwitchIO's ``AutoClient``: the app token needs the client
secret, which TwitchIO is never given (the credentials provider owns secrets), and AutoClient
rebuilds shard sockets itself, outside the adapter's ``ChatWebsocket`` hand-over fix. The shard
sockets here are the adapter's ``ChatWebsocket``; this module only talks to Helix.

Twitch's shapes (``base`` = ``TWITCH_HELIX_URL``, every call with an app token):

* ``POST {oauth}/token`` form ``client_id, client_secret, grant_type=client_credentials``:
  ``{"access_token", "expires_in", "token_type": "bearer"}``.
* ``GET {base}/eventsub/conduits``: ``{"data": [{"id", "shard_count"}]}``.
* ``POST {base}/eventsub/conduits`` ``{"shard_count"}``; ``PATCH`` the same with ``"id"``.
* ``PATCH {base}/eventsub/conduits/shards`` ``{"conduit_id", "shards": [{"id", "transport":
  {"method": "websocket", "session_id"}}]}``: 202 ``{"data": [shard...], "errors": [{"id",
  "message", "code"}]}``.
* ``POST {base}/eventsub/subscriptions`` with ``"transport": {"method": "conduit",
  "conduit_id"}``; 409 when it exists already (a reused conduit keeps its subscriptions).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("ingress_egress.eventsub")

TIMEOUT_S = 15.0


class ConduitError(Exception):
    """A Helix or OAuth call failed. The message never holds a token or the secret."""

    def __init__(self, what: str, status: int, message: str = "") -> None:
        super().__init__(f"{what}: HTTP {status} {message[:120]}".rstrip())
        self.status = status


@dataclass
class Conduit:
    id: str
    shard_count: int


class ConduitApi:
    def __init__(self, *, helix_url: str, oauth_url: str, client_id: str, client_secret: str):
        self._helix = helix_url.rstrip("/")
        self._oauth = oauth_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._app_token = ""
        self._http = httpx.AsyncClient(timeout=TIMEOUT_S)

    def __repr__(self) -> str:
        return f"ConduitApi(helix={self._helix!r}, client_id=<set>, client_secret=<set>)"

    async def close(self) -> None:
        await self._http.aclose()

    async def fetch_app_token(self) -> None:
        """Client credentials grant: the app token conduits and their subscriptions need."""
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "client_credentials",
        }
        response = await self._send("app token", "POST", f"{self._oauth}/token", data=form)
        if response.status_code != 200:
            raise ConduitError("app token", response.status_code, _message(response))
        token = response.json().get("access_token")
        if not isinstance(token, str) or not token:
            raise ConduitError("app token", response.status_code, "no access_token")
        self._app_token = token

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One Helix call; after a 401 the app token is fetched again and the call repeated."""
        if not self._app_token:
            await self.fetch_app_token()
        for attempt in (1, 2):
            response = await self._send(
                f"{method} {path}",
                method,
                f"{self._helix}{path}",
                json=body,
                headers={
                    "Authorization": f"Bearer {self._app_token}",
                    "Client-Id": self._client_id,
                },
            )
            if response.status_code == 401 and attempt == 1:
                await self.fetch_app_token()
                continue
            if response.status_code >= 300:
                raise ConduitError(f"{method} {path}", response.status_code, _message(response))
            return response.json() if response.content else {}
        raise AssertionError("unreachable")

    async def _send(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The request, with transport failures as a ConduitError (status 0): the session
        is rebuilt with backoff, like any other Twitch outage."""
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise ConduitError(what, 0, type(error).__name__) from None

    async def ensure_conduit(self, shard_count: int) -> Conduit:
        """Reuse this client id's first conduit (Twitch allows 5; restarts must not leak
        them), resized to ``shard_count``; create one when there is none."""
        listed = (await self._call("GET", "/eventsub/conduits")).get("data") or []
        if not listed:
            created = await self._call("POST", "/eventsub/conduits", {"shard_count": shard_count})
            return _conduit(created["data"][0])
        conduit = _conduit(listed[0])
        if conduit.shard_count != shard_count:
            body = {"id": conduit.id, "shard_count": shard_count}
            conduit = _conduit((await self._call("PATCH", "/eventsub/conduits", body))["data"][0])
        return conduit

    async def assign_shards(self, conduit_id: str, sessions: dict[str, str]) -> dict[str, str]:
        """Point shards (id -> WebSocket session id) at their sockets; returns the failures
        (shard id -> Twitch's message)."""
        shards = [
            {"id": shard, "transport": {"method": "websocket", "session_id": session}}
            for shard, session in sessions.items()
        ]
        body = {"conduit_id": conduit_id, "shards": shards}
        answer = await self._call("PATCH", "/eventsub/conduits/shards", body)
        return {
            str(error.get("id")): str(error.get("message") or error.get("code") or "")
            for error in answer.get("errors") or []
        }

    async def subscribe(
        self, conduit_id: str, kind: str, version: str, condition: dict[str, str]
    ) -> None:
        """One subscription on the conduit; an existing one (409) counts as done."""
        body = {
            "type": kind,
            "version": version,
            "condition": condition,
            "transport": {"method": "conduit", "conduit_id": conduit_id},
        }
        try:
            await self._call("POST", "/eventsub/subscriptions", body)
        except ConduitError as error:
            if error.status != 409:
                raise


def _conduit(data: dict[str, Any]) -> Conduit:
    return Conduit(id=str(data["id"]), shard_count=int(data["shard_count"]))


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or "")
    except ValueError:
        return ""
