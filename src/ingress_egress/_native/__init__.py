"""The optional C extension (``_speedups.c``): loaded here, used where the composition root
chooses it.

Nothing is rebound at import time. The extension offers:

* ``DirectPath``: the native IRC codec's core (``sources/irc/codec/native.py``), a raw
  PRIVMSG line straight to its ``OutboundMessage``;
* ``split_lines``: the C twin of ``sources.irc.transport.split_lines``, handed to the
  transport by the composition root with the native codec;
* ``hpub_frame`` / ``hpub_frames``: the NATS HPUB framing, used by ``bus.nats`` when loaded;

Whether it is used is the composition root's choice: ``INGRESS_EGRESS_PURE_PYTHON`` (read
by ``config``, any value but "" and "0") makes it pass ``pure=True`` to ``make_codec`` and
the NATS driver, and everything runs on the pure-Python reference. A build whose
``ABI_VERSION`` differs from this package's is refused with a warning (rebuild with
``make install``).
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

ABI_VERSION = 6  # must match _speedups.c

speedups: ModuleType | None = None
IMPORT_ERROR: str | None = None
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
            f"ingress_egress C extension disabled: {IMPORT_ERROR}", RuntimeWarning, stacklevel=1
        )
        speedups = None


def available() -> bool:
    """True when the extension is loaded."""
    return speedups is not None
