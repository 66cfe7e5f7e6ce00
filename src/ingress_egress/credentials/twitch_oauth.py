"""Twitch OAuth over HTTP: refresh a user token and validate an access token.

Endpoints (``base_url`` is ``TWITCH_OAUTH_URL``, ``https://id.twitch.tv/oauth2`` by default):

* ``POST {base}/token`` with the form ``grant_type=refresh_token&refresh_token=..&client_id=..
  &client_secret=..``. Success: ``{"access_token", "refresh_token", "expires_in", "scope": [..],
  "token_type": "bearer"}``. A revoked or unknown refresh token: ``400
  {"status": 400, "message": "Invalid refresh token"}``.
* ``GET {base}/validate`` with ``Authorization: OAuth <token>``. Success: ``{"client_id", "login",
  "scopes", "user_id", "expires_in"}``; an invalid token: ``401
  {"status": 401, "message": "invalid access token"}``.

Transport failures, timeouts, 429 and 5xx are retried with bounded, jittered exponential
backoff (``ingress_egress.retry``); everything else is mapped to an ``OAuthError`` with a
stable code. Neither the tokens nor the client secret ever reach an exception message, a
log line or a ``repr``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay

from ingress_egress.credentials.errors import (
    ACCESS_TOKEN_INVALID,
    OAUTH_BAD_RESPONSE,
    OAUTH_REJECTED,
    OAUTH_UNAVAILABLE,
    REFRESH_TOKEN_INVALID,
    OAuthError,
    scrub,
)
from ingress_egress.retry import retrying

log = logging.getLogger("ingress_egress.credentials.twitch_oauth")

# Only these characters of a Twitch error message are echoed (into our own messages).
_SAFE_MESSAGE = re.compile(r"[^A-Za-z0-9 .,:;_()'-]")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retry for transient OAuth failures (transport errors, timeouts, 429, 5xx)."""

    attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_elapsed: float = 30.0


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What ``POST /token`` returned. ``expires_in`` is ``None`` when Twitch left it out."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int | None
    scopes: tuple[str, ...]
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What ``GET /validate`` returned for a valid token."""

    client_id: str
    login: str
    user_id: str
    scopes: tuple[str, ...]
    expires_in: int


class _Transient(OAuthError):
    """A failure worth retrying (network, timeout, 429, 5xx)."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient)


class TwitchOAuthClient:
    """Refresh and validate Twitch user tokens. Safe to share between coroutines."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._retry = retry or RetryPolicy()
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = http
        self._owns_http = http is None

    def __repr__(self) -> str:
        return f"TwitchOAuthClient(base_url={self._base!r}, client_id=<set>, client_secret=<set>)"

    @property
    def base_url(self) -> str:
        return self._base

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None

    # -- public operations -------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """Exchange ``refresh_token`` for new tokens; raises ``OAuthError``."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        secrets = (refresh_token, self._client_secret)

        async def once() -> TokenGrant:
            response = await self._send("refresh", "POST", "/token", secrets, data=form)
            body = _json(response)
            if response.status_code == 200:
                return _parse_grant(body, refresh_token)
            message = _twitch_message(body, secrets)
            if response.status_code == 400 and "refresh token" in message.lower():
                raise OAuthError(
                    REFRESH_TOKEN_INVALID,
                    f"Twitch rejected the refresh token ({response.status_code} {message})",
                    http_status=response.status_code,
                )
            raise OAuthError(
                OAUTH_REJECTED,
                f"Twitch refused the token refresh ({response.status_code} {message})",
                http_status=response.status_code,
            )

        return await self._with_retry("refresh", once)

    async def validate(self, access_token: str) -> TokenInfo:
        """Ask Twitch about ``access_token``; raises ``OAuthError`` (``access_token_invalid``
        on 401)."""
        secrets = (access_token, self._client_secret)

        async def once() -> TokenInfo:
            response = await self._send(
                "validate",
                "GET",
                "/validate",
                secrets,
                headers={"Authorization": f"OAuth {access_token}"},
            )
            body = _json(response)
            if response.status_code == 200:
                return _parse_info(body)
            message = _twitch_message(body, secrets)
            if response.status_code == 401:
                raise OAuthError(
                    ACCESS_TOKEN_INVALID,
                    f"Twitch says the access token is invalid (401 {message})",
                    http_status=401,
                )
            raise OAuthError(
                OAUTH_REJECTED,
                f"Twitch refused the validation ({response.status_code} {message})",
                http_status=response.status_code,
            )

        return await self._with_retry("validate", once)

    # -- plumbing ----------------------------------------------------------------------

    async def _send(
        self, op: str, method: str, path: str, secrets: tuple[str, ...], **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._client().request(
                method, self._base + path, timeout=self._timeout, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise _Transient(
                OAUTH_UNAVAILABLE, f"Twitch OAuth {op} timed out ({_kind(exc)})"
            ) from None
        except httpx.HTTPError as exc:
            raise _Transient(
                OAUTH_UNAVAILABLE, f"Twitch OAuth {op} failed ({_kind(exc)})"
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            message = _twitch_message(_json(response), secrets)
            raise _Transient(
                OAUTH_UNAVAILABLE,
                f"Twitch OAuth {op} answered {response.status_code} {message}".rstrip(),
                http_status=response.status_code,
            )
        return response

    async def _with_retry(self, op: str, call: Any) -> Any:
        policy = self._retry

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "twitch oauth %s attempt %d failed: %s; retrying in %.2fs",
                op,
                state.attempt_number,
                exc,
                delay,
            )

        attempts = retrying(
            policy.initial_delay,
            policy.max_delay,
            stop=stop_after_attempt(max(1, policy.attempts)) | stop_after_delay(policy.max_elapsed),
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep,
        )
        try:
            async for attempt in attempts:
                with attempt:
                    return await call()
        except _Transient as exc:
            # Surface a plain OAuthError: callers need not know about the retry marker.
            raise OAuthError(exc.code, f"{exc} (gave up)", http_status=exc.http_status) from None
        raise AssertionError("unreachable")  # pragma: no cover


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _twitch_message(body: Any, secrets: tuple[str, ...]) -> str:
    """Twitch's ``message`` field, cut down to safe characters and scrubbed of secrets."""
    if not isinstance(body, dict):
        return ""
    message = body.get("message")
    if not isinstance(message, str):
        return ""
    return _SAFE_MESSAGE.sub("", scrub(message, secrets))[:120].strip()


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(s) for s in value if isinstance(s, str))
    if isinstance(value, str) and value:
        return tuple(value.split())
    return ()


def _parse_grant(body: Any, used_refresh_token: str) -> TokenGrant:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise OAuthError(OAUTH_BAD_RESPONSE, "Twitch token response has no access_token")
    access = body["access_token"]
    if not access:
        raise OAuthError(OAUTH_BAD_RESPONSE, "Twitch token response has an empty access_token")
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        # Twitch always sends one; if it ever does not, the old one stays in use.
        refresh = used_refresh_token
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        expires_in = None
    token_type = body.get("token_type")
    return TokenGrant(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(expires_in) if expires_in is not None else None,
        scopes=_scopes(body.get("scope")),
        token_type=token_type if isinstance(token_type, str) else "bearer",
    )


def _parse_info(body: Any) -> TokenInfo:
    if not isinstance(body, dict):
        raise OAuthError(OAUTH_BAD_RESPONSE, "Twitch validate response is not a JSON object")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        raise OAuthError(OAUTH_BAD_RESPONSE, "Twitch validate response has no expires_in")
    return TokenInfo(
        client_id=str(body.get("client_id") or ""),
        login=str(body.get("login") or ""),
        user_id=str(body.get("user_id") or ""),
        scopes=_scopes(body.get("scopes")),
        expires_in=int(expires_in),
    )
