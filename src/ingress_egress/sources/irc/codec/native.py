"""The native codec: the C extension's direct path, and the Python codec for what it declines.

``DirectPath.encode`` (``_native/_speedups.c``) turns each chat line of the common shape
straight into its ``OutboundMessage`` (the envelope JSON written from the raw line) and
answers None for every other line; those go, one by one and in line order, to the
``PythonCodec`` this codec holds, with the same slice of the read's ids. So for the same
lines, ids and clocks both codecs return equal results (tests/fuzz holds them to it).

The direct path owns what it needs (given here, once): the ``OutboundMessage`` class whose
fields it sets, the builder's transport name, the envelope type and finalizer, the UUID
namespace and the cheermote prefixes. It never reads the builder: a builder it cannot
mirror (a subclass, which may build chat envelopes differently) is refused with
``TypeError`` and ``make_codec`` falls back to the Python codec.

The bot's own messages (``payload.isSelf``, docs/envelope.md) are always the Python codec's:
the direct path declines a line whose ``user-id`` is the builder's self user id, which this
codec hands it (``set_self_user_id``, and at each read should the builder's have changed).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ingress_egress import _native
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope import ids as envelope_ids
from ingress_egress.envelope.builder import FINALIZER
from ingress_egress.envelope.ids import ENVELOPE_NAMESPACE, HEX_PER_LINE
from ingress_egress.envelope.types import MESSAGE
from ingress_egress.sources.irc.codec.base import Decoded
from ingress_egress.sources.irc.codec.python import PythonCodec
from ingress_egress.twitch.messages.common import GLOBAL_CHEERMOTES

# The fields the C sets, in its order (OM_FIELDS in _speedups.c).
DIRECT_FIELDS = (
    "data",
    "envelope_id",
    "dedup_id",
    "type",
    "traceparent",
    "ordering_key",
    "time",
    "channel",
    "received_at",
    "seq",
)


class NativeCodec:
    """``PythonCodec``'s contract, with chat lines converted in C."""

    name = "native"

    def __init__(
        self,
        builder: EnvelopeBuilder,
        *,
        random_hex: Callable[[int], str] = envelope_ids.random_hex,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        speedups = _native.speedups
        if speedups is None:
            raise ImportError(f"the C extension is not loaded ({_native.IMPORT_ERROR})")
        if type(builder) is not EnvelopeBuilder:
            raise TypeError(f"the direct path mirrors EnvelopeBuilder, not {type(builder)}")
        fields = tuple(field.name for field in dataclasses.fields(OutboundMessage))
        if fields != DIRECT_FIELDS or hasattr(OutboundMessage, "__post_init__"):
            raise TypeError(f"OutboundMessage's fields {fields} are not the direct path's")
        self.builder = builder
        self._python = PythonCodec(builder, random_hex=random_hex, monotonic=monotonic)
        self._direct: Any = speedups.DirectPath(
            OutboundMessage,
            builder.transport,
            MESSAGE,
            FINALIZER,
            ENVELOPE_NAMESPACE.bytes,
            sorted({prefix.lower() for prefix in GLOBAL_CHEERMOTES}),
        )
        self._self_user_id: str | None = None  # what the direct path declines
        self._follow_self_user_id(builder.self_user_id)
        self.split_lines: Callable[[bytes], tuple[list[str], int]] = speedups.split_lines
        self._random_hex = random_hex
        self._monotonic = monotonic
        self.lines = 0  # decoded so far
        self.declined = 0  # of which the direct path declined (the Python codec decoded)

    def decode(self, lines: list[str], received_at: float) -> Decoded:
        batch = tuple(lines)  # what is decoded, whatever happens to the caller's list
        hexes = self._random_hex(len(batch))
        monotonic = self._monotonic()
        if self.builder.self_user_id is not self._self_user_id:  # set on the builder itself
            self._follow_self_user_id(self.builder.self_user_id)
        items, declined = self._direct.encode(batch, hexes, received_at, monotonic)
        self.lines += len(batch)
        if not declined:
            return Decoded(items, [], [], True)
        self.declined += declined
        envelopes: list[OutboundMessage] = []
        control: list[tuple[str, Any]] = []
        errors: list[tuple[str, Exception]] = []
        selves: list[tuple[str, str]] = []
        decode_line = self._python.decode_line
        for index, item in enumerate(items):
            if item is not None:
                envelopes.append(item)
                continue
            start = HEX_PER_LINE * index
            ids80 = hexes[start : start + HEX_PER_LINE]
            line = batch[index]
            decode_line(line, ids80, received_at, monotonic, envelopes, control, errors, selves)
        return Decoded(envelopes, control, errors, not control and not errors, tuple(selves))

    def set_self_user_id(self, user_id: str | None) -> None:
        """The builder's (validated there), then the direct path's: it declines the bot's
        own lines, so the Python codec writes their ``isSelf`` and lists them."""
        self.builder.set_self_user_id(user_id)
        self._follow_self_user_id(self.builder.self_user_id)

    def _follow_self_user_id(self, user_id: str | None) -> None:
        self._direct.set_self_id(user_id)
        self._self_user_id = user_id
