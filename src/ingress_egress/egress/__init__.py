"""Egress: the platform's answers going back into Twitch chat as the bot.

The core is pure: reading a send command (``command``), preparing its text (``text``,
``repeats``), Twitch's send limits (``limits``), what is learned per channel
(``channel_state``), the finalizer record (``result``), the at-most-once ledger (``ledger``
and its engines) and staleness (``expiry``). On it: the transports (``transport``,
``irc_transport``, ``helix_transport``), the ``sender`` loop, the send ``lease``, ``echo``
confirmation, and the ``runner`` the composition root starts. docs/egress.md explains the
rules and their sources.
"""
