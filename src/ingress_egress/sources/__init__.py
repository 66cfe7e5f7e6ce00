"""Chat sources: where events come from (Twitch IRC today, EventSub next)."""
