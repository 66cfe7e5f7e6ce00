"""What either end of an IRC connection raises when the other end has gone.

One class for both sides: the chat client's transports (``sources/irc/transport.py``) and
the simulator's (``simulator/transport.py``). A ``ConnectionError``, so code that handles
socket errors handles it too; the read loops catch it first to tell a close from a fault.
"""

from __future__ import annotations


class TransportClosed(ConnectionError):
    """The peer closed the connection (or it broke)."""
