"""The cluster's recovery figures with the service's default timings (docs/scaling.md).

Three real ``ingress-egress serve`` members (CLUSTER_COORDINATION=nats, heartbeat 2 s, TTL
10 s, replicas 2, Twitch's default JOIN limit of 20 per 10 s) read CHANNELS channels of the
simulator's live stream into a real nats-server. Measured, each from the simulator's side
(which connections a message actually reached):

* SIGKILL of one member: seconds until every channel is back on two readers, and how many
  messages reached no reader meanwhile (must be 0);
* SIGTERM of one member (a rolling replacement's old instance): its exit time, seconds until
  every channel is back on two readers, messages unheard;
* scale 2 -> 3: channels that moved (JOINs by the newcomer, PARTs by the others) against the
  rendezvous share, and JOINs by the old members (must be 0).

Uses the cluster tests' harness (tests/support/cluster.py). Results: bench/results/cluster.json.
    .venv/bin/python bench/bench_cluster.py [--channels 60] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cluster import MemberProcess, member_env, wait_replicated  # noqa: E402
from tests.support.nats import NatsServer  # noqa: E402

from ingress_egress.cluster.assignment import readers_of  # noqa: E402
from ingress_egress.simulator import ChatSimulator  # noqa: E402

DEFAULTS = {"CLUSTER_HEARTBEAT_MS": "2000", "CLUSTER_MEMBER_TTL_MS": "10000"}
# Before each disturbance: one JOIN window with no JOINs, so that what is measured is a
# steady cluster's recovery, not JOINs queued behind the previous step's.
QUIET_S = 11.0


async def start(names: list[str], workdir: Path, env: dict[str, str]) -> dict[str, MemberProcess]:
    return {name: await MemberProcess(name, workdir, env).start() for name in names}


def bench_env(sim: ChatSimulator, channels: tuple[str, ...], name: str, nats_url: str) -> dict:
    """The service's defaults (timings, Twitch's JOIN limit) on nats-server."""
    return member_env(
        sim.port,
        channels,
        "nats",
        name,
        MESSAGE_BUS_DRIVER="nats",
        NATS_URL=nats_url,
        TWITCH_JOIN_RATE_LIMIT="20",
        **DEFAULTS,
    )


def unheard_since(sim: ChatSimulator, mark: int) -> int:
    return sum(1 for m in sim.live_log[mark:] if m.receivers == 0)


async def failover(channels: tuple[str, ...], rate: int, workdir: Path, nats_url: str) -> dict:
    async with ChatSimulator(live_channels=channels, rate=rate) as sim:
        env = bench_env(sim, channels, "bench-kill", nats_url)
        members = await start(["ie-a", "ie-b", "ie-c"], workdir, env)
        try:
            cold = await wait_replicated(sim, 2, 300)
            await asyncio.sleep(QUIET_S)
            mark = len(sim.live_log)
            members["ie-c"].kill()
            killed = await wait_replicated(sim, 2, 300)
            after_kill = unheard_since(sim, mark)
            members["ie-d"] = await MemberProcess("ie-d", workdir, env).start()
            await wait_replicated(sim, 2, 300)
            await asyncio.sleep(QUIET_S)
            mark = len(sim.live_log)
            code, exit_s = await members["ie-a"].terminate()
            termed = await wait_replicated(sim, 2, 300)
            after_term = unheard_since(sim, mark)
        finally:
            for member in members.values():
                member.stop()
    return {
        "coldStartToTwoReadersS": round(cold, 2),
        "sigkill": {"restoreTwoReadersS": round(killed, 2), "unheard": after_kill},
        "sigterm": {
            "exitCode": code,
            "exitS": round(exit_s, 2),
            "restoreTwoReadersS": round(termed, 2),
            "unheard": after_term,
        },
    }


async def scale_out(channels: tuple[str, ...], rate: int, workdir: Path, nats_url: str) -> dict:
    async with ChatSimulator(live_channels=channels, rate=rate) as sim:
        env = bench_env(sim, channels, "bench-scale", nats_url)
        members = await start(["ie-a", "ie-b"], workdir, env)
        try:
            await wait_replicated(sim, 2, 300)
            await asyncio.sleep(QUIET_S)
            joins, parts, first_new = len(sim.joins), len(sim.parts), sim.connections_made
            started = time.monotonic()
            members["ie-c"] = await MemberProcess("ie-c", workdir, env).start()
            await wait_replicated(sim, 2, 300)
            # Every PART done: the old members let go once the newcomer confirmed.
            share = {c for c in channels if "ie-c" in readers_of(c, ["ie-a", "ie-b", "ie-c"], 2)}
            deadline = time.monotonic() + 60
            while len(sim.parts) - parts < len(share) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            settled = time.monotonic() - started
        finally:
            for member in members.values():
                member.stop()
    new_joins = sim.joins[joins:]
    return {
        "channels": len(channels),
        "rendezvousShare": len(share),
        "joinedByNewcomer": sum(1 for conn, _ in new_joins if conn >= first_new),
        "joinedByOldMembers": sum(1 for conn, _ in new_joins if conn < first_new),
        "partedByOldMembers": len(sim.parts) - parts,
        "secondsUntilSettled": round(settled, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=60)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="keep the members' logs in this directory")
    args = parser.parse_args()
    channels = tuple(f"chan{i:03d}" for i in range(args.channels))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        for part in ("failover", "scale"):
            (workdir / part).mkdir(parents=True, exist_ok=True)
        server = NatsServer(workdir).start()
        try:
            results = {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": f"{platform.machine()}, {platform.python_version()}",
                "settings": {**DEFAULTS, "CLUSTER_REPLICAS": "2", "TWITCH_JOIN_RATE_LIMIT": "20"},
                "rate": args.rate,
                "failover": await failover(channels, args.rate, workdir / "failover", server.url),
                "scaleOut": await scale_out(channels, args.rate, workdir / "scale", server.url),
            }
        finally:
            server.stop()
    out = ROOT / "bench" / "results" / "cluster.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
