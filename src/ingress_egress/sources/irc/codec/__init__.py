"""The IRC source's codec: one read's raw lines -> envelopes, control messages and errors.

``decode(lines, received_at) -> Decoded`` is the one call the read loop makes per read, and
``split_lines`` the one the TCP/TLS transport makes per chunk of complete lines. Two codecs
implement the contract (``IrcCodec``):

* ``PythonCodec`` (``python.py``): each line parsed (``parse_line``), typed (``from_irc``)
  and converted (``message_to_outbound``) by the Python modules; the reference.
* ``NativeCodec`` (``native.py``): the C extension (``ingress_egress._native``) writes a chat
  line's envelope straight from the raw line; a line it declines is decoded by the Python
  codec (``PythonCodec.decode_line``), with the same ids.

One of them is chosen once, in the composition root (``make_codec``: the native codec when
the extension is loaded and not switched off by ``INGRESS_EGRESS_PURE_PYTHON=1``), and
nothing is rebound at import time. Either way:

* a chat line (PRIVMSG) becomes its ``OutboundMessage``;
* any other line becomes its typed message, kept in ``control`` for the client (PING,
  RECONNECT, JOIN echoes, NOTICEs, ROOMSTATE...) and, when it is an event (USERNOTICE,
  CLEARCHAT, ROOMSTATE, ...), also its envelope, in line order among the chat envelopes;
* a chat line of the bot itself (its ``user-id`` is the one given to ``set_self_user_id``)
  gets ``payload.isSelf`` and its (channel, id) in ``self_messages``; the native codec
  leaves such lines to the Python one, which alone writes the field;
* a line that is not IRC, or whose conversion raised, goes to ``errors`` with the line;
* the random ids of line ``i`` (envelope id when the event has no stable key, trace id, span
  id) are ``LineIds`` of ``random_hex(n)[80 * i : 80 * i + 80]``, ``n`` the read's line
  count, whichever codec converts it.

So both codecs return equal results for the same lines, ids and clocks (held by tests/fuzz
and the differential tests). The pipeline then accepts ``envelopes`` as they are; nothing
here publishes.
"""

from __future__ import annotations

import logging

from ingress_egress import _native
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.sources.irc.codec.base import Decoded, IrcCodec
from ingress_egress.sources.irc.codec.python import PythonCodec

log = logging.getLogger("ingress_egress.irc")


def make_codec(builder: EnvelopeBuilder, *, pure: bool = False) -> IrcCodec:
    """The codec of a source whose envelopes ``builder`` builds: the native one when the C
    extension is loaded and ``pure`` (``INGRESS_EGRESS_PURE_PYTHON``) is false, else (or
    when the native codec cannot mirror ``builder``, e.g. a subclass) the Python one."""
    if not pure and _native.speedups is not None:
        try:
            # Imported here: the package imports without the extension (or native.py).
            from ingress_egress.sources.irc.codec.native import NativeCodec

            codec: IrcCodec = NativeCodec(builder)
        except (ImportError, TypeError) as error:
            log.warning("native IRC codec not used (%s): decoding in pure Python", error)
        else:
            return codec
    return PythonCodec(builder)


__all__ = ["Decoded", "IrcCodec", "PythonCodec", "make_codec"]
