"""Locate the Google Cloud CLI's emulators; skip (locally) or fail (CI) when absent.

``.ci/run`` sets ``REQUIRE_EMULATORS=1`` so that CI can never pass without the emulator
tests: there a missing emulator is a failure, not a skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_HINT = (
    "install the Google Cloud CLI with its emulators and Java 17 "
    "(apt-get install google-cloud-cli google-cloud-cli-firestore-emulator "
    "google-cloud-cli-pubsub-emulator openjdk-17-jre-headless)"
)


@functools.cache
def sdk_root() -> Path | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def require_emulator(relative: str) -> Path:
    """The emulator path under the SDK's ``platform/``, or skip/fail with how to install it."""
    root = sdk_root()
    path = root / "platform" / relative if root else None
    if path is not None and path.exists() and shutil.which("java"):
        return path
    reason = f"emulator platform/{relative} not found: {INSTALL_HINT}"
    if os.environ.get("REQUIRE_EMULATORS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)
