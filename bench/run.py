"""``make bench``: ingress-egress side by side with the Twitch chat clients people use.

Every client is fed by the project's chat simulator (its own process, ``bench/sim_proc.py``)
over loopback with the same generated traffic, and runs a no-op handler that only counts and
records (id, text) for the integrity check. Peers are installed here, into bench/.peers/
(git-ignored): tmi.js and @twurple/chat with ``npm ci`` from bench/peers/package-lock.json,
TwitchIO 2.10, twitchAPI and py-spy into bench/.peers/venv from bench/peers/requirements.txt.

Cases: drained at full speed (msg/s, CPU s per 100k, peak RSS, integrity), paced at a fixed
rate (latency from the simulator's ``tmi-sent-ts`` to the handler / JetStream consumer), a
bare asyncio line reader as the ceiling, idle RSS with 1,000 channels and cold start to
``/readyz``. Writes bench/results/peers.json and peers.md.

    .venv/bin/python bench/run.py [--count 200000] [--rate 5000] [--seconds 10]
                                  [--only tmi.js,service-memory,...] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
if "--pure-python" in sys.argv:  # before bench_service imports ingress_egress
    os.environ["INGRESS_EGRESS_PURE_PYTHON"] = "1"

import nats as nats_py
from nats.js.errors import NotFoundError as StreamNotFound

from bench_service import BIN, free_port, spawn, stop

HERE = Path(__file__).parent
PEERS_SRC = HERE / "peers"
PEERS = HERE / ".peers"
PEER_PY = PEERS / "venv" / "bin" / "python"
RESULTS = HERE / "results"
PY = sys.executable
WS_PORT = 80  # twurple has no port option: WebSocket without TLS is port 80
CHANNELS = 10
# The real `ingress-egress serve` rows. Each case gets its own SPOOL_DIR (the default path
# is shared by every process on the machine); every other setting is the default.
SERVE_HEADLINE = "ingress-egress serve, memory bus, defaults (spool on)"
SERVE_NO_SPOOL = "ingress-egress serve, memory bus, SPOOL_DIR=off"
SERVE_STDOUT = "ingress-egress serve, defaults: stdout bus (spool on)"
SERVE_NATS = "ingress-egress serve, NATS JetStream, defaults (spool on)"
SERVICE_IN_PROCESS = (
    "ingress-egress (memory bus)",
    "ingress-egress (memory bus, WebSocket)",
    "ingress-egress (NATS JetStream, acked)",
    "ingress-egress (NATS JetStream, acked, spooled)",
)
IN_PROCESS = (  # driver, transport, spool, serve (None: in-process)
    ("memory", "tcp", False, None),
    ("memory", "ws", False, None),
    ("nats", "tcp", False, None),
    ("nats", "tcp", True, None),
)
# With two or more CPUs the measured client (a peer or the service) runs on CPU 0 and the
# traffic side (simulator, nats-server, JetStream consumer) on CPU 1: every figure is then
# what one core does, and the client does not compete with the server feeding it.
PIN = (
    {"client": "0", "traffic": "1"}
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    else {}
)


def pinned(argv: list[str], role: str) -> list[str]:
    cpu = PIN.get(role)
    return ["taskset", "-c", cpu, *argv] if cpu is not None else argv


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def install() -> None:
    """npm ci and the peers' venv, each redone only when its pinned inputs changed."""
    PEERS.mkdir(exist_ok=True)
    lock = [PEERS_SRC / "package.json", PEERS_SRC / "package-lock.json"]
    stamp = PEERS / ".npm-stamp"
    if not stamp.exists() or stamp.read_text() != digest(*lock):
        log("installing npm peers (npm ci) into bench/.peers ...")
        for path in lock:
            shutil.copy(path, PEERS / path.name)
        subprocess.run(
            ["npm", "ci", "--prefix", str(PEERS), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True,
        )
        stamp.write_text(digest(*lock))
    for script in PEERS_SRC.glob("*.mjs"):  # resolved from bench/.peers/node_modules
        shutil.copy(script, PEERS / script.name)
    reqs = PEERS_SRC / "requirements.txt"
    stamp = PEERS / ".venv-stamp"
    if not stamp.exists() or stamp.read_text() != digest(reqs):
        log("installing Python peers into bench/.peers/venv ...")
        subprocess.run([PY, "-m", "venv", "--clear", str(PEERS / "venv")], check=True)
        subprocess.run(
            [
                str(PEER_PY),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(reqs),
            ],
            check=True,
        )
        stamp.write_text(digest(reqs))


# -- the simulator ------------------------------------------------------------------------


class Simulator:
    """bench/sim_proc.py in its own process, recording what it sent to ``sent``."""

    def __init__(self, count: int, rate: float | None, ws_port: int | None, work: Path) -> None:
        self.sent = work / f"sent-{time.monotonic_ns()}.jsonl"
        argv = [PY, str(HERE / "sim_proc.py"), "--port", "0", "--out", str(self.sent)]
        argv += ["--count", str(count)]
        if ws_port is not None:
            argv += ["--ws-port", str(ws_port)]
        if rate:
            argv += ["--rate", str(rate)]
        self.proc = subprocess.Popen(
            pinned(argv, "traffic"), stdout=subprocess.PIPE, start_new_session=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if not line or line[0] != "ready":
            raise RuntimeError("simulator did not start (is port 80 free? are we root?)")
        self.port = int(line[1])

    def sent_pairs(self, timeout: float = 15.0) -> list[tuple[str, str]]:
        done = self.sent.with_suffix(".done")
        deadline = time.monotonic() + timeout
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not done.exists():
            return []
        with self.sent.open(encoding="utf-8") as fh:
            return [tuple(json.loads(line)) for line in fh]  # type: ignore[misc]

    def close(self) -> None:
        stop(self.proc)  # type: ignore[arg-type]


# -- checks and figures ---------------------------------------------------------------------


def integrity(sent: list[tuple[str, str]], got_file: Path) -> dict[str, Any]:
    got: list[tuple[str, str]] = []
    if got_file.exists():
        with got_file.open(encoding="utf-8") as fh:
            got = [tuple(json.loads(line)) for line in fh if line.strip()]  # type: ignore[misc]
    expected = dict(sent)
    ids = collections.Counter(i for i, _ in got)
    texts_checked = all(t is not None for _, t in got)
    corrupted = [
        (i, t, expected[i]) for i, t in got if t is not None and i in expected and expected[i] != t
    ]
    result = {
        "sent": len(sent),
        "received": len(got),
        "missing": sum(1 for i in expected if i not in ids),
        "duplicates": sum(n - 1 for n in ids.values() if n > 1),
        "unknown_ids": sum(1 for i in ids if i not in expected),
        "corrupted_texts": len(corrupted),
        "texts_checked": texts_checked,
    }
    if result["missing"]:
        seen = set(ids)
        lost = [t for i, t in sent if i not in seen]
        result["example_missing"] = [t[:120] for t in lost[:3]]
    result["intact"] = bool(sent) and not any(
        result[k] for k in ("missing", "duplicates", "unknown_ids", "corrupted_texts")
    )
    if corrupted:
        i, t, want = corrupted[0]
        result["example_corruption"] = {"id": i, "got": t[:120], "sent": want[:120]}
    return result


def percentiles(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    values = sorted(float(x) for x in path.read_text().split())
    if not values:
        return None

    def pick(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)

    return {
        "n": len(values),
        "p50": pick(0.5),
        "p99": pick(0.99),
        "p999": pick(0.999),
        "max": round(values[-1], 2),
    }


def last_json(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no figures in output: {output[-500:]!r}")


# -- the clients ----------------------------------------------------------------------------


def peer_argv(name: str, port: int, expected: int, out: Path) -> list[str]:
    common = ["--channels", str(CHANNELS), "--expected", str(expected), "--out", str(out)]
    ws = f"ws://127.0.0.1:{WS_PORT}"
    if name == "tmi.js":
        return [
            "node",
            str(PEERS / "tmi_peer.mjs"),
            "--host",
            "127.0.0.1",
            "--port",
            str(WS_PORT),
            *common,
        ]
    if name == "@twurple/chat":
        return ["node", str(PEERS / "twurple_peer.mjs"), "--host", "127.0.0.1", *common]
    if name == "TwitchIO":
        return [str(PEER_PY), str(PEERS_SRC / "twitchio_peer.py"), "--url", ws, *common]
    if name == "twitchAPI":
        return [str(PEER_PY), str(PEERS_SRC / "twitchapi_peer.py"), "--url", ws, *common]
    if name == "bare asyncio reader":
        return [PY, str(PEERS_SRC / "bare_reader.py"), "--port", str(port), *common]
    raise ValueError(name)


PEER_NAMES = ("bare asyncio reader", "tmi.js", "@twurple/chat", "TwitchIO", "twitchAPI")


def run_peer(name: str, count: int, rate: float | None, work: Path) -> dict[str, Any]:
    ws = None if name == "bare asyncio reader" else WS_PORT
    sim = Simulator(count, rate, ws, work)
    out = work / f"got-{time.monotonic_ns()}.jsonl"
    try:
        proc = subprocess.run(
            pinned(peer_argv(name, sim.port, count, out), "client"),
            capture_output=True,
            text=True,
            timeout=max(120, count / 2000),
            cwd=PEERS,
        )
        if proc.returncode:
            log(proc.stderr[-2000:])
        figures = last_json(proc.stdout)
        sent = sim.sent_pairs()
    finally:
        sim.close()
    return figures | {
        "integrity": integrity(sent, out),
        "latency_ms": percentiles(Path(f"{out}.lat")),
    }


# -- ingress-egress ---------------------------------------------------------------------------


class Nats:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-nats-")
        self.port = free_port()
        argv = [str(BIN / "nats-server"), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        self.proc = spawn(pinned([*argv, "-sd", self.dir], "traffic"), self.port)
        self.url = f"nats://127.0.0.1:{self.port}"

    def delete_stream(self, name: str) -> None:
        """Drop a finished case's stream, so the next case starts on an empty server.

        nats-server keeps recent message blocks in its Go heap; earlier cases' streams left in
        place made its GC marks on the shared traffic core slow the cases after them (the
        README has the A/B). Best effort: called from ``finally``, so a failure here is logged
        and does not hide the case's own error.
        """

        async def quiet(_: Exception) -> None:
            pass  # the failure is raised by connect and logged below, once

        async def delete() -> None:
            nc = await nats_py.connect(self.url, max_reconnect_attempts=1, error_cb=quiet)
            try:
                await nc.jetstream().delete_stream(name)
            except StreamNotFound:
                pass
            finally:
                await nc.close()

        try:
            asyncio.run(asyncio.wait_for(delete(), 15))
        except Exception as exc:
            log(f"could not delete stream {name}: {exc!r}")

    def close(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_service(
    driver: str,
    transport: str,
    count: int,
    rate: float | None,
    work: Path,
    nats: Nats | None,
    profile: Path | None = None,
    spool: bool = False,
    serve: list[str] | None = None,
) -> dict[str, Any]:
    """One service case: in-process (bench/service_case.py, tuned window), or with
    ``serve`` (NAME=VALUE settings beyond the defaults) the real ``ingress-egress serve``
    process measured from outside (bench/serve_case.py)."""
    sim = Simulator(count, rate, WS_PORT if transport == "ws" else None, work)
    out = work / f"svc-{time.monotonic_ns()}.jsonl"
    tag = f"b{time.monotonic_ns()}"
    stream, prefix = tag.upper(), f"{tag}."
    url = f"ws://127.0.0.1:{WS_PORT}" if transport == "ws" else f"irc://127.0.0.1:{sim.port}"
    if serve is not None:
        argv = [PY, str(HERE / "serve_case.py"), "--work", str(work)]
        argv += [f"--env={item}" for item in serve]
        if "client" in PIN:
            argv += ["--cpu", PIN["client"]]
    else:
        argv = [PY, str(HERE / "service_case.py"), "--mode", "paced" if rate else "drain"]
    argv += ["--driver", driver, "--url", url, "--expected", str(count)]
    if profile is None:
        argv += ["--out", str(out)]
    argv += ["--stream", stream, "--prefix", prefix]
    if spool:  # every envelope through the write-ahead spool
        where = str(work / f"spool-{tag}")
        argv += [f"--env=SPOOL_DIR={where}"] if serve is not None else ["--spool-dir", where]
    if nats is not None:
        argv += ["--nats-url", nats.url]
    consumer_out = work / f"js-{time.monotonic_ns()}.jsonl"

    def consumer() -> subprocess.Popen[str]:
        assert nats is not None
        return subprocess.Popen(
            pinned(
                [
                    PY,
                    str(HERE / "js_consumer.py"),
                    "--nats-url",
                    nats.url,
                    "--stream",
                    stream,
                    "--subject",
                    f"{prefix}internal.ingress.v1",
                    "--expected",
                    str(count),
                    "--out",
                    str(consumer_out),
                    "--kind",
                    "plain" if rate else "ordered",
                ],
                "traffic",
            ),
            stdout=subprocess.PIPE,
            text=True,
        )

    try:
        js = consumer() if (driver == "nats" and rate) else None
        if js is not None:
            assert js.stdout is not None
            js.stdout.readline()  # "ready": subscribed before the service publishes
        if profile is not None:  # py-spy starts the case itself, so it sees all of it
            spy = [str(PEERS / "venv" / "bin" / "py-spy"), "record", "-f", "raw", "-r", "250"]
            argv = [*spy, "-o", str(profile), "--", *argv]
        # serve_case.py watches from the traffic core and pins serve itself to the client's.
        proc = subprocess.Popen(
            pinned(argv, "traffic" if serve is not None else "client"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdout, stderr = proc.communicate(timeout=max(180, count / 2000))
        if proc.returncode:
            log(stderr[-2000:])
        figures = last_json(stdout)
        if driver == "nats" and js is None:
            js = consumer()  # drain the stream after the run, for the integrity check
        if js is not None:
            js.communicate(timeout=120)
        got = consumer_out if driver == "nats" else out
        sent = sim.sent_pairs()
    finally:
        sim.close()
        if nats is not None and driver == "nats":
            nats.delete_stream(stream)
    lat = percentiles(Path(f"{got}.lat")) if rate else None
    # The service's own histogram: Twitch receipt -> bus ack (memory: the bus's send).
    figures["ack_latency_ms"] = figures.get("latency_ms")
    # serve's memory bus is inside the process: nothing to compare from outside.
    unchecked = serve is not None and driver == "memory"
    figures["integrity"] = None if unchecked else integrity(sent, got)
    figures["latency_ms"] = lat
    figures["count"] = count
    figures["wall_s"] = figures["messages"] / figures["msgs_per_s"]
    return figures


def idle_service(channels: int, work: Path, nats: Nats) -> dict[str, Any]:
    sim = Simulator(0, None, None, work)
    tag = f"idle{time.monotonic_ns()}"
    try:
        proc = subprocess.run(
            [
                PY,
                str(HERE / "service_case.py"),
                "--mode",
                "idle",
                "--driver",
                "nats",
                "--nats-url",
                nats.url,
                "--stream",
                tag.upper(),
                "--prefix",
                f"{tag}.",
                "--url",
                f"irc://127.0.0.1:{sim.port}",
                "--channels",
                str(channels),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        return last_json(proc.stdout)
    finally:
        sim.close()
        nats.delete_stream(tag.upper())


def cold_start(driver: str, nats: Nats, work: Path, repeats: int = 3) -> dict[str, Any]:
    """Process start of ``ingress-egress serve`` -> first 200 from /readyz (10 channels)."""
    times = []
    for _ in range(repeats):
        sim = Simulator(0, None, None, work)
        port = free_port()
        env = dict(os.environ)
        env.update(
            MESSAGE_BUS_DRIVER=driver,
            NATS_URL=nats.url,
            NATS_STREAM=f"COLD{time.monotonic_ns()}",
            BUS_PREFIX=f"cold{time.monotonic_ns()}.",
            TWITCH_IRC_URL=f"irc://127.0.0.1:{sim.port}",
            TWITCH_CHANNELS=",".join(f"bench{i}" for i in range(CHANNELS)),
            PORT=str(port),
            HOST="127.0.0.1",
            LOG_LEVEL="warning",
        )
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "ingress-egress"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        ready = None
        while time.perf_counter() - t0 < 30:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        ready = time.perf_counter() - t0
                        break
            except OSError:
                pass
            time.sleep(0.005)
        stop(proc)  # type: ignore[arg-type]
        sim.close()
        times.append(ready)
    ok = [t for t in times if t is not None]
    return {
        "runs_s": [round(t, 3) if t else None for t in times],
        "median_s": (round(sorted(ok)[len(ok) // 2], 3) if ok else None),
    }


# -- profile --------------------------------------------------------------------------------


def summarize_profile(path: Path, top: int = 15) -> list[dict[str, Any]]:
    """Self time by leaf frame, from py-spy's raw (collapsed) output."""
    if not path.exists():
        return []
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "_run_once" not in stack:
            continue  # only the running service: not imports, start-up or the checks after
        total += int(n)
        leaf = stack.split(";")[-1]
        leaves[leaf] += int(n)
    return [{"frame": frame, "share": round(n / total, 3)} for frame, n in leaves.most_common(top)]


def median_paced(case: Any, repeat: int) -> dict[str, Any]:
    """Run a paced ``case()`` ``repeat`` times; the run with the median p99, listing all."""
    runs = [case() for _ in range(max(1, repeat))]
    runs.sort(key=lambda r: (r.get("latency_ms") or {}).get("p99", float("inf")))
    median = runs[len(runs) // 2]
    median["runs_p99_ms"] = [(r.get("latency_ms") or {}).get("p99") for r in runs]
    return median


def median_run(case: Any, repeat: int) -> dict[str, Any]:
    """Run ``case()`` ``repeat`` times; the run with the median msg/s, listing them all."""
    runs = [case() for _ in range(max(1, repeat))]
    runs.sort(key=lambda r: r["msgs_per_s"])
    median = runs[len(runs) // 2]
    median["runs_msgs_per_s"] = [r["msgs_per_s"] for r in runs]
    return median


# -- report ---------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"

    def pkg(path: str) -> str:
        try:
            return json.loads((PEERS / "node_modules" / path / "package.json").read_text())[
                "version"
            ]
        except OSError:
            return "?"

    peer_pip = out([str(PEER_PY), "-m", "pip", "list", "--format=json"])
    pips = {p["name"].lower(): p["version"] for p in json.loads(peer_pip or "[]")}
    own = out([PY, "-c", "import importlib.metadata as m;print(m.version('ingress-egress'))"])
    commit = out(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
    if out(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "src"]):
        commit += " + uncommitted changes in src/"
    native = out([PY, "-c", NATIVE_PROBE])
    return {
        "ingress-egress": f"{own} ({commit})",
        "ingress-egress hot path": native or "?",
        "python": platform.python_version(),
        "node": out(["node", "--version"]),
        "npm": out(["npm", "--version"]),
        "tmi.js": pkg("tmi.js"),
        "@twurple/chat": pkg("@twurple/chat"),
        "twitchio": pips.get("twitchio", "?"),
        "twitchAPI": pips.get("twitchapi", "?"),
        "aiohttp (peers' venv)": pips.get("aiohttp", "?"),
        "py-spy": pips.get("py-spy", "?"),
        "nats-server": out([str(BIN / "nats-server"), "--version"]),
        "kernel": platform.release(),
    }


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "arch": platform.machine()}


def fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def write_report(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    m, v, cfg = results["machine"], results["versions"], results["config"]
    lines = [
        "# ingress-egress vs. Twitch chat clients",
        "",
        f"{results['date']} · {m['cpu']}, {m['cores']} cores ({m['arch']}) · "
        + " · ".join(f"{k} {val}" for k, val in v.items()),
        "",
        f"Simulator in its own process on loopback, {cfg['channels']} channels, the same "
        f"generated traffic for all; drained: {cfg['count']:,} messages; paced: "
        f"{cfg['rate']:,.0f} msg/s for {cfg['seconds']:g} s, {cfg.get('repeat', 1)} runs of "
        "each. Latency = receipt time - the simulator's `tmi-sent-ts` tag (ms resolution, "
        "set when the batch is built, just before the socket write), so every figure carries "
        "up to +1 ms of truncation.",
        "",
        "| client | transport | msg/s drained (median, range) | x ceiling | CPU s / 100k "
        "| peak RSS MB "
        "| intact | p50 ms | p99 ms | p99.9 ms |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    ceiling = results["ceiling_msgs_per_s"]
    lines[4:4] = headline(results)
    for row in results["rows"]:
        d, p = row.get("drain") or {}, row.get("paced") or {}
        lat = p.get("latency_ms") or {}
        integ = d.get("integrity") or {}
        if integ.get("intact"):
            intact = "yes" if integ.get("texts_checked", True) else "yes (ids; texts at 5k/s)"
        elif integ:
            bits = [
                f"{integ[k]:,} {k.replace('_', ' ')}"
                for k in ("missing", "duplicates", "unknown_ids", "corrupted_texts")
                if integ.get(k)
            ]
            intact = "**no**: " + ", ".join(bits)
        elif (d.get("counters") or {}).get("failed"):  # serve's memory bus: its own count
            intact = f"**no**: {d['counters']['failed']:,} dropped or refused (counted)"
        else:
            intact = "-"
        rate = d.get("msgs_per_s")
        spread = d.get("runs_msgs_per_s") or []
        span = f" ({min(spread):,}-{max(spread):,})" if len(spread) > 1 else ""
        lines.append(
            f"| {row['name']} | {row['transport']} | {fmt(rate)}{span} | "
            f"{fmt(rate / ceiling if rate and ceiling else None, '.2f')} | "
            f"{fmt(d.get('cpu_s_per_100k'), '.2f')} | {fmt(d.get('rss_peak_mb'), '.1f')} | "
            f"{intact} | {fmt(lat.get('p50'), '.2f')} | {fmt(lat.get('p99'), '.2f')} | "
            f"{fmt(lat.get('p999'), '.2f')} |"
        )
    lines += ["", "Paced runs (p99 of each run, the median run is in the table):", ""]
    for row in results["rows"]:
        p = row.get("paced") or {}
        runs = ", ".join(fmt(x, ".2f") for x in p.get("runs_p99_ms") or [])
        ack = p.get("ack_latency_ms") if row["kind"] == "service" else None
        extra = (
            f"; inside the service, receipt → bus ack: p50 {fmt(ack.get('p50'), '.2f')}, "
            f"p99 {fmt(ack.get('p99'), '.2f')}, p99.9 {fmt(ack.get('p999'), '.2f')} ms"
            if ack
            else ""
        )
        if runs:
            lines.append(f"- {row['name']}: p99 {runs} ms{extra}")
    for row in results["rows"]:
        if row.get("error"):
            lines.append(f"\n{row['name']}: **not measured**: {row['error']}")
    idle, cold = results.get("idle") or {}, results.get("cold_start") or {}
    lines += [
        "",
        f"**Idle** (ingress-egress, NATS bus, {idle.get('channels_requested', '?')} channels "
        f"joined, no traffic): RSS {idle.get('rss_mb', '-')} MB (peak "
        f"{idle.get('rss_peak_mb', '-')} MB); all joined {idle.get('ready_after_start_s', '-')} s "
        "after `start()` (JoinLimiter raised to a verified bot's 2,000/10 s; Twitch's default "
        "20/10 s would take 8+ minutes).",
        f"**Cold start** (`ingress-egress serve`, NATS bus, {CHANNELS} channels, process start "
        f"→ first `/readyz` 200): median {cold.get('median_s', '-')} s, runs "
        f"{cold.get('runs_s', '-')}.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    for name, frames in (results.get("profiles") or {}).items():
        lines += ["", f"## Where the time goes: {name} (py-spy, self time by frame)", ""]
        lines += [f"- {f['share']:.1%} `{f['frame']}`" for f in frames]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in results["notes"]]
    (RESULTS / "peers.md").write_text("\n".join(lines) + "\n")


def headline(results: dict[str, Any]) -> list[str]:
    """The real ``serve`` process against the fastest peer of the same run, the other
    service figures beside it."""
    rows = {r["name"]: r for r in results["rows"]}
    peers = [r for r in results["rows"] if r["kind"] == "peer" and r.get("drain")]
    fastest = max(peers, key=lambda r: r["drain"]["msgs_per_s"], default=None)
    if fastest is None:
        return []
    best = fastest["drain"]["msgs_per_s"]
    parts = []
    for name in (SERVE_HEADLINE, SERVE_NO_SPOOL, SERVE_STDOUT, SERVE_NATS, *SERVICE_IN_PROCESS):
        drain = (rows.get(name) or {}).get("drain") or {}
        if drain.get("msgs_per_s"):
            ratio = drain["msgs_per_s"] / best
            parts.append(
                f"{name}: {drain['msgs_per_s']:,} msg/s, **{ratio:.2f}x** "
                f"({drain.get('cpu_s_per_100k', '-')} CPU-s per 100k)"
            )
    if not parts:
        return []
    return [
        f"**Headline** (drained, same run, against {fastest['name']} at {best:,} msg/s): "
        + parts[0],
        "",
        *[f"- {part}" for part in parts[1:]],
        "",
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {r["name"]: r for r in results["rows"]}
    peers = [r for r in results["rows"] if r["kind"] == "peer" and r.get("drain")]
    fastest = max(peers, key=lambda r: r["drain"]["msgs_per_s"], default=None)
    best = fastest["drain"]["msgs_per_s"] if fastest else None
    who = fastest["name"] if fastest else "?"
    out = []

    def svc(name: str, part: str) -> dict[str, Any]:
        return (rows.get(name) or {}).get(part) or {}

    serve = svc(SERVE_HEADLINE, "drain").get("msgs_per_s") or 0
    out.append(
        {
            "target": "the real `serve` process, defaults (spool on; memory bus) ≥ 3x the "
            "fastest peer's receive rate, same run",
            "measured": f"{serve:,} msg/s vs 3 x {best or 0:,} ({who}) = {3 * (best or 0):,}",
            "met": bool(best) and serve >= 3 * best,
        }
    )
    mem = max(
        (
            svc(n, "drain").get("msgs_per_s") or 0
            for n in rows
            if n.startswith("ingress-egress (memory")
        ),
        default=0,
    )
    out.append(
        {
            "target": "in-process harness: receive + envelope (memory bus, 100k window, no "
            "spool) ≥ 3x the fastest peer's receive rate",
            "measured": f"{mem:,} msg/s vs 3 x {best or 0:,} ({who}) = {3 * (best or 0):,}",
            "met": bool(best) and mem >= 3 * best,
        }
    )
    nats = svc("ingress-egress (NATS JetStream, acked)", "drain")
    rate, cpu = nats.get("msgs_per_s") or 0, nats.get("msgs_per_cpu_s") or 0
    out.append(
        {
            "target": "full pipeline (JetStream, acked) faster than the fastest peer "
            "and ≥ 30,000 msg/s on one core",
            "measured": f"{rate:,} msg/s wall, {cpu:,} msg per CPU-s of the service process "
            f"(fastest peer {best or 0:,})",
            "met": bool(best) and rate > best and rate >= 30_000 and cpu >= 30_000,
        }
    )
    paced = svc("ingress-egress (NATS JetStream, acked)", "paced")
    lat = paced.get("latency_ms") or {}
    out.append(
        {
            "target": f"p99 < 25 ms at {results['config']['rate']:,.0f} msg/s "
            "(simulator send → JetStream consumer receipt)",
            "measured": f"p99 {lat.get('p99', '-')} ms (median of runs "
            f"{paced.get('runs_p99_ms', '-')})",
            "met": lat.get("p99") is not None and lat["p99"] < 25,
        }
    )
    ack = paced.get("ack_latency_ms") or {}
    out.append(
        {
            "target": f"p99 < 25 ms at {results['config']['rate']:,.0f} msg/s "
            "(inside the service: Twitch receipt → JetStream ack)",
            "measured": f"p50 {ack.get('p50', '-')} ms, p99 {ack.get('p99', '-')} ms",
            "met": ack.get("p99") is not None and ack["p99"] < 25,
        }
    )
    idle = results.get("idle") or {}
    out.append(
        {
            "target": "< 100 MB RSS with 1,000 idle channels",
            "measured": f"{idle.get('rss_mb', '-')} MB",
            "met": bool(idle.get("rss_mb")) and idle["rss_mb"] < 100,
        }
    )
    cold = (results.get("cold_start") or {}).get("median_s")
    out.append(
        {
            "target": "ready within 1.5 s of start",
            "measured": f"{cold} s (median)",
            "met": cold is not None and cold < 1.5,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="messages per drained case")
    parser.add_argument("--rate", type=float, default=5000, help="paced cases: msg/s")
    parser.add_argument("--seconds", type=float, default=10, help="paced cases: duration")
    parser.add_argument("--idle-channels", type=int, default=1000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="drained cases: runs each, the median is reported"
    )
    parser.add_argument("--only", default="", help="comma-separated row names (substring match)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--serve-env",
        action="append",
        default=[],
        help="NAME=VALUE for every real-serve row (an A/B of a setting; repeatable)",
    )
    parser.add_argument(
        "--pure-python",
        action="store_true",
        help="run ingress-egress without its C fast path (INGRESS_EGRESS_PURE_PYTHON=1)",
    )
    args = parser.parse_args()
    if args.pure_python:
        os.environ["INGRESS_EGRESS_PURE_PYTHON"] = "1"  # inherited by every child process
    if os.geteuid() != 0:
        log("note: not root; the simulator needs port 80 for twurple (no port option)")
    preflight()
    install()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    paced = int(args.rate * args.seconds)
    wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]

    def selected(name: str) -> bool:
        return not wanted or any(w in name.lower() for w in wanted)

    rows: list[dict[str, Any]] = []
    for name in PEER_NAMES:
        if not selected(name):
            continue
        row: dict[str, Any] = {
            "name": name,
            "kind": "ceiling" if name.startswith("bare") else "peer",
            "transport": "TCP" if name.startswith("bare") else "WebSocket",
        }
        try:
            log(f"{name}: drain {args.count:,} ...")

            def peer_drain(name: str = name) -> dict[str, Any]:
                drain = run_peer(name, args.count, None, work)
                drain["msgs_per_s"] = round(drain["count"] / drain["wall_s"])
                drain["cpu_s_per_100k"] = round(drain["cpu_s"] / max(1, drain["count"]) * 1e5, 3)
                return drain

            row["drain"] = median_run(peer_drain, args.repeat)
            log(f"{name}: {args.rate:,.0f} msg/s for {args.seconds:g} s ...")
            row["paced"] = median_paced(
                lambda name=name: run_peer(name, paced, args.rate, work), args.repeat
            )
        except Exception as exc:  # one peer failing must not lose the others' figures
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            log(f"{name}: {row['error']}")
        rows.append(row)

    nats = Nats()
    profiles: dict[str, Any] = {}
    try:
        # The real `ingress-egress serve` first (the headline: what a deployment runs), then
        # the in-process harness (window raised to the drain's size, 4,096 acks in flight).
        cases: list[tuple[str, str, str, bool, list[str] | None]] = [
            (SERVE_HEADLINE, "memory", "tcp", True, []),
            (SERVE_NO_SPOOL, "memory", "tcp", False, ["SPOOL_DIR=off"]),
            (SERVE_STDOUT, "default", "tcp", True, []),
            (SERVE_NATS, "nats", "tcp", True, []),
            *((name, *case) for name, case in zip(SERVICE_IN_PROCESS, IN_PROCESS, strict=True)),
        ]
        for name, driver, transport, spool, serve in cases:
            if not selected(name):
                continue
            row = {
                "name": name,
                "kind": "service",
                "transport": transport.upper().replace("WS", "WebSocket"),
            }
            try:
                log(f"{name}: drain {args.count:,} ...")
                row["drain"] = median_run(
                    lambda d=driver, t=transport, s=spool, v=serve: run_service(
                        d,
                        t,
                        args.count,
                        None,
                        work,
                        nats,
                        spool=s,
                        serve=None if v is None else [*v, *args.serve_env],
                    ),
                    args.repeat,
                )
                if transport == "tcp" and serve is None:
                    log(f"{name}: {args.rate:,.0f} msg/s for {args.seconds:g} s ...")
                    row["paced"] = median_paced(
                        lambda d=driver, t=transport, s=spool: run_service(
                            d, t, paced, args.rate, work, nats, spool=s
                        ),
                        args.repeat,
                    )
                    if not args.no_profile and not spool:
                        log(f"{name}: profiling a drain with py-spy ...")
                        prof = work / f"profile-{driver}.txt"
                        run_service(driver, transport, args.count, None, work, nats, prof)
                        profiles[name] = summarize_profile(prof)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                log(f"{name}: {row['error']}")
            rows.append(row)
        idle: dict[str, Any] = {}
        cold: dict[str, Any] = {}
        if selected("idle"):
            log(f"idle: {args.idle_channels:,} channels ...")
            try:
                idle = idle_service(args.idle_channels, work, nats)
            except Exception as exc:
                idle = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            idle["channels_requested"] = args.idle_channels
        if selected("cold"):
            log("cold start ...")
            try:
                cold = cold_start("nats", nats, work)
            except Exception as exc:
                cold = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        nats.close()
    ceiling = next((r for r in rows if r["kind"] == "ceiling" and r.get("drain")), None)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "versions": versions(),
        "config": {
            "count": args.count,
            "rate": args.rate,
            "seconds": args.seconds,
            "channels": CHANNELS,
            "idle_channels": args.idle_channels,
            "repeat": args.repeat,
            "pure_python": args.pure_python,
            "cpu_pinning": PIN or "none (fewer than 2 CPUs or no taskset)",
        },
        "ceiling_msgs_per_s": ceiling["drain"]["msgs_per_s"] if ceiling else None,
        "rows": rows,
        "idle": idle,
        "cold_start": cold,
        "profiles": profiles,
        "notes": NOTES,
        "bench_wall_s": round(time.monotonic() - started),
    }
    results["targets"] = targets(results)
    write_report(results)
    shutil.rmtree(work, ignore_errors=True)
    print((RESULTS / "peers.md").read_text())


# The codec the service would choose (service.hot_path), and why not C when it is Python.
NATIVE_PROBE = """
import os
from ingress_egress import _native as n
from ingress_egress.config import pure_python
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.runtime.debug import hot_path
from ingress_egress.sources.irc.codec import make_codec
path = hot_path(make_codec(EnvelopeBuilder(), pure=pure_python(os.environ)))
print(path + (f" ({n.IMPORT_ERROR})" if n.IMPORT_ERROR and path == "pure Python" else ""))
"""


def preflight() -> None:
    """The service must import: other work on src/ (a native build) can break it."""
    proc = subprocess.run([PY, "-c", "import ingress_egress.service"], capture_output=True)
    if proc.returncode:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit("bench: ingress_egress does not import here:\n  " + "\n  ".join(tail))


NOTES = [
    "Peers are driven unmodified. tmi.js: `connection.server/port/secure:false`; "
    "@twurple/chat: `hostName`, `ssl: false` (no port option: the simulator's WebSocket is on "
    "port 80); TwitchIO 2.10: module constant `twitchio.websocket.HOST`, and its start-up "
    "token validation replaced offline on the client's HTTP object; twitchAPI: "
    "`Chat(connection_url=...)`, `set_user_authentication(validate=False)`, `username` set "
    "instead of `await Chat()` (a Helix call), and `auth_base_url` pointed at a loopback "
    "stand-in for `/oauth2/validate` (Chat validates the token before every login).",
    "All peers read over WebSocket (that is what they speak); ingress-egress is measured over "
    "TCP (its production transport, TLS aside) and, with the memory bus, also over WebSocket.",
    "msg/s drained = messages / (last receipt - first receipt) in the client's process; CPU = "
    "the client process's user+system CPU over that window; peak RSS = VmHWM / maxRSS of the "
    "client process. For ingress-egress the window ends at the last bus ack.",
    "Integrity: every (id, text) the handler (or the bus / JetStream consumer) saw is compared "
    "with what the simulator recorded as written to the socket; `/me` texts are compared in "
    "wire form (`\\x01ACTION ...\\x01`).",
    "Peak RSS of the peers and of the bare reader includes what the bench makes them record "
    "for the integrity check (every (id, text) pair; the bare reader keeps every raw line), "
    "tens to hundreds of MB at 200k messages; ingress-egress with NATS records nothing "
    "in-process, with the memory bus only the ids (drained) or the envelopes (paced).",
    "NATS latency is measured at a separate JetStream consumer process (push consumer, "
    "AckPolicy none, so it adds no ack traffic); memory-bus latency at the bus's `send`. "
    "The service's own receipt → bus ack histogram is listed under the table. One "
    "nats-server serves all cases; each case's stream is deleted when the case ends, so "
    "every case starts on an empty server (left in place, earlier drains grew its Go heap "
    "to ~336 MB and slowed the cases after them).",
    "The simulator and the JetStream consumer are the measuring instruments: they run with "
    "the cyclic GC frozen and off (their per-message records would otherwise trigger "
    "collections whose pauses count as the client's latency). Drained runs use a prebuilt "
    "stream (generated and encoded before the first write, so the simulator only writes: "
    "without it the simulator's Python capped the bare reader at ~100k msg/s); paced runs "
    "generate each message when due and write at most every 1 ms (~5 messages a write at "
    "5,000 msg/s), `tmi-sent-ts` stamped as each write's batch is built, from chat templates "
    "built at the JOIN in paced runs (building them lazily put ~60 us per message of "
    "simulator work on the traffic core during the first seconds, which showed up as "
    "everyone's latency).",
    "CPU pinning (taskset, when the machine has 2+ CPUs): the measured client (each peer, the "
    "bare reader, ingress-egress) on CPU 0; the simulator, nats-server and the JetStream "
    "consumer on CPU 1. Every msg/s figure is therefore what one core does.",
    "`spooled`: the deployed configuration, every envelope also written to the write-ahead "
    "spool (SPOOL_FSYNC_MS 50; its writer thread shares CPU 0).",
]


if __name__ == "__main__":
    main()
