"""How much memory a piece of work keeps: the leak check of the C fast path's tests."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable


def memory_kept(run: Callable[[int], None], rounds: int, warm_up: int = 3) -> int:
    """Bytes still allocated after ``run(rounds)`` (``run(n)`` does n rounds of the work).

    ``warm_up`` rounds first fill the bounded caches and free lists, and one traced round
    before the measurement absorbs tracemalloc's own first allocations, so what remains is
    what the ``rounds`` rounds kept."""
    run(warm_up)
    gc.collect()
    tracemalloc.start()
    try:
        run(1)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run(rounds)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
