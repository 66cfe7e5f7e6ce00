"""ChatState: changed only through its methods, read as snapshots."""

from __future__ import annotations

import pytest

from ingress_egress.status import ChatState


def test_fields_are_read_only() -> None:
    state = ChatState(transport="irc", identity="anonymous")
    for name in ("connected", "reading", "joined", "failed_channels", "reconnects"):
        with pytest.raises(AttributeError):
            setattr(state, name, None)
    with pytest.raises(TypeError):
        state.failed_channels["x"] = "y"  # type: ignore[index]


def test_joined_counts_connections_and_pending_follows() -> None:
    state = ChatState(transport="irc", identity="anonymous", reading=("a", "b", "c"))
    state.confirm_joined("a")
    state.confirm_joined("a")  # the second connection of a RECONNECT overlap
    state.mark_failed("c", "msg_banned")
    assert state.pending == ["b"]
    state.lose_joined("a")
    assert "a" in state.joined  # still joined on the other connection
    state.lose_joined("a")
    assert "a" not in state.joined
    state.confirm_joined("c")  # a join clears the failure
    assert dict(state.failed_channels) == {}


def test_a_snapshot_does_not_change_with_the_state() -> None:
    state = ChatState(transport="eventsub", identity="bot", reading=("a",))
    state.set_connected(True, since=5.0)
    state.set_joined("a", True)
    before = state.snapshot()
    state.set_joined("a", False)
    state.set_reading(("a", "b"))
    state.mark_failed("b", "no such user")
    state.set_connected(False)
    assert before.connected and before.connected_since == 5.0
    assert before.joined == frozenset({"a"}) and before.reading == ("a",)
    assert dict(before.failed_channels) == {}
    now = state.snapshot()
    assert now.pending == ("a",) and now.connected_since is None


def test_reading_a_new_list_forgets_failures_of_dropped_channels() -> None:
    state = ChatState(transport="irc", identity="anonymous", reading=("a", "b"))
    state.mark_failed("a", "msg_banned")
    state.mark_failed("b", "msg_banned")
    state.set_reading(("b",))
    assert dict(state.failed_channels) == {"b": "msg_banned"}
