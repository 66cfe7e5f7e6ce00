"""Egress: the platform's answers going back into Twitch chat (issue 29).

This package is the pure core: reading a send command (``command``), preparing its text
(``text``, ``repeats``), Twitch's send limits (``limits``), what is learned per channel
(``channel_state``), the finalizer record (``result``), dead letters (``dead_letter``), the
at-most-once ledger (``ledger`` and its engines) and staleness (``expiry``). The sender, the
transports and the bus consumer build on it. docs/egress.md explains the rules and sources.
"""
