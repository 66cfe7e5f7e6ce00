"""A careless operator's configuration, through the real ``ingress-egress serve`` process:
every bad value stops start-up with exit code 2 and one short stderr line naming the
variable, never a traceback; error lines quote at most a short prefix of the bad value."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ingress_egress.config import ConfigError, Settings
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(120)


def serve(env: dict[str, str], home: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    # HOME and CLOUDSDK_CONFIG point at an empty directory: no Google credentials to find.
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        "MESSAGE_BUS_DRIVER": "memory",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "SPOOL_DIR": "off",
    }
    return subprocess.run(
        [sys.executable, "-m", "ingress_egress", "serve"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess, variable: str) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert lines[0].startswith(f"configuration error: {variable}: "), lines[0]
    assert len(lines[0]) < 400, len(lines[0])
    return lines[0]


CASES = {
    "irc-url-ipv6": ({"TWITCH_IRC_URL": "irc://[::1"}, "TWITCH_IRC_URL"),
    "nats-url-ipv6": (
        {"MESSAGE_BUS_DRIVER": "nats", "NATS_URL": "nats://[::1"},
        "NATS_URL",
    ),
    "helix-url-ipv6": ({"TWITCH_HELIX_URL": "https://[x"}, "TWITCH_HELIX_URL"),
    "channels-file-random": ({"TWITCH_CHANNELS_FILE": "/dev/urandom"}, "TWITCH_CHANNELS_FILE"),
    "firestore-doc-no-credentials": (
        {"TWITCH_CHANNELS_FIRESTORE_DOC": "config/channels"},
        "TWITCH_CHANNELS_FIRESTORE_DOC",
    ),
    "host-invalid": ({"HOST": "999.1.1.1"}, "HOST"),
    "host-not-local": ({"HOST": "192.0.2.1"}, "HOST"),
    "host-garbage": ({"HOST": "a b"}, "HOST"),
    "debug-token-blank": ({"DEBUG_TOKEN": "   "}, "DEBUG_TOKEN"),
    "admin-token-blank": ({"ADMIN_TOKEN": " \t "}, "ADMIN_TOKEN"),
    "debug-token-non-ascii": ({"DEBUG_TOKEN": "tökén-secret"}, "DEBUG_TOKEN"),
    "admin-token-space": ({"ADMIN_TOKEN": "two words"}, "ADMIN_TOKEN"),
    "channel-with-a-space": ({"TWITCH_CHANNELS": "good,ba d"}, "TWITCH_CHANNELS"),
    "bot-without-token": ({"TWITCH_BOT_USERNAME": "mybot"}, "TWITCH_OAUTH_TOKEN"),
    "port-4000-digits": ({"PORT": "9" * 4000}, "PORT"),
    "timeout-long-garbage": (
        {
            "TWITCH_OAUTH_TIMEOUT_S": "x" * 5000,
            "TWITCH_BOT_USERNAME": "mybot",
            "GOOGLE_CLOUD_PROJECT": "demo-project",
            "TWITCH_CLIENT_ID": "client-id-123",
            "TWITCH_CLIENT_SECRET": "client-secret-123",
        },
        "TWITCH_OAUTH_TIMEOUT_S",
    ),
    "cluster-unknown": ({"CLUSTER_COORDINATION": "zookeeper"}, "CLUSTER_COORDINATION"),
    # In a cluster the bot only sends: a bot with sending off has nothing to do there.
    "cluster-bot-not-sending": (
        {
            "CLUSTER_COORDINATION": "nats",
            "TWITCH_BOT_USERNAME": "mybot",
            "TWITCH_OAUTH_TOKEN": "x",
            "EGRESS_TRANSPORT": "off",
        },
        "CLUSTER_COORDINATION",
    ),
    "egress-rate-below-the-normal-one": (
        {"EGRESS_RATE_LIMIT": "30", "EGRESS_RATE_LIMIT_PRIVILEGED": "25"},
        "EGRESS_RATE_LIMIT_PRIVILEGED",
    ),
    "egress-irc-without-a-bot": ({"EGRESS_TRANSPORT": "irc"}, "EGRESS_TRANSPORT"),
    "egress-irc-without-a-command-bus": (
        {"EGRESS_TRANSPORT": "irc", "TWITCH_BOT_USERNAME": "mybot", "TWITCH_OAUTH_TOKEN": "t-1"},
        "EGRESS_TRANSPORT",
    ),
    "egress-helix-without-a-client-id": (
        {
            "EGRESS_TRANSPORT": "helix",
            "TWITCH_BOT_USERNAME": "mybot",
            "TWITCH_OAUTH_TOKEN": "tok-9",
            "MESSAGE_BUS_DRIVER": "nats",
        },
        "TWITCH_CLIENT_ID",
    ),
    "egress-rate-beyond-verified": ({"EGRESS_RATE_LIMIT": "7501"}, "EGRESS_RATE_LIMIT"),
    "eventsub-read-anonymously": (
        {
            "TWITCH_SOURCE": "eventsub",
            "TWITCH_BOT_USERNAME": "mybot",
            "TWITCH_CLIENT_ID": "cid",
            "TWITCH_OAUTH_TOKEN": "x",
            "TWITCH_READ_AS": "anonymous",
        },
        "TWITCH_READ_AS",
    ),
    "cluster-ttl-below-two-heartbeats": (
        {
            "CLUSTER_COORDINATION": "nats",
            "CLUSTER_HEARTBEAT_MS": "2000",
            "CLUSTER_MEMBER_TTL_MS": "3000",
        },
        "CLUSTER_MEMBER_TTL_MS",
    ),
    "cluster-instance-id-slash": ({"INSTANCE_ID": "a/b"}, "INSTANCE_ID"),
    "cluster-firestore-no-project": ({"CLUSTER_COORDINATION": "firestore"}, "GOOGLE_CLOUD_PROJECT"),
    "cluster-firestore-no-credentials": (
        {"CLUSTER_COORDINATION": "firestore", "GOOGLE_CLOUD_PROJECT": "demo-project"},
        "CLUSTER_COORDINATION",
    ),
    "reconnect-storm": (
        {
            "IRC_RECONNECT_INITIAL_MS": "1",
            "IRC_RECONNECT_MAX_MS": "1",
            "IRC_CONNECT_INTERVAL_MS": "0",
        },
        "IRC_RECONNECT_MAX_MS",
    ),
}


@pytest.mark.parametrize(("env", "variable"), list(CASES.values()), ids=list(CASES))
def test_a_bad_value_is_one_line_naming_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    line = assert_one_line(serve(env, tmp_path), variable)
    for name, value in env.items():
        if name.endswith("_TOKEN") and value.strip():
            assert value not in line  # a secret is never echoed


def test_a_port_in_use_names_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_one_line(serve({"PORT": str(port)}, tmp_path), "PORT")
    assert str(port) in line and "in use" in line


@pytest.mark.parametrize(
    "content", ["x" * 500_000, "a" * (4 << 20)], ids=["one-long-token", "4-MB-no-line-breaks"]
)
def test_a_channels_file_with_no_line_breaks_gives_a_short_line(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "channels.txt"
    path.write_text(content)
    line = assert_one_line(
        serve({"TWITCH_CHANNELS_FILE": str(path)}, tmp_path), "TWITCH_CHANNELS_FILE"
    )
    assert "xxxxxxxxxx" * 10 not in line and "aaaaaaaaaa" * 10 not in line


def test_a_long_bad_value_is_quoted_by_a_short_prefix() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"TWITCH_CHANNELS": "ok," + "x" * 10_000})
    message = str(caught.value)
    assert message.startswith("configuration error: TWITCH_CHANNELS: ")
    assert len(message) < 200
    assert "(10000 characters)" in message


def test_spaces_around_commas_are_still_fine() -> None:
    settings = Settings.from_env({"TWITCH_CHANNELS": " #Forsen , xqc ,,lirik "})
    assert settings.twitch.channels == ("forsen", "xqc", "lirik")


def test_nats_down_at_start_says_connection_refused_at_once(tmp_path: Path) -> None:
    """Not a configuration error (NATS may come up later: the service keeps retrying), but
    the log must say why, within the first attempt, not a TimeoutError 15 s later."""
    port = free_port()  # nothing listens there
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingress_egress", "serve"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin"),
            "HOME": str(tmp_path),
            "MESSAGE_BUS_DRIVER": "nats",
            "NATS_URL": f"nats://127.0.0.1:{port}",
            "HOST": "127.0.0.1",
            "PORT": "0",
            "SPOOL_DIR": "off",
            "LOG_FORMAT": "text",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "bus not available" in line:
                break
        else:
            raise AssertionError("no bus error was logged")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert "Connect call failed" in line or "refused" in line.lower(), line
    assert "TimeoutError" not in line
