"""``make bench-egress``: sending into Twitch chat, ingress-egress next to tmi.js and twurple.

One simulator process (``ingress-egress simulate``, pinned to the traffic core with
nats-server) is Twitch for every sender in the run: it referees each bot account's
messages exactly (no margin) and its control endpoint's ``GET /record`` lists every send
and every breach. Each sender logs in as its own bot account, so their budgets are apart.

* **verified**: bots marked verified (7,500 messages per 30 s), moderator in the 10
  channels. ``ingress-egress serve`` (defaults but the bot and
  ``EGRESS_RATE_LIMIT=EGRESS_RATE_LIMIT_PRIVILEGED=7500``) gets ``--count`` commands
  published to ``internal.egress.v1`` on a real nats-server: commands/s until every result
  is stored, command-to-Twitch latency (the command's ``timestamp`` to the simulator's
  accept time), CPU s of the serve process per 1,000 commands, breaches, results. tmi.js
  (``client.say()``) and @twurple/chat (``chatClient.say()``) send the same burst with
  their own pacing, as shipped.
* **normal**: bots not verified, not privileged in 10 other channels (20 per 30 s, 1 s
  per channel), ``--normal-count`` commands; the three senders run side by side.

Writes bench/results/egress.json and egress.md.

    .venv/bin/python bench/bench_egress.py [--count 3000] [--normal-count 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats as nats_py
from nats.js.api import RetentionPolicy, StreamConfig

sys.path.insert(0, str(Path(__file__).parent))

from bench_service import BIN, free_port, stop
from run import PEERS, PEERS_SRC, PIN, RESULTS, WS_PORT, Nats, digest, log, machine, pinned
from serve_case import cpu_s

CHANNELS = 10
CLIENTS = ("ingress-egress", "tmi.js", "@twurple/chat")
# One bot account per sender and case: login, user id, token (the simulator's accounts).
BOTS = {
    ("verified", "ingress-egress"): ("ievbot", "9100001", "tok-ie-verified"),
    ("verified", "tmi.js"): ("tmivbot", "9100002", "tok-tmi-verified"),
    ("verified", "@twurple/chat"): ("twurplevbot", "9100003", "tok-twurple-verified"),
    ("normal", "ingress-egress"): ("ienbot", "9100004", "tok-ie-normal"),
    ("normal", "tmi.js"): ("tminbot", "9100005", "tok-tmi-normal"),
    ("normal", "@twurple/chat"): ("twurplenbot", "9100006", "tok-twurple-normal"),
}
VERIFIED_LIMIT = "7500"


def channels(case: str) -> list[str]:
    return [f"{case[0]}bench{i}" for i in range(CHANNELS)]


def burst(case: str, count: int) -> list[tuple[str, str]]:
    """The same (channel, text) list for every sender: round robin over the case's channels,
    every text distinct (so no sender meets Twitch's duplicate rule)."""
    names = channels(case)
    return [(names[i % CHANNELS], f"egress bench {case} reply {i}") for i in range(count)]


# -- the simulator ----------------------------------------------------------------------------


class Simulator:
    """``ingress-egress simulate`` with the bots, channels, Helix mock and control endpoint."""

    def __init__(self, work: Path) -> None:
        argv = [str(BIN / "ingress-egress"), "simulate", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--ws-port", str(WS_PORT), "--count", "0", "--ping-interval", "0"]
        argv += ["--control-port", "0", "--helix-port", "0"]
        for (case, _), (login, user_id, token) in BOTS.items():
            argv += ["--bot", f"{login}:{user_id}:{token}" + (":verified" * (case == "verified"))]
        for name in channels("verified"):
            argv += ["--channel", f"{name}:role=moderator"]
        self.log = work / "simulator.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                pinned(argv, "traffic"),
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        try:
            banner = self._banner()
        except RuntimeError:
            halt(self.proc)
            raise
        words = dict(w.split("=", 1) for w in banner.split() if "=" in w)
        self.irc_port = int(banner.split("irc://127.0.0.1:")[1].split()[0])
        self.helix_url, self.control_url = words["helix"], words["control"]
        self.http = httpx.Client(base_url=self.control_url, timeout=30)

    def _banner(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if "listening on" in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"simulator did not start: {self.log.read_text()[-500:]}")

    def record(self) -> dict[str, Any]:
        return self.http.get("/record").json()

    def settled(self, login: str, expected: int, deadline_s: float) -> dict[str, Any]:
        """The record once ``login`` has ``expected`` sends or its sends stopped coming."""
        deadline = time.monotonic() + deadline_s
        last, quiet_since = -1, time.monotonic()
        while True:
            record = self.record()
            seen = sum(1 for s in record["sends"] if s["login"] == login)
            if seen != last:
                last, quiet_since = seen, time.monotonic()
            if (
                seen >= expected
                or time.monotonic() - quiet_since > 3
                or time.monotonic() > deadline
            ):
                return record
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()
        halt(self.proc)


def halt(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group we started (SIGKILL after 10 s); gone already is fine."""
    with contextlib.suppress(ProcessLookupError):
        stop(proc)


def referee(record: dict[str, Any], login: str) -> dict[str, Any]:
    sends = [s for s in record["sends"] if s["login"] == login]
    breaches = [b for b in record["breaches"] if b["login"] == login]
    outcomes: dict[str, int] = {}
    for send in sends:
        outcomes[send["outcome"]] = outcomes.get(send["outcome"], 0) + 1
    kinds: dict[str, int] = {}
    for breach in breaches:
        kinds[breach["limit"]] = kinds.get(breach["limit"], 0) + 1
    return {
        "sends": sends,
        "received": len(sends),
        "accepted": outcomes.get("accepted", 0),
        "outcomes": outcomes,
        "breaches": len(breaches),
        "breach_kinds": kinds,
        "locked_out": login in record.get("lockouts", {}),
    }


def percentiles(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    values = sorted(values)

    def pick(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"n": len(values), "p50": pick(0.5), "p99": pick(0.99), "max": round(values[-1], 1)}


# -- ingress-egress serve ------------------------------------------------------------------


def serve_env(
    case: str, sim: Simulator, nats: Nats, prefix: str, port: int, spool: Path
) -> dict[str, str]:
    login, _, token = BOTS[(case, "ingress-egress")]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        MESSAGE_BUS_DRIVER="nats",
        NATS_URL=nats.url,
        BUS_PREFIX=prefix,
        NATS_STREAM=f"{prefix[:-1].upper()}_INGRESS",
        NATS_EGRESS_STREAM=f"{prefix[:-1].upper()}_EGRESS",
        TWITCH_IRC_URL=f"irc://127.0.0.1:{sim.irc_port}",
        TWITCH_OAUTH_URL=f"{sim.helix_url}/oauth2",
        TWITCH_HELIX_URL=f"{sim.helix_url}/helix",
        TWITCH_BOT_USERNAME=login,
        TWITCH_OAUTH_TOKEN=token,
        PORT=str(port),
        HOST="127.0.0.1",
        SPOOL_DIR=str(spool),  # its own: the default path is shared by every serve here
    )
    if case == "verified":
        env.update(EGRESS_RATE_LIMIT=VERIFIED_LIMIT, EGRESS_RATE_LIMIT_PRIVILEGED=VERIFIED_LIMIT)
    return env


def command(prefix_channel: str, text: str) -> tuple[str, str, bytes]:
    """(id, timestamp, bytes) of one egress command (docs/egress.md, "The contract")."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    ident = str(uuid.uuid4())
    body = {
        "v": "1",
        "id": ident,
        "correlationId": str(uuid.uuid4()),
        "traceId": uuid.uuid4().hex,
        "timestamp": stamp,
        "type": "egress.chat.message.v1",
        "target": {"platform": "twitch", "channel": prefix_channel},
        "payload": {"text": text},
    }
    return ident, stamp, json.dumps(body).encode()


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def make_streams(nats: Nats, prefix: str) -> None:
    """What the platform sets up: the command stream and the finalizer's stream."""
    nc = await nats_py.connect(nats.url)
    try:
        js = nc.jetstream()
        tag = prefix[:-1].upper()
        await js.add_stream(
            StreamConfig(
                name=f"{tag}_EGRESS",
                subjects=[f"{prefix}internal.egress.v1", f"{prefix}internal.egress.dlq.v1"],
                retention=RetentionPolicy.WORK_QUEUE,
            )
        )
        await js.add_stream(
            StreamConfig(name=f"{tag}_FINALIZER", subjects=[f"{prefix}internal.finalizer.v1"])
        )
    finally:
        await nc.close()


def wait_sending(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}")
            try:
                if client.get("/_debug/twitch").json().get("egress", {}).get("sending"):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError("serve never started sending")


async def publish_and_collect(
    nats: Nats, prefix: str, pairs: list[tuple[str, str]], deadline_s: float, pid: int
) -> dict[str, Any]:
    """Publish every command, then read results until each command has one (or the
    deadline). Timed from the first publish to the last result read from JetStream."""
    nc = await nats_py.connect(nats.url)
    js = nc.jetstream()
    results: dict[str, dict[str, Any]] = {}
    extra = 0
    done = asyncio.Event()

    async def on_result(msg: Any) -> None:
        nonlocal extra
        result = json.loads(msg.data)
        if result["envelopeId"] in results:
            extra += 1
        results[result["envelopeId"]] = result | {"_stored": time.time()}
        if len(results) >= len(pairs):
            done.set()

    await js.subscribe(f"{prefix}internal.finalizer.v1", cb=on_result, ordered_consumer=True)
    stamps: dict[str, str] = {}
    wall0, cpu0 = time.perf_counter(), cpu_s(pid)
    for start in range(0, len(pairs), 500):  # acks awaited 500 at a time
        chunk = [command(channel, text) for channel, text in pairs[start : start + 500]]
        await asyncio.gather(
            *(
                js.publish(f"{prefix}internal.egress.v1", body, headers={"Nats-Msg-Id": ident})
                for ident, _, body in chunk
            )
        )
        stamps.update((ident, stamp) for ident, stamp, _ in chunk)
    published_s = time.perf_counter() - wall0
    try:
        await asyncio.wait_for(done.wait(), deadline_s)
    except TimeoutError:
        log(f"  results: {len(results)} of {len(pairs)} by the deadline")
    wall, cpu = time.perf_counter() - wall0, cpu_s(pid) - cpu0
    await asyncio.sleep(1)  # a second result for one command would show up here
    await nc.close()
    return {
        "stamps": stamps,
        "results": results,
        "duplicate_results": extra,
        "wall_s": wall,
        "cpu_s": cpu,
        "published_s": published_s,
    }


def run_service(case: str, sim: Simulator, nats: Nats, count: int, work: Path) -> dict[str, Any]:
    prefix = f"eb{case[0]}{time.monotonic_ns() % 100000}."
    asyncio.run(make_streams(nats, prefix))
    port = free_port()
    argv = pinned([str(BIN / "ingress-egress"), "serve"], "client")
    with (work / f"serve-{case}.log").open("wb") as err:
        proc = subprocess.Popen(
            argv,
            env=serve_env(case, sim, nats, prefix, port, work / f"spool-{case}"),
            stdout=err,
            stderr=err,
            start_new_session=True,
        )
    try:
        wait_sending(port, proc)
        deadline = 60 + (count / 20 * 32 if case == "normal" else count / 100)
        got = asyncio.run(publish_and_collect(nats, prefix, burst(case, count), deadline, proc.pid))
    finally:
        halt(proc)
    login = BOTS[(case, "ingress-egress")][0]
    seen = referee(sim.settled(login, count, 10), login)
    return service_figures(count, got, seen)


def service_figures(count: int, got: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    accepted_at = {s["id"]: s["at"] for s in seen.pop("sends") if s["outcome"] == "accepted"}
    statuses: dict[str, int] = {}
    to_twitch, to_result = [], []
    for ident, result in got["results"].items():
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        sent = epoch(got["stamps"][ident]) if ident in got["stamps"] else None
        ids = [i for i in result.get("twitchMessageIds") or [] if i in accepted_at]
        if sent is not None and ids:
            to_twitch.append((accepted_at[ids[-1]] - sent) * 1000)
        if sent is not None:
            to_result.append((result["_stored"] - sent) * 1000)
    results = len(got["results"])
    return {
        "commands": count,
        "results": results,
        "missing_results": count - results,
        "duplicate_results": got["duplicate_results"],
        "statuses": statuses,
        "wall_s": round(got["wall_s"], 2),
        "commands_per_s": round(results / got["wall_s"], 1),
        "publish_s": round(got["published_s"], 2),
        "cpu_s": round(got["cpu_s"], 2),
        "cpu_s_per_1000": round(got["cpu_s"] / results * 1000, 3) if results else None,
        "latency_to_twitch_ms": percentiles(to_twitch),
        "latency_to_result_ms": percentiles(to_result),
        **seen,
    }


# -- the peers -------------------------------------------------------------------------------


def install_npm() -> None:
    """The npm peers (bench/run.py installs the same way, into the same place)."""
    PEERS.mkdir(exist_ok=True)
    lock = [PEERS_SRC / "package.json", PEERS_SRC / "package-lock.json"]
    stamp = PEERS / ".npm-stamp"
    if not stamp.exists() or stamp.read_text() != digest(*lock):
        log("installing npm peers (npm ci) into bench/.peers ...")
        for path in lock:
            (PEERS / path.name).write_bytes(path.read_bytes())
        subprocess.run(
            ["npm", "ci", "--prefix", str(PEERS), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True,
        )
        stamp.write_text(digest(*lock))
    for script in PEERS_SRC.glob("*.mjs"):  # resolved from bench/.peers/node_modules
        (PEERS / script.name).write_bytes(script.read_bytes())


def peer_argv(case: str, name: str, sim: Simulator, burst_file: Path, timeout: float) -> list[str]:
    login, _, token = BOTS[(case, name)]
    common = ["--login", login, "--token", token, "--burst", str(burst_file)]
    common += ["--timeout", str(timeout)]
    if name == "tmi.js":
        argv = ["node", str(PEERS / "tmi_egress.mjs"), "--host", "127.0.0.1"]
        return [*argv, "--port", str(WS_PORT), *common]
    declare = "1" if case == "verified" else "0"  # what twurple's API lets a bot declare
    return [
        "node",
        str(PEERS / "twurple_egress.mjs"),
        "--host",
        "127.0.0.1",
        "--oauth",
        f"{sim.helix_url}/oauth2",
        "--verified",
        declare,
        "--mod",
        declare,
        *common,
    ]


def run_peer(case: str, name: str, sim: Simulator, count: int, work: Path) -> dict[str, Any]:
    burst_file = work / f"burst-{case}.json"
    burst_file.write_text(json.dumps(burst(case, count)))
    timeout = 30 + (count / 20 * 32 if case == "normal" else count / 100)
    proc = subprocess.run(
        pinned(peer_argv(case, name, sim, burst_file, timeout), "client"),
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        cwd=PEERS,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{name} printed no figures: {proc.stderr[-800:]}")
    figures = json.loads(lines[-1])
    login = BOTS[(case, name)][0]
    seen = referee(sim.settled(login, count, 15), login)
    sends = seen.pop("sends")
    accepted = sorted(s["at"] for s in sends if s["outcome"] == "accepted")
    span = (accepted[-1] - figures["startedAt"]) if accepted else 0
    return {
        "version": figures["version"],
        "declared": figures["declared"],
        "commands": count,
        "said": figures["said"],
        "say_failed": figures["failed"],
        "say_pending_at_timeout": figures["pending"],
        "say_errors": figures["errors"],
        "lost": figures["said"] - seen["accepted"],
        "wall_s": round(span, 2),
        "accepted_per_s": round(len(accepted) / span, 1) if span > 0 else None,
        "latency_to_twitch_ms": percentiles([(t - figures["startedAt"]) * 1000 for t in accepted]),
        "cpu_s": round(figures["cpuS"], 3),
        "cpu_s_per_1000": round(figures["cpuS"] / count * 1000, 3),
        **seen,
    }


# -- the run ---------------------------------------------------------------------------------


def guarded(name: str, job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One sender failing must not lose the others' figures."""
    try:
        return job()
    except Exception as exc:
        log(f"{name}: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"[:400]}


def run_case(
    case: str, count: int, sim: Simulator, nats: Nats, work: Path, together: bool
) -> dict[str, Any]:
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "ingress-egress": lambda: run_service(case, sim, nats, count, work),
        "tmi.js": lambda: run_peer(case, "tmi.js", sim, count, work),
        "@twurple/chat": lambda: run_peer(case, "@twurple/chat", sim, count, work),
    }
    if not together:
        rows = {}
        for name, job in jobs.items():
            log(f"{case}: {name}, {count:,} commands ...")
            rows[name] = guarded(name, job)
        return rows
    log(f"{case}: the three senders side by side, {count:,} commands each ...")
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(guarded, name, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def wait_port_free(port: int, quiet_s: float = 20, patience_s: float = 1800) -> None:
    """twurple connects only to port 80, which another bench on this machine (``make
    bench``) may hold between its cases: wait until it has been free for ``quiet_s`` (that
    run's load would skew these figures anyway)."""
    deadline, told = time.monotonic() + patience_s, False
    free_since = time.monotonic()
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                free_since = time.monotonic()
                if not told:
                    log(f"127.0.0.1:{port} is in use (another bench?): waiting for it ...")
                    told = True
        if time.monotonic() - free_since >= (quiet_s if told else 0):
            return
        time.sleep(1)
    raise SystemExit(f"bench-egress: 127.0.0.1:{port} stayed in use")


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) at the start"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000, help="verified case; 0 = skip")
    parser.add_argument("--normal-count", type=int, default=60, help="0 = skip that case")
    args = parser.parse_args()
    started = time.monotonic()
    if "traffic" in PIN:  # this process publishes and reads results: the traffic side's work
        os.sched_setaffinity(0, {int(PIN["traffic"])})
    install_npm()
    wait_port_free(WS_PORT)
    load = load_note()
    work = Path(tempfile.mkdtemp(prefix="bench-egress-"))
    sim: Simulator | None = None
    nats: Nats | None = None
    try:
        sim, nats = Simulator(work), Nats()
        cases = {}
        if args.count:
            cases["verified"] = run_case("verified", args.count, sim, nats, work, together=False)
        if args.normal_count:
            cases["normal"] = run_case("normal", args.normal_count, sim, nats, work, together=True)
    finally:
        if sim is not None:
            sim.close()
        if nats is not None:
            nats.close()
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "python": platform.python_version(),
        "load": load,
        "config": {
            "count": args.count,
            "normal_count": args.normal_count,
            "channels": CHANNELS,
            "cpu_pinning": PIN or "none",
        },
        "cases": cases,
        "notes": NOTES,
        "bench_wall_s": round(time.monotonic() - started),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "egress.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "egress.md").write_text(report(results))
    print((RESULTS / "egress.md").read_text())


def cell(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int | float) else str(value)


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Egress benchmark",
        "",
        f"{results['date']}; {m['cpu']} (lscpu model name), {m['cores']} cores ({m['arch']}); "
        f"CPython {results['python']}; {results['load']} (other work shared the machine). "
        "Pinning: the sender on CPU 0, the simulator and nats-server on CPU 1.",
        "",
    ]
    for case, rows in results["cases"].items():
        lines += [TITLES[case], "", HEADER, "|" + "---|" * 11]
        lines += [table_row(name, rows.get(name, {})) for name in CLIENTS]
        lines += [""] + [f"* {detail(name, rows.get(name, {}))}" for name in CLIENTS] + [""]
    lines += ["Notes:", ""] + [f"* {note}" for note in results["notes"]] + [""]
    return "\n".join(lines)


def table_row(name: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return f"| {name} | error: {row['error'][:120]} |" + " |" * 9
    lat = row.get("latency_to_twitch_ms") or {}
    values = (
        name,
        row.get("commands"),
        row.get("accepted"),
        row.get("results"),
        row.get("commands_per_s", row.get("accepted_per_s")),
        row.get("wall_s"),
        lat.get("p50"),
        lat.get("p99"),
        row.get("cpu_s_per_1000"),
        row.get("breaches"),
        row["lost"] if "lost" in row else row.get("missing_results"),
    )
    return "| " + " | ".join(cell(v) for v in values) + " |"


def detail(name: str, row: dict[str, Any]) -> str:
    """What the table leaves out: versions, declarations, refusals, breach kinds."""
    if "error" in row:
        return f"{name}: {row['error']}"
    refused = {k: v for k, v in row.get("outcomes", {}).items() if k != "accepted"}
    parts = [name + (f" {row['version']}" if "version" in row else "")]
    if "declared" in row:
        parts.append(f"declared: {row['declared']}")
        parts.append(
            f"say() resolved {row['said']}, failed {row['say_failed']}, "
            f"pending at the timeout {row['say_pending_at_timeout']}"
        )
    else:
        parts.append(
            f"result statuses {row.get('statuses')}, "
            f"duplicate results {row.get('duplicate_results')}"
        )
    parts.append(f"refused or ignored by the simulator: {refused or 'none'}")
    parts.append(f"breaches: {row.get('breach_kinds') or 'none'}")
    if row.get("locked_out"):
        parts.append("locked out at the end")
    return "; ".join(parts)


HEADER = (
    "| sender | commands | accepted by Twitch | results | per s | wall s | to Twitch p50 ms "
    "| p99 ms | CPU s / 1,000 | breaches | lost |"
)
TITLES = {
    "verified": "## Verified bot, moderator in 10 channels (7,500 per 30 s)",
    "normal": "## Normal limits: not verified, not privileged, 10 channels (20 per 30 s, 1 s "
    "per channel), side by side",
}
NOTES = [
    "One simulator process for the whole run; each sender logs in as its own bot account "
    "(budgets apart). The simulator referees with Twitch's limits exactly, no margin. The "
    "simulator, nats-server and this bench's publisher and result reader share CPU 1; the "
    "sender (serve or node) has CPU 0.",
    "ingress-egress: the real `serve` (IRC transport: EGRESS_TRANSPORT=auto without a client "
    "id), commands published to internal.egress.v1 on nats-server; per s = commands / (first "
    "publish to last result read from the finalizer stream); latency from each command's "
    "`timestamp` to the simulator's accept time; CPU = the serve process's utime+stime "
    "(/proc) over that window; lost / missing results = commands without a result.",
    "tmi.js and @twurple/chat: `say()` for every message at once, their own pacing as shipped. "
    "tmi.js declares nothing (it has no option; say() writes at once). twurple: `botLevel` and "
    "`isAlwaysMod` (its only declarations) 'verified' and true in the verified case, 'none' "
    "and false in the normal case. twurple validates its token at id.twitch.tv with no option "
    "to change the URL: that one URL is pointed at the simulator's /oauth2/validate. Per s = "
    "messages accepted / (first say() to last accept); latency from the first say() call; "
    "lost = say() calls resolved minus messages the simulator accepted; CPU = the node "
    "process's from the first say() to 0.5 s after the last one resolved (its writes flushed).",
    "Normal case: the three senders run at the same time (each its own account), so the row's "
    "wall time is the limits' (20 per 30 s), not the machine's, and CPU s / 1,000 there is "
    "mostly ~65 s of waiting, not work. Each `serve` case has its own CLUSTER_NAME (so its "
    "own at-most-once ledger bucket): a sender restores the ledger's recent sends into its "
    "limiter whichever bot sent them, and with one shared bucket the normal case's bot waited "
    "~8 s for the verified bot's sends to leave the window.",
]


if __name__ == "__main__":
    main()
