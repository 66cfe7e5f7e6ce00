"""The real entry point as a process: `ingress-egress serve` against the simulator, stdout bus,
stopped by SIGTERM (as Cloud Run does): it exits 0 and every envelope it read was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from ingress_egress.simulator import ChatSimulator
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(120)


async def test_serve_publishes_to_stdout_and_stops_cleanly_on_sigterm(tmp_path) -> None:
    # stdout goes to a file: the stdout driver writes synchronously (it is the try-it-out
    # driver), so an unread pipe would stall it.
    out_path = tmp_path / "stdout.jsonl"
    async with ChatSimulator(count=100, rate=500) as sim:
        port = free_port()
        env = {
            **os.environ,
            "MESSAGE_BUS_DRIVER": "stdout",
            "TWITCH_CHANNELS": "#Alpha, beta",
            "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim.port}",
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "SPOOL_DIR": str(tmp_path / "spool"),
        }
        out_file = out_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingress_egress", "serve"],
            env=env,
            stdout=out_file,
            stderr=subprocess.PIPE,
        )
        try:
            assert await sim.wait_sent(100, timeout=30)
            deadline = time.monotonic() + 20
            async with httpx.AsyncClient() as client:
                while True:
                    try:
                        debug = (await client.get(f"http://127.0.0.1:{port}/_debug/twitch")).json()
                        if debug["counters"]["published"] >= 102:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "service did not publish everything"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
            out_file.close()
            assert time.monotonic() - started < 10  # within Cloud Run's grace period
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()[-2000:]
        envelopes = [json.loads(line) for line in out_path.read_bytes().splitlines()]
        chat = [e for e in envelopes if e["type"] == "external.chat.message.v1"]
        ids = {e["payload"]["messageId"] for e in chat}
        sent = {mid for channel in ("alpha", "beta") for mid, _ in sim.sent[channel]}
        assert ids == sent
        assert len(chat) == 100
        assert b"signal received: shutting down" in err
