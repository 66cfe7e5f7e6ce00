"""Chat sources: where events come from. Two, chosen by ``TWITCH_SOURCE``: Twitch IRC
(``irc/``: a pool of chat connections) and EventSub (``eventsub/``: chat events over
WebSockets, through TwitchIO). Each is a ``ChatSource`` (``base.py``) handing the pipeline
ready envelopes."""
