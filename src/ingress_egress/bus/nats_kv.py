"""Calling a JetStream key-value bucket the way every store here needs it: each request
bounded in time, and nats-py's many errors reduced to the three answers a compare-and-set
caller acts on (the key is missing; someone else wrote it first; the store is unreachable).
The cluster's membership store, its send lease and the egress ledger share it; each passes
its own exception classes so its callers keep catching what they know."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import nats.errors
import nats.js.errors

T = TypeVar("T")


def describe_error(error: BaseException) -> str:
    """An error as one short, secret-free line (its type, and its text when it has one)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def kv_call(
    awaitable: Awaitable[T],
    *,
    timeout_s: float,
    exists: type[Exception],
    unavailable: type[Exception],
    missing: type[Exception] | None = None,
) -> T:
    """``awaitable`` (a bucket request), with its failure as ``missing`` (no such key; None:
    nats-py's own error goes through), ``exists`` (a create of an existing key, or an update
    on a revision that is no longer the last) or ``unavailable`` (anything else)."""
    try:
        return await asyncio.wait_for(awaitable, timeout_s)
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
        if missing is None:
            raise
        raise missing from None
    except nats.js.errors.KeyWrongLastSequenceError:
        raise exists from None
    except nats.js.errors.BadRequestError as error:  # create() of an existing key
        if "wrong last sequence" in str(error).lower():
            raise exists from None
        raise unavailable(describe_error(error)) from None
    except (TimeoutError, nats.errors.Error, OSError) as error:
        raise unavailable(describe_error(error)) from None
