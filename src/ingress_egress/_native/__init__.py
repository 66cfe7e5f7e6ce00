"""The optional C fast path of the hot path (``_speedups.c``), and the switch between the two.

The pure-Python functions stay the reference and the fallback. When the extension imports,
eight modules use it: seven register their classes and reference functions with it
(``configure_*``) and bind their public names to the C entry points, which return exactly
what the references return -

* ``protocol.irc``: ``parse_line``;
* ``twitch.messages``: ``from_irc`` and ``Privmsg.from_irc``;
* ``envelope.ids``: ``stable_uuid``;
* ``envelope.builder``: ``EnvelopeBuilder.build``;
* ``envelope.outbound``: ``message_to_outbound``;
* ``sources.irc.codec``: ``lines_to_outbound``;
* ``sources.irc.transport``: ``split_lines``;

and the eighth, ``bus.nats``, calls ``speedups.hpub_frame`` (the C twin of its
``hpub_frame``; it answers None where that reference must run) and ``speedups.hpub_frames``
(a slice's frames in one buffer) when they are there.

* ``INGRESS_EGRESS_PURE_PYTHON=1`` (any value but "" and "0") in the environment: the
  extension is not even imported; every public name is the Python reference.
* ``set_enabled(False)`` at run time: the C entry points forward every call to their Python
  reference (tests and the benchmark compare both paths in one process this way).
* ``speedups.set_direct_enabled(False)``: only ``lines_to_outbound``'s direct path (a raw
  PRIVMSG line to its OutboundMessage without the intermediate objects) is off, every line
  takes the per-line C path; ``speedups.direct_stats()`` counts the lines it took/declined.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Any

FORCE_PURE_PYTHON = os.environ.get("INGRESS_EGRESS_PURE_PYTHON", "") not in ("", "0")
ABI_VERSION = 4  # must match _speedups.c; a stale build is refused (rebuild: make install)

speedups: ModuleType | None = None
IMPORT_ERROR: str | None = None
if not FORCE_PURE_PYTHON:
    try:
        speedups = importlib.import_module("ingress_egress._native._speedups")
    except ImportError as error:  # not built (e.g. a plain source checkout): pure Python
        IMPORT_ERROR = str(error)
    else:
        if getattr(speedups, "ABI_VERSION", None) != ABI_VERSION:
            IMPORT_ERROR = (
                f"stale build: ABI {getattr(speedups, 'ABI_VERSION', None)}, "
                f"expected {ABI_VERSION} (rebuild with make install)"
            )
            warnings.warn(
                f"ingress_egress C fast path disabled: {IMPORT_ERROR}", RuntimeWarning, stacklevel=1
            )
            speedups = None

# Which layers registered with the extension: "protocol", "messages", "ids", "envelope",
# "outbound".
ACTIVE: set[str] = set()


def configure(layer: str, register: str, *args: object) -> object | None:
    """``speedups.<register>(*args)`` for a layer, or None (and pure Python) if that fails.

    A layer whose classes no longer match what the C code knows (a field added to a
    dataclass, say) warns and stays on its Python reference instead of failing the import.
    """
    if speedups is None:
        return None
    try:
        result = getattr(speedups, register)(*args)
    except (AttributeError, TypeError, ValueError, RuntimeError) as error:
        warnings.warn(
            f"ingress_egress C fast path disabled for {layer}: {error}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    ACTIVE.add(layer)
    return result if result is not None else True


def entry(name: str) -> Any:
    """The extension's function ``name``; only called where a layer is ACTIVE (so loaded).
    Typed ``Any``: the C functions carry no annotations; each has a typed Python twin."""
    assert speedups is not None
    return getattr(speedups, name)


def available() -> bool:
    """True when the extension is loaded (whether or not it is enabled)."""
    return speedups is not None


def enabled() -> bool:
    return speedups is not None and speedups.is_enabled()


def set_enabled(flag: bool) -> None:
    """Route the C entry points to C (True) or to their Python references (False)."""
    if speedups is not None:
        speedups.set_enabled(flag)
