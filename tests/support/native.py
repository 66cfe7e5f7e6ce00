"""Running a test on the C fast path and on its pure-Python reference, in one process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ingress_egress import _native


@contextmanager
def implementation(native: bool) -> Iterator[None]:
    """The C entry points on (``native``) or forwarding to the Python reference, restored after."""
    before = _native.enabled()
    _native.set_enabled(native)
    try:
        yield
    finally:
        _native.set_enabled(before)


@pytest.fixture(name="both_implementations", params=["c", "python"])
def both_implementations_fixture(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test once on the C path (skipped when the extension is not built), once on Python."""
    if request.param == "c" and _native.speedups is None:
        pytest.skip("the C extension is not built")
    with implementation(request.param == "c"):
        yield request.param
