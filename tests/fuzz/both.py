"""The IRC hot path's two implementations side by side: the one place the fuzz target and
its replay test know how to run "the Python reference" and "the C extension" on one input.

``Twins`` holds one decoder of each kind for its whole life, so state that survives between
batches (clocks, id buffers, caches) is exercised batch after batch, exactly as a read loop
does. Both are given the same randomness (each its own stream from one seed), so their
outputs must be identical, not merely similar.

Two back ends, chosen once at import:

* ``codec``: the IRC source's codec package (``PythonCodec`` vs ``NativeCodec``), when
  ``ingress_egress.sources.irc.codec`` imports. Ids come in through ``random_hex``.
* ``entry points``: before that package exists, ``sources.irc.codec.lines_to_outbound``
  with the extension switched off (``_native.set_enabled(False)``: every C entry point
  forwards to its Python reference) and on. Ids come from twin ``RandomIds`` whose refills
  (``os.urandom`` in ``envelope.ids``) read each side's own seeded stream.

Without the extension (``INGRESS_EGRESS_PURE_PYTHON=1`` or not built) ``NATIVE`` is False
and the "native" side is the reference again: the target still runs, comparing nothing new.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ingress_egress import _native
from ingress_egress.bus import nats as nats_bus
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope import ids as ids_module
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.protocol import IrcMessage
from ingress_egress.sources.irc.codec import lines_to_outbound
from ingress_egress.sources.irc.transport import _split_lines_py, split_lines
from ingress_egress.twitch.messages import common as messages_common

try:  # the codec package (issue 17); until it lands, today's entry points
    from ingress_egress.sources.irc import codec as codec_package
    from ingress_egress.sources.irc.codec import native as _codec_native  # noqa: F401
    from ingress_egress.sources.irc.codec import python as _codec_python  # noqa: F401
except ImportError:
    codec_package = None  # type: ignore[assignment]

speedups = _native.speedups
NATIVE = speedups is not None
BACKEND = "codec" if codec_package is not None else "entry points"


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
    """One implementation with its own builder, id source and randomness."""

    def __init__(self, native: bool, seed: int) -> None:
        self.native = native and NATIVE
        self._random = random.Random(seed)
        if codec_package is not None:
            self._codec = self._make_codec()
        else:
            self.builder = EnvelopeBuilder(clock=lambda: 0.0)
            self.span_ids = RandomIds()
            # envelope.ids refills a RandomIds from os.urandom: during this side's calls that
            # reads this side's stream, so both sides draw the same blocks in the same order
            self._os = types.SimpleNamespace(urandom=self._random.randbytes)

    def _make_codec(self) -> Any:
        def random_hex(lines: int) -> str:
            return self._random.randbytes(40 * lines).hex()

        kind: Callable[..., Any] = codec_package.python.PythonCodec  # type: ignore[union-attr]
        if self.native:
            try:
                return codec_package.native.NativeCodec(  # type: ignore[union-attr]
                    EnvelopeBuilder(), random_hex=random_hex, monotonic=lambda: self.monotonic
                )
            except ImportError:  # the extension is not built: the reference twice
                self.native = False
        return kind(EnvelopeBuilder(), random_hex=random_hex, monotonic=lambda: self.monotonic)

    monotonic = 0.0

    def decode(self, lines: list[str], received_at: float, monotonic: float) -> Decoded:
        self.monotonic = monotonic
        if codec_package is not None:
            result = self._codec.decode(list(lines), received_at)
            return Decoded(
                comparable((result.envelopes, result.control, result.errors)),
                list(result.envelopes),
            )
        with _extension(self.native), _swapped(ids_module, "os", self._os):
            items = lines_to_outbound(
                list(lines), self.builder, received_at, self.span_ids, monotonic
            )
        return Decoded(comparable(items), [i for i in items if type(i) is OutboundMessage])

    def churn(self) -> None:
        """What a GC callback, a finalizer or another thread may do while a batch is being
        decoded: replace the Python state the decoder reads with equal copies (the old
        objects are freed) and drop caches. Output must not change; a decoder that kept a
        pointer into the old objects reads freed memory (ASan reports it under make sanitize).
        """
        if codec_package is not None:
            return  # the codec's state is private to it: nothing outside can reach it
        for holder in (self.builder._ids, self.span_ids):
            holder._hex = _copy(holder._hex)
        for clock in (self.builder._received, self.builder._sent):
            for name in ("_last", "_prefix"):
                setattr(clock, name, _copy(getattr(clock, name)))


def _copy(text: str) -> str:
    """An equal str that is a different object (so the old one can be freed)."""
    return (text + "\x00")[:-1]


@contextmanager
def _extension(enabled: bool) -> Iterator[None]:
    before = _native.enabled()
    _native.set_enabled(enabled)
    try:
        yield
    finally:
        _native.set_enabled(before)


@contextmanager
def _swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


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
    want = _split_lines_py(chunk)
    if not NATIVE or split_lines is _split_lines_py:
        return want, want
    with _extension(True):
        return want, split_lines(chunk)


def frame_both(subject: bytes, messages: list[OutboundMessage]) -> list[tuple[bytes, bytes]]:
    """The NATS HPUB framing of ``messages``, Python (``bus.nats.hpub_frame(s)``) and C, as
    (python, native) pairs: one per message, then the whole slice. Where the C declines (it
    answers None for header values the reference normalizes) the driver's choice is compared
    instead: what ``frame_for`` / ``frames_for`` would send."""
    pairs = []
    for message in messages:
        want = nats_bus.hpub_frame(subject, message)
        got = speedups.hpub_frame(subject, message) if NATIVE else want
        pairs.append((want, nats_bus.frame_for(subject, message) if got is None else got))
    want_all = b"".join(nats_bus.hpub_frame(subject, message) for message in messages)
    got_all = speedups.hpub_frames(subject, messages) if NATIVE else want_all
    pairs.append((want_all, nats_bus.frames_for(subject, messages) if got_all is None else got_all))
    return pairs
