"""The one backoff policy: bounds, cap, reset, jitter (no timing: only the delays computed)."""

from __future__ import annotations

import asyncio
import random

import pytest
import tenacity.wait
from tenacity import retry_if_exception_type, stop_after_attempt

from ingress_egress.retry import Backoff, random_pause, retrying


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> random.Random:
    """tenacity draws from the ``random`` module it imported: give it a seeded generator."""
    rng = random.Random(28)
    monkeypatch.setattr(tenacity.wait, "random", rng)
    return rng


def test_each_delay_lies_between_half_the_initial_and_the_doubling_ceiling(
    seeded: random.Random,
) -> None:
    backoff = Backoff(1.0, 30.0)
    for attempt in range(1, 12):
        delay = backoff.next_delay()
        ceiling = min(30.0, 2.0 ** (attempt - 1))
        assert 0.5 <= delay <= ceiling, (attempt, delay)
    assert backoff.attempt == 11


def test_delays_never_exceed_the_maximum_however_many_failures(seeded: random.Random) -> None:
    backoff = Backoff(0.5, 15.0)
    delays = [backoff.next_delay() for _ in range(500)]
    assert max(delays) <= 15.0
    assert min(delays) >= 0.25
    # Past the cap the window is [0.25, 15]: the draws use it, not one fixed value.
    assert max(delays[-100:]) > 10.0
    assert backoff.attempt == 64  # the count stops growing


def test_the_window_widens_with_each_failure(seeded: random.Random) -> None:
    backoff = Backoff(1.0, 1000.0)
    firsts = [backoff.delay_for(1) for _ in range(200)]
    sixths = [backoff.delay_for(6) for _ in range(200)]
    assert max(firsts) <= 1.0
    assert max(sixths) > 16.0  # the 6th window is [0.5, 32]
    assert backoff.attempt == 0  # delay_for does not count


def test_two_backoffs_with_the_same_figures_do_not_move_in_lockstep(
    seeded: random.Random,
) -> None:
    first, second = Backoff(0.5, 15.0), Backoff(0.5, 15.0)
    a = [first.next_delay() for _ in range(8)]
    b = [second.next_delay() for _ in range(8)]
    assert a != b
    assert len(set(a)) == 8


def test_reset_starts_again_from_the_initial_delay(seeded: random.Random) -> None:
    backoff = Backoff(1.0, 60.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 1.0


def test_only_a_stable_connection_resets_the_count(seeded: random.Random) -> None:
    backoff = Backoff(1.0, 60.0, stable_after_s=60.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.connection_ended(59.9)
    assert backoff.attempt == 5
    backoff.connection_ended(60.0)
    assert backoff.attempt == 0


def test_the_maximum_holds_even_below_the_initial_delay(seeded: random.Random) -> None:
    backoff = Backoff(0.5, 0.2)
    assert all(backoff.next_delay() <= 0.2 for _ in range(20))


def test_the_same_seed_gives_the_same_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = []
    for _ in range(2):
        monkeypatch.setattr(tenacity.wait, "random", random.Random(7))
        backoff = Backoff(0.2, 5.0)
        runs.append([backoff.next_delay() for _ in range(6)])
    assert runs[0] == runs[1]


def test_random_pause_stays_in_its_window(seeded: random.Random) -> None:
    delays = [random_pause(0.002, 0.03) for _ in range(200)]
    assert all(0.002 <= d <= 0.03 for d in delays)
    assert len(set(delays)) > 100


def test_retrying_waits_by_the_policy_and_stops_when_told(seeded: random.Random) -> None:
    slept: list[float] = []
    calls = 0

    async def run() -> None:
        nonlocal calls
        attempts = retrying(
            0.1,
            0.4,
            stop=stop_after_attempt(6),
            retry=retry_if_exception_type(ConnectionError),
        )
        attempts.sleep = fake_sleep  # type: ignore[method-assign]
        async for attempt in attempts:
            with attempt:
                calls += 1
                raise ConnectionError("down")

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(ConnectionError):  # reraised as itself, not tenacity's RetryError
        asyncio.run(run())
    assert calls == 6
    assert len(slept) == 5
    assert all(0.05 <= s <= min(0.4, 0.1 * 2**i) for i, s in enumerate(slept))
    assert len(set(slept)) == 5


def test_retrying_does_not_retry_what_it_was_not_asked_to(seeded: random.Random) -> None:
    calls = 0

    async def run() -> None:
        nonlocal calls
        attempts = retrying(
            0.1, 0.4, stop=stop_after_attempt(6), retry=retry_if_exception_type(ConnectionError)
        )
        async for attempt in attempts:
            with attempt:
                calls += 1
                raise ValueError("bad input")

    with pytest.raises(ValueError):
        asyncio.run(run())
    assert calls == 1


async def test_wait_ends_early_when_told_to_stop() -> None:
    backoff = Backoff(60.0, 60.0)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(backoff.wait(stop), 5)  # would take at least 30 s otherwise
    assert backoff.attempt == 1
