"""Pick the credentials provider for this deployment.

* ``GOOGLE_CLOUD_PROJECT`` (or ``FIRESTORE_EMULATOR_HOST``) set: the Firestore-backed,
  refreshing ``FirestoreCredentialsProvider``; ``TWITCH_CLIENT_ID`` and
  ``TWITCH_CLIENT_SECRET`` are then required.
* otherwise: ``StaticTokenProvider`` from ``TWITCH_OAUTH_TOKEN`` (local use).

Extra tuning variables (all optional, seconds) are read here rather than in ``config.py``:
``TWITCH_TOKEN_REFRESH_MARGIN_S`` (300), ``TWITCH_TOKEN_VALIDATE_INTERVAL_S`` (3300, at most
3600), ``TWITCH_FORCE_REFRESH_MIN_INTERVAL_S`` (60), ``TWITCH_TOKEN_REFRESH_LEASE_S`` (45, 0
turns the lease off), ``TWITCH_OAUTH_TIMEOUT_S`` (10), ``FIRESTORE_TIMEOUT_S`` (10); and
``TWITCH_BOT_USER_ID`` (the identity to load at start when ``FIRESTORE_LOOKUP=user_id``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ingress_egress.config import ConfigError, Settings
from ingress_egress.credentials.base import CredentialsProvider
from ingress_egress.credentials.static import StaticTokenProvider


def _seconds(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise ConfigError(name, f"must be a number of seconds, got {shown}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo:g} and {hi:g}, got {value:g}")
    return value


def uses_firestore(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(settings.google_cloud_project or (env.get("FIRESTORE_EMULATOR_HOST") or "").strip())


def build_credentials_provider(
    settings: Settings, env: Mapping[str, str] | None = None
) -> CredentialsProvider:
    """The provider for ``settings``; ``env`` (default ``os.environ``) supplies the extras."""
    env = os.environ if env is None else env
    if not uses_firestore(settings, env):
        return StaticTokenProvider(
            login=settings.twitch_bot_username, token=settings.twitch_oauth_token
        )

    # Imported here so the static path never loads the Google client libraries.
    from ingress_egress.credentials.firestore_provider import (
        FirestoreCredentialsProvider,
        ProviderOptions,
    )
    from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient

    why = "is required when tokens come from Firestore (GOOGLE_CLOUD_PROJECT is set)"
    if not settings.twitch_client_id:
        raise ConfigError("TWITCH_CLIENT_ID", why)
    if not settings.twitch_client_secret:
        raise ConfigError("TWITCH_CLIENT_SECRET", why)

    if settings.firestore_lookup == "user_id":
        user_id = (env.get("TWITCH_BOT_USER_ID") or "").strip()
        identities: tuple[str, ...] = (user_id,) if user_id else ()
    else:
        identities = (settings.twitch_bot_username,) if settings.twitch_bot_username else ()

    lease = _seconds(env, "TWITCH_TOKEN_REFRESH_LEASE_S", 45.0, 0.0, 600.0)
    options = ProviderOptions(
        refresh_margin=_seconds(env, "TWITCH_TOKEN_REFRESH_MARGIN_S", 300.0, 0.0, 86_400.0),
        validate_interval=_seconds(env, "TWITCH_TOKEN_VALIDATE_INTERVAL_S", 3300.0, 1.0, 3600.0),
        force_refresh_min_interval=_seconds(
            env, "TWITCH_FORCE_REFRESH_MIN_INTERVAL_S", 60.0, 0.0, 3600.0
        ),
        refresh_lease=lease or None,
    )
    oauth = TwitchOAuthClient(
        settings.twitch_oauth_url,
        settings.twitch_client_id,
        settings.twitch_client_secret,
        timeout=_seconds(env, "TWITCH_OAUTH_TIMEOUT_S", 10.0, 0.1, 120.0),
    )
    return FirestoreCredentialsProvider(
        oauth=oauth,
        project=settings.google_cloud_project or None,
        collection=settings.firestore_tokens_collection,
        lookup=settings.firestore_lookup,
        identities=identities,
        options=options,
        firestore_timeout=_seconds(env, "FIRESTORE_TIMEOUT_S", 10.0, 0.1, 120.0),
    )
