"""The credentials interface: the chat client asks for a token and never learns its origin."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ChatAuth:
    """A token good for logging in to chat. ``repr`` never shows the token."""

    access_token: str = field(repr=False)
    user_id: str
    login: str


class CredentialsError(Exception):
    """Tokens cannot be had right now. ``code`` is a stable, secret-free reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CredentialsProvider(ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load and validate what the provider needs; may raise ``CredentialsError``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and background tasks."""

    @abstractmethod
    async def get_chat_auth(self, login_or_user_id: str) -> ChatAuth:
        """A valid token for this identity, refreshed first when it is about to expire."""

    async def force_refresh(self, login_or_user_id: str) -> ChatAuth:
        """Called when Twitch rejected the login: refresh now if the provider can."""
        return await self.get_chat_auth(login_or_user_id)

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """Secret-free state: at least ``{"state": "ok" | "degraded" | ..., "reason": str}``."""

    @property
    def healthy(self) -> bool:
        return self.status().get("state") == "ok"
