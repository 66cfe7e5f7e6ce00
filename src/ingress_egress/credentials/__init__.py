"""Where the bot's Twitch tokens come from. The chat client only sees ``CredentialsProvider``.

``build_credentials_provider(settings)`` picks the Firestore-backed refreshing provider
(``credentials.firestore_provider``) or the static ``TWITCH_OAUTH_TOKEN`` one. The Firestore
modules are imported lazily so the static path stays free of the Google client libraries.
"""

from ingress_egress.credentials.base import ChatAuth, CredentialsError, CredentialsProvider
from ingress_egress.credentials.factory import build_credentials_provider
from ingress_egress.credentials.static import StaticTokenProvider

__all__ = [
    "ChatAuth",
    "CredentialsError",
    "CredentialsProvider",
    "StaticTokenProvider",
    "build_credentials_provider",
]
