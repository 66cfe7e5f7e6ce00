"""The at-most-once ledger's contract, on every engine: in memory, a real nats-server's
JetStream key-value bucket, and the real Firestore emulator."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest

from ingress_egress.egress.ledger import (
    Ledger,
    LedgerConflict,
    LedgerRecord,
    LedgerUnavailable,
    MemoryLedger,
    SentPart,
    ledger_key,
    prior_outcome,
)
from ingress_egress.egress.ledger_firestore import ROOT_COLLECTION, FirestoreLedger
from ingress_egress.egress.ledger_nats import NatsLedger, bucket_name
from ingress_egress.egress.limits import RecentSend
from ingress_egress.egress.result import Outcome
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    firestore_emulator_fixture,
)
from tests.support.nats import NatsServer
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(90)

MakeLedger = Callable[[], Awaitable[Ledger]]
Corrupt = Callable[[str], Awaitable[None]]


FIRESTORE = pytest.param("firestore", marks=pytest.mark.emulator)


@pytest.fixture(params=["memory", "nats", FIRESTORE])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MakeLedger, Corrupt]]:
    """A factory of ledgers sharing one store (one ledger per simulated holder), and a way
    to damage a command's stored record."""
    async with engine_of(request.param, request, tmp_path) as made:
        yield made


@pytest.fixture(params=["nats", FIRESTORE])
async def stored_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MakeLedger, Corrupt]]:
    """``engine`` for the engines that store bytes someone else could damage."""
    async with engine_of(request.param, request, tmp_path) as made:
        yield made


@contextlib.asynccontextmanager
async def engine_of(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MakeLedger, Corrupt]]:
    made: list[Ledger] = []
    server: NatsServer | None = None
    shared = MemoryLedger()
    bucket = bucket_name("test")
    if kind == "nats":
        server = NatsServer(tmp_path).start()
    elif kind == "firestore":
        emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
        emulator.clear()

    async def make() -> Ledger:
        ledger: Ledger
        if kind == "memory":
            return shared
        if server is not None:
            ledger = NatsLedger(server.url, bucket, ttl_s=600)
        else:
            ledger = FirestoreLedger(emulator.client(), "test", ttl_s=600)
        await ledger.start()
        made.append(ledger)
        return ledger

    async def corrupt(command_id: str) -> None:
        if server is not None:
            nc = await nats.connect(server.url)
            kv = await nc.jetstream().key_value(bucket)
            await kv.put(ledger_key(command_id), b"{not a record")
            await nc.close()
        else:
            document = (
                emulator.client()
                .collection(ROOT_COLLECTION)
                .document("test")
                .collection("commands")
                .document(ledger_key(command_id))
            )
            await document.set({"record": {"commandId": command_id}})

    try:
        yield make, corrupt
    finally:
        for ledger in made:
            await ledger.close()
        if server is not None:
            server.stop()


def started(command_id: str, holder: str = "ie-a", at: float | None = None) -> LedgerRecord:
    return LedgerRecord(
        command_id, "forsen", holder, fence=1, started_at=time.time() if at is None else at
    )


async def test_a_command_is_started_once_and_its_outcome_is_found_again(engine) -> None:
    make, _ = engine
    ledger = await make()
    cid = "3f2a9c4e-1b7d-4c8e-9f00-1234567890ab"
    assert await ledger.lookup(cid) is None
    assert await ledger.begin(started(cid)) is None
    now = time.time()
    await ledger.part_sent(cid, SentPart(0, now, "tw-1"))
    await ledger.finish(cid, Outcome("sent", ("tw-1",), attempts=1), now)
    again = await ledger.begin(started(cid))  # a redelivery
    assert again is not None and again.outcome == Outcome("sent", ("tw-1",), attempts=1)
    assert prior_outcome(again).status == "sent"
    record = await (await make()).lookup(cid)  # what another member sees
    assert record is not None and record.parts == (SentPart(0, now, "tw-1"),)


async def test_a_crash_between_parts_reports_unknown_with_the_ids_known(engine) -> None:
    make, _ = engine
    first = await make()
    cid = "11111111-1b7d-4c8e-9f00-1234567890ab"
    assert await first.begin(started(cid)) is None
    await first.part_sent(cid, SentPart(0, time.time(), "tw-part-1"))
    # the holder dies here: part 2 may or may not have gone
    replacement = await make()
    prior = await replacement.begin(started(cid, holder="ie-b"))
    assert prior is not None
    outcome = prior_outcome(prior)
    assert outcome.status == "unknown" and outcome.reason == "interrupted"
    assert outcome.twitch_message_ids == ("tw-part-1",) and outcome.attempts == 1
    assert "ie-a" in (outcome.detail or "")


async def test_a_second_begin_finds_the_first_record_and_may_not_send(engine) -> None:
    # (The sender joins a second delivery that arrives while it holds the command to the
    # first; this is what a delivery after that, or another process, finds.)
    make, _ = engine
    ledger = await make()
    cid = "55555555-1b7d-4c8e-9f00-1234567890ab"
    assert await ledger.begin(started(cid)) is None
    again = await ledger.begin(started(cid))
    assert again is not None and prior_outcome(again).status == "unknown"
    await ledger.finish(cid, Outcome("sent", ("tw",), attempts=1), time.time())
    finished = await ledger.begin(started(cid))
    assert finished is not None and prior_outcome(finished).status == "sent"


async def test_two_holders_racing_for_one_command_one_wins(engine) -> None:
    make, _ = engine
    holders = [await make() for _ in range(4)]
    cid = "22222222-1b7d-4c8e-9f00-1234567890ab"
    answers = await asyncio.gather(
        *(h.begin(started(cid, holder=f"ie-{i}")) for i, h in enumerate(holders))
    )
    assert sum(answer is None for answer in answers) == 1


async def test_only_the_holder_that_started_a_command_writes_it(engine) -> None:
    make, _ = engine
    ledger = await make()
    with pytest.raises(LedgerConflict):
        await ledger.finish("33333333-1b7d-4c8e-9f00-1234567890ab", Outcome("sent"), time.time())


async def test_recent_sends_are_what_a_new_holder_must_count(engine) -> None:
    make, _ = engine
    ledger = await make()
    now = time.time()
    old, done, open_ = "a" * 8 + "-old", "b" * 8 + "-done", "c" * 8 + "-open"
    assert await ledger.begin(started(old, at=now - 300)) is None
    await ledger.part_sent(old, SentPart(0, now - 300, "x"))
    await ledger.finish(old, Outcome("sent", ("x",), attempts=1), now - 300)
    assert await ledger.begin(started(done, at=now - 10)) is None
    await ledger.part_sent(done, SentPart(0, now - 10, "y"))
    await ledger.part_sent(done, SentPart(1, now - 9, "z"))
    await ledger.finish(done, Outcome("sent", ("y", "z"), attempts=2), now - 9)
    assert await ledger.begin(started(open_, at=now - 5)) is None
    sends = await (await make()).recent_sends(now - 32)
    assert sorted(sends, key=lambda s: (s.at, s.settled)) == [
        RecentSend("forsen", now - 10),
        RecentSend("forsen", now - 9),
        RecentSend("forsen", now - 5, settled=False),  # may have had a part on its way
    ]


async def test_a_damaged_record_counts_as_started_never_as_absent(stored_engine) -> None:
    make, corrupt = stored_engine
    ledger = await make()
    cid = "44444444-1b7d-4c8e-9f00-1234567890ab"
    await corrupt(cid)
    prior = await ledger.begin(started(cid))
    assert prior is not None and prior_outcome(prior).status == "unknown"


async def test_ids_that_are_not_plain_get_a_key_every_engine_takes(engine) -> None:
    make, _ = engine
    ledger = await make()
    cid = "cmd:42.a"
    assert await ledger.begin(started(cid)) is None
    assert (await ledger.lookup(cid)) is not None
    assert ledger_key(cid) != cid and ledger_key(cid) == ledger_key(cid)


async def test_an_unreachable_nats_ledger_says_so() -> None:
    ledger = NatsLedger(f"nats://127.0.0.1:{free_port()}", bucket_name("test"))
    with pytest.raises(LedgerUnavailable):
        await ledger.start()
