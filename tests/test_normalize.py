"""``ingress-egress normalize``: one JSON object per input line, in order, never stopping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingress_egress.protocol import parse_line
from tests.support.schemas import validate_envelope

FIXTURE = Path(__file__).parent / "fixtures" / "twitch_irc_vectors.jsonl"
PRIVMSG = (
    "@badge-info=;badges=moderator/1;color=#FF0000;display-name=Mod;emotes=25:0-4;"
    "id=11111111-2222-4333-8444-555555555555;mod=1;room-id=42;subscriber=0;"
    "tmi-sent-ts=1600000000000;user-id=7 :mod!mod@mod.tmi.twitch.tv PRIVMSG #chan :Kappa hi"
)


@pytest.fixture(params=["auto", "pure-python"])
def codec_choice(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI once as deployed and once with the extension kept out: ``normalize`` builds
    envelopes through the Python reference either way, and the switch must not change it."""
    if request.param == "pure-python":
        monkeypatch.setenv("INGRESS_EGRESS_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("INGRESS_EGRESS_PURE_PYTHON", raising=False)
    return request.param


def run_normalize(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ingress_egress", "normalize", *args],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_every_sample_line_gives_exactly_one_record(codec_choice: str, tmp_path: Path) -> None:
    lines = [
        json.loads(row)["raw"]
        for row in FIXTURE.read_text().splitlines()
        if json.loads(row)["raw_kind"] == "line"
    ]
    source = tmp_path / "lines.txt"
    source.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    result = run_normalize(b"", str(source))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(lines)
    for raw, record in zip(lines, records, strict=True):
        if "error" in record:
            assert record["raw"] == raw
        elif "ignored" in record:
            assert record["ignored"] == parse_line(raw).command
        else:
            validate_envelope(record)
            assert record["payload"]["raw"]["tags"] == parse_line(raw).tags


def test_bad_input_is_reported_in_place_and_processing_continues(codec_choice: str) -> None:
    data = b"\n".join(
        [
            PRIVMSG.encode(),
            b"@a=b",  # truncated tags
            PRIVMSG.replace("Kappa hi", "caf\xc3\xa9 Kappa").encode()[:-6] + b"\xff\xfe Kappa",
            b"PING :tmi.twitch.tv",
            b"",
            PRIVMSG.encode(),
        ]
    )
    result = run_normalize(data, "--summary")
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 6
    assert records[0]["payload"]["text"] == "Kappa hi"
    assert records[1] == {"error": "partial message: no space after tags", "raw": "@a=b"}
    assert "\ufffd" in records[2]["payload"]["text"]  # invalid UTF-8 replaced, not fatal
    assert records[3] == {"ignored": "PING"}
    assert records[4] == {"error": "empty line", "raw": ""}
    assert records[5]["id"] == records[0]["id"]  # same Twitch message -> same envelope id
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])["summary"]
    assert summary["lines"] == 6
    assert summary["errors"] == 2
    assert summary["invalid_utf8"] == 1
    assert summary["envelopes"] == 3


def test_type_filter_and_sent_time(codec_choice: str) -> None:
    clearchat = "@room-id=42;tmi-sent-ts=1600000000500 :tmi.twitch.tv CLEARCHAT #chan"
    data = "\n".join([PRIVMSG, clearchat, "@only=tags", "PING :x"]).encode()
    result = run_normalize(data, "--type", "moderation", "--sent-time")
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == ["external.chat.moderation.v1"]
    assert records[0]["timestamp"] == "2020-09-13T12:26:40.500Z"
    assert records[0]["payload"]["action"] == "clear"
    assert b"error" in result.stderr  # the unparseable line still reaches the operator


def test_unknown_type_is_a_clear_usage_error() -> None:
    result = run_normalize(b"", "--type", "bogus")
    assert result.returncode == 2
    assert b"unknown --type 'bogus'" in result.stderr


@pytest.mark.parametrize("text", ['"quoted" \\ back', "\u2028line\u2029sep", "\x00\x07ctl", "🎉🎉"])
def test_user_text_cannot_break_json(text: str) -> None:
    line = PRIVMSG.replace("Kappa hi", text)
    result = run_normalize(line.encode())
    record = json.loads(result.stdout)
    assert record["payload"]["text"] == text
