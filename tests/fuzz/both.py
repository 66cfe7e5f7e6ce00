"""The IRC hot path's two implementations side by side: the one place the fuzz target and
its replay test know how to run "the Python reference" and "the C extension" on one input.

``Twins`` holds one codec of each kind for its whole life (``PythonCodec`` and
``NativeCodec``), so state that survives between batches (the native codec's memo of the
last formatted second, the builders' clocks and caches) is exercised batch after batch,
exactly as a read loop does. Both are given the same randomness (``random_hex`` from one
seed each), so their outputs must be identical, not merely similar. Both know the same bot
(``SELF_USER_ID``, a chatter of a few fixture lines): its lines are the ones the native
codec declines on purpose, and their ``payload.isSelf`` and ``self_messages`` must agree too.

Without the extension (``INGRESS_EGRESS_PURE_PYTHON=1`` or not built) ``NATIVE`` is False
and the "native" side is the reference again: the target still runs, comparing nothing new.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ingress_egress import _native
from ingress_egress.bus import nats as nats_bus
from ingress_egress.config import pure_python
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.protocol import IrcMessage
from ingress_egress.sources.irc.codec import IrcCodec, PythonCodec
from ingress_egress.sources.irc.transport import split_lines
from ingress_egress.twitch.messages import common as messages_common

# The bot's user id on both sides: three PRIVMSGs of tests/fixtures/ are its own, and the
# mutator makes more (and near misses: one digit more, less or escaped).
SELF_USER_ID = "11148817"
speedups = _native.speedups
NATIVE = speedups is not None and not pure_python(os.environ)
if NATIVE:
    from ingress_egress.sources.irc.codec.native import NativeCodec


def comparable(item: Any) -> Any:
    """A decoder's output as plain values: exceptions by type and arguments, parsed lines
    (IrcMessage has no __eq__) by their fields, dataclasses field by field."""
    if isinstance(item, BaseException):
        return ("error", type(item).__name__, repr(item.args), getattr(item, "reason", None))
    if isinstance(item, IrcMessage):
        return (
            "irc",
            *(comparable(getattr(item, name, None)) for name in IrcMessage.__slots__),
        )
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        fields = dataclasses.fields(item)
        return (type(item).__name__, *(comparable(getattr(item, f.name)) for f in fields))
    if isinstance(item, list | tuple):
        return [comparable(value) for value in item]
    if isinstance(item, dict):
        return {key: comparable(value) for key, value in item.items()}
    return item


@dataclasses.dataclass(slots=True)
class Decoded:
    """One batch through one implementation, comparable with ``==``."""

    view: Any  # comparable(...) of everything the decoder returned
    messages: list[OutboundMessage]  # the publishable events, for the framing comparison


class _Side:
    """One implementation with its own builder and randomness."""

    def __init__(self, native: bool, seed: int) -> None:
        self.native = native and NATIVE
        self._random = random.Random(seed)
        self.monotonic = 0.0
        self.lines: list[str] = []  # the list being decoded (a GC callback may clear it)
        kind = NativeCodec if self.native else PythonCodec
        self._codec: IrcCodec = kind(
            EnvelopeBuilder(), random_hex=self._random_hex, monotonic=lambda: self.monotonic
        )
        self._codec.set_self_user_id(SELF_USER_ID)

    def _random_hex(self, lines: int) -> str:
        return self._random.randbytes(40 * lines).hex()

    def decode(self, lines: list[str], received_at: float, monotonic: float) -> Decoded:
        self.monotonic = monotonic
        self.lines = list(lines)
        result = self._codec.decode(self.lines, received_at)
        return Decoded(
            comparable(
                (
                    result.envelopes,
                    result.control,
                    result.errors,
                    result.chat_only,
                    result.self_messages,
                )
            ),
            list(result.envelopes),
        )

    def churn(self) -> None:
        """What a GC callback, a finalizer or another thread may do while a batch is being
        decoded: drop references (the side's copy of the lines is rebound, so only the
        codec's own references keep them alive) and free cyclic garbage. Output must not
        change; a decoder that kept a pointer into an object it holds no reference to reads
        freed memory (ASan reports it under make sanitize). Nothing is mutated in place:
        CPython itself does not survive a list changing under a copy of it."""
        self.lines = ["PING :tmi.twitch.tv"]
        cycle: list[Any] = []
        cycle.append(cycle)


class Twins:
    """The Python reference and the native implementation, one instance of each, fed the
    same batches one after another. ``decode`` returns both results; the caller requires
    them equal. ``gc_pressure``: collect (and churn state) every few allocations during the
    native decode, so a pointer held across an allocation is caught."""

    def __init__(self, seed: int = 17) -> None:
        self.python = _Side(native=False, seed=seed)
        self.native = _Side(native=True, seed=seed)
        self._batches = 0

    def decode(
        self, lines: list[str], received_at: float, gc_pressure: bool = False
    ) -> tuple[Decoded, Decoded]:
        self._batches += 1
        monotonic = 1000.0 + self._batches
        want = self.python.decode(lines, received_at, monotonic)
        if not gc_pressure:
            return want, self.native.decode(lines, received_at, monotonic)
        with _gc_churn(self.native):
            got = self.native.decode(lines, received_at, monotonic)
        return want, got


@contextmanager
def _gc_churn(side: _Side) -> Iterator[None]:
    """GC often, and on each collection allocate and churn the side's state."""

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            side.churn()
            messages_common._badge_cache.clear()  # caches must never change output
            _garbage = [{"k": str(i)} for i in range(8)]  # allocation inside the collection
            del _garbage

    threshold = gc.get_threshold()
    gc.callbacks.append(on_gc)
    gc.set_threshold(20, 2, 2)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(on_gc)


def split_both(chunk: bytes) -> tuple[Any, Any]:
    """``split_lines`` (bytes read from the socket -> lines, invalid-UTF-8 flag): the Python
    reference's result and the C twin's."""
    want = split_lines(chunk)
    return want, speedups.split_lines(chunk) if NATIVE else want


def frame_both(subject: bytes, messages: list[OutboundMessage]) -> list[tuple[bytes, bytes]]:
    """The NATS HPUB framing of ``messages``, Python (``bus.nats.hpub_frame``) and what the
    driver sends (``frame_for``: the C twin's, or the reference's where it declines), as
    (python, native) pairs: one per message, then the whole slice (``frames_for``)."""
    pairs = [(nats_bus.hpub_frame(subject, m), nats_bus.frame_for(subject, m)) for m in messages]
    want_all = b"".join(nats_bus.hpub_frame(subject, message) for message in messages)
    got_all = speedups.hpub_frames(subject, messages) if NATIVE else want_all
    pairs.append((want_all, nats_bus.frames_for(subject, messages) if got_all is None else got_all))
    return pairs
