"""The one error a bad configuration raises: one line naming the variable."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

QUOTE_CHARS = 40  # an error line quotes at most this much of a bad value


class ConfigError(ValueError):
    """A configuration variable is missing or invalid. ``str()`` is one line naming it."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"configuration error: {variable}: {problem}")


def quote(value: str) -> str:
    """``repr`` of a bad value, cut to a short prefix: the error stays one short line."""
    if len(value) <= QUOTE_CHARS:
        return repr(value)
    return f"{value[:QUOTE_CHARS]!r}... ({len(value)} characters)"


def split_url(name: str, url: str) -> SplitResult:
    """``urlsplit``, with its ValueError (``irc://[::1``) as a ConfigError naming ``name``."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - parsed lazily; may raise too
    except ValueError as error:
        raise ConfigError(name, f"not a valid URL ({error}): {quote(url)}") from None
    return parts
