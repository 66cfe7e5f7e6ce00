"""A fixed token from the environment (``TWITCH_OAUTH_TOKEN``): for local use only."""

from __future__ import annotations

from typing import Any

from ingress_egress.credentials.base import ChatAuth, CredentialsError, CredentialsProvider


class StaticTokenProvider(CredentialsProvider):
    def __init__(self, login: str, token: str, user_id: str = "") -> None:
        self._login = login
        self._token = token.removeprefix("oauth:")
        self._user_id = user_id

    async def get_chat_auth(self, login_or_user_id: str) -> ChatAuth:
        if not self._token:
            raise CredentialsError("no_token", "no token configured (TWITCH_OAUTH_TOKEN is empty)")
        return ChatAuth(access_token=self._token, user_id=self._user_id, login=self._login)

    def status(self) -> dict[str, Any]:
        if self._token:
            return {"state": "ok", "reason": "", "source": "env"}
        return {"state": "degraded", "reason": "no_token", "source": "env"}
