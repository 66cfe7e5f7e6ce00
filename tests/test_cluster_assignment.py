"""Rendezvous assignment: the same answer everywhere, balanced, and minimal movement."""

from __future__ import annotations

import random
from collections import Counter

from ingress_egress.cluster.assignment import assign, owned_by, readers_of

CHANNELS = [f"channel_{i}" for i in range(10_000)]


def test_every_member_computes_the_same_readers_whatever_the_order() -> None:
    members = ["ie-a", "ie-b", "ie-c", "ie-d"]
    shuffled = members[:]
    random.Random(7).shuffle(shuffled)
    assert assign(CHANNELS[:500], members, 2) == assign(CHANNELS[:500], shuffled, 2)
    assert readers_of("forsen", members, 2) == readers_of("forsen", list(reversed(members)), 2)


def test_fewer_members_than_replicas_means_every_member_reads() -> None:
    assert set(readers_of("xqc", ["ie-a"], 2)) == {"ie-a"}
    assert set(readers_of("xqc", ["ie-a", "ie-b"], 3)) == {"ie-a", "ie-b"}
    assert readers_of("xqc", [], 2) == ()


def test_owned_by_matches_the_full_assignment() -> None:
    members = ["ie-a", "ie-b", "ie-c"]
    table = assign(CHANNELS[:2000], members, 2)
    for member in members:
        assert owned_by(member, CHANNELS[:2000], members, 2) == {
            c for c, who in table.items() if member in who
        }


def test_balance_within_a_few_percent_over_10000_channels() -> None:
    for members, replicas in ((["ie-a", "ie-b", "ie-c"], 2), ([f"m{i}" for i in range(5)], 1)):
        load = Counter(m for who in assign(CHANNELS, members, replicas).values() for m in who)
        fair = len(CHANNELS) * replicas / len(members)
        assert sum(load.values()) == len(CHANNELS) * replicas
        for member in members:
            assert abs(load[member] - fair) / fair < 0.04, (member, load[member], fair)


def test_adding_a_member_moves_only_what_it_wins() -> None:
    before = assign(CHANNELS, ["ie-a", "ie-b", "ie-c"], 2)
    after = assign(CHANNELS, ["ie-a", "ie-b", "ie-c", "ie-d"], 2)
    moved = 0
    for channel in CHANNELS:
        old, new = set(before[channel]), set(after[channel])
        if old != new:
            moved += 1
            assert new - old == {"ie-d"}  # the newcomer replaces exactly one reader
            assert len(old - new) == 1
    # The newcomer's rendezvous share: replicas / members of the channels.
    assert abs(moved / len(CHANNELS) - 2 / 4) < 0.03


def test_removing_a_member_moves_only_what_it_read() -> None:
    before = assign(CHANNELS, ["ie-a", "ie-b", "ie-c", "ie-d"], 2)
    after = assign(CHANNELS, ["ie-a", "ie-b", "ie-d"], 2)
    for channel in CHANNELS:
        old, new = set(before[channel]), set(after[channel])
        if "ie-c" in old:
            assert old - new == {"ie-c"} and len(new - old) == 1
        else:
            assert old == new
