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
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    logs.configure(
        settings.log_level,
        secrets=(settings.twitch_client_secret, settings.twitch_oauth_token),
    )
    from ingress_egress.service import Service

    asyncio.run(Service(settings).run_until_signalled())
    return 0
