"""The redaction filter: tokens never reach a log line, whatever shape they take."""

from __future__ import annotations

import io
import logging

import pytest

from ingress_egress.observability.logs import REDACTED, RedactingFilter


@pytest.fixture
def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets=["client-secret-value-42"]))
    logger = logging.getLogger(f"test.redaction.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


@pytest.mark.parametrize(
    "message",
    [
        "sending PASS oauth:abcdef123456secret",
        "headers {'Authorization': 'Bearer abcdef123456secret'}",
        "Authorization: OAuth abcdef123456secret",
        'body {"access_token": "abcdef123456secret", "expires_in": 3600}',
        "form refresh_token=abcdef123456secret&grant_type=refresh_token",
        "accessToken='abcdef123456secret'",
    ],
)
def test_token_shapes_are_redacted(capture, message: str) -> None:
    logger, stream = capture
    logger.info(message)
    assert "abcdef123456secret" not in stream.getvalue()
    assert REDACTED in stream.getvalue()


def test_registered_secret_and_exception_text_are_redacted(capture) -> None:
    logger, stream = capture
    logger.warning("secret is %s", "client-secret-value-42")
    try:
        raise RuntimeError("failed with oauth:tokenvalue99887766")
    except RuntimeError:
        logger.exception("boom")
    text = stream.getvalue()
    assert "client-secret-value-42" not in text
    assert "tokenvalue99887766" not in text
    assert "boom" in text and "RuntimeError" in text
