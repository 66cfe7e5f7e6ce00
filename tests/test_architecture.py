"""architecture.yaml must describe the code as it is: routes, variables, defaults, topics."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import yaml

from ingress_egress.config import DLQ_TOPIC, INGRESS_TOPIC, Settings
from ingress_egress.envelope.types import EVENT_TYPES
from ingress_egress.http import build_app

ROOT = Path(__file__).resolve().parents[1]
DOC = yaml.safe_load((ROOT / "architecture.yaml").read_text())
CONFIG_SOURCE = (ROOT / "src" / "ingress_egress" / "config.py").read_text()
FACTORY_SOURCE = (ROOT / "src" / "ingress_egress" / "credentials" / "factory.py").read_text()
NOT_VARIABLES = {"INFO", "UTC", "INGRESS"}  # upper-case string literals that are values


class _View:
    def readiness(self) -> list[str]:
        return []

    def debug_snapshot(self) -> dict:
        return {}

    def loop_lag_s(self) -> float:
        return 0.0


def test_routes_match_the_app() -> None:
    routes = {route.path for route in build_app(_View()).routes}
    assert {entry["path"] for entry in DOC["http"]} == routes


def test_every_variable_the_code_reads_is_declared_and_vice_versa() -> None:
    pattern = r'"([A-Z][A-Z0-9_]{2,})"'
    read = set(re.findall(pattern, CONFIG_SOURCE + FACTORY_SOURCE)) - NOT_VARIABLES
    declared = set(DOC["env"])
    assert read <= declared, f"undeclared: {sorted(read - declared)}"
    # read by a library itself (google-cloud-pubsub, the OpenTelemetry SDK and exporters)
    read_by_libraries = {name for name, spec in DOC["env"].items() if spec.get("readBy")}
    assert "PUBSUB_EMULATOR_HOST" in read_by_libraries
    assert declared - read == read_by_libraries
    assert not read & read_by_libraries


def test_secret_variables_are_marked_secret() -> None:
    from ingress_egress.config import SECRET_VARIABLES

    marked = {name for name, spec in DOC["env"].items() if spec.get("secret")}
    assert marked >= SECRET_VARIABLES


def test_defaults_match_settings() -> None:
    settings = Settings.from_env({})
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name, spec in DOC["env"].items():
        field = name.lower()
        if field not in fields or "default" not in spec:
            continue
        value = getattr(settings, field)
        if isinstance(value, tuple):
            value = ",".join(value)
        if not isinstance(value, (str, int, bool)):
            value = str(value)
        expected = spec["default"]
        if isinstance(value, bool):
            expected = str(expected).lower() == "true"
        elif isinstance(value, str) and name in ("MESSAGE_BUS_DRIVER", "LOG_LEVEL"):
            value, expected = value.lower(), str(expected).lower()
        assert value == expected, name


def test_topics_and_types() -> None:
    published = {topic["name"]: topic for topic in DOC["topics"]["publishes"]}
    assert set(published) == {INGRESS_TOPIC, DLQ_TOPIC}
    assert tuple(published[INGRESS_TOPIC]["types"]) == EVENT_TYPES
    assert (ROOT / published[INGRESS_TOPIC]["schema"]).is_dir()


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in tests/support/; a test module importing another runs (and
    couples to) that module's tests."""
    tests = Path(__file__).parent
    offenders = [
        f"{path.name}: {line.strip()}"
        for path in sorted(tests.glob("test_*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*(from tests(\.test_\w+)? import|import tests\.test_)", line)
        and not re.match(r"\s*from tests import support\b", line)
    ]
    assert offenders == []


def test_the_pipeline_knows_envelopes_not_irc_or_twitch() -> None:
    """Data flows one way (source -> envelope -> pipeline -> bus): the pipeline takes ready
    envelopes, so no module of it imports the IRC protocol, Twitch's messages or a source."""
    pipeline = ROOT / "src" / "ingress_egress" / "pipeline"
    offenders = [
        f"{path.name}: {line.strip()}"
        for path in sorted(pipeline.glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*(from|import) ingress_egress\.(protocol|twitch|sources)\b", line)
    ]
    assert offenders == []


def test_the_extension_is_chosen_in_one_place_and_rebinds_nothing() -> None:
    """uvicorn's ``auto`` pattern: the C extension is loaded by ``_native`` and used only by
    the IRC codec's ``make_codec`` / ``NativeCodec`` and by the NATS driver's framing; no
    module rebinds its own names to C at import (there is no registration API left)."""
    src = ROOT / "src" / "ingress_egress"
    users = sorted(
        path.relative_to(src).as_posix()
        for path in src.rglob("*.py")
        if "_native" not in path.parts
        and re.search(r"import _native\b|\b_native\.", path.read_text(encoding="utf-8"))
    )
    assert users == [
        "bus/nats.py",
        "sources/irc/codec/__init__.py",
        "sources/irc/codec/native.py",
    ]
    native = (src / "_native" / "__init__.py").read_text(encoding="utf-8")
    assert "def configure" not in native and "ACTIVE" not in native


def test_the_import_layers_hold_and_make_lint_checks_them() -> None:
    """The import contract ([tool.importlinter] in pyproject.toml: layers, no cycles, the
    simulator standalone) is run by ``make lint`` and holds for the code as it is."""
    lint = re.search(r"^lint:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S)
    assert lint is not None and "lint-imports" in lint.group(0)
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(linter), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
