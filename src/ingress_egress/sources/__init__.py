"""Chat sources: where events come from (Twitch IRC in ``irc/``, EventSub in ``eventsub/``),
each a ``ChatSource`` (``base.py``)."""
