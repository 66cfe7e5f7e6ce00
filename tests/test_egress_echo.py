"""Echo confirmation (egress/echo.py) on a fake clock: a sent message's id coming back in
chat confirms it; one that does not within the timeout is counted unseen; memory stays
bounded however many sends go unanswered."""

from __future__ import annotations

import logging

import pytest

from ingress_egress.egress.echo import DEFAULT_TIMEOUT_MS, EchoWatch, Unseen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(**options: object) -> tuple[EchoWatch, Clock]:
    clock = Clock()
    options.setdefault("channels", ("forsen", "#Pajlada"))
    return EchoWatch(clock=clock, **options), clock  # type: ignore[arg-type]


def test_a_send_seen_in_chat_is_confirmed_and_never_unseen() -> None:
    echo, clock = watch()
    assert echo.expect("m1", "#Forsen")
    clock.now += 0.4
    assert echo.seen("m1")
    clock.now += 60
    assert echo.sweep() == []
    assert echo.describe()["lastUnseen"] is None
    assert (echo.confirmed, echo.unseen, echo.describe()["pending"]) == (1, 0, 0)


def test_a_send_not_seen_within_the_timeout_is_unseen_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo, clock = watch(timeout_ms=2000)
    echo.expect("m1", "forsen")
    clock.now += 1.0
    echo.expect("m2", "pajlada")
    clock.now += 0.999
    assert echo.sweep() == []  # m1 is 1.999 s old
    clock.now += 0.001
    with caplog.at_level(logging.WARNING, logger="ingress_egress.egress"):
        assert echo.sweep() == [Unseen("m1", "forsen", 1000.0)]
    assert "not seen in chat" in caplog.text and "m1" in caplog.text
    assert echo.sweep() == []  # counted once
    clock.now += 1.0
    assert [u.message_id for u in echo.sweep(clock.now)] == ["m2"]
    described = echo.describe()
    assert described["unseen"] == 2 and described["pending"] == 0
    assert described["lastUnseen"] == {"messageId": "m2", "channel": "pajlada", "secondsAgo": 2.0}
    assert described["timeoutMs"] == 2000


def test_the_default_timeout_is_ten_seconds() -> None:
    echo, clock = watch()
    assert DEFAULT_TIMEOUT_MS == 10_000
    echo.expect("m1", "forsen")
    clock.now += 9.9
    assert echo.sweep() == []
    clock.now += 0.1
    assert len(echo.sweep()) == 1


def test_an_echo_that_overtakes_the_answer_to_the_send_confirms_it() -> None:
    """The echo can reach the read side before the sender records the send's id."""
    echo, clock = watch()
    assert not echo.seen("m1")
    clock.now += 0.2
    assert echo.expect("m1", "forsen")
    assert echo.confirmed == 1
    clock.now += 60
    assert echo.sweep() == [] and echo.unseen == 0


def test_an_echo_after_the_timeout_is_counted_late() -> None:
    echo, clock = watch(timeout_ms=1000)
    echo.expect("m1", "forsen")
    clock.now += 1.5
    assert len(echo.sweep()) == 1
    assert not echo.seen("m1")
    assert (echo.unseen, echo.late, echo.confirmed) == (1, 1, 0)


def test_only_channels_the_service_reads_are_watched() -> None:
    echo, clock = watch(channels=("forsen",))
    assert not echo.expect("m1", "elsewhere")
    assert not echo.expect("", "forsen")  # no id: nothing to confirm with
    assert echo.unwatched == 2
    echo.set_channels(["Elsewhere"])
    assert echo.watches("#elsewhere") and not echo.watches("forsen")
    assert echo.expect("m2", "elsewhere")
    clock.now += 11
    assert [u.message_id for u in echo.sweep()] == ["m2"]


def test_seeing_an_id_twice_and_expecting_it_twice_count_once() -> None:
    """Two connections during a reconnect overlap both see the echo."""
    echo, _ = watch()
    echo.expect("m1", "forsen")
    echo.expect("m1", "forsen")
    assert echo.seen("m1")
    assert not echo.seen("m1")
    assert echo.confirmed == 1
    echo.on_self_message("#forsen", "m1")  # the sources' callback shape
    assert echo.confirmed == 1


def test_memory_is_bounded_by_the_capacity() -> None:
    echo, clock = watch(capacity=100, timeout_ms=5000)
    for i in range(1000):
        echo.expect(f"sent-{i}", "forsen")
        echo.seen(f"foreign-{i}")  # the bot's messages sent by something else
        clock.now += 0.001
    described = echo.describe()
    assert (described["pending"], described["evicted"]) == (100, 900)
    assert described["remembered"] == 200  # 100 evicted ids, 100 seen alone
    assert echo.seen("sent-999")  # still watched
    assert not echo.seen("sent-850")  # evicted, remembered: late
    assert not echo.seen("sent-0")  # evicted and forgotten
    assert (echo.confirmed, echo.late) == (1, 1)
    clock.now += 10
    assert len(echo.sweep()) == 99
    assert echo.describe()["remembered"] == 99  # the ones just given up, for one timeout
    clock.now += 10
    assert echo.sweep() == []
    assert echo.describe()["remembered"] == echo.describe()["pending"] == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        EchoWatch(timeout_ms=0)
    with pytest.raises(ValueError):
        EchoWatch(capacity=0)
