"""The differential fuzz target: one input (bytes) through both implementations.

Input layout (kept mostly text so the seeds from tests/fixtures/ stay meaningful to the
mutator): byte 0 holds flags (bit 0: GC pressure during the native decode; bits 1-7 pick
the receipt time), the rest is raw bytes read from the socket. ``\\x1d<n><body>\\x1d``
expands to ``body`` repeated ``32 * n`` times (a line with thousands of tags or badges is
then a few bytes of input). Batches are separated by a ``\\n\\x1e\\n`` line. Each batch goes
through ``split_lines`` on both sides, its lines through both decoders (one instance each,
batch after batch), and the messages through both NATS framings; every result must be
identical, and no input may take longer than ``BUDGET_SECONDS`` (quadratic work).
"""

from __future__ import annotations

import os
import time

from tests.fuzz.both import Twins, frame_both, split_both

BUDGET_SECONDS = float(os.environ.get("FUZZ_BUDGET_SECONDS", "1.0"))
# Collecting every 20 allocations makes the (linear) Python reference several times slower:
# 128 KiB of short non-chat lines then take about 1 s under atheris' instrumentation.
GC_PRESSURE_SLOWDOWN = 3.0
# FUZZ_GC_PRESSURE=0: never set GC pressure (to explore past a known GC bug; not for CI)
GC_PRESSURE = os.environ.get("FUZZ_GC_PRESSURE", "1") != "0"
BATCH_SEPARATOR = b"\n\x1e\n"
REPEAT = 0x1D
# The expanded input's cap: one line of 64 KiB (past any bound a decoder should accept) and
# more, but not megabytes of ordinary lines, whose (linear) cost would pass for quadratic work.
MAX_EXPANDED = 128 * 1024
SUBJECT = b"internal.ingress.v1"
BASE_RECEIVED = 1_700_000_000.0

twins = Twins()  # one pair for the whole run: state carries over between inputs too


class Divergence(AssertionError):
    """The two implementations disagreed (or one input took too long)."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 3000 else text[:3000] + "..."


def expand(payload: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(payload) and len(out) < MAX_EXPANDED:
        if payload[i] == REPEAT and i + 1 < len(payload):
            end = payload.find(bytes([REPEAT]), i + 2)
            if end < 0:
                end = len(payload)
            body = payload[i + 2 : end]
            room = MAX_EXPANDED - len(out)
            out += body * min(32 * payload[i + 1], room // max(len(body), 1))
            i = end + 1
        else:
            out.append(payload[i])
            i += 1
    return bytes(out[:MAX_EXPANDED])


def check_input(data: bytes) -> None:
    if not data:
        return
    flags, payload = data[0], expand(data[1:])
    gc_pressure = GC_PRESSURE and bool(flags & 1)
    received_at = BASE_RECEIVED + (flags >> 1) * 0.377  # same second, next second, ...
    started = time.perf_counter()
    for chunk in payload.split(BATCH_SEPARATOR):
        want_split, got_split = split_both(chunk)
        if want_split != got_split:
            raise Divergence(f"split_lines {_short(chunk)}: {want_split!r} != {got_split!r}")
        lines = want_split[0]
        want, got = twins.decode(lines, received_at, gc_pressure)
        if want.view != got.view:
            raise Divergence(
                f"decode {_short(lines)}:\npython {_short(want.view)}\nnative {_short(got.view)}"
            )
        for python_frame, native_frame in frame_both(SUBJECT, want.messages):
            if python_frame != native_frame:
                raise Divergence(f"hpub {_short(python_frame)} != {_short(native_frame)}")
    took = time.perf_counter() - started
    budget = BUDGET_SECONDS * (GC_PRESSURE_SLOWDOWN if gc_pressure else 1.0)
    if took > budget:
        raise Divergence(f"one input took {took:.2f} s (> {budget} s): {data[:200]!r}")
