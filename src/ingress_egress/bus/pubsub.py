"""Google Cloud Pub/Sub driver: one ``PublisherClient`` publishing envelopes to one topic.

Each envelope goes out as one Pub/Sub message whose body is the JSON envelope and whose
attributes carry the routing fields plus the CloudEvents binary-mode attributes (see
docs/pubsub.md). Messages carry the channel's ordering key, so a channel's messages reach a
subscription with ordering enabled in the order they were sent.

Division of labour with the pipeline above:

* ``send`` makes exactly one attempt. The client's own retries are switched off
  (``retry=None``) and every publish RPC gets a bounded deadline instead; the pipeline
  re-calls ``send`` on a failed future (``PUBLISH_MAX_RETRIES``). With message ordering
  enabled the client stretches any ``Retry`` object's deadline to ~136 years, so turning
  the client retry off is the only way to keep a publish bounded.
* A failed ordered publish pauses its ordering key inside the client (later messages on
  the key fail fast until it is resumed). The driver resumes the key on the event loop
  *before* it settles the failed future, so the pipeline's re-send is accepted.
* ``send`` never blocks the event loop: ``PublisherClient.publish`` only enqueues (flow
  control is set to *error*, never *block*), and the blocking set-up RPCs in ``start``
  run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

from ingress_egress.bus.base import BusError, Publisher
from ingress_egress.envelope import OutboundMessage

log = logging.getLogger(__name__)

# Batching tuned for chat: small (0.5-2 KB) messages where latency matters more than
# request count. A batch goes out after 10 ms or 250 messages or ~1 MB, whichever first.
# With ordering each channel has at most one batch in flight, so per-channel throughput is
# about MAX_MESSAGES per round trip - far above what any Twitch channel produces.
BATCH_MAX_LATENCY_S = 0.010
BATCH_MAX_MESSAGES = 250
BATCH_MAX_BYTES = 1_000_000

# Flow control bounds what the client holds in memory. The pipeline already caps in-flight
# publishes at PUBLISH_MAX_IN_FLIGHT; this is the backstop. ERROR, not BLOCK: blocking
# would stall the event loop thread that calls publish().
FLOW_CONTROL_MIN_MESSAGES = 1_000
FLOW_CONTROL_MAX_BYTES = 32 * 1024 * 1024

DEFAULT_PUBLISH_TIMEOUT_S = 15.0  # one publish RPC, no client-side retry
DEFAULT_START_TIMEOUT_S = 10.0  # topic check/creation, with retries on transient errors
DEFAULT_CLOSE_TIMEOUT_S = 10.0  # how long close() waits for in-flight publishes

# Pub/Sub limits (https://cloud.google.com/pubsub/quotas#resource_limits).
MAX_REQUEST_BYTES = 10_000_000  # a PublishRequest; the client enforces the same number
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024

CE_SPECVERSION = "1.0"
CE_SOURCE_PREFIX = "//twitch.tv/"

_TOPIC_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_LAST_ERROR_CHARS = 300

# Errors that mean the message itself is at fault: a retry cannot fix them.
_PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    api_exceptions.InvalidArgument,
    publisher_exceptions.MessageTooLargeError,
)
# Set-up errors worth retrying inside start()'s bounded window.
_TRANSIENT_SETUP_ERRORS: tuple[type[Exception], ...] = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.Aborted,
    api_exceptions.Unknown,
    api_exceptions.TooManyRequests,
)


def topic_path(project: str, topic: str) -> str:
    """``projects/{project}/topics/{topic}``; a full path is returned unchanged."""
    if topic.startswith("projects/"):
        return topic
    return f"projects/{project}/topics/{topic}"


def ce_source(channel: str) -> str:
    """CloudEvents ``source``: ``//twitch.tv/<channel login>`` (``//twitch.tv`` if none)."""
    login = channel.lstrip("#").lower()
    return f"{CE_SOURCE_PREFIX}{login}" if login else CE_SOURCE_PREFIX.rstrip("/")


def message_attributes(message: OutboundMessage) -> dict[str, str]:
    """The Pub/Sub attributes of one envelope. Optional ones are left out when empty."""
    attributes = {
        "type": message.type,
        "id": message.envelope_id,
        "ce-specversion": CE_SPECVERSION,
        "ce-type": message.type,
        "ce-source": ce_source(message.channel),
        "ce-id": message.envelope_id,
    }
    if message.traceparent:
        attributes["traceparent"] = message.traceparent
    if message.time:
        attributes["ce-time"] = message.time
    return attributes


def invalid_reason(topic: str, message: OutboundMessage, attributes: dict[str, str]) -> str | None:
    """Why Pub/Sub would reject this message (checked locally), or ``None``.

    Checking before ``publish()`` keeps a bad message from failing the batch it would share
    with other messages of the same channel, and avoids client paths that mis-handle a
    rejected oversize message (its flow-control reservation is never released).
    """
    if not message.envelope_id or not message.type:
        return "message has no envelope id or type"
    if len(message.ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
        return f"ordering key longer than {MAX_ORDERING_KEY_BYTES} bytes"
    size = len(message.data) + len(message.ordering_key.encode()) + len(topic) + 64
    for key, value in attributes.items():
        value_bytes = len(value.encode())
        if value_bytes > MAX_ATTRIBUTE_VALUE_BYTES:
            return f"attribute {key!r} is {value_bytes} bytes (max {MAX_ATTRIBUTE_VALUE_BYTES})"
        size += len(key) + value_bytes + 16  # generous protobuf map-entry overhead
    if size > MAX_REQUEST_BYTES:
        return f"message too large: about {size} bytes, Pub/Sub accepts at most {MAX_REQUEST_BYTES}"
    return None


def classify(error: BaseException, topic: str = "") -> BusError:
    """Map a publish failure to ``BusError``; ``permanent`` when the message is at fault."""
    if isinstance(error, BusError):
        return error
    if isinstance(error, publisher_exceptions.MessageTooLargeError):
        return BusError(f"message too large for Pub/Sub: {error}", permanent=True)
    if isinstance(error, _PERMANENT_ERRORS):
        return BusError(f"Pub/Sub rejected the message: {_describe_error(error)}", permanent=True)
    if isinstance(error, publisher_exceptions.PublishToPausedOrderingKeyException):
        return BusError(
            f"ordering key {error.ordering_key!r} was paused by an earlier failed publish; "
            "it has been resumed, send again"
        )
    if isinstance(error, publisher_exceptions.FlowControlLimitError):
        return BusError(f"publisher flow-control limit reached: {error}")
    if isinstance(error, api_exceptions.NotFound):
        return BusError(f"Pub/Sub topic {topic} not found: {_describe_error(error)}")
    if isinstance(error, api_exceptions.PermissionDenied):
        return BusError(
            f"permission denied publishing to {topic} (needs roles/pubsub.publisher): "
            f"{_describe_error(error)}"
        )
    if isinstance(error, RuntimeError):
        # The client cancels a key's queued batches after an earlier batch on that key
        # failed ("prior ordered message ... failed"), or because it was stopped.
        return BusError(f"publish cancelled: {error}")
    if isinstance(error, asyncio.CancelledError):
        return BusError("publish cancelled")
    # Unavailable, DeadlineExceeded (the per-publish timeout), ResourceExhausted, Internal,
    # auth transport errors...: worth another attempt.
    return BusError(f"Pub/Sub publish failed: {_describe_error(error)}")


def _describe_error(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    name = type(error).__name__
    text = text if text.startswith(name) else f"{name}: {text}"
    return text if len(text) <= _LAST_ERROR_CHARS else text[: _LAST_ERROR_CHARS - 3] + "..."


class PubSubPublisher(Publisher):
    """Publishes envelopes to ``projects/{GOOGLE_CLOUD_PROJECT}/topics/{ingress subject}``.

    ``topic``: a topic id, or a full ``projects/.../topics/...`` path (the ingress or the
    DLQ subject). ``client`` injects a ready ``PublisherClient`` (it must have message
    ordering enabled); the driver then neither configures nor stops it.
    ``PUBSUB_EMULATOR_HOST`` is honoured by the client itself; ``emulator_host`` only
    shows it in ``describe()``.
    """

    name = "pubsub"

    def __init__(
        self,
        project: str,
        topic: str,
        *,
        create_topic: bool = False,
        max_in_flight: int = 4096,
        emulator_host: str = "",
        client: pubsub_v1.PublisherClient | None = None,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT_S,
        start_timeout: float = DEFAULT_START_TIMEOUT_S,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    ) -> None:
        if client is not None and not client.publisher_options.enable_message_ordering:
            raise ValueError("the injected PublisherClient must have enable_message_ordering")
        self._create_topic = create_topic
        self._max_in_flight = max_in_flight
        self._emulator_host = emulator_host
        self._topic_id = topic
        self._project = project
        self._topic = topic_path(self._project, self._topic_id)
        self._client = client
        self._owns_client = client is None
        self._publish_timeout = publish_timeout
        self._start_timeout = start_timeout
        self._close_timeout = close_timeout
        self._connected = False
        self._closing = False
        self._pending: set[asyncio.Future[Any]] = set()
        self._published = 0
        self._failed = 0
        self._resumed = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    # -- Publisher interface -------------------------------------------------------------

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        """Check (or, with ``PUBSUB_CREATE_TOPIC``, create) the topic. Raises ``BusError``."""
        if self._closing:
            raise BusError("pubsub publisher is closed")
        self._check_names()
        try:
            if self._client is None:
                self._client = await asyncio.to_thread(self._make_client)
            await asyncio.to_thread(self._ensure_topic, self._client)
        except BusError as error:
            self._connected = False
            self._record_error(str(error))
            raise
        except Exception as error:  # credentials, transport, anything unexpected
            self._connected = False
            reason = f"cannot reach Pub/Sub for topic {self._topic}: {_describe_error(error)}"
            self._record_error(reason)
            raise BusError(reason) from error
        self._connected = True
        log.info("pubsub publisher ready", extra={"topic": self._topic})

    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        """Enqueue one publish (call order = publish order); the future settles on the ack.

        The future's result is the Pub/Sub message id; its exception is a ``BusError``
        (``permanent`` when the message itself was rejected).
        """
        if self._closing:
            raise BusError("pubsub publisher is closed")
        client = self._client
        if client is None or not self._connected:
            raise BusError("pubsub publisher is not started")
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        attributes = message_attributes(message)
        problem = invalid_reason(self._topic, message, attributes)
        if problem is not None:
            self._fail(result, BusError(problem, permanent=True))
            return result
        data = message.data if isinstance(message.data, bytes) else bytes(message.data)
        try:
            publish_future = client.publish(
                self._topic,
                data,
                ordering_key=message.ordering_key,
                retry=None,
                timeout=self._publish_timeout,
                **attributes,
            )
        except RuntimeError as error:  # the client was stopped underneath us
            self._connected = False
            self._record_error(f"publisher client stopped: {error}")
            raise BusError(f"pubsub publisher client is stopped: {error}") from error
        except publisher_exceptions.MessageTooLargeError as error:
            self._fail(result, classify(error, self._topic))
            return result
        except (ValueError, TypeError) as error:
            self._fail(result, BusError(f"invalid message: {error}", permanent=True))
            return result
        acked = asyncio.wrap_future(publish_future, loop=loop)
        self._pending.add(result)
        acked.add_done_callback(lambda done: self._settle(done, result, message.ordering_key))
        return result

    async def publish_to(
        self, destination: str, data: bytes, *, message_id: str, event_type: str
    ) -> None:
        """One unordered publish to another topic of the project, awaited (bounded). A topic
        that does not exist is unreachable (permanent); consumers de-duplicate by ``id``."""
        client = self._client
        if client is None or not self._connected or self._closing:
            raise BusError("pubsub publisher is not started")
        topic = topic_path(self._project, destination)
        try:
            published = client.publish(
                topic,
                data,
                retry=None,
                timeout=self._publish_timeout,
                id=message_id,
                type=event_type,
            )
            await asyncio.wait_for(asyncio.wrap_future(published), self._publish_timeout + 5)
        except api_exceptions.NotFound as error:
            raise BusError(f"Pub/Sub topic {topic} does not exist", permanent=True) from error
        except TimeoutError as error:
            raise BusError(f"Pub/Sub publish to {topic} timed out") from error
        except Exception as error:
            raise classify(error, topic) from error

    async def close(self) -> None:
        """Stop accepting sends, wait (bounded) for in-flight publishes, stop the client."""
        if self._closing:
            return
        self._closing = True
        pending = [future for future in self._pending if not future.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=self._close_timeout)
            if still:
                log.warning(
                    "pubsub close: %d publishes still in flight after %.1fs",
                    len(still),
                    self._close_timeout,
                )
        client, self._client = self._client, None
        self._connected = False
        if client is not None and self._owns_client:
            await asyncio.to_thread(self._stop_client, client, not self._pending)

    def describe(self) -> dict[str, Any]:
        return {
            "driver": self.name,
            "connected": self._connected,
            "topic": self._topic,
            "ordering": True,
            "pending": len(self._pending),
            "published": self._published,
            "failed": self._failed,
            "resumed_keys": self._resumed,
            "emulator": self._emulator_host or None,
            "create_topic": self._create_topic,
            "last_error": self._last_error,
            "last_error_age_s": (
                None
                if self._last_error_at is None
                else round(time.monotonic() - self._last_error_at, 1)
            ),
        }

    # -- internals -----------------------------------------------------------------------

    def _check_names(self) -> None:
        if not self._topic.startswith("projects/") or "/topics/" not in self._topic:
            raise self._setup_error(f"not a Pub/Sub topic path: {self._topic!r}")
        project, topic_id = self._topic.removeprefix("projects/").split("/topics/", 1)
        if not project:
            raise self._setup_error("GOOGLE_CLOUD_PROJECT is not set (needed for Pub/Sub)")
        if not _TOPIC_ID_RE.match(topic_id) or topic_id.lower().startswith("goog"):
            raise self._setup_error(
                f"invalid Pub/Sub topic id {topic_id!r}: 3-255 characters, starting with a "
                "letter, letters, digits and -_.~+% only, not starting with 'goog' "
                "(check BUS_PREFIX)"
            )

    def _setup_error(self, reason: str) -> BusError:
        self._record_error(reason)
        return BusError(reason, permanent=True)

    def _make_client(self) -> pubsub_v1.PublisherClient:
        in_flight = max(self._max_in_flight * 2, FLOW_CONTROL_MIN_MESSAGES)
        return pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_bytes=BATCH_MAX_BYTES,
                max_latency=BATCH_MAX_LATENCY_S,
                max_messages=BATCH_MAX_MESSAGES,
            ),
            publisher_options=pubsub_v1.types.PublisherOptions(
                enable_message_ordering=True,
                flow_control=pubsub_v1.types.PublishFlowControl(
                    message_limit=in_flight,
                    byte_limit=FLOW_CONTROL_MAX_BYTES,
                    limit_exceeded_behavior=pubsub_v1.types.LimitExceededBehavior.ERROR,
                ),
                retry=None,
                timeout=self._publish_timeout,
            ),
        )

    def _ensure_topic(self, client: pubsub_v1.PublisherClient) -> None:
        """Blocking: runs in a worker thread."""
        exists = self._topic_exists(client)
        if exists:
            return
        if not self._create_topic:
            raise BusError(
                f"Pub/Sub topic {self._topic} does not exist; create it (infra) or set "
                "PUBSUB_CREATE_TOPIC=true",
                permanent=True,
            )
        try:
            client.create_topic(
                request={"name": self._topic},
                retry=self._setup_retry(),
                timeout=self._start_timeout,
            )
            log.info("created pubsub topic", extra={"topic": self._topic})
        except api_exceptions.AlreadyExists:
            pass  # created concurrently by another instance: fine
        except api_exceptions.PermissionDenied as error:
            raise BusError(
                f"permission denied creating Pub/Sub topic {self._topic} (needs "
                f"pubsub.topics.create, e.g. roles/pubsub.editor): {_describe_error(error)}",
                permanent=True,
            ) from error
        except api_exceptions.InvalidArgument as error:
            raise BusError(
                f"Pub/Sub rejected topic name {self._topic}: {_describe_error(error)}",
                permanent=True,
            ) from error

    def _topic_exists(self, client: pubsub_v1.PublisherClient) -> bool:
        """True/False, or ``BusError`` when permission is missing.

        ``testIamPermissions`` needs no permission itself, so it works for a service account
        that holds only roles/pubsub.publisher (which does not grant ``topics.get``). The
        emulator does not implement it; there ``get_topic`` answers instead.
        """
        retry = self._setup_retry()
        try:
            response = client.test_iam_permissions(
                request={"resource": self._topic, "permissions": ["pubsub.topics.publish"]},
                retry=retry,
                timeout=self._start_timeout,
            )
        except api_exceptions.NotFound:
            return False
        except api_exceptions.MethodNotImplemented:
            pass  # emulator
        except api_exceptions.PermissionDenied as error:
            raise self._permission_error(error) from error
        except api_exceptions.InvalidArgument as error:
            raise BusError(
                f"Pub/Sub rejected topic name {self._topic}: {_describe_error(error)}",
                permanent=True,
            ) from error
        else:
            if "pubsub.topics.publish" not in response.permissions:
                raise self._permission_error(None)
            return True
        try:
            client.get_topic(
                request={"topic": self._topic}, retry=retry, timeout=self._start_timeout
            )
        except api_exceptions.NotFound:
            return False
        except api_exceptions.PermissionDenied as error:
            raise self._permission_error(error) from error
        except api_exceptions.InvalidArgument as error:
            raise BusError(
                f"Pub/Sub rejected topic name {self._topic}: {_describe_error(error)}",
                permanent=True,
            ) from error
        return True

    def _permission_error(self, error: BaseException | None) -> BusError:
        detail = f": {_describe_error(error)}" if error is not None else ""
        return BusError(
            f"permission denied on Pub/Sub topic {self._topic}: the service account needs "
            f"roles/pubsub.publisher on it{detail}",
            permanent=True,
        )

    def _setup_retry(self) -> api_retry.Retry:
        return api_retry.Retry(
            predicate=api_retry.if_exception_type(*_TRANSIENT_SETUP_ERRORS),
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=self._start_timeout,
        )

    def _settle(
        self, acked: asyncio.Future[Any], result: asyncio.Future[Any], ordering_key: str
    ) -> None:
        """On the event loop, once the client has settled one publish."""
        self._pending.discard(result)
        if acked.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = acked.exception()
        if error is None:
            self._published += 1
            if not result.done():
                result.set_result(acked.result())
            return
        if ordering_key:
            self._resume(ordering_key)
        self._fail(result, classify(error, self._topic))

    def _resume(self, ordering_key: str) -> None:
        client = self._client
        if client is None:
            return
        try:
            client.resume_publish(self._topic, ordering_key)
        except RuntimeError:
            return  # not paused (already resumed by a sibling failure) or client stopped
        except ValueError:
            return
        self._resumed += 1
        log.info("resumed pubsub ordering key after a failed publish", extra={"key": ordering_key})

    def _fail(self, result: asyncio.Future[Any], error: BusError) -> None:
        self._failed += 1
        self._record_error(str(error))
        if not result.done():
            result.set_exception(error)

    def _record_error(self, reason: str) -> None:
        self._last_error = reason[:_LAST_ERROR_CHARS]
        self._last_error_at = time.monotonic()

    @staticmethod
    def _stop_client(client: pubsub_v1.PublisherClient, close_transport: bool) -> None:
        with contextlib.suppress(RuntimeError):
            client.stop()
        if close_transport:
            with contextlib.suppress(Exception):
                client.transport.close()
