"""The secrets one provider has seen, so that its messages can be scrubbed of them."""

from __future__ import annotations

from collections import deque

from ingress_egress.credentials.errors import scrub

# Enough for every token pair a provider holds at once plus the ones it replaced lately.
REMEMBERED_SECRETS = 64


class SecretMemory:
    """Tokens seen lately (never shown, not even by ``repr``); ``scrub`` removes them."""

    def __init__(self) -> None:
        self._secrets: deque[str] = deque(maxlen=REMEMBERED_SECRETS)

    def __repr__(self) -> str:
        return f"SecretMemory({len(self._secrets)} remembered)"

    def remember(self, *secrets: str) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)

    def scrub(self, text: str) -> str:
        return scrub(text, self._secrets)
