"""Pick the credentials provider for this deployment (its variables: ``config``).

* Firestore in use (``GOOGLE_CLOUD_PROJECT`` or ``FIRESTORE_EMULATOR_HOST``): the
  Firestore-backed, refreshing ``FirestoreCredentialsProvider``; ``TWITCH_CLIENT_ID`` and
  ``TWITCH_CLIENT_SECRET`` are then required.
* otherwise: ``StaticTokenProvider`` from ``TWITCH_OAUTH_TOKEN`` (local use).
"""

from __future__ import annotations

from ingress_egress.config import ConfigError, Settings
from ingress_egress.credentials.base import CredentialsProvider
from ingress_egress.credentials.static import StaticTokenProvider


def build_credentials_provider(settings: Settings) -> CredentialsProvider:
    """The provider for the bot ``settings.twitch.bot_username``."""
    twitch, credentials = settings.twitch, settings.credentials
    if not settings.google.uses_firestore:
        return StaticTokenProvider(login=twitch.bot_username, token=credentials.oauth_token)

    # Imported here so the static path never loads the Google client libraries.
    from ingress_egress.credentials.firestore_provider import (
        FirestoreCredentialsProvider,
        ProviderOptions,
    )
    from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient

    why = "is required when tokens come from Firestore (GOOGLE_CLOUD_PROJECT is set)"
    if not credentials.client_id:
        raise ConfigError("TWITCH_CLIENT_ID", why)
    if not credentials.client_secret:
        raise ConfigError("TWITCH_CLIENT_SECRET", why)

    if credentials.lookup == "user_id":
        user_id = credentials.bot_user_id
        identities: tuple[str, ...] = (user_id,) if user_id else ()
    else:
        identities = (twitch.bot_username,) if twitch.bot_username else ()

    options = ProviderOptions(
        refresh_margin=credentials.refresh_margin_s,
        validate_interval=credentials.validate_interval_s,
        force_refresh_min_interval=credentials.force_refresh_min_interval_s,
        refresh_lease=credentials.refresh_lease_s or None,
    )
    oauth = TwitchOAuthClient(
        twitch.oauth_url,
        credentials.client_id,
        credentials.client_secret,
        timeout=credentials.oauth_timeout_s,
    )
    return FirestoreCredentialsProvider(
        oauth=oauth,
        project=settings.google.project or None,
        collection=credentials.tokens_collection,
        lookup=credentials.lookup,
        identities=identities,
        options=options,
        firestore_timeout=credentials.firestore_timeout_s,
    )
