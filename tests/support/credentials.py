"""The bot's tokens in a (real, emulated) Firestore, and a credentials provider reading them."""

from __future__ import annotations

from ingress_egress.credentials.firestore_provider import (
    FirestoreCredentialsProvider,
    ProviderOptions,
)
from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient
from tests.support.firestore_emulator import FirestoreEmulator, firestore_client
from tests.support.twitch_oauth_mock import TwitchOAuthMock

LOGIN = "canarybot"
COLLECTION = "twitch_tokens"


def provider_for(
    emulator: FirestoreEmulator, twitch: TwitchOAuthMock
) -> FirestoreCredentialsProvider:
    """A provider for ``LOGIN`` that retries fast and refreshes on demand without a pause."""
    oauth = TwitchOAuthClient(twitch.base_url, twitch.client_id, twitch.client_secret)
    return FirestoreCredentialsProvider(
        oauth=oauth,
        project=emulator.project,
        collection=COLLECTION,
        identities=(LOGIN,),
        options=ProviderOptions(retry_initial=0.2, retry_max=0.5, force_refresh_min_interval=0),
        firestore_client=firestore_client(emulator.host_port, emulator.project),
    )


async def store_tokens(emulator: FirestoreEmulator, twitch: TwitchOAuthMock) -> None:
    """A fresh grant from the mock for ``LOGIN``, stored as the operator would store it."""
    access, refresh = twitch.issue("4242", LOGIN)
    db = firestore_client(emulator.host_port, emulator.project)
    await (
        db.collection(COLLECTION)
        .document(LOGIN)
        .set(
            {
                "userId": "4242",
                "login": LOGIN,
                "accessToken": access,
                "refreshToken": refresh,
                "expiresAt": "2099-01-01T00:00:00Z",
                "scopes": ["chat:read"],
            }
        )
    )
