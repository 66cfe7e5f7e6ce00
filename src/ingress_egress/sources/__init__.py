"""Chat sources: where events come from. Two, chosen by ``TWITCH_SOURCE``: Twitch IRC
(``irc/``: a pool of chat connections) and EventSub (``eventsub/``: chat events over
WebSockets, through TwitchIO). Both hand the pipeline ready envelopes."""
