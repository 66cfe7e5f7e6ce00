"""Decoding send commands: the contract, its two failure kinds, and the published schema."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_egress.egress.command import (
    MAX_COMMAND_BYTES,
    MAX_TEXT_CODE_POINTS,
    InvalidCommand,
    UnreadableCommand,
    decode_command,
)
from ingress_egress.egress.result import result_for_invalid
from tests.support.egress_commands import COMMAND_ID, command, encode, validator


def test_a_command_decodes_with_its_channel_normalised() -> None:
    body = command(target={"platform": "twitch", "channel": " #Forsen "})
    decoded = decode_command(encode(body))
    assert decoded.id == COMMAND_ID
    assert decoded.channel == "forsen" and decoded.channel_id is None
    assert decoded.text == "pong" and decoded.is_action is False and decoded.reply_to is None
    assert decoded.issued_at == pytest.approx(1_796_690_400.123)
    assert decoded.finalization_destination == "internal.finalizer.v1"
    validator("egress-command.schema.json").validate(body)


def test_optional_fields_take_their_defaults() -> None:
    body = command(payload={"text": "hi"})
    del body["finalizationDestination"]
    decoded = decode_command(encode(body))
    assert decoded.is_action is False and decoded.reply_to is None
    assert decoded.finalization_destination == "internal.finalizer.v1"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'"text"', "not a JSON object but str"),
        (b"{}", "no usable id"),
        (orjson.dumps({"id": 5}), "no usable id"),
        (orjson.dumps({"id": ""}), "no usable id"),
        (orjson.dumps({"id": COMMAND_ID + "\n"}), "no usable id"),
        (orjson.dumps({"id": "a b"}), "no usable id"),
        (orjson.dumps({"id": "x" * 129}), "no usable id"),
        (b" " * (MAX_COMMAND_BYTES + 1), f"exceeds {MAX_COMMAND_BYTES}"),
    ],
)
def test_unreadable_commands_say_why(data: bytes, says: str) -> None:
    with pytest.raises(UnreadableCommand) as caught:
        decode_command(data)
    assert says in caught.value.reason


INVALID = [
    ({"v": "2"}, "v must be"),
    ({"type": "egress.chat.message.v2"}, "type must be"),
    ({"correlationId": "nope"}, "correlationId must be"),
    ({"traceId": "0" * 32}, "traceId must be"),
    ({"timestamp": "2026-12-08T00:40:00"}, "timestamp must be"),
    ({"target": {"platform": "twitch", "channel": "no such/channel"}}, "target.channel"),
    ({"target": {"platform": "youtube", "channel": "forsen"}}, "target.platform"),
    ({"target": {"platform": "twitch", "channel": "forsen", "room": "1"}}, "unknown fields"),
    ({"target": {"platform": "twitch", "channel": "forsen", "channelId": "x1"}}, "channelId"),
    ({"target": "forsen"}, "target must be an object"),
    ({"payload": {"text": ""}}, "payload.text"),
    ({"payload": {"text": " \t\r\n\x00 "}}, "payload.text"),
    ({"payload": {"text": 5}}, "payload.text"),
    ({"payload": {"text": "hi", "isAction": "yes"}}, "isAction"),
    ({"payload": {"text": "hi", "replyTo": "a b"}}, "replyTo"),
    ({"payload": {"text": "hi", "colour": "red"}}, "unknown fields"),
    ({"finalizationDestination": "a..b"}, "finalizationDestination"),
]


@pytest.mark.parametrize(("changes", "says"), INVALID)
def test_invalid_commands_are_answered_not_sent(changes: dict[str, Any], says: str) -> None:
    body = command(**changes)
    with pytest.raises(InvalidCommand) as caught:
        decode_command(encode(body))
    error = caught.value
    assert says in error.detail
    assert error.reason == "invalid" and error.command_id == COMMAND_ID
    result = result_for_invalid(error, 1_796_690_401.0)
    assert result.outcome.status == "dropped" and result.outcome.reason == "invalid"
    validator("egress-result.schema.json").validate(orjson.loads(result.encode()))
    assert not validator("egress-command.schema.json").is_valid(body)


def test_an_impossible_date_is_invalid() -> None:
    """The schema's pattern cannot tell; its ``format: date-time`` says so to validators
    that check formats."""
    with pytest.raises(InvalidCommand, match="timestamp"):
        decode_command(encode(command(timestamp="2026-13-08T00:40:00Z")))


def test_what_an_invalid_command_could_tell_is_kept_for_its_answer() -> None:
    body = command(v="9", finalizationDestination="team.finalizer.v2")
    body["target"] = {"platform": "twitch", "channel": "#XQC"}
    with pytest.raises(InvalidCommand) as caught:
        decode_command(encode(body))
    error = caught.value
    assert error.channel == "xqc" and error.finalization_destination == "team.finalizer.v2"
    assert error.trace_id == body["traceId"] and error.correlation_id == body["correlationId"]


def test_a_text_past_the_cap_is_dropped_as_too_long() -> None:
    body = command(payload={"text": "a " * (MAX_TEXT_CODE_POINTS // 2) + "b"})
    with pytest.raises(InvalidCommand) as caught:
        decode_command(encode(body))
    assert caught.value.reason == "too_long"


# -- never anything but the two errors ----------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | json_values.map(encode))
def test_any_bytes_give_a_command_or_one_of_the_two_errors(data: bytes) -> None:
    try:
        decode_command(data)
    except (UnreadableCommand, InvalidCommand):
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(list(command())), json_values, max_size=9))
def test_any_fields_give_a_command_or_one_of_the_two_errors(changes: dict[str, Any]) -> None:
    try:
        decode_command(encode(command(**changes)))
    except (UnreadableCommand, InvalidCommand):
        pass


# -- the decoder and the schema agree -------------------------------------------------------

CANDIDATES: dict[str, list[Any]] = {
    "v": ["1", 1, "2", None],
    "id": [COMMAND_ID, str(uuid.uuid4()), COMMAND_ID.upper(), "not-a-uuid", "", 7],
    "correlationId": [str(uuid.uuid4()), "x", None, 5],
    "traceId": [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0" * 32,
        "4BF92F3577B34DA6A3CE929D0E0E4736",
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",  # the UUID form of the contract's example
        "00000000-0000-0000-0000-000000000000",
        "4bf92f35-77b3-4da6-a3ce-929d0e0e473",
    ],
    "timestamp": [
        "2026-12-08T00:40:00.123Z",
        "2026-12-08T00:40:00Z",
        "2026-12-08T01:40:00.123456789+01:00",
        "2026-12-08T00:40:00",
        "2026-12-08 00:40:00Z",
        1234,
    ],
    "type": ["egress.chat.message.v1", "egress.chat.message.v2"],
    "finalizationDestination": ["internal.finalizer.v1", "a..b", "", "x" * 201, "team.f-1.v2", 5],
    "routingSlip": [[], None],
}
channel_text = st.text(alphabet="aZ_9# -é\t", max_size=28)
channel_ids = st.sampled_from(["22484632", "abc", None, 5, ""])
targets = st.fixed_dictionaries(
    {},
    optional={
        "platform": st.sampled_from(["twitch", "youtube", None]),
        "channel": channel_text,
        "channelId": channel_ids,
        "extra": st.just(1),
    },
) | st.sampled_from(["forsen", None, []])
texts = (
    st.text(max_size=40)
    | st.sampled_from([" \t\n", "\x00\x01", "\u3000x", "\ufeff", "\u034f"])
    | st.integers(MAX_TEXT_CODE_POINTS - 2, MAX_TEXT_CODE_POINTS + 2).map(lambda n: "w" * n)
    | st.just(5)
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "text": texts,
        "replyTo": st.sampled_from([None, "b2c1d0e9-aaaa-4bbb-8ccc-000011112222", "a b", 3]),
        "isAction": st.sampled_from([True, False, "true", 1, None]),
        "extra": st.just(1),
    },
) | st.sampled_from(["text", None])


@st.composite
def mutated_commands(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(command())
    for key in draw(st.sets(st.sampled_from(sorted(CANDIDATES)))):
        body[key] = draw(st.sampled_from(CANDIDATES[key]))
    if draw(st.booleans()):
        body["target"] = draw(targets)
    if draw(st.booleans()):
        body["payload"] = draw(payloads)
    for key in draw(st.sets(st.sampled_from(sorted(body)), max_size=2)):
        del body[key]
    return body


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_commands())
def test_the_decoder_accepts_exactly_what_the_schema_accepts(body: dict[str, Any]) -> None:
    schema_ok = validator("egress-command.schema.json").is_valid(body)
    try:
        decode_command(encode(body))
        decoded = True
    except (UnreadableCommand, InvalidCommand):
        decoded = False
    assert decoded == schema_ok, body
