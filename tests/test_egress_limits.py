"""The send limiter on a fake clock, and a randomized model check against a brute-force
reading of Twitch's rules (exact 30 s windows, no margin)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from ingress_egress.egress.limits import RecentSend, SendLimiter

WINDOW = 30.0


def test_twenty_then_wait_for_the_window_plus_margin() -> None:
    limiter = SendLimiter(margin_s=2.0)
    now = 1000.0
    for i in range(20):
        channel = f"c{i}"
        assert limiter.next_allowed(channel, False, 0, now) == now
        limiter.record(channel, now)
        limiter.settle(channel, now + 0.1)
        now += 0.2
    # the first send counts from its answer, 1000.1: the 21st may go 32 s after that
    assert limiter.next_allowed("other", False, 0, now) == pytest.approx(1000.1 + 32.0)
    assert limiter.next_allowed("other", True, 0, now) == now  # privileged: up to 100


def test_unanswered_sends_count_until_answered() -> None:
    limiter = SendLimiter(rate_limit=2, privileged_rate_limit=2, margin_s=0.0)
    limiter.record("a", 0.0)
    limiter.record("b", 0.0)
    assert limiter.next_allowed("c", False, 0, 100.0) == pytest.approx(130.0)  # a lower bound
    limiter.settle("a", 100.5)
    assert limiter.next_allowed("c", False, 0, 101.0) == pytest.approx(130.5)


def test_one_message_per_second_per_channel_and_slow_mode() -> None:
    limiter = SendLimiter(channel_margin_s=0.1)
    limiter.record("a", 10.0)
    limiter.settle("a", 10.3)
    assert limiter.next_allowed("a", False, 0, 10.4) == pytest.approx(11.4)
    assert limiter.next_allowed("a", False, 5, 10.4) == pytest.approx(15.4)
    assert limiter.next_allowed("a", True, 5, 10.4) == 10.4  # privileged: no spacing
    assert limiter.next_allowed("b", False, 5, 10.4) == 10.4


def test_restore_counts_a_previous_holders_sends() -> None:
    limiter = SendLimiter(rate_limit=3, privileged_rate_limit=3, margin_s=0.0)
    limiter.restore(
        [RecentSend("a", 90.0), RecentSend("b", 95.0), RecentSend("c", 80.0, settled=False)],
        now=100.0,
    )
    # the unanswered one counts from the takeover (100): the window is full until 120
    assert limiter.in_window(100.0) == 3
    assert limiter.next_allowed("d", False, 0, 100.0) == pytest.approx(120.0)
    roomy = SendLimiter(margin_s=0.0)
    roomy.restore([RecentSend("c", 80.0, settled=False)], now=100.0)
    assert roomy.next_allowed("c", False, 0, 100.5) == pytest.approx(101.1)  # spacing too


def test_snapshot_shows_both_limits() -> None:
    limiter = SendLimiter()
    limiter.record("a", 5.0)
    snap = limiter.snapshot(6.0)
    assert snap == {
        "windowSeconds": 32.0,
        "inWindow": 1,
        "inFlight": 1,
        "limit": 20,
        "remaining": 19,
        "privilegedLimit": 100,
        "privilegedRemaining": 99,
    }


# -- the model check --------------------------------------------------------------------


@dataclass
class Arrival:
    """A message as Twitch received it."""

    at: float
    channel: str
    privileged: bool
    slow: int


def violations(arrivals: list[Arrival], limit: int, privileged_limit: int) -> list[str]:
    """Twitch's rules, read literally, checked message by message (quadratic on purpose)."""
    found = []
    ordered = sorted(arrivals, key=lambda a: a.at)
    for i, msg in enumerate(ordered):
        before = [o for o in ordered[:i] if o.at > msg.at - WINDOW]
        cap = privileged_limit if msg.privileged else limit
        if len(before) >= cap:
            found.append(f"{len(before)} in the 30 s before a message at {msg.at:.3f}")
        if not msg.privileged:
            same = [o for o in ordered[:i] if o.channel == msg.channel]
            if same and msg.at - same[-1].at < max(1.0, msg.slow):
                found.append(f"{msg.channel}: {msg.at - same[-1].at:.3f}s after the previous")
    return found


def simulate(
    seed: int, sends: int, *, limit: int, privileged_limit: int, takeover_at: int | None = None
) -> list[Arrival]:
    """A sender on a fake clock: random channels, roles and slow mode changing as it goes,
    random network delay before Twitch receives each message and before its answer."""
    rng = random.Random(seed)
    channels = [f"ch{i}" for i in range(rng.randint(1, 12))]
    role = {c: rng.random() < 0.3 for c in channels}
    slow = {c: rng.choice([0, 0, 0, 3, 10]) for c in channels}
    limiter = SendLimiter(rate_limit=limit, privileged_rate_limit=privileged_limit)
    now = 0.0
    pending: list[tuple[float, str]] = []  # (answer time, channel)
    arrivals: list[Arrival] = []
    history: list[tuple[str, float, float]] = []  # (channel, issued, answered)
    for n in range(sends):
        if takeover_at is not None and n == takeover_at:
            limiter, pending, now = take_over(
                limiter, history, pending, now, rng, limit, privileged_limit
            )
        busy = {c for _, c in pending}
        free = [c for c in channels if c not in busy] or channels
        channel = rng.choice(free)
        if rng.random() < 0.05:
            role[channel] = not role[channel]  # modded / unmodded mid-burst
        if rng.random() < 0.05:
            slow[channel] = rng.choice([0, 2, 30])
        now += rng.expovariate(5.0)
        while True:
            now = settle_due(limiter, pending, now)
            if channel in {c for _, c in pending}:  # one in flight per channel
                now = min(t for t, _ in pending)
                continue
            allowed = limiter.next_allowed(channel, role[channel], slow[channel], now)
            if allowed <= now:
                break
            now = min([allowed] + [t for t, _ in pending])
        transit = rng.uniform(0.0, 0.8)
        answer = now + transit + rng.uniform(0.0, 0.5)
        limiter.record(channel, now, privileged=role[channel])
        pending.append((answer, channel))
        history.append((channel, now, answer))
        arrivals.append(Arrival(now + transit, channel, role[channel], slow[channel]))
    return arrivals


def settle_due(limiter: SendLimiter, pending: list[tuple[float, str]], now: float) -> float:
    for item in sorted(pending):
        if item[0] <= now:
            limiter.settle(item[1], item[0])
            pending.remove(item)
    return now


def take_over(
    old: SendLimiter,
    history: list[tuple[str, float, float]],
    pending: list[tuple[float, str]],
    now: float,
    rng: random.Random,
    limit: int,
    privileged_limit: int,
) -> tuple[SendLimiter, list[tuple[float, str]], float]:
    """The holder dies now (its in-flight messages were sent; no answers recorded); a new
    one restores from what the ledger would hold and goes on a few seconds later."""
    del old
    in_flight = {c for _, c in pending}
    recent = []
    for channel, issued, answered in history:
        unanswered = channel in in_flight and answered > now
        recent.append(RecentSend(channel, issued if unanswered else answered, not unanswered))
    later = now + rng.uniform(0.5, 10.0)
    fresh = SendLimiter(rate_limit=limit, privileged_rate_limit=privileged_limit)
    fresh.restore([s for s in recent if s.at >= later - 40 or not s.settled], later)
    return fresh, [], later


@pytest.mark.parametrize("seed", range(12))
def test_random_bursts_never_break_a_rule(seed: int) -> None:
    arrivals = simulate(seed, 1500, limit=20, privileged_limit=100)
    assert len(arrivals) == 1500
    assert violations(arrivals, 20, 100) == []


@pytest.mark.parametrize("seed", range(6))
def test_random_bursts_with_small_limits_never_break_a_rule(seed: int) -> None:
    arrivals = simulate(100 + seed, 1000, limit=3, privileged_limit=7)
    assert violations(arrivals, 3, 7) == []


@pytest.mark.parametrize("seed", range(6))
def test_a_takeover_mid_burst_never_breaks_a_rule(seed: int) -> None:
    arrivals = simulate(200 + seed, 1200, limit=20, privileged_limit=100, takeover_at=600)
    assert violations(arrivals, 20, 100) == []


def test_the_checker_catches_a_limiter_without_margins() -> None:
    """The check can fail: sends measured from when they were issued, not answered, and no
    margin, break the window once transit varies."""
    found = []
    for seed in range(10):
        arrivals = simulate_naive(seed)
        found += violations(arrivals, 20, 100)
    assert found


def simulate_naive(seed: int) -> list[Arrival]:
    """All sends to fresh channels, each answered, counted from when they were issued."""
    rng = random.Random(seed)
    limiter = SendLimiter(margin_s=0.0, channel_margin_s=0.0)
    arrivals = []
    now = 0.0
    for n in range(200):
        channel = f"c{n}"
        now = max(now, limiter.next_allowed(channel, False, 0, now))
        transit = rng.uniform(0.0, 2.0)
        limiter.record(channel, now)
        limiter.settle(channel, now)  # as if Twitch answered at once: ignores the transit
        arrivals.append(Arrival(now + transit, channel, False, 0))
        now += rng.uniform(0.0, 0.05)
    return arrivals
