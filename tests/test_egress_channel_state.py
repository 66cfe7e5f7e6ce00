"""What is learned per channel: the bot's role from USERSTATE or Helix, slow mode from
ROOMSTATE, the last message and result."""

from __future__ import annotations

from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.protocol import parse_line
from ingress_egress.twitch.messages import Roomstate, Userstate

BOT = "egressbot"


def userstate(channel: str, badges: str = "", mod: str = "0") -> Userstate:
    line = (
        f"@badge-info=;badges={badges};color=#FF0000;display-name=EgressBot;emote-sets=0;"
        f"mod={mod};subscriber=0;user-type= :tmi.twitch.tv USERSTATE #{channel}"
    )
    return Userstate.from_irc(parse_line(line))


def roomstate(channel: str, tags: str) -> Roomstate:
    return Roomstate.from_irc(parse_line(f"@{tags} :tmi.twitch.tv ROOMSTATE #{channel}"))


def test_a_channel_nobody_spoke_of_is_not_privileged_the_own_channel_is() -> None:
    states = ChannelStates(BOT)
    assert not states.is_privileged("forsen")
    assert states.is_privileged(BOT)


def test_userstate_grants_and_a_later_one_revokes_at_once() -> None:
    states = ChannelStates(BOT)
    states.learn_userstate(userstate("forsen", "moderator/1", mod="1"), at=10.0)
    assert states.is_privileged("forsen")
    states.learn_userstate(userstate("forsen", "", mod="0"), at=11.0)  # unmodded mid-burst
    assert not states.is_privileged("forsen")
    states.learn_userstate(userstate("forsen", "vip/1"), at=12.0)
    assert states.is_privileged("forsen")
    states.learn_userstate(userstate("forsen", "broadcaster/1,subscriber/0"), at=13.0)
    assert states.view("forsen").privilege_source == "userstate"


def test_mod_tag_alone_is_enough() -> None:
    states = ChannelStates(BOT)
    states.learn_userstate(userstate("xqc", "", mod="1"), at=1.0)
    assert states.is_privileged("xqc")


def test_helix_refresh_and_userstate_the_latest_wins() -> None:
    states = ChannelStates(BOT)
    states.learn_userstate(userstate("a", "moderator/1", mod="1"), at=10.0)
    states.learn_privileged_channels({"b"}, at=20.0)  # a is no longer in the list
    assert not states.is_privileged("a") and states.is_privileged("b")
    assert states.is_privileged("c") is False  # not listed: not privileged
    states.learn_userstate(userstate("a", "moderator/1", mod="1"), at=25.0)
    assert states.is_privileged("a")
    states.learn_privileged_channels({"b"}, at=24.0)  # older than that USERSTATE: loses
    assert states.is_privileged("a")
    states.learn_privileged_channels(set(), at=30.0)
    assert not states.is_privileged("a") and not states.is_privileged("b")
    assert states.is_privileged(BOT)


def test_global_userstate_changes_nothing() -> None:
    states = ChannelStates(BOT)
    line = "@badges=moderator/1;display-name=EgressBot;user-id=1 :tmi.twitch.tv GLOBALUSERSTATE"
    states.learn_userstate(Userstate.from_irc(parse_line(line)), at=1.0)
    assert states.snapshot() == {}


def test_roomstate_slow_mode_and_partial_updates() -> None:
    states = ChannelStates(BOT)
    states.learn_roomstate(
        roomstate(
            "forsen", "emote-only=0;followers-only=-1;r9k=0;room-id=22484632;slow=10;subs-only=0"
        )
    )
    view = states.view("forsen")
    assert view.slow_s == 10 and view.room_id == "22484632"
    states.learn_roomstate(roomstate("forsen", "emote-only=1;room-id=22484632"))  # partial
    assert states.view("forsen").slow_s == 10
    states.learn_roomstate(roomstate("forsen", "room-id=22484632;slow=0"))
    assert states.view("forsen").slow_s == 0


def test_views_are_copies() -> None:
    states = ChannelStates(BOT)
    view = states.view("forsen")
    view.privileged = True
    assert not states.is_privileged("forsen")


def test_last_send_and_result_and_the_snapshot() -> None:
    states = ChannelStates(BOT)
    states.note_sent("forsen", "pong", at=1_796_690_400.0)
    states.note_result("forsen", "dropped", "msg_duplicate")
    view = states.view("forsen")
    assert view.last_sent is not None and view.last_sent.text == "pong"
    snap = states.snapshot(iso=lambda epoch: f"t{epoch:.0f}")
    assert snap == {
        "forsen": {
            "privileged": False,
            "privilegeSource": None,
            "slowSeconds": 0,
            "roomId": None,
            "lastSendAt": "t1796690400",
            "lastResult": "dropped",
            "lastReason": "msg_duplicate",
        }
    }
