"""architecture.yaml must describe the code as it is: routes, variables, defaults, topics."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from ingress_egress.bus.egress_protocol import COMMAND_TOPIC as EGRESS_TOPIC
from ingress_egress.bus.egress_protocol import DLQ_TOPIC as EGRESS_DLQ_TOPIC
from ingress_egress.config import DLQ_TOPIC, INGRESS_TOPIC, SECRET_VARIABLES, VARIABLES, Settings
from ingress_egress.egress.command import COMMAND_TYPE
from ingress_egress.envelope.types import EVENT_TYPES
from ingress_egress.http import build_app

ROOT = Path(__file__).resolve().parents[1]
DOC = yaml.safe_load((ROOT / "architecture.yaml").read_text())


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


def test_every_variable_of_the_table_is_declared_and_vice_versa() -> None:
    """The table (``config/table.py``) is every variable the service reads; architecture.yaml
    declares those, plus the ones only a library reads (``readBy``)."""
    table = {variable.name for variable in VARIABLES}
    declared = set(DOC["env"])
    read_by_libraries = {name for name, spec in DOC["env"].items() if spec.get("readBy")}
    assert "OTEL_SERVICE_NAME" in read_by_libraries
    assert declared - read_by_libraries == table, sorted(table ^ (declared - read_by_libraries))
    assert not table & read_by_libraries


def test_only_config_reads_the_environment() -> None:
    """Other modules hand ``os.environ`` to ``config`` at most; the simulator is a tool."""
    src = ROOT / "src" / "ingress_egress"
    readers = sorted(
        path.relative_to(src).as_posix()
        for path in src.rglob("*.py")
        if path.parts[-2] not in ("config", "simulator")
        and re.search(r"environ\.get|environ\[|getenv\(", path.read_text(encoding="utf-8"))
    )
    assert readers == []


def test_secret_variables_are_marked_secret() -> None:
    for variable in VARIABLES:
        assert bool(DOC["env"][variable.name].get("secret")) == variable.secret, variable.name
    marked = {name for name, spec in DOC["env"].items() if spec.get("secret")}
    assert marked >= SECRET_VARIABLES


def test_defaults_and_choices_match_the_table() -> None:
    for variable in VARIABLES:
        spec = DOC["env"][variable.name]
        assert str(spec.get("default", "")) == variable.default, variable.name
        choices = getattr(variable.kind, "choices", None)
        if choices is not None:
            assert tuple(spec["values"]) == choices, variable.name
    settings = Settings.from_env({})  # and every default is a valid value
    assert settings.bus.driver == DOC["env"]["MESSAGE_BUS_DRIVER"]["default"]


def test_every_variable_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [v.name for v in VARIABLES if f"`{v.name}`" not in text]
    assert missing == []


def test_topics_and_types() -> None:
    published = {topic["name"]: topic for topic in DOC["topics"]["publishes"]}
    assert set(published) == {INGRESS_TOPIC, DLQ_TOPIC, EGRESS_DLQ_TOPIC}
    consumed = {topic["name"]: topic for topic in DOC["topics"]["consumes"]}
    assert set(consumed) == {EGRESS_TOPIC}
    assert consumed[EGRESS_TOPIC]["types"] == [COMMAND_TYPE]
    assert (ROOT / consumed[EGRESS_TOPIC]["schema"]).is_file()
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
