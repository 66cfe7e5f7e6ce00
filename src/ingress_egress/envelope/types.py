"""Envelope ``type`` values this service emits."""

MESSAGE = "external.chat.message.v1"
NOTIFICATION = "external.chat.notification.v1"
MODERATION = "external.chat.moderation.v1"
ROOMSTATE = "external.chat.roomstate.v1"

EVENT_TYPES = (MESSAGE, NOTIFICATION, MODERATION, ROOMSTATE)

# Short names accepted wherever a type is chosen by hand (normalize --type message).
SHORT_NAMES = {name.split(".")[2]: name for name in EVENT_TYPES}
