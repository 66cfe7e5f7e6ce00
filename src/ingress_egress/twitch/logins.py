"""Twitch logins (channel and user names), defined once for every place that reads one.

A login is 1-25 characters of lowercase letters, digits and underscore (new accounts need 4
or more; older ones are shorter). Where people write channel names (``TWITCH_CHANNELS``, the
admin route, the Firestore channel list) case, a leading ``#`` and surrounding spaces are
tolerated: ``channel_login`` strips them before checking.
"""

from __future__ import annotations

import re

_LOGIN_RE = re.compile(r"^[a-z0-9_]{1,25}$")


def is_login(text: str) -> bool:
    """``text`` is a Twitch login exactly as Twitch writes it (lowercase, no ``#``)."""
    return _LOGIN_RE.match(text) is not None


def channel_login(item: object) -> str | None:
    """``" #Forsen "`` -> ``"forsen"``; ``None`` when ``item`` is not a string naming a login."""
    if not isinstance(item, str):
        return None
    login = item.strip().lstrip("#").lower()
    return login if is_login(login) else None
