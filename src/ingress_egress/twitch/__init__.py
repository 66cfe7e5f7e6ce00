"""Twitch chat semantics on top of the IRC protocol: typed messages, one module per command."""
