"""``ingress-egress serve``: the service, configured by the environment."""

from __future__ import annotations

import asyncio
import os
import sys

from ingress_egress import logs
from ingress_egress.config import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
        logs.configure(
            settings.log_level,
            secrets=(
                settings.twitch_client_secret,
                settings.twitch_oauth_token,
                settings.debug_token,
                settings.admin_token,
            ),
            log_format=settings.log_format,
            stream=logs.log_stream(settings.message_bus_driver),
            project=settings.google_cloud_project,
        )
        from ingress_egress.service import Service

        service = Service(settings)  # builds the credentials provider: may reject config too
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    asyncio.run(service.run_until_signalled())
    return 0
