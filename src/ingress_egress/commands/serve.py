"""``ingress-egress serve``: the service, configured by the environment."""

from __future__ import annotations

import asyncio
import os
import sys

from ingress_egress.config import ConfigError, Settings
from ingress_egress.observability import logs


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
        logs.configure(
            settings.telemetry.log_level,
            secrets=(
                settings.credentials.client_secret,
                settings.credentials.oauth_token,
                settings.http.debug_token,
                settings.http.admin_token,
            ),
            log_format=settings.telemetry.log_format,
            stream=logs.log_stream(settings.bus.driver),
            project=settings.google.project,
        )
        from ingress_egress.service import Service

        # Builds the credentials provider and the channel document: may reject config too.
        service = Service(settings)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        asyncio.run(service.run_until_signalled())
    except ConfigError as error:  # found at start: the HTTP port in use, a HOST not bindable
        print(error, file=sys.stderr)
        return 2
    return 0
