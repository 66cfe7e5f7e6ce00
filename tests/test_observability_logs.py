"""Structured logs: the Cloud Logging JSON shape, text in a terminal, where they go, and
redaction applied to every record, structured fields included."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import orjson
import pytest

from ingress_egress.observability import logs
from ingress_egress.observability.logs import (
    REDACTED,
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def one_json_line(stream: io.StringIO) -> dict:
    (line,) = stream.getvalue().splitlines()
    return orjson.loads(line)


def test_json_line_has_the_cloud_logging_shape(root_restored) -> None:
    stream = io.StringIO()
    logs.configure("INFO", log_format="json", stream=stream, project="my-project")
    logging.getLogger("ingress_egress.pipeline").error(
        "publish failed for envelope %s",
        "e-1",
        extra={
            "eventId": "e-1",
            "channel": "forsen",
            "userLogin": "bot",
            "errorCode": "publish_failed",
            "traceId": TRACE,
            "spanId": "00f067aa0ba902b7",
        },
    )
    entry = one_json_line(stream)
    assert entry["severity"] == "ERROR"
    assert entry["message"] == "publish failed for envelope e-1"
    assert entry["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert entry["service"] == "ingress-egress"
    assert entry["component"] == "pipeline"
    assert (entry["eventId"], entry["channel"], entry["userLogin"], entry["errorCode"]) == (
        "e-1",
        "forsen",
        "bot",
        "publish_failed",
    )
    assert entry["time"].endswith("Z")


def test_without_a_project_the_trace_is_the_bare_id_and_absent_fields_are_left_out() -> None:
    formatter = JsonFormatter(project="")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    record.traceId = TRACE
    entry = orjson.loads(formatter.format(record))
    assert entry["logging.googleapis.com/trace"] == TRACE
    assert "eventId" not in entry and "errorCode" not in entry
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    assert "logging.googleapis.com/trace" not in orjson.loads(formatter.format(plain))


def test_exceptions_are_inside_the_json_message(root_restored) -> None:
    stream = io.StringIO()
    logs.configure("INFO", log_format="json", stream=stream)
    try:
        raise ValueError("bad oauth:tok3nvalue998877")
    except ValueError:
        logging.getLogger("ingress_egress.service").exception("crashed")
    entry = one_json_line(stream)
    assert entry["message"].startswith("crashed\nTraceback")
    assert "ValueError" in entry["message"]
    assert "tok3nvalue998877" not in stream.getvalue()


def test_redaction_reaches_structured_fields_and_extras(root_restored) -> None:
    stream = io.StringIO()
    logs.configure("INFO", secrets=["my-client-secret-1"], log_format="json", stream=stream)
    logging.getLogger("ingress_egress.credentials").warning(
        "refresh answered %s",
        {"access_token": "abcdef123456secret", "scope": ["chat:read"]},
        extra={
            "errorCode": "refresh failed: refresh_token=zzzz99998888",
            "userLogin": "oauth:qqqq77776666",
            "authorization": "Bearer wwww55554444",
            "details": {"client_secret": "my-client-secret-1", "headers": {"Authorization": "x"}},
        },
    )
    text = stream.getvalue()
    for secret in (
        "abcdef123456secret",
        "zzzz99998888",
        "qqqq77776666",
        "wwww55554444",
        "my-client-secret-1",
    ):
        assert secret not in text
    entry = one_json_line(stream)
    assert REDACTED in entry["message"] and REDACTED in entry["errorCode"]
    assert "chat:read" in entry["message"]


def test_redacting_filter_scrubs_extras_for_any_formatter() -> None:
    redaction = RedactingFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "ok", (), None)
    record.access_token = "abcdef123456secret"
    record.nested = {"refreshToken": "ffff11112222"}
    record.note = "sent PASS oauth:gggg33334444"
    assert redaction.filter(record)
    assert record.access_token == REDACTED
    assert record.nested == {"refreshToken": REDACTED}
    assert "gggg33334444" not in record.note


def test_text_format_in_a_terminal_and_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.wants_json("auto", io.StringIO()) is True
    assert logs.wants_json("auto", Terminal()) is False
    assert logs.wants_json("json", Terminal()) is True
    assert logs.wants_json("text", io.StringIO()) is False
    record = logging.LogRecord("ingress_egress.x", logging.WARNING, __file__, 1, "joined", (), None)
    record.channel = "forsen"
    line = TextFormatter().format(record)
    assert "WARNING ingress_egress.x: joined [channel=forsen]" in line


def test_logs_leave_stdout_to_the_stdout_bus() -> None:
    assert logs.log_stream("stdout") is sys.stderr
    assert logs.log_stream("nats") is sys.stdout
    assert logs.log_stream("pubsub") is sys.stdout
