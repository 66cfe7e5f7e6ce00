"""The sender's small pure parts: the PRIVMSG line, which NOTICEs answer a send, the
latency histogram."""

from __future__ import annotations

import pytest

from ingress_egress.egress.irc_transport import is_refusal, privmsg_line
from ingress_egress.egress.sender_stats import LatencyBuckets, SenderStats
from ingress_egress.protocol.irc import parse_line


def test_a_privmsg_carries_the_reply_tag_and_an_action_as_ctcp() -> None:
    line = privmsg_line("forsen", "waves back", "abc-123", is_action=True)
    assert line == "@reply-parent-msg-id=abc-123 PRIVMSG #forsen :\x01ACTION waves back\x01"
    parsed = parse_line(line)
    assert parsed.tags == {"reply-parent-msg-id": "abc-123"}
    assert parsed.params == ["#forsen", "\x01ACTION waves back\x01"]
    assert privmsg_line("forsen", "hi", None, is_action=False) == "PRIVMSG #forsen :hi"


@pytest.mark.parametrize("text", ["a\r\nQUIT", "a\nJOIN #x", "nul\x00"])
def test_a_privmsg_never_holds_cr_lf_or_nul(text: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        privmsg_line("forsen", text, None, is_action=False)


@pytest.mark.parametrize(
    ("msg_id", "answers"),
    [
        ("msg_duplicate", True),
        ("msg_banned", True),
        ("msg_channel_suspended", True),
        ("unrecognized_cmd", True),
        ("slow_on", False),  # a room-mode notice to everyone, not an answer
        ("emote_only_on", False),
        ("", False),
    ],
)
def test_only_refusal_notices_answer_a_send(msg_id: str, answers: bool) -> None:
    assert is_refusal(msg_id) is answers


def test_latency_buckets_are_cumulative() -> None:
    buckets = LatencyBuckets(bounds=(0.1, 1.0))
    for seconds in (0.05, 0.5, 0.7, 3.0, -1.0):
        buckets.observe(seconds)
    assert buckets.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert buckets.total == 5
    assert buckets.sum_s == pytest.approx(4.25)


def test_results_are_counted_by_status_and_reason() -> None:
    stats = SenderStats()
    stats.result("sent", None)
    stats.result("dropped", "msg_banned")
    stats.result("dropped", "msg_banned")
    described = stats.describe()
    assert described["results"] == {"dropped": 2, "sent": 1}
    assert described["resultsByReason"] == {"dropped/msg_banned": 2, "sent": 1}
