"""The fuzz target's seed corpus and every committed regression input, replayed through
both implementations (tests/fuzz/target.py): identical output, in time. Under
``make sanitize`` this runs on the ASan/UBSan build of the extension."""

from __future__ import annotations

import pytest

from tests.fuzz import seeds, target

SEEDS = seeds.seeds()
REGRESSIONS = seeds.regressions()


def test_there_are_seeds_from_the_fixtures() -> None:
    assert len(SEEDS) > len(seeds.fixture_lines())


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_agrees(name: str) -> None:
    target.check_input(SEEDS[name])


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_agrees(name: str) -> None:
    target.check_input(REGRESSIONS[name])
