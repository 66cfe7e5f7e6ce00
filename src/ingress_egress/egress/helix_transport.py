"""Sending as the bot through Helix: ``POST {helix}/chat/messages`` (Twitch's recommended way).

* **Who:** ``connect`` validates the token (``GET {oauth}/validate``): the bot's user id is
  the ``sender_id``; a token without ``user:write:chat`` cannot send (``TransportError``).
* **Where:** ``broadcaster_id`` is the command's ``channelId`` or, without one, looked up
  once per channel (``GET /users?login=``) and cached; a login Twitch does not know is
  ``dropped`` with ``channel_unknown``.
* **The answer** is the response's ``data[0]``: ``is_sent`` with ``message_id``, or a drop
  with ``drop_reason.code`` (Twitch's code as given).
* **Trouble:** 429: wait until ``Ratelimit-Reset`` (nothing was sent) and try again; 5xx:
  again after a backoff, at most ``max_server_errors`` times, then ``unknown`` (Twitch may
  have sent it); 401: the token refreshed once (``refresh_token``), then ``failed``; any
  other 4xx: ``failed`` (``helix_<status>``). A request that could not be sent at all
  (connection refused) is tried again a few times, then ``failed``; one lost after it went
  out (a read timeout) is ``unknown``.
* **Role and modes** (Helix has no USERSTATE): the channels the bot moderates (``GET
  /moderation/channels``), its VIP status in the channels it sends to (``GET
  /channels/vips``) and their slow mode (``GET /chat/settings``), at ``connect``, when a
  channel is first used, and every ``refresh_s``. Unknown means not privileged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ingress_egress.bus.egress_backoff import Backoff
from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.egress.text import helix_message
from ingress_egress.egress.transport import SenderClock, SendOutcome, SendStatus, TransportError

log = logging.getLogger("ingress_egress.egress.helix")

SEND_SCOPE = "user:write:chat"
CHANNEL_UNKNOWN = "channel_unknown"
TokenGetter = Callable[[], Awaitable[str]]


class HelixChatTransport:
    name = "helix"

    def __init__(
        self,
        helix_url: str,
        oauth_url: str,
        client_id: str,
        token: TokenGetter,
        channels: ChannelStates,
        *,
        refresh_token: TokenGetter | None = None,
        clock: SenderClock | None = None,
        http: httpx.AsyncClient | None = None,
        request_timeout_s: float = 10.0,
        max_server_errors: int = 3,
        max_connect_errors: int = 3,
        max_rate_limit_wait_s: float = 65.0,
        refresh_s: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.helix_url = helix_url.rstrip("/")
        self.oauth_url = oauth_url.rstrip("/")
        self.client_id = client_id
        self._token = token
        self._refresh_token = refresh_token
        self.channels = channels
        self.clock = clock or SenderClock()
        self._http = http
        self._own_http = http is None
        self.request_timeout_s = request_timeout_s
        self.max_server_errors = max_server_errors
        self.max_connect_errors = max_connect_errors
        self.max_rate_limit_wait_s = max_rate_limit_wait_s
        self.refresh_s = refresh_s
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=5.0)
        self.user_id: str | None = None
        self.login: str | None = None
        self.last_error = ""
        self.rate_limited = 0
        self.server_errors = 0
        self.token_refreshes = 0
        self._room_ids: dict[str, str] = {}
        self._moderated: set[str] = set()
        self._vips: set[str] = set()
        self._connected = False
        self._refresher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.request_timeout_s)
        try:
            response = await self._http.get(
                f"{self.oauth_url}/validate",
                headers={"Authorization": f"OAuth {await self._token()}"},
            )
        except httpx.HTTPError as error:
            raise self._refused(f"token validation: {type(error).__name__}") from None
        if response.status_code != 200:
            raise self._refused(f"token validation answered {response.status_code}")
        body = response.json()
        if SEND_SCOPE not in body.get("scopes", []):
            raise self._refused(f"the token lacks {SEND_SCOPE}")
        self.user_id = str(body["user_id"])
        self.login = str(body.get("login", ""))
        self._connected = True
        await self.refresh_privileges()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_loop(), name="egress-helix")

    def _refused(self, reason: str) -> TransportError:
        self.last_error = reason
        return TransportError(reason)

    async def close(self) -> None:
        self._connected = False
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def connected(self) -> bool:
        return self._connected

    # -- role and modes ------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await self.clock.sleep(self.refresh_s)
            try:
                await self.refresh_privileges()
            except Exception as error:  # the next round tries again; unknown = unprivileged
                self.last_error = f"refreshing roles: {error!r}"[:300]

    async def refresh_privileges(self) -> None:
        """Moderated channels, VIP status and slow mode of the channels in use."""
        moderated = await self._moderated_channels()
        if moderated is None:
            return  # kept as it was; the next round tries again
        self._moderated = set(moderated)
        for channel, room_id in list(self._room_ids.items()):
            await self._learn_vip(channel, room_id)
            await self._learn_settings(channel, room_id)
        self._publish_privileges()

    def _publish_privileges(self) -> None:
        self.channels.learn_privileged_channels(self._moderated | self._vips, self.clock.now())

    async def _moderated_channels(self) -> list[str] | None:
        logins: list[str] = []
        cursor = ""
        for _ in range(50):  # 5,000 channels: enough for any bot
            params = {"user_id": self.user_id or "", "first": "100"}
            if cursor:
                params["after"] = cursor
            body = await self._get("/moderation/channels", params)
            if body is None:
                return None
            logins += [str(c.get("broadcaster_login", "")) for c in body.get("data", [])]
            cursor = (body.get("pagination") or {}).get("cursor") or ""
            if not cursor:
                break
        return logins

    async def _learn_vip(self, channel: str, room_id: str) -> None:
        params = {"broadcaster_id": room_id, "user_id": self.user_id or ""}
        body = await self._get("/channels/vips", params)
        if body is None:
            return  # not known: as it was
        if body.get("data"):
            self._vips.add(channel)
        else:
            self._vips.discard(channel)

    async def _learn_settings(self, channel: str, room_id: str) -> None:
        body = await self._get("/chat/settings", {"broadcaster_id": room_id})
        data = (body or {}).get("data") or []
        if data:
            wait = data[0].get("slow_mode_wait_time") if data[0].get("slow_mode") else 0
            self.channels.learn_slow_mode(channel, int(wait or 0))

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        """A Helix GET; None when it did not answer 200 (noted in ``last_error``)."""
        assert self._http is not None
        for attempt in range(self.max_server_errors + 1):
            try:
                response = await self._http.get(
                    self.helix_url + path, params=params, headers=await self._headers()
                )
            except httpx.HTTPError as error:
                self.last_error = f"GET {path}: {type(error).__name__}"
                return None
            if response.status_code == 429:  # a read is safe to repeat: after the reset
                self.rate_limited += 1
                await self.clock.sleep(self._until_reset(response))
            elif response.status_code >= 500 and attempt < self.max_server_errors:
                self.server_errors += 1
                await asyncio.sleep(self.backoff.next_delay())
            else:
                break
        if response.status_code != 200:
            self.last_error = f"GET {path}: {response.status_code}"
            return None
        body = response.json()
        return body if isinstance(body, dict) else None

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._token()}", "Client-Id": self.client_id}

    # -- sending -------------------------------------------------------------------------

    async def prepare(self, channel: str, channel_id: str | None = None) -> SendOutcome | None:
        if not self._connected:
            try:
                await self.connect()
            except TransportError as error:
                return SendOutcome(
                    "failed", self.clock.now(), reason="not_connected", detail=error.reason,
                    written=False,
                )  # fmt: skip
        if channel in self._room_ids:
            return None
        room_id = channel_id or await self._lookup_room_id(channel)
        if room_id == "":
            return SendOutcome(
                "failed", self.clock.now(), reason="lookup_failed", detail=self.last_error,
                written=False,
            )  # fmt: skip
        if room_id is None:
            return SendOutcome(
                "dropped", self.clock.now(), reason=CHANNEL_UNKNOWN,
                detail=f"Twitch knows no channel {channel!r}", written=False,
            )  # fmt: skip
        self._room_ids[channel] = room_id
        moderated = await self._moderated_channels()  # as of now, for the first message
        if moderated is not None:
            self._moderated = set(moderated)
        await self._learn_vip(channel, room_id)
        self._publish_privileges()
        await self._learn_settings(channel, room_id)
        return None

    async def _lookup_room_id(self, channel: str) -> str | None:
        """The channel's user id; None: Twitch knows no such login; "": no answer."""
        body = await self._get("/users", {"login": channel})
        if body is None:
            return ""
        data = body.get("data") or []
        return str(data[0]["id"]) if data else None

    async def send(
        self,
        channel: str,
        part: str,
        reply_to: str | None,
        is_action: bool,
        *,
        channel_id: str | None = None,
    ) -> SendOutcome:
        refused = await self.prepare(channel, channel_id)
        if refused is not None:
            return refused
        body: dict[str, Any] = {
            "broadcaster_id": self._room_ids[channel],
            "sender_id": self.user_id,
            "message": helix_message(part, is_action),
        }
        if reply_to:
            body["reply_parent_message_id"] = reply_to
        return await self._post_message(body)

    async def _post_message(self, body: dict[str, Any]) -> SendOutcome:
        assert self._http is not None
        server_errors = connect_errors = 0
        refreshed = False
        while True:
            try:
                response = await self._http.post(
                    f"{self.helix_url}/chat/messages", json=body, headers=await self._headers()
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # nothing went out
                connect_errors += 1
                if connect_errors > self.max_connect_errors:
                    return self._outcome("failed", "unreachable", repr(error), written=False)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            except httpx.HTTPError as error:  # it may have reached Twitch
                return self._outcome("unknown", "no_answer", repr(error))
            status = response.status_code
            if status == 200:
                self.backoff.succeeded()
                return self._answer(response)
            if status == 429:
                self.rate_limited += 1
                await self.clock.sleep(self._until_reset(response))
                continue
            if status == 401 and not refreshed and self._refresh_token is not None:
                refreshed = True
                self.token_refreshes += 1
                await self._refresh_token()
                continue
            if status >= 500:
                self.server_errors += 1
                server_errors += 1
                if server_errors > self.max_server_errors:
                    return self._outcome("unknown", f"helix_{status}", "server errors")
                await asyncio.sleep(self.backoff.next_delay())
                continue
            return self._outcome("failed", f"helix_{status}", _message(response), written=False)

    def _until_reset(self, response: httpx.Response) -> float:
        """Seconds until the point bucket refills (``Ratelimit-Reset``: epoch seconds)."""
        try:
            reset = float(response.headers.get("Ratelimit-Reset", ""))
        except ValueError:
            return 1.0
        return min(self.max_rate_limit_wait_s, max(0.05, reset - self.clock.now()))

    def _answer(self, response: httpx.Response) -> SendOutcome:
        try:
            result = response.json()["data"][0]
            is_sent = bool(result["is_sent"])
        except (ValueError, KeyError, IndexError, TypeError):
            return self._outcome("unknown", "bad_answer", response.text[:200])
        if is_sent:
            return SendOutcome(
                "sent", self.clock.now(), twitch_message_id=str(result.get("message_id") or "")
            )
        drop = result.get("drop_reason") or {}
        return SendOutcome(
            "dropped",
            self.clock.now(),
            reason=str(drop.get("code") or "dropped"),
            detail=str(drop.get("message") or ""),
        )

    def _outcome(
        self, status: SendStatus, reason: str, detail: str, *, written: bool = True
    ) -> SendOutcome:
        self.last_error = f"{reason}: {detail}"[:300]
        return SendOutcome(status, self.clock.now(), reason=reason, detail=detail, written=written)

    def describe(self) -> dict[str, Any]:
        return {
            "transport": self.name,
            "helixUrl": self.helix_url,
            "login": self.login,
            "userId": self.user_id,
            "connected": self.connected,
            "channels": len(self._room_ids),
            "rateLimited": self.rate_limited,
            "serverErrors": self.server_errors,
            "tokenRefreshes": self.token_refreshes,
            "lastError": self.last_error,
        }


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]
